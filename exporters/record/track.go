package record

import (
	"bytes"
	"strings"

	"github.com/popscope/popscope/decode/wire"
)

// Tracker follows a POP3 conversation closely enough to tell commands
// from SASL responses and to find where each server reply begins and
// ends: a FIFO of outstanding commands (POP3 has no tags), the
// multi-line rule of RFC 1939 §3 and RFC 2449, and the AUTH exchange of
// RFC 5034. It is a much smaller cousin of the decoder, used where the
// decoder's events come too late (redaction: the proxy hands the
// recorder a chunk before the decoder sees it, and the decoder resolves
// lines held behind AUTH only when the server answers) or where byte
// boundaries are needed (replay segmentation).
//
// It is sans-io and not safe for concurrent use. Memory is bounded: a
// server line is captured up to 512 octets, bodies are scanned, not kept.
type Tracker struct {
	// Full keeps following the server for the whole session. Without it
	// the tracker stops reading server bytes once a login succeeded (no
	// body is ever scanned, which keeps recording cheap) and from then on
	// classifies client lines by their keyword (see SASLMode).
	Full bool
	// OnServer, if set, receives the server's lines and replies with
	// their offsets in the server stream.
	OnServer func(ServerPiece)

	greeted  bool
	fifo     []*Pending
	nextID   int
	done     int
	saslOpen int
	loggedIn bool
	desync   bool
	opaque   bool
	awaitTLS bool
	// coarse mode: an AUTH with a mechanism was the last command seen.
	coarseAuth bool

	srvOff     int64
	inLine     bool
	line       []byte
	lineStart  int64
	body       *wire.BodyScanner
	bodyStatus wire.Status
	replyStart int64
}

// Pending is a command whose final reply has not been seen, or (in
// pieces) the command a reply belongs to.
type Pending struct {
	ID    int // 1-based, in the order the commands were sent
	Verb  string
	NArgs int
	// Challenges counts "+" continuation lines seen (AUTH).
	Challenges int
	// Responses counts SASL response lines the client sent (AUTH).
	Responses int
	// DoneBefore is how many replies were complete when the command was
	// sent: a command with DoneBefore < ID-1 was pipelined.
	DoneBefore int
}

// SASL reports whether the command opens a SASL exchange (AUTH with a
// mechanism).
func (p *Pending) SASL() bool { return p.Verb == "AUTH" && p.NArgs > 0 }

func (p *Pending) multi() bool {
	switch p.Verb {
	case "CAPA", "RETR", "TOP":
		return true
	case "LIST", "UIDL", "LANG", "AUTH":
		return p.NArgs == 0
	}
	return false
}

// PieceKind says what a ServerPiece is.
type PieceKind uint8

// Server pieces.
const (
	PieceGreeting     PieceKind = iota + 1 // the first server line
	PieceContinuation                      // a "+ ..." SASL challenge line
	PieceReply                             // a final reply: status line, and body with terminator if multi-line
	PieceUnsolicited                       // a line with no command outstanding
)

// ServerPiece is one part of the server stream: bytes [Start, End).
type ServerPiece struct {
	Kind       PieceKind
	Start, End int64
	Cmd        *Pending // continuation, reply
	Status     wire.Status
}

// captureMax bounds the captured start of a server line.
const captureMax = 512

// knownKeywords are the POP3 keywords of RFC 1939, 2449, 2595, 5034, 6856.
var knownKeywords = map[string]bool{
	"USER": true, "PASS": true, "APOP": true, "AUTH": true, "STLS": true, "CAPA": true, "QUIT": true,
	"UTF8": true, "LANG": true, "STAT": true, "LIST": true, "RETR": true, "DELE": true, "NOOP": true,
	"RSET": true, "TOP": true, "UIDL": true, "LAST": true, "RPOP": true,
}

// SASLMode is how a client line that starts now must be classified.
type SASLMode uint8

// SASL modes.
const (
	// NotSASL: the line is a command.
	NotSASL SASLMode = iota
	// IsSASL: the line answers a SASL challenge.
	IsSASL
	// SASLUnlessKeyword: the tracker no longer follows the server (after
	// login, or after lost bytes): the line is SASL data unless it starts
	// with a POP3 keyword. Only used after an AUTH with a mechanism.
	SASLUnlessKeyword
)

// Mode returns how a client line starting now is to be taken.
func (t *Tracker) Mode() SASLMode {
	if t.coarse() {
		if t.coarseAuth {
			return SASLUnlessKeyword
		}
		return NotSASL
	}
	if t.saslOpen > 0 {
		return IsSASL
	}
	return NotSASL
}

func (t *Tracker) coarse() bool { return t.desync || (t.loggedIn && !t.Full) }

// Opaque reports whether the tracker stopped interpreting the session
// (TLS relayed untouched after STLS, or TLS on a plaintext port).
func (t *Tracker) Opaque() bool { return t.opaque }

// AwaitTLS reports that the server accepted STLS: the next bytes of
// either side may start a TLS handshake (relayed untouched).
func (t *Tracker) AwaitTLS() bool { return t.awaitTLS }

// SetOpaque stops interpretation for the rest of the session.
func (t *Tracker) SetOpaque() { t.opaque = true }

