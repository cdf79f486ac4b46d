package decode

import (
	"bytes"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/popscope/popscope/decode/wire"
	"github.com/popscope/popscope/event"
)

// Default limits. MaxLine bounds what the decoder buffers for one command,
// status or SASL line; multi-line bodies are streamed and never buffered.
const (
	DefaultMaxLine = 64 << 10
	// maxTentative bounds client lines held while an AUTH or STLS reply is
	// pending (§3.2); beyond it lines are decoded as commands at once.
	maxTentative      = 64
	maxTentativeBytes = 256 << 10
	// maxReportsPerRule caps identical rule reports in one session; the
	// rest are counted and summarised when the session ends.
	maxReportsPerRule = 20
	// captureMax is the longest structured-body line (CAPA, LIST, UIDL)
	// kept for parsing.
	captureMax = 1024
)

// Redacted replaces secrets in Args.
const Redacted = "<redacted>"

// Options configure a Session. The zero value is valid.
type Options struct {
	// Session is copied into every event.
	Session string
	// RevealSecrets disables redaction of PASS, APOP digests and SASL data.
	RevealSecrets bool
	// MaxLine caps a buffered line (default DefaultMaxLine).
	MaxLine int
	// ClientTLS / ServerTLS say that the respective leg is already inside
	// TLS when the session starts (implicit TLS).
	ClientTLS, ServerTLS bool
	// Store, if set, is the cross-session memory shared by sessions
	// (GREET-003, UIDL-004, SESS-*, EXT-001..003).
	Store *Store
	// Endpoint is the upstream as the proxy dialled it: the first half of
	// the store key.
	Endpoint string
	// TerminateTLS says the proxy terminates STLS itself: after STLS +OK
	// the session stays decoded and the proxy reports each leg's
	// handshake with StartTLS. Without it STLS makes the session opaque.
	TerminateTLS bool
}

// Session decodes one POP3 connection. It is sans-io: the caller feeds it
// the bytes each side sent, with the time they were seen, and it calls
// emit synchronously for every event. It starts no goroutine, reads no
// clock and does no I/O. A Session is not safe for concurrent use; the
// caller serialises Feed/Close calls (the proxy holds a per-session lock,
// which also keeps the session's events in order).
//
// Memory is bounded by Options.MaxLine per direction plus a small
// constant: bodies are scanned as they stream by.
type Session struct {
	opt  Options
	emit func(*event.Event)

	state   State
	greeted bool
	opaque  bool
	seq     uint64

	cli, srv lineBuf
	cliSeen  bool // any client byte seen
	srvSeen  bool

	fifo   []*exchange
	nextID uint64
	body   *bodyState // open multi-line body (head of fifo), nil otherwise

	tentative []tentLine // client lines held behind AUTH/STLS (§3.2)
	tentBytes int
	resync    bool // consuming unannounced data lines (§3.5)
	resyncN   int64

	// Session facts.
	timestamp     string // APOP timestamp from the greeting
	user          string // last USER argument / login identity
	lastDone      *exchange
	quitSent      bool
	quitAnswered  bool
	quitOK        bool
	serverClosed  bool
	clientClosed  bool
	firstClose    event.Side
	postQuitBytes bool
	quitInTrans   bool // QUIT was executed in TRANSACTION

	// Capabilities (capa.go).
	caps         *capSet // last successful CAPA in the current security context
	capaByCtx    map[capCtx]*capSet
	capaEverOK   bool
	capaFailed   bool
	capaNoted    map[string]bool
	capsStaleTLS bool // TLS started and no CAPA since
	stlsListed   bool
	stlsRefused  bool
	auth002      bool
	utf8Mode     bool
	langOK       bool

	clientTLS, serverTLS bool
	tlsWaitC, tlsWaitS   bool // STLS +OK seen; first bytes of the handshake pending
	stlsOK               bool
	now                  time.Time // time of the bytes being decoded
	layerWatch           bool      // a SASL security layer may start (SASL-010)

	server *serverKind // identified implementation (QUIRK-001)
	drop   *maildrop   // per-session maildrop, from TRANSACTION on
	store  *Store

	boxOpen       bool
	listedUIDs    map[string]bool
	retrievedUIDs map[string]bool

	lastClientAt time.Time // last client bytes
	lastReplyAt  time.Time // end of the last complete reply
	greetAt      time.Time // when the greeting arrived
	lastWorkAt   time.Time // last client command other than NOOP
	pipe002      bool
	idle003      bool
	legacyShape  *exchange // +OK to a non-standard command, shape undecided
	greetRefused bool      // the greeting was -ERR: the server refuses service
	unsolicited  *unsolicitedLine

	reports map[string]int // per-rule report counts
	counts  Counts
}

// Counts summarise a session; see Session.Counts.
type Counts struct {
	Commands   int
	Responses  int
	Violations map[event.Severity]int
}

type exchange struct {
	id        uint64
	cmd       wire.Command
	verb      string
	info      commandInfo
	known     bool
	sentAt    time.Time
	offset    int64
	pipelined bool
	// AUTH
	awaiting   bool // a challenge is waiting for the client's answer
	challenges int
	cancelled  bool
	sasl       *saslState
	syntaxBad  bool // SYNTAX-001/005 (error) fired at send time
	lowerKey   bool
	badUTF8    bool
	status     wire.Status
	startedAt  time.Time // when the reply began
	replyOff   int64     // offset of the status line
	illegal    bool      // STATE-001 fired when it reached the head
	noUser     bool      // PASS without an accepted USER
}

type tentLine struct {
	raw []byte
	at  time.Time
	off int64
}

type bodyState struct {
	x     *exchange
	scan  wire.BodyScanner
	start int64 // stream offset of the body's first byte
	// structured-body parsing
	capaLines []capaLine
	capa      bool
	listBad   bool // a malformed listing line: listCount is no message count
	listCount int
	listTotal int64
	seen      map[int]bool
	uidIndex  map[string]int
}

// lineBuf assembles one line at a time with a hard cap.
type lineBuf struct {
	buf       []byte
	start     int64 // stream offset of the line's first byte
	off       int64 // bytes consumed in this direction
	overflow  bool  // current line exceeded the cap; excess discarded
	lastCR    bool  // the bytes so far of the current line end in CR
	dropped   int64 // bytes discarded from the current line
	truncated bool
}

// New returns a Session that reports through emit. It performs no I/O.
func New(opt Options, emit func(*event.Event)) *Session {
	if opt.MaxLine <= 0 {
		opt.MaxLine = DefaultMaxLine
	}
	if emit == nil {
		emit = func(*event.Event) {}
	}
	return &Session{
		opt:       opt,
		emit:      emit,
		state:     GreetingWait,
		reports:   map[string]int{},
		counts:    Counts{Violations: map[event.Severity]int{}},
		capaByCtx: map[capCtx]*capSet{},
		capaNoted: map[string]bool{},
		clientTLS: opt.ClientTLS,
		serverTLS: opt.ServerTLS,
		store:     opt.Store,
	}
}

// State returns the current state.
func (s *Session) State() State { return s.state }

// User returns the login name seen (USER/APOP argument), if any.
func (s *Session) User() string { return s.user }

// Counts returns the number of commands, responses and violations so far.
func (s *Session) Counts() Counts { return s.counts }

// Feed hands the decoder bytes that side sent, seen at time at. p is not
// retained.
func (s *Session) Feed(side event.Side, at time.Time, p []byte) {
	if len(p) == 0 {
		return
	}
	if s.state == Closed || s.state == Aborted {
		return // finished
	}
	s.now = at
	// After STLS +OK (passthrough) the first octets of each side should
	// start a TLS handshake; anything else is an injection hazard.
	if side == event.Client && s.tlsWaitC {
		s.tlsWaitC = false
		if !isTLSRecord(p) && len(s.tentative) == 0 {
			s.violate(at, "POP3-TLS-003", event.Client, s.cli.off, "after STLS +OK the client sent plaintext ("+firstOctet(p)+") instead of a TLS handshake", "")
		}
		s.tlsWaitDone(at)
	}
	if side == event.Server && s.tlsWaitS && s.opaque {
		s.tlsWaitS = false
		if !isTLSRecord(p) {
			s.violate(at, "POP3-TLS-005", event.Server, s.srv.off, "after +OK to STLS the server sent plaintext ("+firstOctet(p)+") instead of a TLS ServerHello (response injection hazard)", "")
		}
	}
	if s.opaque {
		s.account(side, p)
		return
	}
	switch side {
	case event.Client:
		s.feedClient(at, p)
	case event.Server:
		s.feedServer(at, p)
	}
}

