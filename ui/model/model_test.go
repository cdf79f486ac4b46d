package model

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/popscope/popscope/event"
)

var t0 = time.Date(2026, 1, 15, 10, 0, 0, 0, time.UTC)

// feeder builds the events of one session with increasing seq numbers.
type feeder struct {
	m   *Model
	id  string
	seq uint64
	at  time.Time
}

func newFeeder(m *Model, id string) *feeder { return &feeder{m: m, id: id, at: t0} }

func (f *feeder) ev(e event.Event) *event.Event {
	f.seq++
	e.Session, e.Seq = f.id, f.seq
	if e.Time.IsZero() {
		f.at = f.at.Add(time.Millisecond)
		e.Time = f.at
	}
	p := &e
	f.m.Apply(p)
	return p
}

// now repeats the previous event's time (same read).
func (f *feeder) now() time.Time { return f.at }

func lineTexts(s *Session) []string {
	var out []string
	for _, l := range s.Lines() {
		t := l.Text
		if l.Fold != "" {
			t += " | " + l.Fold
		}
		for _, v := range l.Violations {
			t += " [" + v.Rule + "]"
		}
		out = append(out, t)
	}
	return out
}

func TestSessionFacts(t *testing.T) {
	m := New(Options{})
	f := newFeeder(m, "s1")
	f.ev(event.Event{Type: event.SessionStart, Client: "127.0.0.1:5000", Listener: "127.0.0.1:1110", Upstream: "127.0.0.1:110"})
	f.ev(event.Event{Type: event.TLS, TLS: &event.TLSInfo{Leg: event.Client, Mode: "implicit", Version: "TLS 1.3"}})
	f.ev(event.Event{Type: event.Greeting, By: event.Server, Status: "+OK", Text: "hi"})
	f.ev(event.Event{Type: event.State, From: "GREETING-WAIT", To: "AUTH.READY"})
	f.ev(event.Event{Type: event.Command, By: event.Client, ID: 1, Verb: "USER", Args: "alice"})
	if s := m.Session("s1"); s.User != "alice" || s.Mech != "" {
		t.Fatalf("user before login = %q mech %q", s.User, s.Mech)
	}
	f.ev(event.Event{Type: event.Response, By: event.Server, ID: 1, Verb: "USER", Status: "+OK"})
	f.ev(event.Event{Type: event.Command, By: event.Client, Offset: 12, ID: 2, Verb: "PASS", Args: "<redacted>", Redacted: true})
	f.ev(event.Event{Type: event.Response, By: event.Server, ID: 2, Verb: "PASS", Status: "-ERR", Text: "[AUTH] no"})
	f.ev(event.Event{Type: event.Login, By: event.Server, ID: 2, User: "alice", Verb: "PASS"})
	f.ev(event.Event{Type: event.State, From: "AUTH.USER", To: "TRANSACTION"})
	s := m.Session("s1")
	if !s.Open || m.Open() != 1 || s.Ended {
		t.Fatalf("open=%v model open=%d ended=%v", s.Open, m.Open(), s.Ended)
	}
	f.ev(event.Event{Type: event.SessionEnd, Reason: "client closed", DurationMS: 12.5, BytesC2S: 30, BytesS2C: 90})
	switch {
	case s.Client != "127.0.0.1:5000" || s.Upstream != "127.0.0.1:110":
		t.Errorf("addresses %q %q", s.Client, s.Upstream)
	case s.User != "alice" || s.Mech != "PASS" || s.State != "TRANSACTION":
		t.Errorf("user %q mech %q state %q", s.User, s.Mech, s.State)
	case !s.HasTLS() || s.TLS[event.Client].Version != "TLS 1.3" || s.TLS[event.Server] != nil:
		t.Errorf("tls %+v", s.TLS)
	case s.Commands != 2 || s.Replies != 2 || s.ErrReplies != 1:
		t.Errorf("commands %d replies %d err %d", s.Commands, s.Replies, s.ErrReplies)
	case s.Open || !s.Ended || m.Open() != 0 || s.BytesC2S != 30 || s.BytesS2C != 90:
		t.Errorf("end: open=%v ended=%v bytes %d/%d", s.Open, s.Ended, s.BytesC2S, s.BytesS2C)
	case s.Duration(time.Time{}) != 12500*time.Microsecond:
		t.Errorf("duration %v", s.Duration(time.Time{}))
	}
	for _, l := range lineTexts(s) {
		if strings.Contains(l, "wonderland") {
			t.Errorf("secret in line %q", l)
		}
	}
}

