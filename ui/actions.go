package ui

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/gdamore/tcell/v2"
	"github.com/rivo/tview"

	"github.com/popscope/popscope/event"
	"github.com/popscope/popscope/ui/model"
)

// handleKey routes a key: to the open overlay or input line, else
// through the key table. Caller holds the model lock.
func (u *UI) handleKey(ev *tcell.EventKey, setFocus func(tview.Primitive)) {
	// Terminals send Alt+key as ESC key, so an Esc typed quickly before a
	// key arrives as Alt+key. No binding uses Alt: take it as the two keys.
	if ev.Key() == tcell.KeyRune && ev.Modifiers()&tcell.ModAlt != 0 {
		u.handleKey(tcell.NewEventKey(tcell.KeyEscape, 0, tcell.ModNone), setFocus)
		ev = tcell.NewEventKey(tcell.KeyRune, ev.Rune(), ev.Modifiers()&^tcell.ModAlt)
	}
	if u.mode != modeInput {
		u.msg, u.msgErr = "", false
	}
	switch u.mode {
	case modeInput:
		u.input.InputHandler()(ev, setFocus)
		return
	case modeHelp, modeMessage:
		if ev.Key() == tcell.KeyEscape || ev.Key() == tcell.KeyEnter ||
			(ev.Key() == tcell.KeyRune && (ev.Rune() == 'q' || ev.Rune() == '?' || ev.Rune() == 'm')) {
			u.closeOverlay()
			return
		}
		if ev.Key() == tcell.KeyCtrlC {
			u.quit()
			return
		}
		tv := u.help
		if u.mode == modeMessage {
			tv = u.message
		}
		tv.InputHandler()(ev, setFocus)
		return
	case modeConfirm:
		switch {
		case ev.Key() == tcell.KeyCtrlC, ev.Key() == tcell.KeyEnter,
			ev.Key() == tcell.KeyRune && (ev.Rune() == 'y' || ev.Rune() == 'Y' || ev.Rune() == 'q'):
			u.Stop()
		case ev.Key() == tcell.KeyEscape, ev.Key() == tcell.KeyRune && (ev.Rune() == 'n' || ev.Rune() == 'N'):
			u.closeOverlay()
		}
		return
	}
	if b := lookup(u.pane, ev); b != nil {
		b.action(u)
		return
	}
	if u.pane == paneDetail {
		u.detail.InputHandler()(ev, setFocus) // scrolling
	}
}

// ---- overlays ----

func (u *UI) showOverlay(name string, m mode, p tview.Primitive) {
	u.mode = m
	u.pages.ShowPage(name)
	u.app.SetFocus(p)
}

func (u *UI) closeOverlay() {
	for _, n := range []string{"help", "message", "confirm"} {
		u.pages.HidePage(n)
	}
	u.mode = modeNormal
	u.setPane(u.pane)
}

func (u *UI) toggleHelp() {
	_, _, w, h := u.root.GetRect()
	_, _, ow, _ := overlayRect(w, h, helpWidth, h)
	u.help.SetText(helpText(ow - 2))
	u.help.ScrollToBeginning()
	u.showOverlay("help", modeHelp, u.help)
}

// quit stops the UI, or asks first when quitting a live proxy would cut
// open sessions (nothing else is lost: a recording stays on disk).
func (u *UI) quit() {
	if u.opt.Live && u.m.Open() > 0 {
		u.confirm.SetText(sprintf("\n%d session(s) are still open: quitting stops the proxy and cuts them.\n\nQuit anyway?  [yellow::b]y[-::-] yes   [yellow::b]n[-::-] no", u.m.Open()))
		u.showOverlay("confirm", modeConfirm, u.confirm)
		return
	}
	u.Stop()
}

// ---- panes ----

func (u *UI) panes() []pane {
	ps := []pane{paneSessions, paneTranscript}
	if u.root.lastHeight >= 20 || u.root.lastHeight == 0 {
		ps = append(ps, paneDetail)
	}
	return ps
}

func (u *UI) nextPane() { u.cyclePane(1) }
func (u *UI) prevPane() { u.cyclePane(-1) }

