package decode

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/popscope/popscope/decode/wire"
	"github.com/popscope/popscope/event"
)

// SASL (RFC 5034, docs/pop3-rules.md §3.4, §4.6): every client message and
// challenge is decoded enough to check its form and learn the identity;
// secrets never leave this file (details name the problem, not the data).

// saslState follows one AUTH exchange.
type saslState struct {
	mech        string // upper-cased mechanism
	ir          bool   // an initial response was on the AUTH line
	serverFirst bool   // mechanism in which the server speaks first
	clientMsgs  int    // client messages so far (IR included)
	challenges  int
	lastBad     bool // the last client line failed SASL-004, or was "*"
	cancelled   bool
	oauthErr    bool // the server sent an OAUTHBEARER/XOAUTH2 error challenge
	ir007       bool // SASL-007 already judged
}

var serverFirstMechs = map[string]bool{"CRAM-MD5": true, "DIGEST-MD5": true}

// passwordMechs reveal a reusable password to anyone who reads the line.
var passwordMechs = map[string]bool{"PLAIN": true, "LOGIN": true}

// layerMechs can negotiate a security layer after success (RFC 5034 §4).
var layerMechs = map[string]bool{"GSSAPI": true, "DIGEST-MD5": true}

// knownMechs never negotiate a layer.
var knownMechs = map[string]bool{"PLAIN": true, "LOGIN": true, "CRAM-MD5": true, "XOAUTH2": true,
	"OAUTHBEARER": true, "EXTERNAL": true, "ANONYMOUS": true, "NTLM": true,
	"SCRAM-SHA-1": true, "SCRAM-SHA-256": true, "SCRAM-SHA-1-PLUS": true, "SCRAM-SHA-256-PLUS": true}

// authSent is called when an AUTH command with a mechanism is sent.
func (s *Session) authSent(at time.Time, x *exchange, raw []byte, off int64) {
	mech := strings.ToUpper(x.cmd.Args[0])
	st := &saslState{mech: mech, serverFirst: serverFirstMechs[mech]}
	x.sasl = st
	if s.caps != nil && !s.capsStaleTLS {
		if !s.caps.has("SASL") {
			s.violate(at, "POP3-SASL-001", event.Client, off, "AUTH "+mech+" but the server's CAPA has no SASL line", "")
		} else if !containsFold(s.caps.saslMechs(), mech) {
			s.violate(at, "POP3-SASL-001", event.Client, off, "AUTH "+mech+" but CAPA listed only SASL "+s.caps.get("SASL"), "")
		}
	}
	if len(x.cmd.Args) < 2 {
		return
	}
	st.ir = true
	if s.caps == nil || !s.caps.has("SASL") {
		why := "CAPA was never issued"
		switch {
		case s.capaFailed:
			why = "CAPA failed"
		case s.caps != nil:
			why = "CAPA had no SASL line"
		}
		s.violate(at, "POP3-SASL-002", event.Client, off, "AUTH with an initial response although the server did not advertise SASL ("+why+")", "")
	}
	if len(raw) > wire.MaxCommandLine {
		s.violate(at, "POP3-SASL-003", event.Client, off, fmt.Sprintf("AUTH line with initial response is %d octets (limit 255): send AUTH %s alone and answer the empty challenge", len(raw), mech), "")
	}
	s.saslMessage(at, x, x.cmd.Args[1], true, off)
}

func containsFold(list []string, v string) bool {
	for _, m := range list {
		if strings.EqualFold(m, v) {
			return true
		}
	}
	return false
}

