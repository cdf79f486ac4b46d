package decode

import (
	"strings"
	"time"

	"github.com/popscope/popscope/decode/wire"
	"github.com/popscope/popscope/event"
)

// Extended response codes (RFC 2449 §8, RFC 3206, RFC 6856 §5;
// docs/pop3-rules.md §4.13).

// registeredCodes are the top levels of registered response codes.
var registeredCodes = map[string]bool{"LOGIN-DELAY": true, "IN-USE": true, "SYS": true, "AUTH": true, "UTF8": true}

// codeReplies lists the commands whose -ERR may carry a code.
var codeReplies = map[string]map[string]bool{
	"IN-USE":      {"AUTH": true, "APOP": true, "PASS": true},
	"LOGIN-DELAY": {"AUTH": true, "USER": true, "PASS": true, "APOP": true},
	"AUTH":        {"AUTH": true, "USER": true, "PASS": true, "APOP": true},
	"UTF8":        {"LIST": true, "TOP": true, "RETR": true},
}

// respChecks judges the response code of a status line answering verb
// ("" for the greeting).
func (s *Session) respChecks(at time.Time, x *exchange, st wire.Status, off int64) {
	if !st.HasBr {
		return
	}
	respCodes := s.caps.has("RESP-CODES")
	if !st.CodeOK {
		if respCodes {
			s.violate(at, "POP3-RESP-002", event.Server, off, "RESP-CODES is advertised but the text starts with a malformed code: "+quoteShort([]byte(st.Text)), "")
		}
		return
	}
	top, _, _ := strings.Cut(st.Code, "/")
	top = strings.ToUpper(top)
	verb := ""
	if x != nil {
		verb = x.verb
	}
	// Without a CAPA reply (never asked) nothing is known about RESP-CODES
	// or AUTH-RESP-CODE: only a failed CAPA says the server lacks them.
	capsKnown := s.caps != nil || s.capaFailed
	switch {
	case !registeredCodes[top]:
		s.violate(at, "POP3-RESP-001", event.Server, off, "response code ["+st.Code+"] is not registered", "")
	case !respCodes && capsKnown:
		why := "RESP-CODES was not in CAPA"
		if s.caps == nil {
			why = "CAPA is not supported"
		}
		s.violate(at, "POP3-RESP-001", event.Server, off, "response code ["+st.Code+"] although "+why, "")
	}
	if !registeredCodes[top] {
		return
	}
	if top == "SYS" {
		if st.Indicator == wire.OK {
			s.violate(at, "POP3-RESP-003", event.Server, off, "response code ["+st.Code+"] on +OK (codes belong on -ERR)", "")
		}
	} else if allowed := codeReplies[top]; st.Indicator == wire.OK || !allowed[verb] {
		where := "-ERR to " + orGreeting(verb)
		if st.Indicator == wire.OK {
			where = "+OK"
		}
		s.violate(at, "POP3-RESP-003", event.Server, off, "response code ["+st.Code+"] on "+where, "")
	} else if verb == "USER" && (top == "LOGIN-DELAY" || top == "AUTH") {
		s.violate(at, "POP3-RESP-003", event.Server, off, "["+top+"] on a USER reply reveals that the user exists (strongly discouraged)", "")
	}
	if top == "AUTH" {
		switch {
		case !s.caps.has("AUTH-RESP-CODE") && capsKnown:
			s.violate(at, "POP3-RESP-004", event.Server, off, "[AUTH] used but AUTH-RESP-CODE is not in CAPA", "")
		case x != nil && nonCredentialFailure(x, st.Text):
			s.violate(at, "POP3-RESP-004", event.Server, off, "[AUTH] marks a failure that is not about credentials: "+quoteShort([]byte(st.Text)), "")
		}
	}
}

func orGreeting(v string) string {
	if v == "" {
		return "the greeting"
	}
	return v
}

// nonCredentialFailure guesses whether an -ERR to an auth command is a
// protocol or mechanism error rather than bad credentials.
func nonCredentialFailure(x *exchange, text string) bool {
	if st := x.sasl; st != nil && (st.lastBad || st.cancelled) {
		return true
	}
	t := strings.ToLower(text)
	for _, w := range []string{"mechanism", "base64", "syntax", "aborted", "cancel", "protocol"} {
		if strings.Contains(t, w) {
			return true
		}
	}
	return false
}