func TestFoldSummary(t *testing.T) {
	m := New(Options{})
	f := newFeeder(m, "s1")
	f.ev(event.Event{Type: event.Command, By: event.Client, ID: 3, Verb: "RETR", Args: "3"})
	f.ev(event.Event{Type: event.Response, By: event.Server, ID: 3, Verb: "RETR", Status: "+OK", Text: "4218 octets",
		Multiline: true, Octets: 4218, WireOctets: 4230, Lines: 87, LatencyMS: 7.6})
	l := m.Session("s1").Lines()[1]
	if l.Fold != "RETR 3 → 4,218 octets, 87 lines" || l.Cmd != "RETR 3" || !l.Foldable() {
		t.Fatalf("fold %q cmd %q", l.Fold, l.Cmd)
	}
	if got := FoldSummary("TOP 1 0", &event.Event{Octets: 16, Lines: 1}); got != "TOP 1 0 → 16 octets, 1 line" {
		t.Errorf("singular: %q", got)
	}
}

func TestViolationAttachment(t *testing.T) {
	m := New(Options{})
	f := newFeeder(m, "s1")
	f.ev(event.Event{Type: event.SessionStart})
	// Greeting, then a greeting violation after it (offset 0, line rule).
	f.ev(event.Event{Type: event.Greeting, By: event.Server, Status: "+OK", Text: "ready <>"})
	f.ev(event.Event{Type: event.Violation, Time: f.now(), By: event.Server, Rule: "POP3-GREET-002", Severity: event.Error})
	// A line check before its command (bare LF), by offset.
	f.ev(event.Event{Type: event.Violation, By: event.Client, Offset: 0, Rule: "POP3-LINE-001", Severity: event.Error})
	f.ev(event.Event{Type: event.Command, Time: f.now(), By: event.Client, Offset: 0, ID: 1, Verb: "USER", Args: "a"})
	// Body violation before its reply; post-reply check right after it.
	f.ev(event.Event{Type: event.Violation, By: event.Server, Offset: 300, Rule: "POP3-MULTI-002", Severity: event.Error})
	f.ev(event.Event{Type: event.Response, Time: f.now(), By: event.Server, ID: 1, Verb: "USER", Status: "+OK"})
	f.ev(event.Event{Type: event.Violation, Time: f.now(), By: event.Server, Offset: 250, Rule: "POP3-AUTH-002", Severity: event.Warning})
	// An execution check naming an earlier command by offset.
	f.ev(event.Event{Type: event.Command, By: event.Client, Offset: 8, ID: 2, Verb: "STAT"})
	f.ev(event.Event{Type: event.Violation, By: event.Client, Offset: 8, Rule: "POP3-STATE-001", Severity: event.Error})
	f.ev(event.Event{Type: event.Response, Time: f.now(), By: event.Server, ID: 2, Verb: "STAT", Status: "-ERR"})
	// Session-level: offset 0, session scope, at the end: a line of its own.
	f.ev(event.Event{Type: event.Violation, By: event.Client, Offset: 0, Rule: "POP3-CONN-004", Severity: event.Info})
	f.ev(event.Event{Type: event.State, Time: f.now(), From: "AUTH.READY", To: "ABORTED"})
	f.ev(event.Event{Type: event.SessionEnd})

	got := strings.Join(lineTexts(m.Session("s1")), "\n")
	want := []string{
		"S: +OK ready <> [POP3-GREET-002]",
		"C: USER a [POP3-LINE-001]",
		"S: +OK [POP3-MULTI-002] [POP3-AUTH-002]",
		"C: STAT [POP3-STATE-001]",
		"S: -ERR\n",
		"!! info POP3-CONN-004 (client): ",
	}
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("missing %q in\n%s", w, got)
		}
	}
	s := m.Session("s1")
	if s.Sev[event.Error.Rank()] != 4 || s.Sev[event.Warning.Rank()] != 1 || s.Sev[event.Info.Rank()] != 1 || s.Violations() != 6 {
		t.Errorf("severity counts %v", s.Sev)
	}
	if m.Violations(event.Error) != 4 {
		t.Errorf("model errors %d", m.Violations(event.Error))
	}
}

