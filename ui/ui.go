package ui

import (
	"sync"
	"time"

	"github.com/gdamore/tcell/v2"
	"github.com/rivo/tview"

	"github.com/popscope/popscope/event"
	"github.com/popscope/popscope/ui/model"
)

// MaxFPS bounds the redraws caused by events.
const MaxFPS = 30

// Options configure a UI. The zero value is a viewer for a recording.
type Options struct {
	// Live says the events come from a running proxy: open sessions
	// would be cut by quitting (so quitting asks first), and open
	// sessions' durations run on the wall clock.
	Live bool
	// Name is the name the UI is subscribed under on the bus (default
	// "ui"); "dropped" events naming it are the UI's own losses.
	Name string
	// Title says what is being watched: "proxy 127.0.0.1:1110 →
	// pop.example.org:110", "view demo.jsonl".
	Title string
	// Retention limits, per model.Options (zero: the defaults).
	MaxLines, MaxEvents, MaxSessions, MaxTotalEvents int
	// ExportDir is where exports are written by default (default ".").
	ExportDir string
	// Now is the clock for live durations (default time.Now).
	Now func() time.Time
	// Messages holds the bytes of retrieved messages (popscope view over
	// recordings): the message view shows their headers, MIME structure
	// and body. Nil: the events are all there is (a live proxy, a JSON
	// Lines event stream), and the message view says so.
	Messages *Messages
}

type pane uint8

const (
	paneSessions pane = iota
	paneTranscript
	paneDetail
)

type mode uint8

const (
	modeNormal mode = iota
	modeInput
	modeHelp
	modeMessage
	modeConfirm
)

type inputKind uint8

const (
	inputFilter inputKind = iota
	inputSearch
	inputExportText
	inputExportEvents
)

// UI is the terminal UI. Create it with New; it is an event.Observer.
type UI struct {
	opt Options
	m   *model.Model

	app      *tview.Application
	root     *lockedRoot
	pages    *tview.Pages
	main     *tview.Flex
	sessions *sessionList
	trans    *transcriptView
	detail   *tview.TextView
	status   *statusBar
	footer   *footerBar
	cmdline  *tview.Pages
	input    *tview.InputField
	help     *tview.TextView
	message  *tview.TextView
	confirm  *tview.TextView

	// View state: touched only with the model lock held.
	pane      pane
	mode      mode
	inKind    inputKind
	filter    *model.Filter
	filterGen int
	oldFilter string
	search    string
	searchOrg rowID
	follow    bool
	verbose   bool
	msg       string
	msgErr    bool
	logs      []string
	detailKey detailKey

	dirty    chan struct{}
	done     chan struct{}
	doneOnce sync.Once
	running  chan struct{} // closed when Run starts the scheduler
}

// logKeep bounds the log lines kept for the status bar and for printing
// after exit.
const logKeep = 200

var _ event.Observer = (*UI)(nil)

