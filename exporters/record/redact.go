package record

import (
	"bytes"
	"strings"

	"github.com/popscope/popscope/event"
)

// redactor rewrites the client byte stream, replacing secrets by
// Placeholder while keeping every line and its line end. It works on the
// stream as it comes, in any chunking: at most holdMax octets of a line
// are held back while it is undecided whether the line carries a secret
// (a keyword, the APOP name, the "*" of a SASL cancel). It errs on the
// side of hiding: after lost bytes, the rest of the current line is
// hidden.
type redactor struct {
	t    *Tracker
	mode lineMode
	sasl SASLMode // classification of the current line, fixed at its start
	// isSASL is the final classification (SASLUnlessKeyword resolved).
	isSASL bool
	hold   []byte
	cap    []byte // the line's first capMax octets, for the tracker
	// Suppressed octets of the current line and the last two of them
	// (to tell the line end).
	supN    int64
	supLast [2]byte
	started bool
	count   int64 // placeholders written
}

type lineMode uint8

const (
	lmStart  lineMode = iota // no octet of the line seen
	lmHold                   // prefix held, undecided
	lmPass                   // the rest of the line is copied
	lmSecret                 // the rest of the line, up to its end, is hidden
)

const (
	holdMax = 512
	capMax  = 128
)

type decision uint8

const (
	undecided decision = iota
	pass
	secret
)

// client appends the redacted form of p to out.
func (r *redactor) client(out, p []byte) []byte {
	if len(p) == 0 {
		return out
	}
	if r.t.Opaque() {
		return append(out, p...)
	}
	if r.mode == lmStart && ((!r.started && p[0] == 0x16) || (r.t.AwaitTLS() && p[0] == 0x16)) {
		// A TLS handshake relayed untouched (passthrough): nothing to
		// interpret from here on.
		r.t.SetOpaque()
		return append(out, p...)
	}
	r.started = true
	for len(p) > 0 {
		if r.mode == lmStart {
			r.sasl = r.t.Mode()
			r.isSASL = r.sasl == IsSASL
			r.mode, r.hold, r.cap, r.supN = lmHold, r.hold[:0], r.cap[:0], 0
		}
		i := bytes.IndexByte(p, '\n')
		seg := p
		if i >= 0 {
			seg = p[:i+1]
		}
		p = p[len(seg):]
		if room := capMax - len(r.cap); room > 0 {
			r.cap = append(r.cap, seg[:min(room, len(seg))]...)
		}
		ended := i >= 0
		switch r.mode {
		case lmHold:
			r.hold = append(r.hold, seg...)
			d, keep := r.decide(r.hold, ended)
			switch d {
			case pass:
				out = append(out, r.hold...)
				r.mode = lmPass
			case secret:
				out = append(out, r.hold[:keep]...)
				r.suppress(r.hold[keep:])
				r.mode = lmSecret
			}
			if cap(r.hold) > 4*holdMax {
				r.hold = nil
			}
		case lmPass:
			out = append(out, seg...)
		case lmSecret:
			r.suppress(seg)
		}
		if ended {
			if r.mode == lmSecret {
				out = r.placeholder(out, true)
			}
			if r.mode == lmHold { // cannot happen: an ended line is decided
				out = append(out, r.hold...)
			}
			r.t.ClientLine(r.cap, r.isSASL)
			r.mode = lmStart
		}
	}
	return out
}

// flush ends the stream: a line cut short by the end of the session.
func (r *redactor) flush(out []byte) []byte {
	switch r.mode {
	case lmHold:
		out = append(out, r.hold...)
	case lmSecret:
		out = r.placeholder(out, false)
	}
	r.mode = lmStart
	return out
}

// lost handles a gap in the client stream: the rest of the line in
// progress (or, if none, of the next line, since its start may be lost)
// is hidden.
func (r *redactor) lost(out []byte) []byte {
	r.t.Lost()
	if r.t.Opaque() {
		return out
	}
	if r.mode == lmHold {
		out = append(out, r.hold...)
	}
	if r.mode != lmSecret {
		r.supN = 0
	}
	r.mode = lmSecret
	return out
}

func (r *redactor) suppress(b []byte) {
	for _, c := range b {
		r.supLast[0], r.supLast[1] = r.supLast[1], c
	}
	r.supN += int64(len(b))
}