func TestPipelinedRepliesKeepTheirViolations(t *testing.T) {
	m := New(Options{})
	f := newFeeder(m, "s1")
	f.ev(event.Event{Type: event.Command, By: event.Client, Offset: 0, ID: 1, Verb: "RETR", Args: "1"})
	f.ev(event.Event{Type: event.Command, Time: f.now(), By: event.Client, Offset: 8, ID: 2, Verb: "RETR", Args: "2", Pipelined: true})
	at := f.now().Add(time.Millisecond)
	// Both replies in one read: same time. The body violation of the
	// second reply comes after the first reply's event.
	f.ev(event.Event{Type: event.Response, Time: at, By: event.Server, ID: 1, Verb: "RETR", Status: "+OK", Multiline: true, Octets: 10, Lines: 1})
	f.ev(event.Event{Type: event.Violation, Time: at, By: event.Server, Offset: 60, Rule: "POP3-MULTI-002", Severity: event.Error})
	f.ev(event.Event{Type: event.Violation, Time: at, By: event.Server, Offset: 70, Rule: "POP3-LINE-003", Severity: event.Info})
	f.ev(event.Event{Type: event.Response, Time: at, By: event.Server, ID: 2, Verb: "RETR", Status: "+OK", Multiline: true, Octets: 10, Lines: 1})
	ls := m.Session("s1").Lines()
	// Known limit while replies carry no offset: the first same-instant
	// violation after a reply is taken as that reply's (a post-reply
	// check); the one at another offset waits for the next reply. With
	// Offset set on replies (TestRepliesWithOffsetsAttachExactly) there
	// is no guessing. Both are shown; none is lost.
	if n := len(ls[3].Violations); n == 0 {
		t.Fatalf("second reply got no violation: %v", lineTexts(m.Session("s1")))
	}
	total := len(ls[2].Violations) + len(ls[3].Violations)
	if total != 2 {
		t.Fatalf("violations attached %d, want 2", total)
	}
}

func TestRepliesWithOffsetsAttachExactly(t *testing.T) {
	m := New(Options{})
	f := newFeeder(m, "s1")
	f.ev(event.Event{Type: event.Command, By: event.Client, ID: 1, Verb: "PASS", Args: "<redacted>"})
	f.ev(event.Event{Type: event.Response, By: event.Server, Offset: 40, ID: 1, Verb: "PASS", Status: "+OK"})
	f.ev(event.Event{Type: event.Command, By: event.Client, Offset: 10, ID: 2, Verb: "STAT"})
	// A late check naming the PASS reply by its offset.
	f.ev(event.Event{Type: event.Violation, By: event.Server, Offset: 40, Rule: "POP3-AUTH-002", Severity: event.Warning})
	if v := m.Session("s1").Lines()[1].Violations; len(v) != 1 {
		t.Fatalf("PASS reply violations %d", len(v))
	}
}