func (u *UI) cyclePane(d int) {
	ps := u.panes()
	i := 0
	for j, p := range ps {
		if p == u.pane {
			i = j
		}
	}
	u.setPane(ps[(i+d+len(ps))%len(ps)])
}

func (u *UI) openSession() {
	if u.sessions.sel == nil {
		return
	}
	u.setPane(paneTranscript)
}

func (u *UI) backToSessions() { u.setPane(paneSessions) }

func (u *UI) escape() {
	if u.search != "" {
		u.search = ""
		return
	}
	if u.pane != paneSessions {
		u.setPane(paneSessions)
	}
}

// ---- movement ----

func (u *UI) up()       { u.moveBy(-1) }
func (u *UI) down()     { u.moveBy(1) }
func (u *UI) pageUp()   { u.moveBy(-u.pageSize()) }
func (u *UI) pageDown() { u.moveBy(u.pageSize()) }

func (u *UI) pageSize() int {
	if u.pane == paneSessions {
		return u.sessions.page()
	}
	return u.trans.page()
}

func (u *UI) moveBy(d int) {
	switch u.pane {
	case paneSessions:
		u.sessions.move(d)
	case paneTranscript:
		u.trans.move(d)
	}
}

func (u *UI) first() {
	u.follow = false
	switch u.pane {
	case paneSessions:
		u.sessions.selectRow(0)
	case paneTranscript:
		u.trans.selectRow(0)
	}
}

func (u *UI) last() {
	switch u.pane {
	case paneSessions:
		u.sessions.selectRow(len(u.sessions.rows) - 1)
	case paneTranscript:
		u.trans.selectRow(len(u.trans.rows) - 1)
	}
	u.follow = true
	u.refresh()
}

func (u *UI) toggleFollow() {
	u.follow = !u.follow
	if u.follow {
		u.refresh()
		u.msg = "follow on: the newest stays in view; scrolling up pauses it"
	} else {
		u.msg = "follow paused: G or F resumes"
	}
}

func (u *UI) toggleVerbose() {
	u.verbose = !u.verbose
	if u.verbose {
		u.msg = "showing state changes and notes"
	} else {
		u.msg = "hiding state changes and routine notes"
	}
}

// ---- sessions ----

func (u *UI) nextSort() {
	l := u.sessions
	l.sortBy = (l.sortBy + 1) % nSortKeys
	l.rev = false
	u.msg = "sorted by " + sortNames[l.sortBy] + " (s: next column, S: reverse)"
}

func (u *UI) reverseSort() { u.sessions.rev = !u.sessions.rev }

// ---- transcript ----

func (u *UI) toggleFold() {
	r, ok := u.trans.selected()
	if !ok || r.line == nil || !r.line.Foldable() {
		u.msg = "only multi-line replies fold (RETR, TOP, LIST, UIDL, CAPA)"
		return
	}
	t := u.trans
	t.expanded[r.line] = !t.expanded[r.line]
	t.expGen++
	t.selRow = tRow{kind: rLine, line: r.line}
	u.refresh()
	if t.expanded[r.line] {
		t.reveal = foldRows + len(r.line.Violations)
	}
}

func hasViolation(r tRow) bool {
	return r.kind == rLine && r.line != nil && len(r.line.Violations) > 0
}

func (u *UI) nextViolation() { u.jumpViolation(1) }
func (u *UI) prevViolation() { u.jumpViolation(-1) }

func (u *UI) jumpViolation(d int) {
	t := u.trans
	if u.pane != paneTranscript {
		u.setPane(paneTranscript)
	}
	n := len(t.rows)
	for i, k := t.sel+d, 0; k < n; i, k = i+d, k+1 {
		if i < 0 || i >= n {
			break
		}
		if hasViolation(t.rows[i]) {
			t.selectRow(i)
			t.reveal = len(t.rows[i].line.Violations)
			if d < 0 || i < n-1 {
				u.follow = false
			}
			return
		}
	}
	if d > 0 {
		u.msg = "no further violation in this session"
	} else {
		u.msg = "no earlier violation in this session"
	}
}

