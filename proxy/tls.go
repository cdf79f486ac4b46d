package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/popscope/popscope/decode"
	"github.com/popscope/popscope/event"
)

// TLSConfig turns on TLS interception. The client leg and the upstream leg
// are chosen independently:
//
//   - client leg: a plain listener (Serve) on which popscope offers and
//     terminates STLS itself, and/or an implicit-TLS listener (ServeTLS);
//   - upstream leg (UpstreamMode): "plain", "stls" (popscope upgrades right
//     after the greeting), "implicit" (TLS from the first byte), or
//     "auto": implicit if the upstream port is 995; otherwise it mirrors
//     the client — a client's STLS is forwarded when the upstream
//     announced STLS (else answered by popscope), and an implicit-TLS
//     client gets an upstream STLS attempt right after the greeting.
//
// CAPA coherence: while the client is in AUTHORIZATION, popscope adjusts
// the CAPA replies the client sees — it adds STLS when it offers STLS the
// upstream lacks, and removes STLS once the client leg is TLS. This is the
// only place popscope alters traffic, and each change is a "note" event.
type TLSConfig struct {
	// Server holds popscope's certificate(s) for the client leg.
	Server *tls.Config
	// Upstream verifies the upstream (RootCAs, ServerName); nil means the
	// system roots and the upstream host name.
	Upstream *tls.Config
	// UpstreamMode: "auto" (default), "plain", "stls", "implicit".
	UpstreamMode string
	// Insecure skips upstream certificate verification; every session's
	// TLS event says so.
	Insecure bool
	// Passthrough relays TLS unchanged instead of terminating it (the
	// session is opaque after STLS). Server is not needed.
	Passthrough bool
	// HandshakeTimeout bounds each handshake (default 15s).
	HandshakeTimeout time.Duration
}

type upMode int

const (
	modeAuto upMode = iota
	modePlain
	modeSTLS
	modeImplicit
)

// ParseUpstreamMode checks a --upstream-tls value.
func ParseUpstreamMode(s string) error {
	switch s {
	case "", "auto", "plain", "stls", "implicit":
		return nil
	}
	return fmt.Errorf("upstream TLS mode %q: want auto, plain, stls or implicit", s)
}

// tlsState is one session's TLS interception state.
type tlsState struct {
	cfg      *TLSConfig
	implicit bool // the client came on the implicit-TLS listener
	upMode   upMode

	upTLS       atomic.Bool
	clientTLS   atomic.Bool
	upListsSTLS atomic.Bool // the upstream's own CAPA listed STLS

	// client → server
	held []byte // start of a client line that may still become "STLS"

	// server → client
	line []byte // server status line being collected (STLS replies)
	capa []byte // CAPA reply being collected
	// STLS forwarded upstream: s2c reports the outcome, c2s does the
	// client handshake and says when it is done.
	stlsForwarded atomic.Bool
	outcome       chan bool
	clientDone    chan struct{}
	// Upstream STLS right after the greeting.
	startSTLS  int // 0 none, 1 waiting for the greeting, 2 STLS sent
	upReady    chan struct{}
	upFailed   atomic.Bool  // an upstream STLS failed and the session ends: forward nothing
	afterUpTLS atomic.Int64 // client bytes forwarded since the upstream STLS handshake
	tls004     bool
}

func newTLSState(cfg *TLSConfig, implicit bool, upstream string) *tlsState {
	t := &tlsState{cfg: cfg, implicit: implicit}
	switch cfg.UpstreamMode {
	case "plain":
		t.upMode = modePlain
	case "stls":
		t.upMode = modeSTLS
	case "implicit":
		t.upMode = modeImplicit
	default:
		t.upMode = modeAuto
		if _, port, err := net.SplitHostPort(upstream); err == nil && port == "995" {
			t.upMode = modeImplicit
		}
	}
	if !cfg.Passthrough && (t.upMode == modeSTLS || (t.upMode == modeAuto && implicit)) {
		t.startSTLS = 1
		t.upReady = make(chan struct{})
	}
	if implicit {
		t.clientTLS.Store(true)
	}
	return t
}

func (t *tlsState) timeout() time.Duration {
	if t.cfg.HandshakeTimeout > 0 {
		return t.cfg.HandshakeTimeout
	}
	return 15 * time.Second
}

