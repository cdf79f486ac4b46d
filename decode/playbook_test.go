package decode_test

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/popscope/popscope/decode"
	"github.com/popscope/popscope/decode/transcript"
	"github.com/popscope/popscope/event"
)

// A playbook case is a session in transcript form and the events it must
// produce. The runner (TestPlaybook) replays it step by step, with every
// step split in two at every offset, byte by byte, and with consecutive
// writes of one side merged; the events must be the same in every mode.
type playCase struct {
	name   string
	opt    decode.Options
	script string
	// want is matched as an ordered subsequence of the events. Every
	// violation must be matched by want or allow.
	want []exp
	// allow lists violations that may occur anywhere, at most once each:
	// rules outside the case's point whose firing is legitimate (or not
	// implemented yet), such as AUTH-001 for a cleartext PASS.
	allow []exp
	// knownBug, if set, skips the case with this text: the decoder does
	// not (yet) do what the case expects.
	knownBug string
}

const (
	client = event.Client
	server = event.Server

	apopTS = "<1896.697170952@dbc.mtview.ca.us>"
	// greeting with an APOP timestamp (RFC 1939 §7 example).
	greetS = "S: +OK POP3 server ready " + apopTS + "\n"
	// APOP login: no reusable secret on the wire, so no AUTH-001/002.
	apopS    = "C: APOP mrose c4c9334bac560ecc979e58001b3e22fb\nS: +OK mrose's maildrop has 2 messages (320 octets)\n"
	loggedIn = greetS + apopS
	userPass = "C: USER mrose\nS: +OK mrose is a real hoopy frood\nC: PASS tanstaaf\nS: +OK mrose's maildrop has 2 messages (320 octets)\n"
	quitS    = "C: QUIT\nS: +OK dewey POP3 server signing off\n# close: server\n# close: client\n"
	// a CAPA announcing everything the cases use, without cleartext
	// mechanisms (AUTH-002).
	capaS = "C: CAPA\nS: +OK Capability list follows\nS: TOP\nS: UIDL\nS: RESP-CODES\nS: PIPELINING\nS: SASL CRAM-MD5\nS: .\n"
	// the same with cleartext logins allowed.
	capaPlainS = "C: CAPA\nS: +OK Capability list follows\nS: TOP\nS: UIDL\nS: USER\nS: RESP-CODES\nS: PIPELINING\nS: SASL PLAIN CRAM-MD5\nS: .\n"
)

// The maildrop of the cases: two messages, one with lines that need
// dot-stuffing.
var (
	msg1 = []string{"From: alice@example.org", "Subject: dots", "", ".", "..x", ".hidden", "end"}
	msg2 = []string{"From: bob@example.org", "Subject: hello", "", "Hello, world.", "Bye."}
)

// size is the delivered size of content lines (docs §3.3).
func size(lines []string) int {
	n := 0
	for _, l := range lines {
		n += len(l) + 2
	}
	return n
}

// stuffed is the number of content lines that start with a dot.
func stuffed(lines []string) int {
	n := 0
	for _, l := range lines {
		if strings.HasPrefix(l, ".") {
			n++
		}
	}
	return n
}

// bodyS renders content lines as dot-stuffed server lines and the
// terminator.
func bodyS(lines []string) string {
	var b strings.Builder
	for _, l := range lines {
		if strings.HasPrefix(l, ".") {
			l = "." + l
		}
		b.WriteString("S:")
		if l != "" {
			b.WriteString(" " + l)
		}
		b.WriteString("\n")
	}
	b.WriteString("S: .\n")
	return b.String()
}

// retrS is a complete RETR reply for lines.
func retrS(lines []string) string {
	return fmt.Sprintf("S: +OK %d octets\n", size(lines)) + bodyS(lines)
}

var (
	statS = fmt.Sprintf("C: STAT\nS: +OK 2 %d\n", size(msg1)+size(msg2))
	listS = fmt.Sprintf("C: LIST\nS: +OK 2 messages\nS: 1 %d\nS: 2 %d\nS: .\n", size(msg1), size(msg2))
)

// cleartext lists the rules a cleartext USER/PASS or PLAIN login and a
// CAPA offering it legitimately trigger (docs §4.20).
var cleartext = []exp{viol("AUTH-001").by(client), viol("AUTH-002").by(server), viol("AUTH-002").by(server)}

func cases() []playCase {
	return concatCases(greetingCases(), authCases(), transactionCases(), framingCases(), stateCases(), connCases(), moreCases())
}

