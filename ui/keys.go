package ui

import (
	"fmt"
	"strings"

	"github.com/gdamore/tcell/v2"
	"github.com/rivo/tview"

	"github.com/popscope/popscope/ui/model"
)

// scope says where a binding applies.
type scope uint8

const (
	scopeGlobal scope = iota
	scopeLists        // the session list and the transcript
	scopeSessions
	scopeTranscript
)

var scopeNames = [...]string{
	scopeGlobal:     "Everywhere",
	scopeLists:      "Moving around (session list and transcript)",
	scopeSessions:   "Session list",
	scopeTranscript: "Transcript",
}

// keySpec is one key: a special key, or a rune (Key == tcell.KeyRune).
type keySpec struct {
	key tcell.Key
	r   rune
}

func rk(r rune) keySpec      { return keySpec{tcell.KeyRune, r} }
func kk(k tcell.Key) keySpec { return keySpec{key: k} }

func (k keySpec) matches(ev *tcell.EventKey) bool {
	if k.key == tcell.KeyRune {
		return ev.Key() == tcell.KeyRune && ev.Rune() == k.r
	}
	return ev.Key() == k.key
}

// binding is one row of the key table: it is what the key does, what
// the help overlay says about it, and (if hint is set) what the footer
// shows.
type binding struct {
	scope  scope
	keys   []keySpec
	label  string // how the help names the keys
	hint   string // footer text; empty: help only
	help   string
	action func(*UI)
}

// bindings is the one key table. Order matters: the help and the footer
// list bindings in this order, and the first match wins. (It is set in
// init because the help action renders the table itself.)
var bindings []binding

func init() { bindings = keyTable() }

func keyTable() []binding {
	return []binding{
		{scopeGlobal, []keySpec{rk('?'), kk(tcell.KeyF1)}, "?", "help", "show or hide this help", (*UI).toggleHelp},
		{scopeGlobal, []keySpec{rk('q'), kk(tcell.KeyCtrlC)}, "q  Ctrl-C", "quit",
			"quit; asks first only if open sessions would be cut (live proxy)", (*UI).quit},
		{scopeGlobal, []keySpec{kk(tcell.KeyTab)}, "Tab", "pane", "next pane: sessions → transcript → detail", (*UI).nextPane},
		{scopeGlobal, []keySpec{kk(tcell.KeyBacktab)}, "Shift-Tab", "", "previous pane", (*UI).prevPane},
		{scopeGlobal, []keySpec{rk('f')}, "f", "filter",
			"edit the filter (language below); applies as you type, Enter keeps it, Esc restores, empty clears", (*UI).startFilter},
		{scopeGlobal, []keySpec{rk('/')}, "/", "search",
			"search the focused list as you type; Enter keeps the match, Esc goes back", (*UI).startSearch},
		{scopeGlobal, []keySpec{rk('n')}, "n", "", "next search match", (*UI).searchNext},
		{scopeGlobal, []keySpec{rk('N')}, "N", "", "previous search match", (*UI).searchPrev},
		{scopeGlobal, []keySpec{rk('F')}, "F", "follow",
			"follow on/off: keep the newest session and line in view (scrolling up pauses it)", (*UI).toggleFollow},
		{scopeGlobal, []keySpec{rk('e')}, "e", "export",
			"export the selected session's transcript (C:/S: text, secrets redacted) to a file", (*UI).startExportText},
		{scopeGlobal, []keySpec{rk('E')}, "E", "",
			"export the selected session's events (JSON Lines, as --events writes them) to a file", (*UI).startExportEvents},
		{scopeGlobal, []keySpec{rk('v')}, "v", "", "show or hide state changes and routine notes in transcripts", (*UI).toggleVerbose},
		{scopeGlobal, []keySpec{kk(tcell.KeyEscape)}, "Esc", "",
			"clear the search, or go back to the session list", (*UI).escape},

		{scopeLists, []keySpec{kk(tcell.KeyUp), rk('k')}, "↑  k", "", "previous row", (*UI).up},
		{scopeLists, []keySpec{kk(tcell.KeyDown), rk('j')}, "↓  j", "", "next row", (*UI).down},
		{scopeLists, []keySpec{kk(tcell.KeyPgUp), kk(tcell.KeyCtrlB)}, "PgUp  Ctrl-B", "", "page up", (*UI).pageUp},
		{scopeLists, []keySpec{kk(tcell.KeyPgDn), kk(tcell.KeyCtrlF), rk(' ')}, "PgDn  Ctrl-F  Space", "", "page down", (*UI).pageDown},
		{scopeLists, []keySpec{kk(tcell.KeyHome), rk('g')}, "Home  g", "", "first row", (*UI).first},
		{scopeLists, []keySpec{kk(tcell.KeyEnd), rk('G')}, "End  G", "", "last row; resumes follow", (*UI).last},

		{scopeSessions, []keySpec{kk(tcell.KeyEnter), kk(tcell.KeyRight), rk('l')}, "Enter  →  l", "open",
			"open the selected session's transcript", (*UI).openSession},
		{scopeSessions, []keySpec{rk('s')}, "s", "sort",
			"sort by the next column: start, client, user, state, commands, bytes, violations, duration", (*UI).nextSort},
		{scopeSessions, []keySpec{rk('S')}, "S", "", "reverse the sort order", (*UI).reverseSort},

		{scopeTranscript, []keySpec{kk(tcell.KeyEnter), rk('o')}, "Enter  o", "fold",
			"unfold or fold a multi-line reply (RETR, TOP, LIST, UIDL, CAPA)", (*UI).toggleFold},
		{scopeTranscript, []keySpec{rk(']')}, "]", "next violation", "jump to the next line with a violation", (*UI).nextViolation},
		{scopeTranscript, []keySpec{rk('[')}, "[", "", "jump to the previous line with a violation", (*UI).prevViolation},
		{scopeTranscript, []keySpec{rk('r')}, "r", "filter rule",
			"filter by the selected violation's rule (rule:ID); f edits, an empty filter clears", (*UI).filterByRule},
		{scopeTranscript, []keySpec{rk('m')}, "m", "message", "message view of the selected RETR or TOP reply", (*UI).openMessage},
		{scopeTranscript, []keySpec{kk(tcell.KeyLeft), rk('h'), kk(tcell.KeyBackspace)}, "←  h  Backspace", "",
			"back to the session list", (*UI).backToSessions},
	}
}

