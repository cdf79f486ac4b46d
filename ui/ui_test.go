package ui

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gdamore/tcell/v2"

	"github.com/popscope/popscope/event"
)

func TestLayout(t *testing.T) {
	h := newHarness(t, 160, 44, Options{Title: "view demo.jsonl"}, demoEvents(t))
	h.want(
		"Sessions 6 · 1 open · sort: start ↑",
		"ID", "CLIENT", "USER", "STATE", "TLS", "CMDS", "ERR", "WARN", "INFO", "↑BYTES", "↓BYTES", "DURATION",
		"Transcript f0f000000006 · frank", "FOLLOW",
		"view demo.jsonl",
		"6 sessions, 1 open",
		"? help", "q quit", "Enter open",
	)
	// One row per session with its facts.
	alice := h.row("a11ce0000001")
	for _, f := range []string{"○", "127.0.0.1:50001", "alice", "CLOSED", "4.3K", "45ms"} {
		if !strings.Contains(alice, f) {
			t.Errorf("alice row lacks %q: %q", f, alice)
		}
	}
	bob := strings.Fields(h.row("b0b000000002"))
	// ○ ID CLIENT USER STATE TLS CMDS -ERR ERR WARN INFO ↑ ↓ DUR
	if bob[5] != "-" || bob[6] != "7" || bob[7] != "1" || bob[8] != "2" || bob[9] != "2" || bob[10] != "·" {
		t.Errorf("bob row: %q", bob)
	}
	if carol := h.row("ca4010000003"); !strings.Contains(carol, " C ") {
		t.Errorf("carol's TLS client leg not shown: %q", carol)
	}
	if frank := h.row("f0f000000006"); !strings.Contains(frank, "●") || !strings.Contains(frank, "TRANSACTION") {
		t.Errorf("open session row: %q", frank)
	}
	// Client and server lines are coloured apart; latency at the right.
	if fg, _, _ := h.styleAt("C: USER frank").Decompose(); fg != tcell.ColorAqua {
		t.Errorf("client line colour %v", fg)
	}
	if fg, _, _ := h.styleAt("S: +OK 1 400").Decompose(); fg != tcell.ColorGreen {
		t.Errorf("server line colour %v", fg)
	}
	if r := h.row("S: +OK 1 400"); !strings.HasSuffix(strings.TrimRight(r, "│║ "), "3.0 ms") || !strings.Contains(r, "10:00:05.019") {
		t.Errorf("reply row lacks time or latency: %q", r)
	}
	// Session detail for the selected session.
	h.want("Session f0f000000006 · open", "user frank via PASS")
}

func TestNarrowLayoutDropsColumns(t *testing.T) {
	h := newHarness(t, 80, 24, Options{}, demoEvents(t))
	h.want("ID", "USER", "STATE", "ERR", "f0f000000006", "frank")
	h.wantNot("↑BYTES", "Detail")
	for _, l := range h.lines() {
		if n := len([]rune(l)); n > 80 {
			t.Fatalf("line wider than the screen (%d): %q", n, l)
		}
	}
}

func TestNavigationAndPanes(t *testing.T) {
	h := newHarness(t, 160, 44, Options{}, demoEvents(t))
	if got := h.selectedSession(); got != "f0f000000006" {
		t.Fatalf("follow should select the newest session, got %q", got)
	}
	h.press("g")
	if got := h.selectedSession(); got != "a11ce0000001" {
		t.Fatalf("g: selected %q", got)
	}
	h.want("PAUSED", "Transcript a11ce0000001 · alice")
	h.press("j")
	h.want("Transcript b0b000000002 · bob")
	h.key(tcell.KeyDown)
	h.key(tcell.KeyUp)
	h.want("Transcript b0b000000002 · bob")
	h.key(tcell.KeyEnter)
	if h.u.pane != paneTranscript {
		t.Fatal("Enter did not open the transcript")
	}
	h.want("Enter fold", "] next violation") // footer follows the pane
	h.key(tcell.KeyTab)
	if h.u.pane != paneDetail {
		t.Fatalf("Tab: pane %v", h.u.pane)
	}
	h.key(tcell.KeyTab)
	if h.u.pane != paneSessions {
		t.Fatalf("Tab wraps: pane %v", h.u.pane)
	}
	h.key(tcell.KeyBacktab)
	if h.u.pane != paneDetail {
		t.Fatalf("Shift-Tab: pane %v", h.u.pane)
	}
	h.key(tcell.KeyEscape)
	if h.u.pane != paneSessions {
		t.Fatalf("Esc: pane %v", h.u.pane)
	}
	h.press("G")
	if got := h.selectedSession(); got != "f0f000000006" || !h.u.follow {
		t.Fatalf("G: selected %q follow %v", got, h.u.follow)
	}
}