// saslMessage checks one client SASL message (an initial response or a
// line after a challenge). ir says it came on the AUTH line.
func (s *Session) saslMessage(at time.Time, x *exchange, line string, ir bool, off int64) {
	st := x.sasl
	if st == nil {
		return
	}
	st.lastBad = false
	switch {
	case line == "*":
		st.cancelled, st.lastBad = true, true
		return
	case line == "" && !ir:
		// empty response
		s.afterOAuthError(at, x, []byte{}, off)
		return
	case line == "=" && ir:
		// present but empty
		return
	}
	data, err := base64.StdEncoding.DecodeString(line)
	if err != nil {
		st.lastBad = true
		s.violate(at, "POP3-SASL-004", event.Client, off, "client SASL line is not valid base64 (RFC 5034 §4)", "")
		return
	}
	st.clientMsgs++
	if st.oauthErr {
		s.afterOAuthError(at, x, data, off)
		return
	}
	if ir && st.serverFirst {
		// An initial response for a mechanism in which the server speaks
		// first is no message of that mechanism: SASL-007 judges the
		// server's answer and names the client's fault in its detail.
		return
	}
	s.checkMechMessage(at, x, data, off)
	if !s.clientTLS && (passwordMechs[st.mech]) {
		reveals := st.mech == "PLAIN" || (st.mech == "LOGIN" && st.clientMsgs >= 2)
		if reveals {
			s.cleartextCredentials(at, "AUTH "+st.mech, off)
		}
	}
}

// afterOAuthError: after an OAUTHBEARER error challenge the client must
// send AQ== (a single 0x01) or "*" (RFC 7628 §3.2.3).
func (s *Session) afterOAuthError(at time.Time, x *exchange, data []byte, off int64) {
	st := x.sasl
	if st == nil || !st.oauthErr {
		return
	}
	switch st.mech {
	case "OAUTHBEARER":
		if !bytes.Equal(data, []byte{1}) {
			s.violate(at, "POP3-SASL-009", event.Client, off, "after an OAUTHBEARER error challenge the client must send AQ== (0x01) or *", "")
		}
	case "XOAUTH2":
		if len(data) != 0 {
			s.violate(at, "POP3-SASL-009", event.Client, off, "after an XOAUTH2 error challenge clients send an empty line (vendor format)", event.Warning)
		}
	}
}

// checkMechMessage: SASL-009, the decoded client message has the
// mechanism's form; learns the identity.
func (s *Session) checkMechMessage(at time.Time, x *exchange, data []byte, off int64) {
	st := x.sasl
	bad := func(why string, sev event.Severity) {
		s.violate(at, "POP3-SASL-009", event.Client, off, st.mech+" message "+why, sev)
	}
	switch st.mech {
	case "PLAIN":
		parts := bytes.Split(data, []byte{0})
		if len(parts) != 3 {
			bad(fmt.Sprintf("has %d NUL separators, needs exactly 2 ([authzid] NUL authcid NUL passwd)", len(parts)-1), "")
			return
		}
		if len(parts[1]) == 0 || len(parts[2]) == 0 {
			bad("has an empty authcid or password", "")
		}
		if !utf8.Valid(data) {
			bad("is not valid UTF-8", "")
		}
		id := string(parts[1])
		if len(parts[0]) > 0 {
			id = string(parts[0])
		}
		s.setIdentity(id)
	case "LOGIN":
		if st.clientMsgs == 1 {
			s.setIdentity(string(data))
		}
	case "CRAM-MD5":
		user, digest, ok := bytes.Cut(data, []byte(" "))
		if !ok || len(digest) != 32 || !isLowerHex(digest) {
			bad("is not \"user SP 32 lower-case hex digits\" (RFC 2195)", "")
			return
		}
		s.setIdentity(string(user))
	case "XOAUTH2":
		fields := bytes.Split(data, []byte{1})
		// user=...^Aauth=Bearer ...^A^A → ["user=..","auth=Bearer ..","",""]
		if len(fields) != 4 || !bytes.HasPrefix(fields[0], []byte("user=")) ||
			!bytes.HasPrefix(fields[1], []byte("auth=Bearer ")) || len(fields[2]) != 0 || len(fields[3]) != 0 {
			bad("is not user=…^Aauth=Bearer …^A^A (vendor format)", event.Warning)
		}
		if len(fields) > 0 && bytes.HasPrefix(fields[0], []byte("user=")) {
			s.setIdentity(string(fields[0][5:]))
		}
	case "OAUTHBEARER":
		if st.clientMsgs > 1 {
			return
		}
		// gs2-header "n,a=user," then ^A-separated key=value pairs, ^A^A end.
		hdr, rest, ok := bytes.Cut(data, []byte{1})
		if !ok || !(bytes.HasPrefix(hdr, []byte("n,")) || bytes.HasPrefix(hdr, []byte("y,")) || bytes.HasPrefix(hdr, []byte("p="))) ||
			!bytes.HasSuffix(rest, []byte{1, 1}) && !bytes.HasSuffix(rest, []byte{1}) {
			bad("lacks the gs2 header or the ^A key=value structure (RFC 7628 §3.1)", "")
			return
		}
		for _, f := range bytes.Split(hdr, []byte(",")) {
			if bytes.HasPrefix(f, []byte("a=")) {
				s.setIdentity(string(f[2:]))
			}
		}
	}
}

