package jsonl

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/popscope/popscope/decode"
	"github.com/popscope/popscope/decode/transcript"
	"github.com/popscope/popscope/event"
)

// A session with every kind of secret, decoded and written as JSON Lines:
// no secret may appear, every line must be an event with type and session.
func TestSecretsNeverWritten(t *testing.T) {
	const pw = "hunter2-very-secret"
	// PLAIN "\x00alice\x00hunter2-very-secret" in base64.
	const plain = "AGFsaWNlAGh1bnRlcjItdmVyeS1zZWNyZXQ="
	steps := transcript.MustParse(`S: +OK ready <1.2@host>
C: USER alice
S: +OK
C: PASS ` + pw + `
S: -ERR [AUTH] no
C: APOP alice 0123456789abcdef0123456789abcdef
S: -ERR [AUTH] no
C: AUTH PLAIN ` + plain + `
S: -ERR [AUTH] no
C: AUTH PLAIN
S: +
C: ` + plain + `
S: +OK
C: QUIT
S: +OK
`)
	var buf bytes.Buffer
	w := New(&buf)
	s := decode.New(decode.Options{Session: "s1"}, w.Observe)
	end := transcript.Replay(steps, s, time.Unix(0, 0))
	s.Finish(end)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, secret := range []string{pw, plain, "0123456789abcdef0123456789abcdef"} {
		if strings.Contains(out, secret) {
			t.Errorf("secret %q written:\n%s", secret, out)
		}
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var redacted int
	for _, l := range lines {
		var e event.Event
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("not JSON: %q: %v", l, err)
		}
		if e.Type == "" || e.Session != "s1" || e.Time.IsZero() && e.Seq == 0 {
			t.Errorf("incomplete event %q", l)
		}
		if e.Redacted {
			redacted++
		}
	}
	if redacted < 4 {
		t.Errorf("%d redacted events, want at least 4 (PASS, APOP, AUTH IR, SASL response)", redacted)
	}
	if n := w.Written(); n != int64(len(lines)) {
		t.Errorf("Written %d, lines %d", n, len(lines))
	}
}

func TestCloseIsIdempotentAndFlushes(t *testing.T) {
	var buf bytes.Buffer
	w := New(&buf)
	w.Observe(&event.Event{Type: event.Note, Session: "x", Detail: "<&>"})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"detail":"<&>"`) {
		t.Errorf("HTML escaping or missing flush: %q", buf.String())
	}
}