func TestViolationJumpDetailAndRuleFilter(t *testing.T) {
	h := newHarness(t, 160, 44, Options{}, demoEvents(t))
	h.press("gj") // bob
	h.key(tcell.KeyEnter)
	h.press("g]")
	// The first violation in bob's session is AUTH-001 on PASS; jump on
	// to the broken RETR body.
	for i := 0; i < 5 && !strings.Contains(h.screen(), "Violation POP3-MULTI-002"); i++ {
		h.press("]")
	}
	h.want("Violation POP3-MULTI-002",
		"POP3-MULTI-002  error · broken by the server · RFC 1939 §3",
		"seen:", "line starts with an unstuffed '.'",
		"rule: A body line starts with `.`")
	sel := h.row("S: +OK 68 octets")
	if !strings.HasPrefix(strings.TrimLeft(sel, "│║"), "▲") {
		t.Errorf("violation line not marked: %q", sel)
	}
	h.want("▲ error POP3-MULTI-002 (server): ")
	h.press("r")
	h.want("filter: rule:POP3-MULTI-002", "Sessions 1 of 6", "filtered: 1 lines")
	h.wantNot("a11ce0000001", "C: USER bob")
	// Clear the filter: f, empty, Enter.
	h.press("f")
	h.key(tcell.KeyCtrlU) // the input line's "delete line"
	h.key(tcell.KeyEnter)
	h.want("Sessions 6 ·", "C: USER bob")
}

func TestFilterLanguageInUI(t *testing.T) {
	h := newHarness(t, 160, 44, Options{}, demoEvents(t))
	h.press("f")
	h.want("filter:", "Enter apply")
	h.press("rule:POP3-DROP-*")
	// Applies as you type.
	h.want("Sessions 1 of 6", "b0b000000002")
	h.wantNot("a11ce0000001")
	h.key(tcell.KeyEnter)
	h.want("filter: rule:POP3-DROP-*")
	h.key(tcell.KeyEnter) // open bob
	h.want("C: RETR 3", "filtered: 1 lines")
	h.wantNot("C: DELE 9")

	// A broken filter says why and keeps the input open; Esc restores.
	h.press("f")
	h.press(" sev:fatal")
	h.want("filter: sev:fatal: severity is error, warning or info")
	h.key(tcell.KeyEnter)
	if h.u.mode != modeInput {
		t.Fatal("input closed on a bad filter")
	}
	h.key(tcell.KeyEscape)
	h.want("filter: rule:POP3-DROP-*", "Sessions 1 of 6")

	h.press("f")
	h.key(tcell.KeyCtrlU) // the input line's "delete line"
	h.press("user:erin err")
	h.key(tcell.KeyEnter)
	h.want("Sessions 1 of 6", "e4e000000005", "S: -ERR [AUTH] invalid user name or password")
	h.press("f")
	h.key(tcell.KeyCtrlU) // the input line's "delete line"
	h.press("tls")
	h.key(tcell.KeyEnter)
	h.want("Sessions 1 of 6", "ca4010000003")
}

