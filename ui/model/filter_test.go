package model

import (
	"strings"
	"testing"

	"github.com/popscope/popscope/event"
)

// filterModel: alice (clean, RETR), bob (DROP-001 on a RETR, a -ERR),
// carol (TLS, SASL, still open).
func filterModel() *Model {
	m := New(Options{})
	a := newFeeder(m, "a11ce0000001")
	a.ev(event.Event{Type: event.SessionStart, Client: "127.0.0.1:50001"})
	a.ev(event.Event{Type: event.Greeting, By: event.Server, Status: "+OK", Text: "ready"})
	a.ev(event.Event{Type: event.Command, By: event.Client, ID: 1, Verb: "USER", Args: "alice"})
	a.ev(event.Event{Type: event.Response, By: event.Server, ID: 1, Verb: "USER", Status: "+OK"})
	a.ev(event.Event{Type: event.Login, User: "alice", Verb: "PASS"})
	a.ev(event.Event{Type: event.Command, By: event.Client, Offset: 12, ID: 2, Verb: "RETR", Args: "1"})
	a.ev(event.Event{Type: event.Response, By: event.Server, ID: 2, Verb: "RETR", Status: "+OK", Multiline: true, Octets: 100, Lines: 5})
	a.ev(event.Event{Type: event.State, From: "UPDATE", To: "CLOSED"})
	a.ev(event.Event{Type: event.SessionEnd})

	b := newFeeder(m, "b0b000000002")
	b.ev(event.Event{Type: event.SessionStart, Client: "127.0.0.1:50002"})
	b.ev(event.Event{Type: event.Command, By: event.Client, ID: 1, Verb: "USER", Args: "bob"})
	b.ev(event.Event{Type: event.Login, User: "bob", Verb: "PASS"})
	b.ev(event.Event{Type: event.Command, By: event.Client, Offset: 10, ID: 2, Verb: "RETR", Args: "3"})
	b.ev(event.Event{Type: event.Violation, By: event.Server, Offset: 131, Rule: "POP3-DROP-001", Severity: event.Error, Detail: "+OK to RETR 3 but the maildrop has 2 messages"})
	b.ev(event.Event{Type: event.Response, Time: b.now(), By: event.Server, ID: 2, Verb: "RETR", Status: "+OK", Multiline: true, Octets: 35, Lines: 3})
	b.ev(event.Event{Type: event.Command, By: event.Client, Offset: 18, ID: 3, Verb: "DELE", Args: "9"})
	b.ev(event.Event{Type: event.Response, By: event.Server, ID: 3, Verb: "DELE", Status: "-ERR", Text: "no such message"})
	b.ev(event.Event{Type: event.Command, By: event.Client, Offset: 26, ID: 4, Verb: "NOOP"})
	b.ev(event.Event{Type: event.Violation, By: event.Client, Offset: 26, Rule: "POP3-SYNTAX-002", Severity: event.Info})
	b.ev(event.Event{Type: event.SessionEnd})

	c := newFeeder(m, "ca4010000003")
	c.ev(event.Event{Type: event.SessionStart, Client: "10.0.0.7:40000"})
	c.ev(event.Event{Type: event.TLS, TLS: &event.TLSInfo{Leg: event.Client, Mode: "implicit"}})
	c.ev(event.Event{Type: event.Command, By: event.Client, ID: 1, Verb: "AUTH", Args: "PLAIN"})
	c.ev(event.Event{Type: event.SASLResponse, By: event.Client, Offset: 12, ID: 1, Verb: "AUTH", Args: "<redacted>"})
	c.ev(event.Event{Type: event.Response, By: event.Server, ID: 1, Verb: "AUTH", Status: "+OK", Text: "welcome carol"})
	c.ev(event.Event{Type: event.Login, User: "carol", Verb: "AUTH PLAIN"})
	c.ev(event.Event{Type: event.State, From: "AUTH.SASL", To: "TRANSACTION"})
	return m
}

func matchingSessions(t *testing.T, m *Model, expr string) string {
	t.Helper()
	f, err := ParseFilter(expr)
	if err != nil {
		t.Fatalf("ParseFilter(%q): %v", expr, err)
	}
	var ids []string
	for _, s := range m.Sessions() {
		if f.MatchSession(s) {
			ids = append(ids, s.ID[:1])
		}
	}
	return strings.Join(ids, "")
}

func matchingLines(t *testing.T, m *Model, id, expr string) []string {
	t.Helper()
	f, err := ParseFilter(expr)
	if err != nil {
		t.Fatalf("ParseFilter(%q): %v", expr, err)
	}
	s := m.Session(id)
	var out []string
	for _, l := range s.Lines() {
		if f.MatchLine(s, l) {
			out = append(out, l.Text)
		}
	}
	return out
}

