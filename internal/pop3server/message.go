package pop3server

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"sync"
)

// Message is one message of a maildrop: an RFC 5322 message as stored.
//
// Data may use CRLF or bare LF line ends, or a mix; the server delivers
// the CRLF form. A lone CR (not followed by LF) is content and is sent
// unchanged, except at the very end of Data, where it is completed to
// CRLF. If Data does not end with a line break the server adds CRLF, and
// counts it in the listed size, so that LIST and RETR agree.
type Message struct {
	// Data is the message text. The server keeps it, or a converted copy
	// if it is not already in CRLF form or has lines to dot-stuff, for its
	// lifetime: do not modify Data once it is handed to New or returned
	// by Config.Maildrop.
	Data []byte
	// UID is the unique-id UIDL reports (RFC 1939 §7: 1 to 70 octets in
	// 0x21..0x7E; not checked). Empty means a hex digest of Data.
	UID string
}

// Canonical returns what RETR delivers for m after the client has removed
// the dot-stuffing: Data with every line ending in CRLF and a final CRLF
// added if Data lacked one. Its length is the size LIST and STAT report.
func (m Message) Canonical() []byte {
	out, _, _ := convert(m.Data, false)
	return out
}

// Size returns the exact size RFC 1939 §11 asks LIST and STAT to report,
// len(m.Canonical()), without building it.
func (m Message) Size() int64 {
	data := m.Data
	n := int64(len(data))
	for i := 0; i < len(data); {
		j := bytes.IndexByte(data[i:], '\n')
		if j < 0 {
			break
		}
		j += i
		if j == 0 || data[j-1] != '\r' {
			n++ // a bare LF becomes CRLF
		}
		i = j + 1
	}
	if k := len(data); k > 0 && data[k-1] != '\n' {
		if data[k-1] == '\r' {
			n++ // a final lone CR is completed to CRLF
		} else {
			n += 2
		}
	}
	return n
}

// convert returns data in CRLF form, with a final CRLF added if missing,
// and dot-stuffed if stuff is set. A line ends at LF; a CR right before
// it belongs to the line end. hdrEnd is the offset in out just after the
// first empty line (-1 if there is none); stuffed counts the dots added.
// Unchanged runs are copied in bulk, so converting a large message that
// is already in CRLF form costs little more than one copy.
func convert(data []byte, stuff bool) (out []byte, hdrEnd int, stuffed int) {
	out = make([]byte, 0, len(data)+len(data)/64+8)
	hdrEnd = -1
	run := 0 // start of the bytes of data not copied yet
	if stuff && len(data) > 0 && data[0] == '.' {
		out = append(out, '.')
		stuffed++
	}
	ls := 0 // start of the current line
	for ls < len(data) {
		j := bytes.IndexByte(data[ls:], '\n')
		if j < 0 {
			break
		}
		j += ls
		cr := j > ls && data[j-1] == '\r'
		if !cr {
			out = append(out, data[run:j]...)
			out = append(out, '\r')
			run = j
		}
		if hdrEnd < 0 && (j == ls || cr && j == ls+1) {
			hdrEnd = len(out) + (j + 1 - run)
		}
		ls = j + 1
		if stuff && ls < len(data) && data[ls] == '.' {
			out = append(out, data[run:ls]...)
			out = append(out, '.')
			stuffed++
			run = ls
		}
	}
	out = append(out, data[run:]...)
	if ls < len(data) { // a last line without LF
		last := data[ls:]
		if last[len(last)-1] == '\r' {
			out = append(out, '\n')
			last = last[:len(last)-1]
		} else {
			out = append(out, '\r', '\n')
		}
		if hdrEnd < 0 && len(last) == 0 {
			hdrEnd = len(out)
		}
	}
	return out, hdrEnd, stuffed
}