func TestFolding(t *testing.T) {
	h := newHarness(t, 160, 44, Options{}, demoEvents(t))
	h.press("g")
	h.key(tcell.KeyEnter)
	h.press("/")
	h.press("RETR 2 →")
	h.key(tcell.KeyEnter)
	h.want("S: +OK 3553 octets  ▸ RETR 2 → 3,553 octets, 85 lines")
	h.wantNot("│ 3,553 octets delivered")
	h.key(tcell.KeyEnter)
	h.want("▾ RETR 2 → 3,553 octets, 85 lines",
		"│ 3,553 octets delivered (dot-unstuffed, CRLF line ends), 3,556 on the wire, 85 lines; latency 3.0 ms",
		"│ the message bytes are not in the event stream")
	h.press("o")
	h.want("▸ RETR 2")
	h.wantNot("│ 3,553 octets delivered")
	// Folding a line that is not a multi-line reply explains itself.
	h.press("g")
	h.key(tcell.KeyEnter)
	h.want("only multi-line replies fold")
	// v shows state changes and routine lines.
	h.wantNot("state GREETING-WAIT → AUTH.READY")
	h.press("v")
	h.want("state GREETING-WAIT → AUTH.READY", "── upstream 127.0.0.1:11110 connected in 1.7 ms")
	h.press("v")
	h.wantNot("state GREETING-WAIT → AUTH.READY")
}

func TestMessageView(t *testing.T) {
	h := newHarness(t, 160, 44, Options{}, demoEvents(t))
	h.press("g")
	h.key(tcell.KeyEnter)
	h.press("/RETR 1 →")
	h.key(tcell.KeyEnter)
	h.press("m")
	h.want("RETR 1 in session a11ce0000001 (user alice)",
		"delivered   475 octets", "on the wire 478 octets", "lines       17",
		"not available here — a live proxy and a JSON Lines event stream")
	h.key(tcell.KeyEscape)
	h.wantNot("on the wire 478 octets")
	// m on the command line finds its reply too.
	h.press("k")
	h.press("m")
	h.want("delivered   475 octets")
	h.key(tcell.KeyEscape)
	h.press("g")
	h.press("m")
	h.want("the message view is for RETR and TOP replies")
}

func TestHelpRenderedFromKeyTable(t *testing.T) {
	h := newHarness(t, 160, 60, Options{}, demoEvents(t))
	h.press("?")
	h.want("Help — Esc or ? closes", "popscope — terminal UI", "Pick a session",
		"Everywhere", "Session list", "Transcript")
	scr := h.screen()
	shown := 0
	for _, b := range bindings {
		if strings.Contains(scr, wrap(b.help, 200)[0][:min(30, len(b.help))]) {
			shown++
		}
	}
	if shown < 10 {
		t.Errorf("help overlay shows %d binding descriptions:\n%s", shown, scr)
	}
	// Everything is in the help text, even what needs scrolling.
	text := helpText(100)
	flat := strings.Join(strings.Fields(text), " ")
	for _, b := range bindings {
		if !strings.Contains(flat, b.help) {
			t.Errorf("help lacks %q", b.help)
		}
	}
	for _, want := range []string{"user:alice", "rule:POP3-DROP-*", "sev:warning", "double-click"} {
		if !strings.Contains(text, want) {
			t.Errorf("help lacks %q", want)
		}
	}
	h.key(tcell.KeyDown) // scrolls, does not close
	if h.u.mode != modeHelp {
		t.Fatal("arrow closed the help")
	}
	h.press("?")
	h.wantNot("Help — Esc or ? closes")
	// Esc typed right before a key arrives as Alt+key: both are done.
	h.press("?")
	h.scr.InjectKey(tcell.KeyRune, 'g', tcell.ModAlt)
	h.pump()
	h.wantNot("Help — Esc or ? closes")
	if got := h.selectedSession(); got != "a11ce0000001" {
		t.Fatalf("Alt+g after help: selected %q", got)
	}
	// Footer hints come from the same table.
	for _, hs := range hints(paneSessions)[:4] {
		h.want(hs[0] + " " + hs[1])
	}
}

