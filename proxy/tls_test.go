package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/popscope/popscope/event"
	"github.com/popscope/popscope/internal/certs"
)

// ---- fixtures: two CAs, a scripted POP3 server, a small POP3 client ----

// tlsEnv holds popscope's CA (the client leg) and the fake upstream's CA,
// both generated in t.TempDir() by internal/certs.
type tlsEnv struct {
	popCA, upCA       *certs.Authority
	popPool, upPool   *x509.CertPool
	popClient, upSide *tls.Config // client trusting popscope; the upstream's server config
}

func newTLSEnv(t *testing.T) *tlsEnv {
	t.Helper()
	pop, err := certs.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	up, err := certs.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := &tlsEnv{popCA: pop, upCA: up, popPool: x509.NewCertPool(), upPool: x509.NewCertPool()}
	e.popPool.AddCert(pop.Certificate())
	e.upPool.AddCert(up.Certificate())
	e.popClient = &tls.Config{RootCAs: e.popPool, ServerName: "localhost"}
	e.upSide = up.ServerConfig()
	return e
}

// proxyTLS returns a TLSConfig terminating the client leg with popscope's
// CA and verifying the upstream against the upstream CA.
func (e *tlsEnv) proxyTLS(mode string) *TLSConfig {
	return &TLSConfig{Server: e.popCA.ServerConfig(), Upstream: &tls.Config{RootCAs: e.upPool},
		UpstreamMode: mode, HandshakeTimeout: 5 * time.Second}
}

// startTLSProxy runs a proxy with TLS interception on a plain and an
// implicit-TLS listener; it returns both addresses.
func startTLSProxy(t *testing.T, upstream string, cfg *TLSConfig, publish func(*event.Event)) (plain, implicit string) {
	t.Helper()
	ln, tln := listen(t), listen(t)
	p := New(Config{Upstream: upstream, Publish: publish, DialTimeout: 2 * time.Second, TLS: cfg})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { p.Serve(ctx, ln); done <- struct{}{} }()
	if cfg.Server != nil {
		go func() { p.ServeTLS(ctx, tln); done <- struct{}{} }()
	} else {
		tln.Close()
		done <- struct{}{}
	}
	t.Cleanup(func() {
		cancel()
		for range 2 {
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Error("proxy did not stop")
				return
			}
		}
	})
	return ln.Addr().String(), tln.Addr().String()
}

// rawRec counts and keeps the bytes crossing a net.Conn.
type rawRec struct {
	net.Conn
	mu      sync.Mutex
	in, out bytes.Buffer
}

func (r *rawRec) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	r.mu.Lock()
	r.in.Write(p[:n])
	r.mu.Unlock()
	return n, err
}

func (r *rawRec) Write(p []byte) (int, error) {
	n, err := r.Conn.Write(p)
	r.mu.Lock()
	r.out.Write(p[:n])
	r.mu.Unlock()
	return n, err
}

func (r *rawRec) bytesIn() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]byte(nil), r.in.Bytes()...)
}

func (r *rawRec) bytesOut() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]byte(nil), r.out.Bytes()...)
}

// fakePOP is a scripted POP3 server on 127.0.0.1 that can do STLS and
// implicit TLS, and misbehave on request.
type fakePOP struct {
	ln       net.Listener
	tls      *tls.Config // for STLS and implicit TLS
	implicit bool        // TLS from the first byte
	// offerSTLS lists STLS in plaintext CAPA replies and accepts STLS.
	offerSTLS bool
	// stlsReply is written in one write in answer to STLS (default
	// "+OK Begin TLS negotiation now\r\n"); TLS follows if it starts with +OK.
	stlsReply string
	// afterTLS is written inside TLS right after an STLS handshake,
	// before anything is read (TLS-004).
	afterTLS string
	// maxVersion caps the TLS version (TLS-008).
	maxVersion uint16
	body       string // RETR 1 body, wire form without the terminator

	mu       sync.Mutex
	cmds     []string // command lines, "tls " prefixed inside TLS
	leftover []string // plaintext buffered behind STLS (dropped, as Dovecot does)
	raw      []*rawRec
	tlsErr   []error
}

const fakeBody = "From: a@example.test\r\nSubject: hi\r\n\r\nhello\r\n..dot\r\n"

func startFakePOP(t *testing.T, f *fakePOP) *fakePOP {
	t.Helper()
	f.ln = listen(t)
	if f.body == "" {
		f.body = fakeBody
	}
	if f.stlsReply == "" {
		f.stlsReply = "+OK Begin TLS negotiation now\r\n"
	}
	go func() {
		for {
			c, err := f.ln.Accept()
			if err != nil {
				return
			}
			go f.handle(c)
		}
	}()
	t.Cleanup(func() { f.ln.Close() })
	return f
}

func (f *fakePOP) addr() string { return f.ln.Addr().String() }

func (f *fakePOP) serverConfig() *tls.Config {
	cfg := f.tls.Clone()
	if f.maxVersion != 0 {
		cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS10, f.maxVersion
	}
	return cfg
}

func (f *fakePOP) handle(conn net.Conn) {
	rec := &rawRec{Conn: conn}
	f.mu.Lock()
	f.raw = append(f.raw, rec)
	f.mu.Unlock()
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	var c net.Conn = rec
	inTLS := false
	if f.implicit {
		tc := tls.Server(rec, f.serverConfig())
		if err := tc.Handshake(); err != nil {
			f.mu.Lock()
			f.tlsErr = append(f.tlsErr, err)
			f.mu.Unlock()
			return
		}
		c, inTLS = tc, true
	}
	io.WriteString(c, "+OK fake POP3 ready\r\n")
	br := bufio.NewReader(c)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		verb := strings.ToUpper(strings.Fields(line + " x")[0])
		f.mu.Lock()
		if inTLS {
			f.cmds = append(f.cmds, "tls "+strings.TrimRight(line, "\r\n"))
		} else {
			f.cmds = append(f.cmds, strings.TrimRight(line, "\r\n"))
		}
		f.mu.Unlock()
		switch verb {
		case "CAPA":
			capa := "+OK capability list follows\r\nUSER\r\nTOP\r\n"
			if f.offerSTLS && !inTLS {
				capa += "STLS\r\n"
			}
			io.WriteString(c, capa+".\r\n")
		case "STLS":
			switch {
			case inTLS:
				io.WriteString(c, "-ERR TLS is already active.\r\n")
				continue
			case !f.offerSTLS:
				io.WriteString(c, "-ERR STLS not supported\r\n")
				continue
			}
			io.WriteString(c, f.stlsReply)
			if !strings.HasPrefix(f.stlsReply, "+OK") {
				continue
			}
			if n := br.Buffered(); n > 0 {
				b, _ := br.Peek(n)
				f.mu.Lock()
				f.leftover = append(f.leftover, string(b))
				f.mu.Unlock()
			}
			tc := tls.Server(rec, f.serverConfig())
			if err := tc.Handshake(); err != nil {
				f.mu.Lock()
				f.tlsErr = append(f.tlsErr, err)
				f.mu.Unlock()
				return
			}
			c, inTLS, br = tc, true, bufio.NewReader(tc)
			if f.afterTLS != "" {
				io.WriteString(c, f.afterTLS)
			}
		case "USER":
			io.WriteString(c, "+OK user accepted\r\n")
		case "PASS":
			io.WriteString(c, "+OK logged in\r\n")
		case "STAT":
			fmt.Fprintf(c, "+OK 1 %d\r\n", len(f.body))
		case "RETR":
			fmt.Fprintf(c, "+OK %d octets\r\n%s.\r\n", len(f.body), f.body)
		case "NOOP":
			io.WriteString(c, "+OK noop\r\n")
		case "QUIT":
			io.WriteString(c, "+OK bye\r\n")
			if tc, ok := c.(*tls.Conn); ok {
				tc.CloseWrite()
			}
			return
		default:
			io.WriteString(c, "-ERR unknown command\r\n")
		}
	}
}

