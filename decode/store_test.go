package decode_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/popscope/popscope/decode"
	"github.com/popscope/popscope/decode/transcript"
	"github.com/popscope/popscope/event"
)

// Scope X rules (docs/pop3-rules.md §2.7): GREET-003, UIDL-004, SESS-001,
// SESS-002, SESS-003, EXT-001, EXT-002, EXT-003 need what earlier
// sessions of the same mailbox showed. A storeCase is a sequence of
// sessions sharing one decode.Store, each with its own expectations.
//
// Session i starts at t0 + start; its steps happen exactly at their
// "# at:" times (relative to its start), without the playbook's 1 ms
// spread, so that the gaps between logins are what the case says. The
// steps of all sessions are merged by time (ties keep session order) and
// each session is finished 1 ms after its last step, so sessions can
// overlap (SESS-003). Every case runs step by step, with every step of
// every session split at every offset, byte by byte and with merged
// writes; each session's events must be the same in every mode.
type storeCase struct {
	name     string
	sessions []storeSession
	knownBug string
}

type storeSession struct {
	// opt: Store is set by the runner; Endpoint defaults to storeEndpoint.
	opt    decode.Options
	start  time.Duration
	script string
	want   []exp
	allow  []exp
}

const storeEndpoint = "pop.example.org:110"

// greetN is a greeting with an APOP timestamp of its own (n = 1, 2, ...):
// a server must use a new one for every connection (GREET-003).
func greetN(n int) string {
	return fmt.Sprintf("S: +OK POP3 server ready <%d.697170952@dbc.mtview.ca.us>\n", 1896+n)
}

// loginN is greeting n and an APOP login of mrose: every session of a case
// opens the same mailbox (endpoint, "mrose").
func loginN(n int) string { return greetN(n) + apopS }

