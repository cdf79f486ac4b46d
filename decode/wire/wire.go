// Package wire is the POP3 wire codec: pure functions that split command
// and status lines into their parts (RFC 1939 §3, RFC 2449 §3). It knows no
// state and does no I/O; the tracker in package decode sits above it.
//
// Functions take a line without its line terminator (see TrimEOL) and never
// retain the slice they are given.
package wire

import (
	"bytes"
	"strings"
)

// Limits from RFC 1939 §3 and RFC 2449 §4, in octets including CRLF.
const (
	MaxCommandLine = 255 // RFC 2449 §4: servers with CAPA accept up to 255
	MaxStatusLine  = 512 // RFC 1939 §3: status line incl. greeting
	MaxCapaLine    = 512 // RFC 2449 §5
	MaxArgLen      = 40  // RFC 1939 §3, for servers without CAPA
	MaxUIDLen      = 70  // RFC 1939 §7 UIDL
)

// EOL describes how a line ended.
type EOL uint8

// Line endings.
const (
	EOLNone EOL = iota // no terminator (end of stream, or truncated)
	EOLCRLF            // CR LF, as required
	EOLLF              // bare LF (POP3-LINE-001)
)

// TrimEOL removes the line terminator from a raw line and reports which
// one it was.
func TrimEOL(line []byte) ([]byte, EOL) {
	n := len(line)
	if n > 0 && line[n-1] == '\n' {
		if n > 1 && line[n-2] == '\r' {
			return line[:n-2], EOLCRLF
		}
		return line[:n-1], EOLLF
	}
	return line, EOLNone
}

// Command is a parsed client command line.
type Command struct {
	Keyword string   // upper-cased first token ("" for an empty line)
	RawKey  string   // first token as sent
	Args    []string // arguments split on SP (PASS: one argument, the rest of the line)
	Rest    string   // everything after the keyword and its separator, as sent
	// Separator anomalies (POP3-SYNTAX-003).
	LeadingSP, TrailingSP, MultiSP, Tab bool
}

// ParseCommand splits a command line (without terminator). It tolerates
// every anomaly and records it instead of failing: the decoder must follow
// whatever the server will do.
func ParseCommand(line []byte) Command {
	var c Command
	s := string(line)
	if strings.HasPrefix(s, " ") {
		c.LeadingSP = true
		s = strings.TrimLeft(s, " ")
	}
	c.Tab = strings.IndexByte(s, '\t') >= 0
	// Keyword: up to the first SP or TAB.
	end := strings.IndexAny(s, " \t")
	if end < 0 {
		c.RawKey = s
		c.Keyword = upperASCII(s)
		return c
	}
	c.RawKey = s[:end]
	c.Keyword = upperASCII(c.RawKey)
	rest := s[end+1:]
	c.Rest = rest
	if c.Keyword == "PASS" {
		// RFC 1939 §7: the password may contain spaces; it is one argument.
		c.Args = []string{rest}
		return c
	}
	if strings.HasSuffix(s, " ") {
		c.TrailingSP = true
	}
	if strings.Contains(rest, "  ") || strings.HasPrefix(rest, " ") {
		c.MultiSP = true
	}
	for _, f := range strings.FieldsFunc(rest, func(r rune) bool { return r == ' ' || r == '\t' }) {
		c.Args = append(c.Args, f)
	}
	return c
}

// Indicator is the first token of a server status line.
type Indicator uint8

// Status indicators.
const (
	NotStatus    Indicator = iota // not a status line at all
	OK                            // "+OK"
	ERR                           // "-ERR"
	Continuation                  // "+" SP ... (SASL challenge, RFC 5034 §4)
	Malformed                     // looks like an indicator but is not exact (+ok, -ERROR, OK, +OK\t)
)

// Status is a parsed server status line.
type Status struct {
	Indicator Indicator
	Raw       string // indicator as sent (e.g. "+ok" for a Malformed one)
	Text      string // text after the indicator and its SP
	// Code is the response code without brackets when Text starts with
	// '[' (RFC 2449 §8); CodeOK is false when a '[' starts the text but no
	// well-formed code follows (POP3-RESP-002 territory).
	Code   string
	HasBr  bool
	CodeOK bool
}