func (s *Session) account(side event.Side, p []byte) {
	if side == event.Client {
		s.cli.off += int64(len(p))
	} else {
		s.srv.off += int64(len(p))
	}
}

// ---- client direction ----

func (s *Session) feedClient(at time.Time, p []byte) {
	s.lastClientAt = at
	if s.layerWatch {
		s.layerWatch = false
		if !looksLikeText(p) {
			s.goOpaque(at, event.Client, "POP3-SASL-010", "after AUTH succeeded the client sends non-text bytes: a SASL security layer; decoding stops")
			s.account(event.Client, p)
			return
		}
	}
	if !s.cliSeen {
		// Judge the first two octets, which may arrive one at a time.
		first := append(append([]byte(nil), s.cli.buf...), p...)
		if len(first) >= 2 || first[0] != 0x16 {
			s.cliSeen = true
			if isTLSRecord(first) && !s.clientTLS {
				s.goOpaque(at, event.Client, "POP3-CONN-005", "TLS ClientHello on a plaintext connection: the client expects implicit TLS (port 995?); decoding stops")
				s.account(event.Client, p)
				return
			}
		}
	}
	s.cli.feed(p, s.opt.MaxLine, func(line []byte, start int64, over bool, dropped int64) {
		if over {
			s.violate(at, "POP3-LINE-010", event.Client, start, fmt.Sprintf("client line exceeds %d octets without a line end; %d octets not decoded", s.opt.MaxLine, dropped), "")
		}
		s.clientLine(at, line, start)
	})
}

// feed appends p to the line buffer, calling fn for every complete line
// (with its terminator). Lines longer than max are truncated to max and
// reported once through over.
func (lb *lineBuf) feed(p []byte, limit int, fn func(line []byte, start int64, over bool, dropped int64)) {
	for len(p) > 0 {
		if len(lb.buf) == 0 && !lb.overflow {
			lb.start = lb.off
		}
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i+1]
		}
		p = p[len(chunk):]
		lb.off += int64(len(chunk))
		room := limit - len(lb.buf)
		if room >= len(chunk) {
			lb.buf = append(lb.buf, chunk...)
		} else {
			if room > 0 {
				lb.buf = append(lb.buf, chunk[:room]...)
			}
			lb.dropped += int64(len(chunk) - max(room, 0))
			lb.overflow = true
		}
		lastCR := len(chunk) == 1 && chunk[0] == '\n' && lb.lastCR
		if i < 0 && len(chunk) > 0 {
			lb.lastCR = chunk[len(chunk)-1] == '\r'
		}
		if i >= 0 {
			lb.lastCR = lastCR
			line, over, dropped := lb.buf, lb.overflow, lb.dropped
			if over && (len(line) == 0 || line[len(line)-1] != '\n') {
				// Keep the terminator the original line had.
				if lb.lastCR || (len(chunk) >= 2 && chunk[len(chunk)-2] == '\r') {
					line = append(line, '\r', '\n')
				} else {
					line = append(line, '\n')
				}
			}
			fn(line, lb.start, over, dropped)
			lb.buf = lb.buf[:0]
			if cap(lb.buf) > 4096 {
				lb.buf = nil // do not pin a large buffer after one long line
			}
			lb.overflow, lb.dropped = false, 0
		}
	}
}

func (s *Session) clientLine(at time.Time, raw []byte, off int64) {
	s.clientLineHeld(at, raw, off, false)
}

// clientLineHeld handles one client line; held says it was sent while a
// barrier (AUTH, STLS) was unresolved, which makes it pipelined.
func (s *Session) clientLineHeld(at time.Time, raw []byte, off int64, held bool) {
	if s.opaque {
		return
	}
	// An AUTH exchange waiting for the client's answer takes this line as SASL data.
	if x := s.head(); x != nil && x.verb == "AUTH" && x.awaiting && len(s.tentative) == 0 {
		s.saslLine(at, x, raw, off)
		return
	}
	// Behind an unresolved AUTH or STLS the line is tentative (§3.2).
	if s.barrierPending() && len(s.tentative) < maxTentative && s.tentBytes+len(raw) <= maxTentativeBytes {
		for _, x := range s.fifo {
			if x.verb == "AUTH" && len(x.cmd.Args) > 0 {
				s.violate(at, "POP3-SASL-008", event.Client, off, "client line sent while AUTH "+x.cmd.Args[0]+" is unanswered; the server decides whether it is SASL data or a command", "")
				break
			}
			if x.verb == "STLS" {
				s.violate(at, "POP3-TLS-003", event.Client, off, "client sent data after STLS before the TLS handshake (command injection vector, CVE-2011-0411 class)", "")
				break
			}
		}
		s.tentative = append(s.tentative, tentLine{raw: append([]byte(nil), raw...), at: at, off: off})
		s.tentBytes += len(raw)
		return
	}
	s.command(at, raw, off, held)
}

// barrierPending reports whether an AUTH (with mechanism) or STLS is in the
// FIFO without its final reply.
func (s *Session) barrierPending() bool {
	for _, x := range s.fifo {
		if (x.verb == "AUTH" && len(x.cmd.Args) > 0) || x.verb == "STLS" {
			return true
		}
	}
	return false
}

func (s *Session) command(at time.Time, raw []byte, off int64, held bool) {
	s.flushUnsolicited()
	if s.quitSent && !s.postQuitBytes {
		s.postQuitBytes = true
		s.violate(at, "POP3-STATE-005", event.Client, off, "client sent bytes after QUIT", "")
	}
	line, eol := wire.TrimEOL(raw)
	s.lineChecks(at, event.Client, line, eol, off, false)
	if !s.greeted && s.srv.off == 0 {
		s.violateOnce(at, "POP3-CONN-001", event.Client, off, "client sent a command before the server greeting", "")
	}
	cmd := wire.ParseCommand(line)
	if s.counts.Commands == 0 {
		if why := notPOP3Client(cmd, line); why != "" {
			s.goOpaque(at, event.Client, "POP3-CONN-005", why)
			return
		}
	}
	info, known := commands[cmd.Keyword]
	s.nextID++
	x := &exchange{id: s.nextID, cmd: cmd, verb: safeVerb(cmd.Keyword), info: info, known: known, sentAt: at, offset: off}
	x.pipelined = len(s.fifo) > 0 || held
	if x.verb != "NOOP" {
		s.lastWorkAt = at
	}
	if len(raw) > wire.MaxCommandLine && !(x.verb == "AUTH" && len(cmd.Args) > 1) {
		s.violate(at, "POP3-LINE-004", event.Client, off, fmt.Sprintf("command line is %d octets (limit 255 incl. CRLF)", len(raw)), "")
	}
	if !printableOrTab(line) && !s.utf8Exempt(cmd) {
		s.violate(at, "POP3-LINE-007", event.Client, off, "command line contains an octet outside 0x20-0x7E: "+s.shown(event.Client, line, false), "")
	}
	s.counts.Commands++
	args, redacted := s.redactArgs(cmd)
	s.publish(&event.Event{Type: event.Command, Time: at, By: event.Client, Offset: off, ID: x.id,
		Verb: displayVerb(cmd), Args: args, Redacted: redacted, Pipelined: x.pipelined})
	s.sendChecks(at, x, line, off)
	s.capaForCommand(at, x, off)
	if x.pipelined && s.greeted && !s.caps.has("PIPELINING") {
		d := x.verb + " sent before the previous reply was complete"
		if s.caps == nil {
			d += " (capabilities unknown: no CAPA succeeded)"
		} else {
			d += ", but PIPELINING was not in CAPA"
		}
		s.violate(at, "POP3-PIPE-001", event.Client, off, d, "")
	}
	switch x.verb {
	case "QUIT":
		s.quitSent = true
	case "AUTH":
		if len(cmd.Args) > 0 {
			if len(raw) > wire.MaxCommandLine {
				s.violate(at, "POP3-LINE-004", event.Client, off, fmt.Sprintf("command line is %d octets (limit 255 incl. CRLF)", len(raw)), "")
			}
			s.authSent(at, x, raw, off)
		}
	case "PASS":
		if !s.clientTLS && len(cmd.Rest) > 0 {
			s.cleartextCredentials(at, "PASS", off)
		}
	case "RPOP":
		if !s.clientTLS {
			s.violate(at, "POP3-AUTH-001", event.Client, off, "RPOP sends no secret but authenticates by trusting the client host's privileged source port", "")
		}
	case "STLS":
		if s.clientTLS {
			s.violate(at, "POP3-TLS-002", event.Client, off, "STLS while TLS is already active", "")
		}
	}
	s.fifo = append(s.fifo, x)
}

