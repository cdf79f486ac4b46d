package decode

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/popscope/popscope/event"
)

// Capabilities (docs/pop3-rules.md §2.5, §4.8): a set per (state, security
// context). A CAPA reply replaces the set for its context; TLS start
// invalidates what was learned before.

// capSet is one successful CAPA reply.
type capSet struct {
	tags  map[string]string // upper-cased tag -> arguments as sent
	order []string
	trans bool // taken in TRANSACTION
	tls   bool // taken under TLS
}

func (c *capSet) has(tag string) bool {
	if c == nil {
		return false
	}
	_, ok := c.tags[tag]
	return ok
}

func (c *capSet) get(tag string) string {
	if c == nil {
		return ""
	}
	return c.tags[tag]
}

// saslMechs returns the upper-cased mechanisms of the SASL line.
func (c *capSet) saslMechs() []string {
	return strings.Fields(strings.ToUpper(c.get("SASL")))
}

// registeredCaps is the IANA POP3 extension registry (RFC 2449 §9 and
// later registrations).
var registeredCaps = map[string]bool{
	"TOP": true, "USER": true, "SASL": true, "RESP-CODES": true, "LOGIN-DELAY": true,
	"PIPELINING": true, "EXPIRE": true, "UIDL": true, "IMPLEMENTATION": true, "STLS": true,
	"AUTH-RESP-CODE": true, "UTF8": true, "LANG": true,
}

// noArgCaps take no argument (RFC 2449 §6, RFC 2595, RFC 3206, RFC 6856).
var noArgCaps = map[string]bool{
	"TOP": true, "USER": true, "UIDL": true, "PIPELINING": true, "RESP-CODES": true,
	"STLS": true, "AUTH-RESP-CODE": true, "LANG": true,
}

// capaDone is called with the lines of a complete +OK CAPA body.
func (s *Session) capaDone(at time.Time, off int64, lines []capaLine) {
	cs := &capSet{tags: map[string]string{}, trans: s.state == Transaction, tls: s.serverTLS}
	for _, l := range lines {
		if _, dup := cs.tags[l.tag]; dup {
			s.violate(at, "POP3-SYNTAX-009", event.Server, l.off, "capability "+l.tag+" listed twice", event.Info)
			continue
		}
		cs.tags[l.tag] = l.args
		cs.order = append(cs.order, l.tag)
		s.checkCapArgs(at, l, cs.trans)
		if !registeredCaps[l.tag] && !s.capaNoted[l.tag] {
			s.capaNoted[l.tag] = true
			d := "capability " + l.tag + " is not in the IANA registry"
			if strings.HasPrefix(l.tag, "X") {
				d += " (X- private space: legitimate)"
			} else {
				d += " (not X-prefixed: squats on the registry)"
			}
			s.violate(at, "POP3-CAPA-006", event.Server, l.off, d, "")
		}
	}
	if impl := cs.get("IMPLEMENTATION"); impl != "" {
		s.identify(at, impl, true)
	}
	// Compare with earlier sets of the same security context.
	if cs.trans {
		if prev := s.capaByCtx[capCtx{trans: false, tls: cs.tls}]; prev != nil {
			s.compareCaps(at, off, prev, cs, "announced in AUTHORIZATION but missing after login")
			s.checkCapDelays(at, off, prev, cs)
		}
	}
	if prev := s.capaByCtx[capCtx{trans: cs.trans, tls: cs.tls}]; prev != nil {
		s.compareCaps(at, off, prev, cs, "changed without reason between two CAPA replies in the same state")
	}
	s.capaByCtx[capCtx{trans: cs.trans, tls: cs.tls}] = cs
	s.caps = cs
	s.capaEverOK = true
	s.capsStaleTLS = false
	if cs.has("STLS") {
		s.stlsListed = true
		switch {
		// The CAPA the decoder sees is the one the client receives (when
		// popscope terminates TLS it adjusts STLS for the client leg), so
		// "TLS already active" is judged on that leg.
		case s.clientTLS:
			s.violate(at, "POP3-TLS-006", event.Server, off, "STLS advertised while TLS is already active", "")
		case cs.trans:
			s.violate(at, "POP3-TLS-006", event.Server, off, "STLS advertised in TRANSACTION (it is an AUTHORIZATION-only capability, RFC 2595 §8)", "")
		}
		if s.capaFailed {
			s.violate(at, "POP3-CAPA-005", event.Server, off, "STLS listed although CAPA failed earlier", "")
		}
	}
	if !s.serverTLS && !s.auth002 {
		var pw []string
		if cs.has("USER") {
			pw = append(pw, "USER")
		}
		for _, m := range cs.saslMechs() {
			if m == "PLAIN" || m == "LOGIN" {
				pw = append(pw, "SASL "+m)
			}
		}
		if len(pw) > 0 && !cs.trans {
			s.auth002 = true
			s.violate(at, "POP3-AUTH-002", event.Server, off, "server offers password logins without TLS: "+strings.Join(pw, ", "), "")
		}
	}
}

type capCtx struct{ trans, tls bool }

type capaLine struct {
	tag, args string
	off       int64
}