func storeCases() []storeCase {
	m1 := size(msg1)
	retr1 := "C: RETR 1\n" + retrS(msg1)
	uidlAB := uidlS("1 A", "2 B")
	capaLD := capaStd("LOGIN-DELAY 300")
	abort := "# close: client\n# close: server\n"
	msg2crlf := append(append([]string(nil), msg2...), "")
	other := append(append([]string(nil), msg2...), "P.S. another message")
	return []storeCase{
		{name: "GREET-003 the same APOP timestamp in two greetings",
			sessions: []storeSession{
				{script: greetN(1) + quitS, want: []exp{greet("+OK")}},
				{start: time.Minute, script: greetN(1) + quitS,
					want: []exp{greet("+OK").ts("<1897.697170952@dbc.mtview.ca.us>"), viol("GREET-003").by(server).detail("already used in an earlier greeting of " + storeEndpoint)}},
			}},
		{name: "a fresh timestamp per connection; a timestamp seen on another endpoint (GREET-003 near-miss)",
			sessions: []storeSession{
				{script: greetN(1) + quitS, want: []exp{greet("+OK")}},
				{start: time.Minute, script: greetN(2) + quitS, want: []exp{greet("+OK")}},
				{start: 2 * time.Minute, opt: decode.Options{Endpoint: "other.example.org:110"}, script: greetN(1) + quitS, want: []exp{greet("+OK")}},
			}},

		{name: "UIDL-004 a retrieved message comes back under another unique-id",
			sessions: []storeSession{
				{script: loginN(1) + uidlAB + retr1 + quitS, want: []exp{resp("RETR", "+OK")}},
				{start: 10 * time.Minute, script: loginN(2) + uidlS("1 C", "2 B") + retr1 + quitS,
					want:  []exp{resp("UIDL", "+OK"), viol("UIDL-004").by(server).sev(event.Error).detail(`has the content of unique-id "A" seen earlier, but now its unique-id is "C"`), resp("RETR", "+OK")},
					allow: []exp{viol("EXT-003").detail("A")}},
			}},
		{name: "UIDL-004 a changed unique-id after a session that ended without QUIT",
			sessions: []storeSession{
				{script: loginN(1) + uidlAB + retr1 + abort, want: []exp{resp("RETR", "+OK"), viol("CONN-004")}},
				{start: 10 * time.Minute, script: loginN(2) + uidlS("1 C", "2 B") + retr1 + quitS,
					want:  []exp{viol("UIDL-004").sev(event.Error)},
					allow: []exp{viol("EXT-003")}},
			}},
		{name: "UIDL-004 a unique-id reused for different content",
			sessions: []storeSession{
				{script: loginN(1) + uidlAB + retr1 + quitS, want: []exp{resp("RETR", "+OK")}},
				{start: 10 * time.Minute, script: loginN(2) + uidlAB + "C: RETR 1\n" + retrS(other) + quitS,
					want: []exp{viol("UIDL-004").by(server).sev(event.Warning).detail(fmt.Sprintf(`unique-id "A" now denotes different content (%d octets, was %d): reuse`, size(other), m1))}},
			}},
		{name: "same unique-ids and content; content 2 octets longer (UIDL-004 near-miss)",
			sessions: []storeSession{
				{script: loginN(1) + uidlAB + retr1 + "C: RETR 2\n" + retrS(msg2) + quitS, want: []exp{resp("RETR", "+OK"), resp("RETR", "+OK")}},
				{start: 10 * time.Minute, script: loginN(2) + uidlAB + retr1 + "C: RETR 2\n" + retrS(msg2crlf) + quitS,
					want: []exp{resp("RETR", "+OK").body(m1, len(msg1)), resp("RETR", "+OK").body(size(msg2)+2, len(msg2)+1)}},
			}},

		{name: "SESS-001 a message deleted with QUIT +OK is listed again",
			sessions: []storeSession{
				{script: loginN(1) + uidlAB + "C: DELE 1\nS: +OK\n" + quitS, want: []exp{resp("DELE", "+OK"), state(decode.Transaction, decode.Update)}},
				{start: time.Minute, script: loginN(2) + uidlAB + quitS,
					want: []exp{viol("SESS-001").by(server).sev(event.Error).detail("still listed: A"), resp("UIDL", "+OK")}},
			}},
		{name: "QUIT -ERR after DELE; a deleted message gone after QUIT +OK (SESS-001 near-miss)",
			sessions: []storeSession{
				{script: loginN(1) + uidlAB + "C: DELE 1\nS: +OK\nC: QUIT\nS: -ERR some deleted messages not removed\n" + closeBoth, want: []exp{resp("QUIT", "-ERR")}},
				{start: time.Minute, script: loginN(2) + uidlAB + "C: DELE 1\nS: +OK\n" + quitS, want: []exp{resp("UIDL", "+OK"), resp("QUIT", "+OK")}},
				{start: 2 * time.Minute, script: loginN(3) + uidlS("1 B") + quitS, want: []exp{resp("UIDL", "+OK")}},
			}},

		{name: "SESS-002 messages marked deleted in an aborted session are gone",
			sessions: []storeSession{
				{script: loginN(1) + uidlAB + "C: DELE 1\nS: +OK\n" + abort, want: []exp{viol("CONN-004").detail("DELE marks are void")}},
				{start: time.Minute, script: loginN(2) + uidlS("1 B") + quitS,
					want: []exp{viol("SESS-002").by(server).sev(event.Error).detail("ended without UPDATE, yet gone now: A"), resp("UIDL", "+OK")}},
			}},
		{name: "DELE marks of an aborted session are void; EXPIRE 0 and retrieved (SESS-002 near-miss)",
			sessions: []storeSession{
				{script: loginN(1) + uidlAB + "C: DELE 1\nS: +OK\n" + abort, want: []exp{viol("CONN-004")}},
				{start: time.Minute, script: loginN(2) + uidlAB + quitS, want: []exp{resp("UIDL", "+OK")}},
				{start: 2 * time.Minute, script: greetN(3) + capaStd("EXPIRE 0") + apopS + uidlAB + retr1 + "C: DELE 1\nS: +OK\n" + abort, want: []exp{viol("CONN-004")}},
				{start: 3 * time.Minute, script: loginN(4) + uidlS("1 B") + quitS, want: []exp{resp("UIDL", "+OK")}},
			}},

		{name: "SESS-003 two sessions of one mailbox in TRANSACTION at once",
			sessions: []storeSession{
				{script: loginN(1) + "# at: 20s\n" + quitS, want: []exp{state(decode.AuthReady, decode.Transaction), resp("QUIT", "+OK")}},
				{start: 10 * time.Second, script: loginN(2) + quitS,
					want: []exp{resp("APOP", "+OK"), viol("SESS-003").by(server).sev(event.Info).detail("1 other session(s) for mrose are in TRANSACTION")}},
			}},
		{name: "SESS-003 [IN-USE] while no other session is open",
			sessions: []storeSession{
				{script: loginN(1) + quitS, want: []exp{resp("QUIT", "+OK")}},
				{start: time.Minute, script: greetN(2) + apopCmd + "S: -ERR [IN-USE] Do you have another POP session running?\n" + quitS,
					want: []exp{resp("APOP", "-ERR"), viol("SESS-003").by(server).detail("stale lock")}},
			}},
		{name: "[IN-USE] while another session is open; sessions one after the other (SESS-003 near-miss)",
			sessions: []storeSession{
				{script: loginN(1) + "# at: 20s\n" + quitS, want: []exp{resp("QUIT", "+OK")}},
				{start: 10 * time.Second, script: greetN(2) + apopCmd + "S: -ERR [IN-USE] Do you have another POP session running?\n" + quitS,
					want: []exp{resp("APOP", "-ERR").code("IN-USE")}},
				{start: 30 * time.Second, script: loginN(3) + quitS, want: []exp{resp("APOP", "+OK")}},
			}},

		{name: "EXT-001 and EXT-002 a second login 60 s after the first despite LOGIN-DELAY 300",
			sessions: []storeSession{
				{script: greetN(1) + capaLD + apopS + quitS, want: []exp{resp("APOP", "+OK")}},
				{start: time.Minute, script: loginN(2) + quitS,
					want: []exp{resp("APOP", "+OK"), viol("EXT-002").by(client).sev(event.Warning).detail("1m0s after the previous successful one; LOGIN-DELAY is 300 s"),
						viol("EXT-001").by(server).sev(event.Warning).detail("LOGIN-DELAY 300"), state(decode.AuthReady, decode.Transaction)}},
			}},
		{name: "EXT-002 login attempt refused with [LOGIN-DELAY] (EXT-001 near-miss)",
			sessions: []storeSession{
				{script: greetN(1) + capaLD + apopS + quitS, want: []exp{resp("APOP", "+OK")}},
				{start: time.Minute, script: greetN(2) + apopCmd + "S: -ERR [LOGIN-DELAY] wait 5 minutes\n" + quitS,
					want: []exp{resp("APOP", "-ERR"), viol("EXT-002").by(client).detail("the server refused it with [LOGIN-DELAY]")}},
			}},
		{name: "LOGIN-DELAY respected; no LOGIN-DELAY advertised (EXT-001 near-miss, EXT-002 near-miss)",
			sessions: []storeSession{
				{script: greetN(1) + capaLD + apopS + quitS, want: []exp{resp("APOP", "+OK")}},
				{start: 301 * time.Second, script: loginN(2) + quitS, want: []exp{resp("APOP", "+OK")}},
				{start: 302 * time.Second, opt: decode.Options{Endpoint: "other.example.org:110"}, script: greetN(3) + capaStd() + apopS + quitS, want: []exp{resp("APOP", "+OK")}},
				{start: 303 * time.Second, opt: decode.Options{Endpoint: "other.example.org:110"}, script: loginN(4) + quitS, want: []exp{resp("APOP", "+OK")}},
			}},
		{name: "the TRANSACTION value of LOGIN-DELAY is the one in force (EXT-002 near-miss)",
			sessions: []storeSession{
				{script: greetN(1) + capaStd("LOGIN-DELAY 900 USER") + apopS + capaStd("LOGIN-DELAY 30") + quitS, want: []exp{resp("CAPA", "+OK"), resp("QUIT", "+OK")}},
				{start: time.Minute, script: greetN(2) + capaStd("LOGIN-DELAY 900 USER") + apopS + quitS, want: []exp{resp("APOP", "+OK")}},
			}},

		{name: "EXT-003 a message vanishes between sessions without DELE",
			sessions: []storeSession{
				{script: loginN(1) + uidlAB + quitS, want: []exp{resp("UIDL", "+OK")}},
				{start: time.Minute, script: loginN(2) + uidlS("1 B") + quitS,
					want: []exp{viol("EXT-003").by(server).sev(event.Info).detail("gone since the previous session without DELE+QUIT: A (no EXPIRE advertised"), resp("UIDL", "+OK")}},
			}},
		{name: "EXT-003 detail: EXPIRE NEVER was advertised",
			sessions: []storeSession{
				{script: greetN(1) + capaStd("EXPIRE NEVER") + apopS + uidlAB + quitS, want: []exp{resp("UIDL", "+OK")}},
				{start: time.Minute, script: loginN(2) + uidlS("1 B") + quitS, want: []exp{viol("EXT-003").detail("EXPIRE NEVER was advertised")}},
			}},
		// The catalog lists "retrieved with RETR and EXPIRE 0 advertised" as
		// one of EXT-003's detail cases (§4.14; §5.5 expects EXT-003 on
		// Gmail): it is reported, as info, saying that it is allowed.
		{name: "EXT-003 detail: retrieved with EXPIRE 0 advertised is allowed",
			sessions: []storeSession{
				{script: greetN(1) + capaStd("EXPIRE 0") + apopS + uidlAB + retr1 + quitS, want: []exp{resp("RETR", "+OK")}},
				{start: time.Minute, script: loginN(2) + uidlS("1 B") + quitS, want: []exp{viol("EXT-003").sev(event.Info).detail("retrieved with EXPIRE 0 advertised: allowed")}},
			}},
		{name: "deleted with QUIT +OK, or still there (EXT-003 near-miss)",
			sessions: []storeSession{
				{script: loginN(1) + uidlAB + "C: DELE 1\nS: +OK\n" + quitS, want: []exp{resp("DELE", "+OK")}},
				{start: time.Minute, script: loginN(2) + uidlS("1 B") + quitS, want: []exp{resp("UIDL", "+OK")}},
				{start: 2 * time.Minute, script: loginN(3) + uidlS("1 B") + quitS, want: []exp{resp("UIDL", "+OK")}},
			}},
	}
}

