package transcript

import (
	"bytes"
	"time"

	"github.com/popscope/popscope/event"
)

// Sink receives replayed steps. *decode.Session implements it.
type Sink interface {
	Feed(side event.Side, at time.Time, p []byte)
	Close(side event.Side, at time.Time)
}

// Replay hands every step to s in order, at start plus the step's At, and
// returns the time of the last step (start if there is none). It does not
// finish the session: call Finish on the decoder with the returned time
// (or later).
func Replay(steps []Step, s Sink, start time.Time) time.Time {
	end := start
	for _, st := range steps {
		at := start.Add(st.At)
		if st.Close {
			s.Close(st.Side, at)
		} else {
			s.Feed(st.Side, at, st.Data)
		}
		end = at
	}
	return end
}

// Spread returns a copy of steps in which step i happens i*tick later
// than its At says: a transcript without "# at:" directives then plays
// one step per tick, which gives every event a distinct, reproducible
// time.
func Spread(steps []Step, tick time.Duration) []Step {
	out := make([]Step, len(steps))
	for i, st := range steps {
		st.At += time.Duration(i) * tick
		out[i] = st
	}
	return out
}

// Lines returns a copy of steps in which every data step is cut after
// each LF, so that each step holds at most one line. The bytes, their
// order and the times are unchanged; only the chunking differs. It makes
// a recording with large reads readable when formatted.
func Lines(steps []Step) []Step {
	var out []Step
	for _, st := range steps {
		if st.Close || len(st.Data) == 0 {
			out = append(out, st)
			continue
		}
		d := st.Data
		for len(d) > 0 {
			n := len(d)
			if i := bytes.IndexByte(d, '\n'); i >= 0 {
				n = i + 1
			}
			part := st
			part.Data = d[:n:n]
			out = append(out, part)
			d = d[n:]
		}
	}
	return out
}

// Format writes steps as a transcript that Parse reads back into the same
// sides, bytes, times and closes. Times are written as "# at: +D"
// directives whenever the clock advances; a step whose At is earlier than
// the previous one's is written at the previous time.
func Format(steps []Step) []byte {
	var b []byte
	var clock time.Duration
	for _, st := range steps {
		if st.At > clock {
			b = append(b, "# at: +"...)
			b = append(b, (st.At - clock).String()...)
			b = append(b, '\n')
			clock = st.At
		}
		if st.Close {
			b = append(b, "# close: "...)
			b = append(b, st.Side.String()...)
			b = append(b, '\n')
			continue
		}
		b = appendData(b, st.Side, st.Data)
		b = append(b, '\n')
	}
	return b
}

// appendData renders one C:/S: line for a chunk.
func appendData(b []byte, side event.Side, d []byte) []byte {
	if side == event.Server {
		b = append(b, "S:"...)
	} else {
		b = append(b, "C:"...)
	}
	n := len(d)
	switch {
	case n >= 2 && d[n-2] == '\r' && d[n-1] == '\n' && bytes.IndexByte(d[:n-2], '\n') < 0:
		// The common case: one line with its CRLF, appended by Parse.
		if n == 2 {
			return b
		}
		b = append(b, ' ')
		return appendEscaped(b, d[:n-2])
	case bytes.IndexByte(d, '\n') >= 0:
		// Explicit mode: the escaped \n makes Parse take it verbatim.
		b = append(b, ' ')
		return appendEscaped(b, d)
	default:
		// No line end at all: the trailing marker.
		b = append(b, ' ')
		b = appendEscaped(b, d)
		return append(b, '\\')
	}
}

const hexDigits = "0123456789abcdef"

func appendEscaped(b, d []byte) []byte {
	for i, c := range d {
		switch {
		case c == '\\':
			b = append(b, '\\', '\\')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\t':
			b = append(b, '\\', 't')
		case c == ' ' && i == len(d)-1:
			b = append(b, `\x20`...) // survives editors that strip trailing blanks
		case c >= 0x20 && c <= 0x7e:
			b = append(b, c)
		default:
			b = append(b, '\\', 'x', hexDigits[c>>4], hexDigits[c&15])
		}
	}
	return b
}

// Recorder is a Sink that records what it is given as steps, and passes
// every call on to Next if set. Wrap a decoder session with it to turn a
// live or replayed session into a transcript (Format(Lines(r.Steps))).
type Recorder struct {
	// Start is the time step offsets count from; the zero value means
	// the time of the first call.
	Start time.Time
	// Next, if set, receives every call after it is recorded.
	Next Sink
	// Steps are the recorded steps, in call order.
	Steps []Step
}

var _ Sink = (*Recorder)(nil)

func (r *Recorder) offset(at time.Time) time.Duration {
	if r.Start.IsZero() {
		r.Start = at
	}
	return at.Sub(r.Start)
}

// Feed records a copy of p.
func (r *Recorder) Feed(side event.Side, at time.Time, p []byte) {
	r.Steps = append(r.Steps, Step{Side: side, Data: append([]byte{}, p...), At: r.offset(at)})
	if r.Next != nil {
		r.Next.Feed(side, at, p)
	}
}

// Close records a close step.
func (r *Recorder) Close(side event.Side, at time.Time) {
	r.Steps = append(r.Steps, Step{Side: side, Close: true, At: r.offset(at)})
	if r.Next != nil {
		r.Next.Close(side, at)
	}
}