// compareCaps reports CAPA-001: capabilities of prev missing from cur.
func (s *Session) compareCaps(at time.Time, off int64, prev, cur *capSet, why string) {
	var missing []string
	for _, t := range prev.order {
		switch t {
		case "STLS", "IMPLEMENTATION", "LOGIN-DELAY", "EXPIRE":
			continue
		}
		if !cur.has(t) {
			missing = append(missing, t)
		}
	}
	var added []string
	if prev.trans == cur.trans {
		for _, t := range cur.order {
			if !prev.has(t) && t != "IMPLEMENTATION" {
				added = append(added, t)
			}
		}
	}
	if len(missing) == 0 && len(added) == 0 {
		return
	}
	sort.Strings(missing)
	d := why + ": " + strings.Join(missing, ", ")
	if len(missing) == 0 {
		d = why + ": added " + strings.Join(added, ", ")
	} else if len(added) > 0 {
		d += "; added " + strings.Join(added, ", ")
	}
	s.violate(at, "POP3-CAPA-001", event.Server, off, d, "")
}

// checkCapDelays: CAPA-003, LOGIN-DELAY may only shrink and EXPIRE only
// grow after login.
func (s *Session) checkCapDelays(at time.Time, off int64, auth, trans *capSet) {
	a, aok := capNumber(auth.get("LOGIN-DELAY"))
	t, tok := capNumber(trans.get("LOGIN-DELAY"))
	if aok && tok && t > a {
		s.violate(at, "POP3-CAPA-003", event.Server, off, fmt.Sprintf("LOGIN-DELAY %d after login exceeds %d announced before", t, a), "")
	}
	if auth.has("EXPIRE") && trans.has("EXPIRE") {
		a, aok := capNumber(auth.get("EXPIRE"))
		t, tok := capNumber(trans.get("EXPIRE"))
		if aok && tok && t < a {
			s.violate(at, "POP3-CAPA-003", event.Server, off, fmt.Sprintf("EXPIRE %s after login is shorter than %s announced before", expireText(t), expireText(a)), "")
		}
	}
}

const never = int64(1) << 62

func expireText(v int64) string {
	if v == never {
		return "NEVER"
	}
	return strconv.FormatInt(v, 10)
}

// capNumber parses the first word of a LOGIN-DELAY/EXPIRE argument;
// NEVER is infinite.
func capNumber(args string) (int64, bool) {
	f := strings.Fields(args)
	if len(f) == 0 {
		return 0, false
	}
	if strings.EqualFold(f[0], "NEVER") {
		return never, true
	}
	v, err := strconv.ParseInt(f[0], 10, 64)
	return v, err == nil && v >= 0
}

// checkCapArgs: CAPA-002, malformed capability arguments.
func (s *Session) checkCapArgs(at time.Time, l capaLine, trans bool) {
	f := strings.Fields(l.args)
	bad := func(why string) {
		s.violate(at, "POP3-CAPA-002", event.Server, l.off, l.tag+" "+l.args+": "+why, "")
	}
	switch {
	case noArgCaps[l.tag]:
		if len(f) > 0 {
			bad("takes no argument")
		}
	case l.tag == "LOGIN-DELAY" || l.tag == "EXPIRE":
		if len(f) == 0 || len(f) > 2 {
			bad("needs a value and optionally USER")
			return
		}
		if _, ok := capNumber(f[0]); !ok || (l.tag == "LOGIN-DELAY" && strings.EqualFold(f[0], "NEVER")) {
			bad("value is not a non-negative integer" + map[bool]string{true: " or NEVER"}[l.tag == "EXPIRE"])
			return
		}
		if len(f) == 2 {
			if !strings.EqualFold(f[1], "USER") {
				bad("second word must be USER")
			} else if trans {
				bad("the USER token is only allowed in AUTHORIZATION (RFC 2449 §6.5/6.7)")
			}
		}
	case l.tag == "SASL":
		if len(f) == 0 {
			bad("no mechanisms")
		}
		for _, m := range f {
			if !validMechName(m) {
				bad("mechanism name " + strconv.Quote(m) + " is not 1-20 of A-Z 0-9 - _")
				break
			}
		}
	case l.tag == "UTF8":
		if len(f) > 1 || (len(f) == 1 && !strings.EqualFold(f[0], "USER")) {
			bad("the only argument allowed is USER")
		}
	}
}

func validMechName(m string) bool {
	if len(m) < 1 || len(m) > 20 {
		return false
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// capaForCommand: CAPA-004, the client uses a command whose capability
// the last successful CAPA in this security context did not list.
func (s *Session) capaForCommand(at time.Time, x *exchange, off int64) {
	need := x.info.capa
	if need == "" || !x.known || s.caps == nil {
		return
	}
	d := x.verb + " used but CAPA did not list " + need
	if s.capsStaleTLS {
		// Capabilities learned before TLS count as not listed.
		d = x.verb + " used with no CAPA after STLS: capabilities learned before TLS must be forgotten"
	} else if s.caps.has(need) {
		return
	}
	s.violate(at, "POP3-CAPA-004", event.Client, off, d, "")
}