// active reports whether chunks from side need the interception path.
func (s *session) tlsActive(from event.Side) bool {
	t := s.tls
	if t == nil || t.cfg.Passthrough {
		return false
	}
	s.mu.Lock()
	st := s.dec.State()
	s.mu.Unlock()
	inAuth := st == decode.GreetingWait || st.Authorization() || st == decode.TLSUpgrade
	if from == event.Client {
		return t.upReady != nil || (inAuth && !t.clientTLS.Load())
	}
	return inAuth || t.startSTLS == 2
}

// tlsChunk handles a chunk on the interception path.
func (s *session) tlsChunk(from event.Side, p []byte) error {
	if from == event.Client {
		return s.clientChunk(p)
	}
	return s.serverChunk(p)
}

// ---- client → server ----

func (s *session) clientChunk(p []byte) error {
	t := s.tls
	// The decoder sees exactly what is forwarded (plus the STLS line):
	// octets injected after STLS are discarded unseen, since decoding them
	// would queue commands that the server never receives.
	if t.upReady != nil {
		select {
		case <-t.upReady:
		case <-time.After(2 * t.timeout()):
			return errors.New("upstream STLS did not finish")
		}
		if t.upFailed.Load() {
			// Never send the client's bytes (USER, PASS...) in plaintext
			// to an upstream that was meant to be TLS.
			return errors.New("upstream STLS failed")
		}
	}
	if t.clientTLS.Load() {
		s.feed(event.Client, p)
		_, err := s.forwardServer(p)
		return err
	}
	data := p
	if len(t.held) > 0 {
		data = append(t.held, p...)
		t.held = nil
	}
	start := 0
	for pos := 0; pos < len(data); {
		i := bytes.IndexByte(data[pos:], '\n')
		if i < 0 {
			if rest := data[pos:]; couldBeSTLS(rest) {
				t.held = append([]byte(nil), rest...)
				data = data[:pos]
			}
			break
		}
		line := data[pos : pos+i+1]
		if isSTLSLine(line) {
			s.feed(event.Client, data[start:pos+i+1])
			if _, err := s.forwardServer(data[start:pos]); err != nil {
				return err
			}
			if extra := data[pos+i+1:]; len(extra) > 0 {
				s.report("POP3-TLS-003", event.Client, fmt.Sprintf("client sent %d octets after STLS before the TLS handshake (command injection vector, CVE-2011-0411 class); discarded", len(extra)))
				s.note(fmt.Sprintf("discarded %d octets the client sent after STLS before the TLS handshake (STARTTLS injection, POP3-TLS-003)", len(extra)))
			}
			return s.clientSTLS(line)
		}
		pos += i + 1
	}
	if len(data) > start {
		s.feed(event.Client, data[start:])
	}
	_, err := s.forwardServer(data[start:])
	return err
}

// forwardServer writes client bytes upstream (nothing for an empty slice).
func (s *session) forwardServer(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return s.writeServer(p)
}

// couldBeSTLS reports whether a partial line may still become "STLS\r\n".
func couldBeSTLS(b []byte) bool {
	const w = "STLS\r"
	if len(b) > len(w) {
		return false
	}
	return strings.EqualFold(string(b), w[:len(b)])
}

func isSTLSLine(line []byte) bool {
	l := strings.TrimRight(string(line), "\r\n")
	return strings.EqualFold(strings.TrimRight(l, " \t"), "STLS")
}

// clientSTLS handles the client's STLS: forwarded upstream (the upstream
// upgrades too) or answered by popscope.
func (s *session) clientSTLS(line []byte) error {
	t := s.tls
	if t.upMode == modeSTLS || (t.upMode == modeAuto && t.upListsSTLS.Load()) {
		if !t.upTLS.Load() {
			t.outcome = make(chan bool, 1)
			t.clientDone = make(chan struct{})
			t.stlsForwarded.Store(true)
			if _, err := s.writeServer(line); err != nil {
				return err
			}
			var ok bool
			select {
			case ok = <-t.outcome:
			case <-time.After(2 * t.timeout()):
				return errors.New("no reply to STLS from the upstream")
			}
			if !ok {
				if t.upFailed.Load() {
					return errHandshake // -ERR went to the client; the session ends
				}
				return nil // -ERR went to the client; still plaintext
			}
			err := s.clientHandshake(context.Background(), "stls")
			close(t.clientDone)
			if err != nil && !s.clientTLSOK() {
				return errHandshake
			}
			return nil
		}
	}
	// popscope answers STLS itself once earlier replies are delivered.
	deadline := time.Now().Add(2 * t.timeout())
	for {
		s.mu.Lock()
		ready := s.dec.HeadVerb() == "STLS" && s.dec.AtServerReplyStart()
		s.mu.Unlock()
		if ready {
			break
		}
		if time.Now().After(deadline) {
			return errors.New("earlier replies did not arrive before STLS")
		}
		time.Sleep(time.Millisecond)
	}
	reply := []byte("+OK Begin TLS negotiation (popscope terminates TLS)\r\n")
	s.feed(event.Server, reply)
	s.note("popscope answered STLS itself: the upstream leg stays " + map[bool]string{true: "TLS", false: "plaintext"}[t.upTLS.Load()])
	if _, err := s.writeClient(reply); err != nil {
		return err
	}
	if !s.clientHandshakeOK("stls") {
		return errHandshake
	}
	return nil
}

