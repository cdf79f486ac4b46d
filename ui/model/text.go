package model

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/popscope/popscope/event"
)

// Escape makes peer-supplied text safe to show on one terminal line, in
// the escape syntax of popscope's transcript files: CR, LF and TAB as \r,
// \n, \t, other control octets, DEL and invalid UTF-8 as \xHH, and the
// backslash as \\.
func Escape(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || c == '\\' || c >= 0x80 {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\':
			b.WriteString(`\\`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\t':
			b.WriteString(`\t`)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, c)
		case c >= 0x80:
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n <= 1 {
				fmt.Fprintf(&b, `\x%02x`, c)
				i++
				continue
			}
			b.WriteString(s[i : i+n])
			i += n
			continue
		default:
			b.WriteByte(c)
		}
		i++
	}
	return b.String()
}

// FoldSummary is the one-line summary of a multi-line reply:
// "RETR 3 → 4,218 octets, 87 lines".
func FoldSummary(cmd string, e *event.Event) string {
	if cmd == "" {
		cmd = e.Verb
	}
	s := cmd + " → " + Thousands(e.Octets) + " octets, " + Thousands(e.Lines) + " line"
	if e.Lines != 1 {
		s += "s"
	}
	return s
}

// Thousands formats n with comma separators: 4218 → "4,218".
func Thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	sign := ""
	if s[0] == '-' {
		sign, s = "-", s[1:]
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return sign + s
}

// Millis formats a *_ms field: "0.1 ms", "18.9 ms", "1,203 ms".
func Millis(ms float64) string {
	switch {
	case ms < 10:
		return strconv.FormatFloat(ms, 'f', 1, 64) + " ms"
	case ms < 1000:
		return strconv.FormatFloat(ms, 'f', 0, 64) + " ms"
	}
	return Thousands(int64(ms+0.5)) + " ms"
}

// Bytes formats a byte count compactly: 565, 4.2K, 12.3M, 1.1G.
func Bytes(n int64) string {
	switch {
	case n < 1000:
		return strconv.FormatInt(n, 10)
	case n < 1000*1000:
		return strconv.FormatFloat(float64(n)/1000, 'f', 1, 64) + "K"
	case n < 1000*1000*1000:
		return strconv.FormatFloat(float64(n)/1e6, 'f', 1, 64) + "M"
	}
	return strconv.FormatFloat(float64(n)/1e9, 'f', 1, 64) + "G"
}

// Duration formats a session length: 35ms, 1.2s, 2m03s, 1h02m.
func Duration(d time.Duration) string {
	switch {
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

func join(a, b string) string {
	if b == "" {
		return a
	}
	if a == "" {
		return b
	}
	return a + " " + b
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
