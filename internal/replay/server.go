package replay

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/popscope/popscope/internal/netutil"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/popscope/popscope/decode"
	"github.com/popscope/popscope/decode/wire"
	"github.com/popscope/popscope/event"
	"github.com/popscope/popscope/internal/certs"
)

// Limits of the replay server.
const (
	// DefaultIdleTimeout closes a connection whose client sends nothing.
	DefaultIdleTimeout = 10 * time.Minute
	// maxCommandLine bounds a client line (commands and SASL responses).
	maxCommandLine = 8 << 10
	// drainTimeout/drainMax bound the read after QUIT before closing, so
	// that unread input does not turn the close into a reset.
	drainTimeout = 2 * time.Second
	drainMax     = 1 << 20
)

// ServerOptions configure a replay Server.
type ServerOptions struct {
	// User and Pass, if set, are the credentials a client must present;
	// otherwise a redacted recording accepts any credentials and an
	// unredacted one the recorded ones.
	User, Pass string
	// TLS is the server configuration for STLS (and ImplicitTLS);
	// without it a client's STLS is refused with -ERR (and reported).
	TLS *tls.Config
	// ImplicitTLS starts every connection with a TLS handshake (port 995
	// style), as a recording of an implicit-TLS client leg did.
	ImplicitTLS bool
	// Publish, if set, receives the events of every live session (the
	// decoder runs on the live bytes) and a note per divergence. It is
	// called from the connections' goroutines concurrently.
	Publish func(*event.Event)
	// Logf, if set, receives one line per divergence.
	Logf func(format string, args ...any)
	// IdleTimeout (default DefaultIdleTimeout).
	IdleTimeout time.Duration
}

// Divergence is one place where a live client did something other than
// the recorded client.
type Divergence struct {
	Conn    int    // connection number, from 1
	Live    int    // live command number, from 1 (0: about the session)
	Command string // the live command, secrets hidden
	Detail  string
}

func (d Divergence) String() string {
	if d.Live == 0 {
		return fmt.Sprintf("connection %d: %s", d.Conn, d.Detail)
	}
	return fmt.Sprintf("connection %d, command %d (%s): %s", d.Conn, d.Live, d.Command, d.Detail)
}

// Server answers POP3 clients with a recorded server side. Its command
// loop is its own (not internal/pop3server's): it has no maildrop and no
// state machine; every reply comes from the recording.
type Server struct {
	conv  *Conversation
	opt   ServerOptions
	conns atomic.Int64

	mu   sync.Mutex
	divs []Divergence
}

// NewServer returns a Server for conv. It does no I/O.
func NewServer(conv *Conversation, opt ServerOptions) *Server {
	if opt.IdleTimeout <= 0 {
		opt.IdleTimeout = DefaultIdleTimeout
	}
	return &Server{conv: conv, opt: opt}
}

// Divergences returns every divergence so far.
func (s *Server) Divergences() []Divergence {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Divergence(nil), s.divs...)
}

// Connections returns the number of connections served so far.
func (s *Server) Connections() int64 { return s.conns.Load() }

// Serve accepts connections on ln until ctx ends or ln fails, serving
// each in its own goroutine; it closes ln and waits for the connections.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel() // closes the sessions still open
		wg.Wait()
	}()
	return netutil.AcceptLoop(ctx, ln, "replay", nil,
		func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() },
		func(c net.Conn) { s.ServeConn(ctx, c) })
}

// ServeConn serves one connection and returns when it is over; it closes
// c.
func (s *Server) ServeConn(ctx context.Context, c net.Conn) {
	n := int(s.conns.Add(1))
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	defer c.Close()
	sc := &sconn{s: s, n: n, raw: c, used: make([]int, len(s.conv.Exchanges))}
	publish := s.opt.Publish
	if publish == nil {
		publish = func(*event.Event) {}
	}
	implicit := s.opt.ImplicitTLS && s.opt.TLS != nil
	sc.dec = decode.New(decode.Options{Session: fmt.Sprintf("replay-%d", n), TerminateTLS: true, ClientTLS: implicit}, publish)
	now := time.Now()
	sc.dec.Publish(&event.Event{Type: event.SessionStart, Time: now, Client: c.RemoteAddr().String(), Listener: c.LocalAddr().String(),
		Upstream: "recording " + s.conv.Header.Session})
	var reason string
	if implicit {
		tc := tls.Server(c, s.opt.TLS)
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		if err := tc.Handshake(); err != nil {
			sc.diverge("", "implicit TLS handshake failed: %v", err)
			reason = "TLS handshake failed"
		} else {
			_ = c.SetDeadline(time.Time{})
			sc.dec.StartTLS(time.Now(), certs.Describe(tc.ConnectionState(), event.Client, "implicit", nil))
			sc.setConn(tc)
		}
	} else {
		sc.setConn(c)
	}
	if reason == "" {
		reason = sc.serve()
	}
	sc.report()
	end := time.Now()
	sc.dec.Close(event.Client, end)
	sc.dec.Close(event.Server, end)
	sc.dec.Finish(end)
	sc.dec.Publish(&event.Event{Type: event.SessionEnd, Time: end, Reason: reason, DurationMS: event.Millis(end.Sub(now))})
}

