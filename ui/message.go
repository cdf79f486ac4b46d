package ui

import (
	"bytes"
	"sort"
	"sync"

	"github.com/popscope/popscope/event"
)

// Retention of message bytes (Messages).
const (
	// DefaultMessageCap bounds the bytes kept of one delivered message.
	DefaultMessageCap = 1 << 20
	// DefaultMessagesTotal bounds the bytes kept over all messages.
	DefaultMessagesTotal = 64 << 20
)

// Message is what a RETR or TOP reply delivered: the lines between the
// +OK status line and the terminator, dot-unstuffed, line ends as sent.
type Message struct {
	// Data is the delivered content, at most the per-message cap (a
	// prefix when Truncated).
	Data []byte
	// Octets counts every delivered octet seen, kept or not.
	Octets int64
	// Truncated says Data is a prefix: the per-message or the total cap
	// was reached (Dropped: nothing was kept at all).
	Truncated, Dropped bool
	// Complete says the terminator line was seen (false: the recording
	// ends, or lost bytes, inside the body).
	Complete bool
}

type msgKey struct {
	session string
	id      uint64
}

// Messages holds the delivered content of RETR and TOP replies, keyed by
// session and exchange ID, within a per-message and a total byte cap.
// Fill it with an Extractor; give it to the UI in Options.Messages. Safe
// for concurrent use.
type Messages struct {
	mu          sync.Mutex
	perMsg      int
	total, used int
	m           map[msgKey]*Message
	truncated   int
}

// NewMessages returns an empty store keeping at most perMessage bytes of
// one message and total bytes over all (zero or less: the defaults).
func NewMessages(perMessage, total int) *Messages {
	if perMessage <= 0 {
		perMessage = DefaultMessageCap
	}
	if total <= 0 {
		total = DefaultMessagesTotal
	}
	return &Messages{perMsg: perMessage, total: total, m: map[msgKey]*Message{}}
}

// Get returns the message delivered by exchange id of session.
func (ms *Messages) Get(session string, id uint64) (*Message, bool) {
	if ms == nil {
		return nil, false
	}
	ms.mu.Lock()
	defer ms.mu.Unlock()
	m, ok := ms.m[msgKey{session, id}]
	return m, ok
}

// Stats returns how many messages are held, how many of them were cut by
// a cap, and the bytes kept.
func (ms *Messages) Stats() (messages, truncated, bytes int) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return len(ms.m), ms.truncated, ms.used
}

// Caps returns the per-message and total byte caps.
func (ms *Messages) Caps() (perMessage, total int) { return ms.perMsg, ms.total }

// reserve grants up to want bytes of the total budget.
func (ms *Messages) reserve(want int) int {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	n := min(want, ms.total-ms.used)
	ms.used += max(n, 0)
	return max(n, 0)
}

func (ms *Messages) put(k msgKey, m *Message) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if old, ok := ms.m[k]; ok {
		ms.used -= len(old.Data)
		if old.Truncated {
			ms.truncated--
		}
	}
	ms.m[k] = m
	if m.Truncated {
		ms.truncated++
	}
}

// Extractor cuts the messages of one session out of its server byte
// stream: tell it where the RETR/TOP replies start (Want, WantEvents),
// then feed it the server bytes in order (Server) and Close it. The
// offsets are those of the decoder's events: the decoder and the
// extractor must see the same bytes. Memory: the kept message bytes and
// a few counters; the stream itself is not kept.
type Extractor struct {
	ms      *Messages
	session string
	wants   []want
	sorted  bool
	off     int64 // server stream offset of the next byte fed

	cur   *Message
	curID uint64
	room  int // bytes the current message may still keep
	st    xstate
}

type want struct {
	off int64
	id  uint64
}

type xstate uint8

const (
	xIdle   xstate = iota // before the next wanted status line
	xStatus               // inside the status line
	xBOL                  // at the start of a body line
	xLine                 // inside a body line
	xDot                  // after a leading dot
	xDotCR                // after a leading dot and CR
)

// Extract returns an Extractor filling ms with the messages of session.
func (ms *Messages) Extract(session string) *Extractor {
	return &Extractor{ms: ms, session: session}
}

