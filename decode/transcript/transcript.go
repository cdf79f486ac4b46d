package transcript

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/popscope/popscope/event"
)

// Step is one thing that happens on the wire: a chunk of bytes sent by
// Side (one Feed call), or Side closing its direction.
type Step struct {
	Side event.Side
	// Data is the chunk, with its line terminator if it has one. It is
	// nil for a Close step and non-nil (possibly empty) otherwise.
	Data []byte
	// At is the time of the step as an offset from the start of the
	// session (set by "# at:" directives; 0 without them).
	At time.Duration
	// Close reports that Side closed its sending direction.
	Close bool
	// Line is the 1-based line of the transcript the step came from (0
	// for steps not made by Parse).
	Line int
}

// String renders the step as its transcript line (without directives).
func (st Step) String() string {
	if st.Close {
		return "# close: " + st.Side.String()
	}
	return string(appendData(nil, st.Side, st.Data))
}

// ParseError reports a malformed transcript line.
type ParseError struct {
	Line int    // 1-based
	Msg  string // what is wrong
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("transcript: line %d: %s", e.Line, e.Msg)
}

// Parse reads a transcript (see the package documentation for the
// format). It returns the steps in order, or a *ParseError for the first
// malformed line.
func Parse(src []byte) ([]Step, error) {
	var steps []Step
	var clock time.Duration
	lineNo := 0
	for len(src) > 0 {
		lineNo++
		var line []byte
		if i := bytes.IndexByte(src, '\n'); i >= 0 {
			line, src = src[:i], src[i+1:]
		} else {
			line, src = src, nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		item := bytes.TrimLeft(line, " \t")
		if len(item) == 0 {
			continue
		}
		if item[0] == '#' {
			st, ok, err := directive(string(item[1:]), &clock)
			if err != nil {
				return nil, &ParseError{Line: lineNo, Msg: err.Error()}
			}
			if ok {
				st.Line = lineNo
				steps = append(steps, st)
			}
			continue
		}
		var side event.Side
		switch {
		case bytes.HasPrefix(item, []byte("C:")):
			side = event.Client
		case bytes.HasPrefix(item, []byte("S:")):
			side = event.Server
		default:
			return nil, &ParseError{Line: lineNo, Msg: fmt.Sprintf("want \"C: \", \"S: \", a comment or a blank line, got %q", cut(item))}
		}
		text := item[2:]
		if len(text) > 0 {
			if text[0] != ' ' {
				return nil, &ParseError{Line: lineNo, Msg: fmt.Sprintf("%q must be followed by a space or the end of the line", item[:2])}
			}
			text = text[1:]
		}
		data, err := unescape(text)
		if err != nil {
			return nil, &ParseError{Line: lineNo, Msg: err.Error()}
		}
		steps = append(steps, Step{Side: side, Data: data, At: clock, Line: lineNo})
	}
	return steps, nil
}

// ParseString is Parse for a string.
func ParseString(s string) ([]Step, error) { return Parse([]byte(s)) }

// MustParse is ParseString that panics on error, for tests and fixed
// tables.
func MustParse(s string) []Step {
	steps, err := ParseString(s)
	if err != nil {
		panic(err)
	}
	return steps
}

// directive interprets the text after '#'. ok is false for a plain
// comment.
func directive(c string, clock *time.Duration) (st Step, ok bool, err error) {
	key, val, found := strings.Cut(c, ":")
	if !found {
		return st, false, nil
	}
	key = strings.ToLower(strings.TrimSpace(key))
	val = strings.TrimSpace(val)
	switch key {
	case "at":
		rel := strings.HasPrefix(val, "+")
		d, perr := time.ParseDuration(strings.TrimPrefix(val, "+"))
		if perr != nil || d < 0 || val == "+" {
			return st, false, fmt.Errorf("at: want a duration such as +1.5s or 2s, got %q", val)
		}
		if rel {
			if *clock+d < *clock {
				return st, false, fmt.Errorf("at: clock overflow at %q", val)
			}
			*clock += d
		} else {
			if d < *clock {
				return st, false, fmt.Errorf("at: %s would move the clock back from %s", d, *clock)
			}
			*clock = d
		}
		return st, false, nil
	case "close":
		var side event.Side
		switch strings.ToLower(val) {
		case "client":
			side = event.Client
		case "server":
			side = event.Server
		default:
			return st, false, fmt.Errorf("close: want client or server, got %q", val)
		}
		return Step{Side: side, Close: true, At: *clock}, true, nil
	}
	return st, false, nil
}

// unescape decodes the text of a C:/S: line and applies the terminator
// rules of the package documentation.
func unescape(text []byte) ([]byte, error) {
	out := make([]byte, 0, len(text)+2)
	explicit := false
	for i := 0; i < len(text); i++ {
		c := text[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		if i == len(text)-1 {
			return out, nil // trailing marker: no terminator
		}
		i++
		switch text[i] {
		case 'r':
			out = append(out, '\r')
		case 'n':
			out = append(out, '\n')
			explicit = true
		case 't':
			out = append(out, '\t')
		case '\\':
			out = append(out, '\\')
		case 'x':
			if i+2 >= len(text) {
				return nil, fmt.Errorf("\\x needs two hex digits")
			}
			hi, ok1 := unhex(text[i+1])
			lo, ok2 := unhex(text[i+2])
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("\\x needs two hex digits, got %q", text[i+1:i+3])
			}
			out = append(out, hi<<4|lo)
			i += 2
		default:
			return nil, fmt.Errorf("unknown escape \\%c (use \\\\ for a backslash)", text[i])
		}
	}
	if !explicit {
		out = append(out, '\r', '\n')
	}
	return out, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func cut(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}