func isLowerHex(b []byte) bool {
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func (s *Session) setIdentity(id string) {
	if id != "" {
		s.user = id
	}
}

// challenge checks a "+ ..." line from the server (SASL-005/006/007).
func (s *Session) challenge(at time.Time, x *exchange, text string, exact bool, off int64) {
	st := x.sasl
	if st == nil {
		return
	}
	st.challenges++
	if st.lastBad {
		why := "an invalid SASL line"
		if st.cancelled {
			why = "the client's \"*\" cancel"
		}
		s.violate(at, "POP3-SASL-005", event.Server, off, "server sent another challenge after "+why+" instead of -ERR", "")
	}
	if st.ir && st.serverFirst && !st.ir007 {
		st.ir007 = true
		s.violate(at, "POP3-SASL-007", event.Server, off, "AUTH "+st.mech+" with an initial response was answered with a challenge instead of -ERR ("+st.mech+" is server-first; the client also erred)", "")
	}
	if !exact {
		s.violate(at, "POP3-SASL-006", event.Server, off, "continuation is not \"+\" followed by exactly one SP", "")
		return
	}
	data, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		s.violate(at, "POP3-SASL-006", event.Server, off, "challenge text is not base64: "+quoteShort([]byte(text)), "")
		return
	}
	switch st.mech {
	case "PLAIN":
		if len(data) != 0 && st.clientMsgs == 0 {
			s.violate(at, "POP3-SASL-006", event.Server, off, "PLAIN challenge must be empty before the client's message", "")
		}
	case "CRAM-MD5":
		if st.challenges == 1 && !(len(data) > 2 && data[0] == '<' && data[len(data)-1] == '>' && bytes.IndexByte(data, '@') > 0) {
			s.violate(at, "POP3-SASL-006", event.Server, off, "CRAM-MD5 challenge does not decode to a <…@…> msg-id", "")
		}
	case "OAUTHBEARER", "XOAUTH2":
		if len(data) > 0 && json.Valid(data) {
			st.oauthErr = true
		}
	}
}

// authFinished judges the final reply of an AUTH exchange.
func (s *Session) authFinished(at time.Time, x *exchange, ok bool, off int64) {
	st := x.sasl
	if st == nil {
		return
	}
	if ok && st.lastBad {
		s.violate(at, "POP3-SASL-005", event.Server, off, "server answered +OK after an invalid SASL line or a cancel", "")
	}
	if ok && st.ir && st.serverFirst && !st.ir007 {
		st.ir007 = true
		s.violate(at, "POP3-SASL-007", event.Server, off, "AUTH "+st.mech+" with an initial response was accepted ("+st.mech+" is server-first; it must be rejected)", "")
	}
	if ok && (layerMechs[st.mech] || !knownMechs[st.mech]) {
		s.layerWatch = true
	}
}

// cleartextCredentials: AUTH-001, a reusable password sent without TLS.
func (s *Session) cleartextCredentials(at time.Time, how string, off int64) {
	d := how + " sends a reusable password without TLS"
	switch {
	case s.stlsRefused:
		d += " (downgrade: STLS was refused just before)"
	case s.stlsListed:
		d += " (downgrade: the server had advertised STLS)"
	}
	s.violate(at, "POP3-AUTH-001", event.Client, off, d, "")
}