// Want asks for the message of the reply to exchange id whose status
// line starts at server stream offset off.
func (x *Extractor) Want(off int64, id uint64) {
	x.wants = append(x.wants, want{off, id})
	x.sorted = false
}

// WantEvents calls Want for every successful multi-line RETR or TOP reply
// of the session among evs.
func (x *Extractor) WantEvents(evs []*event.Event) {
	for _, e := range evs {
		if e.Type == event.Response && e.Session == x.session && e.Multiline && e.Status == "+OK" &&
			(e.Verb == "RETR" || e.Verb == "TOP") {
			x.Want(e.Offset, e.ID)
		}
	}
}

// Server feeds the next bytes the server sent.
func (x *Extractor) Server(p []byte) {
	if !x.sorted {
		sort.SliceStable(x.wants, func(i, j int) bool { return x.wants[i].off < x.wants[j].off })
		x.sorted = true
	}
	for len(p) > 0 {
		switch x.st {
		case xIdle:
			for len(x.wants) > 0 && x.wants[0].off < x.off {
				x.wants = x.wants[1:] // behind us: not in this stream
			}
			if len(x.wants) == 0 {
				x.off += int64(len(p))
				return
			}
			skip := x.wants[0].off - x.off
			if skip >= int64(len(p)) {
				x.off += int64(len(p))
				return
			}
			x.advance(&p, int(skip))
			x.start(x.wants[0].id)
			x.wants = x.wants[1:]
			x.st = xStatus
		case xStatus:
			i := bytes.IndexByte(p, '\n')
			if i < 0 {
				x.advance(&p, len(p))
				return
			}
			x.advance(&p, i+1)
			x.st = xBOL
		case xLine:
			i := bytes.IndexByte(p, '\n')
			if i < 0 {
				x.emit(p)
				x.advance(&p, len(p))
				return
			}
			x.emit(p[:i+1])
			x.advance(&p, i+1)
			x.st = xBOL
		case xBOL:
			if p[0] == '.' {
				x.advance(&p, 1)
				x.st = xDot
				continue
			}
			x.st = xLine
		case xDot:
			switch p[0] {
			case '\r':
				x.advance(&p, 1)
				x.st = xDotCR
			case '\n':
				x.advance(&p, 1)
				x.done(true)
			default:
				x.st = xLine // the stuffing dot is gone
			}
		case xDotCR:
			if p[0] == '\n' {
				x.advance(&p, 1)
				x.done(true)
				continue
			}
			x.emit([]byte{'\r'})
			x.st = xLine
		}
	}
}

// Close ends the stream: a message still open is kept as incomplete.
func (x *Extractor) Close() {
	if x.cur != nil {
		x.done(false)
	}
}

func (x *Extractor) advance(p *[]byte, n int) {
	*p = (*p)[n:]
	x.off += int64(n)
}

func (x *Extractor) start(id uint64) {
	x.cur, x.curID = &Message{}, id
	x.room = x.ms.reserve(x.ms.perMsg)
	if x.room == 0 {
		x.cur.Dropped, x.cur.Truncated = true, true
	}
}

func (x *Extractor) emit(b []byte) {
	m := x.cur
	m.Octets += int64(len(b))
	if n := min(len(b), x.room-len(m.Data)); n > 0 {
		if m.Data == nil {
			m.Data = make([]byte, 0, min(x.room, 64<<10))
		}
		m.Data = append(m.Data, b[:n]...)
	}
	if m.Octets > int64(len(m.Data)) {
		m.Truncated = true
	}
}

func (x *Extractor) done(complete bool) {
	m := x.cur
	m.Complete = complete
	// Return the unused part of the reservation to the budget.
	x.ms.mu.Lock()
	x.ms.used -= x.room - len(m.Data)
	x.ms.mu.Unlock()
	if cap(m.Data) > len(m.Data) {
		m.Data = append([]byte(nil), m.Data...)
	}
	x.ms.put(msgKey{x.session, x.curID}, m)
	x.cur, x.room, x.st = nil, 0, xIdle
}