var errHandshake = errors.New("TLS handshake failed")

func (s *session) clientTLSOK() bool { return s.tls.clientTLS.Load() }

func (s *session) clientHandshakeOK(mode string) bool {
	return s.clientHandshake(context.Background(), mode) == nil
}

// ---- server → client ----

func (s *session) serverChunk(p []byte) error {
	t := s.tls
	data := p
	for len(data) > 0 {
		if t.startSTLS == 2 {
			n, err := s.startSTLSReply(data)
			if err != nil {
				return err
			}
			data = data[n:]
			continue
		}
		s.mu.Lock()
		atStart, head, st := s.dec.AtServerReplyStart(), s.dec.HeadVerb(), s.dec.State()
		s.mu.Unlock()
		if t.upTLS.Load() && !t.tls004 && t.stlsForwarded.Load() {
			t.tls004 = true
			if t.afterUpTLS.Load() == 0 {
				s.mu.Lock()
				s.dec.Report(time.Now(), "POP3-TLS-004", event.Server, "inside the new TLS session the server sent data before the client sent any command: it answers plaintext sent before the handshake")
				s.mu.Unlock()
			}
		}
		switch {
		case atStart && head == "STLS" && t.stlsForwarded.Load() && !t.upTLS.Load():
			n, err := s.upstreamSTLSReply(data)
			if err != nil {
				return err
			}
			data = data[n:]
			continue
		case len(t.capa) > 0 || (atStart && head == "CAPA" && st != decode.Transaction):
			data = data[s.collectCAPA(data):]
			continue
		}
		chunk := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			chunk = data[:i+1]
		}
		s.feed(event.Server, chunk)
		if _, err := s.writeClient(chunk); err != nil {
			return err
		}
		data = data[len(chunk):]
		if t.startSTLS == 1 {
			s.mu.Lock()
			greeted := s.dec.State() != decode.GreetingWait
			ok := s.dec.State().Authorization()
			s.mu.Unlock()
			if greeted {
				if !ok {
					t.startSTLS = 0
					close(t.upReady)
					continue
				}
				if _, err := s.writeServer([]byte("STLS\r\n")); err != nil {
					return err
				}
				t.startSTLS = 2
			}
		}
	}
	return nil
}

// collectLine gathers a status line across chunks; it returns the line
// (with its end) once complete and how much of data it used.
func (t *tlsState) collectLine(data []byte) (line []byte, used int) {
	i := bytes.IndexByte(data, '\n')
	if i < 0 {
		if len(t.line)+len(data) > 4096 {
			// Not a POP3 status line: give up collecting.
			line = append(t.line, data...)
			t.line = nil
			return line, len(data)
		}
		t.line = append(t.line, data...)
		return nil, len(data)
	}
	line = append(t.line, data[:i+1]...)
	t.line = nil
	return line, i + 1
}

// startSTLSReply reads the upstream's reply to popscope's own STLS sent
// right after the greeting. It is not part of the client's conversation
// and is not decoded.
func (s *session) startSTLSReply(data []byte) (int, error) {
	t := s.tls
	line, used := t.collectLine(data)
	if line == nil {
		return used, nil
	}
	t.startSTLS = 0
	defer close(t.upReady)
	if bytes.HasPrefix(line, []byte("+OK")) {
		if rest := data[used:]; len(rest) > 0 {
			s.report("POP3-TLS-005", event.Server, fmt.Sprintf("after +OK to STLS the server sent %d more octets before the TLS handshake (response injection); discarded", len(rest)))
		}
		if err := s.upstreamHandshake(context.Background(), "stls"); err != nil {
			// The client has had the greeting: its next reply says why
			// the session ends.
			t.upFailed.Store(true)
			s.failClient("upstream TLS handshake failed")
			return len(data), errHandshake
		}
		return len(data), nil
	}
	why := strings.TrimSpace(string(line))
	if t.upMode == modeSTLS {
		s.note("upstream refused STLS (" + why + "); --upstream-tls stls requires it: closing")
		t.upFailed.Store(true)
		s.failClient("upstream refused STLS (--upstream-tls stls)")
		return len(data), errors.New("upstream refused STLS")
	}
	s.note("upstream refused STLS (" + why + "): the upstream leg stays plaintext")
	return used, nil
}