func TestSearch(t *testing.T) {
	h := newHarness(t, 160, 44, Options{}, demoEvents(t))
	h.press("gj")
	h.key(tcell.KeyEnter)
	h.press("/dele")
	h.want("search: dele")
	if r, _ := h.u.trans.selected(); r.line == nil || !strings.Contains(r.line.Text, "DELE 9") {
		t.Fatalf("search did not select DELE: %+v", r)
	}
	h.key(tcell.KeyEnter)
	h.want("search: dele") // kept in the status bar
	h.press("n")
	if r, _ := h.u.trans.selected(); r.line == nil || !strings.Contains(r.line.Text, "DELE 9") {
		t.Fatalf("n: only one match, should stay: %+v", r)
	}
	h.press("/zzz")
	h.want("no match for zzz")
	h.key(tcell.KeyEscape)
	h.wantNot("search: zzz")
	// In the session list the search looks at IDs, clients and users.
	h.key(tcell.KeyEscape)
	h.press("/erin")
	h.key(tcell.KeyEnter)
	if got := h.selectedSession(); got != "e4e000000005" {
		t.Fatalf("session search selected %q", got)
	}
}

func TestFollowPausesWhenScrollingUp(t *testing.T) {
	live := &liveSession{id: "11ve00000001", at: time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)}
	h := newHarness(t, 120, 40, Options{Live: true, Now: func() time.Time { return live.at }}, nil)
	h.want("no sessions yet: waiting for clients")
	h.observe(live.ev(event.Event{Type: event.SessionStart, Client: "127.0.0.1:9"}))
	h.want("11ve00000001", "● 11ve00000001")
	h.key(tcell.KeyEnter)
	for i := 1; i <= 40; i++ {
		h.observe(live.ev(event.Event{Type: event.Command, By: event.Client, ID: uint64(i), Verb: "NOOP", Offset: int64(6 * i)}))
	}
	h.want("FOLLOW")
	if r, _ := h.u.trans.selected(); r.line == nil || r.line.Ev.ID != 40 {
		t.Fatalf("follow: selected %+v", r.line)
	}
	h.press("k")
	h.want("PAUSED", "paused (G follows)")
	h.observe(live.ev(event.Event{Type: event.Command, By: event.Client, ID: 41, Verb: "STAT", Offset: 300}))
	if r, _ := h.u.trans.selected(); r.line == nil || r.line.Ev.ID != 39 {
		t.Fatalf("paused: selection moved to %+v", r.line)
	}
	h.wantNot("C: STAT") // off screen below
	h.press("G")
	h.want("FOLLOW", "C: STAT")
	h.observe(live.ev(event.Event{Type: event.Command, By: event.Client, ID: 42, Verb: "QUIT", Offset: 306}))
	h.want("C: QUIT")
	// Mouse wheel up pauses too.
	x, y := h.find("C: QUIT")
	h.wheel(x, y, tcell.WheelUp)
	h.want("PAUSED")
	h.press("F")
	h.want("FOLLOW")
	// A new session arrives: with the list focused, follow selects it.
	h.key(tcell.KeyEscape)
	other := &liveSession{id: "0the20000002", at: live.at}
	h.observe(other.ev(event.Event{Type: event.SessionStart, Client: "127.0.0.1:10"}))
	if got := h.selectedSession(); got != "0the20000002" {
		t.Fatalf("follow did not select the new session: %q", got)
	}
}

func TestMouse(t *testing.T) {
	h := newHarness(t, 160, 44, Options{}, demoEvents(t))
	x, y := h.find("b0b000000002")
	h.click(x, y)
	if got := h.selectedSession(); got != "b0b000000002" || h.u.follow {
		t.Fatalf("click selected %q follow %v", got, h.u.follow)
	}
	h.doubleClick(x, y)
	if h.u.pane != paneTranscript {
		t.Fatal("double-click did not open the session")
	}
	x, y = h.find("C: RETR 1")
	h.click(x, y)
	if r, _ := h.u.trans.selected(); r.line == nil || r.line.Ev.Verb != "RETR" {
		t.Fatalf("click in transcript selected %+v", r.line)
	}
	x, y = h.find("RETR 1 → 67 octets")
	h.doubleClick(x, y)
	h.want("▾ RETR 1 → 67 octets")
	x, y = h.find("a11ce0000001")
	h.click(x, y)
	if h.u.pane != paneSessions || h.selectedSession() != "a11ce0000001" {
		t.Fatal("click in the list did not focus it")
	}
}