// New builds a UI; nothing is drawn until Run.
func New(opt Options) *UI {
	if opt.Name == "" {
		opt.Name = "ui"
	}
	if opt.ExportDir == "" {
		opt.ExportDir = "."
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	u := &UI{
		opt: opt,
		m: model.New(model.Options{MaxLines: opt.MaxLines, MaxEvents: opt.MaxEvents,
			MaxSessions: opt.MaxSessions, MaxTotalEvents: opt.MaxTotalEvents, Observer: opt.Name}),
		follow:  true,
		dirty:   make(chan struct{}, 1),
		done:    make(chan struct{}),
		running: make(chan struct{}),
	}
	u.build()
	return u
}

// Name is the subscription name the UI expects (Options.Name).
func (u *UI) Name() string { return u.opt.Name }

// Model returns the UI's data model.
func (u *UI) Model() *model.Model { return u.m }

// Observe implements event.Observer: it appends e to the model and asks
// for a redraw. It never blocks on the UI.
func (u *UI) Observe(e *event.Event) {
	u.m.Apply(e)
	u.poke()
}

func (u *UI) poke() {
	select {
	case u.dirty <- struct{}{}:
	default:
	}
}

// Logf records a log line (the proxy's diagnostics); the status bar shows
// the latest. Safe for concurrent use.
func (u *UI) Logf(format string, args ...any) {
	line := sprintf(format, args...)
	u.m.Lock()
	u.logs = append(u.logs, line)
	if len(u.logs) > logKeep {
		u.logs = append([]string(nil), u.logs[len(u.logs)-logKeep:]...)
	}
	u.m.Unlock()
	u.poke()
}

// Logs returns the log lines recorded with Logf (the latest logKeep).
func (u *UI) Logs() []string {
	u.m.Lock()
	defer u.m.Unlock()
	return append([]string(nil), u.logs...)
}

// Done is closed when the user quits (or Stop is called).
func (u *UI) Done() <-chan struct{} { return u.done }

// Stop ends Run. Safe to call from any goroutine, more than once.
func (u *UI) Stop() {
	u.doneOnce.Do(func() { close(u.done) })
}

// Run shows the UI on the terminal until the user quits or Stop is
// called.
func (u *UI) Run() error { return u.RunOn(nil) }

// RunOn is Run on a given screen (nil: the terminal).
func (u *UI) RunOn(screen tcell.Screen) error {
	if screen != nil {
		u.app.SetScreen(screen)
	}
	go func() {
		<-u.done
		u.app.Stop()
	}()
	go u.schedule()
	close(u.running)
	err := u.app.Run()
	u.Stop()
	return err
}

// schedule turns redraw requests into at most MaxFPS frames per second.
// A live UI also redraws every second so open sessions' durations move.
func (u *UI) schedule() {
	var tick <-chan time.Time
	if u.opt.Live {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		tick = t.C
	}
	frame := time.NewTimer(0)
	defer frame.Stop()
	for {
		select {
		case <-u.done:
			return
		case <-u.dirty:
		case <-tick:
		}
		// QueueUpdateDraw returns once the frame is drawn; if the app
		// stops first, give up on it (the call is left to the app).
		drawn := make(chan struct{})
		go func() {
			u.app.QueueUpdateDraw(func() {})
			close(drawn)
		}()
		select {
		case <-drawn:
		case <-u.done:
			return
		}
		frame.Reset(time.Second / MaxFPS)
		select {
		case <-frame.C:
		case <-u.done:
			return
		}
	}
}

// build makes the widgets and the layout.
func (u *UI) build() {
	u.app = tview.NewApplication()
	u.sessions = newSessionList(u)
	u.trans = newTranscriptView(u)
	u.detail = tview.NewTextView().SetDynamicColors(true).SetWrap(true).SetWordWrap(true)
	u.detail.SetBorder(true).SetTitle(" Detail ").SetTitleAlign(tview.AlignLeft)
	u.status = &statusBar{Box: tview.NewBox(), u: u}
	u.footer = &footerBar{Box: tview.NewBox(), u: u}
	u.input = tview.NewInputField().SetFieldBackgroundColor(tcell.ColorDefault).
		SetLabelColor(tcell.ColorYellow)
	u.input.SetChangedFunc(u.inputChanged)
	u.input.SetDoneFunc(u.inputDone)
	u.cmdline = tview.NewPages().
		AddPage("status", u.status, true, true).
		AddPage("input", u.input, true, false)

	u.main = tview.NewFlex().SetDirection(tview.FlexRow)
	u.layout(25, 0)

	u.help = tview.NewTextView().SetDynamicColors(true).SetWrap(true).SetWordWrap(true)
	u.help.SetBorder(true).SetTitle(" Help — Esc or ? closes, ↑/↓ scroll ").SetTitleAlign(tview.AlignLeft)
	u.message = tview.NewTextView().SetDynamicColors(true).SetWrap(true).SetWordWrap(true)
	u.message.SetBorder(true).SetTitle(" Message — Esc closes, ↑/↓ PgUp/PgDn scroll ").SetTitleAlign(tview.AlignLeft)
	u.confirm = tview.NewTextView().SetDynamicColors(true).SetWrap(true).SetWordWrap(true).
		SetTextAlign(tview.AlignCenter)
	u.confirm.SetBorder(true).SetTitle(" Quit? ")

	u.pages = tview.NewPages().
		AddPage("main", u.main, true, true).
		AddPage("help", &overlay{Primitive: u.help, maxW: helpWidth, maxH: 1 << 16}, true, false).
		AddPage("message", &overlay{Primitive: u.message, maxW: 110, maxH: 1 << 16}, true, false).
		AddPage("confirm", &overlay{Primitive: u.confirm, maxW: 64, maxH: 7}, true, false)
	u.root = &lockedRoot{Pages: u.pages, u: u}
	u.app.SetRoot(u.root, true).EnableMouse(true)
	// tview quits on Ctrl-C before the root sees it; hand it to the
	// key table instead (quit asks first when sessions would be cut).
	u.app.SetInputCapture(func(ev *tcell.EventKey) *tcell.EventKey {
		if ev.Key() == tcell.KeyCtrlC {
			return tcell.NewEventKey(tcell.KeyCtrlC, 'c', tcell.ModCtrl)
		}
		return ev
	})
	u.setPane(paneSessions)
}

// layout sizes the panes for a screen of the given height: the list
// grows with the sessions up to 30% of the screen.
func (u *UI) layout(height, sessions int) {
	u.main.Clear()
	list := min(max(height*3/10, 5), 16)
	list = min(list, max(sessions+3, 5))
	u.main.AddItem(u.sessions, list, 0, false)
	u.main.AddItem(u.trans, 0, 1, false)
	if height >= 20 {
		det := 8
		if height >= 40 {
			det = 10
		}
		u.main.AddItem(u.detail, det, 0, false)
	}
	u.main.AddItem(u.cmdline, 1, 0, false)
	u.main.AddItem(u.footer, 1, 0, false)
}

// overlay draws a primitive centred over the screen, at most maxW×maxH
// and leaving a margin.
type overlay struct {
	tview.Primitive
	maxW, maxH int
}

// overlayRect is where an overlay of at most maxW×maxH goes on a w×h
// screen.
func overlayRect(w, h, maxW, maxH int) (x, y, ow, oh int) {
	ow, oh = min(maxW, w-4), min(maxH, h-2)
	return (w - ow) / 2, (h - oh) / 2, max(ow, 1), max(oh, 1)
}

func (o *overlay) Draw(scr tcell.Screen) {
	w, h := scr.Size()
	o.Primitive.SetRect(overlayRect(w, h, o.maxW, o.maxH))
	o.Primitive.Draw(scr)
}

func (u *UI) setPane(p pane) {
	u.pane = p
	switch p {
	case paneSessions:
		u.app.SetFocus(u.sessions)
	case paneTranscript:
		u.app.SetFocus(u.trans)
	case paneDetail:
		u.app.SetFocus(u.detail)
	}
}

// lockedRoot wraps the page stack so that every frame and every input
// event runs with the model's mutex held.
type lockedRoot struct {
	*tview.Pages
	u          *UI
	lastHeight int
	lastRows   int
}

func (r *lockedRoot) Draw(screen tcell.Screen) {
	r.u.m.Lock()
	defer r.u.m.Unlock()
	r.u.refresh()
	_, _, _, h := r.GetRect()
	if n := min(len(r.u.sessions.rows), 64); h != r.lastHeight || n != r.lastRows {
		r.lastHeight, r.lastRows = h, n
		r.u.layout(h, n)
	}
	// Pages.Draw would first paint every cell of the screen, which the
	// application has just cleared: draw the visible pages directly.
	x, y, w, _ := r.GetRect()
	names := r.GetPageNames(true) // front to back
	for i := len(names) - 1; i >= 0; i-- {
		p := r.GetPage(names[i])
		p.SetRect(x, y, w, h)
		p.Draw(screen)
	}
}

func (r *lockedRoot) InputHandler() func(*tcell.EventKey, func(tview.Primitive)) {
	return func(ev *tcell.EventKey, setFocus func(tview.Primitive)) {
		r.u.m.Lock()
		defer r.u.m.Unlock()
		r.u.refresh()
		r.u.handleKey(ev, setFocus)
	}
}

func (r *lockedRoot) MouseHandler() func(tview.MouseAction, *tcell.EventMouse, func(tview.Primitive)) (bool, tview.Primitive) {
	return func(action tview.MouseAction, ev *tcell.EventMouse, setFocus func(tview.Primitive)) (bool, tview.Primitive) {
		r.u.m.Lock()
		defer r.u.m.Unlock()
		r.u.refresh()
		if r.u.mode != modeNormal && r.u.mode != modeHelp && r.u.mode != modeMessage {
			return false, nil
		}
		return r.Pages.MouseHandler()(action, ev, setFocus)
	}
}

// refresh brings the widgets' derived state up to date with the model.
// Caller holds the model lock.
func (u *UI) refresh() {
	u.sessions.refresh()
	u.trans.refresh()
	u.refreshDetail()
}