func (f *fakePOP) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.cmds...)
}

// popClient is a minimal POP3 client for the tests.
type popClient struct {
	t   *testing.T
	raw *rawRec
	c   net.Conn
	br  *bufio.Reader
}

func dialPOP(t *testing.T, addr string) *popClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	rec := &rawRec{Conn: c}
	t.Cleanup(func() { c.Close() })
	return &popClient{t: t, raw: rec, c: rec, br: bufio.NewReader(rec)}
}

// dialPOPS connects with implicit TLS.
func dialPOPS(t *testing.T, addr string, cfg *tls.Config) *popClient {
	t.Helper()
	p := dialPOP(t, addr)
	tc := tls.Client(p.raw, cfg)
	if err := tc.Handshake(); err != nil {
		t.Fatalf("implicit TLS handshake with %s: %v", addr, err)
	}
	p.c, p.br = tc, bufio.NewReader(tc)
	return p
}

func (p *popClient) line() string {
	p.t.Helper()
	l, err := p.br.ReadString('\n')
	if err != nil {
		p.t.Fatalf("reading a line: %v (got %q)", err, l)
	}
	return strings.TrimRight(l, "\r\n")
}

func (p *popClient) send(s string) {
	p.t.Helper()
	if _, err := io.WriteString(p.c, s); err != nil {
		p.t.Fatalf("sending %q: %v", s, err)
	}
}

func (p *popClient) cmd(s string) string {
	p.t.Helper()
	p.send(s + "\r\n")
	return p.line()
}

// multi sends a command and reads a multi-line reply (lines unstuffed).
func (p *popClient) multi(s string) (string, []string) {
	p.t.Helper()
	st := p.cmd(s)
	if !strings.HasPrefix(st, "+OK") {
		return st, nil
	}
	var lines []string
	for {
		l := p.line()
		if l == "." {
			return st, lines
		}
		lines = append(lines, strings.TrimPrefix(l, "."))
	}
}

// quit sends QUIT, reads the reply and closes the connection (without a
// TLS close_notify, so that the byte counts of both ends stay comparable).
func (p *popClient) quit() string {
	p.t.Helper()
	st := p.cmd("QUIT")
	p.raw.Conn.Close()
	return st
}

// startTLS upgrades the connection after an STLS +OK. Nothing may be
// buffered: a byte here would be plaintext the client reads as if it had
// come over TLS (response injection).
func (p *popClient) startTLS(cfg *tls.Config) error {
	p.t.Helper()
	if n := p.br.Buffered(); n > 0 {
		b, _ := p.br.Peek(n)
		p.t.Errorf("client has %d plaintext octets buffered at the TLS handshake: %q", n, b)
	}
	tc := tls.Client(p.raw, cfg)
	if err := tc.Handshake(); err != nil {
		return err
	}
	p.c, p.br = tc, bufio.NewReader(tc)
	return nil
}

// ---- event helpers ----

func rulesOf(evs []*event.Event) map[string]int {
	m := map[string]int{}
	for _, e := range evs {
		if e.Type == event.Violation {
			m[e.Rule]++
		}
	}
	return m
}

func tlsEventsOf(evs []*event.Event) []*event.Event {
	var out []*event.Event
	for _, e := range evs {
		if e.Type == event.TLS {
			out = append(out, e)
		}
	}
	return out
}

func tlsLeg(evs []*event.Event, leg event.Side) *event.Event {
	for _, e := range tlsEventsOf(evs) {
		if e.TLS != nil && e.TLS.Leg == leg {
			return e
		}
	}
	return nil
}

func notesWith(evs []*event.Event, sub string) int {
	n := 0
	for _, e := range evs {
		if e.Type == event.Note && strings.Contains(e.Detail, sub) {
			n++
		}
	}
	return n
}

func noErrorViolations(t *testing.T, evs []*event.Event, except ...string) {
	t.Helper()
	for _, e := range evs {
		if e.Type != event.Violation || e.Severity != event.Error {
			continue
		}
		skip := false
		for _, r := range except {
			skip = skip || e.Rule == r
		}
		if !skip {
			t.Errorf("error-severity violation %s by %s: %s", e.Rule, e.By, e.Detail)
		}
	}
}

// noTLSInjection is the near-miss check: a clean session fires none of
// the injection rules.
func noTLSInjection(t *testing.T, evs []*event.Event) {
	t.Helper()
	r := rulesOf(evs)
	for _, rule := range []string{"POP3-TLS-001", "POP3-TLS-002", "POP3-TLS-003", "POP3-TLS-004", "POP3-TLS-005", "POP3-TLS-007", "POP3-TLS-008"} {
		if r[rule] > 0 {
			t.Errorf("%s fired on a clean session (%d times)", rule, r[rule])
		}
	}
}

func hasCap(lines []string, c string) bool {
	for _, l := range lines {
		if strings.EqualFold(l, c) {
			return true
		}
	}
	return false
}

