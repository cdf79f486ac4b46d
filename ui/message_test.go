package ui

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gdamore/tcell/v2"

	"github.com/popscope/popscope/decode"
	"github.com/popscope/popscope/event"
	"github.com/popscope/popscope/exporters/record"
)

// multipartMsg is a MIME message whose wire form needs dot-stuffing.
const multipartMsg = "From: =?UTF-8?Q?Al=C3=AFce?= <alice@example.org>\r\n" +
	"To: bob@example.org, Carol <carol@example.org>\r\n" +
	"Subject: =?UTF-8?B?UmVwb3J0IMOp?=\r\n" +
	"Date: Mon, 2 Mar 2026 10:04:05 +0100\r\n" +
	"Message-ID: <m1@example.org>\r\n" +
	"Received: from x by y\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=\"b1\"\r\n" +
	"\r\n" +
	"preamble\r\n" +
	"--b1\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"Content-Transfer-Encoding: quoted-printable\r\n" +
	"\r\n" +
	"Caf=C3=A9 at noon.\r\n" +
	".a line that starts with a dot\r\n" +
	"--b1\r\n" +
	"Content-Type: application/pdf; name=\"r.pdf\"\r\n" +
	"Content-Disposition: attachment; filename=\"report.pdf\"\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"\r\n" +
	"JVBERi0xLjQK\r\n" +
	"--b1--\r\n"

// stuff is the wire form of a multi-line body.
func stuff(msg string) string {
	var b strings.Builder
	for _, ln := range strings.SplitAfter(msg, "\r\n") {
		if strings.HasPrefix(ln, ".") {
			b.WriteString(".")
		}
		b.WriteString(ln)
	}
	return b.String() + ".\r\n"
}

func topOf(msg string, n int) string {
	i := strings.Index(msg, "\r\n\r\n") + 4
	lines := strings.SplitAfter(msg[i:], "\r\n")
	return msg[:i] + strings.Join(lines[:min(n, len(lines))], "")
}

func TestExtractorDotUnstuffAndTOP(t *testing.T) {
	ms := NewMessages(0, 0)
	x := ms.Extract("s")
	head := "+OK 2 messages\r\n"
	retr := "+OK 600 octets\r\n" + stuff(multipartMsg)
	top := "+OK top\r\n" + stuff(topOf(multipartMsg, 3))
	bare := "+OK\n..x\n.\n" // bare LF line ends
	x.Want(int64(len(head)), 7)
	x.Want(int64(len(head+retr)), 8)
	x.Want(int64(len(head+retr+top)), 9)
	stream := head + retr + top + bare
	// Fed in awkward pieces: every split point must work.
	for i := 0; i < len(stream); i += 3 {
		x.Server([]byte(stream[i:min(i+3, len(stream))]))
	}
	x.Close()
	for _, c := range []struct {
		id   uint64
		want string
	}{{7, multipartMsg}, {8, topOf(multipartMsg, 3)}, {9, ".x\n"}} {
		m, ok := ms.Get("s", c.id)
		if !ok {
			t.Fatalf("message %d missing", c.id)
		}
		if string(m.Data) != c.want || !m.Complete || m.Truncated || m.Octets != int64(len(c.want)) {
			t.Errorf("message %d = %q complete=%v truncated=%v octets=%d, want %q", c.id, m.Data, m.Complete, m.Truncated, m.Octets, c.want)
		}
	}
	if _, ok := ms.Get("s", 1); ok {
		t.Error("unwanted message kept")
	}
}

func TestExtractorCaps(t *testing.T) {
	ms := NewMessages(10, 15)
	x := ms.Extract("s")
	x.Want(0, 1)
	x.Want(30, 2)
	x.Want(60, 3)
	body := "0123456789abcdefghij\r\n" // 22 octets
	one := "+OK\r\n" + body + ".\r\n"  // 30 octets
	x.Server([]byte(one + one + "+OK\r\nunterminated"))
	x.Close()
	m1, _ := ms.Get("s", 1)
	m2, _ := ms.Get("s", 2)
	m3, _ := ms.Get("s", 3)
	if string(m1.Data) != body[:10] || !m1.Truncated || m1.Octets != 22 {
		t.Errorf("m1 = %q truncated=%v octets=%d", m1.Data, m1.Truncated, m1.Octets)
	}
	if string(m2.Data) != body[:5] || !m2.Truncated || m2.Dropped {
		t.Errorf("m2 = %q (total cap 15 leaves 5)", m2.Data)
	}
	if !m3.Dropped || m3.Complete || len(m3.Data) != 0 {
		t.Errorf("m3 = %+v, want dropped and incomplete", m3)
	}
	if n, cut, size := ms.Stats(); n != 3 || cut != 3 || size != 15 {
		t.Errorf("stats %d %d %d", n, cut, size)
	}
	out := messageContent(m1, 10, false)
	if !strings.Contains(out, "truncated: the first 10 of 22 octets") {
		t.Errorf("no truncation note:\n%s", out)
	}
}