func TestGapAndDrops(t *testing.T) {
	m := New(Options{Observer: "ui"})
	m.Apply(&event.Event{Type: event.Command, Session: "s1", Seq: 5, Time: t0, By: event.Client, Verb: "NOOP"})
	m.Apply(&event.Event{Type: event.Response, Session: "s1", Seq: 9, Time: t0, By: event.Server, Verb: "NOOP", Status: "+OK"})
	s := m.Session("s1")
	if s.Missing != 7 {
		t.Fatalf("missing %d, want 4+3", s.Missing)
	}
	if ls := s.Lines(); ls[0].Kind != KindGap || ls[0].Missing != 4 || ls[2].Kind != KindGap || ls[2].Missing != 3 {
		t.Fatalf("gap lines: %v", lineTexts(s))
	}
	m.Apply(&event.Event{Type: event.Dropped, Observer: "ui", Dropped: 12})
	m.Apply(&event.Event{Type: event.Dropped, Observer: "ui", Dropped: 3})
	m.Apply(&event.Event{Type: event.Dropped, Observer: "jsonl", Dropped: 2})
	if m.Lost() != 15 {
		t.Errorf("lost %d", m.Lost())
	}
	if lb := m.LostBy(); len(lb) != 1 || lb[0].Name != "jsonl" || lb[0].Dropped != 2 {
		t.Errorf("lost by %v", lb)
	}
}

func TestRetention(t *testing.T) {
	m := New(Options{MaxLines: 20, MaxEvents: 30, MaxSessions: 10})
	f := newFeeder(m, "big")
	for i := 0; i < 100; i++ {
		f.ev(event.Event{Type: event.Command, By: event.Client, Offset: int64(i * 6), ID: uint64(i + 1), Verb: "NOOP"})
	}
	s := m.Session("big")
	if len(s.Lines()) > 20 || s.DroppedLines+len(s.Lines()) != 100 {
		t.Errorf("lines kept %d dropped %d", len(s.Lines()), s.DroppedLines)
	}
	if len(s.Events()) > 30 || s.DroppedEvents+len(s.Events()) != 100 {
		t.Errorf("events kept %d dropped %d", len(s.Events()), s.DroppedEvents)
	}
	if last := s.Lines()[len(s.Lines())-1]; last.Ev.ID != 100 {
		t.Errorf("newest line not kept: %q", last.Text)
	}
	// Sessions: the oldest closed go first, open ones stay.
	for i := 0; i < 30; i++ {
		id := string(rune('a'+i%26)) + strings.Repeat("x", i/26+1)
		m.Apply(&event.Event{Type: event.SessionStart, Session: id, Seq: 1, Time: t0})
		if i%2 == 0 {
			m.Apply(&event.Event{Type: event.SessionEnd, Session: id, Seq: 2, Time: t0})
		}
	}
	if n := len(m.Sessions()); n > 10 {
		t.Errorf("sessions kept %d", n)
	}
	if m.EvictedSessions()+len(m.Sessions()) != 31 {
		t.Errorf("evicted %d + kept %d != 31", m.EvictedSessions(), len(m.Sessions()))
	}
	total := 0
	for _, s := range m.Sessions() {
		total += s.EventCount()
	}
	if total != m.KeptEvents() {
		t.Errorf("kept events %d, model says %d", total, m.KeptEvents())
	}
	open := 0
	for _, s := range m.Sessions() {
		if s.Open {
			open++
		}
	}
	if open != m.Open() {
		t.Errorf("open count %d, model says %d", open, m.Open())
	}
}

func TestTotalEventBudget(t *testing.T) {
	m := New(Options{MaxTotalEvents: 100, MaxEvents: 30})
	for i := 0; i < 20; i++ {
		f := newFeeder(m, string(rune('a'+i)))
		f.ev(event.Event{Type: event.SessionStart})
		for j := 0; j < 8; j++ {
			f.ev(event.Event{Type: event.Command, By: event.Client, Offset: int64(6 * j), ID: uint64(j + 1), Verb: "NOOP"})
		}
		if i%3 != 0 {
			f.ev(event.Event{Type: event.SessionEnd})
		}
	}
	if m.KeptEvents() > 100 {
		t.Fatalf("kept %d events, budget 100", m.KeptEvents())
	}
	if m.EvictedSessions() == 0 || m.Session("t") == nil {
		t.Fatalf("evicted %d; newest kept: %v", m.EvictedSessions(), m.Session("t") != nil)
	}
	// Closed sessions go first: the open ones (every third) are still
	// there, the oldest closed ones are not.
	if m.Session("a") == nil || m.Session("b") != nil {
		t.Errorf("open a kept: %v, closed b gone: %v", m.Session("a") != nil, m.Session("b") == nil)
	}
}

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"plain":        "plain",
		"a\rb":         `a\rb`,
		"tab\there":    `tab\there`,
		"nul\x00":      `nul\x00`,
		`back\slash`:   `back\\slash`,
		"bad\xffutf":   `bad\xffutf`,
		"éclair":       "éclair",
		"del\x7f":      `del\x7f`,
		"bell\a\nnext": `bell\x07\nnext`,
	} {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNumbers(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 4218: "4,218", 1234567: "1,234,567", -4218: "-4,218"} {
		if got := Thousands(n); got != want {
			t.Errorf("Thousands(%d) = %q", n, got)
		}
	}
	if Millis(0.123) != "0.1 ms" || Millis(18.9) != "19 ms" || Millis(1203) != "1,203 ms" {
		t.Errorf("Millis: %q %q %q", Millis(0.123), Millis(18.9), Millis(1203))
	}
	if Bytes(565) != "565" || Bytes(4276) != "4.3K" || Duration(35*time.Millisecond) != "35ms" || Duration(125*time.Second) != "2m05s" {
		t.Errorf("Bytes/Duration")
	}
}

