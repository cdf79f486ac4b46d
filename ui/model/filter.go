package model

import (
	"fmt"
	"strings"

	"github.com/popscope/popscope/event"
)

// FilterTerm documents one form of the filter language.
type FilterTerm struct {
	Syntax  string
	Meaning string
}

// FilterTerms is the filter language, as the help screen shows it. Terms
// are separated by spaces and must all hold.
var FilterTerms = []FilterTerm{
	{"user:alice", "sessions of that user (wildcards * and ? work in every value)"},
	{"cmd:RETR", "command lines and their replies with that verb"},
	{"rule:POP3-DROP-*", "lines with a violation of a matching rule (the POP3- prefix is optional)"},
	{"sev:warning", "lines with a violation of at least that severity: error, warning, info"},
	{"err", "-ERR replies"},
	{"tls", "sessions with a TLS handshake on either leg"},
	{"state:TRANSACTION", "sessions whose current POP3 state matches"},
	{"client:127.0.0.1:*", "sessions from a matching client address"},
	{"id:4f97", "the session whose ID starts with that"},
	{"open, closed", "sessions still open, or ended"},
	{`text, "two words"`, "free text in lines, session ID, client or user (any case)"},
	{"!term", "negation: lines where the term does not hold, sessions where no line holds it"},
}

type termKind uint8

const (
	tText termKind = iota
	tUser
	tCmd
	tRule
	tSev
	tErr
	tTLS
	tState
	tClient
	tID
	tOpen
	tClosed
)

// lineLevel terms are decided per transcript line; the rest per session.
func (k termKind) lineLevel() bool {
	switch k {
	case tCmd, tRule, tSev, tErr, tText:
		return true
	}
	return false
}

var filterKeys = map[string]termKind{
	"user": tUser, "cmd": tCmd, "rule": tRule, "sev": tSev,
	"state": tState, "client": tClient, "id": tID,
}

var filterWords = map[string]termKind{
	"err": tErr, "tls": tTLS, "open": tOpen, "closed": tClosed,
}

type term struct {
	kind termKind
	neg  bool
	val  string // normalised: upper case for verbs, rules, states; lower for text
	rank int    // tSev
}

// Filter is a parsed filter expression. The zero Filter (and nil) matches
// everything.
type Filter struct {
	src   string
	terms []term
}

// ParseFilter parses a filter expression (see FilterTerms). An empty or
// blank expression gives a filter that matches everything.
func ParseFilter(src string) (*Filter, error) {
	toks, err := tokens(src)
	if err != nil {
		return nil, err
	}
	f := &Filter{src: strings.TrimSpace(src)}
	for _, tok := range toks {
		t, err := parseTerm(tok)
		if err != nil {
			return nil, err
		}
		f.terms = append(f.terms, t)
	}
	return f, nil
}

