package ui

import (
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gdamore/tcell/v2"
	"github.com/rivo/tview"

	"github.com/popscope/popscope/event"
	"github.com/popscope/popscope/ui/model"
)

// harness drives a UI on a tcell SimulationScreen synchronously: keys
// are injected into the screen, taken off its queue and handed to the
// root primitive the way tview's loop does, and every step ends with a
// full draw. No goroutine, no sleep.
type harness struct {
	t   *testing.T
	u   *UI
	scr tcell.SimulationScreen
}

var fixtureOnce struct {
	sync.Once
	evs []*event.Event
}

// demoEvents reads testdata/demo.jsonl (fixture.Demo through the real
// decoder).
func demoEvents(t testing.TB) []*event.Event {
	fixtureOnce.Do(func() {
		f, err := os.Open("testdata/demo.jsonl")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		_, _, err = model.ReadEvents(f, 0, func(e *event.Event) { fixtureOnce.evs = append(fixtureOnce.evs, e) })
		if err != nil {
			t.Fatal(err)
		}
	})
	return fixtureOnce.evs
}

func newHarness(t *testing.T, w, h int, opt Options, evs []*event.Event) *harness {
	t.Helper()
	scr := tcell.NewSimulationScreen("UTF-8")
	if err := scr.Init(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(scr.Fini)
	scr.SetSize(w, h)
	if opt.Title == "" {
		opt.Title = "view test"
	}
	u := New(opt)
	for _, e := range evs {
		u.Observe(e)
	}
	hs := &harness{t: t, u: u, scr: scr}
	hs.draw()
	return hs
}

// draw does what tview's Application.draw does, on the test goroutine.
func (h *harness) draw() {
	w, ht := h.scr.Size()
	h.u.root.SetRect(0, 0, w, ht)
	h.scr.Clear()
	h.u.root.Draw(h.scr)
	h.scr.Show()
}

func (h *harness) setFocus(p tview.Primitive) { h.u.app.SetFocus(p) }

// pump hands every queued screen event to the UI, then draws.
func (h *harness) pump() {
	for i := 0; i < 64 && h.scr.HasPendingEvent(); i++ {
		switch ev := h.scr.PollEvent().(type) {
		case *tcell.EventKey:
			if c := h.u.app.GetInputCapture(); c != nil {
				if ev = c(ev); ev == nil {
					continue
				}
			}
			h.u.root.InputHandler()(ev, h.setFocus)
		case *tcell.EventMouse:
			action := tview.MouseMove
			switch b := ev.Buttons(); {
			case b&tcell.Button1 != 0:
				action = tview.MouseLeftClick
			case b&tcell.WheelUp != 0:
				action = tview.MouseScrollUp
			case b&tcell.WheelDown != 0:
				action = tview.MouseScrollDown
			}
			h.u.root.MouseHandler()(action, ev, h.setFocus)
		}
	}
	h.draw()
}

func (h *harness) key(k tcell.Key) {
	h.scr.InjectKey(k, 0, tcell.ModNone)
	h.pump()
}

// press types runes, one event each.
func (h *harness) press(s string) {
	for _, r := range s {
		h.scr.InjectKey(tcell.KeyRune, r, tcell.ModNone)
		h.pump()
	}
}

func (h *harness) click(x, y int) {
	h.scr.InjectMouse(x, y, tcell.Button1, tcell.ModNone)
	h.pump()
}

func (h *harness) doubleClick(x, y int) {
	ev := tcell.NewEventMouse(x, y, tcell.Button1, tcell.ModNone)
	h.u.root.MouseHandler()(tview.MouseLeftDoubleClick, ev, h.setFocus)
	h.draw()
}

func (h *harness) wheel(x, y int, b tcell.ButtonMask) {
	h.scr.InjectMouse(x, y, b, tcell.ModNone)
	h.pump()
}

// observe feeds events the way the bus does and draws a frame, as the
// scheduler would.
func (h *harness) observe(evs ...*event.Event) {
	for _, e := range evs {
		h.u.Observe(e)
	}
	h.draw()
}

// lines returns the screen as text, one string per row.
func (h *harness) lines() []string {
	cells, w, ht := h.scr.GetContents()
	out := make([]string, ht)
	for y := 0; y < ht; y++ {
		var b strings.Builder
		for x := 0; x < w; x++ {
			c := cells[y*w+x]
			if len(c.Runes) == 0 {
				b.WriteByte(' ')
				continue
			}
			b.WriteString(string(c.Runes))
		}
		out[y] = strings.TrimRight(b.String(), " ")
	}
	return out
}

func (h *harness) screen() string { return strings.Join(h.lines(), "\n") }

// find returns the first row containing s, or -1.
func (h *harness) find(s string) (x, y int) {
	for y, l := range h.lines() {
		if i := strings.Index(l, s); i >= 0 {
			return len([]rune(l[:i])), y
		}
	}
	return -1, -1
}

func (h *harness) want(subs ...string) {
	h.t.Helper()
	scr := h.screen()
	for _, s := range subs {
		if !strings.Contains(scr, s) {
			h.t.Fatalf("screen lacks %q:\n%s", s, scr)
		}
	}
}

func (h *harness) wantNot(subs ...string) {
	h.t.Helper()
	scr := h.screen()
	for _, s := range subs {
		if strings.Contains(scr, s) {
			h.t.Fatalf("screen shows %q:\n%s", s, scr)
		}
	}
}

// row returns the screen row containing s.
func (h *harness) row(s string) string {
	h.t.Helper()
	_, y := h.find(s)
	if y < 0 {
		h.t.Fatalf("no row with %q:\n%s", s, h.screen())
	}
	return h.lines()[y]
}

// styleAt returns the style of the cell at the start of s.
func (h *harness) styleAt(s string) tcell.Style {
	h.t.Helper()
	x, y := h.find(s)
	if y < 0 {
		h.t.Fatalf("no %q on screen", s)
	}
	cells, w, _ := h.scr.GetContents()
	return cells[y*w+x].Style
}

func (h *harness) selectedSession() string {
	var id string
	h.u.m.Read(func() {
		if s := h.u.sessions.sel; s != nil {
			id = s.ID
		}
	})
	return id
}

// liveEvent builds events for a live session in tests.
type liveSession struct {
	id  string
	seq uint64
	at  time.Time
}

func (l *liveSession) ev(e event.Event) *event.Event {
	l.seq++
	l.at = l.at.Add(time.Millisecond)
	e.Session, e.Seq, e.Time = l.id, l.seq, l.at
	return &e
}
