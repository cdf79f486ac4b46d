package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/popscope/popscope/event"
)

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const cleanTranscript = `S: +OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>
C: APOP mrose c4c9334bac560ecc979e58001b3e22fb
S: +OK mrose's maildrop has 1 message (9 octets)
C: RETR 1
S: +OK 9 octets
S: ..hello
S: .
C: QUIT
S: +OK bye
`

func TestCheckExitCodes(t *testing.T) {
	clean := writeFile(t, "clean.txt", cleanTranscript)
	broken := writeFile(t, "broken.txt", strings.Replace(cleanTranscript, "S: ..hello", "S: .hello", 1))
	garbage := writeFile(t, "garbage.txt", "this is not a transcript\n")
	cases := []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"clean", []string{clean}, 0, "0 error"},
		{"unstuffed dot is an error", []string{broken}, 1, "POP3-MULTI-002"},
		{"unusable input", []string{garbage}, 2, ""},
		{"missing file", []string{filepath.Join(t.TempDir(), "nope")}, 2, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(append([]string{"check"}, c.args...), &out, &errb)
			if code != c.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, c.code, out.String(), errb.String())
			}
			if !strings.Contains(out.String(), c.out) {
				t.Errorf("output lacks %q:\n%s", c.out, out.String())
			}
		})
	}
}

func TestCheckJSONAndLineNumbers(t *testing.T) {
	broken := writeFile(t, "broken.txt", strings.Replace(cleanTranscript, "S: ..hello", "S: .hello", 1))
	var out, errb bytes.Buffer
	if code := run([]string{"check", "--json", broken}, &out, &errb); code != 1 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var found bool
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var e event.Event
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("bad JSON line %q: %v", l, err)
		}
		if e.Type != event.Violation {
			t.Errorf("non-violation event without --all: %s", l)
		}
		if e.Rule == "POP3-MULTI-002" && e.By == event.Server && e.Severity == event.Error {
			found = true
		}
	}
	if !found {
		t.Errorf("no MULTI-002 in %s", out.String())
	}
	out.Reset()
	run([]string{"check", broken}, &out, &errb)
	if !strings.Contains(out.String(), "broken.txt:6: error POP3-MULTI-002") {
		t.Errorf("human output does not point at line 6:\n%s", out.String())
	}
}

func TestRulesCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"rules"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if n := strings.Count(out.String(), "\n"); n != 100 {
		t.Errorf("listed %d rules, want 100", n)
	}
	out.Reset()
	if code := run([]string{"rules", "drop-006"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "POP3-DROP-006  (warning") {
		t.Errorf("explain: exit %d\n%s", code, out.String())
	}
	out.Reset()
	run([]string{"rules", "--severity", "error", "TLS-*"}, &out, &errb)
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if !strings.HasPrefix(l, "POP3-TLS-") || !strings.Contains(l, " error ") {
			t.Errorf("filter leaked %q", l)
		}
	}
	if code := run([]string{"rules", "NOPE-001"}, &out, &errb); code != 1 {
		t.Errorf("unknown rule: exit %d, want 1", code)
	}
}