// placeholder writes the placeholder for the hidden part of the line and,
// if the line ended, its line end.
func (r *redactor) placeholder(out []byte, ended bool) []byte {
	n, eol := r.supN, ""
	if n == 0 {
		return out // nothing hidden (the line end, if any, was kept)
	}
	if ended {
		eol = "\n"
		if r.supN >= 2 && r.supLast[0] == '\r' {
			eol = "\r\n"
		}
		n -= int64(len(eol))
	}
	if n > 0 {
		out = append(out, Placeholder...)
		r.count++
	}
	r.supN = 0
	return append(out, eol...)
}

// decide looks at the held start of a line and says whether it carries a
// secret, and if so how many octets before the secret are kept.
func (r *redactor) decide(h []byte, ended bool) (decision, int) {
	d, keep := r.decide1(h, ended)
	if d == undecided && len(h) > holdMax {
		// Never hold more: hide the rest of the line.
		return secret, len(h)
	}
	return d, keep
}

func (r *redactor) decide1(h []byte, ended bool) (decision, int) {
	switch r.sasl {
	case IsSASL:
		return saslDecision(h, ended)
	case SASLUnlessKeyword:
		kw, und := isKeywordStart(h)
		if und && !ended {
			return undecided, 0
		}
		if !kw {
			r.isSASL = true
			return saslDecision(h, ended)
		}
	}
	return commandDecision(h, ended)
}

// saslDecision: a SASL response line is secret unless it is empty or the
// cancel "*" (RFC 5034 §4).
func saslDecision(h []byte, ended bool) (decision, int) {
	line := trimEOL(h)
	if ended {
		if len(line) == 0 || string(line) == "*" {
			return pass, 0
		}
		return secret, 0
	}
	if len(line) == 0 || (len(line) == 1 && line[0] == '*') || string(h) == "*\r" || string(h) == "\r" {
		return undecided, 0
	}
	return secret, 0
}

// commandDecision: PASS and RPOP hide their argument, APOP its digest,
// AUTH its initial response (except the empty "=").
func commandDecision(h []byte, ended bool) (decision, int) {
	lead := 0
	for lead < len(h) && h[lead] == ' ' {
		lead++
	}
	s := h[lead:]
	end := bytes.IndexAny(s, " \t\r\n")
	if end < 0 {
		if len(s) > 4 || ended {
			return pass, 0
		}
		return undecided, 0
	}
	if s[end] == '\r' || s[end] == '\n' {
		// The keyword alone (or followed by a bare CR: not an argument separator).
		if s[end] == '\r' && !ended && end+1 == len(s) {
			return undecided, 0
		}
		return pass, 0
	}
	kw := strings.ToUpper(string(s[:end]))
	argStart := lead + end + 1
	switch kw {
	case "PASS", "RPOP":
		return secret, argStart
	case "APOP", "AUTH":
		rest := h[argStart:]
		j := bytes.IndexAny(rest, " \t\r\n")
		if j < 0 {
			if ended {
				return pass, 0
			}
			return undecided, 0
		}
		if rest[j] == '\r' || rest[j] == '\n' {
			return pass, 0 // no digest / no initial response
		}
		keep := argStart + j + 1
		if kw == "AUTH" {
			ir := trimEOL(h[keep:])
			if len(ir) == 0 && !ended {
				return undecided, 0
			}
			if string(ir) == "=" {
				if ended {
					return pass, 0
				}
				return undecided, 0
			}
			if len(ir) == 0 {
				return pass, 0
			}
		}
		return secret, keep
	}
	return pass, 0
}

func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
		return b
	}
	if n := len(b); n > 0 && b[n-1] == '\r' {
		return b[:n-1]
	}
	return b
}

// redactEvent returns e with secrets in Args replaced, as the decoder
// does without --reveal-secrets; e itself is not modified.
func redactEvent(e *event.Event) *event.Event {
	if e.Redacted || e.Args == "" {
		return e
	}
	args := e.Args
	switch e.Type {
	case event.Command:
		switch e.Verb {
		case "PASS", "RPOP":
			args = Placeholder
		case "APOP", "AUTH":
			f := strings.Fields(e.Args)
			if len(f) >= 2 && !(e.Verb == "AUTH" && len(f) == 2 && f[1] == "=") {
				args = f[0] + " " + Placeholder
			}
		}
	case event.SASLResponse:
		if e.Args != "*" {
			args = Placeholder
		}
	}
	if args == e.Args {
		return e
	}
	c := *e
	c.Args, c.Redacted = args, true
	return &c
}
