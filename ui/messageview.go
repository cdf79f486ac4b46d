package ui

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/popscope/popscope/ui/model"
)

// Limits of the message view's rendering.
const (
	maxShownBody  = 256 << 10 // body text shown
	maxDecodePart = 256 << 10 // a part larger than this is not decoded for display
	maxMIMEDepth  = 8
	maxMIMEParts  = 200
)

// mainHeaders are shown first, decoded, in this order.
var mainHeaders = []string{"From", "Sender", "Reply-To", "To", "Cc", "Subject", "Date", "Message-ID",
	"MIME-Version", "Content-Type", "Content-Transfer-Encoding"}

var wordDecoder = &mime.WordDecoder{CharsetReader: charsetReader}

// charsetReader handles the charsets the standard library does not:
// Latin-1 and Windows-1252 (close enough for display); others are shown
// as sent.
func charsetReader(charset string, in io.Reader) (io.Reader, error) {
	switch strings.ToLower(charset) {
	case "iso-8859-1", "latin1", "latin-1", "windows-1252", "cp1252", "us-ascii", "ascii":
		b, err := io.ReadAll(in)
		if err != nil {
			return nil, err
		}
		return strings.NewReader(latin1(b)), nil
	}
	return in, nil
}

func latin1(b []byte) string {
	r := make([]rune, len(b))
	for i, c := range b {
		r[i] = rune(c)
	}
	return string(r)
}

// messageContent renders a delivered message for the message view
// (tview markup): the headers parsed with net/mail, the MIME structure,
// the body text.
func messageContent(m *Message, perMsg int, top bool) string {
	var b strings.Builder
	switch {
	case m.Dropped:
		fmt.Fprintf(&b, "[yellow]truncated: not kept — the view's total for message bytes is used up (%s octets delivered)[-]\n\n", model.Thousands(m.Octets))
		return b.String()
	case m.Truncated:
		fmt.Fprintf(&b, "[yellow]truncated: the first %s of %s octets are kept (cap %s per message); the end of the message is not shown[-]\n\n",
			model.Thousands(int64(len(m.Data))), model.Thousands(m.Octets), model.Thousands(int64(perMsg)))
	}
	if !m.Complete {
		b.WriteString("[yellow]incomplete: the recording ends (or lost bytes) before the terminator line[-]\n\n")
	}
	msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
	if err != nil {
		fmt.Fprintf(&b, "[red]net/mail: %s[-] — shown as sent:\n\n", esc(err.Error()))
		b.WriteString(bodyText(m.Data, "", ""))
		return b.String()
	}
	b.WriteString("[::b]Headers[::-]\n")
	for _, k := range mainHeaders {
		v, ok := msg.Header[textproto.CanonicalMIMEHeaderKey(k)]
		if !ok {
			continue
		}
		for _, raw := range v {
			fmt.Fprintf(&b, "  [aqua]%-14s[-] %s\n", k+":", esc(model.Escape(headerValue(k, raw))))
		}
	}
	other := 0
	for k := range msg.Header {
		if !isMainHeader(k) {
			other += len(msg.Header[k])
		}
	}
	if other > 0 {
		fmt.Fprintf(&b, "  [gray]%d other header field(s): %s[-]\n", other, esc(strings.Join(otherHeaderNames(msg.Header), ", ")))
	}
	body, _ := io.ReadAll(msg.Body)
	ct := msg.Header.Get("Content-Type")
	cte := msg.Header.Get("Content-Transfer-Encoding")
	b.WriteString("\n[::b]MIME structure[::-]\n")
	w := &mimeWalk{}
	w.walk(&b, ct, cte, "", body, 0, top || !m.Complete || m.Truncated)
	b.WriteString("\n[::b]Body[::-]")
	if w.text == nil {
		b.WriteString(" [gray](no text part to show)[-]\n")
		return b.String()
	}
	if w.textWhere != "" {
		fmt.Fprintf(&b, " [gray](%s)[-]", esc(w.textWhere))
	}
	b.WriteString("\n")
	b.WriteString(bodyText(w.text, w.textCharset, w.textNote))
	return b.String()
}

func isMainHeader(k string) bool {
	for _, h := range mainHeaders {
		if textproto.CanonicalMIMEHeaderKey(h) == k {
			return true
		}
	}
	return false
}

