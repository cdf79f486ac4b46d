package wire

import (
	"bytes"
	"encoding/binary"

	"github.com/cespare/xxhash/v2"
)

// Body scanning: the dot-unstuffing state machine of RFC 1939 §3 as a
// streaming scanner. It is fed the raw bytes of a multi-line reply body as
// they arrive, never rewrites or retains them (except a bounded copy of
// short lines for structured bodies such as CAPA or LIST), and counts what
// a debugger needs: delivered octets (the CRLF-form size LIST must report),
// wire octets, lines, and anomalies with the line they first occur on.

// LineInfo describes one complete content line of a body.
type LineInfo struct {
	Num     int64 // 1-based line number within the body
	Offset  int64 // offset of the raw line within the body
	Len     int64 // content length without stuffing dot and line end
	EOL     EOL
	Stuffed bool // started with a stuffing dot that was removed
	// Content is the unstuffed line without its terminator, present only
	// when Len <= BodyScanner.CaptureMax. Valid during the callback only.
	Content []byte
}

// Anomaly counts one kind of irregularity in a body and where it first
// appeared.
type Anomaly struct {
	Count     int64
	FirstLine int64 // 1-based line number
	FirstOff  int64 // offset of that line within the body
}

func (a *Anomaly) add(line, off int64) {
	if a.Count == 0 {
		a.FirstLine, a.FirstOff = line, off
	}
	a.Count++
}

// BodyStats are the figures a scanner accumulates.
type BodyStats struct {
	WireOctets int64 // raw octets including stuffing dots and the terminator line
	Octets     int64 // delivered size: sum of (content length + 2) per line
	Lines      int64 // content lines (the terminator is not counted)
	LongestLen int64 // longest content line, without terminator

	BareLF   Anomaly // line ended in LF without CR (POP3-LINE-001)
	BareCR   Anomaly // CR inside a line (POP3-LINE-003)
	NUL      Anomaly // NUL octet (POP3-LINE-009)
	Long     Anomaly // line longer than 1000 octets incl. CRLF (POP3-LINE-006)
	BadStuff Anomaly // '.' followed by neither '.' nor line end (POP3-MULTI-002)
	High     Anomaly // octets >= 0x80 in any line
	// HighHeader and HighBody split High at the first empty line, for
	// message bodies (RETR, TOP).
	HighHeader, HighBody Anomaly
	// HeaderLines counts lines up to and including the first empty line;
	// Separator reports whether an empty line was seen at all.
	HeaderLines int64
	Separator   bool
	// TermBareLF: the terminator itself was ".\n".
	TermBareLF bool
	// LastLineDot: the last complete line ends with "." right after other
	// text ("blah.\r\n"): a hint that a server appended the terminator to
	// a message without a final line break.
	LastLineDot bool

	// With BodyScanner.Hash set: xxhash64 of the raw body bytes (before
	// the terminator line) and of the raw header lines (up to and
	// including the first empty line). Equal messages served the same way
	// hash equal; TOP output can be compared with RETR output.
	BodyHash, HeaderHash uint64
}

// MaxMessageLine is the RFC 5322 §2.1.1 line limit incl. CRLF used for
// POP3-LINE-006.
const MaxMessageLine = 1000

