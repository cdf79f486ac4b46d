package ui

import (
	"github.com/gdamore/tcell/v2"
	"github.com/rivo/tview"

	"github.com/popscope/popscope/event"
	"github.com/popscope/popscope/ui/model"
)

type rowKind uint8

const (
	rLine    rowKind = iota // a transcript line
	rFold                   // a detail row of an unfolded reply
	rViol                   // a violation attached to the line above
	rDropped                // "N earlier lines not kept"
)

// tRow is one screen row of the transcript; it also identifies the
// selection across rebuilds.
type tRow struct {
	kind rowKind
	line *model.Line
	sub  int
}

// rowID names a selection in either list (search origin).
type rowID struct {
	pane pane
	sess *model.Session
	row  tRow
}

// foldRows is how many detail rows an unfolded reply shows.
const foldRows = 2

// Layout of a transcript row.
const (
	gutterW  = 2
	timeW    = 12 // 15:04:05.000
	latencyW = 10
)

// transcriptView shows the selected session's lines.
type transcriptView struct {
	*tview.Box
	u        *UI
	sess     *model.Session
	rows     []tRow
	sel      int  // index of the selected row
	selRow   tRow // what the user selected; kept while a filter hides it
	top      int
	expanded map[*model.Line]bool
	expGen   int
	reveal   int // rows below the selection to bring into view once

	titleText string

	built struct {
		sess    *model.Session
		gen     uint64
		fgen    int
		verbose bool
		expGen  int
	}
	shown int // lines that pass the filter
}

func newTranscriptView(u *UI) *transcriptView {
	t := &transcriptView{Box: tview.NewBox(), u: u, expanded: map[*model.Line]bool{}}
	t.SetBorder(true).SetTitleAlign(tview.AlignLeft)
	return t
}

// sessionChanged is called when the session list selects another
// session.
func (t *transcriptView) sessionChanged() {
	t.refresh()
}

// refresh rebuilds the rows if the session, filter, folding or
// verbosity changed, and keeps the selection on the same row. Caller
// holds the model lock.
func (t *transcriptView) refresh() {
	u := t.u
	s := u.sessions.sel
	if s != t.sess {
		t.sess = s
		t.sel, t.selRow, t.top = 0, tRow{}, 0
		t.built.sess = nil
		if len(t.expanded) > 256 {
			t.expanded = map[*model.Line]bool{}
		}
	}
	b := &t.built
	if s == nil {
		t.rows = t.rows[:0]
		t.titleText = " Transcript "
		return
	}
	if b.sess != s || b.gen != s.Gen() || b.fgen != u.filterGen || b.verbose != u.verbose || b.expGen != t.expGen {
		fresh := b.sess != s
		t.build(s)
		b.sess, b.gen, b.fgen, b.verbose, b.expGen = s, s.Gen(), u.filterGen, u.verbose, t.expGen
		if fresh && !u.follow {
			t.sel, t.selRow = 0, tRow{}
		} else {
			t.locate()
		}
	}
	if u.follow && len(t.rows) > 0 {
		t.sel = len(t.rows) - 1
		t.selRow = t.rows[t.sel]
	}
	if t.sel >= len(t.rows) {
		t.sel = max(len(t.rows)-1, 0)
	}
	t.titleText = t.title()
}

func (t *transcriptView) build(s *model.Session) {
	u := t.u
	t.rows = t.rows[:0]
	t.shown = 0
	if s.DroppedLines > 0 {
		t.rows = append(t.rows, tRow{kind: rDropped})
	}
	lineFilter := u.filter.HasLineTerms()
	for i := 0; i < s.LineCount(); i++ {
		l := s.Line(i)
		if l.Verbose && !u.verbose {
			continue
		}
		if lineFilter && !u.filter.MatchLine(s, l) {
			continue
		}
		t.shown++
		t.rows = append(t.rows, tRow{kind: rLine, line: l})
		if l.Foldable() && t.expanded[l] {
			for i := 0; i < foldRows; i++ {
				t.rows = append(t.rows, tRow{kind: rFold, line: l, sub: i})
			}
		}
		if l.Kind != model.KindViolation {
			for i := range l.Violations {
				t.rows = append(t.rows, tRow{kind: rViol, line: l, sub: i})
			}
		}
	}
}

