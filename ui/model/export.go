package model

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/popscope/popscope/event"
)

// WriteTranscript writes the session's kept lines in the C:/S: notation
// of RFC 1939's examples and of popscope's transcript files: one "C:" or
// "S:" line per command, SASL line and reply, everything else as "#"
// comments, and "# at: D" directives giving each line's time after the
// session start. Peer text is escaped as in transcript files (\r, \xHH).
// Secrets are already redacted: the decoder replaces them before events
// exist. Multi-line bodies are not in the event stream; their summaries
// appear as comments. Caller holds the model lock.
func WriteTranscript(w io.Writer, s *Session) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "# popscope session %s: client %s → upstream %s", s.ID, orDash(s.Client), orDash(s.Upstream))
	if s.User != "" {
		fmt.Fprintf(bw, ", user %s", s.User)
	}
	fmt.Fprintln(bw)
	if !s.Start.IsZero() {
		fmt.Fprintf(bw, "# started %s\n", s.Start.Format(time.RFC3339Nano))
	}
	fmt.Fprintln(bw, "# secrets are redacted; multi-line bodies are not in the event stream and appear as comments")
	if s.DroppedLines > 0 {
		fmt.Fprintf(bw, "# %s earlier lines were not kept (limit %s lines per session)\n",
			Thousands(int64(s.DroppedLines)), Thousands(int64(s.opt.MaxLines)))
	}
	var at time.Duration = -1
	for i := 0; i < s.lines.len(); i++ {
		l := s.lines.at(i)
		if l.Kind == KindClient || l.Kind == KindServer {
			if d := l.Time.Sub(s.Start); !s.Start.IsZero() && d > at && d >= 0 {
				at = d
				fmt.Fprintf(bw, "# at: %s\n", d)
			}
			fmt.Fprintln(bw, wireText(l))
			if l.Ev != nil && l.Ev.Pipelined {
				fmt.Fprintln(bw, "# (pipelined: sent while earlier replies were outstanding)")
			}
			if l.Fold != "" {
				fmt.Fprintf(bw, "# %s%s\n", l.Fold, bodyNote(l))
			}
		} else {
			fmt.Fprintf(bw, "# %s\n", trimLead(l.Text))
		}
		for _, v := range l.Violations {
			if l.Kind == KindViolation {
				continue // the line itself says it
			}
			fmt.Fprintf(bw, "# !! %s %s (%s): %s\n", v.Severity, v.Rule, orDash(v.By.String()), Escape(v.Detail))
		}
	}
	return bw.Flush()
}

// wireText is the line as the peer sent it, as far as the event says:
// verbs are upper-cased by the decoder and secrets redacted.
func wireText(l *Line) string {
	e := l.Ev
	var t string
	switch e.Type {
	case event.Command:
		if e.Verb != "(empty)" {
			t = join(Escape(e.Verb), Escape(e.Args))
		}
		return trimRight("C: " + t)
	case event.SASLResponse:
		return trimRight("C: " + Escape(e.Args))
	}
	return l.Text
}

func trimRight(s string) string {
	for len(s) > 0 && s[len(s)-1] == ' ' {
		s = s[:len(s)-1]
	}
	return s
}

func bodyNote(l *Line) string {
	if l.Ev == nil {
		return ""
	}
	return fmt.Sprintf(" (%s on the wire; latency %s)", Thousands(l.Ev.WireOctets), Millis(l.Ev.LatencyMS))
}

func trimLead(s string) string {
	for len(s) > 0 && s[0] == ' ' {
		s = s[1:]
	}
	return s
}

// WriteEvents writes the session's kept events as JSON Lines, in the
// schema of docs/events.md (the same encoding as `popscope proxy
// --events`). Caller holds the model lock.
func WriteEvents(w io.Writer, s *Session) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for i := 0; i < s.events.len(); i++ {
		if err := enc.Encode(s.events.at(i)); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// ReadEvents decodes a JSON Lines event stream, calling fn for each event
// in order. Lines that are blank are skipped; lines that are not JSON
// objects are counted in bad and skipped. It stops at the first read
// error (a line longer than maxLine is one).
func ReadEvents(r io.Reader, maxLine int, fn func(*event.Event)) (n, bad int, err error) {
	if maxLine <= 0 {
		maxLine = 16 << 20
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for sc.Scan() {
		b := sc.Bytes()
		if len(trimSpace(b)) == 0 {
			continue
		}
		e := new(event.Event)
		if err := json.Unmarshal(b, e); err != nil || e.Type == "" {
			bad++
			continue
		}
		n++
		fn(e)
	}
	return n, bad, sc.Err()
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\r') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
