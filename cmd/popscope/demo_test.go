package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/popscope/popscope/event"
	"github.com/popscope/popscope/internal/demo"
)

// lockedBuffer is a bytes.Buffer safe for the goroutines run uses.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// demoSession is what the scripted client does in one session: the
// command verbs in order and the status each must get.
type demoSession struct {
	verbs  []string
	status []string
}

func expectedDemoSessions() []demoSession {
	ok := func(verbs ...string) demoSession {
		s := demoSession{verbs: verbs}
		for range verbs {
			s.status = append(s.status, "+OK")
		}
		return s
	}
	s1 := []string{"CAPA", "USER", "PASS", "STAT", "LIST", "UIDL"}
	for range demo.Messages() {
		s1 = append(s1, "RETR")
	}
	s1 = append(s1, "TOP", "DELE", "RSET", "NOOP", "QUIT")
	return []demoSession{
		ok(s1...),
		ok("CAPA", "APOP", "CAPA", "STAT", "LIST", "UIDL", "QUIT"),
		ok("CAPA", "AUTH", "LIST", "RETR", "QUIT"),
		{
			verbs:  []string{"CAPA", "STAT", "PASS", "USER", "PASS", "USER", "PASS", "RETR", "TOP", "DELE", "RETR"},
			status: []string{"+OK", "-ERR", "-ERR", "+OK", "-ERR", "+OK", "+OK", "-ERR", "-ERR", "+OK", "-ERR"},
		},
	}
}

// The rules of docs/pop3-rules.md the sessions trigger. The misbehaving
// session (4) must trigger exactly these; the well-behaved ones may get
// no error, only the cleartext warnings, and info findings are logged.
var (
	misbehaveRules = []string{
		"POP3-STATE-001",  // STAT before login
		"POP3-STATE-003",  // PASS without USER
		"POP3-SYNTAX-002", // "user demo": lower-case keyword (info)
		"POP3-SYNTAX-005", // "TOP 1": missing line count
		"POP3-CONN-004",   // closed without QUIT after DELE (info)
		"POP3-AUTH-001",   // PASS in the clear (warning)
		"POP3-AUTH-002",   // USER and SASL PLAIN offered without TLS (warning)
	}
	// cleanWarnings are the only warnings the well-behaved sessions may
	// get: the demo has no TLS, so passwords travel in the clear.
	cleanWarnings = []string{"POP3-AUTH-001", "POP3-AUTH-002"}
)

func TestDemoScriptOnce(t *testing.T) {
	file := filepath.Join(t.TempDir(), "events.jsonl")
	var stdout, stderr lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"demo", "--listen", "127.0.0.1:0", "--script", "--once", "--quiet", "--events", file}, &stdout, &stderr)
	}()
	var code int
	select {
	case code = <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("demo --once did not exit\nstderr:\n%s", stderr.String())
	}
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "script: ok: 4 sessions") {
		t.Errorf("script report:\n%s", stdout.String())
	}
	for _, want := range []string{"curl pop3://127.0.0.1:", "/1 -u demo:demo", "import poplib", "POP3 server with 6 sample messages"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}

	sessions := readDemoEvents(t, file)
	want := expectedDemoSessions()
	if len(sessions) != len(want) {
		t.Fatalf("%d sessions in the events, want %d", len(sessions), len(want))
	}
	for i, evs := range sessions {
		n := i + 1
		checkExchanges(t, n, evs, want[i])
		rules := map[string]event.Severity{}
		for _, e := range evs {
			if e.Type == event.Violation {
				rules[e.Rule] = e.Severity
				t.Logf("session %d: %s %s by %s: %s", n, e.Rule, e.Severity, e.By, e.Detail)
			}
		}
		if !slices.ContainsFunc(evs, func(e *event.Event) bool { return e.Type == event.SessionEnd }) {
			t.Errorf("session %d: no session_end", n)
		}
		if n < 4 {
			for r, sev := range rules {
				if sev == event.Error || sev == event.Warning && !slices.Contains(cleanWarnings, r) {
					t.Errorf("session %d (well-behaved): unexpected %s %s", n, sev, r)
				}
			}
			continue
		}
		for _, r := range misbehaveRules {
			if _, ok := rules[r]; !ok {
				t.Errorf("session 4 (misbehaving): %s not reported", r)
			}
		}
		for r := range rules {
			if !slices.Contains(misbehaveRules, r) {
				t.Errorf("session 4 (misbehaving): unexpected %s %s", rules[r], r)
			}
		}
	}
}