// utf8Exempt: USER/PASS/APOP arguments may be UTF-8 when the server
// announced "UTF8 USER" (RFC 6856 §2.2); that case belongs to EXT-004.
func (s *Session) utf8Exempt(cmd wire.Command) bool {
	switch cmd.Keyword {
	case "USER", "PASS", "APOP":
		return strings.Contains(strings.ToUpper(s.caps.get("UTF8")), "USER")
	}
	return false
}

func displayVerb(cmd wire.Command) string {
	if cmd.Keyword == "" {
		return "(empty)"
	}
	return safeVerb(cmd.Keyword)
}

// safeVerb returns a keyword for events and details: as is when it is
// printable ASCII, Go-quoted otherwise (binary garbage stays readable).
func safeVerb(kw string) string {
	if wire.IsPrintableASCII([]byte(kw)) {
		return kw
	}
	v := strconv.Quote(kw)
	if len(v) > 40 {
		v = v[:37] + "..."
	}
	return v
}

// redactArgs returns the argument text for events, hiding secrets unless
// RevealSecrets is set.
func (s *Session) redactArgs(cmd wire.Command) (string, bool) {
	if s.opt.RevealSecrets {
		return cmd.Rest, false
	}
	switch cmd.Keyword {
	case "PASS":
		if cmd.Rest == "" {
			return "", false
		}
		return Redacted, true
	case "APOP":
		if len(cmd.Args) >= 2 {
			return cmd.Args[0] + " " + Redacted, true
		}
	case "AUTH":
		if len(cmd.Args) >= 2 {
			return cmd.Args[0] + " " + Redacted, true
		}
	case "RPOP":
		if len(cmd.Args) >= 1 {
			return Redacted, true
		}
	}
	return cmd.Rest, false
}

func (s *Session) saslLine(at time.Time, x *exchange, raw []byte, off int64) {
	line, eol := wire.TrimEOL(raw)
	s.lineChecks(at, event.Client, line, eol, off, true)
	x.awaiting = false
	args, red := Redacted, true
	switch {
	case string(line) == "*":
		args, red = "*", false
		x.cancelled = true
	case len(line) == 0:
		args, red = "", false
	case s.opt.RevealSecrets:
		args, red = string(line), false
	}
	s.publish(&event.Event{Type: event.SASLResponse, Time: at, By: event.Client, Offset: off, ID: x.id, Verb: "AUTH", Args: args, Redacted: red})
	s.saslMessage(at, x, string(line), false, off)
}

// ---- server direction ----

func (s *Session) feedServer(at time.Time, p []byte) {
	s.srvSeen = true
	for len(p) > 0 && !s.opaque {
		// Checked per line: the layer may start right after the CRLF of
		// the +OK, in the same read.
		if s.layerWatch && s.body == nil && len(s.srv.buf) == 0 {
			s.layerWatch = false
			if !looksLikeText(p) {
				s.goOpaque(at, event.Server, "POP3-SASL-010", "after AUTH succeeded the server sends non-text bytes: a SASL security layer; decoding stops")
				break
			}
		}
		if s.tlsWaitS {
			s.tlsWaitS = false
			if !isTLSRecord(p) {
				s.violate(at, "POP3-TLS-005", event.Server, s.srv.off, "after +OK to STLS the server sent plaintext ("+firstOctet(p)+") instead of a TLS ServerHello (response injection hazard)", "")
			}
			s.tlsWaitDone(at)
			continue
		}
		if s.body != nil {
			n := s.body.scan.Scan(p)
			s.srv.off += int64(n)
			p = p[n:]
			if s.body.scan.Stopped {
				line := s.body.scan.StopLine
				off := s.srv.off - int64(len(line))
				s.endBody(at)
				s.serverLine(at, line, off)
				continue
			}
			if s.body.scan.Done {
				s.endBody(at)
			}
			continue
		}
		// Line mode: frame exactly one line at a time so that a reply
		// entering body mode hands the rest of p to the body scanner.
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i+1]
		}
		p = p[len(chunk):]
		s.srv.feed(chunk, s.opt.MaxLine, func(line []byte, start int64, over bool, dropped int64) {
			if over {
				s.violate(at, "POP3-LINE-010", event.Server, start, fmt.Sprintf("server line exceeds %d octets without a line end; %d octets not decoded", s.opt.MaxLine, dropped), "")
			}
			s.serverLine(at, line, start)
		})
	}
	if s.opaque && len(p) > 0 {
		s.account(event.Server, p)
	}
}

func (s *Session) serverLine(at time.Time, raw []byte, off int64) {
	if s.opaque {
		return
	}
	line, eol := wire.TrimEOL(raw)
	if s.resync {
		st := wire.ParseStatus(line)
		if string(line) == "." {
			s.resyncN++
			s.endResync(at, off, "terminator")
			return
		}
		if st.Indicator != wire.OK && st.Indicator != wire.ERR {
			s.resyncN++
			return
		}
		s.endResync(at, off, "status line")
	}
	if !s.greeted {
		s.greeting(at, line, eol, off, len(raw))
		return
	}
	s.lineChecks(at, event.Server, line, eol, off, false)
	st := wire.ParseStatus(line)
	if st.Indicator != wire.NotStatus {
		s.flushLegacy()
	}
	x := s.head()
	if x != nil && x.verb == "AUTH" && len(x.cmd.Args) > 0 && len(line) > 0 && line[0] == '+' &&
		st.Indicator != wire.OK && !(st.Indicator == wire.Malformed && strings.HasPrefix(strings.ToUpper(st.Raw), "+OK")) {
		// "+ text" is a challenge; "+" alone or "+text" is a malformed one (SASL-006).
		exact := len(line) >= 2 && line[1] == ' '
		text := ""
		if exact {
			text = string(line[2:])
		} else if len(line) > 1 {
			text = string(line[1:])
		}
		s.continuation(at, x, text, exact, off)
		return
	}
	switch st.Indicator {
	case wire.OK, wire.ERR:
	case wire.Malformed:
		s.violate(at, "POP3-SYNTAX-007", event.Server, off, "status indicator "+quoteShort([]byte(st.Raw))+" is not exactly +OK or -ERR followed by SP or CRLF", "")
		if strings.HasPrefix(strings.ToUpper(st.Raw), "+OK") || strings.EqualFold(st.Raw, "OK") {
			st.Indicator = wire.OK
		} else {
			st.Indicator = wire.ERR
		}
	case wire.Continuation:
		s.violate(at, "POP3-SYNTAX-007", event.Server, off, "SASL continuation \"+ \" while no AUTH exchange is at the head of the queue", "")
		return
	default:
		s.strayLine(at, line, off)
		return
	}
	if len(raw) > wire.MaxStatusLine {
		s.violate(at, "POP3-LINE-005", event.Server, off, fmt.Sprintf("status line is %d octets (limit 512 incl. CRLF)", len(raw)), "")
	}
	s.flushUnsolicited()
	if x == nil {
		if s.quitAnswered {
			s.violate(at, "POP3-STATE-005", event.Server, off, "server sent "+quoteShort(line)+" after its QUIT reply (it must close)", "")
			return
		}
		s.unsolicited = &unsolicitedLine{at: at, off: off, line: append([]byte(nil), line...)}
		return
	}
	s.reply(at, x, st, off)
}