// BodyScanner frames one multi-line body. Create one per body; the zero
// value with CaptureMax 0 is ready to use.
type BodyScanner struct {
	// CaptureMax is the longest line whose content is copied into
	// LineInfo.Content for OnLine (0: never).
	CaptureMax int
	// OnLine, if set, is called for every complete content line. If it
	// returns true the scan stops before that line's end is accounted as
	// body: Scan returns with Stopped set (used to abandon a structured
	// body that lost its terminator, POP3-MULTI-004).
	OnLine func(*LineInfo) (stop bool)

	// Hash turns on BodyHash and HeaderHash (about 0.1 ns per octet).
	Hash bool

	Stats BodyStats
	Done  bool // the terminator was seen

	body, hdr *xxhash.Digest
	held      []byte // up to 2 bytes that may start the terminator
	termLen   int64
	// Stopped is set when OnLine asked to stop; StopLine then holds the
	// raw line (with terminator) that caused it.
	Stopped  bool
	StopLine []byte

	// per-line state
	inLine  bool
	lineOff int64
	lineLen int64 // raw bytes of the current line so far
	prefix  [3]byte
	prefixN int
	// lastBareCRLine is the last line counted in Stats.BareCR, so that a
	// line is counted once however its bytes were chunked.
	lastBareCRLine int64
	tail           [3]byte // last three raw bytes of the line so far
	pendingCR      bool    // the consumed input ends in CR inside a line
	// where the current chunk began: line number, offset, and the offset
	// of the line in progress at that point
	chunkLine, chunkOff, chunkLineOff int64
	nul                               bool
	high                              bool
	capture                           []byte
	captured                          bool
}

// Scan consumes bytes of the body from p and returns how many it used. It
// stops right after the terminator line (Done) or when OnLine asks
// (Stopped); otherwise it uses all of p.
//
// Cost: clean data (CRLF lines, no NUL, no 8-bit, no callback) takes a
// fast path of one IndexByte and a few compares per line; chunks with
// anomalies take the general path. Bare CRs are found per chunk by
// counting: a chunk whose CRs all belong to CRLF line ends needs no
// per-line CR search.
func (b *BodyScanner) Scan(p []byte) int {
	if !b.Hash {
		return b.scan(p)
	}
	if b.body == nil {
		b.body, b.hdr = xxhash.New(), xxhash.New()
	}
	n := b.scan(p)
	// The terminator line is not content, and it may be split across
	// chunks: hold back a partial line that could still become ".\r\n"
	// so that the hashes do not depend on how the body was chunked.
	cur := p[:n]
	total := int64(len(b.held)) + int64(n)
	var keep int64 // bytes at the end of held+cur not to hash now
	var hold bool
	switch {
	case b.Done:
		keep = b.termLen
	case b.inLine && b.lineLen <= 2 && b.prefix[0] == '.' && (b.lineLen == 1 || b.prefix[1] == '\r'):
		keep, hold = b.lineLen, true
	}
	hashLen := total - keep
	if hl := int64(len(b.held)); hashLen >= hl {
		b.body.Write(b.held)
		b.body.Write(cur[:hashLen-hl])
	} else {
		b.body.Write(b.held[:hashLen])
	}
	if hold {
		tail := append(append([]byte(nil), b.held...), cur...)
		b.held = append(b.held[:0], tail[len(tail)-int(keep):]...)
	} else {
		b.held = b.held[:0]
	}
	b.Stats.BodyHash = b.body.Sum64()
	b.Stats.HeaderHash = b.hdr.Sum64()
	return n
}

