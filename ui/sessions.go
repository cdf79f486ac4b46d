package ui

import (
	"sort"
	"strings"
	"time"

	"github.com/gdamore/tcell/v2"
	"github.com/rivo/tview"

	"github.com/popscope/popscope/event"
	"github.com/popscope/popscope/ui/model"
)

type sortKey uint8

const (
	sortStart sortKey = iota
	sortClient
	sortUser
	sortState
	sortCommands
	sortBytes
	sortViolations
	sortDuration
	nSortKeys
)

var sortNames = [nSortKeys]string{"start", "client", "user", "state", "commands", "bytes", "violations", "duration"}

// sortDesc: numbers sort largest first by default, text and start ascending.
var sortDesc = [nSortKeys]bool{sortCommands: true, sortBytes: true, sortViolations: true, sortDuration: true}

// sessionList is the list of sessions: one row per session, filtered
// and sorted, drawn from the model on every frame.
type sessionList struct {
	*tview.Box
	u      *UI
	rows   []*model.Session
	sel    *model.Session // the selected row's session (nil: no rows)
	want   *model.Session // what the user selected; kept while a filter hides it
	selIdx int
	top    int
	sortBy sortKey
	rev    bool

	titleText string

	built struct {
		gen    uint64
		fgen   int
		sortBy sortKey
		rev    bool
		now    time.Time
		ok     bool
	}
	cache map[*model.Session]matchEntry
}

type matchEntry struct {
	gen  uint64
	fgen int
	ok   bool
}

func newSessionList(u *UI) *sessionList {
	l := &sessionList{Box: tview.NewBox(), u: u, cache: map[*model.Session]matchEntry{}}
	l.SetBorder(true).SetTitleAlign(tview.AlignLeft)
	return l
}

// now is the clock for open sessions' durations: the wall clock when
// live, else the session's own last event.
func (l *sessionList) now() time.Time {
	if l.u.opt.Live {
		return l.u.opt.Now()
	}
	return time.Time{}
}

func (l *sessionList) match(s *model.Session) bool {
	if l.u.filter.Empty() {
		return true
	}
	if c, ok := l.cache[s]; ok && c.gen == s.Gen() && c.fgen == l.u.filterGen {
		return c.ok
	}
	ok := l.u.filter.MatchSession(s)
	l.cache[s] = matchEntry{gen: s.Gen(), fgen: l.u.filterGen, ok: ok}
	return ok
}

// refresh rebuilds the rows if the model, filter or sort changed.
// Caller holds the model lock.
func (l *sessionList) refresh() {
	m := l.u.m
	b := &l.built
	now := l.now()
	if !b.ok || b.gen != m.Gen() || b.fgen != l.u.filterGen || b.sortBy != l.sortBy || b.rev != l.rev ||
		(l.sortBy == sortDuration && !now.Equal(b.now)) {
		all := m.Sessions()
		if len(l.cache) > 2*len(all)+64 {
			l.cache = map[*model.Session]matchEntry{}
		}
		l.rows = l.rows[:0]
		for _, s := range all {
			if l.match(s) {
				l.rows = append(l.rows, s)
			}
		}
		l.sort(now)
		b.gen, b.fgen, b.sortBy, b.rev, b.now, b.ok = m.Gen(), l.u.filterGen, l.sortBy, l.rev, now, true
	}
	idx := -1
	if l.u.follow && l.u.pane == paneSessions && len(l.rows) > 0 {
		l.want = l.rows[len(l.rows)-1]
	}
	if l.want != nil {
		if l.selIdx < len(l.rows) && l.rows[l.selIdx] == l.want {
			idx = l.selIdx
		} else {
			for i, s := range l.rows {
				if s == l.want {
					idx = i
					break
				}
			}
		}
	}
	if idx < 0 && len(l.rows) > 0 {
		idx = min(max(l.selIdx, 0), len(l.rows)-1)
	}
	if idx < 0 {
		l.sel, l.selIdx = nil, 0
	} else {
		l.sel, l.selIdx = l.rows[idx], idx
	}
	if l.want == nil {
		l.want = l.sel
	}
	l.titleText = l.title()
}

func (l *sessionList) title() string {
	m := l.u.m
	t := " Sessions "
	if l.u.filter.Empty() {
		t += sprintf("%d", len(m.Sessions()))
	} else {
		t += sprintf("%d of %d", len(l.rows), len(m.Sessions()))
	}
	t += sprintf(" · %d open · sort: %s %s", m.Open(), sortNames[l.sortBy], l.arrow())
	if n := m.EvictedSessions(); n > 0 {
		t += sprintf(" · %s older sessions not kept", model.Thousands(int64(n)))
	}
	return t + " "
}

func (l *sessionList) arrow() string {
	if sortDesc[l.sortBy] != l.rev {
		return "↓"
	}
	return "↑"
}