// locate finds the selected row again after a rebuild; if it is gone
// (filtered out, not kept), the nearest row by position stays selected.
func (t *transcriptView) locate() {
	if t.selRow.line == nil && t.selRow.kind != rDropped {
		return
	}
	if t.sel < len(t.rows) && t.rows[t.sel] == t.selRow {
		return
	}
	for i, r := range t.rows {
		if r == t.selRow {
			t.sel = i
			return
		}
	}
	// Same line, other row kind (a fold closed): select the line.
	for i, r := range t.rows {
		if r.line == t.selRow.line && r.kind == rLine {
			t.sel = i
			return
		}
	}
}

func (t *transcriptView) title() string {
	s := t.sess
	u := t.u
	ti := " Transcript " + s.ID
	if s.User != "" {
		ti += " · " + s.User
	}
	if s.Client != "" {
		ti += " · " + s.Client
	}
	if u.filter.HasLineTerms() {
		ti += sprintf(" · filtered: %d lines", t.shown)
	}
	if s.Missing > 0 {
		ti += sprintf(" · %s events missing", model.Thousands(int64(s.Missing)))
	}
	if u.follow {
		ti += " · FOLLOW"
	} else {
		ti += " · paused (G follows)"
	}
	return ti + " "
}

// rowText is a row's text without time, gutter and latency: what the
// search looks at.
func (t *transcriptView) rowText(r tRow) string {
	switch r.kind {
	case rDropped:
		return sprintf("… %s earlier lines not kept (limit %s lines per session)",
			model.Thousands(int64(t.sess.DroppedLines)), model.Thousands(int64(t.u.m.Options().MaxLines)))
	case rFold:
		return foldText(r.line, r.sub, t.u.opt.Messages != nil)
	case rViol:
		v := r.line.Violations[r.sub]
		return "▲ " + string(v.Severity) + " " + v.Rule + " (" + v.By.String() + "): " + model.Escape(v.Detail)
	}
	l := r.line
	if l.Foldable() {
		mark := "▸"
		if t.expanded[l] {
			mark = "▾"
		}
		return l.Text + "  " + mark + " " + l.Fold
	}
	return l.Text
}

func foldText(l *model.Line, sub int, haveBytes bool) string {
	e := l.Ev
	switch sub {
	case 0:
		return sprintf("│ %s octets delivered (dot-unstuffed, CRLF line ends), %s on the wire, %s lines; latency %s",
			model.Thousands(e.Octets), model.Thousands(e.WireOctets), model.Thousands(e.Lines), model.Millis(e.LatencyMS))
	default:
		if isMessageReply(l) && haveBytes {
			return "│ m opens the message view: headers, MIME parts and body from the recording"
		}
		if isMessageReply(l) {
			return "│ the message bytes are not in the event stream (a --record recording keeps them): m shows what the events say"
		}
		return "│ the body lines are not in the event stream (a --record recording keeps them)"
	}
}

func isMessageReply(l *model.Line) bool {
	return l.Ev != nil && l.Ev.Type == event.Response && (l.Ev.Verb == "RETR" || l.Ev.Verb == "TOP")
}

func (t *transcriptView) Draw(scr tcell.Screen) {
	drawFrame(scr, t.Box, t.titleText, t.HasFocus())
	x, y, w, h := t.GetInnerRect()
	if w <= 0 || h <= 0 {
		return
	}
	if t.sess == nil {
		put(scr, x+1, y, w-1, "no session selected", stDim)
		return
	}
	if len(t.rows) == 0 {
		put(scr, x+1, y, w-1, "no line matches the filter", stDim)
		return
	}
	if t.reveal > 0 {
		t.top = scrollTo(t.top, min(t.sel+t.reveal, len(t.rows)-1), h, len(t.rows))
		t.reveal = 0
	}
	t.top = scrollTo(t.top, t.sel, h, len(t.rows))
	focus := t.HasFocus()
	for i := 0; i < h && t.top+i < len(t.rows); i++ {
		idx := t.top + i
		t.drawRow(scr, x, y+i, w, t.rows[idx], idx == t.sel, focus)
	}
}

