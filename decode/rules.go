package decode

import (
	"sort"
	"strings"

	"github.com/popscope/popscope/event"
)

// Rule is one entry of the POP3 rules catalog (docs/pop3-rules.md §4).
type Rule struct {
	ID        string         // stable ID, e.g. "POP3-MULTI-002"
	Severity  event.Severity // default severity; some sub-cases emit another
	By        string         // "client", "server" or "either"
	Scope     string         // L line, S session, X cross-session, T timing
	Ref       string         // RFC sections
	Summary   string         // one-line explanation
	Detection string         // full detection text from the catalog
	Example   string         // example from the catalog
}

var ruleIndex = func() map[string]*Rule {
	m := make(map[string]*Rule, len(catalog))
	for i := range catalog {
		m[catalog[i].ID] = &catalog[i]
	}
	return m
}()

// LookupRule returns the catalog entry for id (case-insensitive; the
// "POP3-" prefix may be omitted), or nil.
func LookupRule(id string) *Rule {
	id = strings.ToUpper(strings.TrimSpace(id))
	if !strings.HasPrefix(id, "POP3-") {
		id = "POP3-" + id
	}
	return ruleIndex[id]
}

// Rules returns the whole catalog in ID order. The slice is a copy.
func Rules() []Rule {
	out := append([]Rule(nil), catalog...)
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
