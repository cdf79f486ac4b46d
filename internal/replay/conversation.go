// Package replay turns a recording (exporters/record) back into traffic:
// Server plays the recorded server side to a live client, matching each
// command to a recorded one; RunClient re-sends the recorded client
// commands to a live server and compares the replies semantically.
//
// # Usage
//
//	rec, _ := record.ReadFile(name)
//	conv, _ := replay.Build(rec)
//	srv := replay.NewServer(conv, replay.ServerOptions{...}); srv.Serve(ctx, ln)
//	res, err := replay.RunClient(ctx, conv, replay.ClientOptions{Upstream: addr, ...})
//
// # Concurrency
//
// A Conversation is immutable after Build and may be shared. Server
// serves each connection in its own goroutine with its own matching
// state. RunClient runs one session in the caller's goroutine.
package replay

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/popscope/popscope/decode/wire"
	"github.com/popscope/popscope/event"
	"github.com/popscope/popscope/exporters/record"
)

// maxClientLine bounds a client line kept from a recording.
const maxClientLine = 64 << 10

// Conversation is a recording cut into exchanges.
type Conversation struct {
	Header record.Header
	// Greeting is the server's first line, raw (nil if none was recorded).
	Greeting  []byte
	Exchanges []*Exchange
	// Unsolicited holds server lines sent with no command outstanding.
	Unsolicited [][]byte
	// Events are the recorded events.
	Events []*event.Event
	// User is the login identity the recording shows (USER, APOP, the
	// login event), "" if none.
	User string
	// Lost says that the recording has gaps: exchanges after the first
	// gap may be incomplete.
	Lost bool
	// Cut says that the recording is not complete (torn, or no end
	// record): the session was cut short by the recorder's death.
	Cut bool
	// Opaque says the session became undecodable (TLS relayed
	// untouched): exchanges stop there.
	Opaque bool
	// ImplicitTLS says the client leg began with TLS (port 995 style).
	ImplicitTLS bool
	// Warnings are problems found while building, for humans.
	Warnings []string
}

// Exchange is one command and everything the server answered to it.
type Exchange struct {
	N int // 1-based position in the recording
	// Line is the client line as recorded, with its line end.
	Line []byte
	Cmd  wire.Command
	// Redacted: the line holds the recording's placeholder for a secret.
	Redacted bool
	// DoneBefore is how many replies were complete when the client sent
	// the command; less than N-1 means it was pipelined.
	DoneBefore int
	At         time.Duration
	// Steps of a SASL exchange (AUTH with a mechanism), in order.
	Steps []SASLStep
	// Reply is the final reply, raw: status line and, for a multi-line
	// reply, body and terminator. Nil if the recording has none.
	Reply  []byte
	Status wire.Status
}

// SASLStep is one challenge and the client's answer.
type SASLStep struct {
	Challenge []byte // raw "+ ..." line; nil if the client answered without one
	Response  []byte // raw client line; nil if none was recorded
	// Redacted: Response is the placeholder.
	Redacted bool
}

// Verb returns the upper-case command keyword.
func (x *Exchange) Verb() string { return x.Cmd.Keyword }

// String is the command as shown to humans, secrets hidden.
func (x *Exchange) String() string {
	switch x.Cmd.Keyword {
	case "PASS", "RPOP":
		return x.Cmd.Keyword + " ****"
	case "APOP", "AUTH":
		if len(x.Cmd.Args) >= 2 {
			return x.Cmd.Keyword + " " + x.Cmd.Args[0] + " ****"
		}
	}
	s := strings.TrimSpace(x.Cmd.RawKey + " " + x.Cmd.Rest)
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}

// SASL reports whether the exchange is an AUTH with a mechanism.
func (x *Exchange) SASL() bool { return x.Cmd.Keyword == "AUTH" && len(x.Cmd.Args) > 0 }

// Multi reports whether a +OK reply to the command is multi-line.
func (x *Exchange) Multi() bool { return multiLine(x.Cmd) }

func multiLine(c wire.Command) bool {
	switch c.Keyword {
	case "CAPA", "RETR", "TOP":
		return true
	case "LIST", "UIDL", "LANG", "AUTH":
		return len(c.Args) == 0
	}
	return false
}

// exactKey identifies a command for matching: keyword and arguments, with
// secrets left out.
func exactKey(c wire.Command) string {
	switch c.Keyword {
	case "PASS", "RPOP":
		return c.Keyword
	case "APOP":
		if len(c.Args) > 0 {
			return "APOP " + c.Args[0]
		}
	case "AUTH":
		if len(c.Args) > 0 {
			return "AUTH " + strings.ToUpper(c.Args[0])
		}
	}
	if len(c.Args) == 0 {
		return c.Keyword
	}
	return c.Keyword + " " + strings.Join(c.Args, " ")
}

// looseKey matches credential commands whatever the user name.
func looseKey(c wire.Command) string {
	switch c.Keyword {
	case "USER", "APOP", "PASS", "RPOP":
		return c.Keyword
	case "AUTH":
		return exactKey(c)
	}
	return ""
}

