package ui

import (
	"fmt"
	"strings"
	"time"

	"github.com/rivo/tview"

	"github.com/popscope/popscope/decode"
	"github.com/popscope/popscope/event"
	"github.com/popscope/popscope/ui/model"
)

// detailKey identifies what the detail pane shows, so that its text is
// rebuilt only when that changes.
type detailKey struct {
	pane pane
	sess *model.Session
	gen  uint64
	row  tRow
}

// refreshDetail sets the detail pane's text for the current selection.
// Caller holds the model lock.
func (u *UI) refreshDetail() {
	p := u.pane
	if p == paneDetail {
		p = paneTranscript
	}
	k := detailKey{pane: p, sess: u.sessions.sel}
	if k.sess != nil {
		k.gen = k.sess.Gen()
	}
	row, ok := u.trans.selected()
	if p == paneTranscript && ok {
		k.row = row
	} else {
		k.pane = paneSessions
	}
	if k == u.detailKey {
		return
	}
	u.detailKey = k
	var text, title string
	switch {
	case k.sess == nil:
		text, title = "[gray]No session selected. Sessions appear in the list above as clients connect.[-]", " Detail "
	case k.pane == paneSessions:
		text, title = sessionDetail(k.sess, u.opt.Live, u.opt.Now), " Session "+k.sess.ID+" "
	default:
		text, title = rowDetail(k.sess, k.row)
	}
	u.detail.SetText(text)
	u.detail.SetTitle(title)
	u.detail.ScrollToBeginning()
}

func esc(s string) string { return tview.Escape(s) }

func sessionDetail(s *model.Session, live bool, now func() time.Time) string {
	var b strings.Builder
	status := "[green]open[-]"
	if !s.Open {
		status = "closed: " + esc(s.Reason)
		if s.Error != "" {
			status += " (" + esc(s.Error) + ")"
		}
	}
	var clock time.Time
	if live {
		clock = now()
	}
	fmt.Fprintf(&b, "[::b]Session %s[::-] · %s · started %s · %s\n", s.ID, status,
		s.Start.Format("2006-01-02 15:04:05.000"), model.Duration(s.Duration(clock)))
	fmt.Fprintf(&b, "client %s → proxy %s → upstream %s\n", esc(dash(s.Client)), esc(dash(s.Listener)), esc(dash(s.Upstream)))
	user := "[gray]not logged in[-]"
	if s.User != "" {
		user = "user [aqua]" + esc(s.User) + "[-]"
		if s.Mech != "" {
			user += " via " + esc(s.Mech)
		} else {
			user += " (no successful login seen)"
		}
	}
	fmt.Fprintf(&b, "%s · state %s · %d commands, %d replies, %d -ERR", user, esc(dash(s.State)), s.Commands, s.Replies, s.ErrReplies)
	if s.Ended {
		fmt.Fprintf(&b, " · %s bytes up, %s down", model.Thousands(s.BytesC2S), model.Thousands(s.BytesS2C))
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "TLS: client leg %s; server leg %s\n", tlsSummary(s, event.Client), tlsSummary(s, event.Server))
	fmt.Fprintf(&b, "violations: [red]%d error[-], [yellow]%d warning[-], [blue]%d info[-]",
		s.Sev[event.Error.Rank()], s.Sev[event.Warning.Rank()], s.Sev[event.Info.Rank()])
	if s.Opaque {
		b.WriteString(" · decoding stopped (opaque)")
	}
	if s.Missing > 0 {
		fmt.Fprintf(&b, " · [red]%s events missing (the UI fell behind)[-]", model.Thousands(int64(s.Missing)))
	}
	b.WriteString("\n[gray]Enter opens the transcript.[-]")
	return b.String()
}