func (u *UI) filterByRule() {
	r, ok := u.trans.selected()
	if !ok || r.line == nil || len(r.line.Violations) == 0 {
		u.msg = "select a line marked ▲ first (] jumps to the next)"
		return
	}
	v := r.line.Violations[0]
	if r.kind == rViol {
		v = r.line.Violations[r.sub]
	}
	u.setFilter("rule:" + v.Rule)
	u.msg = "filter rule:" + v.Rule + " — f edits it, an empty filter clears it"
}

func (u *UI) openMessage() {
	r, ok := u.trans.selected()
	if !ok || r.line == nil {
		return
	}
	reply, cmd := u.exchange(r.line)
	if reply == nil || !isMessageReply(reply) {
		u.msg = "the message view is for RETR and TOP replies"
		return
	}
	u.message.SetText(messageText(u.trans.sess, reply, cmd, u.opt.Messages))
	u.message.ScrollToBeginning()
	u.showOverlay("message", modeMessage, u.message)
}

// exchange finds the command and reply lines of the exchange l belongs
// to (by ID), among the kept lines.
func (u *UI) exchange(l *model.Line) (reply, cmd *model.Line) {
	if l.Ev == nil || l.Ev.ID == 0 {
		return nil, nil
	}
	id := l.Ev.ID
	s := u.trans.sess
	for i := 0; i < s.LineCount(); i++ {
		x := s.Line(i)
		if x.Ev == nil || x.Ev.ID != id {
			continue
		}
		switch x.Ev.Type {
		case event.Command:
			cmd = x
		case event.Response:
			reply = x
		}
	}
	return reply, cmd
}

// ---- filter and search ----

func (u *UI) setFilter(src string) error {
	f, err := model.ParseFilter(src)
	if err != nil {
		return err
	}
	u.filter = f
	u.filterGen++
	u.refresh()
	return nil
}

func (u *UI) startInput(k inputKind, label, text string) {
	u.mode = modeInput
	u.inKind = k
	u.input.SetLabel(label)
	u.input.SetText(text)
	u.cmdline.SwitchToPage("input")
	u.app.SetFocus(u.input)
}

func (u *UI) endInput() {
	u.mode = modeNormal
	u.cmdline.SwitchToPage("status")
	u.setPane(u.pane)
}

func (u *UI) startFilter() {
	u.oldFilter = u.filter.String()
	u.startInput(inputFilter, "filter: ", u.oldFilter)
}

func (u *UI) startSearch() {
	if u.pane == paneDetail {
		u.setPane(paneTranscript)
	}
	u.searchOrg = u.currentRow()
	u.startInput(inputSearch, "search: ", "")
}

func (u *UI) currentRow() rowID {
	id := rowID{pane: u.pane, sess: u.sessions.sel}
	if u.pane == paneTranscript {
		id.row, _ = u.trans.selected()
	}
	return id
}

// inputChanged runs as the user types (filter and search act at once).
func (u *UI) inputChanged(text string) {
	if u.mode != modeInput {
		return
	}
	switch u.inKind {
	case inputFilter:
		if err := u.setFilter(text); err != nil {
			u.msg, u.msgErr = err.Error(), true
		} else {
			u.msg, u.msgErr = "", false
		}
	case inputSearch:
		u.restoreRow(u.searchOrg)
		u.search = text
		if text != "" && !u.find(text, 0, 1) {
			u.msg, u.msgErr = "no match for "+text, true
		} else {
			u.msg, u.msgErr = "", false
		}
	}
}

func (u *UI) inputDone(key tcell.Key) {
	if u.mode != modeInput {
		return
	}
	text := u.input.GetText()
	switch u.inKind {
	case inputFilter:
		if key == tcell.KeyEscape {
			_ = u.setFilter(u.oldFilter)
			u.msg, u.msgErr = "", false
		} else if err := u.setFilter(text); err != nil {
			u.msg, u.msgErr = err.Error(), true
			return // keep editing
		}
	case inputSearch:
		if key == tcell.KeyEscape {
			u.search = ""
			u.restoreRow(u.searchOrg)
			u.msg, u.msgErr = "", false
		} else if text != "" {
			u.msg, u.msgErr = "n: next match, N: previous, Esc: clear", false
		}
	case inputExportText, inputExportEvents:
		if key == tcell.KeyEnter && text != "" {
			u.export(u.inKind, text)
		}
	}
	u.endInput()
}