func concatCases(lists ...[]playCase) []playCase {
	var out []playCase
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

func greetingCases() []playCase {
	return []playCase{
		{name: "greeting +OK with APOP timestamp, QUIT in AUTHORIZATION",
			script: greetS + quitS,
			want: []exp{
				greet("+OK").ts(apopTS).text("POP3 server ready " + apopTS).by(server),
				state(decode.GreetingWait, decode.AuthReady),
				cmd("QUIT").id(1),
				resp("QUIT", "+OK").id(1).single(),
				state(decode.AuthReady, decode.Closed),
			}},
		{name: "greeting +OK without timestamp",
			script: "S: +OK POP3 ready.\n" + quitS,
			want:   []exp{greet("+OK").ts("").text("POP3 ready."), state(decode.GreetingWait, decode.AuthReady)}},
		{name: "greeting bare +OK is legal (RFC 1957)",
			script: "S: +OK\n" + quitS,
			want:   []exp{greet("+OK").text(""), state(decode.GreetingWait, decode.AuthReady)}},
		{name: "greeting with Dovecot-style base64 timestamp is msg-id shaped (GREET-002 near-miss)",
			script: "S: +OK ready. <4028.1.6b079be5.T6qIa+/b8Ab==@vm>\n" + quitS,
			want:   []exp{greet("+OK").ts("<4028.1.6b079be5.T6qIa+/b8Ab==@vm>")}},
		{name: "greeting with a [base64] suffix has no timestamp (GREET-002 near-miss)",
			script: "S: +OK The Microsoft Exchange POP3 service is ready. [TQBOADIAUABSADAAOAB]\n" + quitS,
			want:   []exp{greet("+OK").ts("")},
			allow:  []exp{viol("QUIRK-001")}},
		{name: "GREET-002 empty timestamp",
			script: "S: +OK ready <>\n" + quitS,
			want:   []exp{greet("+OK").ts("<>"), viol("GREET-002").by(server).detail("empty"), state(decode.GreetingWait, decode.AuthReady)}},
		{name: "GREET-002 timestamp without @",
			script: "S: +OK ready <1896.697170952>\n" + quitS,
			want:   []exp{viol("GREET-002").detail("no @")}},
		{name: "GREET-002 whitespace inside the timestamp",
			script: "S: +OK ready <1896 697170952@host>\n" + quitS,
			want:   []exp{viol("GREET-002").detail("whitespace")}},
		{name: "GREET-002 nested <",
			script: "S: +OK ready <a<1896@host>\n" + quitS,
			want:   []exp{viol("GREET-002").detail("nested")}},
		{name: "GREET-001 negative greeting",
			script: "S: -ERR too many connections\n# close: server\n",
			want:   []exp{greet("-ERR").text("too many connections"), viol("GREET-001").by(server)},
			allow:  []exp{viol("CONN-004")}},
		{name: "negative greeting then close ends CLOSED (§2.1)",
			script: "S: -ERR too many connections\n# close: server\n# close: client\n",
			want:   []exp{viol("GREET-001"), state(decode.GreetingWait, decode.Closed)},
			allow:  []exp{viol("CONN-004")}},
		{name: "GREET-001 first line not a status line",
			script: "S: hello there\n# close: server\n",
			want:   []exp{viol("GREET-001").detail("not a +OK")},
			allow:  []exp{viol("CONN-004")}},
		{name: "GREET-001 lower-case +ok greeting is still taken as positive",
			script: "S: +ok ready\n" + quitS,
			want:   []exp{viol("GREET-001"), state(decode.GreetingWait, decode.AuthReady), resp("QUIT", "+OK"), state(decode.AuthReady, decode.Closed)},
			allow:  []exp{viol("SYNTAX-007")}},
		{name: "LINE-005 greeting longer than 512 octets",
			script: "S: +OK " + strings.Repeat("g", 507) + "\n" + quitS,
			want:   []exp{viol("LINE-005").by(server).detail("513 octets"), greet("+OK")}},
		{name: "greeting of exactly 512 octets (LINE-005 near-miss)",
			script: "S: +OK " + strings.Repeat("g", 506) + "\n" + quitS,
			want:   []exp{greet("+OK")}},
		{name: "CONN-001 command before the greeting",
			script: "C: CAPA\n" + greetS + "S: +OK\nS: TOP\nS: .\n" + quitS,
			want: []exp{
				viol("CONN-001").by(client).off(0), cmd("CAPA"), greet("+OK"),
				resp("CAPA", "+OK").body(5, 1), resp("QUIT", "+OK"), state(decode.AuthReady, decode.Closed)}},
		{name: "command right after the greeting (CONN-001 near-miss)",
			script: greetS + "C: CAPA\nS: +OK\nS: TOP\nS: .\n" + quitS,
			want:   []exp{greet("+OK"), cmd("CAPA").pipelined(false), resp("CAPA", "+OK")}},
		{name: "CONN-005 IMAP server",
			script: "S: * OK [CAPABILITY IMAP4rev1] Dovecot ready.\nS: * BYE\n# close: server\n",
			want:   []exp{viol("CONN-005").by(server).detail("IMAP"), opaque().by(server), state(decode.GreetingWait, decode.Opaque), state(decode.Opaque, decode.Aborted)}},
		{name: "CONN-005 SMTP server",
			script: "S: 220 mail.example.org ESMTP Postfix\n# close: server\n",
			want:   []exp{viol("CONN-005").detail("SMTP"), opaque()}},
		{name: "CONN-005 TLS ClientHello on a plaintext port",
			script: `C: \x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03` + "\n" + "# close: client\n",
			want:   []exp{viol("CONN-005").by(client).detail("ClientHello"), opaque().by(client), state(decode.GreetingWait, decode.Opaque)}},
		{name: "CONN-005 HTTP client",
			script: greetS + "C: GET / HTTP/1.1\nC: Host: x\n",
			want:   []exp{greet("+OK"), viol("CONN-005").by(client).detail("HTTP"), opaque()}},
		{name: "CONN-005 SMTP client",
			script: greetS + "C: EHLO client.example.org\n",
			want:   []exp{viol("CONN-005").by(client).detail("EHLO"), opaque()}},
	}
}

func authCases() []playCase {
	return []playCase{
		{name: "USER/PASS login",
			script: greetS + userPass + quitS,
			want: []exp{
				cmd("USER").args("mrose").id(1), resp("USER", "+OK"), state(decode.AuthReady, decode.AuthUser),
				cmd("PASS").args(decode.Redacted).redacted().id(2), resp("PASS", "+OK"), state(decode.AuthUser, decode.Transaction),
				cmd("QUIT"), resp("QUIT", "+OK"), state(decode.Transaction, decode.Update), state(decode.Update, decode.Closed)},
			allow: cleartext},
		{name: "RevealSecrets shows the password",
			opt:    decode.Options{RevealSecrets: true},
			script: greetS + userPass + quitS,
			want:   []exp{cmd("PASS").args("tanstaaf")},
			allow:  cleartext},
		{name: "USER refused, USER again (STATE-004 near-miss)",
			script: greetS + "C: USER nobody\nS: -ERR no such user\nC: USER mrose\nS: +OK\nC: PASS tanstaaf\nS: +OK\n" + quitS,
			want:   []exp{resp("USER", "-ERR"), state(decode.AuthReady, decode.AuthUser), state(decode.AuthUser, decode.Transaction)},
			allow:  cleartext},
		{name: "STATE-004 USER while a USER is accepted",
			script: greetS + "C: USER mrose\nS: +OK\nC: USER mrose\nS: +OK\nC: PASS tanstaaf\nS: +OK\n" + quitS,
			want:   []exp{resp("USER", "+OK"), viol("STATE-004").by(client), resp("USER", "+OK"), state(decode.AuthUser, decode.Transaction)},
			allow:  cleartext},
		{name: "STATE-003 PASS without USER",
			script: greetS + "C: PASS tanstaaf\nS: -ERR No username given.\n" + quitS,
			want:   []exp{cmd("PASS"), viol("STATE-003").by(client).detail("without a preceding USER"), resp("PASS", "-ERR")},
			allow:  []exp{viol("AUTH-001")}},
		{name: "STATE-003 and STATE-002 PASS without USER accepted",
			script: greetS + "C: PASS tanstaaf\nS: +OK\n" + quitS,
			want:   []exp{viol("STATE-003").by(client), viol("STATE-002").by(server), resp("PASS", "+OK"), state(decode.AuthReady, decode.Transaction)},
			allow:  cleartext},
		{name: "STATE-003 PASS after USER was refused",
			script: greetS + "C: USER x\nS: -ERR\nC: PASS y\nS: -ERR\n" + quitS,
			want:   []exp{viol("STATE-003").detail("refused")},
			allow:  []exp{viol("AUTH-001")}},
		{name: "STATE-003 CAPA between USER and PASS",
			script: greetS + "C: USER mrose\nS: +OK\n" + capaS + "C: PASS tanstaaf\nS: -ERR\n" + quitS,
			want: []exp{state(decode.AuthReady, decode.AuthUser), resp("CAPA", "+OK"), state(decode.AuthUser, decode.AuthReady),
				viol("STATE-003").detail("CAPA came between"), resp("PASS", "-ERR")},
			allow: []exp{viol("AUTH-001"), viol("CAPA-004").detail("USER"), viol("CAPA-004").detail("PASS")}},
		{name: "USER and PASS pipelined in one write (STATE-003 near-miss)",
			script: greetS + capaPlainS + `C: USER mrose\r\nPASS tanstaaf\r\n` + "\nS: +OK\nS: +OK\n" + quitS,
			want: []exp{cmd("USER").pipelined(false), cmd("PASS").pipelined(true), resp("USER", "+OK"), state(decode.AuthReady, decode.AuthUser),
				resp("PASS", "+OK"), state(decode.AuthUser, decode.Transaction)},
			allow: cleartext},
		{name: "APOP login",
			script: loggedIn + quitS,
			want: []exp{cmd("APOP").args("mrose " + decode.Redacted).redacted(), resp("APOP", "+OK"),
				state(decode.AuthReady, decode.Transaction), state(decode.Transaction, decode.Update), state(decode.Update, decode.Closed)}},
		{name: "GREET-004 APOP without timestamp, accepted",
			script: "S: +OK POP3 ready.\n" + apopS + quitS,
			want:   []exp{cmd("APOP"), viol("GREET-004").by(client), viol("GREET-004").by(server), resp("APOP", "+OK")}},
		{name: "GREET-004 APOP without timestamp, refused",
			script: "S: +OK POP3 ready.\nC: APOP mrose c4c9334bac560ecc979e58001b3e22fb\nS: -ERR\n" + quitS,
			want:   []exp{viol("GREET-004").by(client), resp("APOP", "-ERR"), state(decode.AuthReady, decode.Closed)}},
		{name: "AUTH PLAIN with initial response",
			script: greetS + capaPlainS + "C: AUTH PLAIN AG1yb3NlAHRhbnN0YWFm\nS: +OK Logged in.\n" + quitS,
			want: []exp{cmd("AUTH").args("PLAIN " + decode.Redacted).redacted(), resp("AUTH", "+OK").single(),
				state(decode.AuthReady, decode.Transaction)},
			allow: cleartext},
		{name: "AUTH PLAIN with empty challenge",
			script: greetS + capaPlainS + "C: AUTH PLAIN\nS: + \nC: AG1yb3NlAHRhbnN0YWFm\nS: +OK Logged in.\n" + quitS,
			want: []exp{cmd("AUTH").args("PLAIN"), state(decode.AuthReady, decode.AuthSASL), cont().text("").id(2),
				saslResp().args(decode.Redacted).id(2), resp("AUTH", "+OK"), state(decode.AuthSASL, decode.Transaction)},
			allow: cleartext},
		{name: "AUTH CRAM-MD5 (RFC 2195 example)",
			script: greetS + capaS + "C: AUTH CRAM-MD5\nS: + PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+\nC: dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw\nS: +OK CRAM authentication successful\n" + quitS,
			want: []exp{cmd("AUTH").args("CRAM-MD5"), cont().text("PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+"),
				saslResp().redacted(), resp("AUTH", "+OK"), state(decode.AuthSASL, decode.Transaction), resp("QUIT", "+OK")}},
		{name: "AUTH cancelled with *",
			script: greetS + capaS + "C: AUTH CRAM-MD5\nS: + PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+\nC: *\nS: -ERR Authentication aborted by client.\n" + quitS,
			want:   []exp{cont(), saslResp().args("*"), resp("AUTH", "-ERR"), state(decode.AuthSASL, decode.AuthReady), state(decode.AuthReady, decode.Closed)}},
		{name: "SASL-005 challenge after *",
			script: greetS + capaS + "C: AUTH CRAM-MD5\nS: + PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+\nC: *\nS: + PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+\nC: *\nS: -ERR\n" + quitS,
			want:   []exp{saslResp().args("*"), cont(), viol("SASL-005").by(server), saslResp().args("*"), resp("AUTH", "-ERR")}},
		{name: "SASL-008 line pipelined behind AUTH becomes the SASL response",
			script: greetS + capaS + "C: AUTH CRAM-MD5\nC: AUTH FOOBAR\nS: + PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+\nS: -ERR [AUTH] Invalid base64 in response\n" + quitS,
			want: []exp{cmd("AUTH").args("CRAM-MD5"), viol("SASL-008").by(client), cont(), saslResp().redacted(), resp("AUTH", "-ERR").code("AUTH"),
				state(decode.AuthSASL, decode.AuthReady), cmd("QUIT").id(3)},
			allow: []exp{viol("SASL-004"), viol("SASL-009"), viol("RESP-004")}},
		{name: "commands held behind AUTH are commands after its -ERR",
			script: greetS + capaS + "C: AUTH CRAM-MD5\nC: CAPA\nS: -ERR [AUTH] Unsupported\n" + "S: +OK\nS: TOP\nS: .\n" + quitS,
			want:   []exp{cmd("AUTH").id(2), viol("SASL-008"), resp("AUTH", "-ERR"), cmd("CAPA").id(3), resp("CAPA", "+OK").id(3)},
			allow:  []exp{viol("RESP-004"), viol("CAPA-001").maybe(), viol("CAPA-004").maybe()}},
		{name: "bare AUTH answered with a mechanism list (LEGACY-002)",
			script: greetS + "C: AUTH\nS: +OK\nS: PLAIN\nS: CRAM-MD5\nS: .\n" + quitS,
			want:   []exp{cmd("AUTH").args(""), viol("LEGACY-002").by(client), resp("AUTH", "+OK").body(size([]string{"PLAIN", "CRAM-MD5"}), 2), state(decode.AuthReady, decode.Closed)}},
	}
}

func transactionCases() []playCase {
	m1, m2 := size(msg1), size(msg2)
	return []playCase{
		{name: "STAT, LIST, LIST n, UIDL, UIDL n",
			script: loggedIn + statS + listS + fmt.Sprintf("C: LIST 2\nS: +OK 2 %d\n", m2) +
				"C: UIDL\nS: +OK\nS: 1 whqtswO00WBw418f9t5JxYwZ\nS: 2 QhdPYR:00WBw1Ph7x7\nS: .\nC: UIDL 2\nS: +OK 2 QhdPYR:00WBw1Ph7x7\n" + quitS,
			want: []exp{
				resp("STAT", "+OK").text(fmt.Sprintf("2 %d", m1+m2)).single(),
				resp("LIST", "+OK").body(len(fmt.Sprintf("1 %d2 %d", m1, m2))+4, 2).wire(len(fmt.Sprintf("1 %d2 %d", m1, m2)) + 7),
				cmd("LIST").args("2"), resp("LIST", "+OK").single(),
				resp("UIDL", "+OK").body(size([]string{"1 whqtswO00WBw418f9t5JxYwZ", "2 QhdPYR:00WBw1Ph7x7"}), 2), resp("UIDL", "+OK").single().text("2 QhdPYR:00WBw1Ph7x7"),
				state(decode.Transaction, decode.Update)}},
		{name: "empty maildrop LIST",
			script: loggedIn + "C: STAT\nS: +OK 0 0\nC: LIST\nS: +OK 0 messages\nS: .\n" + quitS,
			want:   []exp{resp("LIST", "+OK").body(0, 0).wire(3)}},
		{name: "RETR with dot-stuffed lines (MULTI-002 near-miss)",
			script: loggedIn + listS + "C: RETR 1\n" + retrS(msg1) + quitS,
			want: []exp{cmd("RETR").args("1"),
				resp("RETR", "+OK").text(fmt.Sprintf("%d octets", m1)).body(m1, len(msg1)).wire(m1 + stuffed(msg1) + 3)}},
		{name: "RETR of a message whose lines look like status lines and terminators",
			script: loggedIn + "C: RETR 1\nS: +OK\nS: +OK not a status\nS: -ERR nor this\nS: ..\nS: .\n" + quitS,
			want:   []exp{resp("RETR", "+OK").body(size([]string{"+OK not a status", "-ERR nor this", "."}), 3)}},
		{name: "TOP n 0",
			script: loggedIn + "C: TOP 1 0\nS: +OK\nS: From: alice@example.org\nS: Subject: dots\nS:\nS: .\n" + quitS,
			want:   []exp{cmd("TOP").args("1 0"), resp("TOP", "+OK").body(25+15+2, 3)}},
		{name: "DELE, RSET, NOOP, QUIT: TRANSACTION → UPDATE → CLOSED",
			script: loggedIn + "C: DELE 1\nS: +OK message 1 deleted\nC: RSET\nS: +OK maildrop has 2 messages\nC: NOOP\nS: +OK\nC: DELE 2\nS: +OK\n" + quitS,
			want: []exp{resp("DELE", "+OK").single(), resp("RSET", "+OK"), resp("NOOP", "+OK"), resp("DELE", "+OK"), resp("QUIT", "+OK"),
				state(decode.Transaction, decode.Update), state(decode.Update, decode.Closed)}},
		{name: "QUIT in TRANSACTION answered -ERR still ends in UPDATE → CLOSED",
			script: loggedIn + "C: DELE 1\nS: +OK\nC: QUIT\nS: -ERR some deleted messages not removed\n# close: server\n# close: client\n",
			want:   []exp{resp("QUIT", "-ERR"), state(decode.Transaction, decode.Update), state(decode.Update, decode.Closed)}},
		{name: "pipelined USER, PASS, STAT in one write",
			script: greetS + capaPlainS + `C: USER mrose\r\nPASS tanstaaf\r\nSTAT\r\n` + "\n" + `S: +OK\r\n+OK maildrop locked\r\n+OK 2 320\r\n` + "\n" + quitS,
			want: []exp{cmd("USER").id(2).pipelined(false), cmd("PASS").id(3).pipelined(true), cmd("STAT").id(4).pipelined(true),
				resp("USER", "+OK").id(2), state(decode.AuthReady, decode.AuthUser), resp("PASS", "+OK").id(3), state(decode.AuthUser, decode.Transaction),
				resp("STAT", "+OK").id(4).text("2 320")},
			allow: cleartext},
		{name: "pipelined RETR batch answered in one write",
			script: greetS + capaS + "C: APOP mrose c4c9334bac560ecc979e58001b3e22fb\nS: +OK\n" + listS +
				"C: RETR 1\\r\\nRETR 2\\r\\nRETR 1\\r\\nDELE 1\\r\\n\n" +
				"S: " + escLines(retrLines(msg1)+retrLines(msg2)+retrLines(msg1)+"+OK deleted\r\n") + "\n" + quitS,
			want: []exp{cmd("RETR").id(4).pipelined(false), cmd("RETR").id(5).pipelined(true), cmd("RETR").id(6).pipelined(true), cmd("DELE").id(7).pipelined(true),
				resp("RETR", "+OK").id(4).body(m1, len(msg1)), resp("RETR", "+OK").id(5).body(m2, len(msg2)), resp("RETR", "+OK").id(6).body(m1, len(msg1)),
				resp("DELE", "+OK").id(7).single()}},
		{name: "PIPE-001 pipelining without CAPA",
			script: loggedIn + "C: NOOP\\r\\nNOOP\\r\\n\nS: +OK\nS: +OK\n" + quitS,
			want:   []exp{cmd("NOOP").pipelined(false), cmd("NOOP").pipelined(true), viol("PIPE-001").by(client).maybe(), resp("NOOP", "+OK"), resp("NOOP", "+OK")}},
		{name: "CAPA body in AUTHORIZATION and TRANSACTION",
			script: greetS + capaS + apopS + capaS + quitS,
			want: []exp{resp("CAPA", "+OK").body(len("TOPUIDLRESP-CODESPIPELININGSASL CRAM-MD5")+10, 5),
				state(decode.AuthReady, decode.Transaction), resp("CAPA", "+OK").body(len("TOPUIDLRESP-CODESPIPELININGSASL CRAM-MD5")+10, 5)},
			allow: []exp{viol("CAPA-001").maybe()}},
		{name: "LEGACY-001 LAST",
			script: loggedIn + "C: LAST\nS: -ERR Unknown command: LAST\n" + quitS,
			want:   []exp{cmd("LAST"), viol("LEGACY-001").by(client), resp("LAST", "-ERR")}},
		{name: "LEGACY-002 vendor command answered +OK",
			script: loggedIn + "C: XSENDER 1\nS: +OK bob@example.org\n" + quitS,
			want:   []exp{cmd("XSENDER"), resp("XSENDER", "+OK"), viol("LEGACY-002").by(client).detail("single-line")},
			allow:  []exp{viol("SYNTAX-001")}},
		{name: "LEGACY-002 4-letter unknown command answered +OK",
			script: loggedIn + "C: XTST 1\nS: +OK\n" + quitS,
			want:   []exp{cmd("XTST"), resp("XTST", "+OK"), viol("LEGACY-002").by(client)}},
		{name: "LEGACY-002 unknown command with an unannounced body",
			script: loggedIn + "C: XTND XLST Subject\nS: +OK\nS: 1 Subject: hi\nS: .\nC: NOOP\nS: +OK\n" + quitS,
			want:   []exp{cmd("XTND"), resp("XTND", "+OK"), viol("LEGACY-002").by(client).detail("multi-line"), note().detail("resynchronised"), resp("NOOP", "+OK")}},
		{name: "unknown command answered -ERR",
			script: loggedIn + "C: XYZZY\nS: -ERR Unknown command\n" + quitS,
			want:   []exp{cmd("XYZZY"), resp("XYZZY", "-ERR")},
			allow:  []exp{viol("SYNTAX-001")}},
		{name: "STLS +OK: the decoder goes opaque",
			script: greetS + "C: CAPA\nS: +OK\nS: STLS\nS: .\nC: STLS\nS: +OK Begin TLS negotiation now.\n" +
				`C: \x16\x03\x01\x00\xc8\x01\x00\x00\xc4\x03\x03` + "\n" + `S: \x16\x03\x03\x00\x7a\x02\x00\x00\x76` + "\n" + "C: USER not decoded\n",
			want: []exp{cmd("STLS"), resp("STLS", "+OK"), state(decode.AuthReady, decode.TLSUpgrade), opaque(),
				state(decode.TLSUpgrade, decode.Opaque), state(decode.Opaque, decode.Aborted)}},
		{name: "the opaque event after STLS +OK says who caused it",
			script: greetS + "C: STLS\nS: +OK Begin TLS negotiation now.\n" + `C: \x16\x03\x01\x00\xc8\x01\x00\x00\xc4\x03\x03` + "\n",
			want:   []exp{resp("STLS", "+OK"), opaque().by(server)}},
		{name: "STLS -ERR stays in plaintext AUTHORIZATION",
			script: greetS + "C: STLS\nS: -ERR TLS support isn't enabled.\n" + loggedInTail + quitS,
			want:   []exp{resp("STLS", "-ERR"), cmd("APOP"), state(decode.AuthReady, decode.Transaction)}},
	}
}

// loggedInTail is the APOP login without the greeting.
const loggedInTail = apopS

// retrLines renders a RETR reply as raw wire text.
func retrLines(lines []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "+OK %d octets\r\n", size(lines))
	for _, l := range lines {
		if strings.HasPrefix(l, ".") {
			b.WriteString(".")
		}
		b.WriteString(l + "\r\n")
	}
	b.WriteString(".\r\n")
	return b.String()
}

