package ui

import (
	"fmt"

	"github.com/gdamore/tcell/v2"
	"github.com/rivo/tview"

	"github.com/popscope/popscope/event"
	"github.com/popscope/popscope/ui/model"
)

// Styles. Basic colours only, so that any terminal shows them.
var (
	stDefault  = tcell.StyleDefault
	stDim      = tcell.StyleDefault.Foreground(tcell.ColorGray)
	stHeader   = tcell.StyleDefault.Bold(true).Underline(true)
	stClient   = tcell.StyleDefault.Foreground(tcell.ColorAqua)
	stServer   = tcell.StyleDefault.Foreground(tcell.ColorGreen)
	stErrReply = tcell.StyleDefault.Foreground(tcell.ColorRed)
	stInfo     = tcell.StyleDefault.Foreground(tcell.ColorSilver)
	stKey      = tcell.StyleDefault.Foreground(tcell.ColorYellow).Bold(true)
	stWarnBar  = tcell.StyleDefault.Foreground(tcell.ColorBlack).Background(tcell.ColorYellow)
	stErrBar   = tcell.StyleDefault.Foreground(tcell.ColorWhite).Background(tcell.ColorRed)
	stMatch    = tcell.StyleDefault.Foreground(tcell.ColorBlack).Background(tcell.ColorYellow)
)

func sevStyle(s event.Severity) tcell.Style {
	switch s {
	case event.Error:
		return tcell.StyleDefault.Foreground(tcell.ColorRed).Bold(true)
	case event.Warning:
		return tcell.StyleDefault.Foreground(tcell.ColorYellow)
	case event.Info:
		return tcell.StyleDefault.Foreground(tcell.ColorBlue)
	}
	return stDefault
}

// lineStyle is the colour of a transcript line.
func lineStyle(l *model.Line) tcell.Style {
	switch l.Kind {
	case model.KindClient:
		return stClient
	case model.KindServer:
		if l.IsErr() {
			return stErrReply
		}
		return stServer
	case model.KindViolation:
		return sevStyle(l.WorstSeverity())
	case model.KindGap:
		return stErrReply
	case model.KindState, model.KindNote:
		return stDim
	}
	return stInfo
}

// put writes s at (x, y) in at most w columns and returns the columns
// used.
func put(scr tcell.Screen, x, y, w int, s string, st tcell.Style) int {
	col := 0
	for s != "" && col < w {
		rest, width := scr.Put(x+col, y, s, st)
		if width == 0 {
			break
		}
		col += width
		s = rest
	}
	return col
}

// fill paints w cells from (x, y) with spaces in style st.
func fill(scr tcell.Screen, x, y, w int, st tcell.Style) {
	for i := 0; i < w; i++ {
		scr.Put(x+i, y, " ", st)
	}
}

// textWidth counts runes; good enough for the ASCII and box-drawing
// characters the UI itself writes.
func textWidth(s string) int {
	n := 0
	for range s {
		n++
	}
	return n
}

// fit cuts s to w runes, marking a cut with "…".
func fit(s string, w int) string {
	if w <= 0 {
		return ""
	}
	if textWidth(s) <= w {
		return s
	}
	r := []rune(s)
	if w == 1 {
		return "…"
	}
	return string(r[:w-1]) + "…"
}

// pad fits s into exactly w columns, left or right aligned.
func pad(s string, w int, right bool) string {
	s = fit(s, w)
	n := w - textWidth(s)
	if n <= 0 {
		return s
	}
	sp := fmt.Sprintf("%*s", n, "")
	if right {
		return sp + s
	}
	return s + sp
}

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }

// frameGlyphs are tview's border runes as strings, made once: writing
// them with Screen.Put costs no allocation per cell.
var frameGlyphs = func() (g [2][6]string) {
	b := tview.Borders
	g[0] = [6]string{string(b.Horizontal), string(b.Vertical), string(b.TopLeft), string(b.TopRight), string(b.BottomLeft), string(b.BottomRight)}
	g[1] = [6]string{string(b.HorizontalFocus), string(b.VerticalFocus), string(b.TopLeftFocus), string(b.TopRightFocus), string(b.BottomLeftFocus), string(b.BottomRightFocus)}
	return g
}()

// drawFrame draws a box's border and title, like tview's Box does but
// without first painting every cell of the box: the application clears
// the screen before each frame anyway, and that fill was most of the cost
// of a frame.
func drawFrame(scr tcell.Screen, b *tview.Box, title string, focus bool) {
	x, y, w, h := b.GetRect()
	if w < 2 || h < 2 {
		return
	}
	g := frameGlyphs[0]
	if focus {
		g = frameGlyphs[1]
	}
	st := tcell.StyleDefault.Foreground(borderColor(focus))
	for i := x + 1; i < x+w-1; i++ {
		scr.Put(i, y, g[0], st)
		scr.Put(i, y+h-1, g[0], st)
	}
	for j := y + 1; j < y+h-1; j++ {
		scr.Put(x, j, g[1], st)
		scr.Put(x+w-1, j, g[1], st)
	}
	scr.Put(x, y, g[2], st)
	scr.Put(x+w-1, y, g[3], st)
	scr.Put(x, y+h-1, g[4], st)
	scr.Put(x+w-1, y+h-1, g[5], st)
	if title != "" && w >= 4 {
		put(scr, x+1, y, w-2, fit(title, w-2), tcell.StyleDefault.Foreground(tview.Styles.TitleColor))
	}
}