func TestExport(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, 160, 44, Options{ExportDir: dir}, demoEvents(t))
	h.press("gj")
	h.press("e")
	h.want("export transcript to: " + dir)
	h.key(tcell.KeyEnter)
	path := filepath.Join(dir, "popscope-b0b000000002.txt")
	h.want("wrote transcript of session b0b000000002")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	txt := string(data)
	for _, w := range []string{"# popscope session b0b000000002", "\nC: USER bob\n", "\nC: PASS <redacted>\n",
		"\nS: +OK 68 octets\n# RETR 1 → 67 octets, 5 lines", "# !! error POP3-MULTI-002 (server)", "\nS: -ERR no such message\n"} {
		if !strings.Contains(txt, w) {
			t.Errorf("export lacks %q:\n%s", w, txt)
		}
	}
	if strings.Contains(txt, "builder") {
		t.Error("the password leaked into the export")
	}
	// Never overwrites.
	h.press("e")
	h.key(tcell.KeyEnter)
	h.want("exists: not overwritten")

	h.press("E")
	h.want("export events to:")
	h.key(tcell.KeyEnter)
	f, err := os.Open(filepath.Join(dir, "popscope-b0b000000002.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		var e event.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Session != "b0b000000002" {
			t.Fatalf("line %d: %v %q", n+1, err, sc.Text())
		}
		n++
	}
	if n != 28 {
		t.Errorf("exported %d events, want 28", n)
	}
	// Esc cancels an export.
	h.press("e")
	h.key(tcell.KeyEscape)
	h.wantNot("export transcript to:")
}

func TestQuit(t *testing.T) {
	h := newHarness(t, 120, 40, Options{}, demoEvents(t))
	h.press("q")
	select {
	case <-h.u.Done():
	default:
		t.Fatal("a viewer should quit at once: nothing is lost")
	}

	live := &liveSession{id: "11ve00000001", at: time.Now()}
	h = newHarness(t, 120, 40, Options{Live: true}, []*event.Event{live.ev(event.Event{Type: event.SessionStart})})
	h.press("q")
	h.want("1 session(s) are still open", "Quit anyway?")
	h.press("n")
	h.wantNot("Quit anyway?")
	select {
	case <-h.u.Done():
		t.Fatal("quit despite n")
	default:
	}
	h.key(tcell.KeyCtrlC)
	h.want("Quit anyway?")
	h.press("y")
	select {
	case <-h.u.Done():
	default:
		t.Fatal("y did not quit")
	}

	// Live, but every session closed: nothing to lose.
	h = newHarness(t, 120, 40, Options{Live: true}, []*event.Event{
		live.ev(event.Event{Type: event.SessionStart, Session: "x"}), live.ev(event.Event{Type: event.SessionEnd})})
	h.press("q")
	select {
	case <-h.u.Done():
	default:
		t.Fatal("closed sessions should not make quit ask")
	}
}

func TestDroppedWarning(t *testing.T) {
	h := newHarness(t, 160, 40, Options{Name: "ui"}, demoEvents(t))
	h.wantNot("lost")
	h.observe(&event.Event{Type: event.Dropped, Observer: "ui", Dropped: 1200})
	h.want("⚠ UI lost 1,200 events: display incomplete")
	h.observe(&event.Event{Type: event.Dropped, Observer: "jsonl", Dropped: 3})
	h.want("⚠ jsonl lost 3 events")
	if _, _, attr := h.styleAt("⚠ UI lost").Decompose(); attr&tcell.AttrReverse == 0 {
		if _, bg, _ := h.styleAt("⚠ UI lost").Decompose(); bg != tcell.ColorRed {
			t.Errorf("own loss warning not highlighted")
		}
	}
}

func TestSortKeys(t *testing.T) {
	h := newHarness(t, 160, 44, Options{}, demoEvents(t))
	h.press("g")
	for i := 0; i < int(sortViolations); i++ {
		h.press("s")
	}
	h.want("sort: violations ↓")
	var first string
	h.u.m.Read(func() { first = h.u.sessions.rows[0].ID })
	if first != "b0b000000002" && first != "da7e00000004" {
		t.Fatalf("most errors first, got %s", first)
	}
	h.press("S")
	h.want("sort: violations ↑")
	h.u.m.Read(func() { first = h.u.sessions.rows[0].ID })
	if first == "b0b000000002" || first == "da7e00000004" {
		t.Fatalf("reverse: got %s first", first)
	}
	h.press("s")
	h.want("sort: duration ↓")
}