// greeting handles the first server line.
func (s *Session) greeting(at time.Time, line []byte, eol wire.EOL, off int64, rawLen int) {
	s.greeted = true
	s.greetAt = at
	if why := notPOP3Server(line); why != "" {
		s.goOpaque(at, event.Server, "POP3-CONN-005", why)
		return
	}
	s.lineChecks(at, event.Server, line, eol, off, false)
	st := wire.ParseStatus(line)
	ev := &event.Event{Type: event.Greeting, Time: at, By: event.Server, Offset: off, Status: statusString(st), Text: st.Text, Code: st.Code}
	if rawLen > wire.MaxStatusLine {
		s.violate(at, "POP3-LINE-005", event.Server, off, fmt.Sprintf("greeting is %d octets (limit 512 incl. CRLF)", rawLen), "")
	}
	if ts, ok := wire.APOPTimestamp(st.Text); ok && st.Indicator == wire.OK {
		ev.Timestamp = ts
		s.timestamp = ts
		if valid, why := wire.ValidAPOPTimestamp(ts); !valid {
			s.publish(ev)
			s.violate(at, "POP3-GREET-002", event.Server, off, "APOP timestamp "+quoteShort([]byte(ts))+" is not msg-id shaped: "+why, "")
			ev = nil
		}
	}
	if ev != nil {
		s.publish(ev)
	}
	s.identify(at, st.Text, false)
	if s.timestamp != "" && s.store != nil && s.store.seenStamp(s.opt.Endpoint, s.timestamp) {
		s.violate(at, "POP3-GREET-003", event.Server, off, "APOP timestamp "+s.timestamp+" was already used in an earlier greeting of "+s.opt.Endpoint, "")
	}
	s.respChecks(at, nil, st, off)
	switch st.Indicator {
	case wire.OK:
		s.setState(at, AuthReady)
	case wire.ERR:
		s.greetRefused = true
		s.violate(at, "POP3-GREET-001", event.Server, off, "greeting is negative: "+quoteShort(line), "")
	default:
		s.violate(at, "POP3-GREET-001", event.Server, off, "first server line is not a +OK status line: "+quoteShort(line), "")
		if st.Indicator == wire.Malformed && strings.HasPrefix(strings.ToUpper(st.Raw), "+OK") {
			s.setState(at, AuthReady)
		}
	}
	// Commands sent before the greeting are answered after it (CONN-001).
}

// continuation handles a "+ ..." challenge line during AUTH.
func (s *Session) continuation(at time.Time, x *exchange, text string, exact bool, off int64) {
	x.challenges++
	x.awaiting = true
	if s.state != AuthSASL && s.state.Authorization() {
		s.setState(at, AuthSASL)
	}
	s.publish(&event.Event{Type: event.Continuation, Time: at, By: event.Server, Offset: off, ID: x.id, Verb: "AUTH", Status: "+", Text: text})
	s.challenge(at, x, text, exact, off)
	// A line the client sent ahead of the challenge is the answer (§3.2).
	if len(s.tentative) > 0 {
		t := s.tentative[0]
		s.tentative = s.tentative[1:]
		s.tentBytes -= len(t.raw)
		s.saslLine(t.at, x, t.raw, t.off)
	}
}

// reply handles a status line that answers the head of the FIFO.
func (s *Session) reply(at time.Time, x *exchange, st wire.Status, off int64) {
	x.status = st
	x.startedAt = at
	x.replyOff = off
	ok := st.Indicator == wire.OK
	s.executionChecks(at, x, st, off)
	s.respChecks(at, x, st, off)
	s.dropExec(at, x, ok, off)
	if ok {
		sh := single
		if x.known {
			sh = x.info.shape(len(x.cmd.Args))
		}
		if sh == multi {
			b := &bodyState{x: x, start: s.srv.off}
			switch x.verb {
			case "CAPA", "LIST", "UIDL", "AUTH", "LANG":
				b.scan.CaptureMax = captureMax
				b.scan.OnLine = func(li *wire.LineInfo) bool { return s.structuredLine(b, li) }
				b.capa = x.verb == "CAPA"
				b.seen = map[int]bool{}
				b.uidIndex = map[string]int{}
			case "RETR", "TOP":
				b.scan.Hash = true
			}
			s.body = b
			return
		}
	}
	s.finish(at, x, nil)
}

// structuredLine checks one line of a CAPA, LIST, UIDL, LANG or AUTH-list
// body; it returns true to abandon the body (MULTI-004).
func (s *Session) structuredLine(b *bodyState, li *wire.LineInfo) bool {
	at := s.now
	c := li.Content
	off := b.start + li.Offset
	if c == nil {
		if b.capa {
			s.violate(at, "POP3-LINE-005", event.Server, off, fmt.Sprintf("CAPA line is %d octets (limit 512 incl. CRLF)", li.Len+2), "")
		}
		return false
	}
	if st := wire.ParseStatus(c); (st.Indicator == wire.OK || st.Indicator == wire.ERR) && !li.Stuffed {
		s.violate(at, "POP3-MULTI-004", event.Server, off, "status line "+quoteShort(c)+" inside a "+b.x.verb+" body: terminator probably missing; body closed here", "")
		return true
	}
	switch b.x.verb {
	case "CAPA":
		if len(c)+2 > wire.MaxCapaLine {
			s.violate(at, "POP3-LINE-005", event.Server, off, fmt.Sprintf("CAPA line is %d octets (limit 512 incl. CRLF)", len(c)+2), "")
		}
		if tag, args, ok := s.checkCapaLine(at, off, c); ok {
			b.capaLines = append(b.capaLines, capaLine{tag: tag, args: args, off: off})
		}
	case "LIST", "UIDL":
		s.listBodyLine(at, b, c, off)
	case "LANG":
		s.langListLine(at, c, off)
	}
	return false
}

func (s *Session) endBody(at time.Time) {
	b := s.body
	s.body = nil
	st := &b.scan.Stats
	s.bodyChecks(at, b)
	off := b.start
	switch b.x.verb {
	case "CAPA":
		s.capaDone(at, off, b.capaLines)
	case "LIST", "UIDL":
		s.listBodyDone(at, b, off)
	case "RETR", "TOP":
		s.messageDone(at, b, off)
	}
	s.finish(at, b.x, st)
}

// bodyChecks reports the anomalies the scanner counted, once per body.
func (s *Session) bodyChecks(at time.Time, b *bodyState) {
	st := &b.scan.Stats
	msg := b.x.verb == "RETR" || b.x.verb == "TOP"
	where := func(a wire.Anomaly, what string) string {
		cmd := b.x.verb
		if len(b.x.cmd.Args) > 0 {
			cmd += " " + strings.Join(b.x.cmd.Args, " ")
		}
		if a.Count > 1 {
			return fmt.Sprintf("%s body, %d lines from line %d: %s", cmd, a.Count, a.FirstLine, what)
		}
		return fmt.Sprintf("%s body, line %d: %s", cmd, a.FirstLine, what)
	}
	if a := st.BareLF; a.Count > 0 {
		s.violate(at, "POP3-LINE-001", event.Server, b.start+a.FirstOff, where(a, "line ends in bare LF"), "")
	}
	if a := st.BadStuff; a.Count > 0 {
		s.violate(at, "POP3-MULTI-002", event.Server, b.start+a.FirstOff, where(a, "line starts with an unstuffed '.'; clients strip it and see altered content"), "")
	}
	if !msg {
		return
	}
	if a := st.BareCR; a.Count > 0 {
		s.violate(at, "POP3-LINE-003", event.Server, b.start+a.FirstOff, where(a, "bare CR"), "")
	}
	if a := st.Long; a.Count > 0 {
		s.violate(at, "POP3-LINE-006", event.Server, b.start+a.FirstOff, where(a, fmt.Sprintf("line longer than 1000 octets (longest %d)", st.LongestLen+2)), "")
	}
	if a := st.NUL; a.Count > 0 {
		s.violate(at, "POP3-LINE-009", event.Server, b.start+a.FirstOff, where(a, "NUL octet"), "")
	}
	if !s.utf8Mode {
		if a := st.HighHeader; a.Count > 0 {
			s.violate(at, "POP3-EXT-005", event.Server, b.start+a.FirstOff, where(a, "8-bit octets in the header section while UTF-8 mode is off"), "")
		}
		if a := st.HighBody; a.Count > 0 {
			s.violate(at, "POP3-EXT-006", event.Server, b.start+a.FirstOff, where(a, "8-bit octets in the message body while UTF-8 mode is off"), "")
		}
	}
}

