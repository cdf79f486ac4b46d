//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"
)

// jevent is one line of the --events file, decoded with the field names
// of the JSON Lines schema (deliberately not the event package's struct,
// so that a schema change shows up here).
type jevent struct {
	Type      string    `json:"type"`
	Session   string    `json:"session"`
	Time      time.Time `json:"time"`
	Seq       uint64    `json:"seq"`
	By        string    `json:"by"`
	Client    string    `json:"client"`
	Reason    string    `json:"reason"`
	Error     string    `json:"error"`
	BytesC2S  int64     `json:"bytes_c2s"`
	BytesS2C  int64     `json:"bytes_s2c"`
	ID        uint64    `json:"id"`
	Verb      string    `json:"verb"`
	Args      string    `json:"args"`
	Status    string    `json:"status"`
	Text      string    `json:"text"`
	Code      string    `json:"code"`
	Multiline bool      `json:"multiline"`
	Octets    int64     `json:"octets"`
	Rule      string    `json:"rule"`
	Severity  string    `json:"severity"`
	Detail    string    `json:"detail"`
	Observer  string    `json:"observer"`
	Dropped   uint64    `json:"dropped"`

	raw string
}

// readEvents parses an events file. With strict unset, an unterminated
// last line (a flush in progress) is ignored.
func readEvents(path string, strict bool) ([]jevent, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var evs []jevent
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		var e jevent
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			if !strict && !bytes.HasSuffix(b, []byte("\n")) && n == bytes.Count(b, []byte("\n"))+1 {
				break
			}
			return nil, fmt.Errorf("%s line %d: %v: %q", path, n, err, line)
		}
		e.raw = line
		evs = append(evs, e)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if strict && len(b) > 0 && !bytes.HasSuffix(b, []byte("\n")) {
		return nil, fmt.Errorf("%s does not end with a newline", path)
	}
	return evs, nil
}

// waitSessionEnds polls the events file (bounded) until it holds at least
// n session_end events.
func waitSessionEnds(t testing.TB, path string, n int, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	got := 0
	for {
		evs, err := readEvents(path, false)
		if err == nil {
			got = 0
			for _, e := range evs {
				if e.Type == "session_end" {
					got++
				}
			}
			if got >= n {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Errorf("events file %s: %d session_end events after %v, want %d (err %v)", path, got, limit, n, err)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// bySession groups events by session, in file order, and fails t on
// events without a session (other than observer drop reports).
func bySession(t testing.TB, evs []jevent) (map[string][]jevent, []string) {
	t.Helper()
	m := map[string][]jevent{}
	var order []string
	for _, e := range evs {
		if e.Type == "" || e.Time.IsZero() {
			t.Errorf("event without type or time: %s", e.raw)
		}
		if e.Type == "dropped" {
			t.Errorf("the bus dropped events: %s", e.raw)
			continue
		}
		if e.Session == "" {
			t.Errorf("event without session: %s", e.raw)
			continue
		}
		if _, ok := m[e.Session]; !ok {
			order = append(order, e.Session)
		}
		m[e.Session] = append(m[e.Session], e)
	}
	return m, order
}

// violationLog collects non-error violations for humans.
type violationLog struct {
	counts  map[string]int
	example map[string]string
}

func (v *violationLog) add(e jevent) {
	if v.counts == nil {
		v.counts, v.example = map[string]int{}, map[string]string{}
	}
	k := fmt.Sprintf("%s %s by %s", e.Rule, e.Severity, e.By)
	v.counts[k]++
	if _, ok := v.example[k]; !ok {
		v.example[k] = e.Detail
	}
}

func (v *violationLog) String() string {
	if len(v.counts) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(v.counts))
	for k := range v.counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "\n    %s x%d, e.g. %q", k, v.counts[k], v.example[k])
	}
	return b.String()
}

// commandVerb is the keyword of a client line as the decoder names it.
func commandVerb(line []byte) string {
	s := strings.TrimRight(string(line), "\r\n")
	s = strings.TrimLeft(s, " ")
	if i := strings.IndexAny(s, " \t"); i >= 0 {
		s = s[:i]
	}
	if s == "" {
		return "(empty)"
	}
	return strings.ToUpper(s)
}

// splitLines cuts a byte stream after every LF; an unterminated tail is a
// line too.
func splitLines(b []byte) [][]byte {
	var lines [][]byte
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			lines = append(lines, b)
			break
		}
		lines = append(lines, b[:i+1])
		b = b[i+1:]
	}
	return lines
}

// checkClientEvents asserts the events of a run of clean client sessions
// recorded by a recorder: one session per connection, started and ended,
// seq without gaps, every line the client sent decoded as a command (or a
// SASL answer) in order, every command answered exactly once, byte counts
// equal to what crossed the recorder, nothing opaque, nothing dropped and
// no error-severity violation. It returns the other violations.
func checkClientEvents(t *testing.T, evs []jevent, conns []*recConn) *violationLog {
	t.Helper()
	vlog := &violationLog{}
	sessions, order := bySession(t, evs)
	byClient := map[string]*recConn{}
	for _, c := range conns {
		if c.err != nil {
			t.Errorf("recorder connection %s: %v", c.local, c.err)
		}
		if c.local != "" {
			byClient[c.local] = c
		}
	}
	seen := map[*recConn]bool{}
	for _, id := range order {
		s := sessions[id]
		var rc *recConn
		if s[0].Type != "session_start" {
			t.Errorf("session %s: first event is not session_start: %s", id, s[0].raw)
		} else if rc = byClient[s[0].Client]; rc == nil {
			t.Errorf("session %s: client %s is not a connection the test made: %s", id, s[0].Client, s[0].raw)
		} else if seen[rc] {
			t.Errorf("session %s: second session for client %s", id, s[0].Client)
		}
		seen[rc] = true
		checkSession(t, id, s, rc, vlog)
	}
	for _, c := range conns {
		if c.local != "" && !seen[c] {
			t.Errorf("no session in the events for the connection from %s (%d bytes sent)", c.local, c.c2s.Len())
		}
	}
	return vlog
}