func dump(evs []*event.Event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "  %d %s", e.Seq, e.Type)
		for _, kv := range [][2]string{{"verb", e.Verb}, {"status", e.Status}, {"rule", e.Rule}, {"detail", e.Detail}, {"error", e.Error}, {"reason", e.Reason}} {
			if kv[1] != "" {
				fmt.Fprintf(&b, " %s=%q", kv[0], kv[1])
			}
		}
		if e.TLS != nil {
			fmt.Fprintf(&b, " tls=%+v", *e.TLS)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// ---- every client leg × every upstream leg, against the fake server ----

// TestTLSLegs runs one clean session for each combination of client leg
// {plain, STLS, implicit} and upstream mode {plain, stls, implicit, auto}
// and checks the message, what the upstream saw, the CAPA the client
// saw, the tls events of each leg, and that no TLS rule fires.
func TestTLSLegs(t *testing.T) {
	env := newTLSEnv(t)
	for _, client := range []string{"plain", "stls", "implicit"} {
		for _, up := range []string{"plain", "stls", "implicit", "auto"} {
			t.Run(client+"-to-"+up, func(t *testing.T) { testTLSLeg(t, env, client, up) })
		}
	}
}

func testTLSLeg(t *testing.T, env *tlsEnv, client, up string) {
	f := &fakePOP{tls: env.upSide, implicit: up == "implicit", offerSTLS: up == "stls" || up == "auto"}
	startFakePOP(t, f)
	var s sink
	plainAddr, tlsAddr := startTLSProxy(t, f.addr(), env.proxyTLS(up), s.publish)

	var p *popClient
	if client == "implicit" {
		p = dialPOPS(t, tlsAddr, env.popClient)
	} else {
		p = dialPOP(t, plainAddr)
	}
	if g := p.line(); g != "+OK fake POP3 ready" {
		t.Fatalf("greeting %q", g)
	}
	st, caps := p.multi("CAPA")
	if !strings.HasPrefix(st, "+OK") {
		t.Fatalf("CAPA: %q", st)
	}
	if got, want := hasCap(caps, "STLS"), client != "implicit"; got != want {
		t.Errorf("first CAPA %v: STLS listed %v, want %v (popscope offers STLS on a plaintext client leg only)", caps, got, want)
	}
	if client == "stls" {
		st := p.cmd("STLS")
		if !strings.HasPrefix(st, "+OK") {
			t.Fatalf("STLS: %q", st)
		}
		if err := p.startTLS(env.popClient); err != nil {
			t.Fatalf("client TLS handshake after STLS: %v", err)
		}
		_, caps = p.multi("CAPA")
		if hasCap(caps, "STLS") {
			t.Errorf("CAPA inside TLS still lists STLS: %v", caps)
		}
	}
	if st := p.cmd("USER alice"); st != "+OK user accepted" {
		t.Fatalf("USER: %q", st)
	}
	if st := p.cmd("PASS secret"); st != "+OK logged in" {
		t.Fatalf("PASS: %q", st)
	}
	st, body := p.multi("RETR 1")
	if want := strings.Split(strings.TrimSuffix(strings.ReplaceAll(fakeBody, "\r\n..", "\r\n."), "\r\n"), "\r\n"); !strings.HasPrefix(st, "+OK") || strings.Join(body, "\n") != strings.Join(want, "\n") {
		t.Errorf("RETR 1: %q %q, want %q", st, body, want)
	}
	if st := p.quit(); st != "+OK bye" {
		t.Errorf("QUIT: %q", st)
	}
	end := waitFor(t, &s, event.SessionEnd)
	evs := s.events()
	if t.Failed() {
		t.Logf("events:\n%s", dump(evs))
	}

	// What the upstream saw.
	wantUpTLS := up == "stls" || up == "implicit" || (up == "auto" && client != "plain")
	cmds := f.commands()
	sawSTLS := false
	for _, c := range cmds {
		if strings.EqualFold(strings.TrimPrefix(c, "tls "), "STLS") {
			sawSTLS = true
		}
		if wantUpTLS && strings.HasPrefix(c, "RETR") {
			t.Errorf("upstream got %q in plaintext, want it inside TLS (commands %q)", c, cmds)
		}
		if !wantUpTLS && strings.HasPrefix(c, "tls ") {
			t.Errorf("upstream got %q inside TLS, want plaintext", c)
		}
	}
	wantSTLS := up == "stls" || (up == "auto" && client != "plain")
	if sawSTLS != wantSTLS {
		t.Errorf("upstream saw STLS: %v, want %v (commands %q)", sawSTLS, wantSTLS, cmds)
	}
	if up == "stls" || (up == "auto" && client == "implicit") {
		if len(cmds) == 0 || cmds[0] != "STLS" {
			t.Errorf("popscope's own STLS must come right after the greeting; upstream commands %q", cmds)
		}
	}

	// tls events.
	wantClient := map[string]string{"plain": "", "stls": "stls", "implicit": "implicit"}[client]
	wantServer := ""
	switch {
	case up == "implicit":
		wantServer = "implicit"
	case wantUpTLS:
		wantServer = "stls"
	}
	for _, leg := range []struct {
		side event.Side
		mode string
	}{{event.Client, wantClient}, {event.Server, wantServer}} {
		e := tlsLeg(evs, leg.side)
		switch {
		case leg.mode == "" && e != nil:
			t.Errorf("unexpected tls event on the %s leg: %+v", leg.side, *e.TLS)
		case leg.mode != "" && e == nil:
			t.Errorf("no tls event on the %s leg", leg.side)
		case e != nil:
			i := e.TLS
			if i.Mode != leg.mode || e.Error != "" || i.Version == "" || i.Cipher == "" {
				t.Errorf("%s leg tls event %+v error %q, want mode %s, a version and a cipher", leg.side, *i, e.Error, leg.mode)
			}
			if leg.side == event.Server && (!i.Verified || i.VerifyError != "" || !strings.Contains(i.PeerIssuer, "popscope")) {
				t.Errorf("server leg: verified %v verify_error %q issuer %q, want a verified certificate from the test CA", i.Verified, i.VerifyError, i.PeerIssuer)
			}
			if leg.side == event.Client && i.SNI != "localhost" {
				t.Errorf("client leg SNI %q, want localhost", i.SNI)
			}
		}
	}
	if n := len(tlsEventsOf(evs)); n != btoi(wantClient != "")+btoi(wantServer != "") {
		t.Errorf("%d tls events, want one per TLS leg", n)
	}

	// CAPA coherence notes.
	added := notesWith(evs, "added STLS")
	// Added when the client leg is plaintext and the upstream's CAPA
	// lacks STLS at that moment (no STLS offered, or already inside TLS).
	wantAdded := client != "implicit" && up != "auto"
	if (added > 0) != wantAdded {
		t.Errorf("'added STLS' notes: %d, want some: %v", added, wantAdded)
	}

	// The decrypted commands were decoded.
	var verbs []string
	for _, e := range evs {
		if e.Type == event.Command {
			verbs = append(verbs, e.Verb)
		}
		if e.Type == event.Response && e.Verb == "RETR" && e.Octets != int64(len(fakeBody)-1) {
			t.Errorf("RETR response octets %d, want %d", e.Octets, len(fakeBody)-1)
		}
	}
	wantVerbs := "CAPA USER PASS RETR QUIT"
	if client == "stls" {
		wantVerbs = "CAPA STLS CAPA USER PASS RETR QUIT"
	}
	if got := strings.Join(verbs, " "); got != wantVerbs {
		t.Errorf("command events %q, want %q", got, wantVerbs)
	}
	if end.Reason != "client closed" && end.Reason != "server closed" {
		t.Errorf("session_end reason %q", end.Reason)
	}
	noErrorViolations(t, evs)
	noTLSInjection(t, evs)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// ---- CAPA coherence ----

// The upstream lists STLS but popscope keeps the upstream leg plaintext
// and answers STLS itself: inside the client's TLS, the upstream's STLS
// is removed from CAPA, and that change is a note event.
func TestTLSCAPARemovesSTLS(t *testing.T) {
	env := newTLSEnv(t)
	f := startFakePOP(t, &fakePOP{tls: env.upSide, offerSTLS: true})
	var s sink
	addr, tlsAddr := startTLSProxy(t, f.addr(), env.proxyTLS("plain"), s.publish)

	p := dialPOP(t, addr)
	p.line()
	if _, caps := p.multi("CAPA"); !hasCap(caps, "STLS") {
		t.Errorf("plaintext CAPA %v lacks the upstream's STLS", caps)
	}
	if st := p.cmd("STLS"); !strings.Contains(st, "popscope terminates TLS") {
		t.Fatalf("STLS answered %q, want popscope's own +OK (upstream mode plain)", st)
	}
	if err := p.startTLS(env.popClient); err != nil {
		t.Fatal(err)
	}
	if _, caps := p.multi("CAPA"); hasCap(caps, "STLS") || !hasCap(caps, "USER") {
		t.Errorf("CAPA inside TLS %v: want the upstream's list without STLS", caps)
	}
	p.quit()
	waitFor(t, &s, event.SessionEnd)
	evs := s.events()
	if n := notesWith(evs, "removed STLS"); n != 1 {
		t.Errorf("%d 'removed STLS' notes, want 1\n%s", n, dump(evs))
	}
	if n := notesWith(evs, "added STLS"); n != 0 {
		t.Errorf("%d 'added STLS' notes, want 0", n)
	}
	if cmds := f.commands(); strings.Join(cmds, ",") != "CAPA,CAPA,QUIT" {
		t.Errorf("upstream commands %q, want CAPA,CAPA,QUIT (STLS answered by popscope, upstream leg plaintext)", cmds)
	}
	noErrorViolations(t, evs)
	noTLSInjection(t, evs)

	// On the implicit listener the client leg is TLS from the start: the
	// upstream's STLS is removed from the very first CAPA.
	var s2 sink
	_, tlsAddr = startTLSProxy(t, f.addr(), env.proxyTLS("plain"), s2.publish)
	p = dialPOPS(t, tlsAddr, env.popClient)
	p.line()
	if _, caps := p.multi("CAPA"); hasCap(caps, "STLS") {
		t.Errorf("implicit client: CAPA %v lists STLS", caps)
	}
	p.quit()
	waitFor(t, &s2, event.SessionEnd)
	if n := notesWith(s2.events(), "removed STLS"); n != 1 {
		t.Errorf("implicit client: %d 'removed STLS' notes, want 1", n)
	}
}

// The upstream lacks STLS: popscope adds it for a plaintext client and
// says so; with a certificate-less configuration (passthrough) it does
// not.
func TestTLSCAPAAddsSTLS(t *testing.T) {
	env := newTLSEnv(t)
	f := startFakePOP(t, &fakePOP{tls: env.upSide})
	var s sink
	addr, _ := startTLSProxy(t, f.addr(), env.proxyTLS("auto"), s.publish)
	p := dialPOP(t, addr)
	p.line()
	_, caps := p.multi("CAPA")
	if !hasCap(caps, "STLS") || !hasCap(caps, "USER") || !hasCap(caps, "TOP") {
		t.Errorf("CAPA %v: want the upstream's USER and TOP plus STLS", caps)
	}
	p.quit()
	waitFor(t, &s, event.SessionEnd)
	evs := s.events()
	if n := notesWith(evs, "added STLS"); n != 1 {
		t.Errorf("%d 'added STLS' notes, want 1\n%s", n, dump(evs))
	}
	// The decoder saw the CAPA the client saw (with STLS).
	for _, e := range evs {
		if e.Type == event.Response && e.Verb == "CAPA" && e.Status != "+OK" {
			t.Errorf("CAPA response event %+v", e)
		}
	}

	// Near-miss: passthrough never alters CAPA.
	var s2 sink
	addr2, _ := startTLSProxy(t, f.addr(), &TLSConfig{Passthrough: true}, s2.publish)
	p = dialPOP(t, addr2)
	p.line()
	if _, caps := p.multi("CAPA"); hasCap(caps, "STLS") {
		t.Errorf("passthrough: CAPA %v lists STLS the upstream did not offer", caps)
	}
	p.quit()
	waitFor(t, &s2, event.SessionEnd)
	if n := notesWith(s2.events(), "CAPA adjusted"); n != 0 {
		t.Errorf("passthrough: %d CAPA adjustments", n)
	}
}

// ---- TLS-003: STARTTLS command injection ----

// "STLS\r\nCAPA\r\n" in one write: the CAPA was sent in plaintext before
// the handshake and must never reach the server (neither in plaintext nor
// as if it came over TLS); TLS-003 is reported. Both when popscope
// answers STLS itself and when it forwards STLS to the upstream.
func TestTLS003CommandInjection(t *testing.T) {
	env := newTLSEnv(t)
	for _, tc := range []struct {
		name      string
		mode      string
		offerSTLS bool
	}{
		{"answered-by-popscope", "plain", false},
		{"forwarded-upstream", "auto", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startFakePOP(t, &fakePOP{tls: env.upSide, offerSTLS: tc.offerSTLS})
			var s sink
			addr, _ := startTLSProxy(t, f.addr(), env.proxyTLS(tc.mode), s.publish)
			p := dialPOP(t, addr)
			p.line()
			p.multi("CAPA") // so that popscope knows whether the upstream offers STLS
			p.send("STLS\r\nCAPA\r\n")
			if st := p.line(); !strings.HasPrefix(st, "+OK") {
				t.Fatalf("STLS: %q", st)
			}
			if err := p.startTLS(env.popClient); err != nil {
				t.Fatalf("handshake: %v", err)
			}
			// The first reply inside TLS must answer USER, not the injected CAPA.
			if st := p.cmd("USER alice"); st != "+OK user accepted" {
				t.Errorf("first reply inside TLS %q, want the USER's \"+OK user accepted\" (the injected CAPA was answered?)\n%s", st, dump(s.events()))
			}
			p.quit()
			waitFor(t, &s, event.SessionEnd)
			evs := s.events()
			cmds := f.commands()
			capas := 0
			for _, c := range cmds {
				if strings.HasSuffix(c, "CAPA") {
					capas++
				}
			}
			if capas != 1 {
				t.Errorf("upstream commands %q: the injected CAPA reached the server", cmds)
			}
			f.mu.Lock()
			leftover := f.leftover
			f.mu.Unlock()
			if len(leftover) > 0 {
				t.Errorf("upstream found %q buffered behind its STLS", leftover)
			}
			r := rulesOf(evs)
			if r["POP3-TLS-003"] != 1 {
				t.Errorf("POP3-TLS-003 reported %d times, want 1\n%s", r["POP3-TLS-003"], dump(evs))
			}
			if notesWith(evs, "STARTTLS injection") != 1 {
				t.Errorf("no note about the discarded octets")
			}
			// The decoder must not think the injected CAPA is still
			// waiting for a reply: every command got exactly one response,
			// in order.
			checkPairs(t, evs)
			noErrorViolations(t, evs, "POP3-TLS-003")
		})
	}
}

// checkPairs checks that every command event has one response event with
// the same verb, and no response lacks a command.
func checkPairs(t *testing.T, evs []*event.Event) {
	t.Helper()
	cmds := map[uint64]string{}
	resps := map[uint64]string{}
	for _, e := range evs {
		switch e.Type {
		case event.Command:
			cmds[e.ID] = e.Verb
		case event.Response:
			if _, dup := resps[e.ID]; dup {
				t.Errorf("second response for id %d", e.ID)
			}
			resps[e.ID] = e.Verb
			if cmds[e.ID] != e.Verb {
				t.Errorf("response %s (id %d) answers command %q", e.Verb, e.ID, cmds[e.ID])
			}
		}
	}
	for id, v := range cmds {
		if _, ok := resps[id]; !ok {
			t.Errorf("command %s (id %d) has no response event\n%s", v, id, dump(evs))
		}
	}
}

// ---- TLS-005: response injection ----

// The upstream answers STLS with "+OK\r\n+OK fake\r\n" in one write: the
// fake line must never reach the client, and TLS-005 is reported. Both
// for a client STLS forwarded upstream and for popscope's own STLS at the
// start (--upstream-tls stls).
func TestTLS005ResponseInjection(t *testing.T) {
	env := newTLSEnv(t)
	for _, tc := range []struct{ name, mode, client string }{
		{"forwarded-client-stls", "auto", "stls"},
		{"popscope-stls-at-start", "stls", "plain"},
		{"popscope-stls-at-start-implicit-client", "auto", "implicit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startFakePOP(t, &fakePOP{tls: env.upSide, offerSTLS: true, stlsReply: "+OK\r\n+OK fake\r\n"})
			var s sink
			addr, tlsAddr := startTLSProxy(t, f.addr(), env.proxyTLS(tc.mode), s.publish)
			var p *popClient
			if tc.client == "implicit" {
				p = dialPOPS(t, tlsAddr, env.popClient)
			} else {
				p = dialPOP(t, addr)
			}
			p.line()
			if tc.client == "stls" {
				p.multi("CAPA")
				if st := p.cmd("STLS"); st != "+OK" {
					t.Fatalf("STLS answered %q, want the upstream's bare +OK", st)
				}
				if err := p.startTLS(env.popClient); err != nil {
					t.Fatal(err)
				}
			}
			if st := p.cmd("USER alice"); st != "+OK user accepted" {
				t.Errorf("USER answered %q: the injected line reached the client", st)
			}
			p.quit()
			waitFor(t, &s, event.SessionEnd)
			evs := s.events()
			if r := rulesOf(evs); r["POP3-TLS-005"] != 1 {
				t.Errorf("POP3-TLS-005 reported %d times, want 1\n%s", r["POP3-TLS-005"], dump(evs))
			}
			if e := tlsLeg(evs, event.Server); e == nil || !e.TLS.Verified {
				t.Errorf("upstream leg not verified TLS after the injection: %v", e)
			}
			noErrorViolations(t, evs, "POP3-TLS-005")
		})
	}
}