func TestRetentionNoteAndGaps(t *testing.T) {
	live := &liveSession{id: "b1g000000001", at: time.Now()}
	evs := []*event.Event{live.ev(event.Event{Type: event.SessionStart})}
	for i := 1; i <= 60; i++ {
		evs = append(evs, live.ev(event.Event{Type: event.Command, By: event.Client, ID: uint64(i), Verb: "NOOP", Offset: int64(6 * i)}))
	}
	live.seq += 5 // five events the UI never got
	evs = append(evs, live.ev(event.Event{Type: event.Command, By: event.Client, ID: 99, Verb: "STAT", Offset: 999}))
	h := newHarness(t, 120, 40, Options{MaxLines: 20}, evs)
	h.press("g")
	h.want("… 5 events missing here (the UI fell behind)", "5 events missing")
	h.key(tcell.KeyEnter)
	h.press("g")
	h.want("earlier lines not kept (limit 20 lines per session)")
}

func TestObserveNeverBlocks(t *testing.T) {
	// Nobody draws: Observe must still return at once, every time.
	u := New(Options{Live: true})
	live := &liveSession{id: "f10000000001", at: time.Now()}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 20000; i++ {
			u.Observe(live.ev(event.Event{Type: event.Command, By: event.Client, ID: uint64(i + 1), Verb: "NOOP"}))
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Observe blocked")
	}
	if n := u.Model().Events(); n != 20000 {
		t.Fatalf("applied %d events", n)
	}
}

func TestRunRedrawsAreBatched(t *testing.T) {
	scr := tcell.NewSimulationScreen("UTF-8")
	u := New(Options{Live: true})
	frames := 0
	u.app.SetAfterDrawFunc(func(tcell.Screen) { frames++ })
	errc := make(chan error, 1)
	go func() { errc <- u.RunOn(scr) }()
	<-u.running
	start := time.Now()
	live := &liveSession{id: "f10000000002", at: start}
	u.Observe(live.ev(event.Event{Type: event.SessionStart}))
	for i := 0; i < 50000; i++ {
		u.Observe(live.ev(event.Event{Type: event.Command, By: event.Client, ID: uint64(i + 1), Verb: "NOOP"}))
	}
	// Wait (bounded) until a frame shows the last command.
	var shown bool
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && !shown; {
		done := make(chan struct{})
		u.app.QueueUpdate(func() { close(done) })
		<-done
		u.m.Read(func() {
			shown = u.trans.sess != nil && len(u.trans.rows) > 0 && u.trans.rows[len(u.trans.rows)-1].line.Ev.ID == 50000
		})
	}
	elapsed := time.Since(start)
	u.Stop()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !shown {
		t.Fatal("the last event never reached the screen")
	}
	// Event-driven frames are paced at MaxFPS; allow the first frame and
	// the key-free QueueUpdate polls above no extra draws (QueueUpdate
	// does not draw).
	if max := int(elapsed.Seconds()*MaxFPS) + 3; frames > max {
		t.Fatalf("%d frames in %v: more than %d/s", frames, elapsed, MaxFPS)
	}
	t.Logf("%d events, %d frames in %v", 50001, frames, elapsed)
}

func TestKeyTableInREADME(t *testing.T) {
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), KeyTableMarkdown()) {
		t.Fatalf("README.md's key table is out of date; paste KeyTableMarkdown():\n%s", KeyTableMarkdown())
	}
}

func TestEveryBindingReachable(t *testing.T) {
	seen := map[string]bool{}
	for _, b := range bindings {
		if b.action == nil || b.help == "" || len(b.keys) == 0 {
			t.Errorf("incomplete binding %q", b.label)
		}
		for _, k := range b.keys {
			id := sprintf("%d/%d/%c", b.scope, k.key, k.r)
			if seen[id] {
				t.Errorf("key %q bound twice in one scope", b.label)
			}
			seen[id] = true
		}
	}
}
