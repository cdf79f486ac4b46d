package replay

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/popscope/popscope/decode/wire"
)

// TLS modes of the replay client's connection.
const (
	TLSAuto     = "auto"     // do STLS where the recording did
	TLSPlain    = "plain"    // never TLS; recorded STLS commands are skipped
	TLSSTLS     = "stls"     // STLS right after the greeting (or where recorded)
	TLSImplicit = "implicit" // TLS from the first byte; recorded STLS commands are skipped
)

// ClientOptions configure RunClient.
type ClientOptions struct {
	// Upstream is the server to replay against, host:port.
	Upstream string
	// User and Pass fill credentials the recording does not hold
	// (redacted) or cannot reuse (APOP and CRAM-MD5 answer a fresh
	// challenge). User defaults to the recording's.
	User, Pass string
	// TLSMode is one of TLSAuto (default), TLSPlain, TLSSTLS, TLSImplicit.
	TLSMode string
	// TLS configures the upstream TLS client (ServerName, RootCAs).
	// Needed when TLS is used.
	TLS *tls.Config
	// Timeout bounds the dial and each read and write (default 60s).
	Timeout time.Duration
	// Dial replaces net.Dialer (tests).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Result is the outcome of a client replay.
type Result struct {
	Upstream string
	// Sent counts the recorded commands sent; Compared the replies
	// compared (the greeting included).
	Sent, Compared int
	Diffs          []Diff
	// Notes say where the replay did something other than the recording
	// (skipped commands, computed credentials).
	Notes []string
}

// Diff is what differs in one reply.
type Diff struct {
	N       int    // recorded command number; 0 is the greeting
	Command string // secrets hidden
	Details []string
}

// Same reports whether no reply differed.
func (r *Result) Same() bool { return len(r.Diffs) == 0 }

// Format writes the readable report.
func (r *Result) Format(w io.Writer) {
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	for _, d := range r.Diffs {
		name := "greeting"
		if d.N > 0 {
			name = fmt.Sprintf("#%d %s", d.N, d.Command)
		}
		if len(d.Details) == 1 {
			fmt.Fprintf(w, "%s: %s\n", name, d.Details[0])
			continue
		}
		fmt.Fprintf(w, "%s:\n", name)
		for _, s := range d.Details {
			fmt.Fprintf(w, "    %s\n", s)
		}
	}
	if r.Same() {
		fmt.Fprintf(w, "no differences: %d replies compared, %d commands sent to %s\n", r.Compared, r.Sent, r.Upstream)
	} else {
		fmt.Fprintf(w, "%d of %d replies differ (%d commands sent to %s)\n", len(r.Diffs), r.Compared, r.Sent, r.Upstream)
	}
}

// UnusableError says the replay could not be run (bad input, no
// connection): exit status 2 in the command.
type UnusableError struct{ Err error }

func (e *UnusableError) Error() string { return e.Err.Error() }
func (e *UnusableError) Unwrap() error { return e.Err }

func unusable(format string, a ...any) error {
	return &UnusableError{Err: fmt.Errorf(format, a...)}
}

// clientRun is the state of one replay.
type clientRun struct {
	conv  *Conversation
	opt   ClientOptions
	user  string
	raw   net.Conn
	conn  net.Conn
	r     *bufio.Reader
	w     *bufio.Writer
	ts    string // live APOP timestamp
	res   *Result
	pairs []pair
	dead  error // the connection failed after the greeting
	// fatal: the session could not be set up (a TLS handshake after
	// STLS failed): the replay is unusable, not a difference.
	fatal error
}

type pair struct {
	x    *Exchange
	live *Reply
}

// RunClient re-sends the recorded client commands to opt.Upstream,
// honouring the recorded pipelining (a command is sent once as many
// replies have arrived as had when it was recorded), and compares the
// replies semantically. It returns an *UnusableError when the recording
// cannot be replayed or the server cannot be reached; differences,
// including a connection the server drops halfway, are in the Result.
func RunClient(ctx context.Context, conv *Conversation, opt ClientOptions) (*Result, error) {
	if opt.Timeout <= 0 {
		opt.Timeout = 60 * time.Second
	}
	if opt.TLSMode == "" {
		opt.TLSMode = TLSAuto
	}
	switch opt.TLSMode {
	case TLSAuto, TLSPlain, TLSSTLS, TLSImplicit:
	default:
		return nil, unusable("replay: TLS mode %q: want auto, plain, stls or implicit", opt.TLSMode)
	}
	c := &clientRun{conv: conv, opt: opt, user: opt.User, res: &Result{Upstream: opt.Upstream}}
	if c.user == "" {
		c.user = conv.User
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	if err := c.connect(ctx); err != nil {
		return nil, err
	}
	defer c.raw.Close()
	stop := context.AfterFunc(ctx, func() { c.raw.Close() })
	defer stop()
	c.run()
	if c.fatal != nil {
		return nil, &UnusableError{Err: c.fatal}
	}
	c.compare()
	return c.res, nil
}

// check finds out before connecting whether the recording can be
// replayed with the credentials given.
func (c *clientRun) check() error {
	if c.conv.Opaque && len(c.conv.Exchanges) == 0 {
		return unusable("replay: the recording holds no decodable exchange")
	}
	needPass := func(why string) error {
		if c.opt.Pass == "" {
			return unusable("replay: %s: give --pass (and --user if the recording does not show the user)", why)
		}
		if c.user == "" {
			return unusable("replay: %s: the recording does not show the user name: give --user", why)
		}
		return nil
	}
	for _, x := range c.conv.Exchanges {
		switch x.Verb() {
		case "PASS":
			if x.Redacted {
				if err := needPass("the PASS argument is redacted"); err != nil {
					return err
				}
			}
		case "APOP":
			if err := needPass("APOP answers the server's fresh timestamp"); err != nil {
				return err
			}
		case "AUTH":
			if !x.SASL() {
				continue
			}
			mech := strings.ToUpper(x.Cmd.Args[0])
			redacted := x.Redacted
			for _, st := range x.Steps {
				redacted = redacted || st.Redacted
			}
			switch mech {
			case "CRAM-MD5":
				if err := needPass("CRAM-MD5 answers the server's fresh challenge"); err != nil {
					return err
				}
			case "PLAIN", "LOGIN":
				if redacted {
					if err := needPass("the AUTH " + mech + " credentials are redacted"); err != nil {
						return err
					}
				}
			default:
				if redacted {
					return unusable("replay: AUTH %s: redacted, and popscope cannot compute this mechanism's responses: record with --record-secrets", mech)
				}
			}
		}
	}
	return nil
}

func (c *clientRun) connect(ctx context.Context) error {
	dial := c.opt.Dial
	if dial == nil {
		d := &net.Dialer{Timeout: c.opt.Timeout}
		dial = d.DialContext
	}
	dctx, cancel := context.WithTimeout(ctx, c.opt.Timeout)
	defer cancel()
	conn, err := dial(dctx, "tcp", c.opt.Upstream)
	if err != nil {
		return unusable("replay: %v", err)
	}
	c.raw, c.conn = conn, conn
	if c.opt.TLSMode == TLSImplicit {
		if err := c.handshake(); err != nil {
			conn.Close()
			return unusable("replay: TLS handshake with %s: %v", c.opt.Upstream, err)
		}
	} else {
		c.setIO()
	}
	_ = c.raw.SetDeadline(time.Now().Add(c.opt.Timeout))
	line, err := readLine(c.r, maxStatusLine)
	if err != nil {
		conn.Close()
		return unusable("replay: no greeting from %s: %v", c.opt.Upstream, err)
	}
	c.ts = greetingTimestamp(line)
	rec, live := &Reply{}, &Reply{}
	statusOf(live, line)
	if c.conv.Greeting != nil {
		statusOf(rec, c.conv.Greeting)
		c.res.Compared++
		if rec.Status != live.Status || rec.Code != live.Code {
			c.res.Diffs = append(c.res.Diffs, Diff{N: 0, Details: compareReply("", nil, rec, live, &uidMaps{})})
		}
	}
	if c.opt.TLSMode == TLSSTLS && !c.hasSTLS() {
		if err := c.startTLS(); err != nil {
			conn.Close()
			return unusable("replay: STLS with %s: %v", c.opt.Upstream, err)
		}
		c.res.Notes = append(c.res.Notes, "STLS sent after the greeting (--upstream-tls stls); the recording had none")
	}
	return nil
}

func (c *clientRun) hasSTLS() bool {
	for _, x := range c.conv.Exchanges {
		if x.Verb() == "STLS" {
			return true
		}
	}
	return false
}

func (c *clientRun) setIO() {
	c.r = bufio.NewReaderSize(c.conn, 64<<10)
	c.w = bufio.NewWriterSize(c.conn, 16<<10)
}

func (c *clientRun) handshake() error {
	if c.opt.TLS == nil {
		return errors.New("no TLS configuration")
	}
	tc := tls.Client(c.raw, c.opt.TLS)
	_ = c.raw.SetDeadline(time.Now().Add(c.opt.Timeout))
	if err := tc.Handshake(); err != nil {
		return err
	}
	c.conn = tc
	c.setIO()
	return nil
}

// startTLS sends STLS (not a recorded command) and upgrades.
func (c *clientRun) startTLS() error {
	if _, err := c.w.WriteString("STLS\r\n"); err != nil {
		return err
	}
	if err := c.w.Flush(); err != nil {
		return err
	}
	line, err := readLine(c.r, maxStatusLine)
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(line, []byte("+OK")) {
		return fmt.Errorf("refused: %s", shorten(trimEOL(line)))
	}
	return c.handshake()
}

func (c *clientRun) skip(x *Exchange) bool {
	return x.Verb() == "STLS" && (c.opt.TLSMode == TLSPlain || c.opt.TLSMode == TLSImplicit)
}

// run sends the commands and reads the replies.
func (c *clientRun) run() {
	var queue []*Exchange // sent, reply not read yet
	answered := 0         // all exchanges with N <= answered have their reply (or were skipped)
	readHead := func() bool {
		x := queue[0]
		queue = queue[1:]
		c.pairs = append(c.pairs, pair{x: x, live: c.readReply(x)})
		answered = x.N
		return c.dead == nil
	}
	drain := func(upTo int) bool {
		if len(queue) > 0 && c.flush() != nil {
			return false
		}
		for len(queue) > 0 && queue[0].N <= upTo {
			if !readHead() {
				return false
			}
		}
		return true
	}
	for _, x := range c.conv.Exchanges {
		if c.dead != nil {
			c.pairs = append(c.pairs, pair{x: x, live: &Reply{}})
			continue
		}
		if c.skip(x) {
			c.res.Notes = append(c.res.Notes, fmt.Sprintf("#%d STLS not sent (--upstream-tls %s)", x.N, c.opt.TLSMode))
			if !drain(x.N) {
				continue
			}
			answered = x.N
			continue
		}
		barrier := x.SASL() || x.Verb() == "STLS"
		upTo := x.DoneBefore
		if barrier {
			upTo = x.N - 1
		}
		if answered < upTo && !drain(upTo) {
			c.pairs = append(c.pairs, pair{x: x, live: &Reply{}})
			continue
		}
		c.res.Sent++
		if x.SASL() {
			c.pairs = append(c.pairs, pair{x: x, live: c.sasl(x)})
			answered = x.N
			continue
		}
		if _, err := c.w.Write(c.fill(x)); err != nil {
			c.fail(err)
			c.pairs = append(c.pairs, pair{x: x, live: &Reply{}})
			continue
		}
		queue = append(queue, x)
		if x.Verb() == "STLS" {
			if !drain(x.N) {
				continue
			}
			if live := c.pairs[len(c.pairs)-1].live; live.Status == "+OK" {
				if err := c.handshake(); err != nil {
					c.fatal = fmt.Errorf("replay: TLS handshake with %s after STLS: %w", c.opt.Upstream, err)
					c.fail(c.fatal)
					return
				}
			}
		}
	}
	drain(1 << 30)
}

func (c *clientRun) flush() error {
	_ = c.raw.SetWriteDeadline(time.Now().Add(c.opt.Timeout))
	if err := c.w.Flush(); err != nil {
		c.fail(err)
		return err
	}
	return nil
}

func (c *clientRun) fail(err error) {
	if c.dead == nil {
		c.dead = err
		c.res.Notes = append(c.res.Notes, fmt.Sprintf("the connection failed: %v; later commands were not sent", err))
	}
}

// readReply reads the final reply to x.
func (c *clientRun) readReply(x *Exchange) *Reply {
	rep := &Reply{}
	_ = c.raw.SetReadDeadline(time.Now().Add(c.opt.Timeout))
	line, err := readLine(c.r, maxStatusLine)
	if err != nil {
		c.fail(err)
		return rep
	}
	st := statusOf(rep, line)
	if st.Indicator == wire.OK && x.Multi() {
		// The deadline is renewed while a large body streams in.
		renew := func() { _ = c.raw.SetReadDeadline(time.Now().Add(c.opt.Timeout)) }
		if err := readBody(c.r, x.Cmd, rep, renew); err != nil {
			c.fail(err)
		}
	}
	return rep
}

func eolOf(line []byte) string {
	if bytes.HasSuffix(line, []byte("\r\n")) {
		return "\r\n"
	}
	if bytes.HasSuffix(line, []byte("\n")) {
		return "\n"
	}
	return "\r\n"
}

// fill returns the line to send for x, with credentials filled in.
func (c *clientRun) fill(x *Exchange) []byte {
	eol := eolOf(x.Line)
	switch x.Verb() {
	case "USER":
		if c.opt.User != "" {
			return []byte("USER " + c.opt.User + eol)
		}
	case "PASS":
		if x.Redacted || c.opt.Pass != "" {
			return []byte("PASS " + c.opt.Pass + eol)
		}
	case "APOP":
		if c.ts == "" {
			c.res.Notes = append(c.res.Notes, fmt.Sprintf("#%d APOP: the live greeting has no timestamp; sent as recorded", x.N))
			return x.Line
		}
		return []byte("APOP " + c.user + " " + apopDigest(c.ts, c.opt.Pass) + eol)
	}
	return x.Line
}

// sasl runs an AUTH exchange, answering each live challenge.
func (c *clientRun) sasl(x *Exchange) *Reply {
	mech := strings.ToUpper(x.Cmd.Args[0])
	line := x.Line
	computed := c.opt.Pass != "" && (mech == "PLAIN" || mech == "LOGIN" || mech == "CRAM-MD5")
	if len(x.Cmd.Args) >= 2 && x.Cmd.Args[1] != "=" && (x.Redacted || computed) && mech == "PLAIN" {
		line = []byte("AUTH " + x.Cmd.Args[0] + " " + plainResponse(c.user, c.opt.Pass) + eolOf(x.Line))
	}
	if _, err := c.w.Write(line); err != nil || c.flush() != nil {
		c.fail(err)
		return &Reply{}
	}
	step := 0
	for i := 0; i < 64; i++ {
		_ = c.raw.SetReadDeadline(time.Now().Add(c.opt.Timeout))
		l, err := readLine(c.r, maxStatusLine)
		if err != nil {
			c.fail(err)
			return &Reply{}
		}
		rep := &Reply{}
		st := statusOf(rep, l)
		if st.Indicator != wire.Continuation {
			return rep
		}
		var resp string
		var recorded *SASLStep
		if step < len(x.Steps) {
			recorded = &x.Steps[step]
		}
		switch {
		case computed && mech == "PLAIN":
			resp = plainResponse(c.user, c.opt.Pass)
		case computed && mech == "LOGIN":
			prompt := strings.ToLower(string(challengeText(l)))
			switch {
			case strings.Contains(prompt, "user"):
				resp = b64(c.user)
			case strings.Contains(prompt, "pass"):
				resp = b64(c.opt.Pass)
			case step == 0:
				resp = b64(c.user)
			default:
				resp = b64(c.opt.Pass)
			}
		case computed && mech == "CRAM-MD5":
			resp = b64(cramResponse(c.user, c.opt.Pass, challengeText(l)))
		case recorded != nil && recorded.Response != nil && !recorded.Redacted:
			resp = string(trimEOL(recorded.Response))
		default:
			resp = "*"
			c.res.Notes = append(c.res.Notes, fmt.Sprintf("#%d AUTH %s: no answer for challenge %d; cancelled with *", x.N, mech, step+1))
		}
		step++
		if _, err := c.w.WriteString(resp + "\r\n"); err != nil || c.flush() != nil {
			c.fail(err)
			return &Reply{}
		}
	}
	c.fail(errors.New("more than 64 SASL challenges"))
	return &Reply{}
}

// compare turns the reply pairs into diffs, with the unique-ids both
// sessions showed (so a renumbered message is recognised).
func (c *clientRun) compare() {
	u := &uidMaps{rec: map[int]string{}, live: map[int]string{}}
	recs := make([]*Reply, len(c.pairs))
	for i, p := range c.pairs {
		recs[i] = summarize(p.x)
		u.learn(u.rec, p.x.Verb(), p.x.Cmd.Args, recs[i])
		u.learn(u.live, p.x.Verb(), p.x.Cmd.Args, p.live)
	}
	for i, p := range c.pairs {
		c.res.Compared++
		if d := compareReply(p.x.Verb(), p.x.Cmd.Args, recs[i], p.live, u); len(d) > 0 {
			c.res.Diffs = append(c.res.Diffs, Diff{N: p.x.N, Command: p.x.String(), Details: d})
		}
	}
}