func tlsSummary(s *model.Session, leg event.Side) string {
	if e := s.TLSError[leg]; e != "" {
		return "[red]handshake failed: " + esc(e) + "[-]"
	}
	t := s.TLS[leg]
	if t == nil {
		return "none seen"
	}
	parts := []string{t.Mode}
	if t.Version != "" {
		parts = append(parts, t.Version)
	}
	if t.Cipher != "" {
		parts = append(parts, t.Cipher)
	}
	if t.SNI != "" {
		parts = append(parts, "SNI "+t.SNI)
	}
	if t.ALPN != "" {
		parts = append(parts, "ALPN "+t.ALPN)
	}
	if t.PeerSubject != "" {
		parts = append(parts, "peer "+t.PeerSubject)
	}
	switch {
	case t.Verified:
		parts = append(parts, "verified")
	case t.VerifyError != "":
		parts = append(parts, "not verified: "+t.VerifyError)
	}
	return esc(strings.Join(parts, ", "))
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// rowDetail explains the selected transcript row: its violations from
// the rules catalog, or what its event says.
func rowDetail(s *model.Session, r tRow) (text, title string) {
	if r.kind == rDropped || r.line == nil {
		return "Older lines of this session were let go to bound memory; export the events (E) early, or record with --events, to keep everything.", " Detail "
	}
	l := r.line
	if len(l.Violations) > 0 && r.kind != rFold {
		vs := l.Violations
		if r.kind == rViol {
			// The selected violation first, then the others of the line.
			vs = append([]*event.Event{vs[r.sub]}, append(append([]*event.Event(nil), vs[:r.sub]...), vs[r.sub+1:]...)...)
		}
		var b strings.Builder
		if l.Kind != model.KindViolation {
			fmt.Fprintf(&b, "[gray]on the line[-] %s\n", esc(l.Text))
		}
		for i, v := range vs {
			if i > 0 {
				b.WriteString("\n")
			}
			b.WriteString(violationDetail(v))
		}
		t := " Violation " + vs[0].Rule + " "
		if len(vs) > 1 {
			t = sprintf(" %d violations: %s … ", len(vs), vs[0].Rule)
		}
		return b.String(), t
	}
	return lineDetail(l), " Detail "
}

// violationDetail is the explanation of one violation: the event's own
// facts and the catalog's.
func violationDetail(v *event.Event) string {
	var b strings.Builder
	sevColor := map[event.Severity]string{event.Error: "red", event.Warning: "yellow", event.Info: "blue"}[v.Severity]
	if sevColor == "" {
		sevColor = "white"
	}
	r := decode.LookupRule(v.Rule)
	fmt.Fprintf(&b, "[%s::b]%s[-::-]  [%s]%s[-] · broken by the %s", sevColor, esc(v.Rule), sevColor, v.Severity, dash(v.By.String()))
	if r != nil {
		if r.Ref != "" {
			fmt.Fprintf(&b, " · RFC %s", esc(r.Ref))
		}
		if r.Severity != v.Severity && r.Severity != "" {
			fmt.Fprintf(&b, " · catalog default %s", r.Severity)
		}
	}
	if v.Offset != 0 {
		fmt.Fprintf(&b, " · %s byte offset %s", v.By, model.Thousands(v.Offset))
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "[::b]seen:[::-] %s\n", esc(model.Escape(v.Detail)))
	if r == nil {
		b.WriteString("[gray]This rule is not in this build's catalog (docs/pop3-rules.md).[-]\n")
		return b.String()
	}
	fmt.Fprintf(&b, "[::b]rule:[::-] %s\n", esc(r.Detection))
	if r.Example != "" {
		fmt.Fprintf(&b, "[::b]example:[::-] %s\n", esc(r.Example))
	}
	return b.String()
}

// lineDetail lists what a line's event carries.
func lineDetail(l *model.Line) string {
	e := l.Ev
	if e == nil {
		return esc(l.Text)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[::b]%s[::-] · seq %d · %s", e.Type, e.Seq, e.Time.Format("2006-01-02 15:04:05.000000"))
	if e.ID != 0 {
		fmt.Fprintf(&b, " · exchange %d", e.ID)
	}
	if e.By != event.NoSide {
		fmt.Fprintf(&b, " · from the %s", e.By)
		if e.Offset != 0 || e.Type == event.Command || e.Type == event.Greeting {
			fmt.Fprintf(&b, " at byte %s", model.Thousands(e.Offset))
		}
	}
	b.WriteString("\n")
	switch e.Type {
	case event.Response:
		fmt.Fprintf(&b, "reply to [aqua]%s[-]: %s", esc(l.Cmd), esc(e.Status))
		if e.Code != "" {
			fmt.Fprintf(&b, " [%s]", esc(e.Code))
		}
		fmt.Fprintf(&b, " · latency %s\n", model.Millis(e.LatencyMS))
		if e.Multiline {
			fmt.Fprintf(&b, "multi-line: %s octets delivered (dot-unstuffed, CRLF line ends; the size LIST must report), %s octets on the wire, %s lines\n",
				model.Thousands(e.Octets), model.Thousands(e.WireOctets), model.Thousands(e.Lines))
			if isMessageReply(l) {
				b.WriteString("[gray]m opens the message view.[-]\n")
			}
		}
	case event.Command:
		if e.Redacted {
			b.WriteString("arguments redacted: secrets never reach any output\n")
		}
		if e.Pipelined {
			b.WriteString("pipelined: sent while earlier replies were outstanding\n")
		}
	case event.Greeting:
		if e.Timestamp != "" {
			fmt.Fprintf(&b, "APOP timestamp %s\n", esc(e.Timestamp))
		}
	case event.TLS:
		if e.TLS != nil {
			fmt.Fprintf(&b, "%s leg: mode %s, %s %s", e.TLS.Leg, esc(e.TLS.Mode), esc(e.TLS.Version), esc(e.TLS.Cipher))
			if e.TLS.PeerSubject != "" {
				fmt.Fprintf(&b, "\npeer %s, issuer %s, expires %s", esc(e.TLS.PeerSubject), esc(e.TLS.PeerIssuer), e.TLS.PeerExpiry.Format("2006-01-02"))
			}
			if len(e.TLS.Offered) > 0 {
				fmt.Fprintf(&b, "\noffered %s", esc(strings.Join(e.TLS.Offered, ", ")))
			}
			b.WriteString("\n")
		}
	case event.Login:
		fmt.Fprintf(&b, "user %s logged in via %s\n", esc(e.User), esc(e.Verb))
	}
	if e.Detail != "" {
		fmt.Fprintf(&b, "%s\n", esc(model.Escape(e.Detail)))
	}
	if e.Error != "" {
		fmt.Fprintf(&b, "[red]%s[-]\n", esc(model.Escape(e.Error)))
	}
	return b.String()
}

// messageText is the message view of a RETR or TOP reply: what the
// events carry and, when ms holds the reply's bytes, the message itself.
func messageText(s *model.Session, reply *model.Line, cmd *model.Line, ms *Messages) string {
	e := reply.Ev
	var b strings.Builder
	fmt.Fprintf(&b, "[::b]%s[::-] in session %s", esc(reply.Cmd), s.ID)
	if s.User != "" {
		fmt.Fprintf(&b, " (user %s)", esc(s.User))
	}
	b.WriteString("\n\n")
	if cmd != nil {
		fmt.Fprintf(&b, "[aqua]%s[-]   sent %s\n", esc(cmd.Text), cmd.Time.Format("15:04:05.000"))
	}
	fmt.Fprintf(&b, "[green]%s[-]   complete %s, latency %s\n\n", esc(reply.Text), reply.Time.Format("15:04:05.000"), model.Millis(e.LatencyMS))
	if e.Status != "+OK" {
		b.WriteString("The server refused: no message was delivered.\n")
		return b.String()
	}
	fmt.Fprintf(&b, "delivered   %s octets (dot-unstuffed, CRLF line ends: the size LIST must report, RFC 1939 §11)\n", model.Thousands(e.Octets))
	fmt.Fprintf(&b, "on the wire %s octets (with stuffing dots and the terminator line)\n", model.Thousands(e.WireOctets))
	fmt.Fprintf(&b, "lines       %s\n", model.Thousands(e.Lines))
	if n := len(reply.Violations); n > 0 {
		fmt.Fprintf(&b, "\n[::b]%d violation(s) in this reply[::-]\n", n)
		for _, v := range reply.Violations {
			fmt.Fprintf(&b, "  %s %s: %s\n", v.Severity, esc(v.Rule), esc(model.Escape(v.Detail)))
		}
	}
	if ms == nil {
		b.WriteString("\n[gray]Headers and body: not available here — a live proxy and a JSON Lines event stream carry " +
			"the events, not the message bytes. A recording (popscope proxy --record DIR) keeps them: " +
			"popscope view RECORDING shows the message here, headers parsed with net/mail and mime.[-]\n")
		return b.String()
	}
	m, ok := ms.Get(s.ID, e.ID)
	if !ok {
		b.WriteString("\n[yellow]The recording holds no bytes for this reply (lost in a gap, or the reply did not decode as a message).[-]\n")
		return b.String()
	}
	b.WriteString("\n")
	per, _ := ms.Caps()
	if reply.Ev.Verb == "TOP" {
		b.WriteString("[gray]TOP delivers the headers and the first lines of the body only.[-]\n\n")
	}
	b.WriteString(messageContent(m, per, reply.Ev.Verb == "TOP"))
	return b.String()
}