// Build cuts a recording into exchanges.
func Build(rec *record.Recording) (*Conversation, error) {
	conv := &Conversation{Header: rec.Header, Cut: !rec.Complete || rec.Torn != nil}
	var (
		srv      []byte
		byID     = map[int]*Exchange{}
		cli      []byte
		cliLong  bool
		placeh   = []byte(rec.Header.Placeholder)
		redacted = rec.Header.Redacted && len(placeh) > 0
		at       time.Duration
		started  bool
	)
	tr := &record.Tracker{Full: true}
	tr.OnServer = func(p record.ServerPiece) {
		b := srv[p.Start:p.End:p.End]
		switch p.Kind {
		case record.PieceGreeting:
			conv.Greeting = b
		case record.PieceUnsolicited:
			conv.Unsolicited = append(conv.Unsolicited, b)
		case record.PieceContinuation:
			if x := byID[p.Cmd.ID]; x != nil {
				x.Steps = append(x.Steps, SASLStep{Challenge: b})
			}
		case record.PieceReply:
			if x := byID[p.Cmd.ID]; x != nil {
				x.Reply, x.Status = b, p.Status
			}
		}
	}
	clientLine := func(line []byte) {
		if tr.Opaque() {
			return
		}
		mode := tr.Mode()
		sasl := mode == record.IsSASL
		if mode == record.SASLUnlessKeyword {
			sasl = !startsWithKeyword(line)
		}
		p := tr.ClientLine(line, sasl)
		if sasl {
			if p == nil {
				return
			}
			x := byID[p.ID]
			if x == nil {
				return
			}
			red := redacted && bytes.Equal(trimEOL(line), placeh)
			if n := len(x.Steps); n > 0 && x.Steps[n-1].Response == nil {
				x.Steps[n-1].Response, x.Steps[n-1].Redacted = line, red
			} else {
				x.Steps = append(x.Steps, SASLStep{Response: line, Redacted: red})
			}
			return
		}
		if p == nil {
			return
		}
		body, _ := wire.TrimEOL(line)
		x := &Exchange{N: len(conv.Exchanges) + 1, Line: line, Cmd: wire.ParseCommand(body), DoneBefore: p.DoneBefore, At: at}
		x.Redacted = redacted && bytes.Contains(body, placeh)
		conv.Exchanges = append(conv.Exchanges, x)
		byID[p.ID] = x
	}
	for _, r := range rec.Records {
		switch r.Kind {
		case record.KindEvent:
			conv.Events = append(conv.Events, r.Event)
			e := r.Event
			if e.Type == event.TLS && e.TLS != nil && e.TLS.Leg == event.Client && e.TLS.Mode == "implicit" && !started {
				conv.ImplicitTLS = true
			}
			if (e.Type == event.Login || e.Type == event.SessionEnd) && e.User != "" && conv.User == "" {
				conv.User = e.User
			}
		case record.KindGap:
			if r.Lost > 0 && !conv.Lost {
				conv.Lost = true
				conv.Warnings = append(conv.Warnings, fmt.Sprintf("the recording lost %d %s bytes at %v: exchanges from there on may be incomplete",
					r.Lost, r.Side, r.T.Round(time.Millisecond)))
			}
			if r.Lost > 0 {
				tr.Lost()
			}
		case record.KindData:
			started = true
			at = r.T
			if r.Side == event.Server {
				srv = append(srv, r.Data...)
				tr.Server(r.Data)
				continue
			}
			d := r.Data
			for len(d) > 0 {
				i := bytes.IndexByte(d, '\n')
				chunk := d
				if i >= 0 {
					chunk = d[:i+1]
				}
				d = d[len(chunk):]
				if len(cli)+len(chunk) <= maxClientLine {
					cli = append(cli, chunk...)
				} else if !cliLong {
					cliLong = true
					conv.Warnings = append(conv.Warnings, fmt.Sprintf("a client line longer than %d bytes was cut", maxClientLine))
				}
				if i >= 0 {
					line := append([]byte(nil), cli...)
					if cliLong && !bytes.HasSuffix(line, []byte("\n")) {
						line = append(line, '\r', '\n')
					}
					clientLine(line)
					cli, cliLong = cli[:0], false
				}
			}
		}
	}
	if len(cli) > 0 {
		conv.Warnings = append(conv.Warnings, fmt.Sprintf("the client's last line has no line end (%q): not replayed", shorten(cli)))
	}
	conv.Opaque = tr.Opaque()
	if conv.Opaque {
		conv.Warnings = append(conv.Warnings, "the session became opaque (TLS relayed untouched): nothing after it can be replayed")
	}
	if conv.User == "" {
		for _, x := range conv.Exchanges {
			if (x.Verb() == "USER" || x.Verb() == "APOP") && len(x.Cmd.Args) > 0 {
				conv.User = x.Cmd.Args[0]
				break
			}
		}
	}
	if conv.Greeting == nil && len(conv.Exchanges) == 0 {
		return conv, errors.New("replay: the recording holds no POP3 conversation (no greeting, no command)")
	}
	return conv, nil
}

func startsWithKeyword(line []byte) bool {
	s := strings.TrimLeft(string(line), " ")
	end := strings.IndexAny(s, " \t\r\n")
	if end < 0 {
		end = len(s)
	}
	switch strings.ToUpper(s[:end]) {
	case "USER", "PASS", "APOP", "AUTH", "STLS", "CAPA", "QUIT", "UTF8", "LANG", "STAT", "LIST", "RETR",
		"DELE", "NOOP", "RSET", "TOP", "UIDL", "LAST", "RPOP":
		return true
	}
	return false
}

func trimEOL(b []byte) []byte {
	b, _ = wire.TrimEOL(b)
	return b
}

func shorten(b []byte) string {
	if len(b) > 60 {
		return string(b[:57]) + "..."
	}
	return string(b)
}
