package decode_test

import (
	"fmt"
	"strings"

	"github.com/popscope/popscope/decode"
	"github.com/popscope/popscope/event"
)

// exp matches selected fields of one event. Build one with the
// constructors below and refine it with the methods; each method returns
// a copy.
type exp struct {
	desc string
	// optional: the event may be missing (a catalog rule that fires
	// here but may not be implemented yet); when present it is consumed
	// like any other expectation, so it is not an "unlisted violation".
	optional bool
	checks   []func(*event.Event) bool
	// wantSev is the severity a violation must have ("" for other events).
	wantSev event.Severity
}

func (x exp) with(desc string, f func(*event.Event) bool) exp {
	x.desc += " " + desc
	x.checks = append(append([]func(*event.Event) bool(nil), x.checks...), f)
	return x
}

func (x exp) match(e *event.Event) bool {
	if x.wantSev != "" && e.Severity != x.wantSev {
		return false
	}
	for _, f := range x.checks {
		if !f(e) {
			return false
		}
	}
	return true
}

func (x exp) String() string {
	if x.optional {
		return x.desc + " (optional)"
	}
	return x.desc
}

func typed(t event.Type) exp {
	return exp{desc: string(t), checks: []func(*event.Event) bool{func(e *event.Event) bool { return e.Type == t }}}
}

func greet(status string) exp {
	return typed(event.Greeting).with("status="+status, func(e *event.Event) bool { return e.Status == status })
}

func cmd(verb string) exp {
	return typed(event.Command).verb(verb)
}

func resp(verb, status string) exp {
	return typed(event.Response).verb(verb).status(status)
}

func cont() exp     { return typed(event.Continuation) }
func saslResp() exp { return typed(event.SASLResponse) }
func opaque() exp   { return typed(event.Opaque) }
func note() exp     { return typed(event.Note) }

func state(from, to decode.State) exp {
	return typed(event.State).with(fmt.Sprintf("%s>%s", from, to), func(e *event.Event) bool {
		return e.From == string(from) && e.To == string(to)
	})
}

// viol expects a violation of rule ("LINE-001" or "POP3-LINE-001") with
// the catalog's default severity unless sev overrides it.
func viol(rule string) exp {
	r := decode.LookupRule(rule)
	if r == nil {
		panic("viol: no rule " + rule)
	}
	id := r.ID
	x := typed(event.Violation).with(id, func(e *event.Event) bool { return e.Rule == id })
	x.desc, x.wantSev = id, r.Severity
	return x
}

// sev replaces the default severity of a viol (a sub-case severity).
func (x exp) sev(s event.Severity) exp {
	x.desc += " sev=" + string(s)
	x.wantSev = s
	return x
}

func (x exp) verb(v string) exp {
	return x.with("verb="+v, func(e *event.Event) bool { return e.Verb == v })
}

func (x exp) status(s string) exp {
	return x.with("status="+s, func(e *event.Event) bool { return e.Status == s })
}

func (x exp) by(s event.Side) exp {
	return x.with("by="+s.String(), func(e *event.Event) bool { return e.By == s })
}

func (x exp) args(a string) exp {
	return x.with(fmt.Sprintf("args=%q", a), func(e *event.Event) bool { return e.Args == a })
}

func (x exp) text(s string) exp {
	return x.with(fmt.Sprintf("text=%q", s), func(e *event.Event) bool { return e.Text == s })
}

func (x exp) code(s string) exp {
	return x.with(fmt.Sprintf("code=%q", s), func(e *event.Event) bool { return e.Code == s })
}

func (x exp) ts(s string) exp {
	return x.with(fmt.Sprintf("ts=%q", s), func(e *event.Event) bool { return e.Timestamp == s })
}

func (x exp) id(n uint64) exp {
	return x.with(fmt.Sprintf("id=%d", n), func(e *event.Event) bool { return e.ID == n })
}

func (x exp) off(n int64) exp {
	return x.with(fmt.Sprintf("off=%d", n), func(e *event.Event) bool { return e.Offset == n })
}

func (x exp) pipelined(b bool) exp {
	return x.with(fmt.Sprintf("pipelined=%v", b), func(e *event.Event) bool { return e.Pipelined == b })
}

func (x exp) redacted() exp {
	return x.with("redacted", func(e *event.Event) bool { return e.Redacted && e.Args != "" })
}

// body expects a multi-line response with these delivered octets and
// content lines.
func (x exp) body(octets, lines int) exp {
	return x.with(fmt.Sprintf("multiline octets=%d lines=%d", octets, lines), func(e *event.Event) bool {
		return e.Multiline && e.Octets == int64(octets) && e.Lines == int64(lines)
	})
}

func (x exp) wire(n int) exp {
	return x.with(fmt.Sprintf("wire=%d", n), func(e *event.Event) bool { return e.WireOctets == int64(n) })
}

func (x exp) single() exp {
	return x.with("single-line", func(e *event.Event) bool { return !e.Multiline })
}

func (x exp) detail(sub string) exp {
	return x.with(fmt.Sprintf("detail~%q", sub), func(e *event.Event) bool { return strings.Contains(e.Detail, sub) })
}

func (x exp) maybe() exp {
	x.optional = true
	return x
}

// matchEvents checks that want is an ordered subsequence of evs (optional
// expectations may be skipped) and that every violation event is matched
// by an expectation of want or, in any order, by one of allow (each
// consumed at most once). It returns the problems found.
func matchEvents(want, allow []exp, evs []*event.Event) []string {
	var errs []string
	used := make([]bool, len(allow))
	allowed := func(e *event.Event) bool {
		for i, a := range allow {
			if !used[i] && a.match(e) {
				used[i] = true
				return true
			}
		}
		return false
	}
	j := 0
	for _, e := range evs {
		k := j
		for ; k < len(want); k++ {
			if want[k].match(e) {
				break
			}
			if !want[k].optional {
				k = len(want)
				break
			}
		}
		if k < len(want) {
			j = k + 1
			continue
		}
		if e.Type == event.Violation && !allowed(e) {
			next := "end of expectations"
			if j < len(want) {
				next = "next expectation: " + want[j].String()
			}
			errs = append(errs, fmt.Sprintf("unlisted violation %s (%s)", brief(e), next))
		}
	}
	for ; j < len(want); j++ {
		if !want[j].optional {
			errs = append(errs, "missing "+want[j].String())
			break
		}
	}
	return errs
}