// ---- TLS-004: the server answers inside TLS before any command ----

func TestTLS004EarlyReplyInsideTLS(t *testing.T) {
	env := newTLSEnv(t)
	f := startFakePOP(t, &fakePOP{tls: env.upSide, offerSTLS: true, afterTLS: "+OK reply to something sent before the handshake\r\n"})
	var s sink
	addr, _ := startTLSProxy(t, f.addr(), env.proxyTLS("auto"), s.publish)
	p := dialPOP(t, addr)
	p.line()
	p.multi("CAPA")
	if st := p.cmd("STLS"); !strings.HasPrefix(st, "+OK Begin TLS") {
		t.Fatalf("STLS: %q", st)
	}
	if err := p.startTLS(env.popClient); err != nil {
		t.Fatal(err)
	}
	// Read before sending anything: the early reply is relayed.
	if l := p.line(); !strings.Contains(l, "before the handshake") {
		t.Errorf("first line inside TLS %q", l)
	}
	p.send("QUIT\r\n")
	p.line()
	p.raw.Conn.Close()
	waitFor(t, &s, event.SessionEnd)
	evs := s.events()
	if r := rulesOf(evs); r["POP3-TLS-004"] != 1 {
		t.Errorf("POP3-TLS-004 reported %d times, want 1\n%s", r["POP3-TLS-004"], dump(evs))
	}
}

