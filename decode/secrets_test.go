package decode_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/popscope/popscope/decode"
	"github.com/popscope/popscope/decode/transcript"
	"github.com/popscope/popscope/event"
)

// Secrets must not reach any event, whatever rule quotes the line they
// are on (bare LF, bare CR, 8-bit, a line cut by the close, IMAP on the
// POP3 port).
func TestSecretsNeverInEvents(t *testing.T) {
	const secret = "Sekr3t-pw"
	// base64("\x00alice\x00Sekr3t-pw")
	const plain = "AGFsaWNlAFNla3IzdC1wdw=="
	cases := []struct{ name, script string }{
		{"PASS with bare LF", "S: +OK hi\nC: USER alice\nS: +OK\nC: PASS " + secret + `\n` + "\nS: +OK\nC: QUIT\nS: +OK\n"},
		{"PASS with bare CR", "S: +OK hi\nC: USER alice\nS: +OK\nC: PASS " + secret + `\rx\r\n` + "\nS: -ERR\n"},
		{"PASS with 8-bit", "S: +OK hi\nC: USER alice\nS: +OK\nC: PASS " + secret + `\xff` + "\nS: -ERR\n"},
		{"PASS cut by the close", "S: +OK hi\nC: USER alice\nS: +OK\nC: PASS " + secret + `\` + "\n# close: client\n"},
		{"AUTH initial response with bare LF", "S: +OK hi\nC: AUTH PLAIN " + plain + `\n` + "\nS: +OK\n"},
		{"SASL response with bare CR", "S: +OK hi\nC: AUTH PLAIN\nS: + \nC: " + plain + `\r\r\n` + "\nS: +OK\n"},
		{"SASL response cut by the close", "S: +OK hi\nC: AUTH PLAIN\nS: + \nC: " + plain + `\` + "\n# close: client\n"},
		{"APOP digest with bare LF", "S: +OK hi <1.2@h>\nC: APOP alice " + "5ekr3t" + strings.Repeat("0", 26) + `\n` + "\nS: -ERR\n"},
		{"IMAP LOGIN on the POP3 port", "S: +OK hi\nC: a1 LOGIN alice " + secret + "\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			steps, err := transcript.ParseString(c.script)
			if err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			s := decode.New(decode.Options{Session: "t"}, func(e *event.Event) {
				b, _ := json.Marshal(e)
				out.Write(b)
				out.WriteByte('\n')
			})
			end := transcript.Replay(steps, s, time.Unix(0, 0))
			s.Close(event.Client, end)
			s.Close(event.Server, end)
			s.Finish(end)
			for _, leak := range []string{secret, plain, "5ekr3t"} {
				if strings.Contains(out.String(), leak) {
					t.Errorf("%q leaked:\n%s", leak, out.String())
				}
			}
		})
	}
}