func TestMessageContentMultipart(t *testing.T) {
	out := messageContent(&Message{Data: []byte(multipartMsg), Octets: int64(len(multipartMsg)), Complete: true}, DefaultMessageCap, false)
	for _, s := range []string{
		"Alïce <alice@example.org>",
		"bob@example.org, Carol <carol@example.org>",
		"Report é",
		"(2026-03-02 09:04:05 UTC)",
		"<m1@example.org>",
		"1 other header field(s): Received",
		"multipart/mixed",
		"part 1: text/plain",
		"quoted-printable  charset=utf-8",
		"part 2: application/pdf  12 octets  base64",
		"filename report.pdf",
		"decoded from quoted-printable",
		"Café at noon.",
		".a line that starts with a dot",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("missing %q in\n%s", s, out)
		}
	}
	// TOP: the multipart is cut short, which is said, not an error.
	top := topOf(multipartMsg, 6)
	out = messageContent(&Message{Data: []byte(top), Octets: int64(len(top)), Complete: true}, DefaultMessageCap, true)
	if !strings.Contains(out, "part 1: text/plain") || !strings.Contains(out, "the message ends inside") || strings.Contains(out, "[red]") {
		t.Errorf("TOP rendering:\n%s", out)
	}
}

// recordSession writes a recording with the record writer: a session
// that retrieves multipartMsg and the top of it.
func recordSession(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	rec, err := record.New(record.Options{Dir: dir, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	s := rec.Open("sess1", start, "127.0.0.1:5000", "127.0.0.1:110")
	at := start
	step := func(side event.Side, data string) {
		at = at.Add(time.Millisecond)
		s.Data(side, at, []byte(data))
	}
	step(event.Server, "+OK POP3 ready\r\n")
	step(event.Client, "USER alice\r\n")
	step(event.Server, "+OK\r\n")
	step(event.Client, "PASS secret\r\n")
	step(event.Server, "+OK 1 message\r\n")
	step(event.Client, "RETR 1\r\n")
	wire := "+OK message follows\r\n" + stuff(multipartMsg)
	step(event.Server, wire[:40])
	step(event.Server, wire[40:])
	step(event.Client, "TOP 1 2\r\n")
	step(event.Server, "+OK\r\n"+stuff(topOf(multipartMsg, 2)))
	step(event.Client, "QUIT\r\n")
	step(event.Server, "+OK bye\r\n")
	s.Close(at.Add(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rec.Close(ctx); err != nil {
		t.Fatal(err)
	}
	return s.Path()
}

// TestMessageViewFromRecording opens the message view over a recording
// made with the record writer, decoded with the decoder and its messages
// cut out with the Extractor (what popscope view does).
func TestMessageViewFromRecording(t *testing.T) {
	path := recordSession(t)
	rec, err := record.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var evs []*event.Event
	d := decode.New(decode.Options{Session: "rec1"}, func(e *event.Event) { evs = append(evs, e) })
	var end time.Time
	for _, r := range rec.Records {
		end = rec.Header.Start.Add(r.T)
		if r.Kind == record.KindData {
			d.Feed(r.Side, end, r.Data)
		}
	}
	d.Close(event.Client, end)
	d.Close(event.Server, end)
	d.Finish(end)
	ms := NewMessages(0, 0)
	x := ms.Extract("rec1")
	x.WantEvents(evs)
	for _, r := range rec.Records {
		if r.Kind == record.KindData && r.Side == event.Server {
			x.Server(r.Data)
		}
	}
	x.Close()
	if n, _, _ := ms.Stats(); n != 2 {
		t.Fatalf("%d messages extracted, want 2 (RETR and TOP)", n)
	}
	h := newHarness(t, 160, 50, Options{Messages: ms}, evs)
	h.press("g")
	h.key(tcell.KeyEnter)
	h.press("/RETR 1 →")
	h.key(tcell.KeyEnter)
	h.key(tcell.KeyEnter) // unfold
	h.want("m opens the message view: headers, MIME parts and body from the recording")
	h.press("m")
	h.want("RETR 1 in session rec1 (user alice)",
		"Alïce <alice@example.org>",
		"Report é",
		"part 2: application/pdf",
		"filename report.pdf",
		"Café at noon.")
	// Scrollable: the end of the body comes into view.
	for range 30 {
		h.key(tcell.KeyDown)
	}
	h.want(".a line that starts with a dot")
	h.key(tcell.KeyEscape)
	h.wantNot("Café at noon.")
	h.press("/TOP 1 2 →")
	h.key(tcell.KeyEnter)
	h.press("m")
	h.want("TOP 1 2 in session rec1", "Report é", "multipart/mixed")
	h.wantNot("Café at noon.")
}