// Near-miss for TLS-004: the first command inside TLS comes from the
// client, and the server answers it (even at once, even with a
// pipelined pair of commands).
func TestTLS004NearMiss(t *testing.T) {
	env := newTLSEnv(t)
	f := startFakePOP(t, &fakePOP{tls: env.upSide, offerSTLS: true})
	var s sink
	addr, _ := startTLSProxy(t, f.addr(), env.proxyTLS("auto"), s.publish)
	p := dialPOP(t, addr)
	p.line()
	p.multi("CAPA")
	p.cmd("STLS")
	if err := p.startTLS(env.popClient); err != nil {
		t.Fatal(err)
	}
	p.send("USER alice\r\nPASS secret\r\n")
	if a, b := p.line(), p.line(); a != "+OK user accepted" || b != "+OK logged in" {
		t.Errorf("pipelined USER and PASS answered %q, %q", a, b)
	}
	p.quit()
	waitFor(t, &s, event.SessionEnd)
	evs := s.events()
	noTLSInjection(t, evs)
	noErrorViolations(t, evs)
	if e := tlsLeg(evs, event.Server); e == nil || e.TLS.Mode != "stls" {
		t.Errorf("server leg tls event %v", e)
	}
}

// ---- TLS-007: plaintext where implicit TLS was expected ----

