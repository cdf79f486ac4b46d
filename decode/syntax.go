package decode

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/popscope/popscope/decode/wire"
	"github.com/popscope/popscope/event"
)

// Command syntax (docs/pop3-rules.md §4.2), judged when the command is
// sent: SYNTAX-001, -003, -004, -005 and EXT-004. SYNTAX-002 and -006 need
// the reply and are judged in executionChecks.

// argSpec says how many arguments a keyword takes and which are message
// numbers.
type argSpec struct {
	min, max int
	// msgArgs: indexes of arguments that must be message numbers (>0).
	msgArgs []int
	// numArgs: indexes of arguments that must be non-negative decimals.
	numArgs []int
}

var argSpecs = map[string]argSpec{
	"USER": {min: 1, max: 1},
	"PASS": {min: 1, max: 1},
	"APOP": {min: 2, max: 2},
	"AUTH": {min: 0, max: 2},
	"STLS": {},
	"CAPA": {},
	"QUIT": {},
	"UTF8": {},
	"STAT": {},
	"NOOP": {},
	"RSET": {},
	"LANG": {min: 0, max: 1},
	"LIST": {min: 0, max: 1, msgArgs: []int{0}},
	"UIDL": {min: 0, max: 1, msgArgs: []int{0}},
	"RETR": {min: 1, max: 1, msgArgs: []int{0}},
	"DELE": {min: 1, max: 1, msgArgs: []int{0}},
	"TOP":  {min: 2, max: 2, msgArgs: []int{0}, numArgs: []int{1}},
	"LAST": {},
	"RPOP": {min: 1, max: 1},
}

// sendChecks applies the rules that judge a command line as sent.
func (s *Session) sendChecks(at time.Time, x *exchange, line []byte, off int64) {
	c := x.cmd
	if n := len(c.RawKey); (n < 3 || n > 4) && !vendorKeywords[c.Keyword] {
		what := "keyword " + quoteShort([]byte(c.RawKey)) + " is not 3 or 4 characters"
		if n == 0 {
			what = "empty command line"
		}
		s.violate(at, "POP3-SYNTAX-001", event.Client, off, what, "")
		x.syntaxBad = true
	}
	if hasLowerASCII(c.RawKey) {
		x.lowerKey = true
	}
	var seps []string
	if c.Tab {
		seps = append(seps, "TAB")
	}
	if c.LeadingSP {
		seps = append(seps, "leading SP")
	}
	if c.MultiSP {
		seps = append(seps, "two or more SPs")
	}
	if c.TrailingSP {
		seps = append(seps, "trailing SP")
	}
	if len(seps) > 0 {
		d := "separator other than one SP: " + strings.Join(seps, ", ") + " in " + quoteShort(s.displayLine(x, line))
		if c.Keyword == "AUTH" && len(c.Args) == 0 && c.TrailingSP {
			d += " (Outlook's \"AUTH \" mechanism discovery)"
		}
		s.violate(at, "POP3-SYNTAX-003", event.Client, off, d, "")
	}
	if !s.capaEverOK {
		for _, a := range c.Args {
			if len(a) > wire.MaxArgLen {
				v := a
				if c.Keyword == "PASS" || (c.Keyword == "APOP") || c.Keyword == "AUTH" {
					v = Redacted
				}
				s.violate(at, "POP3-SYNTAX-004", event.Client, off,
					fmt.Sprintf("%s argument of %d characters (%s) to a server not seen to support CAPA (limit 40)", x.verb, len(a), quoteShort([]byte(v))), "")
				break
			}
		}
	}
	if spec, ok := argSpecs[c.Keyword]; ok {
		s.checkArgs(at, x, spec, off)
	}
	if c.Keyword == "USER" || c.Keyword == "PASS" || c.Keyword == "APOP" {
		s.checkUTF8Login(at, x, off)
	}
}

func shortStr(v string) string {
	if len(v) > 60 {
		return v[:57] + "..."
	}
	return v
}

// displayLine returns the line for a detail text with secrets hidden.
func (s *Session) displayLine(x *exchange, line []byte) []byte {
	if s.opt.RevealSecrets {
		return line
	}
	switch x.verb {
	case "PASS", "APOP", "AUTH", "RPOP":
		args, red := s.redactArgs(x.cmd)
		if red {
			return []byte(x.cmd.RawKey + " " + args)
		}
	}
	return line
}

