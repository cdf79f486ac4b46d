package decode_test

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/popscope/popscope/decode"
	"github.com/popscope/popscope/decode/transcript"
	"github.com/popscope/popscope/event"
)

// Rule cases: for every catalog rule that had no playbook case, a session
// that triggers it (named "<RULE> ...") and at least one look-alike that
// must not (named "... (<RULE> near-miss)"), following the Detection and
// Near-miss text of docs/pop3-rules.md §4. Scope X rules (several
// sessions sharing a Store) are in store_test.go.
//
// A ruleCase is a playCase with three optional extras, for what a bare
// transcript cannot say:
//
//   - hooks: "# hook: NAME" comment lines in the script call hooks[NAME]
//     on the session just before the next step (or at the end), at that
//     step's time: TLS handshakes reported by the proxy (StartTLS,
//     TLSFailed) and its own findings (Report).
//   - tick: Session.Tick is called at every multiple of tick after t0
//     that the replay passes, as the proxy does every few seconds.
//   - exact: steps happen exactly at their "# at:" times instead of one
//     millisecond apart, so that durations in details do not depend on
//     how the bytes were chunked.
//
// Cases without extras run through playProblems like the playbook; the
// others through ruleProblems, which applies the same feeding modes
// (step by step, every split, byte by byte, merged writes).
type ruleCase struct {
	playCase
	hooks map[string]func(s *decode.Session, at time.Time)
	tick  time.Duration
	exact bool
}

const (
	// RFC 2195 CRAM-MD5 challenge and response.
	cramCh   = "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+"
	cramResp = "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw"
	// PLAIN message "\0mrose\0tanstaaf".
	plainIR = "AG1yb3NlAHRhbnN0YWFm"
	// The first octets of a ClientHello and a ServerHello.
	clientHelloS = `C: \x16\x03\x01\x00\xc8\x01\x00\x00\xc4\x03\x03` + "\n"
	serverHelloS = `S: \x16\x03\x03\x00\x7a\x02\x00\x00\x76` + "\n"
	apopCmd      = "C: APOP mrose c4c9334bac560ecc979e58001b3e22fb\n"
	closeBoth    = "# close: server\n# close: client\n"
)

// capaOf is a CAPA exchange announcing exactly lines ("" is an empty
// line).
func capaOf(lines ...string) string {
	var b strings.Builder
	b.WriteString("C: CAPA\nS: +OK Capability list follows\n")
	for _, l := range lines {
		if l == "" {
			b.WriteString("S:\n")
		} else {
			b.WriteString("S: " + l + "\n")
		}
	}
	b.WriteString("S: .\n")
	return b.String()
}

// capaStd is capaS with extra lines.
func capaStd(extra ...string) string {
	return capaOf(append([]string{"TOP", "UIDL", "RESP-CODES", "PIPELINING", "SASL CRAM-MD5"}, extra...)...)
}

