package otel

import (
	"strings"
	"testing"

	"github.com/popscope/popscope/event"
)

// TestNoSecretReachesTelemetry feeds events as they would look with
// --reveal-secrets (nothing redacted at the source) plus decoder details
// that quote credential lines, and proves that no span name, attribute,
// span event or metric attribute carries any of the secrets.
func TestNoSecretReachesTelemetry(t *testing.T) {
	secrets := []string{
		"hunter2",                          // PASS
		"c4c9334bac560ecc979e58001b3e22fb", // APOP digest
		"AGFsaWNlAGh1bnRlcjI=",             // AUTH PLAIN initial response
		"dXNlciBzM2NyM3Q=",                 // SASL response line
		"PDM0NTYxNzEyMjQ4MDMwOTg=",         // SASL challenge
		"Zm9vYmFyYmF6",                     // reply text of AUTH (SASL additional data)
		"s3cr3t-rpop",                      // RPOP
		"imap-pass-9",                      // a client line quoted by an opaque detail
		"bob",                              // user name (off by default)
	}
	for _, userName := range []bool{false, true} {
		h := newHarness(t, WithUserName(userName))
		s := newScript("leak")
		h.feed(
			s.at(0, event.Event{Type: event.SessionStart, Client: "127.0.0.1:5000", Upstream: "127.0.0.1:110"}),
			s.at(1, event.Event{Type: event.Connected}),
			s.at(2, event.Event{Type: event.Greeting, Status: "+OK", Text: "ready <1.2@x>", Timestamp: "<1.2@x>"}),
			s.at(3, event.Event{Type: event.Command, ID: 1, Offset: 0, Verb: "USER", Args: "bob"}),
			s.at(4, event.Event{Type: event.Response, ID: 1, Verb: "USER", Status: "+OK"}),
			// A CR inside the PASS line: the decoder quotes the line.
			s.at(5, event.Event{Type: event.Violation, By: event.Client, Offset: 10, Rule: "POP3-LINE-002", Severity: event.Error,
				Detail: `CR inside a line: "PASS hunter2\rx"`}),
			s.at(5, event.Event{Type: event.Command, ID: 2, Offset: 10, Verb: "PASS", Args: "hunter2\rx"}),
			s.at(6, event.Event{Type: event.Response, ID: 2, Verb: "PASS", Status: "-ERR", Text: "[AUTH] Authentication failed."}),
			s.at(7, event.Event{Type: event.Command, ID: 3, Offset: 26, Verb: "APOP", Args: "bob c4c9334bac560ecc979e58001b3e22fb"}),
			s.at(8, event.Event{Type: event.Response, ID: 3, Verb: "APOP", Status: "-ERR"}),
			s.at(9, event.Event{Type: event.Command, ID: 4, Offset: 70, Verb: "RPOP", Args: "s3cr3t-rpop"}),
			s.at(9.5, event.Event{Type: event.Response, ID: 4, Verb: "RPOP", Status: "-ERR"}),
			s.at(10, event.Event{Type: event.Command, ID: 5, Offset: 90, Verb: "AUTH", Args: "PLAIN AGFsaWNlAGh1bnRlcjI="}),
			s.at(11, event.Event{Type: event.Response, ID: 5, Verb: "AUTH", Status: "-ERR", Text: "Zm9vYmFyYmF6"}),
			s.at(12, event.Event{Type: event.Command, ID: 6, Offset: 130, Verb: "AUTH", Args: "LOGIN"}),
			s.at(13, event.Event{Type: event.Continuation, ID: 6, Verb: "AUTH", Status: "+", Text: "PDM0NTYxNzEyMjQ4MDMwOTg="}),
			// A bare LF on the SASL line: quoted by the decoder.
			s.at(14, event.Event{Type: event.Violation, By: event.Client, Offset: 142, Rule: "POP3-LINE-001", Severity: event.Error,
				Detail: `client line ends in bare LF: "dXNlciBzM2NyM3Q="`}),
			s.at(14, event.Event{Type: event.SASLResponse, ID: 6, Offset: 142, Verb: "AUTH", Args: "dXNlciBzM2NyM3Q="}),
			// A server-side violation inside the SASL exchange quoting the challenge.
			s.at(14.5, event.Event{Type: event.Violation, By: event.Server, Offset: 400, Rule: "POP3-LINE-002", Severity: event.Error,
				Detail: `CR inside a line: "+ PDM0NTYxNzEyMjQ4MDMwOTg=\r"`}),
			s.at(15, event.Event{Type: event.Response, ID: 6, Verb: "AUTH", Status: "+OK", Text: "Zm9vYmFyYmF6"}),
			s.at(15, event.Event{Type: event.Login, ID: 6, Verb: "AUTH LOGIN", User: "bob"}),
			s.at(16, event.Event{Type: event.Note, By: event.Client, Detail: `resynchronised after "PASS hunter2"`}),
			s.at(17, event.Event{Type: event.Opaque, By: event.Client, Rule: "POP3-CONN-005",
				Detail: `client sent tagged command "a1 LOGIN bob imap-pass-9": IMAP, not POP3 (port 143/993?); decoding stops`}),
			s.at(18, event.Event{Type: event.SessionEnd, Reason: "client closed", User: "bob"}),
		)
		spans := h.spans.GetSpans()
		if len(spans) == 0 {
			t.Fatal("no spans")
		}
		text := allText(spans, h.metrics())
		for _, sec := range secrets {
			if sec == "bob" && userName {
				continue
			}
			if strings.Contains(text, sec) {
				t.Errorf("userName=%v: secret %q reached the telemetry:\n%s", userName, sec, excerpt(text, sec))
			}
		}
		if userName && !strings.Contains(text, "user.name bob") {
			t.Error("WithUserName(true) did not export user.name")
		}
		// The evidence is still there, minus the secret.
		if !strings.Contains(text, "POP3-LINE-002") || !strings.Contains(text, "pop3.auth.mechanism PLAIN") {
			t.Errorf("violations or mechanism missing:\n%s", text)
		}
	}
}

func excerpt(text, sub string) string {
	i := strings.Index(text, sub)
	lo, hi := max(0, i-120), min(len(text), i+len(sub)+40)
	return text[lo:hi]
}