func (s *Session) checkArgs(at time.Time, x *exchange, spec argSpec, off int64) {
	c := x.cmd
	n := len(c.Args)
	if c.Keyword == "PASS" && c.Rest == "" {
		n = 0
	}
	bad := func(why string, sev event.Severity) {
		s.violate(at, "POP3-SYNTAX-005", event.Client, off, c.Keyword+": "+why, sev)
		if sev == "" || sev == event.Error {
			x.syntaxBad = true
		}
	}
	switch {
	case n < spec.min:
		bad(fmt.Sprintf("missing argument (needs %d, got %d)", spec.min, n), "")
		return
	case n > spec.max:
		if spec.max == 0 {
			bad(fmt.Sprintf("takes no argument, got %d", n), "")
		} else {
			bad(fmt.Sprintf("too many arguments (at most %d, got %d)", spec.max, n), "")
		}
		return
	}
	for _, i := range spec.msgArgs {
		if i < n {
			a := c.Args[i]
			if !wire.IsDigits(a) {
				bad(fmt.Sprintf("message number %q is not decimal digits", a), "")
				return
			}
			if v, err := strconv.ParseUint(a, 10, 64); err == nil && v == 0 {
				bad("message number 0 (numbers start at 1)", "")
				return
			}
		}
	}
	for _, i := range spec.numArgs {
		if i < n && !wire.IsDigits(c.Args[i]) {
			bad(fmt.Sprintf("line count %q is not a non-negative decimal", c.Args[i]), "")
			return
		}
	}
	if c.Keyword == "APOP" {
		d := c.Args[1]
		switch {
		case len(d) != 32 || !isHex(d):
			bad("digest is not 32 hex digits", "")
		case d != strings.ToLower(d):
			bad("digest uses upper-case hex digits (RFC 1939 §7 asks for lower case)", event.Warning)
		}
	}
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// checkUTF8Login: EXT-004, octets >= 0x80 in USER/PASS/APOP.
func (s *Session) checkUTF8Login(at time.Time, x *exchange, off int64) {
	if !wire.HasHigh([]byte(x.cmd.Rest)) {
		return
	}
	utf8User := strings.Contains(strings.ToUpper(s.caps.get("UTF8")), "USER")
	switch {
	case !utf8User:
		s.violate(at, "POP3-EXT-004", event.Client, off, x.verb+" argument has 8-bit octets but the server did not announce \"UTF8 USER\"", "")
	case !utf8.ValidString(x.cmd.Rest):
		x.badUTF8 = true
		s.violate(at, "POP3-EXT-004", event.Client, off, x.verb+" argument is not valid UTF-8 (the server must reject it)", "")
	}
}

// ---- structured replies (SYNTAX-008/009) ----

// parseListing splits "n SP value [extra]"; ok is false when the shape is
// wrong. extra holds anything after the value.
func parseListing(line string) (n int, val, extra string, ok bool) {
	num, rest, found := strings.Cut(line, " ")
	if !found || !wire.IsDigits(num) {
		return 0, "", "", false
	}
	v, err := strconv.Atoi(num)
	if err != nil {
		return 0, "", "", false
	}
	val, extra, _ = strings.Cut(rest, " ")
	if val == "" {
		return 0, "", "", false
	}
	return v, val, extra, true
}

// checkCapaLine: SYNTAX-009 for one CAPA body line. It returns the tag.
func (s *Session) checkCapaLine(at time.Time, off int64, c []byte) (tag, args string, ok bool) {
	line := string(c)
	switch {
	case line == "":
		s.violate(at, "POP3-SYNTAX-009", event.Server, off, "empty line in CAPA body", "")
		return "", "", false
	case strings.HasPrefix(line, " "):
		s.violate(at, "POP3-SYNTAX-009", event.Server, off, "CAPA line starts with SP: "+quoteShort(c), "")
		return "", "", false
	}
	tag, args, _ = strings.Cut(line, " ")
	for i := 0; i < len(tag); i++ {
		if ch := tag[i]; ch <= 0x20 || ch > 0x7e || ch == '.' {
			s.violate(at, "POP3-SYNTAX-009", event.Server, off, "capability tag "+quoteShort([]byte(tag))+" contains '.', space or a non-printable octet", "")
			return "", "", false
		}
	}
	return strings.ToUpper(tag), args, true
}

func hasLowerASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 'a' && s[i] <= 'z' {
			return true
		}
	}
	return false
}

// vendorKeywords are non-standard commands known from real implementations
// (docs/pop3-rules.md §4.18): not malformed, only unusual (LEGACY-002).
var vendorKeywords = map[string]bool{"XTND": true, "XSENDER": true, "EUIDL": true, "*ENV": true,
	"MBOX": true, "XCLIENT": true}

// ---- LANG (RFC 6856 §3; SYNTAX-008) ----

// validLangTag is a loose RFC 5646 check: 1-8 letters, then subtags of
// 1-8 letters or digits separated by "-" ("en", "en-boont", "i-default").
func validLangTag(t string) bool {
	for i, sub := range strings.Split(t, "-") {
		if len(sub) < 1 || len(sub) > 8 {
			return false
		}
		for j := 0; j < len(sub); j++ {
			c := sub[j]
			alpha := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
			if !alpha && (i == 0 || c < '0' || c > '9') {
				return false
			}
		}
	}
	return true
}

// langListLine checks one line of a LANG body: "tag [SP text]".
func (s *Session) langListLine(at time.Time, c []byte, off int64) {
	tag, _, _ := strings.Cut(string(c), " ")
	if !validLangTag(tag) {
		s.violate(at, "POP3-SYNTAX-008", event.Server, off, "language listing line is not \"tag [SP text]\": "+quoteShort(c), "")
	}
}

// langReply checks the single-line +OK to "LANG tag": "+OK SP tag SP text".
func (s *Session) langReply(at time.Time, x *exchange) {
	if x.verb != "LANG" || len(x.cmd.Args) == 0 || x.status.Indicator != wire.OK {
		return
	}
	tag, text, _ := strings.Cut(x.status.Text, " ")
	if !validLangTag(tag) || text == "" {
		s.violate(at, "POP3-SYNTAX-008", event.Server, x.replyOff, "LANG "+x.cmd.Args[0]+" reply is not \"+OK SP tag SP text\": "+quoteShort([]byte(x.status.Text)), "")
	}
}
