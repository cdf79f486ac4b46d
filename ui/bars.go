package ui

import (
	"github.com/gdamore/tcell/v2"
	"github.com/rivo/tview"

	"github.com/popscope/popscope/event"
	"github.com/popscope/popscope/ui/model"
)

// statusBar is the line above the footer: what is watched, follow,
// filter and search on the left; counts and loss warnings on the right.
// A message (export result, filter error) replaces the left part until
// the next key.
type statusBar struct {
	*tview.Box
	u *UI
}

type seg struct {
	text string
	st   tcell.Style
}

func (b *statusBar) Draw(scr tcell.Screen) {
	x, y, w, _ := b.GetInnerRect()
	if w <= 0 {
		return
	}
	u := b.u
	m := u.m

	// Right: warnings first (they must stay visible), then counts.
	var right []seg
	if n := m.Lost(); n > 0 {
		right = append(right, seg{sprintf(" ⚠ UI lost %s events: display incomplete ", model.Thousands(int64(n))), stErrBar}, seg{" ", stDefault})
	}
	for _, o := range m.LostBy() {
		right = append(right, seg{sprintf(" ⚠ %s lost %s events ", o.Name, model.Thousands(int64(o.Dropped))), stWarnBar}, seg{" ", stDefault})
	}
	right = append(right,
		seg{sprintf("%d sessions, %d open · %s events · ", len(m.Sessions()), m.Open(), model.Thousands(int64(m.Events()))), stDim},
		seg{sprintf("%d error", m.Violations(event.Error)), sevStyle(event.Error)},
		seg{" ", stDim},
		seg{sprintf("%d warning", m.Violations(event.Warning)), sevStyle(event.Warning)},
		seg{" ", stDim},
		seg{sprintf("%d info", m.Violations(event.Info)), sevStyle(event.Info)},
	)
	rw := 0
	for _, s := range right {
		rw += textWidth(s.text)
	}

	var left []seg
	if u.follow {
		left = append(left, seg{"FOLLOW", tcell.StyleDefault.Foreground(tcell.ColorBlack).Background(tcell.ColorGreen)})
	} else {
		left = append(left, seg{"PAUSED", tcell.StyleDefault.Foreground(tcell.ColorBlack).Background(tcell.ColorSilver)})
	}
	if !u.filter.Empty() {
		left = append(left, seg{" filter: ", stDim}, seg{u.filter.String(), stKey})
	}
	if u.search != "" {
		left = append(left, seg{" search: ", stDim}, seg{u.search, stMatch})
	}
	switch {
	case u.msg != "":
		left = append(left, seg{" " + u.msg, msgStyle(u.msgErr)})
	default:
		left = append(left, seg{" " + u.opt.Title, stDefault})
		if len(u.logs) > 0 {
			left = append(left, seg{" · " + u.logs[len(u.logs)-1], stDim})
		}
	}
	lw := w - rw - 1
	cx := x
	for _, s := range left {
		if cx-x >= lw {
			break
		}
		cx += put(scr, cx, y, lw-(cx-x), s.text, s.st)
	}
	cx = x + w - rw
	if cx < x {
		cx = x
	}
	for _, s := range right {
		cx += put(scr, cx, y, x+w-cx, s.text, s.st)
	}
}

// footerBar shows key hints from the key table for the focused pane.
type footerBar struct {
	*tview.Box
	u *UI
}

func (f *footerBar) Draw(scr tcell.Screen) {
	x, y, w, _ := f.GetInnerRect()
	var hs [][2]string
	switch f.u.mode {
	case modeInput:
		if f.u.msg != "" {
			// The input line hides the status bar: say what is wrong here.
			put(scr, x, y, w, f.u.msg, msgStyle(f.u.msgErr))
			return
		}
		hs = [][2]string{{"Enter", "apply"}, {"Esc", "cancel"}}
	case modeHelp, modeMessage:
		hs = [][2]string{{"Esc", "close"}, {"↑↓", "scroll"}, {"PgUp/PgDn", "page"}}
	case modeConfirm:
		hs = [][2]string{{"y", "quit"}, {"n", "stay"}}
	default:
		hs = hints(f.u.pane)
	}
	cx := x
	for _, h := range hs {
		need := textWidth(h[0]) + 1 + textWidth(h[1]) + 2
		if cx-x+need > w {
			break
		}
		cx += put(scr, cx, y, w-(cx-x), h[0], stKey)
		cx += put(scr, cx, y, w-(cx-x), " "+h[1]+"  ", stDim)
	}
}

func msgStyle(isErr bool) tcell.Style {
	if isErr {
		return stErrReply
	}
	return tcell.StyleDefault.Foreground(tcell.ColorYellow)
}