func TestTLS007PlaintextClientOnImplicitListener(t *testing.T) {
	env := newTLSEnv(t)
	f := startFakePOP(t, &fakePOP{tls: env.upSide})
	var s sink
	_, tlsAddr := startTLSProxy(t, f.addr(), env.proxyTLS("plain"), s.publish)
	p := dialPOP(t, tlsAddr)
	p.send("CAPA\r\n")
	rest, _ := io.ReadAll(p.br) // popscope closes
	if bytes.Contains(rest, []byte("+OK")) {
		t.Errorf("a plaintext client on the implicit listener got %q", rest)
	}
	waitFor(t, &s, event.SessionEnd)
	evs := s.events()
	r := rulesOf(evs)
	if r["POP3-TLS-007"] != 1 {
		t.Errorf("POP3-TLS-007 reported %d times, want 1\n%s", r["POP3-TLS-007"], dump(evs))
	}
	for _, e := range evs {
		if e.Type == event.Violation && e.Rule == "POP3-TLS-007" && e.By != event.Client {
			t.Errorf("TLS-007 by %s, want client", e.By)
		}
	}
	e := tlsLeg(evs, event.Client)
	if e == nil || e.Error == "" || e.TLS.Mode != "implicit" {
		t.Errorf("client leg tls event %v, want a failed implicit handshake", e)
	}
	if len(f.commands()) != 0 {
		t.Errorf("the upstream got %q", f.commands())
	}
}

func TestTLS007PlaintextGreetingFromImplicitUpstream(t *testing.T) {
	env := newTLSEnv(t)
	f := startFakePOP(t, &fakePOP{tls: env.upSide}) // plaintext, but popscope is told implicit
	var s sink
	addr, _ := startTLSProxy(t, f.addr(), env.proxyTLS("implicit"), s.publish)
	p := dialPOP(t, addr)
	g := p.line()
	if !strings.HasPrefix(g, "-ERR [SYS/TEMP]") || !strings.Contains(g, "TLS") {
		t.Errorf("client greeting %q, want -ERR [SYS/TEMP] naming the upstream TLS failure", g)
	}
	waitFor(t, &s, event.SessionEnd)
	evs := s.events()
	r := rulesOf(evs)
	if r["POP3-TLS-007"] != 1 {
		t.Errorf("POP3-TLS-007 reported %d times, want 1\n%s", r["POP3-TLS-007"], dump(evs))
	}
	for _, e := range evs {
		if e.Type == event.Violation && e.Rule == "POP3-TLS-007" && e.By != event.Server {
			t.Errorf("TLS-007 by %s, want server", e.By)
		}
	}
	if e := tlsLeg(evs, event.Server); e == nil || e.Error == "" || e.TLS.Mode != "implicit" || e.TLS.Verified {
		t.Errorf("server leg tls event %v, want a failed implicit handshake", e)
	}
}

// Near-miss for TLS-007: a failed implicit handshake that is not
// plaintext (the upstream presents an untrusted certificate) is not
// TLS-007.
func TestTLS007NearMissUntrustedIsNotPlaintext(t *testing.T) {
	env := newTLSEnv(t)
	f := startFakePOP(t, &fakePOP{tls: env.upSide, implicit: true})
	var s sink
	cfg := env.proxyTLS("implicit")
	cfg.Upstream = &tls.Config{RootCAs: env.popPool} // wrong CA
	addr, _ := startTLSProxy(t, f.addr(), cfg, s.publish)
	p := dialPOP(t, addr)
	p.line()
	waitFor(t, &s, event.SessionEnd)
	if r := rulesOf(s.events()); r["POP3-TLS-007"] != 0 {
		t.Errorf("TLS-007 fired for a certificate failure")
	}
}

// ---- TLS-008: TLS below 1.2 ----

// Go's crypto/tls still negotiates TLS 1.1 when both sides lower
// MinVersion explicitly, so both legs are tested for real.
func TestTLS008OldVersion(t *testing.T) {
	env := newTLSEnv(t)
	t.Run("upstream-leg-tls1.1", func(t *testing.T) {
		f := startFakePOP(t, &fakePOP{tls: env.upSide, implicit: true, maxVersion: tls.VersionTLS11})
		var s sink
		cfg := env.proxyTLS("implicit")
		cfg.Upstream.MinVersion = tls.VersionTLS10
		addr, _ := startTLSProxy(t, f.addr(), cfg, s.publish)
		p := dialPOP(t, addr)
		if g := p.line(); g != "+OK fake POP3 ready" {
			t.Fatalf("greeting %q", g)
		}
		p.quit()
		waitFor(t, &s, event.SessionEnd)
		evs := s.events()
		e := tlsLeg(evs, event.Server)
		if e == nil || e.TLS.Version != "TLS 1.1" {
			t.Fatalf("server leg tls event %v, want TLS 1.1\n%s", e, dump(evs))
		}
		if r := rulesOf(evs); r["POP3-TLS-008"] != 1 {
			t.Errorf("POP3-TLS-008 reported %d times, want 1\n%s", r["POP3-TLS-008"], dump(evs))
		}
	})
	t.Run("client-leg-tls1.1", func(t *testing.T) {
		f := startFakePOP(t, &fakePOP{tls: env.upSide})
		var s sink
		cfg := env.proxyTLS("plain")
		cfg.Server.MinVersion = tls.VersionTLS10
		_, tlsAddr := startTLSProxy(t, f.addr(), cfg, s.publish)
		cc := env.popClient.Clone()
		cc.MinVersion, cc.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
		p := dialPOPS(t, tlsAddr, cc)
		p.line()
		p.quit()
		waitFor(t, &s, event.SessionEnd)
		evs := s.events()
		if e := tlsLeg(evs, event.Client); e == nil || e.TLS.Version != "TLS 1.1" {
			t.Fatalf("client leg tls event %v, want TLS 1.1", e)
		}
		if r := rulesOf(evs); r["POP3-TLS-008"] != 1 {
			t.Errorf("POP3-TLS-008 reported %d times, want 1\n%s", r["POP3-TLS-008"], dump(evs))
		}
	})
	// Near-miss: exactly TLS 1.2 is fine.
	t.Run("near-miss-tls1.2", func(t *testing.T) {
		f := startFakePOP(t, &fakePOP{tls: env.upSide, implicit: true, maxVersion: tls.VersionTLS12})
		var s sink
		cfg := env.proxyTLS("implicit")
		cfg.Upstream.MinVersion = tls.VersionTLS10
		addr, _ := startTLSProxy(t, f.addr(), cfg, s.publish)
		p := dialPOP(t, addr)
		p.line()
		p.quit()
		waitFor(t, &s, event.SessionEnd)
		evs := s.events()
		if e := tlsLeg(evs, event.Server); e == nil || e.TLS.Version != "TLS 1.2" {
			t.Fatalf("server leg tls event %v, want TLS 1.2", e)
		}
		if r := rulesOf(evs); r["POP3-TLS-008"] != 0 {
			t.Errorf("POP3-TLS-008 fired for TLS 1.2")
		}
	})
}