type storeAction struct {
	at   time.Time
	i    int
	step *transcript.Step // nil: Finish
}

// runStore plays the sessions of sc (steps[i] for session i) against one
// fresh Store and returns each session's events.
func runStore(sc storeCase, steps [][]transcript.Step) [][]*event.Event {
	store := decode.NewStore(0, 0, 0)
	evs := make([][]*event.Event, len(sc.sessions))
	sess := make([]*decode.Session, len(sc.sessions))
	var acts []storeAction
	for i, ss := range sc.sessions {
		opt := ss.opt
		opt.Store = store
		if opt.Endpoint == "" {
			opt.Endpoint = storeEndpoint
		}
		opt.Session = storeSessionName(i)
		sess[i] = decode.New(opt, func(e *event.Event) { evs[i] = append(evs[i], e) })
		base := t0.Add(ss.start)
		end := base
		for j := range steps[i] {
			at := base.Add(steps[i][j].At)
			acts = append(acts, storeAction{at: at, i: i, step: &steps[i][j]})
			end = at
		}
		acts = append(acts, storeAction{at: end.Add(time.Millisecond), i: i})
	}
	sort.SliceStable(acts, func(a, b int) bool { return acts[a].at.Before(acts[b].at) })
	for _, a := range acts {
		s := sess[a.i]
		switch {
		case a.step == nil:
			s.Finish(a.at)
		case a.step.Close:
			s.Close(a.step.Side, a.at)
		default:
			s.Feed(a.step.Side, a.at, a.step.Data)
		}
	}
	return evs
}