// uidlS is a UIDL exchange listing "n uid" lines.
func uidlS(lines ...string) string {
	return "C: UIDL\nS: +OK\nS: " + strings.Join(lines, "\nS: ") + "\nS: .\n"
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// xoauth2 is an XOAUTH2 client message whose base64 form is n octets (n
// a multiple of 4).
func xoauth2(n int) string {
	head, tail := "user=mrose@example.org\x01auth=Bearer ", "\x01\x01"
	raw := n / 4 * 3
	return b64(head + strings.Repeat("y", raw-len(head)-len(tail)) + tail)
}

func startTLS(leg event.Side, version string, offered ...string) func(*decode.Session, time.Time) {
	return func(s *decode.Session, at time.Time) {
		s.StartTLS(at, &event.TLSInfo{Leg: leg, Mode: "stls", Version: version, Offered: offered})
	}
}

func tlsFailed(leg event.Side, msg string, plaintextBy event.Side) func(*decode.Session, time.Time) {
	return func(s *decode.Session, at time.Time) {
		s.TLSFailed(at, &event.TLSInfo{Leg: leg, Mode: "implicit"}, errors.New(msg), plaintextBy)
	}
}

// bothTLS13 are the hooks of a successful STLS with popscope terminating
// TLS on both legs.
var bothTLS13 = map[string]func(*decode.Session, time.Time){
	"client": startTLS(client, "TLS 1.3"),
	"server": startTLS(server, "TLS 1.3"),
}

const tlsHooks = "# hook: client\n# hook: server\n"

func ruleCases() []ruleCase {
	return concatRuleCases(capaRuleCases(), dropRuleCases(), uidlRuleCases(), respRuleCases(), saslRuleCases(),
		syntaxRuleCases(), timeRuleCases(), tlsRuleCases(), extRuleCases(), gapRuleCases())
}

func concatRuleCases(lists ...[]ruleCase) []ruleCase {
	var out []ruleCase
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// pc shortens the table entries of cases without extras.
func pc(c playCase) ruleCase { return ruleCase{playCase: c} }

func capaRuleCases() []ruleCase {
	return []ruleCase{
		pc(playCase{name: "CAPA-002 malformed capability arguments",
			script: greetS + capaOf("TOP", "LOGIN-DELAY soon", "SASL", "UIDL x", "EXPIRE -1", "UTF8 ALL", "SASL CRAM-MD5 X.Y") + quitS,
			want: []exp{viol("CAPA-002").by(server).detail("LOGIN-DELAY soon"), viol("CAPA-002").detail("no mechanisms"),
				viol("CAPA-002").detail("takes no argument"), viol("CAPA-002").detail("EXPIRE -1"), viol("CAPA-002").detail("only argument allowed is USER"),
				resp("CAPA", "+OK")},
			allow: []exp{viol("SYNTAX-009").sev(event.Info).detail("SASL listed twice"), viol("CAPA-002").detail("X.Y")}}),
		pc(playCase{name: "CAPA-002 bad SASL mechanism name",
			script: greetS + capaOf("SASL CRAM-MD5 X.Y") + quitS,
			want:   []exp{viol("CAPA-002").by(server).sev(event.Warning).detail(`"X.Y"`), resp("CAPA", "+OK")}}),
		pc(playCase{name: "CAPA-002 USER token on EXPIRE after login",
			script: loggedIn + capaOf("TOP", "EXPIRE 30 USER") + quitS,
			want:   []exp{viol("CAPA-002").by(server).detail("only allowed in AUTHORIZATION"), resp("CAPA", "+OK")}}),
		pc(playCase{name: "well-formed capability arguments (CAPA-002 near-miss)",
			script: greetS + capaOf("TOP", "LOGIN-DELAY 900 USER", "EXPIRE NEVER", "UTF8 USER", "SASL CRAM-MD5 SCRAM-SHA-256 GSSAPI X_Y",
				"IMPLEMENTATION Example-POP3 1.2.3", "PIPELINING") + apopS + capaOf("TOP", "LOGIN-DELAY 0", "EXPIRE NEVER", "UTF8 USER",
				"SASL CRAM-MD5 SCRAM-SHA-256 GSSAPI X_Y", "IMPLEMENTATION Example-POP3 1.2.3", "PIPELINING") + quitS,
			want: []exp{resp("CAPA", "+OK"), state(decode.AuthReady, decode.Transaction), resp("CAPA", "+OK")}}),

		pc(playCase{name: "CAPA-003 EXPIRE shorter and LOGIN-DELAY longer after login",
			script: greetS + capaStd("EXPIRE 30", "LOGIN-DELAY 60") + apopS + capaStd("EXPIRE 5", "LOGIN-DELAY 120") + quitS,
			want: []exp{state(decode.AuthReady, decode.Transaction), viol("CAPA-003").by(server).detail("LOGIN-DELAY 120 after login exceeds 60"),
				viol("CAPA-003").by(server).detail("EXPIRE 5 after login is shorter than 30"), resp("CAPA", "+OK")}}),
		pc(playCase{name: "CAPA-003 EXPIRE NEVER before login, 30 after",
			script: greetS + capaStd("EXPIRE NEVER") + apopS + capaStd("EXPIRE 30") + quitS,
			want:   []exp{viol("CAPA-003").detail("EXPIRE 30 after login is shorter than NEVER")}}),
		pc(playCase{name: "LOGIN-DELAY shrinks and EXPIRE grows after login (CAPA-003 near-miss)",
			script: greetS + capaStd("EXPIRE 30 USER", "LOGIN-DELAY 900 USER") + apopS + capaStd("EXPIRE NEVER", "LOGIN-DELAY 300") + quitS,
			want:   []exp{state(decode.AuthReady, decode.Transaction), resp("CAPA", "+OK"), resp("QUIT", "+OK")}}),

		pc(playCase{name: "CAPA-005 CAPA -ERR, STLS +OK",
			script: greetS + "C: CAPA\nS: -ERR Unknown command\nC: STLS\nS: +OK Begin TLS negotiation now.\n" + clientHelloS + serverHelloS,
			want:   []exp{resp("CAPA", "-ERR"), resp("STLS", "+OK"), viol("CAPA-005").by(server).detail("STLS accepted although CAPA"), opaque()}}),
		pc(playCase{name: "CAPA-005 STLS listed, later CAPA -ERR",
			script: greetS + capaOf("TOP", "STLS") + "C: CAPA\nS: -ERR Unknown command\n" + quitS,
			want:   []exp{resp("CAPA", "+OK"), resp("CAPA", "-ERR"), viol("CAPA-005").by(server).detail("CAPA answered -ERR")},
			allow:  []exp{viol("CAPA-001").maybe()}}),
		pc(playCase{name: "CAPA -ERR and STLS -ERR: no STLS either (CAPA-005 near-miss)",
			script: greetS + "C: CAPA\nS: -ERR Unknown command\nC: STLS\nS: -ERR Unknown command\n" + apopS + quitS,
			want:   []exp{resp("CAPA", "-ERR"), resp("STLS", "-ERR"), state(decode.AuthReady, decode.Transaction)}}),
		pc(playCase{name: "CAPA +OK and STLS +OK (CAPA-005 near-miss)",
			script: greetS + capaOf("TOP", "STLS") + "C: STLS\nS: +OK Begin TLS negotiation now.\n" + clientHelloS + serverHelloS,
			want:   []exp{resp("STLS", "+OK"), opaque()}}),
	}
}

func dropRuleCases() []ruleCase {
	m1, m2 := size(msg1), size(msg2)
	stat2 := statS
	// list2 is LIST after DELE 1 showing only message 2.
	list2 := fmt.Sprintf("C: LIST\nS: +OK\nS: 2 %d\nS: .\n", m2)
	uidl12 := uidlS("1 whqtswO00WBw418f9t5JxYwZ", "2 QhdPYR:00WBw1Ph7x7")
	return []ruleCase{
		pc(playCase{name: "DROP-001 RETR beyond the maildrop answered +OK",
			script: loggedIn + stat2 + "C: RETR 3\nS: +OK\n" + bodyS(msg2) + quitS,
			want:   []exp{resp("STAT", "+OK"), viol("DROP-001").by(server).detail("RETR 3 but the maildrop has 2"), resp("RETR", "+OK")}}),
		pc(playCase{name: "DROP-001 DELE beyond the maildrop answered +OK",
			script: loggedIn + listS + "C: DELE 3\nS: +OK message 3 deleted\n" + quitS,
			want:   []exp{viol("DROP-001").by(server).detail("DELE 3"), resp("DELE", "+OK")}}),
		pc(playCase{name: "DROP-001 RETR 0 answered +OK",
			script: loggedIn + "C: RETR 0\nS: +OK\n" + bodyS(msg2) + quitS,
			want:   []exp{viol("SYNTAX-005").by(client), viol("SYNTAX-006").by(server), viol("DROP-001").by(server).detail("RETR 0"), resp("RETR", "+OK")}}),
		pc(playCase{name: "RETR beyond the maildrop refused (DROP-001 near-miss)",
			script: loggedIn + stat2 + "C: RETR 3\nS: -ERR no such message\nC: RETR 2\n" + retrS(msg2) + quitS,
			want:   []exp{resp("RETR", "-ERR"), resp("RETR", "+OK")}}),
		pc(playCase{name: "RETR 3 +OK while the message count is unknown (DROP-001 near-miss)",
			script: loggedIn + "C: RETR 3\nS: +OK\n" + bodyS(msg2) + quitS,
			want:   []exp{resp("RETR", "+OK")}}),

		pc(playCase{name: "DROP-002 RETR of a deleted message answered +OK",
			script: loggedIn + "C: DELE 1\nS: +OK\nC: RETR 1\nS: +OK\n" + bodyS(msg1) + quitS,
			want:   []exp{resp("DELE", "+OK"), viol("DROP-002").by(server).detail("RETR 1, which is marked deleted"), resp("RETR", "+OK")}}),
		pc(playCase{name: "DROP-002 LIST n of a deleted message answered +OK",
			script: loggedIn + fmt.Sprintf("C: DELE 1\nS: +OK\nC: LIST 1\nS: +OK 1 %d\n", m1) + quitS,
			want:   []exp{viol("DROP-002").by(server).detail("LIST 1"), resp("LIST", "+OK")}}),
		pc(playCase{name: "DROP-002 TOP and UIDL n of a deleted message answered +OK",
			script: loggedIn + "C: DELE 2\nS: +OK\nC: TOP 2 0\nS: +OK\nS: Subject: x\nS:\nS: .\nC: UIDL 2\nS: +OK 2 QhdPYR:00WBw1Ph7x7\n" + quitS,
			want:   []exp{viol("DROP-002").detail("TOP 2"), resp("TOP", "+OK"), viol("DROP-002").detail("UIDL 2"), resp("UIDL", "+OK")}}),
		pc(playCase{name: "RETR of a deleted message refused, and restored by RSET (DROP-002 near-miss)",
			script: loggedIn + "C: DELE 1\nS: +OK\nC: RETR 1\nS: -ERR message 1 already deleted\nC: RSET\nS: +OK\nC: RETR 1\n" + retrS(msg1) + quitS,
			want:   []exp{resp("RETR", "-ERR"), resp("RSET", "+OK"), resp("RETR", "+OK")}}),

		pc(playCase{name: "DROP-003 DELE twice, both +OK",
			script: loggedIn + "C: DELE 2\nS: +OK\nC: DELE 2\nS: +OK\n" + quitS,
			want:   []exp{resp("DELE", "+OK"), viol("DROP-003").by(server).detail("DELE 2, which is already marked deleted"), resp("DELE", "+OK")}}),
		pc(playCase{name: "second DELE refused; DELE after RSET accepted (DROP-003 near-miss)",
			script: loggedIn + "C: DELE 2\nS: +OK\nC: DELE 2\nS: -ERR message 2 already deleted\nC: RSET\nS: +OK\nC: DELE 2\nS: +OK\n" + quitS,
			want:   []exp{resp("DELE", "-ERR"), resp("RSET", "+OK"), resp("DELE", "+OK")}}),

		pc(playCase{name: "DROP-004 deleted message still in LIST, UIDL and STAT",
			script: loggedIn + stat2 + "C: DELE 1\nS: +OK\n" + listS + uidl12 + stat2 + quitS,
			want: []exp{resp("DELE", "+OK"), viol("DROP-004").by(server).detail("deleted message 1 still listed"), resp("LIST", "+OK"),
				viol("DROP-004").detail("unique-id listing"), resp("UIDL", "+OK"),
				resp("STAT", "+OK"), viol("DROP-004").detail("STAT counts 2 messages but 1 of 2 are marked deleted")}}),
		pc(playCase{name: "deleted message left out of LIST, UIDL and STAT (DROP-004 near-miss)",
			script: loggedIn + stat2 + "C: DELE 1\nS: +OK\n" + list2 + uidlS("2 QhdPYR:00WBw1Ph7x7") + fmt.Sprintf("C: STAT\nS: +OK 1 %d\n", m2) + quitS,
			want:   []exp{resp("LIST", "+OK").body(len(fmt.Sprint(m2))+4, 1), resp("UIDL", "+OK"), resp("STAT", "+OK")}}),

		pc(playCase{name: "DROP-005 STAT and LIST disagree on the count",
			script: loggedIn + "C: STAT\nS: +OK 3 500\n" + listS + quitS,
			want:   []exp{viol("DROP-005").by(server).detail("STAT says 3 messages, LIST lists 2"), resp("LIST", "+OK")}}),
		pc(playCase{name: "DROP-005 STAT and LIST disagree on the total size",
			script: loggedIn + "C: STAT\nS: +OK 2 300\n" + listS + quitS,
			want:   []exp{viol("DROP-005").by(server).sev(event.Error).detail(fmt.Sprintf("STAT total 300 octets, LIST sizes sum to %d", m1+m2))}}),
		pc(playCase{name: "DROP-005 size mismatch in UTF-8 mode is a warning",
			script: greetS + capaStd("UTF8") + "C: UTF8\nS: +OK UTF8 enabled\n" + apopS + "C: STAT\nS: +OK 2 300\n" + listS + quitS,
			want:   []exp{resp("UTF8", "+OK"), viol("DROP-005").by(server).sev(event.Warning).detail("UTF-8 mode")}}),
		pc(playCase{name: "STAT and LIST agree, or differ across a DELE (DROP-005 near-miss)",
			script: loggedIn + stat2 + listS + "C: DELE 1\nS: +OK\n" + list2 + quitS,
			want:   []exp{resp("STAT", "+OK"), resp("LIST", "+OK"), resp("DELE", "+OK"), resp("LIST", "+OK")}}),

		pc(playCase{name: "DROP-006 RETR delivers a size other than listed",
			script: loggedIn + "C: LIST 2\nS: +OK 2 1200\nC: RETR 2\n" + retrS(msg2) + quitS,
			want:   []exp{viol("DROP-006").by(server).sev(event.Warning).detail(fmt.Sprintf("RETR 2 delivered %d octets, LIST said 1200", m2)), resp("RETR", "+OK").body(m2, len(msg2))}}),
		pc(playCase{name: "DROP-006 hint: the listed size counts LF line ends",
			script: loggedIn + fmt.Sprintf("C: LIST 2\nS: +OK 2 %d\nC: RETR 2\n", m2-len(msg2)) + retrS(msg2) + quitS,
			want:   []exp{viol("DROP-006").detail("LF line ends")}}),
		pc(playCase{name: "RETR delivers exactly the listed size (DROP-006 near-miss)",
			script: loggedIn + listS + "C: RETR 2\n" + retrS(msg2) + "C: RETR 1\n" + retrS(msg1) + quitS,
			want:   []exp{resp("RETR", "+OK").body(m2, len(msg2)), resp("RETR", "+OK").body(m1, len(msg1))}}),

		pc(playCase{name: "DROP-007 RETR delivers listed + 2 (final CRLF added)",
			script: loggedIn + fmt.Sprintf("C: LIST 2\nS: +OK 2 %d\nC: RETR 2\n", m2-2) + retrS(msg2) + quitS,
			want:   []exp{viol("DROP-007").by(server).sev(event.Info).detail("no final line break"), resp("RETR", "+OK")}}),
		pc(playCase{name: "RETR delivers listed + 3 is DROP-006, not DROP-007 (DROP-007 near-miss)",
			script: loggedIn + fmt.Sprintf("C: LIST 2\nS: +OK 2 %d\nC: RETR 2\n", m2-3) + retrS(msg2) + quitS,
			want:   []exp{viol("DROP-006").detail("(+3)"), resp("RETR", "+OK")}}),

		pc(playCase{name: "DROP-008 a later LIST shows a message above N",
			script: loggedIn + listS + fmt.Sprintf("C: LIST\nS: +OK\nS: 1 %d\nS: 2 %d\nS: 3 100\nS: .\n", m1, m2) + quitS,
			want:   []exp{resp("LIST", "+OK"), viol("DROP-008").by(server).detail("message 3 listed, but the maildrop had 2"), resp("LIST", "+OK")}}),
		pc(playCase{name: "DROP-008 a listed size changes",
			script: loggedIn + listS + "C: LIST 1\nS: +OK 1 999\n" + quitS,
			want:   []exp{resp("LIST", "+OK").single(), viol("DROP-008").detail(fmt.Sprintf("message 1 was listed as %d octets, now 999", m1))}}),
		pc(playCase{name: "DROP-008 STAT grows",
			script: loggedIn + stat2 + "C: STAT\nS: +OK 3 500\n" + quitS,
			want:   []exp{viol("DROP-008").detail("STAT 3 + 0 deleted no longer equals the 2 messages")}}),
		pc(playCase{name: "the maildrop view stays the same (DROP-008 near-miss)",
			script: loggedIn + stat2 + listS + uidl12 + listS + fmt.Sprintf("C: LIST 1\nS: +OK 1 %d\n", m1) + uidl12 + stat2 + quitS,
			want:   []exp{resp("STAT", "+OK"), resp("LIST", "+OK"), resp("UIDL", "+OK"), resp("LIST", "+OK"), resp("LIST", "+OK"), resp("UIDL", "+OK"), resp("STAT", "+OK")}}),

		pc(playCase{name: "DROP-009 RETR of a message restored by RSET refused",
			script: loggedIn + "C: DELE 1\nS: +OK\nC: RSET\nS: +OK\nC: RETR 1\nS: -ERR Message is deleted.\n" + quitS,
			want:   []exp{resp("RSET", "+OK"), viol("DROP-009").by(server).detail("-ERR to RETR 1 after RSET restored it"), resp("RETR", "-ERR")}}),
		pc(playCase{name: "DROP-009 STAT and LIST still omit a restored message",
			script: loggedIn + stat2 + "C: DELE 1\nS: +OK\nC: RSET\nS: +OK\n" + fmt.Sprintf("C: STAT\nS: +OK 1 %d\n", m2) + list2 + quitS,
			want: []exp{resp("STAT", "+OK"), viol("DROP-009").detail("after RSET, STAT shows 1 messages, expected 2"),
				viol("DROP-009").detail("after RSET, LIST omits restored messages [1]"), resp("LIST", "+OK")}}),
		pc(playCase{name: "restored message served after RSET; deleted one refused without RSET (DROP-009 near-miss)",
			script: loggedIn + stat2 + "C: DELE 1\nS: +OK\nC: RETR 1\nS: -ERR Message is deleted.\nC: RSET\nS: +OK\n" + stat2 + listS + "C: RETR 1\n" + retrS(msg1) + quitS,
			want:   []exp{resp("RETR", "-ERR"), resp("RSET", "+OK"), resp("STAT", "+OK"), resp("LIST", "+OK"), resp("RETR", "+OK")}}),

		pc(playCase{name: "DROP-010 TOP n 0 returns body lines",
			script: loggedIn + "C: TOP 2 0\nS: +OK\n" + bodyS(msg2) + quitS,
			want:   []exp{viol("DROP-010").by(server).detail("TOP 2 0 returned 2 body lines"), resp("TOP", "+OK")}}),
		pc(playCase{name: "TOP n 99999999 returns the whole message (DROP-010 near-miss)",
			script: loggedIn + "C: TOP 2 99999999\nS: +OK\n" + bodyS(msg2) + "C: TOP 2 1\nS: +OK\n" + bodyS(msg2[:4]) + quitS,
			want:   []exp{resp("TOP", "+OK").body(m2, len(msg2)), resp("TOP", "+OK")}}),

		pc(playCase{name: "DROP-011 TOP returns fewer body lines than RETR showed",
			script: loggedIn + "C: RETR 2\n" + retrS(msg2) + "C: TOP 2 5\nS: +OK\n" + bodyS(msg2[:4]) + quitS,
			want:   []exp{viol("DROP-011").by(server).detail("TOP 2 5 returned 1 body lines; RETR showed 2"), resp("TOP", "+OK")}}),
		pc(playCase{name: "DROP-011 TOP short of the listed size",
			script: loggedIn + fmt.Sprintf("C: LIST 2\nS: +OK 2 %d\n", m2) + "C: TOP 2 5\nS: +OK\n" + bodyS(msg2[:4]) + quitS,
			want:   []exp{viol("DROP-011").detail(fmt.Sprintf("of a message listed as %d", m2))}}),
		pc(playCase{name: "DROP-011 TOP header differs from the RETR header",
			script: loggedIn + "C: RETR 2\n" + retrS(msg2) + "C: TOP 2 0\nS: +OK\nS: From: eve@example.org\nS: Subject: hello\nS:\nS: .\n" + quitS,
			want:   []exp{viol("DROP-011").detail("header differs from the RETR header")}}),
		pc(playCase{name: "TOP consistent with RETR (DROP-011 near-miss)",
			script: loggedIn + "C: RETR 2\n" + retrS(msg2) + "C: TOP 2 5\nS: +OK\n" + bodyS(msg2) + "C: TOP 2 1\nS: +OK\n" + bodyS(msg2[:4]) +
				"C: TOP 2 0\nS: +OK\n" + bodyS(msg2[:3]) + quitS,
			want: []exp{resp("TOP", "+OK").body(m2, len(msg2)), resp("TOP", "+OK"), resp("TOP", "+OK")}}),

		pc(playCase{name: "DROP-012 TOP output without the empty separator line",
			script: loggedIn + "C: TOP 1 0\nS: +OK\nS: From: alice@example.org\nS: Subject: dots\nS: .\n" + quitS,
			want:   []exp{viol("DROP-012").by(server).sev(event.Warning).detail("no empty line between header and body"), resp("TOP", "+OK")}}),
		pc(playCase{name: "DROP-012 detail: RETR of a header-only message has no separator either",
			script: loggedIn + "C: RETR 1\nS: +OK\nS: Subject: only\nS: .\nC: TOP 1 0\nS: +OK\nS: Subject: only\nS: .\n" + quitS,
			want:   []exp{viol("DROP-012").detail("RETR of it has none either")}}),
		pc(playCase{name: "TOP of a header-only message still has the separator (DROP-012 near-miss)",
			script: loggedIn + "C: TOP 1 0\nS: +OK\nS: From: alice@example.org\nS: Subject: dots\nS:\nS: .\n" + quitS,
			want:   []exp{resp("TOP", "+OK").body(25+15+2, 3)}}),
	}
}

func uidlRuleCases() []ruleCase {
	uid70 := ("~!#$%&'()*+,-./:;<=>?@[]^_`{|}" + strings.Repeat("Z", 70))[:70]
	return []ruleCase{
		pc(playCase{name: "UIDL-001 unique-id too long, with a control octet, with an 8-bit octet",
			script: loggedIn + uidlS("1 "+strings.Repeat("u", 71), `2 ab\x01c`, "3 caf\xc3\xa9") + "C: UIDL 1\nS: +OK 1 " + strings.Repeat("u", 71) + "\n" + quitS,
			want: []exp{viol("UIDL-001").by(server).detail("is 71 characters"), viol("UIDL-001").detail("octet 0x01"), viol("UIDL-001").detail("octet 0xc3"),
				resp("UIDL", "+OK"), resp("UIDL", "+OK").single(), viol("UIDL-001").detail("message 1 is 71 characters")}}),
		pc(playCase{name: "UIDL-001 a TAB inside a unique-id",
			script: loggedIn + uidlS("1 ab\tcd") + quitS,
			want:   []exp{viol("UIDL-001").detail("octet 0x09")}}),
		pc(playCase{name: "a unique-id with a space cannot be told from text after the uid: SYNTAX-008",
			script: loggedIn + uidlS("3 abc def") + quitS,
			want:   []exp{viol("SYNTAX-008").by(server).detail("text after the unique-id"), resp("UIDL", "+OK")},
			allow:  []exp{viol("UIDL-001").maybe()}}),
		pc(playCase{name: "unique-id of 70 printable characters (UIDL-001 near-miss)",
			script: loggedIn + uidlS("1 "+uid70, "2 QhdPYR:00WBw1Ph7x7") + "C: UIDL 1\nS: +OK 1 " + uid70 + "\n" + quitS,
			want:   []exp{resp("UIDL", "+OK").body(size([]string{"1 " + uid70, "2 QhdPYR:00WBw1Ph7x7"}), 2), resp("UIDL", "+OK").single()}}),

		pc(playCase{name: "UIDL-002 two messages share a unique-id",
			script: loggedIn + uidlS("1 X", "2 X") + quitS,
			want:   []exp{viol("UIDL-002").by(server).sev(event.Warning).detail(`messages 1 and 2 share the unique-id "X"`), resp("UIDL", "+OK")}}),
		pc(playCase{name: "UIDL-002 detail: shared unique-id with different sizes is a real collision",
			script: loggedIn + listS + uidlS("1 X", "2 X") + quitS,
			want:   []exp{viol("UIDL-002").detail("real collision")}}),
		pc(playCase{name: "distinct unique-ids, listed twice (UIDL-002 near-miss)",
			script: loggedIn + uidlS("1 X", "2 Y") + uidlS("1 X", "2 Y") + quitS,
			want:   []exp{resp("UIDL", "+OK"), resp("UIDL", "+OK")}}),

		pc(playCase{name: "UIDL-003 UIDL n disagrees with the listing",
			script: loggedIn + uidlS("1 whqtswO00WBw418f9t5JxYwZ", "2 QhdPYR") + "C: UIDL 2\nS: +OK 2 Zx9\n" + quitS,
			want:   []exp{resp("UIDL", "+OK").single(), viol("UIDL-003").by(server).detail(`message 2 had unique-id "QhdPYR", now "Zx9"`)}}),
		pc(playCase{name: "UIDL-003 two listings disagree",
			script: loggedIn + uidlS("1 A", "2 B") + uidlS("1 A", "2 C") + quitS,
			want:   []exp{resp("UIDL", "+OK"), viol("UIDL-003").detail(`message 2 had unique-id "B", now "C"`), resp("UIDL", "+OK")}}),
		pc(playCase{name: "UIDL n agrees with the listing (UIDL-003 near-miss)",
			script: loggedIn + uidlS("1 whqtswO00WBw418f9t5JxYwZ", "2 QhdPYR") + "C: UIDL 2\nS: +OK 2 QhdPYR\n" + uidlS("1 whqtswO00WBw418f9t5JxYwZ", "2 QhdPYR") + quitS,
			want:   []exp{resp("UIDL", "+OK").single(), resp("UIDL", "+OK")}}),
	}
}

func respRuleCases() []ruleCase {
	capaAuthCode := capaOf("TOP", "UIDL", "USER", "RESP-CODES", "AUTH-RESP-CODE")
	return []ruleCase{
		pc(playCase{name: "RESP-002 malformed response code with RESP-CODES advertised",
			script: greetS + capaS + "C: APOP mrose c4c9334bac560ecc979e58001b3e22fb\nS: -ERR [IN-USE mailbox locked\n" + apopS + quitS,
			want:   []exp{viol("RESP-002").by(server).detail("[IN-USE mailbox locked"), resp("APOP", "-ERR"), resp("APOP", "+OK")}}),
		pc(playCase{name: "RESP-002 empty level, double slash, space inside",
			script: loggedIn + capaS + "C: RETR 9\nS: -ERR [] no\nC: RETR 9\nS: -ERR [SYS//TEMP] busy\nC: RETR 9\nS: -ERR [SYS TEMP] busy\n" + quitS,
			want:   []exp{viol("RESP-002").detail("[]"), viol("RESP-002").detail("[SYS//TEMP]"), viol("RESP-002").detail("[SYS TEMP]")},
			allow:  []exp{viol("CAPA-001").maybe()}}),
		pc(playCase{name: "malformed code without RESP-CODES; brackets later in the text; well-formed code (RESP-002 near-miss)",
			script: greetS + "C: APOP mrose c4c9334bac560ecc979e58001b3e22fb\nS: -ERR [IN-USE mailbox locked\n" + capaS +
				"C: APOP mrose c4c9334bac560ecc979e58001b3e22fb\nS: -ERR mailbox [IN-USE] locked\n" +
				"C: APOP mrose c4c9334bac560ecc979e58001b3e22fb\nS: -ERR [IN-USE] locked\n" + apopS + quitS,
			want: []exp{resp("APOP", "-ERR").code(""), resp("CAPA", "+OK"), resp("APOP", "-ERR").code(""), resp("APOP", "-ERR").code("IN-USE"), resp("APOP", "+OK")}}),

		pc(playCase{name: "RESP-003 IN-USE on RETR",
			script: greetS + capaS + apopS + "C: RETR 1\nS: -ERR [IN-USE] locked\n" + quitS,
			want:   []exp{viol("RESP-003").by(server).sev(event.Warning).detail("[IN-USE] on -ERR to RETR"), resp("RETR", "-ERR")}}),
		pc(playCase{name: "RESP-003 codes on +OK and LOGIN-DELAY on NOOP",
			script: greetS + capaS + apopS + "C: NOOP\nS: +OK [SYS/TEMP] fine\nC: NOOP\nS: +OK [AUTH] fine\nC: NOOP\nS: -ERR [LOGIN-DELAY] no\n" + quitS,
			want: []exp{viol("RESP-003").detail("[SYS/TEMP] on +OK"), resp("NOOP", "+OK"), viol("RESP-003").detail("[AUTH] on +OK"), resp("NOOP", "+OK"),
				viol("RESP-003").detail("[LOGIN-DELAY] on -ERR to NOOP"), resp("NOOP", "-ERR")},
			allow: []exp{viol("RESP-004").detail("AUTH-RESP-CODE")}}),
		pc(playCase{name: "RESP-003 AUTH code on a USER reply reveals the user",
			script: greetS + capaAuthCode + "C: USER nobody\nS: -ERR [AUTH] no such user\n" + quitS,
			want:   []exp{viol("RESP-003").detail("reveals that the user exists"), resp("USER", "-ERR")},
			allow:  []exp{viol("AUTH-002")}}),
		pc(playCase{name: "codes on the replies they belong to (RESP-003 near-miss)",
			script: greetS + capaAuthCode + "C: USER mrose\nS: +OK\nC: PASS x\nS: -ERR [LOGIN-DELAY] wait\nC: USER mrose\nS: +OK\nC: PASS x\nS: -ERR [IN-USE] locked\n" +
				"C: USER mrose\nS: +OK\nC: PASS x\nS: -ERR [AUTH] bad password\n" + apopS +
				"C: RETR 1\nS: -ERR [SYS/TEMP] try later\nC: RETR 1\nS: -ERR [UTF8] needs UTF8\nC: TOP 1 0\nS: -ERR [SYS/PERM] no\n" + quitS,
			want: []exp{resp("PASS", "-ERR").code("LOGIN-DELAY"), resp("PASS", "-ERR").code("IN-USE"), resp("PASS", "-ERR").code("AUTH"),
				resp("RETR", "-ERR").code("SYS/TEMP"), resp("RETR", "-ERR").code("UTF8"), resp("TOP", "-ERR")},
			allow: append([]exp{viol("AUTH-001"), viol("AUTH-001"), viol("AUTH-001")}, cleartext[1:]...)}),
	}
}

func saslRuleCases() []ruleCase {
	gssTok := b64("\x60\x82\x01\x00gss-token")
	return []ruleCase{
		pc(playCase{name: "SASL-001 mechanism not in the SASL line",
			script: greetS + capaOf("TOP", "SASL SCRAM-SHA-256") + "C: AUTH CRAM-MD5\nS: -ERR Unsupported mechanism\n" + quitS,
			want:   []exp{cmd("AUTH"), viol("SASL-001").by(client).sev(event.Warning).detail("CAPA listed only SASL SCRAM-SHA-256"), resp("AUTH", "-ERR")}}),
		pc(playCase{name: "SASL-001 CAPA without a SASL line",
			script: greetS + capaOf("TOP", "UIDL") + "C: AUTH CRAM-MD5\nS: -ERR Unsupported mechanism\n" + quitS,
			want:   []exp{viol("SASL-001").detail("no SASL line")}}),
		pc(playCase{name: "AUTH probed without CAPA, after CAPA -ERR, in other case (SASL-001 near-miss)",
			script: greetS + "C: AUTH CRAM-MD5\nS: -ERR Unsupported mechanism\nC: CAPA\nS: -ERR\nC: AUTH SCRAM-SHA-1\nS: -ERR Unsupported mechanism\n" +
				capaS + "C: AUTH cram-md5\nS: + " + cramCh + "\nC: " + cramResp + "\nS: +OK\n" + quitS,
			want: []exp{resp("AUTH", "-ERR"), resp("AUTH", "-ERR"), resp("AUTH", "+OK"), state(decode.AuthSASL, decode.Transaction)}}),

		pc(playCase{name: "SASL-002 initial response without CAPA",
			script: greetS + "C: AUTH PLAIN " + plainIR + "\nS: +OK\n" + quitS,
			want:   []exp{cmd("AUTH"), viol("SASL-002").by(client).detail("CAPA was never issued"), resp("AUTH", "+OK")},
			allow:  cleartext}),
		pc(playCase{name: "SASL-002 initial response after CAPA -ERR",
			script: greetS + "C: CAPA\nS: -ERR\nC: AUTH PLAIN " + plainIR + "\nS: -ERR\n" + quitS,
			want:   []exp{viol("SASL-002").detail("CAPA failed")},
			allow:  []exp{viol("AUTH-001")}}),
		pc(playCase{name: "SASL-002 initial response after a CAPA without SASL",
			script: greetS + capaOf("TOP") + "C: AUTH PLAIN " + plainIR + "\nS: -ERR\n" + quitS,
			want:   []exp{viol("SASL-001"), viol("SASL-002").detail("CAPA had no SASL line")},
			allow:  []exp{viol("AUTH-001")}}),
		pc(playCase{name: "initial response after CAPA SASL; no initial response without CAPA (SASL-002 near-miss)",
			script: greetS + "C: AUTH PLAIN\nS: + \nC: " + plainIR + "\nS: -ERR\n" + capaPlainS + "C: AUTH PLAIN " + plainIR + "\nS: +OK\n" + quitS,
			want:   []exp{resp("AUTH", "-ERR"), resp("AUTH", "+OK")},
			allow:  append([]exp{viol("AUTH-001")}, cleartext...)}),

		pc(playCase{name: "SASL-003 AUTH line with initial response over 255 octets",
			script: greetS + capaOf("SASL XOAUTH2") + "C: AUTH XOAUTH2 " + xoauth2(320) + "\nS: -ERR Protocol error. Connection is closed. 10\n" + closeBoth,
			want: []exp{cmd("AUTH"), viol("LINE-004").by(client).detail("335 octets"), viol("SASL-003").by(client).detail("335 octets"),
				resp("AUTH", "-ERR"), state(decode.AuthReady, decode.Aborted)},
			allow: []exp{viol("CONN-004")}}),
		pc(playCase{name: "long token after an empty challenge; initial response line of 255 octets (SASL-003 near-miss)",
			script: greetS + capaOf("SASL XOAUTH2") + "C: AUTH XOAUTH2 " + xoauth2(240) + "\nS: -ERR\nC: AUTH XOAUTH2\nS: + \nC: " + xoauth2(1500) + "\nS: +OK\n" + quitS,
			want:   []exp{resp("AUTH", "-ERR"), cont(), saslResp(), resp("AUTH", "+OK"), state(decode.AuthSASL, decode.Transaction)}}),

		pc(playCase{name: "SASL-006 continuation without SP",
			script: greetS + capaS + "C: AUTH CRAM-MD5\nS: +\nC: *\nS: -ERR\n" + quitS,
			want:   []exp{cont().text(""), viol("SASL-006").by(server).detail("exactly one SP"), saslResp().args("*"), resp("AUTH", "-ERR")}}),
		pc(playCase{name: "SASL-006 continuation glued to the text",
			script: greetS + capaS + "C: AUTH CRAM-MD5\nS: +" + cramCh + "\nC: *\nS: -ERR\n" + quitS,
			want:   []exp{cont(), viol("SASL-006").detail("exactly one SP")}}),
		pc(playCase{name: "SASL-006 challenge text is not base64",
			script: greetS + capaOf("SASL LOGIN") + "C: AUTH LOGIN\nS: + Username:\nC: *\nS: -ERR\n" + quitS,
			want:   []exp{cont().text("Username:"), viol("SASL-006").detail("not base64")},
			allow:  []exp{viol("AUTH-002")}}),
		pc(playCase{name: "SASL-006 non-empty PLAIN challenge",
			script: greetS + capaPlainS + "C: AUTH PLAIN\nS: + Zm9v\nC: *\nS: -ERR\n" + quitS,
			want:   []exp{viol("SASL-006").detail("PLAIN challenge must be empty")},
			allow:  []exp{viol("AUTH-002")}}),
		pc(playCase{name: "SASL-006 CRAM-MD5 challenge is not a msg-id",
			script: greetS + capaS + "C: AUTH CRAM-MD5\nS: + " + b64("foobar") + "\nC: *\nS: -ERR\n" + quitS,
			want:   []exp{viol("SASL-006").detail("<…@…>")}}),
		pc(playCase{name: "well-formed challenges (SASL-006 near-miss)",
			script: greetS + capaOf("SASL PLAIN LOGIN CRAM-MD5") + "C: AUTH PLAIN\nS: + \nC: *\nS: -ERR\nC: AUTH CRAM-MD5\nS: + " + cramCh + "\nC: *\nS: -ERR\n" +
				"C: AUTH LOGIN\nS: + VXNlcm5hbWU6\nC: *\nS: -ERR\n" + quitS,
			want:  []exp{cont().text(""), resp("AUTH", "-ERR"), cont().text(cramCh), resp("AUTH", "-ERR"), cont().text("VXNlcm5hbWU6"), resp("AUTH", "-ERR")},
			allow: []exp{viol("AUTH-002")}}),

		pc(playCase{name: "SASL-007 CRAM-MD5 with initial response answered with a challenge",
			script: greetS + capaS + "C: AUTH CRAM-MD5 Zm9v\nS: + " + cramCh + "\nC: " + cramResp + "\nS: +OK\n" + quitS,
			want:   []exp{cmd("AUTH").args("CRAM-MD5 " + decode.Redacted), cont(), viol("SASL-007").by(server).detail("client also erred"), saslResp(), resp("AUTH", "+OK")}}),
		pc(playCase{name: "SASL-007 CRAM-MD5 with initial response accepted",
			script: greetS + capaS + "C: AUTH CRAM-MD5 Zm9v\nS: +OK\n" + quitS,
			want:   []exp{resp("AUTH", "+OK"), viol("SASL-007").by(server).detail("accepted"), state(decode.AuthReady, decode.Transaction)}}),
		pc(playCase{name: "CRAM-MD5 initial response rejected; LOGIN with initial response (SASL-007 near-miss)",
			script: greetS + capaOf("SASL LOGIN CRAM-MD5") + "C: AUTH CRAM-MD5 Zm9v\nS: -ERR initial response not allowed\n" +
				"C: AUTH LOGIN bXJvc2U=\nS: + UGFzc3dvcmQ6\nC: dGFuc3RhYWY=\nS: +OK\n" + quitS,
			want:  []exp{resp("AUTH", "-ERR"), cont().text("UGFzc3dvcmQ6"), resp("AUTH", "+OK")},
			allow: cleartext}),

		pc(playCase{name: "SASL-010 client sends binary after AUTH GSSAPI succeeded",
			script: greetS + capaOf("SASL GSSAPI") + "C: AUTH GSSAPI\nS: + \nC: " + gssTok + "\nS: + " + gssTok + "\nC:\nS: +OK\n" +
				`C: \x00\x00\x00\x40\x05\x04\x01\xff` + "\n" + `S: \x00\x00\x00\x20\x05\x04\x00\xff` + "\n",
			want: []exp{resp("AUTH", "+OK"), state(decode.AuthSASL, decode.Transaction), viol("SASL-010").by(client).sev(event.Info), opaque().by(client),
				state(decode.Transaction, decode.Opaque)}}),
		pc(playCase{name: "SASL-010 server sends binary first after an unknown mechanism succeeded",
			script: greetS + capaOf("SASL X-FOO") + "C: AUTH X-FOO\nS: + \nC: " + gssTok + "\nS: +OK\n" + `S: \x00\x00\x00\x20\x05\x04\x00\xff` + "\n",
			want:   []exp{resp("AUTH", "+OK"), viol("SASL-010").by(server), opaque().by(server)}}),
		pc(playCase{name: "plain POP3 after AUTH GSSAPI without a security layer (SASL-010 near-miss)",
			script: greetS + capaOf("SASL GSSAPI") + "C: AUTH GSSAPI\nS: + \nC: " + gssTok + "\nS: + " + gssTok + "\nC:\nS: +OK\n" + statS + quitS,
			want:   []exp{resp("AUTH", "+OK"), resp("STAT", "+OK"), resp("QUIT", "+OK")}}),
	}
}

func syntaxRuleCases() []ruleCase {
	m1, m2 := size(msg1), size(msg2)
	return []ruleCase{
		pc(playCase{name: "SYNTAX-005 wrong argument counts and forms",
			script: loggedIn + "C: TOP 1\nS: -ERR\nC: NOOP x\nS: -ERR\nC: RETR 0\nS: -ERR\nC: DELE a\nS: -ERR\nC: LIST 1 2\nS: -ERR\nC: TOP 1 x\nS: -ERR\nC: STAT 1\nS: -ERR\nC: RETR\nS: -ERR\n" + quitS,
			want: []exp{viol("SYNTAX-005").by(client).detail("TOP: missing argument"), viol("SYNTAX-005").detail("NOOP: takes no argument"),
				viol("SYNTAX-005").detail("message number 0"), viol("SYNTAX-005").detail(`"a" is not decimal digits`),
				viol("SYNTAX-005").detail("LIST: too many arguments"), viol("SYNTAX-005").detail(`line count "x"`),
				viol("SYNTAX-005").detail("STAT: takes no argument"), viol("SYNTAX-005").detail("RETR: missing argument")}}),
		pc(playCase{name: "SYNTAX-005 USER without argument, APOP digest not hex",
			script: greetS + "C: USER\nS: -ERR\nC: APOP mrose xyz\nS: -ERR\nC: CAPA x\nS: -ERR\n" + quitS,
			want: []exp{viol("SYNTAX-005").detail("USER: missing argument"), viol("SYNTAX-005").detail("digest is not 32 hex digits"),
				viol("SYNTAX-005").detail("CAPA: takes no argument")}}),
		pc(playCase{name: "SYNTAX-005 upper-case APOP digest is a warning",
			script: greetS + "C: APOP mrose C4C9334BAC560ECC979E58001B3E22FB\nS: +OK\n" + quitS,
			want:   []exp{viol("SYNTAX-005").by(client).sev(event.Warning).detail("upper-case"), resp("APOP", "+OK"), state(decode.AuthReady, decode.Transaction)}}),
		pc(playCase{name: "leading zeros, TOP n 0, PASS with spaces, lower-case digest (SYNTAX-005 near-miss)",
			script: greetS + "C: USER mrose\nS: +OK\nC: PASS my secret pass\nS: -ERR\n" + apopS +
				fmt.Sprintf("C: LIST 01\nS: +OK 1 %d\nC: TOP 1 0\nS: +OK\n", m1) + bodyS(msg1[:3]) + quitS,
			want:  []exp{resp("PASS", "-ERR"), resp("APOP", "+OK"), resp("LIST", "+OK"), resp("TOP", "+OK")},
			allow: []exp{viol("AUTH-001")}}),

		pc(playCase{name: "SYNTAX-006 NOOP x answered +OK",
			script: loggedIn + "C: NOOP x\nS: +OK\n" + quitS,
			want:   []exp{viol("SYNTAX-005").by(client), viol("SYNTAX-006").by(server).detail(`"NOOP x"`), resp("NOOP", "+OK")}}),
		pc(playCase{name: "SYNTAX-006 malformed keyword answered +OK",
			script: loggedIn + "C: RETRIEVE 1\nS: +OK\n" + quitS,
			want:   []exp{viol("SYNTAX-001").by(client), viol("SYNTAX-006").by(server), resp("RETRIEVE", "+OK")}}),
		pc(playCase{name: "malformed command refused; LIST 01 and a private command accepted (SYNTAX-006 near-miss)",
			script: loggedIn + fmt.Sprintf("C: NOOP x\nS: -ERR Noise after command\nC: LIST 01\nS: +OK 1 %d\nC: XTST 1\nS: +OK\n", m1) + quitS,
			want:   []exp{viol("SYNTAX-005").by(client), resp("NOOP", "-ERR"), resp("LIST", "+OK"), resp("XTST", "+OK"), viol("LEGACY-002")}}),

		pc(playCase{name: "SYNTAX-008 drop listing, scan listing and unique-id listing malformed",
			script: loggedIn + "C: STAT\nS: +OK 2 messages\nC: LIST 2\nS: +OK 1 120\nC: LIST\nS: +OK\nS: 1\nS: 2 x\nS: .\n" +
				"C: UIDL\nS: +OK\nS: 1 whqtswO00WBw418f9t5JxYwZ extra\nS: 2 QhdPYR\nS: .\nC: UIDL 2\nS: +OK 2 QhdPYR extra\nC: LIST 1\nS: +OK 1 big\n" + quitS,
			want: []exp{resp("STAT", "+OK"), viol("SYNTAX-008").by(server).detail(`STAT reply is not "+OK n size"`),
				resp("LIST", "+OK"), viol("SYNTAX-008").detail("LIST 2 reply is not a scan listing"),
				viol("SYNTAX-008").detail(`LIST body line is not a scan listing "n size": "1"`), viol("SYNTAX-008").detail(`LIST size is not a number: "2 x"`), resp("LIST", "+OK"),
				viol("SYNTAX-008").detail("text after the unique-id"), resp("UIDL", "+OK"),
				resp("UIDL", "+OK"), viol("SYNTAX-008").detail("text after the unique-id"),
				resp("LIST", "+OK"), viol("SYNTAX-008").detail("LIST size is not a number")}}),
		pc(playCase{name: "SYNTAX-008 extra words after a drop or scan listing are info",
			script: loggedIn + fmt.Sprintf("C: STAT\nS: +OK 2 %d octets\nC: LIST 1\nS: +OK 1 %d octets\n", m1+m2, m1) + quitS,
			want: []exp{resp("STAT", "+OK"), viol("SYNTAX-008").sev(event.Info).detail("after the drop listing"),
				resp("LIST", "+OK"), viol("SYNTAX-008").sev(event.Info).detail("after the scan listing")}}),
		pc(playCase{name: "SYNTAX-008 LANG listing line and LANG tag reply malformed",
			script: loggedIn + "C: LANG\nS: +OK Language listing follows:\nS: en English\nS: -x bad tag\nS: .\nC: LANG es\nS: +OK\nC: LANG de\nS: +OK de_DE Sprache geaendert\n" + quitS,
			want: []exp{viol("SYNTAX-008").by(server).detail(`language listing line is not "tag [SP text]": "-x bad tag"`), resp("LANG", "+OK"),
				resp("LANG", "+OK"), viol("SYNTAX-008").detail(`LANG es reply is not "+OK SP tag SP text"`),
				resp("LANG", "+OK"), viol("SYNTAX-008").detail(`"de_DE Sprache geaendert"`)}}),
		pc(playCase{name: "well-formed structured replies (SYNTAX-008 near-miss)",
			script: loggedIn + statS + listS + fmt.Sprintf("C: LIST 2\nS: +OK 2 %d\n", m2) + uidlS("1 whqtswO00WBw418f9t5JxYwZ", "2 QhdPYR:00WBw1Ph7x7") +
				"C: UIDL 2\nS: +OK 2 QhdPYR:00WBw1Ph7x7\nC: LANG\nS: +OK Language listing follows:\nS: en English\nS: en-boont English Boontling dialect\nS: i-default Default\nS: sv\nS: .\n" +
				"C: LANG es\nS: +OK es Idioma cambiado\nC: LANG *\nS: +OK es Idioma cambiado\n" + quitS,
			want: []exp{resp("STAT", "+OK"), resp("LIST", "+OK"), resp("LIST", "+OK"), resp("UIDL", "+OK"), resp("UIDL", "+OK"),
				resp("LANG", "+OK").body(size([]string{"en English", "en-boont English Boontling dialect", "i-default Default", "sv"}), 4),
				resp("LANG", "+OK"), resp("LANG", "+OK")}}),

		pc(playCase{name: "SYNTAX-009 malformed CAPA lines",
			script: greetS + capaOf("TOP", "X.FOO", " UIDL", "", "TOP") + quitS,
			want: []exp{viol("SYNTAX-009").by(server).detail(`"X.FOO"`), viol("SYNTAX-009").detail("starts with SP"), viol("SYNTAX-009").detail("empty line"),
				viol("SYNTAX-009").sev(event.Info).detail("TOP listed twice"), resp("CAPA", "+OK")}}),
		pc(playCase{name: "SYNTAX-009 tag with a non-printable octet",
			script: greetS + capaOf(`X-F\x01O`) + quitS,
			want:   []exp{viol("SYNTAX-009").detail("non-printable")}}),
		pc(playCase{name: "dots and spaces in capability arguments (SYNTAX-009 near-miss)",
			script: greetS + capaOf("TOP", "UIDL", "IMPLEMENTATION Example POP3 server v1.2.3", "SASL CRAM-MD5 SCRAM-SHA-256") + quitS,
			want:   []exp{resp("CAPA", "+OK").body(size([]string{"TOP", "UIDL", "IMPLEMENTATION Example POP3 server v1.2.3", "SASL CRAM-MD5 SCRAM-SHA-256"}), 4)}}),
	}
}

func timeRuleCases() []ruleCase {
	noop := "# at: +4m\nC: NOOP\nS: +OK\n"
	retr := "# at: +4m\nC: RETR 1\n" + retrS(msg1)
	pipe5 := `C: RETR 1\r\nRETR 2\r\nRETR 1\r\nRETR 2\r\nRETR 1\r\n` + "\n"
	return []ruleCase{
		{playCase: playCase{name: "TIME-002 server closes an idle AUTHORIZATION session after 2 minutes (no command at all)",
			script: greetS + "# at: +120s\n" + closeBoth,
			want:   []exp{greet("+OK"), viol("TIME-002").by(server).sev(event.Warning).detail("2m0s"), viol("CONN-004"), state(decode.AuthReady, decode.Aborted)}},
			exact: true},
		{playCase: playCase{name: "TIME-002 server closes 60 s after the client's last command",
			script: greetS + capaS + "# at: +60s\n" + closeBoth,
			want:   []exp{resp("CAPA", "+OK"), viol("TIME-002").detail("1m0s after the client's last activity"), viol("CONN-004")}},
			exact: true},
		{playCase: playCase{name: "server closes more than 10 minutes after the last command (TIME-002 near-miss)",
			script: greetS + capaS + "# at: +601s\n" + closeBoth,
			want:   []exp{resp("CAPA", "+OK"), viol("CONN-004").by(server)}},
			exact: true},
		{playCase: playCase{name: "server closes right after refusing a login (TIME-002 near-miss)",
			script: greetS + "# at: 30s\nC: APOP mrose c4c9334bac560ecc979e58001b3e22fb\n# at: 32s\nS: -ERR [AUTH] authentication failed\n" + closeBoth,
			want:   []exp{resp("APOP", "-ERR"), viol("CONN-004").by(server)}},
			exact: true},

		{playCase: playCase{name: "TIME-003 slow reply",
			script: loggedIn + "C: RETR 1\n# at: +15s\n" + retrS(msg1) + quitS,
			want:   []exp{resp("RETR", "+OK"), viol("TIME-003").by(client).sev(event.Info).detail("RETR took 15s to answer")}},
			exact: true},
		{playCase: playCase{name: "TIME-003 client idle in TRANSACTION for 10 minutes",
			script: loggedIn + "# at: +11m\n# close: client\n# close: server\n",
			want:   []exp{state(decode.AuthReady, decode.Transaction), viol("TIME-003").by(client).detail("idle in TRANSACTION for 10m0s"), viol("CONN-004")}},
			tick: 5 * time.Second, exact: true},
		{playCase: playCase{name: "TIME-003 client keeps TRANSACTION open with NOOP only",
			script: loggedIn + noop + noop + noop + noop + quitS,
			want:   []exp{resp("NOOP", "+OK"), resp("NOOP", "+OK"), viol("TIME-003").by(client).detail("only NOOP"), resp("NOOP", "+OK"), resp("QUIT", "+OK")}},
			tick: 5 * time.Second, exact: true},
		{playCase: playCase{name: "a client working every 4 minutes, a reply after 9 s (TIME-003 near-miss)",
			script: loggedIn + retr + retr + retr + "C: RETR 2\n# at: +9s\n" + retrS(msg2) + "# at: +9m\n" + quitS,
			want:   []exp{resp("RETR", "+OK"), resp("RETR", "+OK"), resp("RETR", "+OK"), resp("RETR", "+OK"), resp("QUIT", "+OK")}},
			tick: 5 * time.Second, exact: true},

		{playCase: playCase{name: "PIPE-002 server answers 2 of 5 pipelined RETR and falls silent",
			script: greetS + capaS + apopS + pipe5 + "S: " + escLines(retrLines(msg1)+retrLines(msg2)) + "\n# at: +2m\n# close: client\n",
			want: []exp{resp("RETR", "+OK").id(3), resp("RETR", "+OK").id(4),
				viol("PIPE-002").by(server).sev(event.Error).detail("server silent for 1m0s with 3 commands outstanding (first RETR)"), viol("CONN-004").by(client)}},
			tick: 5 * time.Second, exact: true},
		{playCase: playCase{name: "answers less than a minute apart; a single command left unanswered (PIPE-002 near-miss)",
			script: greetS + capaS + apopS + pipe5 + "# at: 50s\nS: " + escLines(retrLines(msg1)+retrLines(msg2)) + "\n# at: 100s\nS: " +
				escLines(retrLines(msg1)+retrLines(msg2)) + "\n# at: 150s\nS: " + escLines(retrLines(msg1)) + "\nC: NOOP\n# at: 5m\n# close: client\n",
			want: []exp{resp("RETR", "+OK").id(7), cmd("NOOP").id(8), viol("CONN-004").by(client)},
			allow: []exp{viol("TIME-003").detail("RETR took 50s"), viol("TIME-003").detail("RETR took 50s"), viol("TIME-003").detail("RETR took 1m40s"),
				viol("TIME-003").detail("RETR took 1m40s"), viol("TIME-003").detail("RETR took 2m30s")}},
			tick: 5 * time.Second, exact: true},
		{playCase: playCase{name: "commands queued behind an unanswered AUTH (PIPE-002 near-miss)",
			script: greetS + capaS + `C: AUTH CRAM-MD5\r\nNOOP\r\nNOOP\r\n` + "\n# at: +3m\n# close: client\n",
			want:   []exp{cmd("AUTH"), viol("SASL-008"), viol("CONN-004").by(client)},
			allow:  []exp{viol("SASL-008")}},
			tick: 5 * time.Second, exact: true},
	}
}

func tlsRuleCases() []ruleCase {
	implicit := decode.Options{ClientTLS: true, ServerTLS: true}
	terminate := decode.Options{TerminateTLS: true}
	return []ruleCase{
		pc(playCase{name: "TLS-002 STLS on an implicit-TLS connection",
			opt:    implicit,
			script: greetS + "C: STLS\nS: -ERR TLS is already active.\n" + apopS + quitS,
			want:   []exp{cmd("STLS"), viol("TLS-002").by(client).sev(event.Warning), resp("STLS", "-ERR"), state(decode.AuthReady, decode.Transaction)}}),
		pc(playCase{name: "TLS-002 STLS accepted inside TLS",
			opt:    decode.Options{ClientTLS: true, ServerTLS: true, TerminateTLS: true},
			script: greetS + "C: STLS\nS: +OK Begin TLS negotiation now.\n" + closeBoth,
			want:   []exp{viol("TLS-002").by(client), viol("TLS-002").by(server).detail("TLS inside TLS"), resp("STLS", "+OK")},
			allow:  []exp{viol("CONN-004")}}),
		{playCase: playCase{name: "TLS-002 second STLS after a completed upgrade",
			opt:    terminate,
			script: greetS + "C: STLS\nS: +OK Begin TLS negotiation now.\n" + tlsHooks + "C: STLS\nS: -ERR TLS is already active.\n" + apopS + quitS,
			want: []exp{resp("STLS", "+OK"), typed(event.TLS), state(decode.TLSUpgrade, decode.AuthReady), typed(event.TLS),
				viol("TLS-002").by(client), resp("STLS", "-ERR")}},
			hooks: bothTLS13},
		{playCase: playCase{name: "STLS on a plaintext connection (TLS-002 near-miss)",
			opt:    terminate,
			script: greetS + capaOf("STLS", "TOP") + "C: STLS\nS: +OK Begin TLS negotiation now.\n" + tlsHooks + capaOf("TOP") + apopS + quitS,
			want:   []exp{resp("STLS", "+OK"), typed(event.TLS), typed(event.TLS), resp("CAPA", "+OK"), resp("APOP", "+OK")}},
			hooks: bothTLS13},

		// TLS-004 is detected by the proxy (proxy/tls.go, serverChunk): only
		// it sees that the upstream sent data inside the new TLS session
		// before the client sent a command there. It reports it through
		// Session.Report; a decoder test can only check that Report emits
		// the violation with the catalog's severity and the given side. The
		// near-miss lives with the detection: proxy/tls_test.go
		// (TestTLS004NearMiss); here the same session without the report
		// stays clean.
		{playCase: playCase{name: "TLS-004 reported by the proxy through Session.Report",
			opt:    terminate,
			script: greetS + `C: STLS\r\nCAPA\r\n` + "\nS: +OK Begin TLS negotiation now.\n" + tlsHooks + "# hook: tls004\n" + apopS + quitS,
			want: []exp{viol("TLS-003"), resp("STLS", "+OK"), typed(event.TLS), typed(event.TLS),
				viol("TLS-004").by(server).sev(event.Error).detail("before the client sent any command"), resp("APOP", "+OK")},
			allow: []exp{viol("PIPE-001")}},
			hooks: map[string]func(*decode.Session, time.Time){
				"client": startTLS(client, "TLS 1.3"), "server": startTLS(server, "TLS 1.3"),
				"tls004": func(s *decode.Session, at time.Time) {
					s.Report(at, "POP3-TLS-004", event.Server, "inside the new TLS session the server sent data before the client sent any command")
				}}},
		{playCase: playCase{name: "STLS with the handshake first inside TLS (TLS-004 near-miss at decoder level)",
			opt:    terminate,
			script: greetS + "C: STLS\nS: +OK Begin TLS negotiation now.\n" + tlsHooks + apopS + quitS,
			want:   []exp{resp("STLS", "+OK"), typed(event.TLS), typed(event.TLS), resp("APOP", "+OK")}},
			hooks: bothTLS13},

		pc(playCase{name: "TLS-005 server sends a reply instead of a ServerHello after STLS +OK (one write)",
			script: greetS + capaOf("STLS") + "C: STLS\n" + `S: +OK Begin TLS\r\n+OK Logged in.\r\n` + "\n",
			want:   []exp{resp("STLS", "+OK"), viol("TLS-005").by(server).detail(`first octet 0x2b "+"`), opaque()}}),
		pc(playCase{name: "TLS-005 injected reply after the client's ClientHello",
			script: greetS + capaOf("STLS") + "C: STLS\nS: +OK Begin TLS\n" + clientHelloS + "S: +OK Logged in.\n",
			want:   []exp{resp("STLS", "+OK"), opaque(), viol("TLS-005").by(server)}}),
		pc(playCase{name: "ServerHello right after STLS +OK (TLS-005 near-miss)",
			script: greetS + capaOf("STLS") + "C: STLS\nS: +OK Begin TLS\n" + clientHelloS + serverHelloS,
			want:   []exp{resp("STLS", "+OK"), opaque()}}),

		pc(playCase{name: "TLS-006 STLS advertised but refused",
			script: greetS + capaOf("TOP", "STLS") + "C: STLS\nS: -ERR TLS support isn't enabled.\n" + apopS + quitS,
			want:   []exp{resp("STLS", "-ERR"), viol("TLS-006").by(server).sev(event.Warning).detail("advertised but the command failed")}}),
		pc(playCase{name: "TLS-006 STLS advertised in TRANSACTION",
			script: loggedIn + capaOf("TOP", "STLS") + quitS,
			want:   []exp{viol("TLS-006").detail("advertised in TRANSACTION"), resp("CAPA", "+OK")}}),
		pc(playCase{name: "TLS-006 STLS advertised while TLS is active",
			opt:    implicit,
			script: greetS + capaOf("TOP", "STLS") + quitS,
			want:   []exp{viol("TLS-006").detail("while TLS is already active")}}),
		{playCase: playCase{name: "TLS-006 STLS advertised, accepted, and the handshake fails",
			opt:    terminate,
			script: greetS + capaOf("TOP", "STLS") + "C: STLS\nS: +OK Begin TLS negotiation now.\n# hook: fail\n" + closeBoth,
			want: []exp{resp("STLS", "+OK"), state(decode.AuthReady, decode.TLSUpgrade), typed(event.TLS),
				viol("TLS-006").detail("TLS handshake failed"), viol("CONN-004")}},
			hooks: map[string]func(*decode.Session, time.Time){"fail": tlsFailed(server, "remote error: tls: handshake failure", event.NoSide)}},
		{playCase: playCase{name: "STLS not advertised and refused; advertised and working (TLS-006 near-miss)",
			opt:    terminate,
			script: greetS + "C: STLS\nS: -ERR TLS support isn't enabled.\n" + capaOf("TOP", "STLS") + "C: STLS\nS: +OK Begin TLS negotiation now.\n" + tlsHooks + capaOf("TOP") + apopS + quitS,
			want:   []exp{resp("STLS", "-ERR"), resp("STLS", "+OK"), resp("CAPA", "+OK"), resp("APOP", "+OK")}},
			hooks: bothTLS13},

		// TLS-007 too is decided by the proxy, which alone sees whether the
		// first octets on an implicit-TLS leg are a handshake; it tells the
		// decoder through TLSFailed with the side that sent plaintext.
		{playCase: playCase{name: "TLS-007 client sends plaintext on an implicit-TLS listener",
			opt:    implicit,
			script: "# hook: plain\n# close: client\n# close: server\n",
			want:   []exp{typed(event.TLS), viol("TLS-007").by(client).sev(event.Error)}},
			hooks: map[string]func(*decode.Session, time.Time){"plain": tlsFailed(client, "tls: first record does not look like a TLS handshake", client)}},
		{playCase: playCase{name: "TLS-007 upstream greets in plaintext where implicit TLS was expected",
			opt:    implicit,
			script: "# hook: plain\n# close: server\n# close: client\n",
			want:   []exp{typed(event.TLS), viol("TLS-007").by(server)}},
			hooks: map[string]func(*decode.Session, time.Time){"plain": tlsFailed(server, "tls: first record does not look like a TLS handshake", server)}},
		{playCase: playCase{name: "implicit-TLS handshake failing on a certificate (TLS-007 near-miss)",
			opt:    implicit,
			script: "# hook: fail\n# close: client\n# close: server\n",
			want:   []exp{typed(event.TLS).with("error", func(e *event.Event) bool { return e.Error != "" })}},
			hooks: map[string]func(*decode.Session, time.Time){"fail": tlsFailed(client, "remote error: tls: bad certificate", event.NoSide)}},

		{playCase: playCase{name: "TLS-008 server leg negotiated TLS 1.0",
			opt:    terminate,
			script: greetS + "C: STLS\nS: +OK Begin TLS negotiation now.\n" + tlsHooks + apopS + quitS,
			want:   []exp{typed(event.TLS), typed(event.TLS), viol("TLS-008").by(server).sev(event.Warning).detail("server leg negotiated TLS 1.0")}},
			hooks: map[string]func(*decode.Session, time.Time){"client": startTLS(client, "TLS 1.3"), "server": startTLS(server, "TLS 1.0")}},
		{playCase: playCase{name: "TLS-008 server picked TLS 1.1 although 1.2 was offered: error",
			opt:    terminate,
			script: greetS + "C: STLS\nS: +OK Begin TLS negotiation now.\n" + tlsHooks + apopS + quitS,
			want:   []exp{viol("TLS-008").by(server).sev(event.Error).detail("offered up to TLS 1.3")}},
			hooks: map[string]func(*decode.Session, time.Time){"client": startTLS(client, "TLS 1.3"), "server": startTLS(server, "TLS 1.1", "TLS 1.3", "TLS 1.2", "TLS 1.1")}},
		{playCase: playCase{name: "TLS 1.2 and 1.3 (TLS-008 near-miss)",
			opt:    terminate,
			script: greetS + "C: STLS\nS: +OK Begin TLS negotiation now.\n" + tlsHooks + apopS + quitS,
			want:   []exp{typed(event.TLS), typed(event.TLS), resp("APOP", "+OK")}},
			hooks: map[string]func(*decode.Session, time.Time){"client": startTLS(client, "TLS 1.2"), "server": startTLS(server, "TLS 1.3", "TLS 1.3", "TLS 1.2")}},
	}
}

func extRuleCases() []ruleCase {
	return []ruleCase{
		pc(playCase{name: "EXT-005 8-bit header while UTF-8 mode is off",
			script: loggedIn + "C: RETR 1\nS: +OK\nS: Subject: Gr\xc3\xbc\xc3\x9fe\nS:\nS: body\nS: .\n" + quitS,
			want:   []exp{viol("EXT-005").by(server).sev(event.Warning).detail("header section"), resp("RETR", "+OK")}}),
		pc(playCase{name: "8-bit header in UTF-8 mode; 8-bit body only (EXT-005 near-miss)",
			script: greetS + capaStd("UTF8") + "C: UTF8\nS: +OK\n" + apopS + "C: RETR 1\nS: +OK\nS: Subject: Gr\xc3\xbc\xc3\x9fe\nS:\nS: body\nS: .\n" + quitS,
			want:   []exp{resp("UTF8", "+OK"), resp("RETR", "+OK")}}),
		pc(playCase{name: "8-bit body in UTF-8 mode (EXT-006 near-miss)",
			script: greetS + capaStd("UTF8") + "C: UTF8\nS: +OK\n" + apopS + "C: RETR 1\nS: +OK\nS: Subject: x\nS:\nS: Gr\xc3\xbc\xc3\x9fe\nS: .\n" + quitS,
			want:   []exp{resp("UTF8", "+OK"), resp("RETR", "+OK")}}),
		pc(playCase{name: "8-bit header only is EXT-005, not EXT-006 (EXT-006 near-miss)",
			script: loggedIn + "C: TOP 1 1\nS: +OK\nS: Subject: Gr\xc3\xbc\xc3\x9fe\nS:\nS: plain\nS: .\n" + quitS,
			want:   []exp{viol("EXT-005"), resp("TOP", "+OK")}}),
		pc(playCase{name: "8-bit body only is EXT-006, not EXT-005 (EXT-005 near-miss)",
			script: loggedIn + "C: RETR 1\nS: +OK\nS: Subject: hello\nS:\nS: Gr\xc3\xbc\xc3\x9fe\nS: .\n" + quitS,
			want:   []exp{viol("EXT-006").sev(event.Info), resp("RETR", "+OK")}}),
	}
}

// coalesceAt is coalesce for steps with real times: only writes of one
// side made at the same time are merged (a write minutes later is not in
// the same read).
func coalesceAt(steps []transcript.Step) []transcript.Step {
	var out []transcript.Step
	for _, st := range steps {
		if n := len(out); n > 0 && !st.Close && !out[n-1].Close && out[n-1].Side == st.Side && out[n-1].At == st.At {
			out[n-1].Data = append(append([]byte{}, out[n-1].Data...), st.Data...)
			continue
		}
		out = append(out, st)
	}
	return out
}

// gapRuleCases complete the playbook for rules it covers only in allow
// lists (no case requires them) or without a case named as their
// near-miss.
func gapRuleCases() []ruleCase {
	m1 := size(msg1)
	tlsOpt := decode.Options{ClientTLS: true, ServerTLS: true}
	capaNoUser := capaOf("TOP", "UIDL", "RESP-CODES", "SASL CRAM-MD5")
	oauthErr := b64(`{"status":"invalid_token","scope":"mail"}`)
	return []ruleCase{
		// LINE
		pc(playCase{name: "CRLF split across reads in a command and a status line (LINE-002 near-miss)",
			script: loggedIn + `C: NOOP\r\` + "\n" + `C: \n` + "\n" + `S: +OK\r\` + "\n" + `S: \n` + "\n" + quitS,
			want:   []exp{cmd("NOOP"), resp("NOOP", "+OK")}}),
		pc(playCase{name: "RETR lines whose CRLF is split across reads (LINE-003 near-miss)",
			script: loggedIn + "C: RETR 1\nS: +OK\n" + `S: Subject: a\r\` + "\n" + `S: \n\r\` + "\n" + `S: \nbody\r\n.\r\n` + "\n" + quitS,
			want:   []exp{resp("RETR", "+OK").body(size([]string{"Subject: a", "", "body"}), 3)}}),
		pc(playCase{name: "8-bit USER under UTF8 USER, SASL data and PASS with spaces (LINE-007 near-miss)",
			script: greetS + capaOf("USER", "UTF8 USER", "SASL PLAIN") + "C: USER j\u00fcrgen\nS: +OK\nC: PASS gr\u00fc\u00dfe mit leerzeichen\nS: -ERR\n" +
				"C: AUTH PLAIN\nS: + \nC: " + plainIR + "\nS: -ERR\n" + quitS,
			want:  []exp{cmd("USER").args("j\u00fcrgen"), resp("USER", "+OK"), resp("PASS", "-ERR"), resp("AUTH", "-ERR")},
			allow: []exp{viol("AUTH-002"), viol("AUTH-001"), viol("AUTH-001")}}),
		pc(playCase{name: "8-bit status text after UTF8 +OK (LINE-008 near-miss)",
			script: greetS + capaStd("UTF8") + "C: UTF8\nS: +OK UTF8 enabled\nC: APOP mrose c4c9334bac560ecc979e58001b3e22fb\nS: -ERR Mot de passe \xc3\xa9rron\xc3\xa9\n" + quitS,
			want:   []exp{resp("UTF8", "+OK"), resp("APOP", "-ERR")}}),
		pc(playCase{name: "0x80 where a NUL was (Dovecot outlook-no-nuls) (LINE-009 near-miss)",
			script: loggedIn + "C: RETR 1\nS: +OK\nS: Subject: x\nS:\n" + `S: abc\x80def` + "\nS: .\n" + quitS,
			want:   []exp{viol("EXT-006"), resp("RETR", "+OK")}}),

		// SYNTAX
		pc(playCase{name: "3- and 4-character keywords, a vendor keyword, long SASL data (SYNTAX-001 near-miss)",
			script: greetS + capaPlainS + "C: AUTH PLAIN\nS: + \nC: " + b64("\x00mrose\x00"+strings.Repeat("p", 60)) + "\nS: +OK\nC: TOP 1 0\nS: +OK\nS: Subject: x\nS:\nS: .\nC: XTND XLST Subject\nS: -ERR\n" + quitS,
			want:   []exp{resp("AUTH", "+OK"), resp("TOP", "+OK"), resp("XTND", "-ERR")},
			allow:  cleartext}),
		pc(playCase{name: "SYNTAX-002 lower-case keywords, one refused",
			script: greetS + "C: user mrose\nS: +OK\nC: PASS tanstaaf\nS: +OK\nC: stat\nS: -ERR Unknown command: stat\n" + quitS,
			want: []exp{viol("SYNTAX-002").by(client).sev(event.Info).detail(`"user"`), resp("USER", "+OK"),
				viol("SYNTAX-002").detail("that refusal is the server's fault"), resp("STAT", "-ERR")},
			allow: cleartext}),
		pc(playCase{name: "upper-case keywords and lower-case arguments (SYNTAX-002 near-miss)",
			script: greetS + capaS + "C: AUTH cram-md5\nS: + " + cramCh + "\nC: " + cramResp + "\nS: +OK\n" + quitS,
			want:   []exp{resp("AUTH", "+OK")}}),
		pc(playCase{name: "SYNTAX-003 trailing SP, two SPs, leading SP",
			script: loggedIn + "C: RETR 1 \nS: -ERR Noise after message number\nC: LIST  1\nS: -ERR\nC:  NOOP\nS: -ERR\n" + quitS,
			want: []exp{viol("SYNTAX-003").by(client).sev(event.Warning).detail("trailing SP"), viol("SYNTAX-003").detail("two or more SPs"),
				viol("SYNTAX-003").detail("leading SP")}}),
		pc(playCase{name: "SYNTAX-003 Outlook's AUTH with a trailing space",
			script: greetS + "C: AUTH \nS: +OK\nS: PLAIN\nS: .\n" + quitS,
			want:   []exp{viol("SYNTAX-003").detail("Outlook"), resp("AUTH", "+OK")},
			allow:  []exp{viol("LEGACY-002")}}),
		pc(playCase{name: "PASS with spaces is one argument (SYNTAX-003 near-miss)",
			script: greetS + "C: USER mrose\nS: +OK\nC: PASS my  secret pass \nS: +OK\n" + quitS,
			want:   []exp{resp("PASS", "+OK"), state(decode.AuthUser, decode.Transaction)},
			allow:  cleartext}),
		pc(playCase{name: "SYNTAX-004 argument over 40 characters to a CAPA-less server",
			script: greetS + "C: USER very.long.address.of.more.than.forty@example.org\nS: -ERR\n" + quitS,
			want:   []exp{viol("SYNTAX-004").by(client).sev(event.Warning).detail("USER argument of 48 characters"), resp("USER", "-ERR")}}),
		pc(playCase{name: "long argument after CAPA succeeded (SYNTAX-004 near-miss)",
			script: greetS + capaPlainS + "C: USER very.long.address.of.more.than.forty@example.org\nS: -ERR\n" + quitS,
			want:   []exp{resp("CAPA", "+OK"), resp("USER", "-ERR")},
			allow:  []exp{viol("AUTH-002")}}),
		pc(playCase{name: "bare +OK and a continuation during AUTH (SYNTAX-007 near-miss)",
			script: "S: +OK\n" + capaS + "C: AUTH CRAM-MD5\nS: + " + cramCh + "\nC: *\nS: -ERR\nC: NOOP\nS: -ERR\n" + quitS,
			want:   []exp{greet("+OK").text(""), cont(), resp("AUTH", "-ERR"), resp("NOOP", "-ERR")},
			allow:  []exp{viol("STATE-001")}}),

		// GREET, STATE
		pc(playCase{name: "positive greetings with and without text (GREET-001 near-miss)",
			script: "S: +OK POP3 server ready\n" + quitS,
			want:   []exp{greet("+OK"), state(decode.GreetingWait, decode.AuthReady)}}),
		pc(playCase{name: "APOP after a greeting with a timestamp (GREET-004 near-miss)",
			script: loggedIn + quitS,
			want:   []exp{greet("+OK").ts(apopTS), resp("APOP", "+OK"), state(decode.AuthReady, decode.Transaction)}}),
		pc(playCase{name: "commands in the states they belong to (STATE-001 near-miss)",
			script: greetS + capaS + "C: AUTH CRAM-MD5\nS: -ERR\n" + apopS + capaS + statS + "C: NOOP\nS: +OK\nC: RSET\nS: +OK\n" + quitS,
			want:   []exp{resp("CAPA", "+OK"), resp("AUTH", "-ERR"), resp("APOP", "+OK"), resp("CAPA", "+OK"), resp("STAT", "+OK"), resp("NOOP", "+OK"), resp("RSET", "+OK")}}),
		pc(playCase{name: "wrong-state commands refused (STATE-002 near-miss)",
			script: greetS + "C: STAT\nS: -ERR\nC: PASS x\nS: -ERR No username given.\n" + apopS + "C: USER mrose\nS: -ERR\nC: AUTH CRAM-MD5\nS: -ERR\n" + quitS,
			want:   []exp{viol("STATE-001"), resp("STAT", "-ERR"), viol("STATE-003"), resp("PASS", "-ERR"), viol("STATE-001"), resp("USER", "-ERR"), viol("STATE-001"), resp("AUTH", "-ERR")},
			allow:  []exp{viol("AUTH-001")}}),
		pc(playCase{name: "STATE-003 a refused STLS between USER and PASS",
			script: greetS + "C: USER mrose\nS: +OK\nC: STLS\nS: -ERR not now\nC: PASS tanstaaf\nS: -ERR\n" + quitS,
			want:   []exp{state(decode.AuthReady, decode.AuthUser), resp("STLS", "-ERR"), state(decode.AuthUser, decode.AuthReady), viol("STATE-003").detail("STLS came between"), resp("PASS", "-ERR")},
			allow:  []exp{viol("AUTH-001")}}),
		pc(playCase{name: "STATE-003 a mechanism discovery between USER and PASS",
			script: greetS + "C: USER mrose\nS: +OK\nC: AUTH\nS: +OK\nS: PLAIN\nS: .\nC: PASS tanstaaf\nS: -ERR\n" + quitS,
			want:   []exp{resp("AUTH", "+OK"), state(decode.AuthUser, decode.AuthReady), viol("STATE-003").detail("AUTH came between"), resp("PASS", "-ERR")},
			allow:  []exp{viol("AUTH-001"), viol("LEGACY-002")}}),
		pc(playCase{name: "QUIT answered +OK, then the server closes (STATE-005 near-miss)",
			script: greetS + "C: QUIT\nS: +OK bye\n# close: server\n# close: client\n",
			want:   []exp{resp("QUIT", "+OK"), state(decode.AuthReady, decode.Closed)}}),

		// AUTH
		pc(playCase{name: "AUTH-001 USER/PASS in the clear with STLS advertised (downgrade)",
			script: greetS + capaOf("USER", "STLS") + "C: USER mrose\nS: +OK\nC: PASS tanstaaf\nS: -ERR\n" + quitS,
			want:   []exp{cmd("PASS"), viol("AUTH-001").by(client).sev(event.Warning).detail("downgrade: the server had advertised STLS")},
			allow:  []exp{viol("AUTH-002")}}),
		pc(playCase{name: "AUTH-001 AUTH PLAIN in the clear after STLS was refused",
			script: greetS + "C: STLS\nS: -ERR not now\nC: AUTH PLAIN " + plainIR + "\nS: -ERR\n" + quitS,
			want:   []exp{viol("AUTH-001").detail("STLS was refused just before")},
			allow:  []exp{viol("SASL-002")}}),
		pc(playCase{name: "APOP, CRAM-MD5, and USER/PASS inside TLS (AUTH-001 near-miss)",
			opt:    tlsOpt,
			script: greetS + "C: APOP mrose c4c9334bac560ecc979e58001b3e22fb\nS: -ERR\n" + capaPlainS + "C: AUTH CRAM-MD5\nS: + " + cramCh + "\nC: " + cramResp + "\nS: -ERR\n" + userPass + quitS,
			want:   []exp{resp("APOP", "-ERR"), resp("AUTH", "-ERR"), resp("PASS", "+OK")}}),
		pc(playCase{name: "AUTH-002 password logins offered and accepted without TLS",
			script: greetS + capaPlainS + "C: USER mrose\nS: +OK\nC: PASS tanstaaf\nS: +OK\n" + quitS,
			want:   []exp{viol("AUTH-002").by(server).sev(event.Warning).detail("USER, SASL PLAIN"), resp("CAPA", "+OK"), viol("AUTH-001")}}),
		pc(playCase{name: "AUTH-002 password login accepted without TLS, no CAPA",
			script: greetS + userPass + quitS,
			want:   []exp{viol("AUTH-001"), resp("PASS", "+OK"), viol("AUTH-002").detail("accepted a password login without TLS")}}),
		pc(playCase{name: "password logins offered and accepted under TLS (AUTH-002 near-miss)",
			opt:    tlsOpt,
			script: greetS + capaPlainS + userPass + quitS,
			want:   []exp{resp("CAPA", "+OK"), resp("PASS", "+OK")}}),

		// SASL
		pc(playCase{name: "SASL-004 client SASL line and initial response not base64",
			script: greetS + capaS + "C: AUTH CRAM-MD5\nS: + " + cramCh + "\nC: !!!notbase64\nS: -ERR [AUTH] Invalid base64 in response\nC: AUTH CRAM-MD5 Zm9v=\nS: -ERR\n" + quitS,
			want:   []exp{saslResp(), viol("SASL-004").by(client).detail("not valid base64"), resp("AUTH", "-ERR"), viol("SASL-004"), resp("AUTH", "-ERR")},
			allow:  []exp{viol("RESP-004")}}),
		pc(playCase{name: "'=', an empty response and '*' (SASL-004 near-miss)",
			script: greetS + capaOf("SASL EXTERNAL CRAM-MD5") + "C: AUTH EXTERNAL =\nS: -ERR\nC: AUTH EXTERNAL\nS: + \nC:\nS: -ERR\nC: AUTH CRAM-MD5\nS: + " + cramCh + "\nC: *\nS: -ERR\n" + quitS,
			want:   []exp{resp("AUTH", "-ERR"), saslResp().args(""), resp("AUTH", "-ERR"), saslResp().args("*"), resp("AUTH", "-ERR")}}),
		pc(playCase{name: "'*' and an invalid line answered -ERR (SASL-005 near-miss)",
			script: greetS + capaS + "C: AUTH CRAM-MD5\nS: + " + cramCh + "\nC: *\nS: -ERR Authentication aborted by client.\nC: AUTH CRAM-MD5\nS: + " + cramCh + "\nC: !!\nS: -ERR Invalid base64\n" + quitS,
			want:   []exp{saslResp().args("*"), resp("AUTH", "-ERR"), viol("SASL-004"), resp("AUTH", "-ERR")}}),
		pc(playCase{name: "SASL-005 +OK after an invalid SASL line",
			script: greetS + capaS + "C: AUTH CRAM-MD5\nS: + " + cramCh + "\nC: !!\nS: +OK\n" + quitS,
			want:   []exp{viol("SASL-004"), resp("AUTH", "+OK"), viol("SASL-005").by(server).detail("+OK after an invalid SASL line")}}),
		pc(playCase{name: "SASL line sent after the challenge (SASL-008 near-miss)",
			script: greetS + capaS + "C: AUTH CRAM-MD5\nS: + " + cramCh + "\nC: " + cramResp + "\nS: +OK\n" + quitS,
			want:   []exp{cont(), saslResp(), resp("AUTH", "+OK")}}),
		pc(playCase{name: "SASL-009 malformed client messages",
			script: greetS + capaOf("SASL PLAIN CRAM-MD5 XOAUTH2") + "C: AUTH PLAIN " + b64("mrose\x00tanstaaf") + "\nS: -ERR\nC: AUTH CRAM-MD5\nS: + " + cramCh + "\nC: " + b64("tim B913A602C7EDA7A495B4E6E7334D3890") + "\nS: -ERR\n" +
				"C: AUTH XOAUTH2 " + b64("user=mrose\x01auth=token\x01\x01") + "\nS: -ERR\n" + quitS,
			want: []exp{viol("SASL-009").by(client).sev(event.Error).detail("1 NUL separators"), viol("SASL-009").detail("32 lower-case hex"),
				viol("SASL-009").sev(event.Warning).detail("vendor format")},
			allow: []exp{viol("AUTH-002"), viol("AUTH-001")}}),
		pc(playCase{name: "SASL-009 OAUTHBEARER client ignores the error challenge",
			script: greetS + capaOf("SASL OAUTHBEARER") + "C: AUTH OAUTHBEARER " + b64("n,a=mrose@example.org,\x01auth=Bearer tok\x01\x01") + "\nS: + " + oauthErr + "\nC: " + b64("again") + "\nS: -ERR\n" + quitS,
			want:   []exp{cont(), saslResp(), viol("SASL-009").detail("AQ=="), resp("AUTH", "-ERR")}}),
		pc(playCase{name: "well-formed PLAIN with authzid, CRAM-MD5, OAUTHBEARER error completed with AQ== (SASL-009 near-miss)",
			script: greetS + capaOf("SASL PLAIN CRAM-MD5 OAUTHBEARER") + "C: AUTH PLAIN " + b64("admin\x00mrose\x00tanstaaf") + "\nS: -ERR\nC: AUTH CRAM-MD5\nS: + " + cramCh + "\nC: " + cramResp + "\nS: -ERR\n" +
				"C: AUTH OAUTHBEARER " + b64("n,a=mrose@example.org,\x01auth=Bearer tok\x01\x01") + "\nS: + " + oauthErr + "\nC: AQ==\nS: -ERR\n" + quitS,
			want:  []exp{resp("AUTH", "-ERR"), resp("AUTH", "-ERR"), saslResp(), resp("AUTH", "-ERR")},
			allow: []exp{viol("AUTH-002"), viol("AUTH-001")}}),

		// TLS
		pc(playCase{name: "STLS in AUTHORIZATION (TLS-001 near-miss)",
			script: greetS + "C: USER mrose\nS: +OK\nC: STLS\nS: -ERR not now\n" + apopS + quitS,
			want:   []exp{resp("STLS", "-ERR"), resp("APOP", "+OK")}}),
		pc(playCase{name: "nothing but the handshake after STLS (TLS-003 near-miss)",
			script: greetS + "C: STLS\nS: +OK Begin TLS negotiation now.\n" + clientHelloS + serverHelloS,
			want:   []exp{resp("STLS", "+OK"), opaque()}}),

		// CAPA
		pc(playCase{name: "CAPA-001 USER and SASL dropped after login (Dovecot)",
			script: greetS + capaPlainS + apopS + capaOf("TOP", "UIDL", "RESP-CODES", "PIPELINING") + quitS,
			want:   []exp{state(decode.AuthReady, decode.Transaction), viol("CAPA-001").by(server).detail("missing after login: SASL, USER"), resp("CAPA", "+OK")},
			allow:  []exp{viol("AUTH-002")}}),
		pc(playCase{name: "CAPA-001 two CAPA replies in one state differ",
			script: greetS + capaS + capaOf("TOP", "UIDL", "RESP-CODES", "SASL CRAM-MD5") + quitS,
			want:   []exp{viol("CAPA-001").detail("changed without reason between two CAPA replies in the same state: PIPELINING")}}),
		pc(playCase{name: "STLS, IMPLEMENTATION, LOGIN-DELAY and EXPIRE may change after login (CAPA-001 near-miss)",
			script: greetS + capaStd("STLS", "LOGIN-DELAY 900 USER", "EXPIRE 30 USER") + apopS + capaStd("IMPLEMENTATION Example-POP3", "LOGIN-DELAY 300", "EXPIRE 60") + quitS,
			want:   []exp{resp("CAPA", "+OK"), resp("APOP", "+OK"), resp("CAPA", "+OK")}}),
		pc(playCase{name: "CAPA-004 USER and TOP not listed",
			script: greetS + capaNoUser + "C: USER mrose\nS: -ERR\n" + apopS + capaOf("UIDL") + "C: TOP 1 0\nS: -ERR\n" + quitS,
			want:   []exp{viol("CAPA-004").by(client).sev(event.Warning).detail("USER used but CAPA did not list USER"), resp("USER", "-ERR"), viol("CAPA-004").detail("TOP used")},
			allow:  []exp{viol("CAPA-001")}}),
		{playCase: playCase{name: "CAPA-004 no CAPA after STLS",
			opt:    decode.Options{TerminateTLS: true},
			script: greetS + capaOf("USER", "STLS") + "C: STLS\nS: +OK\n" + tlsHooks + "C: USER mrose\nS: +OK\n" + quitS,
			want:   []exp{typed(event.TLS), typed(event.TLS), viol("CAPA-004").detail("no CAPA after STLS"), resp("USER", "+OK")},
			allow:  []exp{viol("AUTH-002")}},
			hooks: bothTLS13},
		pc(playCase{name: "commands without CAPA, or listed (CAPA-004 near-miss)",
			script: greetS + "C: USER mrose\nS: -ERR\n" + capaPlainS + "C: USER mrose\nS: -ERR\n" + apopS + capaS + "C: TOP 1 0\nS: -ERR\nC: UIDL\nS: +OK\nS: .\n" + quitS,
			want:   []exp{resp("USER", "-ERR"), resp("USER", "-ERR"), resp("TOP", "-ERR"), resp("UIDL", "+OK")},
			allow:  []exp{viol("AUTH-002"), viol("CAPA-001")}}),
		pc(playCase{name: "CAPA-006 unregistered capabilities",
			script: greetS + capaOf("TOP", "X-GOOGLE-RICO", "CAPA") + quitS,
			want: []exp{viol("CAPA-006").by(server).sev(event.Info).detail("X- private space"), viol("CAPA-006").detail("squats on the registry"),
				resp("CAPA", "+OK")}}),
		pc(playCase{name: "registered capabilities only (CAPA-006 near-miss)",
			script: greetS + capaOf("TOP", "USER", "SASL CRAM-MD5", "RESP-CODES", "LOGIN-DELAY 900", "PIPELINING", "EXPIRE NEVER", "UIDL",
				"IMPLEMENTATION x", "STLS", "AUTH-RESP-CODE", "UTF8", "LANG") + quitS,
			want:  []exp{resp("CAPA", "+OK")},
			allow: []exp{viol("AUTH-002")}}),

		// PIPE
		pc(playCase{name: "PIPE-001 USER and PASS in one write, PIPELINING not in CAPA",
			script: greetS + capaOf("USER", "TOP") + `C: USER mrose\r\nPASS tanstaaf\r\n` + "\nS: +OK\nS: +OK\n" + quitS,
			want:   []exp{cmd("PASS").pipelined(true), viol("PIPE-001").by(client).sev(event.Warning).detail("PIPELINING was not in CAPA")},
			allow:  cleartext}),
		pc(playCase{name: "PIPE-001 pipelining with capabilities unknown",
			script: loggedIn + `C: NOOP\r\nNOOP\r\n` + "\nS: +OK\nS: +OK\n" + quitS,
			want:   []exp{cmd("NOOP").pipelined(true), viol("PIPE-001").detail("capabilities unknown")}}),
		pc(playCase{name: "pipelining with PIPELINING; SASL responses; a command before the greeting (PIPE-001 near-miss)",
			script: "C: CAPA\n" + greetS + "S: +OK\nS: PIPELINING\nS: SASL CRAM-MD5\nS: .\n" + "C: AUTH CRAM-MD5\nS: + " + cramCh + "\nC: " + cramResp + "\nS: +OK\n" +
				`C: STAT\r\nNOOP\r\n` + "\nS: +OK 2 320\nS: +OK\n" + quitS,
			want:  []exp{resp("CAPA", "+OK"), resp("AUTH", "+OK"), cmd("NOOP").pipelined(true), resp("NOOP", "+OK")},
			allow: []exp{viol("CONN-001")}}),

		// MULTI
		pc(playCase{name: "server closes right after the terminator and the QUIT reply (MULTI-001 near-miss)",
			script: loggedIn + "C: RETR 1\n" + retrS(msg1) + "C: QUIT\nS: +OK\n# close: server\n# close: client\n",
			want:   []exp{resp("RETR", "+OK").body(m1, len(msg1)), resp("QUIT", "+OK")}}),
		pc(playCase{name: "multi-line bodies where they belong, one starting like a status line (MULTI-003 near-miss)",
			script: loggedIn + uidlS("1 A", "2 B") + "C: RETR 1\nS: +OK\nS: +OK not a status line\nS: .\nC: NOOP\nS: +OK\n" + quitS,
			want:   []exp{resp("UIDL", "+OK"), resp("RETR", "+OK").body(size([]string{"+OK not a status line"}), 1), resp("NOOP", "+OK")}}),
		pc(playCase{name: "status-looking lines inside RETR and TOP bodies (MULTI-004 near-miss)",
			script: loggedIn + "C: TOP 1 1\nS: +OK\nS: Subject: x\nS:\nS: -ERR looks like a status\nS: .\n" + uidlS("1 +OKAY") + quitS,
			want:   []exp{resp("TOP", "+OK").body(size([]string{"Subject: x", "", "-ERR looks like a status"}), 3), resp("UIDL", "+OK")}}),

		// RESP
		pc(playCase{name: "RESP-001 unregistered code; code without RESP-CODES",
			script: greetS + capaS + "C: APOP mrose c4c9334bac560ecc979e58001b3e22fb\nS: -ERR [XYZZY] no\n" + capaOf("TOP") + apopS + "C: RETR 9\nS: -ERR [SYS/TEMP] busy\n" + quitS,
			want: []exp{viol("RESP-001").by(server).sev(event.Info).detail("[XYZZY] is not registered"), resp("APOP", "-ERR"),
				viol("RESP-001").detail("RESP-CODES was not in CAPA"), resp("RETR", "-ERR")},
			allow: []exp{viol("CAPA-001").maybe()}}),
		pc(playCase{name: "registered codes with RESP-CODES; unknown sub-level; brackets later in the text (RESP-001 near-miss)",
			script: "S: +OK The Microsoft Exchange POP3 service is ready. [TQBOADIAUABSADAAOAB]\n" + capaS +
				"C: AUTH CRAM-MD5\nS: + " + cramCh + "\nC: " + cramResp + "\nS: -ERR [IN-USE/SESSION] locked\n" +
				"C: AUTH CRAM-MD5\nS: + " + cramCh + "\nC: " + cramResp + "\nS: +OK\nC: RETR 9\nS: -ERR [SYS/TEMP/DISK] busy\n" + quitS,
			want:  []exp{greet("+OK"), resp("AUTH", "-ERR").code("IN-USE/SESSION"), resp("AUTH", "+OK"), resp("RETR", "-ERR").code("SYS/TEMP/DISK")},
			allow: []exp{viol("QUIRK-001")}}),
		pc(playCase{name: "RESP-004 [AUTH] without AUTH-RESP-CODE; [AUTH] on a mechanism error",
			script: greetS + capaS + "C: APOP mrose c4c9334bac560ecc979e58001b3e22fb\nS: -ERR [AUTH] bad digest\n" + capaStd("AUTH-RESP-CODE") +
				"C: AUTH FOO\nS: -ERR [AUTH] Unsupported authentication mechanism.\n" + quitS,
			want: []exp{viol("RESP-004").by(server).sev(event.Warning).detail("AUTH-RESP-CODE is not in CAPA"), resp("APOP", "-ERR"),
				viol("RESP-004").detail("not about credentials"), resp("AUTH", "-ERR")},
			allow: []exp{viol("CAPA-001"), viol("SASL-001")}}),
		pc(playCase{name: "[AUTH] on a credential failure with AUTH-RESP-CODE (RESP-004 near-miss)",
			script: greetS + capaStd("AUTH-RESP-CODE") + "C: APOP mrose c4c9334bac560ecc979e58001b3e22fb\nS: -ERR [AUTH] Authentication failed.\n" + quitS,
			want:   []exp{resp("APOP", "-ERR").code("AUTH")}}),

		// EXT, TIME
		pc(playCase{name: "EXT-004 8-bit USER without UTF8 USER",
			script: greetS + capaOf("USER", "UTF8") + "C: USER j\u00fcrgen\nS: -ERR\n" + quitS,
			want:   []exp{viol("LINE-007"), cmd("USER"), viol("EXT-004").by(client).sev(event.Error).detail(`did not announce "UTF8 USER"`)},
			allow:  []exp{viol("AUTH-002")}}),
		pc(playCase{name: "EXT-004 invalid UTF-8 under UTF8 USER, accepted",
			script: greetS + capaOf("USER", "UTF8 USER") + "C: USER j\xfcrgen\nS: +OK\n" + quitS,
			want:   []exp{viol("EXT-004").detail("not valid UTF-8"), viol("SYNTAX-006").by(server), resp("USER", "+OK")},
			allow:  []exp{viol("AUTH-002")}}),
		pc(playCase{name: "valid UTF-8 login under UTF8 USER (EXT-004 near-miss)",
			script: greetS + capaOf("USER", "UTF8 USER") + "C: USER j\u00fcrgen\nS: +OK\nC: PASS gr\u00fc\u00dfe\nS: -ERR\n" + quitS,
			want:   []exp{resp("USER", "+OK"), resp("PASS", "-ERR")},
			allow:  []exp{viol("AUTH-002"), viol("AUTH-001")}}),
		{playCase: playCase{name: "TIME-001 server closes an idle TRANSACTION session after 5 minutes",
			script: loggedIn + statS + "# at: +5m\n" + closeBoth,
			want:   []exp{resp("STAT", "+OK"), viol("TIME-001").by(server).sev(event.Error).detail("TRANSACTION session 5m0s after the client's last activity"), viol("CONN-004")}},
			exact: true},
		{playCase: playCase{name: "TIME-001 detail: the server said goodbye first",
			script: loggedIn + statS + "# at: +5m\nS: -ERR autologout; idle for too long\n" + closeBoth,
			want:   []exp{viol("TIME-001").detail(`it sent "-ERR autologout; idle for too long" first`), viol("CONN-004")}},
			exact: true},
		{playCase: playCase{name: "server closes after 10 minutes idle (TIME-001 near-miss)",
			script: loggedIn + statS + "# at: +10m\n" + closeBoth,
			want:   []exp{resp("STAT", "+OK"), viol("CONN-004")}},
			exact: true},

		// CONN, LEGACY, QUIRK
		pc(playCase{name: "QUIT +OK then both sides close (CONN-004 near-miss)",
			script: loggedIn + "C: DELE 1\nS: +OK\n" + quitS,
			want:   []exp{resp("QUIT", "+OK"), state(decode.Transaction, decode.Update), state(decode.Update, decode.Closed)}}),
		pc(playCase{name: "AUTH LOGIN and USER login as first commands are POP3 (CONN-005 near-miss)",
			script: greetS + capaOf("SASL LOGIN") + "C: AUTH LOGIN\nS: + VXNlcm5hbWU6\nC: *\nS: -ERR\nC: USER login\nS: +OK\n" + quitS,
			want:   []exp{resp("AUTH", "-ERR"), resp("USER", "+OK")},
			allow:  []exp{viol("AUTH-002"), viol("CAPA-004")}}),
		pc(playCase{name: "LEGACY-001 RPOP",
			script: greetS + "C: USER mrose\nS: +OK\nC: RPOP mrose\nS: -ERR Unknown command\n" + quitS,
			want:   []exp{viol("AUTH-001").detail("privileged source port"), viol("LEGACY-001").by(client).sev(event.Info).detail("RPOP"), resp("RPOP", "-ERR")}}),
		pc(playCase{name: "UIDL and a vendor command instead of LAST (LEGACY-001 near-miss)",
			script: loggedIn + uidlS("1 A", "2 B") + "C: XTND XLST Subject\nS: -ERR\n" + quitS,
			want:   []exp{resp("UIDL", "+OK"), resp("XTND", "-ERR")}}),
		pc(playCase{name: "registered commands UTF8 and LANG answered +OK (LEGACY-002 near-miss)",
			script: greetS + capaOf("UTF8", "LANG") + "C: UTF8\nS: +OK\nC: LANG\nS: +OK\nS: en English\nS: .\n" + quitS,
			want:   []exp{resp("UTF8", "+OK"), resp("LANG", "+OK")}}),
		pc(playCase{name: "QUIRK-001 Dovecot identified from the greeting",
			script: "S: +OK Dovecot (Debian) ready. <4028.1.6b079be5.T6qI@vm>\n" + capaOf("TOP", "CAPA") + quitS,
			want:   []exp{greet("+OK"), viol("QUIRK-001").by(server).sev(event.Info).detail("Dovecot"), viol("CAPA-006").detail("known quirk of Dovecot")}}),
		pc(playCase{name: "QUIRK-001 Cyrus identified from IMPLEMENTATION",
			script: greetS + capaOf("TOP", "IMPLEMENTATION Cyrus POP3 3.6.1") + quitS,
			want:   []exp{viol("QUIRK-001").detail("Cyrus")}}),
		pc(playCase{name: "unknown server and IMPLEMENTATION (QUIRK-001 near-miss)",
			script: greetS + capaOf("TOP", "IMPLEMENTATION Example-POP3 1.0") + quitS,
			want:   []exp{resp("CAPA", "+OK")}}),
	}
}

// hookLines returns the "# hook: NAME" comment lines of a script with
// their 1-based line numbers (the numbering of transcript.Step.Line).
func hookLines(script string) (lines []int, names []string) {
	for i, l := range strings.Split(script, "\n") {
		l = strings.TrimSpace(l)
		if name, ok := strings.CutPrefix(l, "# hook:"); ok {
			lines = append(lines, i+1)
			names = append(names, strings.TrimSpace(name))
		}
	}
	return lines, names
}

// runRule is run with the extras of a ruleCase.
func runRule(rc ruleCase, steps []transcript.Step) []*event.Event {
	var evs []*event.Event
	opt := rc.opt
	if opt.Session == "" {
		opt.Session = "t"
	}
	s := decode.New(opt, func(e *event.Event) { evs = append(evs, e) })
	if !rc.exact {
		steps = transcript.Spread(steps, time.Millisecond)
	}
	lines, names := hookLines(rc.script)
	h := 0
	fire := func(before int, at time.Time) {
		for ; h < len(lines) && lines[h] < before; h++ {
			f := rc.hooks[names[h]]
			if f == nil {
				panic("no hook " + names[h])
			}
			f(s, at)
		}
	}
	lastTick, end := t0, t0
	for _, st := range steps {
		at := t0.Add(st.At)
		for rc.tick > 0 && !lastTick.Add(rc.tick).After(at) {
			lastTick = lastTick.Add(rc.tick)
			s.Tick(lastTick)
		}
		fire(st.Line, at)
		if st.Close {
			s.Close(st.Side, at)
		} else {
			s.Feed(st.Side, at, st.Data)
		}
		end = at
	}
	fire(math.MaxInt, end)
	s.Finish(end.Add(time.Millisecond))
	return evs
}

// ruleProblems is playProblems for a case with extras: the same checks
// and feeding modes, with runRule as the runner.
func ruleProblems(rc ruleCase, steps []transcript.Step) []string {
	if rc.hooks == nil && rc.tick == 0 && !rc.exact {
		return playProblems(rc.playCase, steps)
	}
	var problems []string
	ref := runRule(rc, steps)
	for _, p := range wellFormed(ref, "t") {
		problems = append(problems, "malformed event stream: "+p)
	}
	if errs := matchEvents(rc.want, rc.allow, ref); len(errs) > 0 {
		problems = append(problems, fmt.Sprintf("%s\nevents:\n%s", strings.Join(errs, "\n"), dump(ref)))
	}
	want := keys(ref)
	differs := func(mode string, st []transcript.Step) bool {
		got := runRule(rc, st)
		if d := diffKeys(want, keys(got)); d != "" {
			problems = append(problems, fmt.Sprintf("%s: events differ from the step-by-step run: %s\nstep-by-step:\n%s%s:\n%s", mode, d, dump(ref), mode, dump(got)))
			return true
		}
		return false
	}
	merged := coalesce(steps)
	if rc.exact {
		merged = coalesceAt(steps)
	}
	if differs("byte by byte", bytewise(steps)) || differs("merged writes", merged) {
		return problems
	}
	for i, st := range steps {
		for _, k := range splitOffsets(len(st.Data)) {
			if differs(fmt.Sprintf("step %d (%s) split at %d", i, st, k), splitStep(steps, i, k)) {
				return problems
			}
		}
	}
	return problems
}

func TestRuleCases(t *testing.T) {
	seen := map[string]bool{}
	for _, tc := range cases() {
		seen[tc.name] = true
	}
	for _, rc := range ruleCases() {
		if seen[rc.name] {
			t.Fatalf("duplicate case name %q", rc.name)
		}
		seen[rc.name] = true
		t.Run(rc.name, func(t *testing.T) {
			steps, err := transcript.ParseString(rc.script)
			if err != nil {
				t.Fatalf("bad script: %v", err)
			}
			problems := ruleProblems(rc, steps)
			switch {
			case len(problems) > 0 && rc.knownBug != "":
				t.Skipf("known bug: %s\n%s", rc.knownBug, cutText(problems[0], 2000))
			case len(problems) > 0:
				t.Error(strings.Join(problems, "\n"))
			case rc.knownBug != "":
				t.Errorf("knownBug %q is fixed: the case passes; remove the marker", rc.knownBug)
			}
		})
	}
}

// TestRuleCaseCoverage checks that every catalog rule has, among the
// playbook, rule and store cases (knownBug cases excluded), a trigger (a
// case that requires the violation) and a near-miss (a case whose name
// says "(RULE near-miss)" and that neither wants nor allows RULE).
func TestRuleCaseCoverage(t *testing.T) {
	type named struct {
		name        string
		want, allow []exp
	}
	var all []named
	for _, c := range cases() {
		if c.knownBug == "" {
			all = append(all, named{c.name, c.want, c.allow})
		}
	}
	for _, rc := range ruleCases() {
		if rc.knownBug == "" {
			all = append(all, named{rc.name, rc.want, rc.allow})
		}
	}
	for _, sc := range storeCases() {
		if sc.knownBug != "" {
			continue
		}
		c := named{name: sc.name}
		for _, ss := range sc.sessions {
			c.want = append(c.want, ss.want...)
			c.allow = append(c.allow, ss.allow...)
		}
		all = append(all, c)
	}
	mentions := func(list []exp, id string, required bool) bool {
		for _, w := range list {
			if strings.HasPrefix(w.desc, id) && (!required || !w.optional) {
				return true
			}
		}
		return false
	}
	for _, r := range decode.Rules() {
		trigger, nearMiss := false, false
		short := strings.TrimPrefix(r.ID, "POP3-")
		for _, c := range all {
			if mentions(c.want, r.ID, true) {
				trigger = true
			}
			if nearMissOf(c.name)[short] {
				if mentions(c.want, r.ID, false) || mentions(c.allow, r.ID, false) {
					t.Errorf("%s: case %q is named a near-miss but expects or allows it", short, c.name)
				}
				nearMiss = true
			}
		}
		if !trigger {
			t.Errorf("%s: no case requires it", short)
		}
		if !nearMiss {
			t.Errorf("%s: no near-miss case", short)
		}
	}
}

// nearMissOf returns the rules a case name declares itself a near-miss of:
// the IDs inside a parenthesis that contains "near-miss".
func nearMissOf(name string) map[string]bool {
	out := map[string]bool{}
	for _, part := range strings.Split(name, "(")[1:] {
		part, _, _ = strings.Cut(part, ")")
		if !strings.Contains(part, "near-miss") {
			continue
		}
		for _, f := range strings.FieldsFunc(part, func(r rune) bool { return r == ' ' || r == ',' }) {
			if r := decode.LookupRule(f); r != nil && strings.Count(f, "-") == 1 {
				out[f] = true
			}
		}
	}
	return out
}