// ParseStatus classifies a server line (without terminator) in status
// position. It never fails: anything that is not recognisably a status
// line is NotStatus.
func ParseStatus(line []byte) Status {
	var st Status
	switch {
	case bytes.HasPrefix(line, []byte("+OK")):
		rest := line[3:]
		if len(rest) == 0 {
			st.Indicator, st.Raw = OK, "+OK"
			return st
		}
		if rest[0] == ' ' {
			st.Indicator, st.Raw = OK, "+OK"
			st.setText(rest[1:])
			return st
		}
		// "+OKAY", "+OK\t", "+OK." — indicator not followed by SP or CRLF.
		st.Indicator, st.Raw = Malformed, string(firstToken(line))
		st.Text = afterToken(line)
		return st
	case bytes.HasPrefix(line, []byte("-ERR")):
		rest := line[4:]
		if len(rest) == 0 {
			st.Indicator, st.Raw = ERR, "-ERR"
			return st
		}
		if rest[0] == ' ' {
			st.Indicator, st.Raw = ERR, "-ERR"
			st.setText(rest[1:])
			return st
		}
		st.Indicator, st.Raw = Malformed, string(firstToken(line))
		st.Text = afterToken(line)
		return st
	case len(line) >= 1 && line[0] == '+' && (len(line) == 1 || line[1] == ' '):
		st.Indicator, st.Raw = Continuation, "+"
		if len(line) > 1 {
			st.Text = string(line[2:])
		}
		return st
	}
	tok := firstToken(line)
	switch strings.ToUpper(string(tok)) {
	case "+OK", "-ERR", "OK", "ERR", "+OKAY", "-ERROR", "ERROR", "-OK", "+ERR":
		st.Indicator, st.Raw = Malformed, string(tok)
		st.Text = afterToken(line)
	}
	return st
}

// afterToken returns the text after the first token and one separator.
func afterToken(line []byte) string {
	tok := firstToken(line)
	if len(line) > len(tok) {
		return string(line[len(tok)+1:])
	}
	return ""
}

func firstToken(line []byte) []byte {
	if i := bytes.IndexAny(line, " \t"); i >= 0 {
		return line[:i]
	}
	return line
}

func (st *Status) setText(t []byte) {
	st.Text = string(t)
	if len(t) == 0 || t[0] != '[' {
		return
	}
	st.HasBr = true
	end := bytes.IndexByte(t, ']')
	if end < 0 {
		return
	}
	code := string(t[1:end])
	st.Code = code
	st.CodeOK = ValidRespCode(code)
}

// ValidRespCode reports whether code (without brackets) matches RFC 2449 §3
// resp-code: resp-level *("/" resp-level), resp-level = 1*rchar, rchar =
// %x21-2E / %x30-5C / %x5E-7F.
func ValidRespCode(code string) bool {
	if code == "" {
		return false
	}
	for _, lvl := range strings.Split(code, "/") {
		if lvl == "" {
			return false
		}
		for i := 0; i < len(lvl); i++ {
			c := lvl[i]
			if c < 0x21 || c > 0x7f || c == '/' || c == ']' {
				return false
			}
		}
	}
	return true
}

// APOPTimestamp extracts the first <...> of a greeting text. ok is false if
// the text holds no '<' followed by a '>'.
func APOPTimestamp(text string) (ts string, ok bool) {
	i := strings.IndexByte(text, '<')
	if i < 0 {
		return "", false
	}
	j := strings.IndexByte(text[i:], '>')
	if j < 0 {
		return "", false
	}
	return text[i : i+j+1], true
}

// ValidAPOPTimestamp reports whether ts ("<...>") is msg-id shaped as RFC
// 1939 §7 requires: non-empty, an '@', no whitespace, no nested '<'.
func ValidAPOPTimestamp(ts string) (ok bool, why string) {
	if len(ts) < 2 || ts[0] != '<' || ts[len(ts)-1] != '>' {
		return false, "not enclosed in <>"
	}
	in := ts[1 : len(ts)-1]
	switch {
	case in == "":
		return false, "empty <>"
	case strings.ContainsAny(in, " \t\r\n"):
		return false, "whitespace inside"
	case strings.Contains(in, "<"):
		return false, "nested <"
	case !strings.Contains(in, "@"):
		return false, "no @"
	}
	return true, ""
}

// upperASCII upper-cases a-z only: POP3 keywords are ASCII, and Unicode
// case rules would turn "uſer" into "USER".
func upperASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// IsPrintableASCII reports whether every byte of b is in 0x20..0x7E.
func IsPrintableASCII(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// IsDigits reports whether s is a non-empty run of ASCII decimal digits.
func IsDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