// message is a Message prepared for serving: the dot-stuffed CRLF wire
// form is computed once so that RETR is a single large write.
type message struct {
	// wire is the stuffed CRLF message, without the terminator ".\r\n".
	// It aliases Message.Data when that needed no conversion.
	wire []byte
	// size is the delivered (unstuffed CRLF) size.
	size int64
	// hdrEnd is the offset in wire just after the empty line that ends
	// the header section; if the message has none, noSep is set and
	// hdrEnd is len(wire).
	hdrEnd int
	noSep  bool

	// The unique-id is Message.UID, or else a digest of the wire form
	// computed at the first UIDL (hashing a large message is slow).
	uidOnce sync.Once
	uidVal  string
	suffix  string // "-2", "-3" for identical copies
}

var terminator = []byte(".\r\n")

// prepare converts m once into its wire form. A message that is already
// CRLF with a final CRLF and no line starting with a dot is used as is,
// without a copy (copying hundreds of MiB is slow where page faults are).
func prepare(m Message) *message {
	w, hdrEnd, ok := scanClean(m.Data)
	stuffed := 0
	if !ok {
		w, hdrEnd, stuffed = convert(m.Data, true)
	}
	p := &message{wire: w, size: int64(len(w) - stuffed), hdrEnd: hdrEnd, uidVal: m.UID}
	if p.hdrEnd < 0 {
		p.hdrEnd, p.noSep = len(w), true
	}
	return p
}

// scanClean reports whether data is already its own wire form (every line
// ends in CRLF, the last included, and no line starts with a dot), and
// where the header section ends (-1: no empty line).
func scanClean(data []byte) (w []byte, hdrEnd int, ok bool) {
	n := len(data)
	if n == 0 {
		return nil, -1, true
	}
	if n < 2 || data[n-2] != '\r' || data[n-1] != '\n' || data[0] == '.' {
		return nil, -1, false
	}
	hdrEnd = -1
	for ls := 0; ls < n; {
		j := ls + bytes.IndexByte(data[ls:], '\n') // found: data ends in LF
		if j == ls || data[j-1] != '\r' {
			return nil, -1, false
		}
		if hdrEnd < 0 && j == ls+1 {
			hdrEnd = j + 1
		}
		ls = j + 1
		if ls < n && data[ls] == '.' {
			return nil, -1, false
		}
	}
	return data, hdrEnd, true
}

// uid returns the unique-id.
func (p *message) uid() string {
	p.uidOnce.Do(func() {
		if p.uidVal == "" {
			h := sha256.New()
			h.Write(p.wire)
			h.Write(terminator) // the digest of the whole wire form
			p.uidVal = hex.EncodeToString(h.Sum(nil)[:12])
		}
		p.uidVal += p.suffix
	})
	return p.uidVal
}

// prepareAll prepares msgs. Identical copies (same wire form and UID) get
// distinct unique-ids with a "-2", "-3" suffix: RFC 1939 allows shared ids
// for identical messages, but clients that key on ids get confused.
// Copies are found by comparing bytes, so no digest is needed up front.
func prepareAll(msgs []Message) []*message {
	out := make([]*message, len(msgs))
	type key struct {
		size int
		uid  string
	}
	groups := map[key][]int{} // candidates for identical content
	for i, m := range msgs {
		p := prepare(m)
		out[i] = p
		k := key{len(p.wire), m.UID}
		n := 1
		for _, j := range groups[k] {
			if bytes.Equal(out[j].wire, p.wire) {
				n++
			}
		}
		if n > 1 {
			p.suffix = "-" + strconv.Itoa(n)
		}
		groups[k] = append(groups[k], i)
	}
	return out
}

// top returns the wire form of the first k body lines of p: the header
// section, the empty separator line and k lines, stuffed, without the
// terminator. A message without separator gets one (RFC 1939 §7 TOP).
func (p *message) top(k int) []byte {
	body := p.wire
	if p.noSep {
		out := make([]byte, 0, len(body)+2)
		out = append(out, body...)
		return append(out, '\r', '\n')
	}
	end := p.hdrEnd
	for i := 0; i < k && end < len(body); i++ {
		j := bytes.IndexByte(body[end:], '\n')
		if j < 0 { // cannot happen: every line ends in CRLF
			end = len(body)
			break
		}
		end += j + 1
	}
	return body[:end]
}
