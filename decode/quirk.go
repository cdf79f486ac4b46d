package decode

import (
	"strings"
	"time"

	"github.com/popscope/popscope/event"
)

// Server identification (POP3-QUIRK-001) and the rules each known server
// trips by design (docs/pop3-rules.md §5). Violations of those rules get
// "known quirk of <server>" appended so that views can group or mute them;
// severities do not change.

type serverKind struct {
	name      string
	greeting  []string // substrings of the greeting
	impl      []string // substrings of IMPLEMENTATION
	knownRule map[string]bool
}

func rules(ids ...string) map[string]bool {
	m := map[string]bool{}
	for _, id := range ids {
		m["POP3-"+id] = true
	}
	return m
}

var knownServers = []serverKind{
	{name: "Dovecot", greeting: []string{"Dovecot"}, impl: []string{"Dovecot"},
		knownRule: rules("CAPA-001", "CAPA-006", "LEGACY-002", "SASL-007", "RESP-004", "STATE-004", "LINE-001",
			"LINE-002", "SYNTAX-003", "SYNTAX-006", "TIME-002", "DROP-007", "SESS-003", "UIDL-001", "UIDL-002", "LINE-009", "DROP-012")},
	{name: "Gmail", greeting: []string{"Gpop ready"}, knownRule: rules("CAPA-006", "EXT-003")},
	{name: "Microsoft Exchange", greeting: []string{"Microsoft Exchange"}, knownRule: rules("SASL-003", "DROP-006", "SYNTAX-003", "SYNTAX-004", "MULTI-001")},
	{name: "Yahoo", greeting: []string{"popgate"}, impl: []string{"popgate"}},
	{name: "Cyrus", impl: []string{"Cyrus"}, knownRule: rules("CAPA-001", "DROP-005", "SESS-003")},
	{name: "Courier", greeting: []string{"Hello there."}, impl: []string{"Courier"},
		knownRule: rules("TIME-001", "TIME-002", "STATE-002", "EXT-005", "DROP-006", "LINE-001", "DROP-007", "TLS-003", "TLS-004")},
	{name: "Stalwart", impl: []string{"Stalwart"}, knownRule: rules("DROP-010", "DROP-011", "STATE-002", "DROP-007")},
	{name: "qpopper", greeting: []string{"Qpopper", "QPOP"}, impl: []string{"Qpopper"}, knownRule: rules("LEGACY-001", "LEGACY-002", "TIME-001")},
}

// identify names the server from greeting text or IMPLEMENTATION; it
// reports QUIRK-001 once per session.
func (s *Session) identify(at time.Time, text string, impl bool) {
	if s.server != nil {
		return
	}
	for i := range knownServers {
		k := &knownServers[i]
		pats := k.greeting
		if impl {
			pats = k.impl
		}
		for _, p := range pats {
			if strings.Contains(text, p) {
				s.server = k
				how := "greeting"
				if impl {
					how = "IMPLEMENTATION capability"
				}
				s.violate(at, "POP3-QUIRK-001", event.Server, 0, "server identified as "+k.name+" from its "+how, "")
				return
			}
		}
	}
}

// quirkNote returns the detail suffix for rule if the identified server
// is known to trip it.
func (s *Session) quirkNote(rule string) string {
	if s.server != nil && s.server.knownRule[rule] {
		return " (known quirk of " + s.server.name + ")"
	}
	return ""
}