// mouseHelp documents the mouse, which the key table cannot.
var mouseHelp = []struct{ what, does string }{
	{"click", "select a session or a line (and focus its pane)"},
	{"double-click", "open a session; fold or unfold a reply"},
	{"wheel", "scroll; scrolling up pauses follow"},
}

// gettingStarted opens the help overlay.
const gettingStarted = `Pick a session in the list with ↑/↓ (or a click) and press Enter to read its transcript: ` +
	`C: lines are the client's, S: lines the server's. Lines marked ▲ broke a rule: press ] to jump to the ` +
	`next one, and the detail pane below explains the rule (ID, severity, who broke it, RFC reference). ` +
	`Press r to show only lines that break that rule (f edits the filter), e to save the transcript to a ` +
	`file, and q to quit.`

// lookup finds the binding for a key in the given pane. Pane bindings
// win over global ones.
func lookup(p pane, ev *tcell.EventKey) *binding {
	var want []scope
	switch p {
	case paneSessions:
		want = []scope{scopeSessions, scopeLists, scopeGlobal}
	case paneTranscript:
		want = []scope{scopeTranscript, scopeLists, scopeGlobal}
	default:
		want = []scope{scopeGlobal}
	}
	for _, sc := range want {
		for i := range bindings {
			b := &bindings[i]
			if b.scope != sc {
				continue
			}
			for _, k := range b.keys {
				if k.matches(ev) {
					return b
				}
			}
		}
	}
	return nil
}

// hints returns the footer's key hints for a pane: the pane's own first,
// then the global ones.
func hints(p pane) [][2]string {
	var out [][2]string
	add := func(sc scope) {
		for _, b := range bindings {
			if b.scope == sc && b.hint != "" {
				out = append(out, [2]string{firstKey(b.label), b.hint})
			}
		}
	}
	switch p {
	case paneSessions:
		add(scopeSessions)
	case paneTranscript:
		add(scopeTranscript)
	}
	add(scopeGlobal)
	return out
}