func (t *transcriptView) drawRow(scr tcell.Screen, x, y, w int, r tRow, selected, focus bool) {
	style := func(st tcell.Style) tcell.Style {
		if selected {
			return mergeSel(st, focus)
		}
		return st
	}
	if selected {
		fill(scr, x, y, w, selStyle(focus))
	}
	textX := x + gutterW + timeW + 1
	textW := w - gutterW - timeW - 1
	var st tcell.Style
	switch r.kind {
	case rLine:
		l := r.line
		if len(l.Violations) > 0 {
			put(scr, x, y, gutterW, "▲", style(sevStyle(l.WorstSeverity())))
		}
		if !l.Time.IsZero() {
			put(scr, x+gutterW, y, timeW, l.Time.Format("15:04:05.000"), style(stDim))
		}
		st = lineStyle(l)
		if l.Ev != nil && l.Ev.Type == event.Response && textW > latencyW+10 {
			lat := pad(model.Millis(l.Ev.LatencyMS), latencyW, true)
			put(scr, x+w-latencyW, y, latencyW, lat, style(stDim))
			textW -= latencyW + 1
		}
	case rFold:
		textX += 4
		textW -= 4
		st = stDim
	case rViol:
		textX += 4
		textW -= 4
		st = sevStyle(r.line.Violations[r.sub].Severity)
	case rDropped:
		st = stErrReply
	}
	if textW <= 0 {
		return
	}
	text := t.rowText(r)
	n := put(scr, textX, y, textW, text, style(st))
	if q := t.u.search; q != "" && t.u.pane == paneTranscript && n > 0 {
		highlight(scr, textX, y, textW, text, q)
	}
}

// highlight repaints the first occurrence of q in text (drawn at x).
func highlight(scr tcell.Screen, x, y, w int, text, q string) {
	i := model.IndexFold(text, q)
	if i < 0 {
		return
	}
	col := textWidth(text[:i])
	if col >= w {
		return
	}
	put(scr, x+col, y, w-col, text[i:i+len(q)], stMatch)
}

func (t *transcriptView) rowAt(y int) int {
	_, iy, _, h := t.GetInnerRect()
	r := y - iy
	if r < 0 || r >= h || t.top+r >= len(t.rows) {
		return -1
	}
	return t.top + r
}

func (t *transcriptView) MouseHandler() func(tview.MouseAction, *tcell.EventMouse, func(tview.Primitive)) (bool, tview.Primitive) {
	return t.WrapMouseHandler(func(action tview.MouseAction, ev *tcell.EventMouse, setFocus func(tview.Primitive)) (bool, tview.Primitive) {
		x, y := ev.Position()
		if !t.InRect(x, y) {
			return false, nil
		}
		u := t.u
		switch action {
		case tview.MouseLeftClick, tview.MouseLeftDoubleClick:
			u.setPane(paneTranscript)
			if r := t.rowAt(y); r >= 0 {
				t.selectRow(r)
				if action == tview.MouseLeftDoubleClick {
					u.toggleFold()
				}
			}
			return true, nil
		case tview.MouseScrollUp:
			t.move(-3)
			return true, nil
		case tview.MouseScrollDown:
			t.move(3)
			return true, nil
		}
		return false, nil
	})
}

func (t *transcriptView) selectRow(r int) {
	if len(t.rows) == 0 {
		return
	}
	r = min(max(r, 0), len(t.rows)-1)
	if r < len(t.rows)-1 {
		t.u.follow = false
	}
	t.sel, t.selRow = r, t.rows[r]
}

func (t *transcriptView) move(d int) {
	if d < 0 {
		t.u.follow = false
	}
	t.selectRow(t.sel + d)
}

func (t *transcriptView) page() int {
	_, _, _, h := t.GetInnerRect()
	return max(h-1, 1)
}

// selected returns the selected row, if any.
func (t *transcriptView) selected() (tRow, bool) {
	if t.sess == nil || len(t.rows) == 0 || t.sel >= len(t.rows) {
		return tRow{}, false
	}
	return t.rows[t.sel], true
}