func otherHeaderNames(h mail.Header) []string {
	var names []string
	for k := range h {
		if !isMainHeader(k) {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	return names
}

// headerValue decodes a header field for display: addresses parsed with
// net/mail, dates with their parsed form, encoded words decoded.
func headerValue(k, raw string) string {
	switch k {
	case "From", "Sender", "Reply-To", "To", "Cc":
		h := mail.Header{k: {raw}}
		list, err := h.AddressList(k)
		if err != nil {
			return decodeWords(raw) + "   (unparsable: " + err.Error() + ")"
		}
		parts := make([]string, len(list))
		for i, a := range list {
			if a.Name != "" {
				parts[i] = a.Name + " <" + a.Address + ">"
			} else {
				parts[i] = a.Address
			}
		}
		return strings.Join(parts, ", ")
	case "Date":
		t, err := mail.ParseDate(raw)
		if err != nil {
			return raw + "   (unparsable: " + err.Error() + ")"
		}
		return raw + "   (" + t.UTC().Format("2006-01-02 15:04:05 UTC") + ")"
	}
	return decodeWords(raw)
}

func decodeWords(s string) string {
	if d, err := wordDecoder.DecodeHeader(s); err == nil {
		return d
	}
	return s
}

// mimeWalk lists the MIME parts and picks the text to show: the first
// text/plain part, else the first text/* part.
type mimeWalk struct {
	parts       int
	text        []byte
	textPlain   bool
	textWhere   string
	textCharset string
	textNote    string
}

func (w *mimeWalk) walk(b *strings.Builder, ct, cte, where string, body []byte, depth int, cut bool) {
	w.parts++
	indent := strings.Repeat("  ", depth+1)
	if ct == "" {
		ct = "text/plain; charset=us-ascii"
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		fmt.Fprintf(b, "%s[red]%s: bad Content-Type %q: %s[-]\n", indent, esc(orPart(where)), esc(model.Escape(ct)), esc(err.Error()))
		mt, params = "text/plain", map[string]string{}
	}
	line := fmt.Sprintf("%s%s  %s octets", orPart(where), mt, model.Thousands(int64(len(body))))
	if cte != "" {
		line += "  " + strings.ToLower(strings.TrimSpace(cte))
	}
	if cs := params["charset"]; cs != "" {
		line += "  charset=" + cs
	}
	fmt.Fprintf(b, "%s%s\n", indent, esc(model.Escape(line)))
	if strings.HasPrefix(mt, "multipart/") {
		if depth >= maxMIMEDepth {
			fmt.Fprintf(b, "%s  [yellow]nested deeper than %d: not listed[-]\n", indent, maxMIMEDepth)
			return
		}
		boundary := params["boundary"]
		if boundary == "" {
			fmt.Fprintf(b, "%s  [red]multipart without a boundary parameter[-]\n", indent)
			return
		}
		mr := multipart.NewReader(bytes.NewReader(body), boundary)
		for i := 1; ; i++ {
			if w.parts >= maxMIMEParts {
				fmt.Fprintf(b, "%s  [yellow]more than %d parts: the rest are not listed[-]\n", indent, maxMIMEParts)
				return
			}
			p, err := mr.NextRawPart()
			if err == io.EOF {
				return
			}
			if err != nil {
				if cut {
					fmt.Fprintf(b, "%s  [yellow]the message ends inside this multipart (TOP, truncated or incomplete)[-]\n", indent)
				} else {
					fmt.Fprintf(b, "%s  [red]multipart: %s[-]\n", indent, esc(err.Error()))
				}
				return
			}
			pb, err := io.ReadAll(p)
			sub := fmt.Sprintf("%d", i)
			if where != "" {
				sub = where + "." + sub
			}
			pct := p.Header.Get("Content-Type")
			if pct == "" && mt == "multipart/digest" {
				pct = "message/rfc822"
			}
			w.walk(b, pct, p.Header.Get("Content-Transfer-Encoding"), sub, pb, depth+1, cut)
			if fn := partFilename(p.Header.Get("Content-Disposition"), pct); fn != "" {
				fmt.Fprintf(b, "%s    [gray]filename %s[-]\n", indent, esc(model.Escape(fn)))
			}
			if err != nil {
				if cut {
					fmt.Fprintf(b, "%s  [yellow]the message ends inside part %s (TOP, truncated or incomplete)[-]\n", indent, sub)
				} else {
					fmt.Fprintf(b, "%s  [red]part %s: %s[-]\n", indent, sub, esc(err.Error()))
				}
				return
			}
		}
	}
	if !strings.HasPrefix(mt, "text/") || (w.text != nil && (w.textPlain || mt != "text/plain")) {
		return
	}
	text, note := decodeTransfer(body, cte)
	w.text, w.textPlain, w.textCharset, w.textNote = text, mt == "text/plain", params["charset"], note
	w.textWhere = mt
	if where != "" {
		w.textWhere = "part " + where + ", " + mt
	}
}

func orPart(where string) string {
	if where == "" {
		return ""
	}
	return "part " + where + ": "
}

// partFilename is the filename of a part: Content-Disposition's
// filename, else Content-Type's name.
func partFilename(disp, ct string) string {
	if disp != "" {
		if _, p, err := mime.ParseMediaType(disp); err == nil && p["filename"] != "" {
			return p["filename"]
		}
	}
	if ct != "" {
		if _, p, err := mime.ParseMediaType(ct); err == nil && p["name"] != "" {
			return decodeWords(p["name"])
		}
	}
	return ""
}

// decodeTransfer undoes quoted-printable and base64 for display, when the
// part is small enough.
func decodeTransfer(body []byte, cte string) ([]byte, string) {
	enc := strings.ToLower(strings.TrimSpace(cte))
	if enc != "quoted-printable" && enc != "base64" {
		return body, ""
	}
	if len(body) > maxDecodePart {
		return body, fmt.Sprintf("%s, not decoded: larger than %s octets", enc, model.Thousands(maxDecodePart))
	}
	var r io.Reader
	if enc == "base64" {
		r = base64.NewDecoder(base64.StdEncoding, &stripSpace{r: bytes.NewReader(body)})
	} else {
		r = quotedprintable.NewReader(bytes.NewReader(body))
	}
	out, err := io.ReadAll(r)
	if err != nil {
		return body, enc + " decoding failed (" + err.Error() + "): shown as sent"
	}
	return out, "decoded from " + enc
}

// stripSpace drops the line breaks and blanks base64 bodies carry.
type stripSpace struct{ r io.Reader }

func (s *stripSpace) Read(p []byte) (int, error) {
	for {
		n, err := s.r.Read(p)
		j := 0
		for _, c := range p[:n] {
			if c != '\r' && c != '\n' && c != ' ' && c != '\t' {
				p[j] = c
				j++
			}
		}
		if j > 0 || err != nil {
			return j, err
		}
	}
}

// bodyText renders body text for the view: CRs dropped, control
// characters made visible, invalid UTF-8 read as Latin-1 for 8-bit
// charsets, capped at maxShownBody.
func bodyText(body []byte, charset, note string) string {
	var b strings.Builder
	if note != "" {
		fmt.Fprintf(&b, "[gray](%s)[-]\n", esc(note))
	}
	cut := false
	if len(body) > maxShownBody {
		body, cut = body[:maxShownBody], true
	}
	var s string
	switch strings.ToLower(charset) {
	case "iso-8859-1", "latin1", "windows-1252":
		s = latin1(body)
	default:
		s = strings.ToValidUTF8(string(body), string(utf8.RuneError))
	}
	s = strings.ReplaceAll(s, "\r\n", "\n")
	for _, ln := range strings.SplitAfter(s, "\n") {
		nl := strings.HasSuffix(ln, "\n")
		ln = strings.TrimSuffix(ln, "\n")
		b.WriteString(esc(visible(ln)))
		if nl {
			b.WriteString("\n")
		}
	}
	if cut {
		fmt.Fprintf(&b, "\n[yellow]truncated: only the first %s octets of the body text are shown[-]\n", model.Thousands(maxShownBody))
	}
	return b.String()
}

// visible keeps text and tabs, and shows other control characters as
// \xNN.
func visible(s string) string {
	clean := true
	for _, r := range s {
		if (r < 0x20 && r != '\t') || r == 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if (r < 0x20 && r != '\t') || r == 0x7f {
			fmt.Fprintf(&b, "\\x%02x", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