// finish completes an exchange: publishes the response, pops it and
// applies the state transition.
func (s *Session) finish(at time.Time, x *exchange, body *wire.BodyStats) {
	if len(s.fifo) > 0 && s.fifo[0] == x {
		s.fifo[0] = nil
		s.fifo = s.fifo[1:]
	}
	s.counts.Responses++
	ev := &event.Event{Type: event.Response, Time: at, By: event.Server, Offset: x.replyOff, ID: x.id, Verb: displayVerb(x.cmd),
		Status: statusString(x.status), Text: x.status.Text, Code: x.status.Code,
		LatencyMS: event.Millis(at.Sub(x.sentAt))}
	if body != nil {
		ev.Multiline = true
		ev.Octets, ev.WireOctets, ev.Lines = body.Octets, body.WireOctets, body.Lines
	}
	s.publish(ev)
	if body == nil {
		s.dropSingle(at, x, x.status, x.replyOff)
		s.langReply(at, x)
	}
	if lat := at.Sub(x.sentAt); lat > slowReply && x.verb != "AUTH" {
		s.violate(at, "POP3-TIME-003", event.Client, x.offset, fmt.Sprintf("%s took %v to answer (slow server or a deliberate delay)", x.verb, lat.Round(time.Millisecond)), "")
	}
	s.transition(at, x)
	s.lastDone = x
	s.lastReplyAt = at
	if x.verb == "STLS" && s.state == TLSUpgrade && s.opt.TerminateTLS {
		// The proxy discards what the client sent after STLS before the
		// handshake (TLS-003 reported it): it never reaches the server.
		s.tentative, s.tentBytes = nil, 0
	}
	// Lines held behind a barrier become commands once it is resolved.
	if len(s.tentative) > 0 && !s.barrierPending() && !s.opaque {
		held := s.tentative
		s.tentative, s.tentBytes = nil, 0
		for _, t := range held {
			s.clientLineHeld(t.at, t.raw, t.off, true)
		}
	}
}

// slowReply is the command-to-reply gap that TIME-003 reports.
const slowReply = 10 * time.Second

// transition applies the state change for a completed exchange (§2.2).
func (s *Session) transition(at time.Time, x *exchange) {
	ok := x.status.Indicator == wire.OK
	switch x.verb {
	case "USER":
		if ok && len(x.cmd.Args) > 0 {
			s.user = x.cmd.Args[0]
		}
		if s.state.Authorization() {
			if ok {
				s.setState(at, AuthUser)
			} else {
				s.setState(at, AuthReady)
			}
		}
	case "PASS", "APOP", "AUTH", "RPOP":
		if x.verb == "APOP" && len(x.cmd.Args) > 0 {
			s.user = x.cmd.Args[0]
		}
		if len(x.cmd.Args) == 0 && x.verb == "AUTH" {
			break // mechanism discovery
		}
		if x.verb == "AUTH" {
			s.authFinished(at, x, ok, x.replyOff)
		}
		if !s.state.Authorization() {
			return
		}
		if s.store != nil {
			s.storeLogin(at, x, ok, x.status.Code, x.replyOff)
		}
		if !ok {
			s.setState(at, AuthReady)
			return
		}
		if !s.serverTLS && !s.auth002 && (x.verb == "PASS" || (x.sasl != nil && passwordMechs[x.sasl.mech])) {
			s.auth002 = true
			s.violate(at, "POP3-AUTH-002", event.Server, x.replyOff, "server accepted a password login without TLS", "")
		}
		s.setState(at, Transaction)
		s.drop = newMaildrop()
		mech := x.verb
		if x.verb == "AUTH" {
			mech = "AUTH " + strings.ToUpper(x.cmd.Args[0])
		}
		s.publish(&event.Event{Type: event.Login, Time: at, By: event.Server, ID: x.id, User: s.user, Verb: mech})
	case "CAPA":
		if !ok {
			s.capaFailed = true
			if s.stlsListed || s.stlsOK {
				s.violate(at, "POP3-CAPA-005", event.Server, x.replyOff, "CAPA answered -ERR although the server implements STLS", "")
			}
		}
	case "STLS":
		if !ok {
			s.stlsRefused = true
			if s.stlsListed {
				s.violate(at, "POP3-TLS-006", event.Server, x.replyOff, "STLS was advertised but the command failed: "+quoteShort([]byte(x.status.Text)), "")
			}
			break // a refused STLS still came between USER and PASS (STATE-003)
		}
		s.stlsOK = true
		if s.capaFailed {
			s.violate(at, "POP3-CAPA-005", event.Server, x.replyOff, "STLS accepted although CAPA was answered -ERR (implementing STLS requires CAPA)", "")
		}
		if s.state.Authorization() {
			s.setState(at, TLSUpgrade)
			if !s.opt.TerminateTLS {
				// Passthrough: look at the first bytes of each side, then
				// stop decoding.
				s.tlsWaitC, s.tlsWaitS = true, true
			}
			// Otherwise the proxy performs the handshakes and calls
			// StartTLS.
		}
	case "UTF8":
		if ok {
			s.utf8Mode = true
		}
	case "LANG":
		if ok && len(x.cmd.Args) > 0 {
			s.langOK = true
		}
	case "QUIT":
		s.quitAnswered = true
		s.quitOK = ok
		if s.state == Transaction {
			s.quitInTrans = true
			s.leaveBox(at)
			s.setState(at, Update)
		} else if !ok && s.state.Authorization() {
			s.violate(at, "POP3-STATE-005", event.Server, x.replyOff, "QUIT in AUTHORIZATION answered with "+statusString(x.status)+" (only +OK is defined)", "")
		}
	}
	if s.state == AuthUser && x.verb != "USER" && x.verb != "PASS" && x.verb != "QUIT" {
		// Any other command after USER +OK cancels the pending USER for
		// PASS (STATE-003 judges the PASS).
		s.setState(at, AuthReady)
	}
}

// tlsWaitDone is called when the first post-STLS bytes of a side have been
// looked at; once both have, a passthrough session goes opaque.
func (s *Session) tlsWaitDone(at time.Time) {
	if s.opaque {
		return
	}
	s.goOpaque(at, event.Server, "", "STLS accepted: TLS is passed through without terminating it; decoding stops for this session")
}