func checkSession(t *testing.T, id string, s []jevent, rc *recConn, vlog *violationLog) {
	t.Helper()
	var starts, ends, greetings int
	var end jevent
	cmds := map[uint64]jevent{}
	resps := map[uint64]jevent{}
	var lineEvents []jevent // command and sasl_response, in order
	for i, e := range s {
		if e.Seq != uint64(i+1) {
			t.Errorf("session %s: event %d has seq %d (gap or reorder): %s", id, i+1, e.Seq, e.raw)
		}
		switch e.Type {
		case "session_start":
			starts++
		case "session_end":
			ends++
			end = e
			if i != len(s)-1 {
				t.Errorf("session %s: events after session_end: %s", id, s[i+1].raw)
			}
		case "greeting":
			greetings++
			if e.Status != "+OK" {
				t.Errorf("session %s: greeting is not +OK: %s", id, e.raw)
			}
		case "command":
			if _, dup := cmds[e.ID]; dup || e.ID == 0 {
				t.Errorf("session %s: duplicate or zero command id: %s", id, e.raw)
			}
			cmds[e.ID] = e
			lineEvents = append(lineEvents, e)
		case "sasl_response":
			lineEvents = append(lineEvents, e)
			if c, ok := cmds[e.ID]; !ok || c.Verb != "AUTH" {
				t.Errorf("session %s: sasl_response not tied to an AUTH command: %s", id, e.raw)
			}
		case "response":
			if _, dup := resps[e.ID]; dup {
				t.Errorf("session %s: second response for id %d: %s", id, e.ID, e.raw)
			}
			resps[e.ID] = e
			c, ok := cmds[e.ID]
			switch {
			case !ok:
				t.Errorf("session %s: response without a command: %s", id, e.raw)
			case c.Verb != e.Verb:
				t.Errorf("session %s: response verb %q for command %q: %s", id, e.Verb, c.Verb, e.raw)
			}
			if e.Status != "+OK" && e.Status != "-ERR" {
				t.Errorf("session %s: response status %q: %s", id, e.Status, e.raw)
			}
		case "violation":
			if e.Severity == "error" {
				t.Errorf("error-severity violation on a clean session: %s", e.raw)
			} else {
				vlog.add(e)
			}
		case "opaque":
			t.Errorf("session %s: decoder went opaque on a plain session: %s", id, e.raw)
		case "note":
			if strings.Contains(e.Error, "panic") || strings.Contains(e.Detail, "decoder failed") {
				t.Errorf("session %s: decoder failure: %s", id, e.raw)
			}
		}
	}
	if starts != 1 || ends != 1 {
		t.Errorf("session %s: %d session_start and %d session_end events, want 1 and 1", id, starts, ends)
	}
	if greetings != 1 {
		t.Errorf("session %s: %d greeting events, want 1", id, greetings)
	}
	for cid, c := range cmds {
		if _, ok := resps[cid]; !ok {
			t.Errorf("session %s: command without a response event: %s", id, c.raw)
		}
	}
	if ends == 1 {
		if end.Reason != "client closed" && end.Reason != "server closed" {
			t.Errorf("session %s: session_end reason %q: %s", id, end.Reason, end.raw)
		}
	}
	if rc == nil {
		return
	}
	if ends == 1 && (end.BytesC2S != int64(rc.c2s.Len()) || end.BytesS2C != rc.s2c) {
		t.Errorf("session %s: session_end counts c2s=%d s2c=%d, the recorder saw c2s=%d s2c=%d: %s",
			id, end.BytesC2S, end.BytesS2C, rc.c2s.Len(), rc.s2c, end.raw)
	}
	lines := splitLines(rc.c2s.Bytes())
	if len(lines) != len(lineEvents) {
		t.Errorf("session %s: the client sent %d lines but there are %d command/sasl_response events\nclient lines: %q",
			id, len(lines), len(lineEvents), redactLines(lines))
	}
	for i := range min(len(lines), len(lineEvents)) {
		e := lineEvents[i]
		if e.Type == "command" && e.Verb != commandVerb(lines[i]) {
			t.Errorf("session %s: client line %d %q decoded as command %q: %s", id, i+1, redactLine(lines[i]), e.Verb, e.raw)
		}
	}
}

// redactLine hides arguments (passwords, SASL data) in failure output.
func redactLine(l []byte) string {
	v := commandVerb(l)
	switch v {
	case "USER", "LIST", "RETR", "TOP", "UIDL", "DELE", "STAT", "NOOP", "QUIT", "RSET", "CAPA", "STLS", "AUTH":
		return strings.TrimRight(string(l), "\r\n")
	}
	return v + " ..."
}

func redactLines(ls [][]byte) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = redactLine(l)
	}
	return out
}