// ---- TLS-001 / TLS-002: STLS in the wrong state, STLS twice ----

func TestTLS001STLSInTransaction(t *testing.T) {
	env := newTLSEnv(t)
	f := startFakePOP(t, &fakePOP{tls: env.upSide})
	var s sink
	addr, _ := startTLSProxy(t, f.addr(), env.proxyTLS("plain"), s.publish)
	p := dialPOP(t, addr)
	p.line()
	p.cmd("USER alice")
	p.cmd("PASS secret")
	// After login popscope no longer intercepts STLS: the upstream answers.
	if st := p.cmd("STLS"); !strings.HasPrefix(st, "-ERR") {
		t.Errorf("STLS in TRANSACTION answered %q", st)
	}
	p.quit()
	waitFor(t, &s, event.SessionEnd)
	evs := s.events()
	if r := rulesOf(evs); r["POP3-TLS-001"] != 1 {
		t.Errorf("POP3-TLS-001 reported %d times, want 1\n%s", r["POP3-TLS-001"], dump(evs))
	}
}

func TestTLS002STLSOnImplicitTLS(t *testing.T) {
	env := newTLSEnv(t)
	f := startFakePOP(t, &fakePOP{tls: env.upSide, implicit: true})
	var s sink
	_, tlsAddr := startTLSProxy(t, f.addr(), env.proxyTLS("implicit"), s.publish)
	p := dialPOPS(t, tlsAddr, env.popClient)
	p.line()
	if st := p.cmd("STLS"); !strings.HasPrefix(st, "-ERR") {
		t.Errorf("STLS inside TLS answered %q", st)
	}
	p.quit()
	waitFor(t, &s, event.SessionEnd)
	evs := s.events()
	if r := rulesOf(evs); r["POP3-TLS-002"] != 1 {
		t.Errorf("POP3-TLS-002 reported %d times, want 1\n%s", r["POP3-TLS-002"], dump(evs))
	}
}

// ---- upstream verification ----

// A wrong CA for the upstream: the handshake fails, the tls event says
// why, and the client is told with a -ERR; for each way the upstream leg
// can start TLS.
func TestTLSUpstreamWrongCA(t *testing.T) {
	env := newTLSEnv(t)
	for _, tc := range []struct{ name, mode, client string }{
		{"implicit", "implicit", "plain"},
		{"forwarded-client-stls", "auto", "stls"},
		{"stls-at-start", "stls", "plain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startFakePOP(t, &fakePOP{tls: env.upSide, implicit: tc.mode == "implicit", offerSTLS: tc.mode != "implicit"})
			var s sink
			cfg := env.proxyTLS(tc.mode)
			cfg.Upstream = &tls.Config{RootCAs: env.popPool} // not the upstream's CA
			addr, _ := startTLSProxy(t, f.addr(), cfg, s.publish)
			p := dialPOP(t, addr)
			var got []string
			switch tc.client {
			case "stls":
				got = append(got, p.line())
				p.multi("CAPA")
				got = append(got, p.cmd("STLS"))
			default:
				got = append(got, p.line())
				if strings.HasPrefix(got[0], "+OK") {
					// The greeting came before popscope's own STLS; the
					// failure is told on the next reply. The USER must not
					// reach the upstream in plaintext.
					p.send("USER alice\r\n")
					l, _ := p.br.ReadString('\n')
					got = append(got, strings.TrimRight(l, "\r\n"))
				}
			}
			last := got[len(got)-1]
			if !strings.HasPrefix(last, "-ERR [SYS/TEMP]") || !strings.Contains(last, "upstream TLS handshake failed") {
				t.Errorf("client got %q, want a -ERR [SYS/TEMP] ... upstream TLS handshake failed", got)
			}
			waitFor(t, &s, event.SessionEnd)
			evs := s.events()
			e := tlsLeg(evs, event.Server)
			if e == nil {
				t.Fatalf("no server leg tls event\n%s", dump(evs))
			}
			if e.Error == "" || e.TLS.Verified || !strings.Contains(e.TLS.VerifyError, "certificate") {
				t.Errorf("server leg tls event error %q verified %v verify_error %q, want a certificate verification failure",
					e.Error, e.TLS.Verified, e.TLS.VerifyError)
			}
			if len(f.commands()) > 0 && tc.client != "stls" && tc.mode != "stls" {
				t.Errorf("upstream got commands %q after a failed handshake", f.commands())
			}
			for _, c := range f.commands() {
				if strings.HasPrefix(c, "tls ") {
					t.Errorf("upstream got %q inside a TLS session popscope should have refused", c)
				}
			}
			for _, e := range evs {
				if e.Type == event.Command && e.Verb == "USER" {
					t.Errorf("USER was decoded, so forwarded, after the upstream TLS handshake failed")
				}
			}
		})
	}
}