func storeSessionName(i int) string { return fmt.Sprintf("s%d", i+1) }

// storeProblems checks a case in every feeding mode, like playProblems.
func storeProblems(sc storeCase, steps [][]transcript.Step) []string {
	var problems []string
	ref := runStore(sc, steps)
	for i, ss := range sc.sessions {
		name := storeSessionName(i)
		for _, p := range wellFormed(ref[i], name) {
			problems = append(problems, name+": malformed event stream: "+p)
		}
		if errs := matchEvents(ss.want, ss.allow, ref[i]); len(errs) > 0 {
			problems = append(problems, fmt.Sprintf("%s: %s\nevents:\n%s", name, strings.Join(errs, "\n"), dump(ref[i])))
		}
	}
	differs := func(mode string, st [][]transcript.Step) bool {
		got := runStore(sc, st)
		for i := range sc.sessions {
			if d := diffKeys(keys(ref[i]), keys(got[i])); d != "" {
				name := storeSessionName(i)
				problems = append(problems, fmt.Sprintf("%s, %s: events differ from the step-by-step run: %s\nstep-by-step:\n%s%s:\n%s", mode, name, d, dump(ref[i]), mode, dump(got[i])))
				return true
			}
		}
		return false
	}
	each := func(f func([]transcript.Step) []transcript.Step) [][]transcript.Step {
		out := make([][]transcript.Step, len(steps))
		for i := range steps {
			out[i] = f(steps[i])
		}
		return out
	}
	if differs("byte by byte", each(bytewise)) || differs("merged writes", each(coalesceAt)) {
		return problems
	}
	for i := range steps {
		for j, st := range steps[i] {
			for _, k := range splitOffsets(len(st.Data)) {
				mod := append([][]transcript.Step(nil), steps...)
				mod[i] = splitStep(steps[i], j, k)
				if differs(fmt.Sprintf("%s step %d (%s) split at %d", storeSessionName(i), j, st, k), mod) {
					return problems
				}
			}
		}
	}
	return problems
}