func TestExport(t *testing.T) {
	m := New(Options{})
	f := newFeeder(m, "s1")
	f.ev(event.Event{Type: event.SessionStart, Client: "127.0.0.1:1", Upstream: "127.0.0.1:2"})
	f.ev(event.Event{Type: event.Greeting, By: event.Server, Status: "+OK", Text: "hi\tthere"})
	f.ev(event.Event{Type: event.Command, By: event.Client, ID: 1, Verb: "PASS", Args: "<redacted>", Redacted: true})
	f.ev(event.Event{Type: event.Command, By: event.Client, Offset: 18, ID: 2, Verb: "RETR", Args: "1", Pipelined: true})
	f.ev(event.Event{Type: event.Response, By: event.Server, ID: 2, Verb: "RETR", Status: "+OK", Multiline: true, Octets: 100, WireOctets: 103, Lines: 4})
	f.ev(event.Event{Type: event.SASLResponse, By: event.Client, Offset: 26, ID: 3, Verb: "AUTH", Args: ""})
	f.ev(event.Event{Type: event.SessionEnd, Reason: "client closed"})
	s := m.Session("s1")
	var b bytes.Buffer
	if err := WriteTranscript(&b, s); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, w := range []string{
		"# popscope session s1: client 127.0.0.1:1 → upstream 127.0.0.1:2\n",
		"\nS: +OK hi\\tthere\n", "\nC: PASS <redacted>\n", "\nC: RETR 1\n# (pipelined",
		"\nS: +OK\n# RETR 1 → 100 octets, 4 lines (103 on the wire", "\nC:\n", "# at: 2ms\n",
		"# ── session end: client closed",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("transcript lacks %q:\n%s", w, out)
		}
	}
	b.Reset()
	if err := WriteEvents(&b, s); err != nil {
		t.Fatal(err)
	}
	var n int
	_, bad, err := ReadEvents(&b, 0, func(e *event.Event) {
		n++
		if e.Session != "s1" || e.Seq != uint64(n) {
			t.Errorf("event %d: %+v", n, e)
		}
	})
	if err != nil || bad != 0 || n != len(s.Events()) {
		t.Fatalf("round trip: n=%d bad=%d err=%v", n, bad, err)
	}
}

func TestReadEventsSkipsJunk(t *testing.T) {
	in := `{"type":"note","session":"a","seq":1,"detail":"x"}

not json
{"no":"type"}
{"type":"note","session":"a","seq":2}
`
	n, bad, err := ReadEvents(strings.NewReader(in), 0, func(*event.Event) {})
	if n != 2 || bad != 2 || err != nil {
		t.Fatalf("n=%d bad=%d err=%v", n, bad, err)
	}
	var e event.Event
	if err := json.Unmarshal([]byte(`{"type":"tls","tls":{"leg":"server","mode":"stls"}}`), &e); err != nil || e.TLS.Leg != event.Server {
		t.Fatalf("tls leg: %v %+v", err, e.TLS)
	}
}