// escLines escapes raw wire text for a transcript line (explicit mode).
func escLines(s string) string {
	return strings.NewReplacer("\\", `\\`, "\r", `\r`, "\n", `\n`).Replace(s)
}

func framingCases() []playCase {
	long255 := "USER " + strings.Repeat("u", 248) // 253 + CRLF = 255
	return []playCase{
		{name: "LINE-001 client bare LF",
			script: greetS + `C: CAPA\n` + "\nS: +OK\nS: TOP\nS: .\n" + quitS,
			want:   []exp{viol("LINE-001").by(client).off(0).detail("bare LF"), cmd("CAPA"), resp("CAPA", "+OK")}},
		{name: "CR and LF in two separate reads (LINE-001 near-miss)",
			script: greetS + `C: CAPA\r\` + "\n" + `C: \n` + "\n" + `S: +OK\r\` + "\n" + `S: \nTOP\r` + "\n" + "S: \\n.\\r\\n\n" + quitS,
			want:   []exp{cmd("CAPA"), resp("CAPA", "+OK").body(5, 1)}},
		{name: "LINE-001 server bare LF status line",
			script: loggedIn + "C: DELE 1\n" + `S: -ERR chdir /x failed\n` + "\n" + quitS,
			want:   []exp{viol("LINE-001").by(server).detail("bare LF"), resp("DELE", "-ERR").text("chdir /x failed")}},
		{name: "LINE-001 bare LF in a RETR body and terminator",
			script: loggedIn + "C: RETR 1\nS: +OK\n" + `S: line one\nline two\r\n.\n` + "\n" + quitS,
			want:   []exp{viol("LINE-001").by(server).detail("2 lines"), resp("RETR", "+OK").body(20, 2).wire(21)}},
		{name: "LINE-002 CR inside a command line",
			script: greetS + `C: CA\rPA\r\n` + "\nS: -ERR Unknown command\n" + quitS,
			want:   []exp{viol("LINE-002").by(client), cmd(`"CA\rPA"`), resp(`"CA\rPA"`, "-ERR")},
			allow:  []exp{viol("LINE-007"), viol("SYNTAX-001")}},
		{name: "LINE-002 CR inside a status line",
			script: loggedIn + `C: NOOP` + "\n" + `S: +OK fine\rreally\r\n` + "\n" + quitS,
			want:   []exp{viol("LINE-002").by(server), resp("NOOP", "+OK")},
			allow:  []exp{viol("LINE-008")}},
		{name: "LINE-003 bare CR in a RETR line",
			script: loggedIn + "C: RETR 1\nS: +OK\n" + `S: before\rafter bare CR\r\n.\r\n` + "\n" + quitS,
			want:   []exp{viol("LINE-003").by(server).sev(event.Info), resp("RETR", "+OK").body(size([]string{"before\rafter bare CR"}), 1)}},
		{name: "LINE-004 command longer than 255 octets",
			script: greetS + "C: " + long255 + "u\nS: -ERR\n" + quitS,
			want:   []exp{viol("LINE-004").by(client).detail("256 octets"), cmd("USER")},
			allow:  []exp{viol("SYNTAX-004")}},
		{name: "command of exactly 255 octets (LINE-004 near-miss)",
			script: greetS + "C: " + long255 + "\nS: -ERR\n" + quitS,
			want:   []exp{cmd("USER"), resp("USER", "-ERR")},
			allow:  []exp{viol("SYNTAX-004")}},
		{name: "LINE-005 status line longer than 512 octets",
			script: loggedIn + "C: NOOP\nS: +OK " + strings.Repeat("n", 507) + "\n" + quitS,
			want:   []exp{viol("LINE-005").by(server).detail("513"), resp("NOOP", "+OK")}},
		{name: "LINE-005 CAPA line longer than 512 octets",
			script: greetS + "C: CAPA\nS: +OK\nS: X-LONG " + strings.Repeat("c", 504) + "\nS: .\n" + quitS,
			want:   []exp{viol("LINE-005").by(server).detail("CAPA line is 513"), resp("CAPA", "+OK")},
			allow:  []exp{viol("CAPA-006")}},
		{name: "RETR line of 1000 octets is not a status line (LINE-005, LINE-006 near-miss)",
			script: loggedIn + "C: RETR 1\nS: +OK\nS: " + strings.Repeat("r", 998) + "\nS: .\n" + quitS,
			want:   []exp{resp("RETR", "+OK").body(1000, 1)}},
		{name: "LINE-006 RETR line longer than 1000 octets",
			script: loggedIn + "C: RETR 1\nS: +OK\nS: " + strings.Repeat("r", 999) + "\nS: .\n" + quitS,
			want:   []exp{viol("LINE-006").by(server).sev(event.Info).detail("longest 1001"), resp("RETR", "+OK").body(1001, 1)}},
		{name: "LINE-007 8-bit octet in a command",
			script: loggedIn + `C: NOOP\xff` + "\nS: -ERR\n" + quitS,
			want:   []exp{viol("LINE-007").by(client), typed(event.Command), typed(event.Response).status("-ERR")},
			allow:  []exp{viol("SYNTAX-001")}},
		{name: "TAB in a command is SYNTAX-003, not LINE-007",
			script: loggedIn + "C: LIST\t1\nS: -ERR Unknown command: LIST\t1\n" + quitS,
			want:   []exp{cmd("LIST"), viol("SYNTAX-003").maybe(), resp("LIST", "-ERR")},
			allow:  []exp{viol("LINE-008").maybe()}},
		{name: "a keyword that only Unicode case mapping turns into LIST is not LIST",
			script: greetS + "C: l\u0131st\nS: -ERR Unknown command\n" + quitS,
			want: []exp{viol("LINE-007").by(client), typed(event.Command).with("verb is not LIST", func(e *event.Event) bool { return e.Verb != "LIST" }),
				typed(event.Response).status("-ERR")},
			allow: []exp{viol("SYNTAX-001"), viol("SYNTAX-002").maybe()}},
		{name: "LINE-008 8-bit status text",
			script: greetS + "C: USER x\nS: -ERR Mot de passe \xc3\xa9rron\xc3\xa9\n" + quitS,
			want:   []exp{viol("LINE-008").by(server).sev(event.Warning), resp("USER", "-ERR")}},
		{name: "8-bit text in a RETR body is not LINE-008",
			script: loggedIn + "C: RETR 1\nS: +OK\nS: Subject: x\nS:\nS: Gr\xc3\xbc\xc3\x9fe\nS: .\n" + quitS,
			want:   []exp{resp("RETR", "+OK")},
			allow:  []exp{viol("EXT-006")}},
		{name: "LINE-009 NUL in a RETR line",
			script: loggedIn + "C: RETR 1\nS: +OK\n" + `S: abc\x00def` + "\nS: .\n" + quitS,
			want:   []exp{viol("LINE-009").by(server).sev(event.Warning), resp("RETR", "+OK").body(9, 1)}},
		{name: "LINE-010 client line over the limit",
			opt:    decode.Options{MaxLine: 64},
			script: greetS + "C: USER " + strings.Repeat("u", 100) + "\nS: -ERR\n" + quitS,
			want:   []exp{viol("LINE-010").by(client).detail("43 octets not decoded"), cmd("USER"), resp("USER", "-ERR"), resp("QUIT", "+OK")},
			allow:  []exp{viol("SYNTAX-004")}},
		{name: "a CRLF line cut by LINE-010 is not a bare-LF line",
			opt:    decode.Options{MaxLine: 64},
			script: greetS + "C: USER " + strings.Repeat("u", 100) + "\nS: -ERR\n" + quitS,
			want:   []exp{viol("LINE-010").by(client), cmd("USER")},
			allow:  []exp{viol("SYNTAX-004")}},
		{name: "LINE-010 server line over the limit",
			opt:    decode.Options{MaxLine: 64},
			script: loggedIn + "C: NOOP\nS: +OK " + strings.Repeat("n", 100) + "\n" + quitS,
			want:   []exp{viol("LINE-010").by(server), resp("NOOP", "+OK"), resp("QUIT", "+OK")}},
		{name: "line of exactly MaxLine octets (LINE-010 near-miss)",
			opt:    decode.Options{MaxLine: 64},
			script: greetS[:len(greetS)-len(apopTS)-2] + "\nC: USER " + strings.Repeat("u", 62-5) + "\nS: -ERR\n" + quitS,
			want:   []exp{cmd("USER"), resp("USER", "-ERR")},
			allow:  []exp{viol("SYNTAX-004")}},
		{name: "RETR body line longer than MaxLine is streamed (LINE-010 near-miss)",
			opt:    decode.Options{MaxLine: 64},
			script: "S: +OK ready\nC: USER a\nS: +OK\nC: PASS b\nS: +OK\nC: RETR 1\nS: +OK\nS: " + strings.Repeat("r", 200) + "\nS: .\n" + quitS,
			want:   []exp{resp("RETR", "+OK").body(202, 1)},
			allow:  cleartext},
		{name: "MULTI-002 unstuffed leading dot",
			script: loggedIn + "C: RETR 1\nS: +OK\nS: a\nS: .x leading dot\nS: .\n" + quitS,
			want:   []exp{viol("MULTI-002").by(server).detail("line 2"), resp("RETR", "+OK").body(3+15, 2)}},
		{name: "MULTI-004 status line inside a UIDL body",
			script: loggedIn + "C: UIDL\\r\\nSTAT\\r\\n\nS: +OK\nS: 1 whqtswO00WBw418f9t5JxYwZ\nS: +OK 1 120\n" + quitS,
			want: []exp{viol("MULTI-004").by(server).sev(event.Warning), resp("UIDL", "+OK").body(28, 1),
				resp("STAT", "+OK").text("1 120"), resp("QUIT", "+OK")},
			allow: []exp{viol("PIPE-001")}},
		{name: "MULTI-003 data after a single-line reply",
			script: loggedIn + "C: LIST 1\nS: +OK 1 120\nS: 1 120\nS: .\nC: NOOP\nS: +OK\n" + quitS,
			want:   []exp{resp("LIST", "+OK").single(), viol("MULTI-003").by(server), note().detail("unexpected data lines (at terminator)"), resp("NOOP", "+OK")}},
		{name: "MULTI-003 body after -ERR, resync at a status line",
			script: loggedIn + "C: RETR 9\nS: -ERR no such message\nS: junk\nS: more junk\nC: NOOP\nS: +OK\n" + quitS,
			want:   []exp{resp("RETR", "-ERR"), viol("MULTI-003").detail("after -ERR reply to RETR"), note().detail("at status line"), resp("NOOP", "+OK")}},
		{name: "SYNTAX-007 lower-case +ok",
			script: loggedIn + "C: NOOP\nS: +ok fine\n" + quitS,
			want:   []exp{viol("SYNTAX-007").by(server), resp("NOOP", "+ok").text("fine")}},
		{name: "SYNTAX-007 -ERROR taken as -ERR",
			script: loggedIn + "C: DELE 9\nS: -ERROR no such message\n" + quitS,
			want:   []exp{viol("SYNTAX-007"), resp("DELE", "-ERROR").text("no such message")}},
		{name: "SYNTAX-007 + continuation without AUTH",
			script: loggedIn + "C: NOOP\nS: + go ahead\nS: +OK\n" + quitS,
			want:   []exp{viol("SYNTAX-007").detail("continuation"), resp("NOOP", "+OK")}},
	}
}

func stateCases() []playCase {
	return []playCase{
		{name: "STATE-001 STAT before login",
			script: greetS + "C: STAT\nS: -ERR Unknown command\n" + quitS,
			want:   []exp{cmd("STAT"), viol("STATE-001").by(client).detail("AUTHORIZATION"), resp("STAT", "-ERR")}},
		{name: "STATE-001 and STATE-002 NOOP before login accepted",
			script: greetS + "C: NOOP\nS: +OK\n" + quitS,
			want:   []exp{viol("STATE-001").by(client), viol("STATE-002").by(server), resp("NOOP", "+OK")}},
		{name: "STATE-001 USER in TRANSACTION",
			script: loggedIn + "C: USER mrose\nS: -ERR\n" + quitS,
			want:   []exp{viol("STATE-001").by(client).detail("TRANSACTION"), resp("USER", "-ERR")}},
		{name: "STATE-001 is judged at execution: STAT pipelined behind a failing PASS",
			script: greetS + capaPlainS + "C: USER mrose\\r\\nPASS wrong\\r\\nSTAT\\r\\n\nS: +OK\nS: -ERR [AUTH] bad password\nS: -ERR\n" + quitS,
			want:   []exp{resp("PASS", "-ERR"), state(decode.AuthUser, decode.AuthReady), viol("STATE-001"), resp("STAT", "-ERR")},
			allow:  append([]exp{viol("RESP-004")}, cleartext...)},
		{name: "TLS-001 STLS in TRANSACTION",
			script: loggedIn + "C: STLS\nS: -ERR Command not valid in this state\n" + quitS,
			want:   []exp{viol("TLS-001").by(client), resp("STLS", "-ERR")}},
		{name: "TLS-003 command pipelined behind STLS",
			script: greetS + "C: STLS\\r\\nCAPA\\r\\n\nS: +OK Begin TLS\n",
			want:   []exp{cmd("STLS"), viol("TLS-003").by(client), resp("STLS", "+OK"), state(decode.AuthReady, decode.TLSUpgrade)},
			allow:  []exp{viol("PIPE-001"), viol("CONN-004").maybe()}},
		{name: "TLS-003 after STLS -ERR the held line is a command",
			script: greetS + "C: STLS\\r\\nCAPA\\r\\n\nS: -ERR TLS not available\nS: +OK\nS: TOP\nS: .\n" + quitS,
			want:   []exp{viol("TLS-003"), resp("STLS", "-ERR"), cmd("CAPA"), resp("CAPA", "+OK")},
			allow:  []exp{viol("PIPE-001")}},
		{name: "STATE-005 QUIT in AUTHORIZATION answered -ERR",
			script: greetS + "C: QUIT\nS: -ERR\n# close: server\n# close: client\n",
			want:   []exp{resp("QUIT", "-ERR"), viol("STATE-005").by(server)}},
		{name: "STATE-005 client sends after QUIT",
			script: loggedIn + "C: QUIT\nC: STAT\nS: +OK bye\n# close: server\n# close: client\n",
			want:   []exp{cmd("QUIT"), viol("STATE-005").by(client), cmd("STAT"), resp("QUIT", "+OK")},
			allow:  []exp{viol("PIPE-001").maybe(), viol("CONN-003").maybe()}},
	}
}

func connCases() []playCase {
	return []playCase{
		{name: "CONN-002 unsolicited status line",
			script: loggedIn + "S: +OK\n" + quitS,
			want:   []exp{viol("CONN-002").by(server), cmd("QUIT"), resp("QUIT", "+OK")}},
		{name: "idle-logout line followed by close (CONN-002 near-miss)",
			script: loggedIn + "S: -ERR autologout; idle for too long\n# close: server\n# close: client\n",
			want:   []exp{viol("CONN-004")},
			allow:  []exp{viol("TIME-001").maybe()}},
		{name: "CONN-003 server closes with a command outstanding",
			script: loggedIn + "C: RETR 2\n# close: server\n# close: client\n",
			want:   []exp{viol("CONN-003").by(server).detail("first RETR"), viol("CONN-004").by(server).detail("DELE marks are void"), state(decode.Transaction, decode.Aborted)}},
		{name: "server closes after -ERR to PASS (CONN-003 near-miss)",
			script: greetS + "C: USER mrose\nS: +OK\nC: PASS wrong\nS: -ERR [AUTH] Authentication failed.\n# close: server\n# close: client\n",
			want:   []exp{resp("PASS", "-ERR"), viol("CONN-004").by(server), state(decode.AuthReady, decode.Aborted)},
			allow:  []exp{viol("AUTH-001"), viol("RESP-001"), viol("RESP-004")}},
		{name: "MULTI-001 close inside a RETR body",
			script: loggedIn + "C: RETR 1\nS: +OK\nS: line\nS: partial\\\n# close: server\n# close: client\n",
			want:   []exp{viol("MULTI-001").by(server).detail("after 13 octets; the last line is unterminated"), viol("CONN-004")},
			allow:  []exp{viol("CONN-003")}}, // a known false positive, see below
		{name: "MULTI-001 hints at a terminator glued to a last line without line break",
			script: loggedIn + "C: RETR 1\nS: +OK\nS: line\nS: blah.\n# close: server\n# close: client\n",
			want:   []exp{viol("MULTI-001").by(server).detail("terminator"), viol("CONN-004")},
			allow:  []exp{viol("CONN-003")}},
		{name: "close inside a body is MULTI-001, not also CONN-003",
			script: loggedIn + "C: RETR 1\nS: +OK\nS: line\nS: blah.\n# close: server\n# close: client\n",
			want:   []exp{viol("MULTI-001").by(server).detail("after 13 octets"), viol("CONN-004")}},
		{name: "CONN-004 client leaves without QUIT",
			script: loggedIn + "C: DELE 1\nS: +OK\n# close: client\n# close: server\n",
			want:   []exp{viol("CONN-004").by(client).sev(event.Info).detail("closed first by the client"), state(decode.Transaction, decode.Aborted)}},
		{name: "client ends with a partial line",
			script: loggedIn + "C: NOO\\\n# close: client\n# close: server\n",
			want:   []exp{viol("LINE-001").by(client).detail("without CRLF"), cmd("NOOP").maybe(), viol("CONN-004").by(client)},
			allow:  []exp{viol("CONN-003")}},
	}
}

func moreCases() []playCase {
	longChallenge := base64.StdEncoding.EncodeToString([]byte("<" + strings.Repeat("1", 600) + "@host.example>"))
	return []playCase{
		{name: "TOP n k returning the whole short message",
			script: loggedIn + "C: TOP 2 2\nS: +OK\n" + bodyS(msg2) + quitS,
			want:   []exp{cmd("TOP").args("2 2"), resp("TOP", "+OK").body(size(msg2), len(msg2))}},
		{name: "LIST n, UIDL n and RETR n refused",
			script: loggedIn + "C: LIST 9\nS: -ERR no such message\nC: UIDL 9\nS: -ERR no such message\nC: RETR 9\nS: -ERR no such message\n" + quitS,
			want:   []exp{resp("LIST", "-ERR").single(), resp("UIDL", "-ERR").single(), resp("RETR", "-ERR").single()}},
		{name: "RETR of an empty message",
			script: loggedIn + "C: RETR 1\nS: +OK 0 octets\nS: .\n" + quitS,
			want:   []exp{resp("RETR", "+OK").body(0, 0).wire(3)}},
		{name: "DELE pipelined while a UIDL body is arriving (RFC 2449 §6.6)",
			script: loggedIn + capaS + "C: UIDL\nS: +OK\nS: 1 whqtswO00WBw418f9t5JxYwZ\nC: DELE 1\nS: 2 QhdPYR:00WBw1Ph7x7\nS: .\nS: +OK message 1 deleted\n" + quitS,
			want: []exp{cmd("UIDL").pipelined(false), cmd("DELE").pipelined(true), resp("UIDL", "+OK").body(size([]string{"1 whqtswO00WBw418f9t5JxYwZ", "2 QhdPYR:00WBw1Ph7x7"}), 2),
				resp("DELE", "+OK")},
			allow: []exp{viol("CAPA-001").maybe()}},
		{name: "STATE-004 APOP while a USER is accepted",
			script: greetS + "C: USER mrose\nS: +OK\nC: APOP mrose c4c9334bac560ecc979e58001b3e22fb\nS: +OK\n" + quitS,
			want:   []exp{state(decode.AuthReady, decode.AuthUser), viol("STATE-004").by(client), resp("APOP", "+OK"), state(decode.AuthUser, decode.Transaction)}},
		{name: "STATE-001 RSET in AUTHORIZATION",
			script: greetS + "C: RSET\nS: -ERR\n" + quitS,
			want:   []exp{viol("STATE-001").by(client), resp("RSET", "-ERR")}},
		{name: "QUIT in AUTH.USER closes without UPDATE",
			script: greetS + "C: USER mrose\nS: +OK\n" + quitS,
			want: []exp{state(decode.AuthReady, decode.AuthUser), resp("QUIT", "+OK"),
				typed(event.State).with("to CLOSED", func(e *event.Event) bool { return e.To == string(decode.Closed) })}},
		{name: "QUIT in AUTH.USER goes straight to CLOSED",
			script: greetS + "C: USER mrose\nS: +OK\n" + quitS,
			want:   []exp{state(decode.AuthReady, decode.AuthUser), resp("QUIT", "+OK"), state(decode.AuthUser, decode.Closed)}},
		{name: "empty command line",
			script: loggedIn + "C:\nS: -ERR Unknown command\n" + quitS,
			want:   []exp{cmd("(empty)").args(""), resp("(empty)", "-ERR")},
			allow:  []exp{viol("SYNTAX-001")}},
		{name: "CONN-002 a second greeting",
			script: greetS + "S: +OK POP3 server ready again\n" + quitS,
			want:   []exp{greet("+OK"), viol("CONN-002").by(server), resp("QUIT", "+OK")}},
		{name: "continuation lines are exempt from LINE-005",
			script: greetS + capaS + "C: AUTH CRAM-MD5\nS: + " + longChallenge + "\nC: *\nS: -ERR Authentication aborted\n" + quitS,
			want:   []exp{cont(), saslResp().args("*"), resp("AUTH", "-ERR")}},
		{name: "UTF8 USER exempts an 8-bit USER argument from LINE-007",
			script: greetS + "C: CAPA\nS: +OK\nS: USER\nS: UTF8 USER\nS: .\nC: USER j\u00fcrgen\nS: +OK\n" + quitS,
			want:   []exp{cmd("USER").args("j\u00fcrgen"), resp("USER", "+OK")},
			allow:  []exp{viol("AUTH-002")}},
		{name: "8-bit USER argument without UTF8 USER",
			script: greetS + "C: USER j\u00fcrgen\nS: -ERR\n" + quitS,
			want:   []exp{viol("LINE-007").by(client), cmd("USER")},
			allow:  []exp{viol("EXT-004")}},
		{name: "AUTH LOGIN with two challenges",
			script: greetS + "C: CAPA\nS: +OK\nS: SASL LOGIN\nS: .\nC: AUTH LOGIN\nS: + VXNlcm5hbWU6\nC: bXJvc2U=\nS: + UGFzc3dvcmQ6\nC: dGFuc3RhYWY=\nS: +OK\n" + quitS,
			want: []exp{cmd("AUTH").args("LOGIN"), cont().text("VXNlcm5hbWU6"), saslResp().redacted(), cont().text("UGFzc3dvcmQ6"), saslResp().redacted(),
				resp("AUTH", "+OK"), state(decode.AuthSASL, decode.Transaction)},
			allow: cleartext},
		{name: "CONN-005 POP2 client",
			script: greetS + "C: HELO mrose secret\n",
			want:   []exp{viol("CONN-005").by(client), opaque()}},
		{name: "CONN-005 IMAP client",
			script: greetS + "C: a1 LOGIN mrose secret\n",
			want:   []exp{viol("CONN-005").by(client).detail("IMAP"), opaque()}},
		{name: "a response carries the offset of its status line",
			script: greetS + "C: NOOP\nS: -ERR\n" + quitS,
			want: []exp{resp("NOOP", "-ERR").with("offset of the status line", func(e *event.Event) bool {
				return e.Offset == int64(len(greetS)-len("S: \n")+2)
			})},
			allow: []exp{viol("STATE-001")}},
		{name: "status line +OK without text answers a command",
			script: loggedIn + "C: NOOP\nS: +OK\n" + quitS,
			want:   []exp{resp("NOOP", "+OK").text("")}},
	}
}

// splitOffsets returns the offsets at which a step of n octets is cut:
// all of them for short steps, a sample for long ones.
func splitOffsets(n int) []int {
	var ks []int
	for k := 1; k < n; k++ {
		if n <= 300 || k < 80 || k > n-80 || k%37 == 0 {
			ks = append(ks, k)
		}
	}
	return ks
}

func TestPlaybook(t *testing.T) {
	seen := map[string]bool{}
	for _, tc := range cases() {
		if seen[tc.name] {
			t.Fatalf("duplicate case name %q", tc.name)
		}
		seen[tc.name] = true
		t.Run(tc.name, func(t *testing.T) {
			steps, err := transcript.ParseString(tc.script)
			if err != nil {
				t.Fatalf("bad script: %v", err)
			}
			problems := playProblems(tc, steps)
			switch {
			case len(problems) > 0 && tc.knownBug != "":
				t.Skipf("known bug: %s\n%s", tc.knownBug, cutText(problems[0], 2000))
			case len(problems) > 0:
				t.Error(strings.Join(problems, "\n"))
			case tc.knownBug != "":
				t.Errorf("knownBug %q is fixed: the case passes; remove the marker", tc.knownBug)
			}
		})
	}
}

// playProblems runs a case in every feeding mode and describes what is
// wrong: malformed streams, unmet expectations, and differences between
// the modes (only the first one).
func playProblems(tc playCase, steps []transcript.Step) []string {
	var problems []string
	ref := run(tc.opt, steps)
	for _, p := range wellFormed(ref, "t") {
		problems = append(problems, "malformed event stream: "+p)
	}
	if errs := matchEvents(tc.want, tc.allow, ref); len(errs) > 0 {
		problems = append(problems, fmt.Sprintf("%s\nevents:\n%s", strings.Join(errs, "\n"), dump(ref)))
	}
	want := keys(ref)
	differs := func(mode string, st []transcript.Step) bool {
		got := run(tc.opt, st)
		if d := diffKeys(want, keys(got)); d != "" {
			problems = append(problems, fmt.Sprintf("%s: events differ from the step-by-step run: %s\nstep-by-step:\n%s%s:\n%s", mode, d, dump(ref), mode, dump(got)))
			return true
		}
		return false
	}
	if differs("byte by byte", bytewise(steps)) || differs("merged writes", coalesce(steps)) {
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

func cutText(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func keys(evs []*event.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = key(e)
	}
	return out
}

// diffKeys describes the first difference between two key lists.
func diffKeys(a, b []string) string {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return fmt.Sprintf("event %d:\n\twant %s\n\tgot  %s", i+1, a[i], b[i])
		}
	}
	if len(a) != len(b) {
		return fmt.Sprintf("%d events, want %d", len(b), len(a))
	}
	return ""
}