// --upstream-insecure: the session works and every tls event for the
// upstream leg says verification was skipped.
func TestTLSUpstreamInsecure(t *testing.T) {
	env := newTLSEnv(t)
	f := startFakePOP(t, &fakePOP{tls: env.upSide, implicit: true})
	var s sink
	cfg := env.proxyTLS("implicit")
	cfg.Upstream = &tls.Config{RootCAs: env.popPool} // wrong, but not checked
	cfg.Insecure = true
	addr, _ := startTLSProxy(t, f.addr(), cfg, s.publish)
	p := dialPOP(t, addr)
	if g := p.line(); g != "+OK fake POP3 ready" {
		t.Fatalf("greeting %q", g)
	}
	p.quit()
	waitFor(t, &s, event.SessionEnd)
	e := tlsLeg(s.events(), event.Server)
	if e == nil || e.Error != "" || e.TLS.Verified || !strings.HasPrefix(e.TLS.VerifyError, "skipped") || e.TLS.PeerSubject == "" {
		t.Errorf("server leg tls event %v, want success, verified=false, verify_error \"skipped...\" and the peer subject", e)
	}
}

// ---- passthrough ----

// --tls-passthrough: popscope relays the STLS exchange and the TLS
// session that follows byte for byte (the client and the upstream
// handshake with each other), and the session is opaque after STLS.
func TestTLSPassthrough(t *testing.T) {
	env := newTLSEnv(t)
	f := startFakePOP(t, &fakePOP{tls: env.upSide, offerSTLS: true})
	var s sink
	addr, _ := startTLSProxy(t, f.addr(), &TLSConfig{Passthrough: true}, s.publish)
	p := dialPOP(t, addr)
	p.line()
	if _, caps := p.multi("CAPA"); !hasCap(caps, "STLS") {
		t.Errorf("CAPA %v lacks the upstream's STLS", caps)
	}
	if st := p.cmd("STLS"); st != "+OK Begin TLS negotiation now" {
		t.Fatalf("STLS answered %q, want the upstream's reply", st)
	}
	// The client talks TLS with the upstream itself and trusts only the
	// upstream's CA: popscope's certificate would fail here.
	if err := p.startTLS(&tls.Config{RootCAs: env.upPool, ServerName: "localhost"}); err != nil {
		t.Fatalf("end-to-end handshake through passthrough: %v", err)
	}
	if st, body := p.multi("RETR 1"); !strings.HasPrefix(st, "+OK") || len(body) != 5 {
		t.Errorf("RETR inside passthrough TLS: %q %q", st, body)
	}
	if st := p.cmd("QUIT"); st != "+OK bye" {
		t.Errorf("QUIT: %q", st)
	}
	io.Copy(io.Discard, p.br) // up to the upstream's close_notify and FIN
	p.raw.Conn.Close()
	waitFor(t, &s, event.SessionEnd)
	evs := s.events()

	f.mu.Lock()
	srv := f.raw[0]
	f.mu.Unlock()
	// Byte for byte in both directions.
	if c2s, got := p.raw.bytesOut(), srv.bytesIn(); !bytes.Equal(c2s, got) {
		t.Errorf("client sent %d octets, upstream received %d; not identical", len(c2s), len(got))
	}
	if s2c, got := srv.bytesOut(), p.raw.bytesIn(); !bytes.Equal(s2c, got) {
		t.Errorf("upstream sent %d octets, client received %d; not identical", len(s2c), len(got))
	}
	if cmds := f.commands(); strings.Join(cmds, ",") != "CAPA,STLS,tls RETR 1,tls QUIT" {
		t.Errorf("upstream commands %q", cmds)
	}
	var opaque bool
	for _, e := range evs {
		switch e.Type {
		case event.Opaque:
			opaque = true
		case event.Command:
			if e.Verb == "RETR" || e.Verb == "QUIT" {
				t.Errorf("passthrough decoded a command sent inside TLS: %+v", e)
			}
		case event.TLS:
			if e.TLS.Mode != "passthrough" {
				t.Errorf("passthrough session has a tls event with mode %q", e.TLS.Mode)
			}
		case event.Note:
			if strings.Contains(e.Detail, "CAPA adjusted") || strings.Contains(e.Detail, "answered STLS") {
				t.Errorf("passthrough altered traffic: %s", e.Detail)
			}
		}
	}
	if !opaque {
		t.Errorf("no opaque event in a passthrough session\n%s", dump(evs))
	}
	noTLSInjection(t, evs)
	noErrorViolations(t, evs)
}

// TLS 1.0 upstream: reported as well.
func TestTLS008TLS10(t *testing.T) {
	env := newTLSEnv(t)
	f := startFakePOP(t, &fakePOP{tls: env.upSide, implicit: true, maxVersion: tls.VersionTLS10})
	var s sink
	cfg := env.proxyTLS("implicit")
	cfg.Upstream.MinVersion = tls.VersionTLS10
	addr, _ := startTLSProxy(t, f.addr(), cfg, s.publish)
	p := dialPOP(t, addr)
	p.line()
	p.quit()
	waitFor(t, &s, event.SessionEnd)
	evs := s.events()
	e := tlsLeg(evs, event.Server)
	if e == nil || e.TLS.Version != "TLS 1.0" {
		t.Fatalf("server leg %v, want TLS 1.0", e)
	}
	if rulesOf(evs)["POP3-TLS-008"] != 1 {
		t.Errorf("TLS-008 not reported for TLS 1.0")
	}
}

// --upstream-tls stls against an upstream that refuses STLS: the client,
// which already has the greeting, is told with a -ERR before the close.
func TestTLSUpstreamRefusesRequiredSTLS(t *testing.T) {
	env := newTLSEnv(t)
	f := startFakePOP(t, &fakePOP{tls: env.upSide}) // no STLS
	var s sink
	addr, _ := startTLSProxy(t, f.addr(), env.proxyTLS("stls"), s.publish)
	p := dialPOP(t, addr)
	if g := p.line(); g != "+OK fake POP3 ready" {
		t.Fatalf("greeting %q", g)
	}
	p.send("CAPA\r\n")
	l, _ := p.br.ReadString('\n')
	if !strings.HasPrefix(l, "-ERR [SYS/TEMP]") || !strings.Contains(l, "refused STLS") {
		t.Errorf("client got %q after the greeting, want -ERR [SYS/TEMP] ... refused STLS", l)
	}
	end := waitFor(t, &s, event.SessionEnd)
	if notesWith(s.events(), "upstream refused STLS") != 1 {
		t.Errorf("no note about the refusal\n%s", dump(s.events()))
	}
	if !strings.Contains(end.Reason, "refused STLS") {
		t.Errorf("session_end reason %q", end.Reason)
	}
	for _, c := range f.commands() {
		if c != "STLS" {
			t.Errorf("upstream got %q after refusing STLS", c)
		}
	}
}