// sconn is one live connection.
type sconn struct {
	s    *Server
	n    int
	raw  net.Conn
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	dec  *decode.Session

	used     []int // replies used per exchange
	next     int   // index after the last exchange matched in order
	live     int   // live commands so far
	lastUser string
	quit     bool
}

// tap feeds the decoder what crosses the connection.
type tap struct {
	net.Conn
	sc *sconn
}

func (t tap) Read(p []byte) (int, error) {
	_ = t.sc.raw.SetReadDeadline(time.Now().Add(t.sc.s.opt.IdleTimeout))
	n, err := t.Conn.Read(p)
	if n > 0 {
		t.sc.dec.Feed(event.Client, time.Now(), p[:n])
	}
	return n, err
}

func (t tap) Write(p []byte) (int, error) {
	t.sc.dec.Feed(event.Server, time.Now(), p)
	_ = t.sc.raw.SetWriteDeadline(time.Now().Add(t.sc.s.opt.IdleTimeout))
	return t.Conn.Write(p)
}

func (sc *sconn) setConn(c net.Conn) {
	sc.conn = c
	t := tap{Conn: c, sc: sc}
	sc.r = bufio.NewReaderSize(t, maxCommandLine)
	sc.w = bufio.NewWriterSize(t, 64<<10)
}

func (sc *sconn) diverge(cmd, format string, a ...any) {
	d := Divergence{Conn: sc.n, Live: sc.live, Command: cmd, Detail: fmt.Sprintf(format, a...)}
	sc.s.mu.Lock()
	sc.s.divs = append(sc.s.divs, d)
	sc.s.mu.Unlock()
	if sc.s.opt.Logf != nil {
		sc.s.opt.Logf("replay: %s", d)
	}
	sc.dec.Publish(&event.Event{Type: event.Note, Time: time.Now(), Detail: "replay divergence: " + d.String()})
}

// serve runs the command loop and returns why it ended.
func (sc *sconn) serve() string {
	g := sc.s.conv.Greeting
	if g == nil {
		g = []byte("+OK popscope replay (the recording has no greeting)\r\n")
	}
	sc.w.Write(g)
	if sc.flush() != nil {
		return "client gone"
	}
	for !sc.quit {
		line, err := readLine(sc.r, maxCommandLine)
		if err != nil {
			if errors.Is(err, errLineTooLong) {
				sc.w.WriteString("-ERR line too long\r\n")
				sc.closeGracefully()
				return "line too long"
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return "client closed"
			}
			return "client reset"
		}
		sc.live++
		if !sc.handle(line) {
			sc.flush()
			return "recording ends here"
		}
		if !sc.quit && !sc.buffered() {
			if sc.flush() != nil {
				return "client gone"
			}
		}
	}
	sc.closeGracefully()
	return "client quit"
}

func (sc *sconn) buffered() bool {
	n := sc.r.Buffered()
	if n == 0 {
		return false
	}
	b, _ := sc.r.Peek(n)
	return bytes.IndexByte(b, '\n') >= 0
}

func (sc *sconn) flush() error { return sc.w.Flush() }

func (sc *sconn) closeGracefully() {
	if sc.w.Flush() != nil {
		return
	}
	if tc, ok := sc.conn.(*tls.Conn); ok {
		_ = tc.CloseWrite()
	}
	cw, ok := sc.raw.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	_ = sc.raw.SetReadDeadline(time.Now().Add(drainTimeout))
	_, _ = io.CopyN(io.Discard, sc.raw, drainMax)
}

// report lists the recorded commands the client never sent.
func (sc *sconn) report() {
	var missing []string
	for i, u := range sc.used {
		if u == 0 {
			missing = append(missing, fmt.Sprintf("#%d %s", i+1, sc.s.conv.Exchanges[i]))
		}
	}
	if len(missing) > 0 {
		sc.live = 0
		if len(missing) > 10 {
			missing = append(missing[:10], fmt.Sprintf("and %d more", len(missing)-10))
		}
		sc.diverge("", "recorded commands never sent: %s", strings.Join(missing, ", "))
	}
}

