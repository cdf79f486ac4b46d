// Package text prints events as a human-readable transcript, one line per
// event, in the C:/S: style of RFC 1939 examples. It is what `popscope
// proxy --no-ui` shows on the terminal.
//
// Concurrency: Observe is called from the bus's goroutine for this
// observer; writes go straight to the underlying writer.
package text

import (
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/popscope/popscope/event"
)

// Printer is an event.Observer writing transcript lines.
type Printer struct {
	mu sync.Mutex
	w  io.Writer
	// Verbose also prints state changes and notes.
	Verbose bool
}

var _ event.Observer = (*Printer)(nil)

// New returns a Printer on w.
func New(w io.Writer) *Printer { return &Printer{w: w} }

// Format renders one event as a transcript line without a trailing
// newline; ok is false for events the transcript omits.
func Format(e *event.Event, verbose bool) (line string, ok bool) {
	id := e.Session
	if len(id) > 6 {
		id = id[:6]
	}
	ts := e.Time.Format("15:04:05.000")
	p := fmt.Sprintf("%s %-6s ", ts, id)
	switch e.Type {
	case event.SessionStart:
		return p + fmt.Sprintf("── session %s: client %s → upstream %s", e.Session, e.Client, e.Upstream), true
	case event.Connected:
		return p + fmt.Sprintf("── upstream %s connected in %.1f ms", e.Upstream, e.LatencyMS), verbose
	case event.SessionEnd:
		s := fmt.Sprintf("── session end: %s after %.0f ms, %d bytes up, %d down", orDash(e.Reason), e.DurationMS, e.BytesC2S, e.BytesS2C)
		if e.Error != "" {
			s += " (" + e.Error + ")"
		}
		return p + s, true
	case event.Greeting:
		return p + "S: " + join(e.Status, e.Text), true
	case event.Command:
		s := "C: " + join(e.Verb, e.Args)
		if e.Pipelined {
			s += "   (pipelined)"
		}
		return p + s, true
	case event.SASLResponse:
		return p + "C: " + orEmpty(e.Args) + "   (SASL)", true
	case event.Continuation:
		return p + "S: " + join("+", e.Text), true
	case event.Response:
		s := "S: " + join(e.Status, e.Text)
		if e.Multiline {
			s += fmt.Sprintf("  [%s: %d octets, %d lines]", e.Verb, e.Octets, e.Lines)
		}
		s += fmt.Sprintf("  (%.1f ms)", e.LatencyMS)
		return p + s, true
	case event.State:
		return p + fmt.Sprintf("   state %s → %s", e.From, e.To), verbose
	case event.Violation:
		return p + fmt.Sprintf("!! %s %s (%s): %s", e.Severity, e.Rule, e.By, e.Detail), true
	case event.Opaque:
		return p + "── opaque: " + e.Detail, true
	case event.Note:
		return p + "   note: " + e.Detail, verbose || e.Error != ""
	case event.TLS:
		t := e.TLS
		if t == nil {
			return "", false
		}
		s := fmt.Sprintf("── TLS %s leg (%s)", t.Leg, t.Mode)
		if e.Error != "" {
			return p + s + " failed: " + e.Error, true
		}
		s += ": " + t.Version + " " + t.Cipher
		if t.SNI != "" {
			s += " SNI " + t.SNI
		}
		if t.PeerSubject != "" {
			s += ", peer " + t.PeerSubject
			if t.Verified {
				s += " (verified)"
			} else if t.VerifyError != "" {
				s += " (NOT verified: " + t.VerifyError + ")"
			}
		}
		return p + s, true
	case event.Login:
		return p + fmt.Sprintf("── logged in as %s with %s", orDash(e.User), e.Verb), verbose
	case event.Dropped:
		return p + fmt.Sprintf("!! observer %q lost %d events (too slow)", e.Observer, e.Dropped), true
	}
	return "", false
}

// Observe prints e if the transcript shows it.
func (t *Printer) Observe(e *event.Event) {
	line, ok := Format(e, t.Verbose)
	if !ok {
		return
	}
	t.mu.Lock()
	fmt.Fprintln(t.w, line)
	t.mu.Unlock()
}

func join(a, b string) string {
	if b == "" {
		return a
	}
	return a + " " + b
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func orEmpty(s string) string {
	if strings.TrimSpace(s) == "" {
		return "(empty)"
	}
	return s
}