func (u *UI) restoreRow(id rowID) {
	if id.sess != nil && id.sess != u.sessions.sel {
		for i, s := range u.sessions.rows {
			if s == id.sess {
				u.sessions.sel, u.sessions.want, u.sessions.selIdx = s, s, i
			}
		}
		u.trans.refresh()
	}
	if id.pane == paneTranscript {
		for i, r := range u.trans.rows {
			if r == id.row {
				u.trans.sel, u.trans.selRow = i, r
			}
		}
	}
}

func (u *UI) searchNext() { u.searchStep(1) }
func (u *UI) searchPrev() { u.searchStep(-1) }

func (u *UI) searchStep(d int) {
	if u.search == "" {
		u.msg = "no search: / starts one"
		return
	}
	if !u.find(u.search, d, d) {
		u.msg, u.msgErr = "no match for "+u.search, true
	}
}

// find selects the first row matching q (lower-cased on the fly) in the
// focused list, looking from the selection + from in direction d and
// wrapping around. It pauses follow.
func (u *UI) find(q string, from, d int) bool {
	q = lower(q)
	switch u.pane {
	case paneSessions:
		l := u.sessions
		n := len(l.rows)
		for k := 0; k < n; k++ {
			i := ((l.selIdx+from+d*k)%n + n) % n
			s := l.rows[i]
			if model.ContainsFold(s.ID, q) || model.ContainsFold(s.Client, q) || model.ContainsFold(s.User, q) || model.ContainsFold(s.State, q) {
				u.follow = false
				l.sel, l.want, l.selIdx = s, s, i
				u.trans.refresh()
				return true
			}
		}
	case paneTranscript:
		t := u.trans
		n := len(t.rows)
		for k := 0; k < n; k++ {
			i := ((t.sel+from+d*k)%n + n) % n
			if model.ContainsFold(t.rowText(t.rows[i]), q) {
				u.follow = false
				t.sel, t.selRow = i, t.rows[i]
				return true
			}
		}
	}
	return false
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// ---- export ----

func (u *UI) startExportText()   { u.startExport(inputExportText) }
func (u *UI) startExportEvents() { u.startExport(inputExportEvents) }

func (u *UI) startExport(k inputKind) {
	s := u.sessions.sel
	if s == nil {
		u.msg, u.msgErr = "no session selected to export", true
		return
	}
	name, label := "popscope-"+s.ID+".txt", "export transcript to: "
	if k == inputExportEvents {
		name, label = "popscope-"+s.ID+".jsonl", "export events to: "
	}
	u.startInput(k, label, filepath.Join(u.opt.ExportDir, name))
}

// export writes the selected session to path. It never overwrites a
// file.
func (u *UI) export(k inputKind, path string) {
	s := u.sessions.sel
	if s == nil {
		return
	}
	var buf bytes.Buffer
	what := "transcript"
	var err error
	if k == inputExportEvents {
		what = "events"
		err = model.WriteEvents(&buf, s)
	} else {
		err = model.WriteTranscript(&buf, s)
	}
	if err == nil {
		err = writeNew(path, buf.Bytes())
	}
	switch {
	case errors.Is(err, fs.ErrExist):
		u.msg, u.msgErr = path+" exists: not overwritten; choose another name", true
	case err != nil:
		u.msg, u.msgErr = "export: "+err.Error(), true
	default:
		n := s.LineCount()
		if k == inputExportEvents {
			n = s.EventCount()
		}
		u.msg = sprintf("wrote %s of session %s (%d %s) to %s", what, s.ID, n, map[bool]string{true: "events", false: "lines"}[k == inputExportEvents], path)
	}
}

func writeNew(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
