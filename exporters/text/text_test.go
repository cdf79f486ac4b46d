package text

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/popscope/popscope/event"
)

func TestFormat(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC)
	cases := []struct {
		e       event.Event
		verbose bool
		want    string
		shown   bool
	}{
		{event.Event{Type: event.Command, Session: "abcdef123456", Time: at, Verb: "RETR", Args: "1", Pipelined: true}, false, "03:04:05.006 abcdef C: RETR 1   (pipelined)", true},
		{event.Event{Type: event.Response, Session: "abcdef", Time: at, Verb: "RETR", Status: "+OK", Text: "5 octets", Multiline: true, Octets: 5, Lines: 1, LatencyMS: 1.25}, false, "S: +OK 5 octets  [RETR: 5 octets, 1 lines]  (1.2 ms)", true},
		{event.Event{Type: event.Violation, Session: "abcdef", Time: at, Rule: "POP3-MULTI-002", Severity: event.Error, By: event.Server, Detail: "d"}, false, "!! error POP3-MULTI-002 (server): d", true},
		{event.Event{Type: event.State, Session: "abcdef", Time: at, From: "A", To: "B"}, false, "", false},
		{event.Event{Type: event.State, Session: "abcdef", Time: at, From: "A", To: "B"}, true, "state A → B", true},
		{event.Event{Type: event.TLS, Session: "abcdef", Time: at, TLS: &event.TLSInfo{Leg: event.Server, Mode: "stls", Version: "TLS 1.3", Cipher: "X", PeerSubject: "CN=a", Verified: true}}, false, "── TLS server leg (stls): TLS 1.3 X, peer CN=a (verified)", true},
		{event.Event{Type: event.Dropped, Time: at, Observer: "ui", Dropped: 7}, false, `observer "ui" lost 7 events`, true},
	}
	for _, c := range cases {
		got, ok := Format(&c.e, c.verbose)
		if ok != c.shown {
			t.Errorf("%s: shown %v, want %v", c.e.Type, ok, c.shown)
			continue
		}
		if ok && !strings.Contains(got, c.want) {
			t.Errorf("%s: %q does not contain %q", c.e.Type, got, c.want)
		}
	}
}

func TestPrinterWritesLines(t *testing.T) {
	var buf bytes.Buffer
	p := New(&buf)
	p.Observe(&event.Event{Type: event.Greeting, Session: "s", Status: "+OK", Text: "hi"})
	p.Observe(&event.Event{Type: event.State, Session: "s"}) // not shown
	if got := strings.Count(buf.String(), "\n"); got != 1 {
		t.Errorf("%d lines: %q", got, buf.String())
	}
}