func (l *sessionList) sort(now time.Time) {
	key := l.sortBy
	desc := sortDesc[key] != l.rev
	less := func(a, b *model.Session) int {
		switch key {
		case sortClient:
			return strings.Compare(a.Client, b.Client)
		case sortUser:
			return strings.Compare(a.User, b.User)
		case sortState:
			return strings.Compare(a.State, b.State)
		case sortCommands:
			return cmpInt(int64(a.Commands), int64(b.Commands))
		case sortBytes:
			return cmpInt(a.BytesC2S+a.BytesS2C, b.BytesC2S+b.BytesS2C)
		case sortViolations:
			for r := 3; r >= 1; r-- {
				if c := cmpInt(int64(a.Sev[r]), int64(b.Sev[r])); c != 0 {
					return c
				}
			}
			return 0
		case sortDuration:
			return cmpInt(int64(a.Duration(now)), int64(b.Duration(now)))
		}
		return 0
	}
	sort.SliceStable(l.rows, func(i, j int) bool {
		a, b := l.rows[i], l.rows[j]
		c := less(a, b)
		if c == 0 {
			c = cmpInt(int64(a.Arrival), int64(b.Arrival))
		}
		if desc {
			return c > 0
		}
		return c < 0
	})
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// column is one column of the list. Columns with a higher prio are left
// out first when the terminal is narrow.
type column struct {
	title string
	width int
	right bool
	prio  int
	cell  func(l *sessionList, s *model.Session) (string, tcell.Style)
}

var sessionColumns = []column{
	{"", 1, false, 0, func(l *sessionList, s *model.Session) (string, tcell.Style) {
		if s.Open {
			return "●", tcell.StyleDefault.Foreground(tcell.ColorGreen)
		}
		return "○", stDim
	}},
	{"ID", 12, false, 0, func(l *sessionList, s *model.Session) (string, tcell.Style) { return s.ID, stDefault }},
	{"CLIENT", 21, false, 3, func(l *sessionList, s *model.Session) (string, tcell.Style) { return s.Client, stDefault }},
	{"USER", 12, false, 1, func(l *sessionList, s *model.Session) (string, tcell.Style) { return s.User, stClient }},
	{"STATE", 12, false, 2, func(l *sessionList, s *model.Session) (string, tcell.Style) {
		if s.State == "" {
			return "-", stDim
		}
		return s.State, stDefault
	}},
	{"TLS", 5, false, 6, func(l *sessionList, s *model.Session) (string, tcell.Style) { return tlsCell(s) }},
	{"CMDS", 5, true, 5, func(l *sessionList, s *model.Session) (string, tcell.Style) {
		return sprintf("%d", s.Commands), stDefault
	}},
	{"-ERR", 4, true, 6, func(l *sessionList, s *model.Session) (string, tcell.Style) {
		return countCell(s.ErrReplies, stErrReply)
	}},
	{"ERR", 4, true, 1, func(l *sessionList, s *model.Session) (string, tcell.Style) {
		return countCell(s.Sev[event.Error.Rank()], sevStyle(event.Error))
	}},
	{"WARN", 4, true, 1, func(l *sessionList, s *model.Session) (string, tcell.Style) {
		return countCell(s.Sev[event.Warning.Rank()], sevStyle(event.Warning))
	}},
	{"INFO", 4, true, 2, func(l *sessionList, s *model.Session) (string, tcell.Style) {
		return countCell(s.Sev[event.Info.Rank()], sevStyle(event.Info))
	}},
	{"↑BYTES", 7, true, 7, func(l *sessionList, s *model.Session) (string, tcell.Style) {
		if !s.Ended {
			return "", stDim
		}
		return model.Bytes(s.BytesC2S), stDefault
	}},
	{"↓BYTES", 7, true, 7, func(l *sessionList, s *model.Session) (string, tcell.Style) {
		if !s.Ended {
			return "", stDim
		}
		return model.Bytes(s.BytesS2C), stDefault
	}},
	{"DURATION", 8, true, 4, func(l *sessionList, s *model.Session) (string, tcell.Style) {
		return model.Duration(s.Duration(l.now())), stDefault
	}},
}

func countCell(n int, st tcell.Style) (string, tcell.Style) {
	if n == 0 {
		return "·", stDim
	}
	return sprintf("%d", n), st
}

// tlsCell shows which legs used TLS: C (client↔proxy), S (proxy↔server);
// "!" marks a failed handshake.
func tlsCell(s *model.Session) (string, tcell.Style) {
	var parts []string
	bad := false
	for _, leg := range []event.Side{event.Client, event.Server} {
		switch {
		case s.TLSError[leg] != "":
			parts = append(parts, strings.ToUpper(leg.String()[:1])+"!")
			bad = true
		case s.TLS[leg] != nil:
			parts = append(parts, strings.ToUpper(leg.String()[:1]))
		}
	}
	if len(parts) == 0 {
		return "-", stDim
	}
	if bad {
		return strings.Join(parts, "+"), stErrReply
	}
	return strings.Join(parts, "+"), stServer
}

// visibleColumns drops the least important columns until the rest fit.
func visibleColumns(width int) []column {
	cols := append([]column(nil), sessionColumns...)
	total := func() int {
		n := 0
		for _, c := range cols {
			n += c.width + 1
		}
		return n
	}
	for total() > width && len(cols) > 2 {
		worst := -1
		for i, c := range cols {
			if worst < 0 || c.prio >= cols[worst].prio {
				worst = i
			}
		}
		if cols[worst].prio == 0 {
			break
		}
		cols = append(cols[:worst], cols[worst+1:]...)
	}
	return cols
}

func (l *sessionList) Draw(scr tcell.Screen) {
	drawFrame(scr, l.Box, l.titleText, l.HasFocus())
	x, y, w, h := l.GetInnerRect()
	if w <= 0 || h <= 0 {
		return
	}
	cols := visibleColumns(w)
	cx := x
	for _, c := range cols {
		put(scr, cx, y, c.width, pad(c.title, c.width, c.right), stHeader)
		cx += c.width + 1
	}
	vis := h - 1
	if len(l.rows) == 0 {
		msg := "no sessions yet: waiting for clients"
		if !l.u.filter.Empty() && len(l.u.m.Sessions()) > 0 {
			msg = "no session matches the filter (f edits it, an empty filter clears it)"
		}
		put(scr, x+1, y+1, w-1, msg, stDim)
		return
	}
	l.top = scrollTo(l.top, l.selIdx, vis, len(l.rows))
	for i := 0; i < vis && l.top+i < len(l.rows); i++ {
		s := l.rows[l.top+i]
		ry := y + 1 + i
		selected := s == l.sel
		var rowSt tcell.Style
		if selected {
			rowSt = selStyle(l.HasFocus())
			fill(scr, x, ry, w, rowSt)
		}
		cx := x
		for _, c := range cols {
			txt, st := c.cell(l, s)
			if selected {
				st = mergeSel(st, l.HasFocus())
			}
			put(scr, cx, ry, c.width, pad(txt, c.width, c.right), st)
			cx += c.width + 1
		}
	}
}

// scrollTo returns the top row that keeps sel visible in vis rows.
func scrollTo(top, sel, vis, n int) int {
	if vis <= 0 {
		return 0
	}
	if sel < top {
		top = sel
	}
	if sel >= top+vis {
		top = sel - vis + 1
	}
	if top > n-vis {
		top = n - vis
	}
	if top < 0 {
		top = 0
	}
	return top
}

func borderColor(focus bool) tcell.Color {
	if focus {
		return tcell.ColorYellow
	}
	return tcell.ColorGray
}

func selStyle(focus bool) tcell.Style {
	if focus {
		return tcell.StyleDefault.Reverse(true)
	}
	return tcell.StyleDefault.Underline(true)
}

func mergeSel(st tcell.Style, focus bool) tcell.Style {
	if focus {
		return st.Reverse(true)
	}
	return st.Underline(true)
}

// rowAt maps a screen row to a list row, or -1.
func (l *sessionList) rowAt(y int) int {
	_, iy, _, h := l.GetInnerRect()
	r := y - iy - 1
	if r < 0 || r >= h-1 || l.top+r >= len(l.rows) {
		return -1
	}
	return l.top + r
}

func (l *sessionList) MouseHandler() func(tview.MouseAction, *tcell.EventMouse, func(tview.Primitive)) (bool, tview.Primitive) {
	return l.WrapMouseHandler(func(action tview.MouseAction, ev *tcell.EventMouse, setFocus func(tview.Primitive)) (bool, tview.Primitive) {
		x, y := ev.Position()
		if !l.InRect(x, y) {
			return false, nil
		}
		u := l.u
		switch action {
		case tview.MouseLeftClick, tview.MouseLeftDoubleClick:
			u.setPane(paneSessions)
			if r := l.rowAt(y); r >= 0 {
				l.selectRow(r)
				if action == tview.MouseLeftDoubleClick {
					u.openSession()
				}
			}
			return true, nil
		case tview.MouseScrollUp:
			l.move(-3)
			return true, nil
		case tview.MouseScrollDown:
			l.move(3)
			return true, nil
		}
		return false, nil
	})
}

// selectRow selects row r; leaving the last row pauses follow.
func (l *sessionList) selectRow(r int) {
	if len(l.rows) == 0 {
		return
	}
	r = min(max(r, 0), len(l.rows)-1)
	if r < len(l.rows)-1 {
		l.u.follow = false
	}
	l.sel, l.want, l.selIdx = l.rows[r], l.rows[r], r
	l.u.trans.sessionChanged()
}

func (l *sessionList) move(d int) {
	if d < 0 {
		l.u.follow = false
	}
	l.selectRow(l.selIdx + d)
}

func (l *sessionList) page() int {
	_, _, _, h := l.GetInnerRect()
	return max(h-2, 1)
}
