package replay

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/popscope/popscope/decode/wire"
)

// Limits of what a reply summary keeps.
const (
	maxStatusLine  = 64 << 10
	maxStructLines = 1 << 20
	maxStructLine  = 1024
)

var errLineTooLong = errors.New("replay: line too long")

// Reply is what the comparison looks at in a server reply.
type Reply struct {
	// Status is "+OK", "-ERR", the raw indicator of a malformed status,
	// or "" when no reply came.
	Status string
	Code   string
	Text   string
	Multi  bool
	// Lines are the content lines (unstuffed) of a structured body: CAPA,
	// LIST, UIDL, the AUTH mechanism list, LANG.
	Lines []string
	// Octets (delivered size), BodyLines, Hash (xxhash64 of the raw body)
	// describe a multi-line body.
	Octets, BodyLines int64
	Hash              uint64
	// Unterminated: the body ended without its terminator line.
	Unterminated bool
}

func structured(c wire.Command) bool {
	switch c.Keyword {
	case "CAPA", "LIST", "UIDL", "AUTH", "LANG":
		return true
	}
	return false
}

// readLine reads one line with its end, at most limit bytes.
func readLine(r *bufio.Reader, limit int) ([]byte, error) {
	var line []byte
	for {
		frag, err := r.ReadSlice('\n')
		if len(line)+len(frag) > limit {
			return nil, errLineTooLong
		}
		line = append(line, frag...)
		if err == nil {
			return line, nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			if errors.Is(err, io.EOF) && len(line) > 0 {
				return line, io.ErrUnexpectedEOF
			}
			return line, err
		}
	}
}

// statusOf fills the status fields of rep from a status line.
func statusOf(rep *Reply, line []byte) wire.Status {
	st := wire.ParseStatus(trimEOL(line))
	switch st.Indicator {
	case wire.OK:
		rep.Status = "+OK"
	case wire.ERR:
		rep.Status = "-ERR"
	case wire.Continuation:
		rep.Status = "+"
	case wire.Malformed:
		rep.Status = st.Raw
	default:
		rep.Status = "?" + shorten(trimEOL(line))
	}
	rep.Code, rep.Text = st.Code, st.Text
	return st
}

// readBody reads a multi-line body up to and including its terminator.
func readBody(r *bufio.Reader, c wire.Command, rep *Reply, renew func()) error {
	rep.Multi = true
	sc := &wire.BodyScanner{Hash: true}
	if structured(c) {
		sc.CaptureMax = maxStructLine
		sc.OnLine = func(li *wire.LineInfo) bool {
			if li.Content != nil && len(rep.Lines) < maxStructLines {
				rep.Lines = append(rep.Lines, string(li.Content))
			}
			return false
		}
	}
	for !sc.Done {
		if r.Buffered() == 0 {
			if renew != nil {
				renew()
			}
			if _, err := r.Peek(1); err != nil {
				rep.Unterminated = true
				rep.Octets, rep.BodyLines, rep.Hash = sc.Stats.Octets, sc.Stats.Lines, sc.Stats.BodyHash
				if errors.Is(err, io.EOF) {
					return io.ErrUnexpectedEOF
				}
				return err
			}
		}
		p, _ := r.Peek(r.Buffered())
		n := sc.Scan(p)
		if _, err := r.Discard(n); err != nil {
			return err
		}
	}
	rep.Octets, rep.BodyLines, rep.Hash = sc.Stats.Octets, sc.Stats.Lines, sc.Stats.BodyHash
	return nil
}

// summarize reads a recorded final reply.
func summarize(x *Exchange) *Reply {
	rep := &Reply{}
	if x.Reply == nil {
		return rep
	}
	r := bufio.NewReader(bytes.NewReader(x.Reply))
	line, err := readLine(r, len(x.Reply)+1)
	if err != nil && len(line) == 0 {
		return rep
	}
	st := statusOf(rep, line)
	if st.Indicator == wire.OK && x.Multi() {
		_ = readBody(r, x.Cmd, rep, nil)
	}
	return rep
}

// describe is a short human form of a reply.
func (r *Reply) describe() string {
	if r.Status == "" {
		return "no reply"
	}
	s := r.Status
	if r.Code != "" {
		s += " [" + r.Code + "]"
	}
	if r.Multi {
		s += fmt.Sprintf(" (%d lines, %d octets)", r.BodyLines, r.Octets)
	}
	return s
}