// readDemoEvents returns the events of each session, sessions in the
// order they started.
func readDemoEvents(t *testing.T, file string) [][]*event.Event {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	by := map[string][]*event.Event{}
	start := map[string]time.Time{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		e := new(event.Event)
		if err := json.Unmarshal(sc.Bytes(), e); err != nil {
			t.Fatalf("bad event line %q: %v", sc.Text(), err)
		}
		if e.Type == event.SessionStart {
			start[e.Session] = e.Time
		}
		if e.Type == event.Dropped {
			t.Errorf("events were dropped: %+v", e)
		}
		by[e.Session] = append(by[e.Session], e)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 0, len(by))
	for id := range by {
		if _, ok := start[id]; !ok {
			t.Fatalf("session %q has no session_start", id)
		}
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return start[ids[i]].Before(start[ids[j]]) })
	out := make([][]*event.Event, len(ids))
	for i, id := range ids {
		evs := by[id]
		sort.SliceStable(evs, func(a, b int) bool { return evs[a].Seq < evs[b].Seq })
		out[i] = evs
	}
	return out
}

// checkExchanges verifies that every scripted command appears, in order,
// each with a response of the expected status.
func checkExchanges(t *testing.T, n int, evs []*event.Event, want demoSession) {
	t.Helper()
	var verbs []string
	ids := map[uint64]string{}
	resp := map[uint64]string{}
	for _, e := range evs {
		switch e.Type {
		case event.Command:
			verbs = append(verbs, e.Verb)
			ids[e.ID] = e.Verb
		case event.Response:
			resp[e.ID] = e.Status
		}
	}
	if !slices.Equal(verbs, want.verbs) {
		t.Errorf("session %d: commands %v, want %v", n, verbs, want.verbs)
		return
	}
	for id := uint64(1); id <= uint64(len(want.verbs)); id++ {
		st, ok := resp[id]
		if !ok {
			t.Errorf("session %d: no response to command %d (%s)", n, id, ids[id])
			continue
		}
		if w := want.status[id-1]; st != w {
			t.Errorf("session %d: command %d (%s) got %s, want %s", n, id, ids[id], st, w)
		}
	}
}

func TestDemoHelp(t *testing.T) {
	var stdout, stderr lockedBuffer
	if code := run([]string{"demo", "--help"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, f := range []string{"-listen", "-server-listen", "-script", "-once", "-events", "-no-ui", "-quiet", "-verbose", "-reveal-secrets"} {
		if !strings.Contains(stderr.String(), f) {
			t.Errorf("--help does not mention %s:\n%s", f, stderr.String())
		}
	}
}

func TestDemoListenBusy(t *testing.T) {
	// Occupy a port, then ask the demo to use it.
	var stdout, stderr lockedBuffer
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	code := run([]string{"demo", "--listen", ln.Addr().String(), "--quiet"}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "already in use") || !strings.Contains(stderr.String(), "--listen 127.0.0.1:0") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr.String())
	}
}

func TestDemoBadFlags(t *testing.T) {
	var stdout, stderr lockedBuffer
	if code := run([]string{"demo", "--no-such-flag"}, &stdout, &stderr); code != 2 {
		t.Fatalf("exit %d", code)
	}
	if code := run([]string{"demo", "extra"}, &stdout, &stderr); code != 2 {
		t.Fatalf("exit %d", code)
	}
}