// executionChecks evaluates state rules when the reply to x begins, using
// the state reached after all earlier replies (§3.2).
func (s *Session) executionChecks(at time.Time, x *exchange, st wire.Status, off int64) {
	ok := st.Indicator == wire.OK
	if x.lowerKey {
		d := "keyword " + quoteShort([]byte(x.cmd.RawKey)) + " is not upper case (legal: keywords are case-insensitive)"
		if !ok && x.known && !x.syntaxBad && s.legalNow(x) {
			d += "; the server refused an otherwise valid command: that refusal is the server's fault"
		}
		s.violate(at, "POP3-SYNTAX-002", event.Client, x.offset, d, "")
	}
	if ok && (x.syntaxBad || x.badUTF8) {
		s.violate(at, "POP3-SYNTAX-006", event.Server, off, "server answered +OK to the malformed command "+quoteShort(s.displayLine(x, []byte(x.cmd.RawKey+" "+x.cmd.Rest))), "")
	}
	if !x.known || s.state == GreetingWait {
		if !x.known && ok && x.verb != "" && !x.syntaxBad {
			// Reported once the shape is known (§3.5): by the next server
			// line, or at the end.
			s.legacyShape = x
		}
		return
	}
	if x.verb == "LAST" || x.verb == "RPOP" {
		s.violate(at, "POP3-LEGACY-001", event.Client, x.offset, "obsolete command "+x.verb+" (RFC 1225) answered "+statusString(st), "")
	}
	if x.verb == "AUTH" && len(x.cmd.Args) == 0 && ok {
		s.violate(at, "POP3-LEGACY-002", event.Client, x.offset, "bare AUTH (legacy mechanism discovery) answered with a mechanism list", "")
	}
	auth := s.state.Authorization() || s.state == TLSUpgrade
	trans := s.state == Transaction
	illegal := (auth && !x.info.inAuth) || (trans && !x.info.inTrans)
	switch x.verb {
	case "STLS":
		illegal = false // TLS-001 judges STLS placement
		switch {
		case trans:
			s.violate(at, "POP3-TLS-001", event.Client, x.offset, "STLS in TRANSACTION state", "")
		case s.utf8Mode:
			s.violate(at, "POP3-TLS-001", event.Client, x.offset, "STLS after UTF8 got +OK (RFC 6856 §2.1)", "")
		}
		if (trans || s.utf8Mode) && ok {
			s.violate(at, "POP3-STATE-002", event.Server, off, "server answered +OK to STLS in the wrong state", "")
		}
		if s.clientTLS && ok {
			s.violate(at, "POP3-TLS-002", event.Server, off, "server answered +OK to STLS while TLS is active: TLS inside TLS", "")
		}
	case "PASS":
		if auth && s.state != AuthUser {
			x.noUser = true
			why := "PASS without a preceding USER"
			if p := s.lastDone; p != nil {
				switch {
				case p.verb == "USER" && p.status.Indicator != wire.OK:
					why = "PASS after USER was refused"
				case p.verb != "USER":
					why = "PASS not immediately after USER (" + p.verb + " came between)"
				}
			}
			s.violate(at, "POP3-STATE-003", event.Client, x.offset, why, "")
		}
	case "USER", "APOP":
		if s.state == AuthUser {
			s.violate(at, "POP3-STATE-004", event.Client, x.offset, x.verb+" while USER "+s.user+" is already accepted", "")
		}
		if x.verb == "APOP" && s.timestamp == "" && auth {
			s.violate(at, "POP3-GREET-004", event.Client, x.offset, "APOP sent although the greeting carried no timestamp", "")
			if ok {
				s.violate(at, "POP3-GREET-004", event.Server, off, "server accepted APOP although its greeting carried no timestamp", "")
			}
		}
	}
	if illegal {
		x.illegal = true
		where := string(s.state)
		if auth {
			where = "AUTHORIZATION"
		}
		s.violate(at, "POP3-STATE-001", event.Client, x.offset, x.verb+" is not valid in "+where, "")
	}
	if ok && (x.illegal || x.noUser) {
		what := x.verb + " in the wrong state"
		if x.noUser {
			what = "PASS without an accepted USER"
		}
		s.violate(at, "POP3-STATE-002", event.Server, off, "server answered +OK to "+what, "")
	}
}

// strayLine handles a server line that is not a status line where one was
// expected: data after a single-line reply, or garbage (§3.5).
func (s *Session) strayLine(at time.Time, line []byte, off int64) {
	if p := s.legacyShape; p != nil && s.lastDone == p {
		s.legacyShape = nil
		s.violate(at, "POP3-LEGACY-002", event.Client, p.offset, s.legacyDetail(p, "multi-line (data followed the +OK)"), "")
	} else {
		detail := "data line " + quoteShort(line) + " where a status line was expected"
		if p := s.lastDone; p != nil {
			detail += fmt.Sprintf(" (after %s reply to %s)", statusString(p.status), p.verb)
		}
		s.violate(at, "POP3-MULTI-003", event.Server, off, detail+"; skipping to the next terminator or status line", "")
	}
	s.resync = true
	s.resyncN = 1
}

// legacyDetail describes a +OK to a non-standard command.
func (s *Session) legacyDetail(x *exchange, shape string) string {
	d := "server answered +OK to the non-standard command " + x.verb + "; reply shape " + shape
	if !vendorKeywords[x.verb] {
		d += ". No known implementation defines it; RFC 1939 §3 expects -ERR for unknown commands, but the wire cannot prove the server lacks a private command"
	}
	return d
}

// flushLegacy reports a pending +OK to a non-standard command as
// single-line.
func (s *Session) flushLegacy() {
	if p := s.legacyShape; p != nil {
		s.legacyShape = nil
		s.violate(s.now, "POP3-LEGACY-002", event.Client, p.offset, s.legacyDetail(p, "single-line"), "")
	}
}

func (s *Session) endResync(at time.Time, off int64, how string) {
	s.resync = false
	s.publish(&event.Event{Type: event.Note, Time: at, By: event.Server, Offset: off,
		Detail: fmt.Sprintf("resynchronised after %d unexpected data lines (at %s)", s.resyncN, how)})
	s.legacyShape = nil
	s.resyncN = 0
}

// lineChecks applies the per-line framing rules to a command, status or
// continuation line.
func (s *Session) lineChecks(at time.Time, by event.Side, line []byte, eol wire.EOL, off int64, sasl bool) {
	if eol == wire.EOLLF {
		s.violate(at, "POP3-LINE-001", by, off, by.String()+" line ends in bare LF: "+s.shown(by, line, sasl), "")
	}
	if bytes.IndexByte(line, '\r') >= 0 {
		s.violate(at, "POP3-LINE-002", by, off, "CR inside a line: "+s.shown(by, line, sasl), "")
	}
	if by == event.Server && !s.utf8Mode && !s.langOK && wire.HasHigh(line) {
		s.violate(at, "POP3-LINE-008", by, off, "status text contains 8-bit octets without UTF8/LANG: "+quoteShort(line), "")
	}
}

// ---- ends ----

// Close tells the decoder that side closed its sending direction (EOF or
// reset) at time at.
func (s *Session) Close(side event.Side, at time.Time) {
	switch side {
	case event.Client:
		if s.clientClosed {
			return
		}
		s.clientClosed = true
	case event.Server:
		if s.serverClosed {
			return
		}
		s.serverClosed = true
	default:
		return
	}
	if s.firstClose == event.NoSide {
		s.firstClose = side
	}
	s.leaveBox(at)
	if s.opaque {
		return
	}
	lb := &s.cli
	if side == event.Server {
		lb = &s.srv
	}
	if len(lb.buf) > 0 && (side != event.Server || s.body == nil) {
		line := append([]byte(nil), lb.buf...)
		lb.buf = lb.buf[:0]
		x := s.head()
		sasl := side == event.Client && x != nil && x.verb == "AUTH" && x.awaiting
		s.violate(at, "POP3-LINE-001", side, lb.start, side.String()+" stream ended inside a line without CRLF: "+s.shown(side, line, sasl), "")
		if side == event.Client {
			s.clientLine(at, line, lb.start)
		} else {
			s.serverLine(at, line, lb.start)
		}
	}
	if side != event.Server {
		return
	}
	if b := s.body; b != nil {
		hint := ""
		if pre := b.scan.LastLinePrefix(); b.scan.Partial() && len(pre) > 0 {
			hint = "; the last line is unterminated"
		} else if b.scan.Stats.LastLineDot {
			hint = "; the last line ends in \".\" after other text: the server probably appended the terminator to a message without a final line break"
		}
		s.violate(at, "POP3-MULTI-001", event.Server, s.srv.off, fmt.Sprintf("connection closed inside the %s body after %d octets%s", b.x.verb, b.scan.Stats.WireOctets, hint), "")
	}
	if !s.clientClosed && len(s.fifo) == 0 && s.body == nil && !s.quitSent && s.greeted {
		s.idleClose(at)
	}
	s.unsolicited = nil
	unanswered := s.fifo
	if s.body != nil && len(unanswered) > 0 {
		unanswered = unanswered[1:] // its reply began: MULTI-001 covers it
	}
	if !s.clientClosed && len(unanswered) > 0 {
		if !s.quitAnswered {
			d := fmt.Sprintf("server closed with %d command(s) unanswered, first %s", len(unanswered), unanswered[0].verb)
			if p := s.lastDone; p != nil && p.status.Indicator == wire.ERR {
				d += "; its last reply was -ERR " + p.status.Text
			}
			s.violate(at, "POP3-CONN-003", event.Server, s.srv.off, d, "")
		}
	}
}