// Lost tells the tracker that bytes of a side were not seen (a gap): it
// stops following the server and classifies by keyword from then on.
func (t *Tracker) Lost() {
	t.desync = true
	t.coarseAuth = t.coarseAuth || t.saslOpen > 0
}

// Done returns how many final replies have been seen.
func (t *Tracker) Done() int { return t.done }

// Outstanding returns how many commands await their final reply.
func (t *Tracker) Outstanding() int { return len(t.fifo) }

// ClientLine records one complete client line (raw, with its line end;
// a prefix of it is enough) that was classified as SASL data or not when
// it started. It returns the new command, or the AUTH command a SASL line
// answers (nil if unknown).
func (t *Tracker) ClientLine(raw []byte, sasl bool) *Pending {
	if t.opaque {
		return nil
	}
	if t.awaitTLS {
		// Plaintext after STLS +OK: TLS was terminated by the proxy (or
		// refused); carry on decoding.
		t.awaitTLS = false
	}
	if sasl {
		for _, x := range t.fifo {
			if x.SASL() {
				x.Responses++
				return x
			}
		}
		return nil
	}
	line, _ := wire.TrimEOL(raw)
	cmd := wire.ParseCommand(line)
	t.nextID++
	x := &Pending{ID: t.nextID, Verb: cmd.Keyword, NArgs: len(cmd.Args), DoneBefore: t.done}
	if t.coarse() {
		if knownKeywords[x.Verb] {
			t.coarseAuth = x.SASL()
		}
		return x
	}
	t.fifo = append(t.fifo, x)
	if x.SASL() {
		t.saslOpen++
	}
	return x
}

// Server consumes server bytes.
func (t *Tracker) Server(p []byte) {
	if t.awaitTLS && len(p) > 0 && !t.inLine && p[0] == 0x16 {
		t.opaque = true
	}
	if t.opaque || t.coarse() {
		t.srvOff += int64(len(p))
		return
	}
	for len(p) > 0 {
		if t.body != nil {
			n := t.body.Scan(p)
			t.srvOff += int64(n)
			p = p[n:]
			if t.body.Done || t.body.Stopped {
				t.body = nil
				t.finish(t.replyStart, t.bodyStatus)
			}
			continue
		}
		if !t.inLine {
			t.inLine, t.lineStart, t.line = true, t.srvOff, t.line[:0]
		}
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i+1]
		}
		if room := captureMax - len(t.line); room > 0 {
			t.line = append(t.line, chunk[:min(room, len(chunk))]...)
		}
		t.srvOff += int64(len(chunk))
		p = p[len(chunk):]
		if i >= 0 {
			t.inLine = false
			t.serverLine()
			if t.coarse() || t.opaque {
				t.srvOff += int64(len(p))
				return
			}
		}
	}
}

func (t *Tracker) emit(k PieceKind, start int64, x *Pending, st wire.Status) {
	if t.OnServer != nil {
		t.OnServer(ServerPiece{Kind: k, Start: start, End: t.srvOff, Cmd: x, Status: st})
	}
}

func (t *Tracker) serverLine() {
	line, _ := wire.TrimEOL(t.line)
	if !t.greeted {
		t.greeted = true
		t.emit(PieceGreeting, t.lineStart, nil, wire.ParseStatus(line))
		return
	}
	if len(t.fifo) == 0 {
		t.emit(PieceUnsolicited, t.lineStart, nil, wire.ParseStatus(line))
		return
	}
	x := t.fifo[0]
	st := wire.ParseStatus(line)
	if st.Indicator == wire.Continuation && x.SASL() {
		x.Challenges++
		t.emit(PieceContinuation, t.lineStart, x, st)
		return
	}
	if st.Indicator == wire.OK && x.multi() {
		t.body = &wire.BodyScanner{}
		t.bodyStatus = st
		t.replyStart = t.lineStart
		return
	}
	t.finish(t.lineStart, st)
}

// finish completes the reply to the head command.
func (t *Tracker) finish(start int64, st wire.Status) {
	x := t.fifo[0]
	t.fifo[0] = nil
	t.fifo = t.fifo[1:]
	if len(t.fifo) == 0 {
		t.fifo = t.fifo[:0:0]
	}
	t.done++
	if x.SASL() {
		t.saslOpen--
	}
	t.emit(PieceReply, start, x, st)
	if st.Indicator == wire.OK {
		switch x.Verb {
		case "PASS", "APOP", "AUTH", "RPOP":
			if x.Verb != "AUTH" || x.NArgs > 0 {
				t.loggedIn = true
			}
		case "STLS":
			t.awaitTLS = true
		}
	}
}

// isKeywordStart reports whether b (the start of a line, leading spaces
// allowed) begins with a known POP3 keyword followed by a separator or
// line end, and whether that is still undecided because b is too short.
func isKeywordStart(b []byte) (yes, undecided bool) {
	s := strings.TrimLeft(string(b), " ")
	end := strings.IndexAny(s, " \t\r\n")
	if end < 0 {
		if len(s) < 5 {
			return false, true
		}
		return false, false
	}
	return knownKeywords[strings.ToUpper(s[:end])], false
}