func TestStoreCases(t *testing.T) {
	seen := map[string]bool{}
	for _, sc := range storeCases() {
		if seen[sc.name] {
			t.Fatalf("duplicate case name %q", sc.name)
		}
		seen[sc.name] = true
		t.Run(sc.name, func(t *testing.T) {
			steps := make([][]transcript.Step, len(sc.sessions))
			for i, ss := range sc.sessions {
				var err error
				if steps[i], err = transcript.ParseString(ss.script); err != nil {
					t.Fatalf("session %d: bad script: %v", i+1, err)
				}
			}
			problems := storeProblems(sc, steps)
			switch {
			case len(problems) > 0 && sc.knownBug != "":
				t.Skipf("known bug: %s\n%s", sc.knownBug, cutText(problems[0], 2000))
			case len(problems) > 0:
				t.Error(strings.Join(problems, "\n"))
			case sc.knownBug != "":
				t.Errorf("knownBug %q is fixed: the case passes; remove the marker", sc.knownBug)
			}
		})
	}
}

// TestStoreWithoutIdentity: with the identity unknown (GSSAPI, EXTERNAL)
// the X rules are skipped (§2.7): a listing that would be SESS-001 with a
// known user stays silent.
func TestStoreWithoutIdentity(t *testing.T) {
	sess := func(n int) string {
		return greetN(n) + capaOf("SASL EXTERNAL", "UIDL") + "C: AUTH EXTERNAL =\nS: +OK\n" + uidlAB() + "C: DELE 1\nS: +OK\n" + quitS
	}
	sc := storeCase{name: "no identity", sessions: []storeSession{
		{script: sess(1), want: []exp{resp("AUTH", "+OK"), resp("DELE", "+OK")}},
		{start: time.Minute, script: sess(2), want: []exp{resp("AUTH", "+OK"), resp("UIDL", "+OK")}},
	}}
	steps := make([][]transcript.Step, len(sc.sessions))
	for i, ss := range sc.sessions {
		steps[i] = transcript.MustParse(ss.script)
	}
	if problems := storeProblems(sc, steps); len(problems) > 0 {
		t.Error(strings.Join(problems, "\n"))
	}
}

func uidlAB() string { return uidlS("1 A", "2 B") }