// Finish ends the session at time at: it reports what only the end can
// show and emits the final state. Further calls do nothing.
func (s *Session) Finish(at time.Time) {
	if s.state == Closed || s.state == Aborted {
		return
	}
	// Lines still held behind a barrier were sent: show them.
	if held := s.tentative; len(held) > 0 && !s.opaque {
		s.tentative, s.tentBytes = nil, 0
		for _, t := range held {
			s.command(t.at, t.raw, t.off, true)
		}
	}
	if !s.opaque && s.greeted && !s.quitAnswered {
		by := s.firstClose
		if by == event.NoSide {
			by = event.Server
		}
		d := "connection ended without QUIT"
		if s.quitSent {
			d = "connection ended before the QUIT reply"
		}
		if s.state == Transaction {
			d += ": no UPDATE, DELE marks are void"
		}
		s.violate(at, "POP3-CONN-004", by, 0, d+" (closed first by the "+by.String()+")", "")
	}
	s.flushUnsolicited()
	s.flushLegacy()
	ids := make([]string, 0, len(s.reports))
	for id, n := range s.reports {
		if n > maxReportsPerRule {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		n := s.reports[id]
		s.publish(&event.Event{Type: event.Note, Time: at, Rule: id,
			Detail: fmt.Sprintf("%s fired %d times; %d reports were suppressed", id, n, n-maxReportsPerRule)})
	}
	if s.store != nil && !s.opaque {
		s.storeEnd(at)
	}
	if (s.quitAnswered && (s.state == Update || s.state.Authorization())) || s.greetRefused {
		s.setState(at, Closed)
	} else {
		s.setState(at, Aborted)
	}
}

// idleClose judges a server close while no command is outstanding
// (TIME-001, TIME-002): an inactivity timer shorter than 10 minutes.
func (s *Session) idleClose(at time.Time) {
	from, what := s.lastClientAt, "the client's last activity"
	if from.IsZero() {
		// The client never sent anything: the timer runs from the greeting.
		from, what = s.greetAt, "the greeting (the client sent nothing)"
	}
	reply := s.lastReplyAt
	if reply.IsZero() {
		reply = s.greetAt
	}
	if from.IsZero() || at.Sub(reply) < time.Second || at.Sub(from) >= 10*time.Minute {
		return // right after a reply (CONN rules), or a legal timeout
	}
	rule := ""
	switch {
	case s.state == Transaction:
		rule = "POP3-TIME-001"
	case s.state.Authorization():
		rule = "POP3-TIME-002"
	default:
		return
	}
	d := fmt.Sprintf("server closed an idle %s session %v after %s (the timer must be at least 10 minutes)",
		map[bool]string{true: "TRANSACTION", false: "AUTHORIZATION"}[s.state == Transaction], at.Sub(from).Round(time.Second), what)
	if u := s.unsolicited; u != nil {
		d += "; it sent " + quoteShort(u.line) + " first (the RFC says to close without a reply)"
	}
	s.violate(at, rule, event.Server, s.srv.off, d, "")
}

// unsolicitedLine is a server line with no command outstanding, held until
// we know whether a close follows (an idle-logout message, CONN-002's
// exception).
type unsolicitedLine struct {
	at   time.Time
	off  int64
	line []byte
}

func (s *Session) flushUnsolicited() {
	if u := s.unsolicited; u != nil {
		s.unsolicited = nil
		s.violate(u.at, "POP3-CONN-002", event.Server, u.off, "server sent "+quoteShort(u.line)+" with no command outstanding", "")
	}
}

// Tick lets the decoder judge silence: call it now and then (the proxy
// does every few seconds) with the current time. It reports PIPE-002 (the
// server stopped answering queued commands for a minute) and TIME-003
// (a client idling in TRANSACTION for 10 minutes, or sending only NOOP).
func (s *Session) Tick(now time.Time) {
	if s.opaque || s.state == Closed || s.state == Aborted {
		return
	}
	if len(s.fifo) >= 2 && !s.pipe002 && !s.barrierPending() && s.body == nil {
		last := s.lastReplyAt
		if first := s.fifo[0].sentAt; first.After(last) {
			last = first
		}
		if now.Sub(last) >= time.Minute {
			s.pipe002 = true
			s.violate(now, "POP3-PIPE-002", event.Server, s.srv.off, fmt.Sprintf("server silent for %v with %d commands outstanding (first %s)", now.Sub(last).Round(time.Second), len(s.fifo), s.fifo[0].verb), "")
		}
	}
	if s.state == Transaction && len(s.fifo) == 0 && !s.idle003 {
		switch {
		case !s.lastClientAt.IsZero() && now.Sub(s.lastClientAt) >= 10*time.Minute:
			s.idle003 = true
			s.violate(now, "POP3-TIME-003", event.Client, s.cli.off, fmt.Sprintf("client idle in TRANSACTION for %v: the maildrop stays locked for other clients", now.Sub(s.lastClientAt).Round(time.Second)), "")
		case !s.lastWorkAt.IsZero() && now.Sub(s.lastWorkAt) >= 10*time.Minute:
			s.idle003 = true
			s.violate(now, "POP3-TIME-003", event.Client, s.cli.off, fmt.Sprintf("client has sent only NOOP in TRANSACTION for %v: the maildrop stays locked for other clients", now.Sub(s.lastWorkAt).Round(time.Second)), "")
		}
	}
}

// StartTLS records that one leg (info.Leg) is now inside TLS, at time at:
// it emits a "tls" event and applies RFC 2595 §4: on the client leg the
// session is back in AUTHORIZATION, capabilities learned before must be
// asked again, and client lines sent after STLS before the handshake (the
// proxy discards them) are dropped. It reports TLS-008 for versions below
// TLS 1.2.
func (s *Session) StartTLS(at time.Time, info *event.TLSInfo) {
	s.now = at
	s.publish(&event.Event{Type: event.TLS, Time: at, By: info.Leg, TLS: info})
	switch info.Leg {
	case event.Client:
		s.clientTLS = true
		s.tentative, s.tentBytes = nil, 0
		if s.caps != nil {
			s.capsStaleTLS = true
		}
		if s.state == TLSUpgrade || s.state == AuthUser {
			s.setState(at, AuthReady)
		}
	case event.Server:
		s.serverTLS = true
	}
	if v := info.Version; v == "SSL 3.0" || v == "TLS 1.0" || v == "TLS 1.1" {
		var sev event.Severity
		d := fmt.Sprintf("%s leg negotiated %s (below TLS 1.2)", info.Leg, v)
		for _, hi := range []string{"TLS 1.3", "TLS 1.2"} {
			if slices.Contains(info.Offered, hi) {
				// Servers MUST support 1.2 (RFC 8314 §4.1): sub-case error.
				sev = event.Error
				d += " although the client offered up to " + hi
				break
			}
		}
		// On the client leg popscope is the server: the client is the one
		// that could not do better.
		by := event.Server
		if info.Leg == event.Client {
			by = event.Client
		}
		s.violate(at, "POP3-TLS-008", by, 0, d, sev)
	}
}

// TLSFailed reports a failed handshake on one leg. plaintextBy names the
// side that sent plaintext where a TLS handshake was expected (TLS-007 on
// an implicit-TLS connection), or NoSide.
func (s *Session) TLSFailed(at time.Time, info *event.TLSInfo, err error, plaintextBy event.Side) {
	s.now = at
	s.publish(&event.Event{Type: event.TLS, Time: at, By: info.Leg, TLS: info, Error: err.Error()})
	if plaintextBy != event.NoSide {
		s.violate(at, "POP3-TLS-007", plaintextBy, 0, fmt.Sprintf("%s sent plaintext where implicit TLS was expected: %v", plaintextBy, err), "")
	}
	if s.state == TLSUpgrade && info.Leg == event.Server && s.stlsListed {
		s.violate(at, "POP3-TLS-006", event.Server, 0, "STLS was advertised and accepted, but the TLS handshake failed: "+err.Error(), "")
	}
}

// Report emits a violation found outside the decoder (by the proxy, which
// sees TLS handshakes and its own interventions). rule must be a catalog ID.
func (s *Session) Report(at time.Time, rule string, by event.Side, detail string) {
	s.violate(at, rule, by, 0, detail, "")
}

// ReportSeverity is Report for a sub-case with its own severity ("" keeps
// the catalog's).
func (s *Session) ReportSeverity(at time.Time, rule string, by event.Side, detail string, sev event.Severity) {
	s.violate(at, rule, by, 0, detail, sev)
}

// HeadVerb returns the command whose reply the server sends next, or "".
func (s *Session) HeadVerb() string {
	if x := s.head(); x != nil {
		return x.verb
	}
	return ""
}

// AtServerReplyStart reports whether the next server octet begins a new
// reply: no partial line buffered and no multi-line body open.
func (s *Session) AtServerReplyStart() bool {
	return s.body == nil && len(s.srv.buf) == 0 && !s.srv.overflow && !s.resync
}

// ClientTLS reports whether the client leg is inside TLS.
func (s *Session) ClientTLS() bool { return s.clientTLS }

// Opaque reports whether decoding has stopped for this session.
func (s *Session) Opaque() bool { return s.opaque }

// ---- helpers ----

// shown renders a line for a violation detail. Client lines that carry
// credentials (PASS, APOP, AUTH with an initial response, RPOP, SASL data)
// are redacted unless RevealSecrets: details reach every output.
func (s *Session) shown(by event.Side, line []byte, sasl bool) string {
	if by != event.Client || s.opt.RevealSecrets {
		return quoteShort(line)
	}
	if sasl {
		return "<SASL line redacted>"
	}
	cmd := wire.ParseCommand(line)
	switch cmd.Keyword {
	case "PASS", "APOP", "AUTH", "RPOP":
		if args, red := s.redactArgs(cmd); red {
			return quoteShort([]byte(cmd.RawKey + " " + args))
		}
	}
	return quoteShort(line)
}

// legalNow reports whether x is legal in the current state (table 2.3).
func (s *Session) legalNow(x *exchange) bool {
	switch {
	case s.state.Authorization():
		return x.info.inAuth
	case s.state == Transaction:
		return x.info.inTrans
	}
	return true
}

// printableOrTab: LINE-007 leaves TAB to SYNTAX-003.
func printableOrTab(b []byte) bool {
	for _, c := range b {
		if (c < 0x20 && c != '\t') || c > 0x7e {
			return false
		}
	}
	return true
}

// firstOctet describes the first octet of p for a detail: unlike the rest
// of the read it does not depend on how the stream was cut into reads.
func firstOctet(p []byte) string {
	return fmt.Sprintf("first octet 0x%02x %q", p[0], p[:1])
}

// looksLikeText reports whether p starts like a POP3 line: printable
// ASCII, SP, TAB, CR or LF in its first 16 octets.
func looksLikeText(p []byte) bool {
	if len(p) > 16 {
		p = p[:16]
	}
	for _, c := range p {
		if (c < 0x20 && c != '\r' && c != '\n' && c != '\t') || c > 0x7e {
			return false
		}
	}
	return true
}

func (s *Session) head() *exchange {
	if len(s.fifo) == 0 {
		return nil
	}
	return s.fifo[0]
}

func (s *Session) setState(at time.Time, to State) {
	if s.state == to {
		return
	}
	from := s.state
	s.state = to
	s.publish(&event.Event{Type: event.State, Time: at, From: string(from), To: string(to)})
}

func (s *Session) goOpaque(at time.Time, by event.Side, rule, detail string) {
	if s.opaque {
		return
	}
	if rule != "" {
		s.violate(at, rule, by, 0, detail, "")
	}
	s.opaque = true
	s.body = nil
	s.fifo = nil
	s.tentative, s.tentBytes = nil, 0
	s.publish(&event.Event{Type: event.Opaque, Time: at, By: by, Detail: detail})
	s.setState(at, Opaque)
}

// violate emits a violation of rule (a catalog ID). sev overrides the
// catalog severity for sub-cases ("" keeps it).
func (s *Session) violate(at time.Time, rule string, by event.Side, off int64, detail string, sev event.Severity) {
	r := ruleIndex[rule]
	if r == nil {
		panic("decode: unknown rule " + rule) // programming error, caught by tests
	}
	if sev == "" {
		sev = r.Severity
	}
	s.reports[rule]++
	if s.reports[rule] > maxReportsPerRule {
		return
	}
	s.counts.Violations[sev]++
	detail += s.quirkNote(rule)
	s.publish(&event.Event{Type: event.Violation, Time: at, By: by, Offset: off, Rule: rule, Severity: sev, Detail: detail})
}

func (s *Session) violateOnce(at time.Time, rule string, by event.Side, off int64, detail string, sev event.Severity) {
	if s.reports[rule] > 0 {
		return
	}
	s.violate(at, rule, by, off, detail, sev)
}

func (s *Session) publish(e *event.Event) {
	s.seq++
	e.Session = s.opt.Session
	e.Seq = s.seq
	s.emit(e)
}

// Publish stamps an event that did not come from the decoder (session
// start and end, TLS facts from the proxy) with the session ID and the next
// sequence number, and emits it in order with the decoder's own events.
func (s *Session) Publish(e *event.Event) { s.publish(e) }

func statusString(st wire.Status) string {
	if st.Raw != "" && st.Raw != "+OK" && st.Raw != "-ERR" && st.Raw != "+" {
		return st.Raw // a malformed indicator, shown as sent
	}
	switch st.Indicator {
	case wire.OK:
		return "+OK"
	case wire.ERR:
		return "-ERR"
	case wire.Continuation:
		return "+"
	}
	return st.Raw
}

// quoteShort renders b for a detail text, escaped and cut to 80 bytes.
func quoteShort(b []byte) string {
	const max = 80
	cut := ""
	if len(b) > max {
		b, cut = b[:max], "…"
	}
	return fmt.Sprintf("%q%s", b, cut)
}

// isTLSRecord reports whether p starts like a TLS handshake record.
func isTLSRecord(p []byte) bool {
	return len(p) >= 1 && p[0] == 0x16 && (len(p) == 1 || p[1] == 0x03)
}

// notPOP3Server names the protocol when a greeting is clearly not POP3.
func notPOP3Server(line []byte) string {
	switch {
	case bytes.HasPrefix(line, []byte("* OK")) || bytes.HasPrefix(line, []byte("* PREAUTH")):
		return "server greeting " + quoteShort(line) + " is IMAP, not POP3 (upstream port 143/993?); decoding stops"
	case len(line) >= 4 && string(line[:3]) == "220" && (line[3] == ' ' || line[3] == '-'):
		return "server greeting " + quoteShort(line) + " is SMTP, not POP3 (upstream port 25/465/587?); decoding stops"
	case bytes.HasPrefix(line, []byte("+ POP2")):
		return "server greeting is POP2 (RFC 937, port 109), not POP3; decoding stops"
	case bytes.HasPrefix(line, []byte("HTTP/")):
		return "server speaks HTTP, not POP3; decoding stops"
	case len(line) > 0 && line[0] == 0x16:
		return "server sent a TLS record as greeting: the upstream expects implicit TLS; decoding stops"
	}
	return ""
}

// notPOP3Client names the protocol when the first client command is
// clearly another protocol.
func notPOP3Client(cmd wire.Command, line []byte) string {
	switch cmd.Keyword {
	case "GET", "POST", "HEAD", "PUT", "CONNECT", "OPTIONS":
		if bytes.Contains(line, []byte("HTTP/")) {
			return "client speaks HTTP, not POP3; decoding stops"
		}
	case "EHLO", "HELO":
		return "client sent " + cmd.Keyword + ": SMTP (or POP2 HELO), not POP3 — wrong port?; decoding stops"
	}
	if len(cmd.Args) > 0 {
		switch strings.ToUpper(cmd.Args[0]) {
		case "LOGIN", "CAPABILITY", "AUTHENTICATE", "STARTTLS", "SELECT":
			if len(cmd.RawKey) > 0 && cmd.Keyword != "AUTH" && cmd.Keyword != "USER" && cmd.Keyword != "PASS" && cmd.Keyword != "APOP" {
				shown := line
				if a := strings.ToUpper(cmd.Args[0]); a == "LOGIN" || a == "AUTHENTICATE" {
					shown = []byte(cmd.RawKey + " " + cmd.Args[0] + " " + Redacted)
				}
				return "client sent tagged command " + quoteShort(shown) + ": IMAP, not POP3 (port 143/993?); decoding stops"
			}
		}
	}
	return ""
}