// upstreamSTLSReply handles the upstream's reply to a client STLS that
// popscope forwarded.
func (s *session) upstreamSTLSReply(data []byte) (int, error) {
	t := s.tls
	line, used := t.collectLine(data)
	if line == nil {
		return used, nil
	}
	s.feed(event.Server, line)
	if !bytes.HasPrefix(line, []byte("+OK")) {
		t.stlsForwarded.Store(false)
		_, err := s.writeClient(line)
		t.outcome <- false
		return used, err
	}
	if rest := data[used:]; len(rest) > 0 {
		s.report("POP3-TLS-005", event.Server, fmt.Sprintf("after +OK to STLS the server sent %d more octets before the TLS handshake (response injection); discarded", len(rest)))
	}
	if err := s.upstreamHandshake(context.Background(), "stls"); err != nil {
		t.upFailed.Store(true)
		s.writeClient([]byte("-ERR [SYS/TEMP] popscope: upstream TLS handshake failed\r\n"))
		t.outcome <- false
		return len(data), errHandshake
	}
	if _, err := s.writeClient(line); err != nil {
		return len(data), err
	}
	t.outcome <- true
	select {
	case <-t.clientDone:
	case <-time.After(2 * t.timeout()):
		return len(data), errors.New("client TLS handshake did not finish")
	}
	return len(data), nil
}

// collectCAPA gathers a CAPA reply, adjusts its STLS line for the client
// and forwards it; it returns how much of data it used.
func (s *session) collectCAPA(data []byte) int {
	t := s.tls
	prev := len(t.capa)
	t.capa = append(t.capa, data...)
	end := capaEnd(t.capa)
	if end < 0 {
		if len(t.capa) > 64<<10 {
			// Not a sane CAPA reply: forward unchanged.
			out := t.capa
			t.capa = nil
			s.feed(event.Server, out)
			s.writeClient(out)
		}
		return len(data)
	}
	reply := t.capa[:end]
	t.capa = nil
	out := s.adjustCAPA(reply)
	s.feed(event.Server, out)
	s.writeClient(out)
	return end - prev
}

// capaEnd returns the length of a complete reply at the start of b (a
// -ERR line, or +OK through the "." terminator line), or -1.
func capaEnd(b []byte) int {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return -1
	}
	if !bytes.HasPrefix(b, []byte("+OK")) {
		return i + 1
	}
	for pos := i + 1; pos < len(b); {
		j := bytes.IndexByte(b[pos:], '\n')
		if j < 0 {
			return -1
		}
		line := bytes.TrimRight(b[pos:pos+j+1], "\r\n")
		pos += j + 1
		if string(line) == "." {
			return pos
		}
	}
	return -1
}

// adjustCAPA makes the STLS capability match what popscope offers the
// client: present while the client leg is plaintext, absent once it is TLS.
func (s *session) adjustCAPA(reply []byte) []byte {
	t := s.tls
	if !bytes.HasPrefix(reply, []byte("+OK")) {
		return reply
	}
	lines := bytes.SplitAfter(reply, []byte("\n"))
	// reply ends with LF: drop SplitAfter's empty last element so that
	// the last line is the "." terminator (STLS goes before it).
	lines = lines[:len(lines)-1]
	has := -1
	for i, l := range lines[1:] {
		if strings.EqualFold(strings.TrimRight(string(l), "\r\n"), "STLS") {
			has = i + 1
		}
	}
	if !t.upTLS.Load() {
		t.upListsSTLS.Store(has > 0)
	}
	want := !t.clientTLS.Load() && t.cfg.Server != nil
	switch {
	case want && has < 0:
		out := make([]byte, 0, len(reply)+6)
		for _, l := range lines[:len(lines)-1] {
			out = append(out, l...)
		}
		out = append(out, "STLS\r\n"...)
		out = append(out, lines[len(lines)-1]...)
		s.note("CAPA adjusted for the client: added STLS (popscope terminates TLS on the client leg; the upstream did not offer it)")
		return out
	case !want && has > 0:
		out := make([]byte, 0, len(reply))
		for i, l := range lines {
			if i != has {
				out = append(out, l...)
			}
		}
		s.note("CAPA adjusted for the client: removed STLS (TLS is already active on the client leg)")
		return out
	}
	return reply
}