func TestFilterSessions(t *testing.T) {
	m := filterModel()
	for _, c := range []struct{ expr, want string }{
		{"", "abc"},
		{"   ", "abc"},
		{"user:alice", "a"},
		{"user:ALICE", "a"},
		{"user:*o*", "bc"},
		{"user:a*", "a"},
		{"cmd:RETR", "ab"},
		{"cmd:retr", "ab"},
		{"cmd:AUTH", "c"},
		{"cmd:DELE err", "b"},
		{"cmd:RETR err", ""}, // no RETR line is a -ERR
		{"rule:POP3-DROP-*", "b"},
		{"rule:DROP-001", "b"},
		{"rule:*-001", "b"},
		{"rule:POP3-SYNTAX-*", "b"},
		{"sev:error", "b"},
		{"sev:info", "b"},
		{"sev:warning", "b"},
		{"err", "b"},
		{"!err", "ac"},
		{"tls", "c"},
		{"!tls", "ab"},
		{"open", "c"},
		{"closed", "ab"},
		{"state:TRANS*", "c"},
		{"state:closed", "a"},
		{"client:127.0.0.1:*", "ab"},
		{"client:10.0.0.7", "c"},
		{"id:b0b", "b"},
		{"maildrop", "b"},
		{"MAILDROP", "b"},
		{`"no such"`, "b"},
		{`"no such" user:alice`, ""},
		{"welcome", "c"},
		{"carol", "c"}, // free text matches the user too
		{"!rule:POP3-DROP-*", "ac"},
		{"user:bob cmd:RETR sev:error", "b"},
		{"user:bob cmd:USER sev:error", ""}, // all line terms on one line
	} {
		if got := matchingSessions(t, m, c.expr); got != c.want {
			t.Errorf("%q matches sessions %q, want %q", c.expr, got, c.want)
		}
	}
}

func TestFilterLines(t *testing.T) {
	m := filterModel()
	got := matchingLines(t, m, "b0b000000002", "cmd:RETR")
	if len(got) != 2 || got[0] != "C: RETR 3" || got[1] != "S: +OK" {
		t.Errorf("cmd:RETR lines %q", got)
	}
	got = matchingLines(t, m, "b0b000000002", "rule:POP3-DROP-*")
	if len(got) != 1 || got[0] != "S: +OK" {
		t.Errorf("rule lines %q", got)
	}
	got = matchingLines(t, m, "b0b000000002", "err")
	if len(got) != 1 || got[0] != "S: -ERR no such message" {
		t.Errorf("err lines %q", got)
	}
	// Session terms do not filter lines.
	if got := matchingLines(t, m, "a11ce0000001", "user:alice"); len(got) != len(m.Session("a11ce0000001").Lines()) {
		t.Errorf("user:alice filtered lines: %q", got)
	}
	// Free text matching the session (its user) keeps every line.
	if got := matchingLines(t, m, "ca4010000003", "carol"); len(got) != len(m.Session("ca4010000003").Lines()) {
		t.Errorf("carol lines: %q", got)
	}
	if got := matchingLines(t, m, "b0b000000002", "!cmd:RETR cmd:*"); len(got) != 4 {
		t.Errorf("!cmd:RETR cmd:* lines %q", got)
	}
}

func TestFilterErrors(t *testing.T) {
	for _, expr := range []string{"sev:fatal", "foo:bar", "user:", `"open`, "rule:"} {
		if _, err := ParseFilter(expr); err == nil {
			t.Errorf("ParseFilter(%q) accepted", expr)
		} else if !strings.HasPrefix(err.Error(), "filter: ") {
			t.Errorf("error %q lacks the package prefix", err)
		}
	}
	// Colons in free text that is not a key: addresses, times.
	for _, expr := range []string{"127.0.0.1:1110", "10:00:01", "a-b:c"} {
		if _, err := ParseFilter(expr); err != nil {
			t.Errorf("ParseFilter(%q): %v", expr, err)
		}
	}
	f, _ := ParseFilter("  user:alice   err ")
	if f.String() != "user:alice   err" || f.Empty() || !f.HasLineTerms() {
		t.Errorf("String %q Empty %v HasLineTerms %v", f.String(), f.Empty(), f.HasLineTerms())
	}
	var nilF *Filter
	if !nilF.Empty() || nilF.HasLineTerms() || nilF.String() != "" {
		t.Error("nil filter")
	}
}

func TestGlob(t *testing.T) {
	for _, c := range []struct {
		p, s string
		want bool
	}{
		{"POP3-DROP-*", "POP3-DROP-001", true},
		{"pop3-drop-*", "POP3-DROP-001", true},
		{"POP3-DROP-*", "POP3-MULTI-002", false},
		{"*", "", true},
		{"", "", true},
		{"", "x", false},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"*-00?", "POP3-LINE-001", true},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
		{"**", "anything", true},
	} {
		if got := Glob(c.p, c.s); got != c.want {
			t.Errorf("Glob(%q, %q) = %v", c.p, c.s, got)
		}
	}
	if !ContainsFold("Hello World", "o w") || ContainsFold("abc", "abcd") || IndexFold("xxABC", "abc") != 2 {
		t.Error("ContainsFold/IndexFold")
	}
}

func TestFilterTermsDocumentEveryKey(t *testing.T) {
	var doc strings.Builder
	for _, ft := range FilterTerms {
		doc.WriteString(ft.Syntax + " ")
	}
	for k := range filterKeys {
		if !strings.Contains(doc.String(), k+":") {
			t.Errorf("FilterTerms does not document %s:", k)
		}
	}
	for w := range filterWords {
		if !strings.Contains(doc.String(), w) {
			t.Errorf("FilterTerms does not document %s", w)
		}
	}
}
