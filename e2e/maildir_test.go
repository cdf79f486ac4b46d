//go:build e2e

package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
)

// The test mailbox: ordinary messages of several sizes, then the edge
// cases of the peers recipe (make-maildir.sh), then one large message.
// Files use LF line ends; Dovecot serves them with CRLF. The TLS matrix
// uses a smaller mailbox of the same shape (smallSizes, smallLarge) so
// that its many runs stay quick.
var (
	ordinarySizes = []int{512, 4096, 100000, 1500, 30000, 300}
	largeSize     = 8 << 20
	smallSizes    = []int{512, 4096, 30000}
	smallLarge    = 1 << 20
)

type message struct {
	num  int    // POP3 message number
	kind string // ordinary, dot-lines, 8bit, longline, nofinalnl, headeronly, bareCR, large
	disk []byte // the file as stored (LF line ends)
}

// lf is the message as a client that stores LF line ends delivers it: the
// file, with a final newline added if it has none (Dovecot ends every
// message with CRLF).
func (m message) lf() []byte {
	if bytes.HasSuffix(m.disk, []byte("\n")) {
		return m.disk
	}
	return append(append([]byte(nil), m.disk...), '\n')
}

// wire is the message as delivered by RETR after unstuffing: every LF
// becomes CRLF (a bare CR stays as it is).
func (m message) wire() []byte { return crlf(m.lf()) }

// header is the header section and the empty line after it, CRLF (what
// "TOP n 0" delivers).
func (m message) header() []byte {
	i := bytes.Index(m.disk, []byte("\n\n"))
	if i < 0 {
		return m.wire()
	}
	return crlf(m.disk[:i+2])
}

func crlf(b []byte) []byte { return bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n")) }

// buildMessages returns the mailbox content, numbered from 1 in the order
// Dovecot will list it.
func buildMessages(user string) []message {
	return buildMailbox(user, ordinarySizes, largeSize)
}

// buildMailbox returns ordinary messages of the given sizes, the edge
// cases, and a large message of about largeSize octets.
func buildMailbox(user string, ordinarySizes []int, largeSize int) []message {
	var msgs []message
	add := func(kind string, data []byte) {
		msgs = append(msgs, message{num: len(msgs) + 1, kind: kind, disk: data})
	}
	hdr := func(subj string, extra string) []byte {
		return fmt.Appendf(nil, "From: Test Sender <sender@example.test>\nTo: %s@example.test\n"+
			"Subject: %s\nDate: Tue, 14 Nov 2023 22:13:20 +0000\n"+
			"Message-ID: <%d.%s@pop3test>\nMIME-Version: 1.0\n"+
			"Content-Type: text/plain; charset=utf-8\n%s\n", user, subj, len(msgs)+1, user, extra)
	}
	const line = "The quick brown fox jumps over the lazy dog 0123456789 abcdefghijklmnopqrstuv\n" // 79 bytes
	body := func(size int, dots bool) []byte {
		var b bytes.Buffer
		b.Grow(size + 100)
		for i := 1; b.Len() < size; i++ {
			l := line
			if dots && i%50 == 0 {
				l = "." + line[1:]
			}
			if dots && i%997 == 0 {
				l = ".\n"
			}
			b.WriteString(l)
		}
		return b.Bytes()
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

	for k, sz := range ordinarySizes {
		h := hdr(fmt.Sprintf("ordinary %d size %d", k+1, sz), "")
		add("ordinary", cat(h, body(max(sz-len(h), 1), false)))
	}
	add("dot-lines", cat(hdr("dot lines", ""), []byte("first line\n.\n..\n.x leading dot\n...\n .space-dot\nend.\n.\n")))
	raw := make([]byte, 0, 128)
	for c := 0x80; c <= 0xff; c++ {
		raw = append(raw, byte(c))
	}
	add("8bit", cat(hdr("8bit", "Content-Transfer-Encoding: 8bit\n"),
		[]byte("UTF-8: Grüße, 日本語, emoji \U0001F600\n"), []byte("raw: "), raw, []byte("\nend\n")))
	add("longline", cat(hdr("long line", "X-Long: "+string(bytes.Repeat([]byte("h"), 1000))+"\n"),
		bytes.Repeat([]byte("L"), 100000), []byte("\nshort\n")))
	add("nofinalnl", cat(hdr("no final newline", ""), []byte("line one\nno newline at end")))
	add("headeronly", hdr("header only", ""))
	add("bareCR", cat(hdr("bare CR", ""), []byte("before\rafter bare CR\nnext line\n")))
	h := hdr(fmt.Sprintf("large %d", largeSize), "")
	add("large", cat(h, body(largeSize-len(h), true)))
	return msgs
}

// writeMaildir stores msgs in md/new with names whose order is the POP3
// order (increasing maildir timestamps), going through md/tmp as maildir
// delivery does.
func writeMaildir(md string, msgs []message) error {
	const t0 = 1700000000
	for _, m := range msgs {
		name := fmt.Sprintf("%d.M%06dP%dQ%d.pop3test", t0+m.num, m.num, 1, m.num)
		tmp := filepath.Join(md, "tmp", name)
		if err := os.WriteFile(tmp, m.disk, 0o644); err != nil {
			return err
		}
		if err := os.Rename(tmp, filepath.Join(md, "new", name)); err != nil {
			return err
		}
	}
	return nil
}