func (b *BodyScanner) scan(p []byte) int {
	chkNUL := bytes.IndexByte(p, 0) >= 0
	chkHigh := hasHigh(p)
	nCR := bytes.Count(p, crByte)
	b.chunkLine, b.chunkOff, b.chunkLineOff = b.Stats.Lines+1, b.Stats.WireOctets, b.Stats.WireOctets
	if b.inLine {
		b.chunkLineOff = b.lineOff
	}
	crEnds := 0 // CRs of this chunk that end up in CRLF line ends
	// A CR that ended the previous chunk is half of a CRLF only if this
	// chunk starts with LF.
	if b.pendingCR && p[0] != '\n' {
		b.addBareCR(b.Stats.Lines+1, b.lineOff)
	}
	b.pendingCR = false
	i := 0
	fast := !chkNUL && !chkHigh && b.OnLine == nil
	for i < len(p) {
		if fast && !b.inLine {
			// Fast path: whole lines inside p.
			j := bytes.IndexByte(p[i:], '\n')
			if j < 0 {
				b.startLine()
			} else {
				line := p[i : i+j+1]
				n := int64(len(line))
				crlf := n >= 2 && line[n-2] == '\r'
				if crlf {
					crEnds++
				}
				if line[0] == '.' || !crlf || n > MaxMessageLine || !b.Stats.Separator {
					// Unusual lines go through the general path.
					b.startLine()
					b.addSegment(line, false, false)
					i += len(line)
					if b.endLine() {
						return b.finishChunk(p, nCR, crEnds, i)
					}
					continue
				}
				content := n - 2
				b.Stats.LastLineDot = content > 1 && line[n-3] == '.'
				b.Stats.WireOctets += n
				b.Stats.Octets += content + 2
				b.Stats.Lines++
				if content > b.Stats.LongestLen {
					b.Stats.LongestLen = content
				}
				i += len(line)
				continue
			}
		}
		if !b.inLine {
			b.startLine()
		}
		rest := p[i:]
		j := bytes.IndexByte(rest, '\n')
		seg := rest
		complete := false
		if j >= 0 {
			seg = rest[:j+1]
			complete = true
		}
		b.addSegment(seg, chkNUL, chkHigh)
		i += len(seg)
		if complete {
			if len(seg) >= 2 && seg[len(seg)-2] == '\r' {
				crEnds++
			}
			if b.endLine() {
				return b.finishChunk(p, nCR, crEnds, i)
			}
		}
	}
	if len(p) > 0 && p[len(p)-1] == '\r' && b.inLine {
		b.pendingCR = true
	}
	return b.finishChunk(p, nCR, crEnds, len(p))
}

var crByte = []byte{'\r'}

// finishChunk finds bare CRs in the consumed part of a chunk: every CR that
// is neither part of a CRLF line end nor pending at the end of the chunk.
func (b *BodyScanner) finishChunk(p []byte, nCR, crEnds int, ret int) int {
	if nCR == 0 {
		return ret
	}
	used := nCR
	if ret < len(p) {
		p = p[:ret]
		used = bytes.Count(p, crByte)
	}
	pending := 0
	if b.pendingCR {
		pending = 1
	}
	if used-crEnds-pending <= 0 {
		return ret
	}
	// Rare: locate the bare CRs to name their lines.
	line, off := b.chunkLine, b.chunkLineOff
	lineStart := 0
	for k := 0; k < len(p); k++ {
		switch p[k] {
		case '\n':
			line++
			lineStart = k + 1
			off = b.chunkOff + int64(lineStart)
		case '\r':
			if k+1 < len(p) && p[k+1] != '\n' {
				b.addBareCR(line, off)
			}
		}
	}
	return ret
}

// addBareCR counts line in Stats.BareCR once.
func (b *BodyScanner) addBareCR(line, off int64) {
	if line != b.lastBareCRLine {
		b.lastBareCRLine = line
		b.Stats.BareCR.add(line, off)
	}
}

func (b *BodyScanner) startLine() {
	b.inLine = true
	b.lineOff = b.Stats.WireOctets
	b.lineLen = 0
	b.prefixN = 0
	b.tail = [3]byte{}
	b.nul, b.high = false, false
	b.capture = b.capture[:0]
	b.captured = b.CaptureMax > 0
}

func (b *BodyScanner) addSegment(seg []byte, chkNUL, chkHigh bool) {
	if b.hdr != nil && !b.Stats.Separator {
		b.hdr.Write(seg)
	}
	for k := 0; b.prefixN < 3 && k < len(seg); k++ {
		b.prefix[b.prefixN] = seg[k]
		b.prefixN++
	}
	b.lineLen += int64(len(seg))
	b.Stats.WireOctets += int64(len(seg))
	if chkNUL && !b.nul && bytes.IndexByte(seg, 0) >= 0 {
		b.nul = true
	}
	if chkHigh && !b.high && hasHigh(seg) {
		b.high = true
	}
	if n := len(seg); n >= 3 {
		b.tail = [3]byte{seg[n-3], seg[n-2], seg[n-1]}
	} else {
		for _, c := range seg {
			b.tail = [3]byte{b.tail[1], b.tail[2], c}
		}
	}
	if b.captured {
		if len(b.capture)+len(seg) <= b.CaptureMax+3 {
			b.capture = append(b.capture, seg...)
		} else {
			b.captured = false
		}
	}
}