// match finds the recorded exchange that answers cmd: the first unused
// one with the same keyword and arguments after the last match, then an
// unused one before it, then (for credentials) one with the same keyword
// whatever the arguments, and finally a reply already used (the command
// was sent again). detail explains any departure from the recorded
// order; x is nil when the recording has no such command.
func (sc *sconn) match(cmd wire.Command) (x *Exchange, detail string) {
	ex := sc.s.conv.Exchanges
	find := func(key func(wire.Command) string, want string, used bool) int {
		if want == "" {
			return -1
		}
		for _, r := range [][2]int{{sc.next, len(ex)}, {0, sc.next}} {
			for i := r[0]; i < r[1]; i++ {
				if (sc.used[i] > 0) == used && key(ex[i].Cmd) == want {
					return i
				}
			}
		}
		return -1
	}
	i := find(exactKey, exactKey(cmd), false)
	loose := false
	if i < 0 {
		if i = find(looseKey, looseKey(cmd), false); i >= 0 {
			loose = true
		}
	}
	reused := false
	if i < 0 {
		for j := len(ex) - 1; j >= 0; j-- {
			if sc.used[j] > 0 && (exactKey(ex[j].Cmd) == exactKey(cmd) || (looseKey(cmd) != "" && looseKey(ex[j].Cmd) == looseKey(cmd))) {
				i, reused = j, true
				break
			}
		}
	}
	if i < 0 {
		return nil, ""
	}
	x = ex[i]
	var notes []string
	switch {
	case reused:
		notes = append(notes, fmt.Sprintf("sent again: answered with the reply recorded for #%d", x.N))
	case i > sc.next:
		notes = append(notes, fmt.Sprintf("out of order: recorded as #%d; #%d to #%d not sent before it", x.N, sc.next+1, x.N-1))
	case i < sc.next:
		notes = append(notes, fmt.Sprintf("out of order: recorded as #%d, before commands already sent", x.N))
	}
	if loose && cmd.Keyword != "PASS" && cmd.Keyword != "RPOP" && cmd.Keyword != "APOP" {
		notes = append(notes, fmt.Sprintf("arguments differ from the recording (%s)", x))
	}
	sc.used[i]++
	if i >= sc.next {
		sc.next = i + 1
	}
	return x, strings.Join(notes, "; ")
}

func hideSecret(cmd wire.Command) string {
	x := &Exchange{Cmd: cmd}
	return x.String()
}

// handle answers one command line; false ends the connection (the
// recording has no reply there).
func (sc *sconn) handle(line []byte) bool {
	cmd := wire.ParseCommand(trimEOL(line))
	shown := hideSecret(cmd)
	x, detail := sc.match(cmd)
	if x == nil {
		sc.diverge(shown, "not in the recording: answered -ERR")
		fmt.Fprintf(sc.w, "-ERR popscope replay: %s is not in the recording\r\n", cmd.Keyword)
		return true
	}
	if detail != "" {
		sc.diverge(shown, "%s", detail)
	}
	if x.Reply == nil && !x.SASL() {
		sc.diverge(shown, "the recording has no reply to #%d (it ends there): closing", x.N)
		return false
	}
	redacted := sc.s.conv.Header.Redacted
	switch cmd.Keyword {
	case "USER":
		if len(cmd.Args) > 0 {
			sc.lastUser = cmd.Args[0]
		}
	case "PASS":
		ok := true
		switch {
		case sc.s.opt.Pass != "":
			ok = equalString(cmd.Rest, sc.s.opt.Pass) && (sc.s.opt.User == "" || sc.lastUser == sc.s.opt.User)
		case !redacted:
			ok = sameLine(line, x.Line)
		}
		if !ok && x.Status.Indicator == wire.OK {
			sc.diverge(shown, "credentials differ from the expected ones: answered -ERR")
			sc.w.WriteString("-ERR [AUTH] popscope replay: invalid credentials\r\n")
			return true
		}
	case "APOP":
		ok := true
		switch {
		case sc.s.opt.Pass != "":
			ts := greetingTimestamp(sc.s.conv.Greeting)
			ok = len(cmd.Args) >= 2 && equalString(cmd.Args[1], apopDigest(ts, sc.s.opt.Pass)) &&
				(sc.s.opt.User == "" || cmd.Args[0] == sc.s.opt.User)
		case !redacted:
			ok = sameLine(line, x.Line)
		}
		if !ok && x.Status.Indicator == wire.OK {
			sc.diverge(shown, "credentials differ from the expected ones: answered -ERR")
			sc.w.WriteString("-ERR [AUTH] popscope replay: invalid credentials\r\n")
			return true
		}
	case "AUTH":
		if x.SASL() {
			return sc.sasl(x, cmd, line, shown)
		}
	case "STLS":
		if x.Status.Indicator == wire.OK {
			if sc.s.opt.TLS == nil {
				sc.diverge(shown, "STLS: no certificate to offer TLS with: answered -ERR")
				sc.w.WriteString("-ERR popscope replay: TLS is not available\r\n")
				return true
			}
			sc.w.Write(x.Reply)
			if sc.flush() != nil {
				return false
			}
			tc := tls.Server(sc.raw, sc.s.opt.TLS)
			_ = sc.raw.SetDeadline(time.Now().Add(30 * time.Second))
			if err := tc.Handshake(); err != nil {
				sc.diverge(shown, "TLS handshake failed: %v", err)
				return false
			}
			_ = sc.raw.SetDeadline(time.Time{})
			sc.dec.StartTLS(time.Now(), certs.Describe(tc.ConnectionState(), event.Client, "stls", nil))
			sc.setConn(tc)
			return true
		}
	case "QUIT":
		sc.quit = true
	}
	sc.w.Write(x.Reply)
	return true
}