func (s *session) report(rule string, by event.Side, detail string) {
	s.mu.Lock()
	s.dec.Report(time.Now(), rule, by, detail)
	s.mu.Unlock()
}

// ---- handshakes ----

// clientHandshake terminates TLS on the client leg (popscope is the
// server) and swaps the client connection. The client write lock is held
// so that nothing is written in plaintext meanwhile.
func (s *session) clientHandshake(ctx context.Context, mode string) error {
	t := s.tls
	ctx, cancel := context.WithTimeout(ctx, t.timeout())
	defer cancel()
	s.cmu.Lock()
	tc := tls.Server(s.rawClient, t.cfg.Server)
	err := tc.HandshakeContext(ctx)
	if err == nil {
		s.client = tc
	}
	s.cmu.Unlock()
	now := time.Now()
	info := describeTLS(tc.ConnectionState(), event.Client, mode, nil)
	if err != nil {
		var rh tls.RecordHeaderError
		plain := event.NoSide
		if errors.As(err, &rh) && mode == "implicit" {
			plain = event.Client
		}
		s.mu.Lock()
		s.dec.TLSFailed(now, info, err, plain)
		s.mu.Unlock()
		s.setReason("client TLS handshake failed", err.Error())
		return err
	}
	t.clientTLS.Store(true)
	s.mu.Lock()
	s.dec.StartTLS(now, info)
	s.mu.Unlock()
	return nil
}

// upstreamHandshake starts TLS on the upstream leg (popscope is the
// client), verifying the certificate unless Insecure.
func (s *session) upstreamHandshake(ctx context.Context, mode string) error {
	t := s.tls
	cfg := &tls.Config{}
	if t.cfg.Upstream != nil {
		cfg = t.cfg.Upstream.Clone()
	}
	if cfg.ServerName == "" {
		host, _, _ := net.SplitHostPort(s.p.cfg.Upstream)
		cfg.ServerName = host
	}
	cfg.InsecureSkipVerify = t.cfg.Insecure
	ctx, cancel := context.WithTimeout(ctx, t.timeout())
	defer cancel()
	s.smu.Lock()
	tc := tls.Client(s.rawServer, cfg)
	err := tc.HandshakeContext(ctx)
	if err == nil {
		s.server = tc
	}
	s.smu.Unlock()
	now := time.Now()
	var verr error
	if t.cfg.Insecure {
		verr = errors.New("skipped: --upstream-insecure")
	}
	info := describeTLS(tc.ConnectionState(), event.Server, mode, verr)
	if err != nil {
		var rh tls.RecordHeaderError
		plain := event.NoSide
		if errors.As(err, &rh) && mode == "implicit" {
			plain = event.Server
		}
		info.VerifyError = err.Error()
		s.mu.Lock()
		s.dec.TLSFailed(now, info, err, plain)
		s.mu.Unlock()
		s.setReason("upstream TLS handshake failed", err.Error())
		s.p.cfg.Logf("proxy: session %s: upstream TLS: %v", s.id, err)
		return err
	}
	t.upTLS.Store(true)
	s.mu.Lock()
	s.dec.StartTLS(now, info)
	s.mu.Unlock()
	return nil
}

// describeTLS turns a connection state into the event's TLS facts.
func describeTLS(cs tls.ConnectionState, leg event.Side, mode string, verifyErr error) *event.TLSInfo {
	info := &event.TLSInfo{Leg: leg, Mode: mode, SNI: cs.ServerName, ALPN: cs.NegotiatedProtocol}
	if cs.Version != 0 {
		info.Version = tls.VersionName(cs.Version)
		info.Cipher = tls.CipherSuiteName(cs.CipherSuite)
	}
	if len(cs.PeerCertificates) > 0 {
		c := cs.PeerCertificates[0]
		info.PeerSubject = c.Subject.String()
		info.PeerIssuer = c.Issuer.String()
		info.PeerExpiry = c.NotAfter
	}
	if leg == event.Server && cs.HandshakeComplete {
		info.Verified = verifyErr == nil
	}
	if verifyErr != nil {
		info.VerifyError = verifyErr.Error()
	}
	return info
}