func firstKey(label string) string {
	if i := strings.Index(label, "  "); i > 0 {
		return label[:i]
	}
	return label
}

// helpWidth is the widest the help overlay gets.
const helpWidth = 110

// helpCol is where descriptions start in the help.
const helpCol = 25

// helpText renders the help overlay from the key table (tview tags),
// wrapped to width columns with descriptions in a column of their own.
func helpText(width int) string {
	if width < helpCol+20 {
		width = helpCol + 20
	}
	var b strings.Builder
	row := func(key, desc string) {
		lines := wrap(desc, width-helpCol)
		fmt.Fprintf(&b, "  [aqua]%s[-]%s%s\n", tview.Escape(key), strings.Repeat(" ", max(helpCol-2-textWidth(key), 1)), tview.Escape(lines[0]))
		for _, l := range lines[1:] {
			fmt.Fprintf(&b, "%s%s\n", strings.Repeat(" ", helpCol), tview.Escape(l))
		}
	}
	b.WriteString("[::b]popscope — terminal UI[::-]\n\n")
	for _, l := range wrap(gettingStarted, width) {
		b.WriteString(tview.Escape(l) + "\n")
	}
	for sc := scopeGlobal; int(sc) < len(scopeNames); sc++ {
		fmt.Fprintf(&b, "\n[yellow::b]%s[-::-]\n", scopeNames[sc])
		for _, bd := range bindings {
			if bd.scope == sc {
				row(bd.label, bd.help)
			}
		}
	}
	b.WriteString("\n[yellow::b]Mouse[-::-]\n")
	for _, m := range mouseHelp {
		row(m.what, m.does)
	}
	b.WriteString("\n[yellow::b]Filter language[-::-] (f; terms separated by spaces must all hold)\n")
	for _, t := range model.FilterTerms {
		row(t.Syntax, t.Meaning)
	}
	b.WriteString("\n[yellow::b]Transcript marks[-::-]\n")
	row("C: / S:", "client / server line; the time is when popscope read it; at the right, a reply's latency")
	row("▸ / ▾", "folded / unfolded multi-line reply (Enter)")
	row("▲", "a line that broke a rule; below it: severity, rule, who broke it, what was seen")
	row("…", "events missing (the UI fell behind) or lines not kept (limit per session)")
	return b.String()
}

// wrap breaks s into lines of at most w columns at spaces.
func wrap(s string, w int) []string {
	var out []string
	line := ""
	for _, word := range strings.Fields(s) {
		switch {
		case line == "":
			line = word
		case textWidth(line)+1+textWidth(word) <= w:
			line += " " + word
		default:
			out = append(out, line)
			line = word
		}
	}
	return append(out, line)
}

// KeyTableMarkdown renders the key table as Markdown, for the README.
func KeyTableMarkdown() string {
	var b strings.Builder
	for sc := scopeGlobal; int(sc) < len(scopeNames); sc++ {
		fmt.Fprintf(&b, "\n**%s**\n\n| keys | does |\n|---|---|\n", scopeNames[sc])
		for _, bd := range bindings {
			if bd.scope == sc {
				fmt.Fprintf(&b, "| %s | %s |\n", mdKeys(bd.label), bd.help)
			}
		}
	}
	b.WriteString("\n**Mouse**\n\n| | does |\n|---|---|\n")
	for _, m := range mouseHelp {
		fmt.Fprintf(&b, "| %s | %s |\n", m.what, m.does)
	}
	b.WriteString("\n**Filter language** (terms separated by spaces must all hold)\n\n| term | matches |\n|---|---|\n")
	for _, t := range model.FilterTerms {
		fmt.Fprintf(&b, "| `%s` | %s |\n", t.Syntax, t.Meaning)
	}
	return b.String()
}

func mdKeys(label string) string {
	parts := strings.Split(label, "  ")
	for i, p := range parts {
		parts[i] = "`" + p + "`"
	}
	return strings.Join(parts, " ")
}