// sasl plays an AUTH exchange: the recorded challenges, whatever the
// client answers, then the recorded final reply (or -ERR if credentials
// were given and do not match).
func (sc *sconn) sasl(x *Exchange, cmd wire.Command, line []byte, shown string) bool {
	mech := strings.ToUpper(cmd.Args[0])
	liveIR := ""
	if len(cmd.Args) >= 2 {
		liveIR = cmd.Args[1]
	}
	recIR := len(x.Cmd.Args) >= 2
	var challenges [][]byte
	var responses []string
	var recResponses []string
	read := func(ch []byte) (string, bool) {
		sc.w.Write(ch)
		if sc.flush() != nil {
			return "", false
		}
		l, err := readLine(sc.r, maxCommandLine)
		if err != nil {
			return "", false
		}
		challenges = append(challenges, ch)
		return string(trimEOL(l)), true
	}
	steps := x.Steps
	if liveIR != "" && !recIR && len(steps) > 0 && len(bytes.TrimSpace(challengeText(steps[0].Challenge))) == 0 {
		steps = steps[1:] // the initial response answered the recorded empty challenge
		liveIR, responses = "", append(responses, liveIR)
	}
	if liveIR == "" && recIR && len(responses) == 0 {
		// The client waits for a challenge the recording does not have.
		r, ok := read([]byte("+ \r\n"))
		if !ok {
			return false
		}
		responses = append(responses, r)
		challenges = challenges[:0]
	}
	for _, st := range steps {
		if st.Response != nil {
			recResponses = append(recResponses, string(trimEOL(st.Response)))
		}
		if st.Challenge == nil {
			continue
		}
		r, ok := read(st.Challenge)
		if !ok {
			return false
		}
		responses = append(responses, r)
		if r == "*" && (st.Response == nil || string(trimEOL(st.Response)) != "*") {
			sc.diverge(shown, "the client cancelled the exchange with *: answered -ERR")
			sc.w.WriteString("-ERR popscope replay: authentication cancelled\r\n")
			return true
		}
	}
	if x.Reply == nil {
		sc.diverge(shown, "the recording has no reply to #%d (it ends there): closing", x.N)
		return false
	}
	ok := true
	switch {
	case sc.s.opt.Pass != "":
		var known bool
		user := sc.s.opt.User
		if user == "" {
			user = sc.s.conv.User
		}
		ok, known = checkSASL(mech, liveIR, challenges, responses, user, sc.s.opt.Pass)
		if !known {
			sc.diverge(shown, "AUTH %s: popscope cannot check this mechanism's credentials; accepted", mech)
		}
	case !sc.s.conv.Header.Redacted:
		ok = sameLine(line, x.Line) && strings.Join(responses, "\n") == strings.Join(recResponses, "\n")
	}
	if !ok && x.Status.Indicator == wire.OK {
		sc.diverge(shown, "credentials differ from the expected ones: answered -ERR")
		sc.w.WriteString("-ERR [AUTH] popscope replay: invalid credentials\r\n")
		return true
	}
	sc.w.Write(x.Reply)
	return true
}
