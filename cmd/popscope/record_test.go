package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/popscope/popscope/event"
	"github.com/popscope/popscope/exporters/record"
)

// writeRecording records a scripted session ("C:…"/"S:…" chunks) with the
// recorder and returns the file.
func writeRecording(t *testing.T, chunks ...string) string {
	t.Helper()
	r, err := record.New(record.Options{Dir: filepath.Join(t.TempDir(), "rec"), Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s := r.Open("cafe01", start, "127.0.0.1:40000", "127.0.0.1:110")
	for i, c := range chunks {
		side := event.Server
		if strings.HasPrefix(c, "C:") {
			side = event.Client
		}
		s.Data(side, start.Add(time.Duration(i+1)*time.Millisecond), []byte(c[2:]))
	}
	s.Event(&event.Event{Type: event.SessionEnd, Time: start.Add(time.Second), Reason: "client closed"})
	s.Close(start.Add(time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	return s.Path()
}

var sessionChunks = []string{
	"S:+OK ready <1.2@host>\r\n", "C:USER alice\r\n", "S:+OK\r\n", "C:PASS alicepw\r\n", "S:+OK in\r\n",
	"C:RETR 1\r\n", "S:+OK\r\nSubject: x\r\n\r\nbody\r\n.\r\n", "C:QUIT\r\n", "S:+OK bye\r\n",
}

func TestCheckRecording(t *testing.T) {
	clean := writeRecording(t, sessionChunks...)
	broken := writeRecording(t, append(append([]string(nil), sessionChunks[:6]...), "S:+OK\r\n.hello\r\n.\r\n", "C:QUIT\r\n", "S:+OK\r\n")...)
	var out, errb bytes.Buffer
	if code := run([]string{"check", clean}, &out, &errb); code != 0 {
		t.Fatalf("clean recording: exit %d\n%s%s", code, out.String(), errb.String())
	}
	out.Reset()
	if code := run([]string{"check", broken}, &out, &errb); code != 1 {
		t.Fatalf("broken recording: exit %d\n%s%s", code, out.String(), errb.String())
	}
	// The violation is located at the data record holding the body (line
	// numbers count the header as 1).
	if !strings.Contains(out.String(), "POP3-MULTI-002") || !strings.Contains(out.String(), filepath.Base(broken)+":8: error") {
		t.Errorf("output:\n%s", out.String())
	}
	// A transcript still works, and a cut recording is reported.
	full, _ := os.ReadFile(clean)
	cut := filepath.Join(t.TempDir(), "cut.rec.jsonl")
	os.WriteFile(cut, full[:bytes.LastIndexByte(full[:len(full)-1], '\n')+10], 0o600)
	errb.Reset()
	if code := run([]string{"check", cut}, &out, &errb); code == 2 || !strings.Contains(errb.String(), "incomplete") || !strings.Contains(errb.String(), "no end record") {
		t.Errorf("cut recording: exit %d\n%s", code, errb.String())
	}
}

func TestRecordInfoTranscript(t *testing.T) {
	f := writeRecording(t, sessionChunks...)
	var out, errb bytes.Buffer
	if code := run([]string{"record", "info", f}, &out, &errb); code != 0 || !strings.Contains(out.String(), "session cafe01") ||
		!strings.Contains(out.String(), "secrets redacted") {
		t.Errorf("info: %d %s %s", code, out.String(), errb.String())
	}
	out.Reset()
	if code := run([]string{"record", "transcript", f}, &out, &errb); code != 0 || !strings.Contains(out.String(), "C: PASS <redacted>\n") ||
		!strings.Contains(out.String(), "# close: client") {
		t.Errorf("transcript: %d\n%s", code, out.String())
	}
	if code := run([]string{"record", "info", filepath.Join(t.TempDir(), "none")}, &out, &errb); code != 2 {
		t.Errorf("missing file: exit %d", code)
	}
}

func TestExportPcapCommand(t *testing.T) {
	f := writeRecording(t, sessionChunks...)
	out := filepath.Join(t.TempDir(), "x.pcapng")
	var o, e bytes.Buffer
	if code := run([]string{"export", "pcap", f, "-o", out, "--port", "2110"}, &o, &e); code != 0 {
		t.Fatalf("exit %d: %s", code, e.String())
	}
	b, err := os.ReadFile(out)
	if err != nil || len(b) < 100 || !bytes.HasPrefix(b, []byte{0x0a, 0x0d, 0x0d, 0x0a}) {
		t.Errorf("not a pcapng file (%v, %d bytes)", err, len(b))
	}
	if !strings.Contains(e.String(), "tshark -r "+out+" -d tcp.port==2110,pop") {
		t.Errorf("stderr: %s", e.String())
	}
	if code := run([]string{"export", "pcap", f}, &o, &e); code != 2 {
		t.Errorf("no -o: exit %d", code)
	}
}

func TestReplayClientCommandUnusable(t *testing.T) {
	f := writeRecording(t, sessionChunks...)
	var o, e bytes.Buffer
	for _, args := range [][]string{
		{"replay", "client", f},                                           // no --upstream
		{"replay", "client", f, "--upstream", "127.0.0.1:1"},              // redacted PASS, no --pass
		{"replay", "client", "--upstream", "127.0.0.1:1", "/nonexistent"}, // no file
		{"replay", "server", "/nonexistent"},
		{"replay", "nothing"},
	} {
		e.Reset()
		if code := run(args, &o, &e); code != 2 {
			t.Errorf("%v: exit %d, want 2\n%s", args, code, e.String())
		}
	}
	t.Setenv("POPSCOPE_PASS", "alicepw")
	if code := run([]string{"replay", "client", f, "--upstream", "127.0.0.1:1", "--timeout", "2s"}, &o, &e); code != 2 || !strings.Contains(e.String(), "connect") && !strings.Contains(e.String(), "refused") {
		t.Errorf("unreachable upstream: exit %d\n%s", code, e.String())
	}
}

func TestProxyRecordFlags(t *testing.T) {
	var o, e bytes.Buffer
	if code := run([]string{"proxy", "--upstream", "127.0.0.1:1", "--record-secrets"}, &o, &e); code != 2 || !strings.Contains(e.String(), "--record-secrets needs --record") {
		t.Errorf("exit %d: %s", code, e.String())
	}
}