// endLine finishes the current raw line; it returns true at the terminator
// or when OnLine stops the scan.
func (b *BodyScanner) endLine() bool {
	b.inLine = false
	crlf := b.lineLen >= 2 && b.tail[1] == '\r' // the byte before LF was CR
	eolLen := int64(1)
	eol := EOLLF
	if crlf {
		eolLen, eol = 2, EOLCRLF
	}
	content := b.lineLen - eolLen
	// Terminator: exactly "." CRLF (or "." LF, reported as bare LF).
	if content == 1 && b.prefix[0] == '.' {
		b.Done = true
		b.termLen = b.lineLen
		if !crlf {
			b.Stats.TermBareLF = true
			b.Stats.BareLF.add(b.Stats.Lines+1, b.lineOff)
		}
		return true
	}
	before := b.tail[1]
	if crlf {
		before = b.tail[0]
	}
	b.Stats.LastLineDot = content > 1 && before == '.'
	stuffed := false
	if content >= 1 && b.prefix[0] == '.' {
		stuffed = true
		content--
		if b.prefixN > 1 && b.prefix[1] != '.' {
			b.Stats.BadStuff.add(b.Stats.Lines+1, b.lineOff)
		}
	}
	num := b.Stats.Lines + 1
	if !crlf {
		b.Stats.BareLF.add(num, b.lineOff)
	}

	if b.nul {
		b.Stats.NUL.add(num, b.lineOff)
	}
	if content+2 > MaxMessageLine {
		b.Stats.Long.add(num, b.lineOff)
	}
	if b.high {
		b.Stats.High.add(num, b.lineOff)
		if b.Stats.Separator {
			b.Stats.HighBody.add(num, b.lineOff)
		} else {
			b.Stats.HighHeader.add(num, b.lineOff)
		}
	}
	if !b.Stats.Separator {
		b.Stats.HeaderLines++
		if content == 0 {
			b.Stats.Separator = true
		}
	}
	if content > b.Stats.LongestLen {
		b.Stats.LongestLen = content
	}
	if b.OnLine != nil {
		li := LineInfo{Num: num, Offset: b.lineOff, Len: content, EOL: eol, Stuffed: stuffed}
		if b.captured {
			c := b.capture
			if stuffed {
				c = c[1:]
			}
			li.Content = c[:content]
		}
		if b.OnLine(&li) {
			b.Stopped = true
			b.StopLine = append([]byte(nil), b.capture...)
			// The line is not part of the body: undo its accounting.
			b.Stats.WireOctets -= b.lineLen
			return true
		}
	}
	b.Stats.Lines = num
	b.Stats.Octets += content + 2
	return false
}

// Partial reports whether a line has been started but not finished.
func (b *BodyScanner) Partial() bool { return b.inLine && b.lineLen > 0 }

// LastLinePrefix returns up to the first three octets of the line in
// progress (or the last line), for close-time hints.
func (b *BodyScanner) LastLinePrefix() []byte { return b.prefix[:b.prefixN] }

// hasHigh reports whether any octet of p is >= 0x80, eight bytes at a time.
func hasHigh(p []byte) bool {
	const mask = 0x8080808080808080
	for len(p) >= 32 {
		if (binary.LittleEndian.Uint64(p)|binary.LittleEndian.Uint64(p[8:])|
			binary.LittleEndian.Uint64(p[16:])|binary.LittleEndian.Uint64(p[24:]))&mask != 0 {
			return true
		}
		p = p[32:]
	}
	for len(p) >= 8 {
		if binary.LittleEndian.Uint64(p)&mask != 0 {
			return true
		}
		p = p[8:]
	}
	for _, c := range p {
		if c >= 0x80 {
			return true
		}
	}
	return false
}

// HasHigh reports whether any octet of p is >= 0x80.
func HasHigh(p []byte) bool { return hasHigh(p) }