// tokens splits on spaces outside double quotes and removes the quotes.
func tokens(src string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inQ, have := false, false
	for _, r := range src {
		switch {
		case r == '"':
			inQ = !inQ
			have = true
		case (r == ' ' || r == '\t') && !inQ:
			if have {
				out = append(out, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteRune(r)
			have = true
		}
	}
	if inQ {
		return nil, fmt.Errorf("filter: unclosed quote")
	}
	if have {
		out = append(out, cur.String())
	}
	return out, nil
}

func parseTerm(tok string) (term, error) {
	var t term
	if len(tok) > 1 && tok[0] == '!' {
		t.neg = true
		tok = tok[1:]
	}
	if k, ok := filterWords[strings.ToLower(tok)]; ok {
		t.kind = k
		return t, nil
	}
	key, val, ok := strings.Cut(tok, ":")
	if !ok || !isWord(key) {
		t.kind, t.val = tText, strings.ToLower(tok)
		return t, nil
	}
	k, known := filterKeys[strings.ToLower(key)]
	if !known {
		return t, fmt.Errorf("filter: unknown key %q (keys: user cmd rule sev state client id; words: err tls open closed)", key)
	}
	if val == "" {
		return t, fmt.Errorf("filter: %s: needs a value, e.g. %s", key, example(k))
	}
	t.kind = k
	switch k {
	case tSev:
		t.rank = event.Severity(strings.ToLower(val)).Rank()
		if strings.EqualFold(val, "warn") {
			t.rank = event.Warning.Rank()
		}
		if t.rank == 0 {
			return t, fmt.Errorf("filter: sev:%s: severity is error, warning or info", val)
		}
	case tRule:
		t.val = strings.ToUpper(val)
		if !strings.HasPrefix(t.val, "POP3-") && !strings.HasPrefix(t.val, "*") {
			t.val = "POP3-" + t.val
		}
	case tCmd, tState:
		t.val = strings.ToUpper(val)
	case tID, tUser, tClient:
		t.val = strings.ToLower(val)
	}
	return t, nil
}

func example(k termKind) string {
	for _, ft := range FilterTerms {
		for key, kk := range filterKeys {
			if kk == k && strings.HasPrefix(ft.Syntax, key+":") {
				return ft.Syntax
			}
		}
	}
	return ""
}

func isWord(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i] | 0x20
		if c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

// String returns the expression as given (trimmed).
func (f *Filter) String() string {
	if f == nil {
		return ""
	}
	return f.src
}

// Empty reports a filter that matches everything.
func (f *Filter) Empty() bool { return f == nil || len(f.terms) == 0 }

// HasLineTerms reports whether the filter selects transcript lines (and
// not only sessions).
func (f *Filter) HasLineTerms() bool {
	if f == nil {
		return false
	}
	for _, t := range f.terms {
		if t.kind.lineLevel() {
			return true
		}
	}
	return false
}

// MatchSession reports whether a session passes: every session term
// holds, and if there are line terms, some kept line satisfies all the
// positive ones while no line satisfies a negated one. Free text also
// matches the session ID, client and user. Caller holds the model lock.
func (f *Filter) MatchSession(s *Session) bool {
	if f.Empty() {
		return true
	}
	var pos, neg []*term
	for i := range f.terms {
		t := &f.terms[i]
		if !t.kind.lineLevel() {
			if t.matchSession(s) == t.neg {
				return false
			}
			continue
		}
		if t.kind == tText && t.matchSession(s) {
			if t.neg {
				return false
			}
			continue // holds for every line
		}
		if t.neg {
			neg = append(neg, t)
		} else {
			pos = append(pos, t)
		}
	}
	if len(pos) == 0 && len(neg) == 0 {
		return true
	}
	found := len(pos) == 0
	for i := 0; i < s.lines.len(); i++ {
		l := s.lines.at(i)
		for _, t := range neg {
			if t.matchLine(l) {
				return false
			}
		}
		if !found && allLine(pos, l) {
			found = true
			if len(neg) == 0 {
				return true
			}
		}
	}
	return found
}

func allLine(ts []*term, l *Line) bool {
	for _, t := range ts {
		if !t.matchLine(l) {
			return false
		}
	}
	return true
}

// MatchLine reports whether a transcript line of s passes the line terms
// (session terms are MatchSession's business). Gap lines always pass:
// missing events matter whatever the filter. Caller holds the model lock.
func (f *Filter) MatchLine(s *Session, l *Line) bool {
	if f.Empty() || l.Kind == KindGap {
		return true
	}
	for i := range f.terms {
		t := &f.terms[i]
		if !t.kind.lineLevel() {
			continue
		}
		m := t.matchLine(l) || (t.kind == tText && !t.neg && t.matchSession(s))
		if m == t.neg {
			return false
		}
	}
	return true
}

func (t *term) matchSession(s *Session) bool {
	switch t.kind {
	case tUser:
		return Glob(t.val, strings.ToLower(s.User))
	case tTLS:
		return s.HasTLS()
	case tState:
		return Glob(t.val, s.State)
	case tClient:
		return Glob(t.val, s.Client) || strings.HasPrefix(s.Client, t.val)
	case tID:
		return strings.HasPrefix(s.ID, t.val)
	case tOpen:
		return s.Open
	case tClosed:
		return !s.Open
	case tText:
		return ContainsFold(s.ID, t.val) || ContainsFold(s.Client, t.val) || ContainsFold(s.User, t.val)
	}
	return false
}

func (t *term) matchLine(l *Line) bool {
	switch t.kind {
	case tCmd:
		if l.Ev == nil {
			return false
		}
		switch l.Ev.Type {
		case event.Command, event.Response, event.Continuation, event.SASLResponse:
			return Glob(t.val, l.Ev.Verb)
		}
		return false
	case tRule:
		for _, v := range l.Violations {
			if Glob(t.val, v.Rule) {
				return true
			}
		}
		return false
	case tSev:
		for _, v := range l.Violations {
			if v.Severity.Rank() >= t.rank {
				return true
			}
		}
		return false
	case tErr:
		return l.IsErr()
	case tText:
		if ContainsFold(l.Text, t.val) || ContainsFold(l.Fold, t.val) {
			return true
		}
		for _, v := range l.Violations {
			if ContainsFold(v.Rule, t.val) || ContainsFold(v.Detail, t.val) {
				return true
			}
		}
		return false
	}
	return false
}

// Glob matches s against a pattern with * (any run) and ? (one byte),
// ignoring ASCII case. Without wildcards it is an equality test.
func Glob(pattern, s string) bool {
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || fold(pattern[p]) == fold(s[i])):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

func fold(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// ContainsFold reports whether sub (already lower case) occurs in s,
// ignoring ASCII case.
func ContainsFold(s, sub string) bool {
	if sub == "" {
		return true
	}
	n := len(sub)
	for i := 0; i+n <= len(s); i++ {
		j := 0
		for j < n && fold(s[i+j]) == sub[j] {
			j++
		}
		if j == n {
			return true
		}
	}
	return false
}

// IndexFold returns the index of sub (lower case) in s ignoring ASCII
// case, or -1.
func IndexFold(s, sub string) int {
	if sub == "" {
		return 0
	}
	n := len(sub)
	for i := 0; i+n <= len(s); i++ {
		j := 0
		for j < n && fold(s[i+j]) == sub[j] {
			j++
		}
		if j == n {
			return i
		}
	}
	return -1
}
