package pop3server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/popscope/popscope/decode"
	"github.com/popscope/popscope/event"
)

// testMessages covers the shapes that matter for framing and sizes.
var testMessages = []Message{
	{Data: []byte("From: a@example.org\r\nSubject: one\r\n\r\nline 1\r\nline 2\r\nline 3\r\n")},
	{Data: []byte("Subject: dots\n\n.\n..\n.x\n...\n. \nend\n")},             // LF only, lines to stuff
	{Data: []byte("Subject: no final newline\r\n\r\nlast line has no CRLF")}, // server adds CRLF
	{Data: []byte("Subject: header only\r\nX-A: b\r\n")},                     // no separator
	{Data: []byte("Subject: mixed\r\n\nbare\rCR stays\n\r\n")},               // mixed line ends
}

const (
	testUser = "alice"
	testPass = "s3cret pw" // a space: PASS takes the rest of the line
)

func testConfig() Config {
	return Config{
		Users:          map[string]string{testUser: testPass, "bob": "bobpw"},
		Messages:       testMessages,
		APOP:           true,
		Hostname:       "test.example",
		Implementation: "pop3server-test",
	}
}

// startServer serves cfg on a loopback port until the test ends.
func startServer(t testing.TB, cfg Config) (*Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Serve did not return after cancel")
		}
	})
	return srv, ln.Addr().String()
}

// client is a raw POP3 client for tests.
type client struct {
	t        testing.TB
	c        net.Conn
	r        *bufio.Reader
	greeting string
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cl := &client{t: t, c: c, r: bufio.NewReader(c)}
	cl.greeting = cl.line()
	return cl
}

func (cl *client) send(s string) {
	cl.t.Helper()
	_ = cl.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(cl.c, s); err != nil {
		cl.t.Fatalf("write %q: %v", s, err)
	}
}

// line reads one line and checks that it ends in CRLF.
func (cl *client) line() string {
	cl.t.Helper()
	_ = cl.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	s, err := cl.r.ReadString('\n')
	if err != nil {
		cl.t.Fatalf("read: %v (got %q)", err, s)
	}
	if !strings.HasSuffix(s, "\r\n") {
		cl.t.Fatalf("line %q does not end in CRLF", s)
	}
	return s[:len(s)-2]
}

// body reads a multi-line body and returns it unstuffed, CRLF form.
func (cl *client) body() string {
	cl.t.Helper()
	var b strings.Builder
	for i := 0; i < 1<<20; i++ {
		l := cl.line()
		if l == "." {
			return b.String()
		}
		if strings.HasPrefix(l, ".") {
			if !strings.HasPrefix(l, "..") {
				cl.t.Fatalf("unstuffed line %q", l)
			}
			l = l[1:]
		}
		b.WriteString(l + "\r\n")
	}
	cl.t.Fatal("body too long")
	return ""
}

func (cl *client) cmd(c string) string {
	cl.t.Helper()
	cl.send(c + "\r\n")
	return cl.line()
}

func (cl *client) login() {
	cl.t.Helper()
	if r := cl.cmd("USER " + testUser); !strings.HasPrefix(r, "+OK") {
		cl.t.Fatalf("USER: %s", r)
	}
	if r := cl.cmd("PASS " + testPass); !strings.HasPrefix(r, "+OK") {
		cl.t.Fatalf("PASS: %s", r)
	}
}

// expectEOF checks that the server closes the connection.
func (cl *client) expectEOF() {
	cl.t.Helper()
	_ = cl.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := cl.r.ReadByte()
	if err == nil {
		rest, _ := cl.r.ReadString('\n')
		cl.t.Fatalf("expected close, got %q", string(b)+rest)
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
		cl.t.Fatalf("expected EOF, got %v", err)
	}
}

var greetingRE = regexp.MustCompile(`^\+OK popscope demo server ready (<\d+\.\d+\.\d+@test\.example>)$`)

func TestGreeting(t *testing.T) {
	_, addr := startServer(t, testConfig())
	seen := map[string]bool{}
	for i := 0; i < 3; i++ {
		cl := dial(t, addr)
		m := greetingRE.FindStringSubmatch(cl.greeting)
		if m == nil {
			t.Fatalf("greeting %q", cl.greeting)
		}
		if seen[m[1]] {
			t.Fatalf("timestamp %s repeated", m[1])
		}
		seen[m[1]] = true
	}
	cfg := testConfig()
	cfg.APOP = false
	cfg.Greeting = "hello"
	_, addr2 := startServer(t, cfg)
	if g := dial(t, addr2).greeting; g != "+OK hello" {
		t.Fatalf("greeting without APOP: %q", g)
	}
}

func TestCapa(t *testing.T) {
	_, addr := startServer(t, testConfig())
	cl := dial(t, addr)
	want := "TOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\nUSER\r\nSASL PLAIN\r\n"
	if r := cl.cmd("CAPA"); !strings.HasPrefix(r, "+OK") {
		t.Fatal(r)
	}
	if b := cl.body(); b != want {
		t.Fatalf("AUTHORIZATION CAPA:\n%s", b)
	}
	cl.login()
	cl.cmd("CAPA")
	if b := cl.body(); b != want+"IMPLEMENTATION pop3server-test\r\n" {
		t.Fatalf("TRANSACTION CAPA:\n%s", b)
	}
}

// step is one command and what must come back.
type step struct {
	send string // without CRLF
	want string // status line; a trailing "*" matches a prefix
	body string // expected unstuffed body ("-" = none expected)
}

func (cl *client) run(steps []step) {
	cl.t.Helper()
	for _, st := range steps {
		got := cl.cmd(st.send)
		if p, ok := strings.CutSuffix(st.want, "*"); ok {
			if !strings.HasPrefix(got, p) {
				cl.t.Fatalf("%s: got %q, want prefix %q", st.send, got, p)
			}
		} else if got != st.want {
			cl.t.Fatalf("%s: got %q, want %q", st.send, got, st.want)
		}
		if st.body != "" {
			if b := cl.body(); st.body != "*" && b != st.body {
				cl.t.Fatalf("%s: body\n%q\nwant\n%q", st.send, b, st.body)
			}
		}
	}
}

func canon(i int) string { return string(testMessages[i].Canonical()) }

func TestCommands(t *testing.T) {
	total := int64(0)
	for _, m := range testMessages {
		total += m.Size()
	}
	n := len(testMessages)
	sizes := func(skip int) string {
		var b strings.Builder
		for i, m := range testMessages {
			if i+1 != skip {
				fmt.Fprintf(&b, "%d %d\r\n", i+1, m.Size())
			}
		}
		return b.String()
	}
	cases := []struct {
		name  string
		login bool
		steps []step
	}{
		{"wrong state before login", false, []step{
			{"STAT", "-ERR command not valid in this state", ""},
			{"RETR 1", "-ERR command not valid in this state", ""},
			{"NOOP", "-ERR command not valid in this state", ""},
			{"PASS x", "-ERR no user name given: send USER first", ""},
			{"XYZZY", "-ERR unknown command", ""},
			{"STLS", "-ERR STLS not available*", ""},
		}},
		{"user pass", false, []step{
			{"USER " + testUser, "+OK send PASS", ""},
			{"PASS wrong", "-ERR [AUTH] invalid user name or password", ""},
			{"PASS " + testPass, "-ERR no user name given*", ""}, // USER must be sent again
			{"USER nobody", "+OK send PASS", ""},                 // no user enumeration
			{"PASS " + testPass, "-ERR [AUTH]*", ""},
			{"USER " + testUser, "+OK*", ""},
			{"NOOP", "-ERR*", ""},
			{"PASS " + testPass, "-ERR no user name given*", ""}, // NOOP came between
			{"USER", "-ERR syntax error*", ""},
			{"user " + testUser, "+OK*", ""},
			{"pass " + testPass, fmt.Sprintf("+OK alice has %d messages (%d octets)", n, total), ""},
			{"USER " + testUser, "-ERR command not valid in this state", ""},
			{"AUTH PLAIN", "-ERR command not valid in this state", ""},
			{"APOP a b", "-ERR command not valid in this state", ""},
		}},
		{"sasl", false, []step{
			{"AUTH", "+OK*", "PLAIN\r\n"},
			{"AUTH CRAM-MD5", "-ERR unsupported SASL mechanism", ""},
			{"AUTH PLAIN !!!", "-ERR invalid base64 in SASL response", ""},
			{"AUTH PLAIN =", "-ERR malformed PLAIN message*", ""},
			{"AUTH PLAIN " + plain("", testUser, "bad"), "-ERR [AUTH]*", ""},
			{"AUTH PLAIN " + plain("bob", testUser, testPass), "-ERR [AUTH] alice may not act as another user", ""},
			{"AUTH plain " + plain(testUser, testUser, testPass), "+OK alice has*", ""},
			{"AUTH PLAIN " + plain("", testUser, testPass), "-ERR command not valid in this state", ""},
		}},
		{"syntax", true, []step{
			{"RETR", "-ERR syntax error*", ""},
			{"RETR x", "-ERR syntax error*", ""},
			{"RETR -1", "-ERR syntax error*", ""},
			{"RETR 0", "-ERR no such message*", ""},
			{"RETR 99", "-ERR no such message, only 5 messages in maildrop", ""},
			{"RETR 99999999999999999999999", "-ERR no such message*", ""},
			{"RETR  1", "-ERR syntax error*", ""},
			{"RETR 1 ", "-ERR syntax error*", ""},
			{"RETR 1 2", "-ERR syntax error*", ""},
			{"LIST\t1", "-ERR command contains octets*", ""},
			{"NOOP x", "-ERR syntax error: no arguments expected", ""},
			{"STAT x", "-ERR syntax error*", ""},
			{"QUIT x", "-ERR syntax error*", ""},
			{"CAPA x", "-ERR syntax error*", ""},
			{"LIST 1 2", "-ERR syntax error*", ""},
			{"TOP 1", "-ERR syntax error*", ""},
			{"TOP 1 -1", "-ERR syntax error*", ""},
			{"TOP 1 x", "-ERR syntax error*", ""},
			{"NOOP\xff", "-ERR command contains octets*", ""},
			{"CA\rPA", "-ERR command contains octets*", ""},
			{"noop", "+OK", ""},
			{"LIST 01", fmt.Sprintf("+OK 1 %d", testMessages[0].Size()), ""},
		}},
		{"maildrop", true, []step{
			{"STAT", fmt.Sprintf("+OK %d %d", n, total), ""},
			{"LIST", "+OK*", sizes(0)},
			{"LIST 3", fmt.Sprintf("+OK 3 %d", testMessages[2].Size()), ""},
			{"UIDL 2", "+OK 2 " + prepare(testMessages[1]).uid(), ""},
			{"RETR 1", fmt.Sprintf("+OK %d octets", testMessages[0].Size()), canon(0)},
			{"RETR 2", "+OK*", canon(1)},
			{"RETR 3", "+OK*", canon(2)},
			{"RETR 4", "+OK*", canon(3)},
			{"RETR 5", "+OK*", canon(4)},
			{"TOP 1 0", "+OK*", "From: a@example.org\r\nSubject: one\r\n\r\n"},
			{"TOP 1 2", "+OK*", "From: a@example.org\r\nSubject: one\r\n\r\nline 1\r\nline 2\r\n"},
			{"TOP 1 99999999999999999999", "+OK*", canon(0)},
			{"TOP 2 3", "+OK*", "Subject: dots\r\n\r\n.\r\n..\r\n.x\r\n"},
			{"TOP 4 5", "+OK*", canon(3) + "\r\n"}, // separator added
			{"DELE 2", "+OK message 2 deleted", ""},
			{"DELE 2", "-ERR message 2 already deleted", ""},
			{"RETR 2", "-ERR message 2 already deleted", ""},
			{"LIST 2", "-ERR message 2 already deleted", ""},
			{"UIDL 2", "-ERR message 2 already deleted", ""},
			{"TOP 2 1", "-ERR message 2 already deleted", ""},
			{"STAT", fmt.Sprintf("+OK %d %d", n-1, total-testMessages[1].Size()), ""},
			{"LIST", "+OK*", sizes(2)},
			{"RSET", fmt.Sprintf("+OK maildrop has %d messages (%d octets)", n, total), ""},
			{"RETR 2", "+OK*", canon(1)},
			{"NOOP", "+OK", ""},
			{"QUIT", "+OK bye", ""},
		}},
		{"quit in authorization", false, []step{
			{"QUIT", "+OK bye", ""},
		}},
		{"quit after dele", true, []step{
			{"DELE 1", "+OK*", ""},
			{"QUIT", "-ERR [SYS/PERM] this server does not keep deletions: 1 messages not removed", ""},
		}},
	}
	_, addr := startServer(t, testConfig())
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cl := dial(t, addr)
			if tc.login {
				cl.login()
			}
			cl.run(tc.steps)
			if tc.steps[len(tc.steps)-1].send == "QUIT" {
				cl.expectEOF()
			}
		})
	}
}

func plain(authz, user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(authz + "\x00" + user + "\x00" + pass))
}

func TestUIDL(t *testing.T) {
	_, addr := startServer(t, testConfig())
	var first string
	for i := 0; i < 2; i++ {
		cl := dial(t, addr)
		cl.login()
		cl.cmd("UIDL")
		b := cl.body()
		if first == "" {
			first = b
		} else if b != first {
			t.Fatalf("UIDs changed between sessions:\n%s\n%s", first, b)
		}
		ids := map[string]bool{}
		for _, l := range strings.Split(strings.TrimSuffix(b, "\r\n"), "\r\n") {
			num, id, _ := strings.Cut(l, " ")
			if len(id) < 1 || len(id) > 70 || ids[id] {
				t.Fatalf("bad or duplicate uid in %q", l)
			}
			for _, c := range []byte(id) {
				if c < 0x21 || c > 0x7e {
					t.Fatalf("uid %q has octet %#x", id, c)
				}
			}
			ids[id] = true
			if _, err := strconv.Atoi(num); err != nil {
				t.Fatalf("line %q", l)
			}
		}
	}
	// Identical messages get distinct ids; an explicit UID is kept.
	ms := prepareAll([]Message{{Data: []byte("a\r\n")}, {Data: []byte("a\n")}, {Data: []byte("b"), UID: "my-id"}})
	if ms[0].uid() == ms[1].uid() || ms[1].uid() != ms[0].uid()+"-2" || ms[2].uid() != "my-id" {
		t.Fatalf("uids %q %q %q", ms[0].uid(), ms[1].uid(), ms[2].uid())
	}
}

func TestAPOP(t *testing.T) {
	_, addr := startServer(t, testConfig())
	cl := dial(t, addr)
	ts := greetingRE.FindStringSubmatch(cl.greeting)[1]
	digest := func(pw string) string { s := md5.Sum([]byte(ts + pw)); return hex.EncodeToString(s[:]) }
	cl.run([]step{
		{"APOP " + testUser, "-ERR syntax error*", ""},
		{"APOP " + testUser + " " + strings.ToUpper(digest(testPass)), "-ERR syntax error: the APOP digest is 32 lower-case hex digits", ""},
		{"APOP " + testUser + " " + digest("wrong"), "-ERR [AUTH] invalid user name or digest", ""},
		{"APOP nobody " + digest(testPass), "-ERR [AUTH]*", ""},
		{"APOP " + testUser + " " + digest(testPass), "+OK alice has*", ""},
	})
	cfg := testConfig()
	cfg.APOP = false
	_, addr2 := startServer(t, cfg)
	dial(t, addr2).run([]step{{"APOP " + testUser + " " + digest(testPass), "-ERR APOP not available on this server", ""}})
}

func TestSASLChallenge(t *testing.T) {
	_, addr := startServer(t, testConfig())
	cl := dial(t, addr)
	for _, tc := range []struct{ answer, want string }{
		{"*", "-ERR authentication cancelled"},
		{"", "-ERR malformed PLAIN message*"},
		{"QUIT", "-ERR malformed PLAIN message*"}, // SASL data (valid base64), not a command
		{"QUIT!", "-ERR invalid base64*"},
		{plain("", testUser, "nope"), "-ERR [AUTH]*"},
		{plain("", testUser, testPass), "+OK alice has*"},
	} {
		if r := cl.cmd("AUTH PLAIN"); r != "+ " {
			t.Fatalf("challenge %q", r)
		}
		cl.run([]step{{tc.answer, tc.want, ""}})
	}
	cl.run([]step{{"STAT", "+OK*", ""}})
}

func TestPipelining(t *testing.T) {
	_, addr := startServer(t, testConfig())
	cl := dial(t, addr)
	// Everything in one write, login included (RFC 2449 §6.6 allows it).
	cl.send("USER " + testUser + "\r\nPASS " + testPass + "\r\nSTAT\r\nLIST\r\nUIDL\r\nRETR 2\r\nDELE 1\r\nRETR 1\r\nNOOP\r\nQUIT\r\n")
	want := []struct {
		status string
		multi  bool
	}{{"+OK send PASS", false}, {"+OK alice*", false}, {"+OK 5 *", false}, {"+OK*", true}, {"+OK*", true},
		{"+OK*", true}, {"+OK message 1 deleted", false}, {"-ERR message 1 already deleted", false}, {"+OK", false}, {"-ERR [SYS/PERM]*", false}}
	for i, w := range want {
		got := cl.line()
		if p, ok := strings.CutSuffix(w.status, "*"); !(ok && strings.HasPrefix(got, p) || got == w.status) {
			t.Fatalf("reply %d: %q, want %q", i, got, w.status)
		}
		if w.multi {
			b := cl.body()
			if i == 5 && b != canon(1) {
				t.Fatalf("RETR 2 body %q", b)
			}
		}
	}
	cl.expectEOF()
}

// TestPipelinedFlush checks that replies to a batch arrive even when the
// batch ends in the middle of a line (the server must flush what it has).
func TestPipelinedFlush(t *testing.T) {
	_, addr := startServer(t, testConfig())
	cl := dial(t, addr)
	cl.send("CAPA\r\nNO")
	if r := cl.line(); !strings.HasPrefix(r, "+OK") {
		t.Fatal(r)
	}
	cl.body()
	cl.send("OP\r\n")
	if r := cl.line(); !strings.HasPrefix(r, "-ERR") {
		t.Fatal(r)
	}
}

func TestLineTooLong(t *testing.T) {
	_, addr := startServer(t, testConfig())
	for _, n := range []int{1023, 5000, 20000} {
		cl := dial(t, addr)
		cl.send("NOOP " + strings.Repeat("x", n) + "\r\n")
		if r := cl.line(); r != "-ERR line too long" {
			t.Fatalf("%d: %q", n, r)
		}
		cl.expectEOF()
	}
	// Just under the limit is still a command.
	cl := dial(t, addr)
	if r := cl.cmd("NOOP " + strings.Repeat("x", 1024-7)); r != "-ERR command not valid in this state" {
		t.Fatalf("%q", r)
	}
}

func TestBareLF(t *testing.T) {
	_, addr := startServer(t, testConfig())
	cl := dial(t, addr)
	cl.send("USER " + testUser + "\nPASS " + testPass + "\nSTAT\n")
	for i := 0; i < 3; i++ {
		if r := cl.line(); !strings.HasPrefix(r, "+OK") {
			t.Fatalf("reply %d: %q", i, r)
		}
	}
}

func TestIdleTimeout(t *testing.T) {
	cfg := testConfig()
	cfg.IdleTimeout = 200 * time.Millisecond
	_, addr := startServer(t, cfg)
	cl := dial(t, addr)
	start := time.Now()
	cl.expectEOF() // no reply, just a close (RFC 1939 §3)
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("closed after %v", d)
	}
}

func TestPersistentDeletes(t *testing.T) {
	cfg := testConfig()
	cfg.PersistentDeletes = true
	_, addr := startServer(t, cfg)
	cl := dial(t, addr)
	cl.login()
	cl.cmd("UIDL")
	before := cl.body()
	cl.run([]step{{"DELE 1", "+OK*", ""}, {"DELE 3", "+OK*", ""}, {"QUIT", "+OK bye, 2 messages deleted", ""}})
	cl.expectEOF()

	cl = dial(t, addr)
	cl.login()
	cl.cmd("UIDL")
	after := cl.body()
	lines := strings.Split(strings.TrimSuffix(before, "\r\n"), "\r\n")
	uid := func(l string) string { _, u, _ := strings.Cut(l, " "); return u }
	want := fmt.Sprintf("1 %s\r\n2 %s\r\n3 %s\r\n", uid(lines[1]), uid(lines[3]), uid(lines[4]))
	if after != want {
		t.Fatalf("after deletion:\n%s\nwant\n%s", after, want)
	}
	// Another user's maildrop is untouched.
	cl = dial(t, addr)
	cl.run([]step{{"USER bob", "+OK*", ""}, {"PASS bobpw", "+OK bob has 5 messages*", ""}})
	// Without QUIT, deletions are void.
	cl = dial(t, addr)
	cl.login()
	cl.run([]step{{"DELE 1", "+OK*", ""}})
	cl.c.Close()
	cl = dial(t, addr)
	cl.login()
	cl.run([]step{{"STAT", "+OK 3 *", ""}})
}

func TestExclusiveLockAndMaildropError(t *testing.T) {
	cfg := testConfig()
	cfg.ExclusiveLock = true
	cfg.Maildrop = func(user string) ([]Message, error) {
		if user == "bob" {
			return nil, errors.New("disk on fire")
		}
		return testMessages[:1], nil
	}
	_, addr := startServer(t, cfg)
	a := dial(t, addr)
	a.login()
	a.run([]step{{"STAT", fmt.Sprintf("+OK 1 %d", testMessages[0].Size()), ""}})
	b := dial(t, addr)
	b.run([]step{{"USER " + testUser, "+OK*", ""}, {"PASS " + testPass, "-ERR [IN-USE] maildrop already in use", ""}})
	a.run([]step{{"QUIT", "+OK bye", ""}}) // releases the lock
	b.run([]step{{"USER " + testUser, "+OK*", ""}, {"PASS " + testPass, "+OK*", ""}})
	c := dial(t, addr)
	c.run([]step{{"USER bob", "+OK*", ""}, {"PASS bobpw", "-ERR [SYS/PERM] cannot open the maildrop", ""}})
}

func TestServeStopsOnCancel(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := New(testConfig())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	cl := dial(t, ln.Addr().String())
	cl.login()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	cl.expectEOF()
	if srv.Active() != 0 || srv.Total() != 1 {
		t.Fatalf("active %d total %d", srv.Active(), srv.Total())
	}
}

func TestConcurrentClients(t *testing.T) {
	cfg := testConfig()
	cfg.PersistentDeletes = true
	_, addr := startServer(t, cfg)
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := dial(t, addr)
			cl.login()
			for j := 1; j <= len(testMessages); j++ {
				cl.send(fmt.Sprintf("RETR %d\r\n", j))
				if r := cl.line(); !strings.HasPrefix(r, "+OK") {
					t.Errorf("RETR: %s", r)
					return
				}
				if b := cl.body(); b != canon(j-1) {
					t.Errorf("RETR %d differs", j)
				}
			}
			cl.cmd("QUIT")
		}()
	}
	wg.Wait()
}

// recConn records the bytes of a conversation in the order the client
// saw them, for feeding the decoder afterwards.
type recConn struct {
	net.Conn
	mu    sync.Mutex
	parts []recPart
}

type recPart struct {
	side event.Side
	b    []byte
}

func (r *recConn) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	r.add(event.Server, p[:n])
	return n, err
}

func (r *recConn) Write(p []byte) (int, error) {
	r.add(event.Client, p)
	return r.Conn.Write(p)
}

func (r *recConn) add(side event.Side, p []byte) {
	if len(p) == 0 {
		return
	}
	r.mu.Lock()
	r.parts = append(r.parts, recPart{side, append([]byte(nil), p...)})
	r.mu.Unlock()
}

// TestDecoderFindsNothing runs a thorough clean session and checks that
// popscope's own decoder reports no rule violation beyond the expected
// cleartext warnings (no TLS here).
func TestDecoderFindsNothing(t *testing.T) {
	_, addr := startServer(t, testConfig())
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rc := &recConn{Conn: c}
	cl := &client{t: t, c: rc, r: bufio.NewReader(rc)}
	t.Cleanup(func() { c.Close() })
	cl.greeting = cl.line()
	ts := greetingRE.FindStringSubmatch(cl.greeting)[1]
	sum := md5.Sum([]byte(ts + testPass))
	cl.run([]step{
		{"CAPA", "+OK*", "*"},
		{"APOP " + testUser + " " + hex.EncodeToString(sum[:]), "+OK*", ""},
		{"CAPA", "+OK*", "*"},
		{"STAT", "+OK*", ""},
		{"LIST", "+OK*", "*"},
		{"UIDL", "+OK*", "*"},
		{"LIST 2", "+OK*", ""},
		{"UIDL 2", "+OK*", ""},
		{"RETR 1", "+OK*", "*"},
		{"RETR 2", "+OK*", "*"},
		{"RETR 3", "+OK*", "*"},
		{"RETR 4", "+OK*", "*"},
		{"RETR 5", "+OK*", "*"},
		{"TOP 1 1", "+OK*", "*"},
		{"TOP 2 0", "+OK*", "*"},
		{"DELE 1", "+OK*", ""},
		{"RSET", "+OK*", ""},
		{"NOOP", "+OK", ""},
	})
	cl.send("STAT\r\nLIST\r\nUIDL\r\n")
	cl.line()
	cl.line()
	cl.body()
	cl.line()
	cl.body()
	cl.run([]step{{"QUIT", "+OK bye", ""}})
	cl.expectEOF()

	var viol []string
	var responses int
	dec := decode.New(decode.Options{}, func(e *event.Event) {
		switch e.Type {
		case event.Violation:
			viol = append(viol, e.Rule+" "+string(e.Severity)+": "+e.Detail)
		case event.Response:
			responses++
		}
	})
	now := time.Now()
	rc.mu.Lock()
	for _, p := range rc.parts {
		dec.Feed(p.side, now, p.b)
	}
	rc.mu.Unlock()
	dec.Close(event.Server, now)
	dec.Close(event.Client, now)
	dec.Finish(now)
	for _, v := range viol {
		// Expected: cleartext login without TLS (AUTH-001/002), and the bare
		// CR that message 5 carries on purpose (LINE-003, info).
		if !strings.HasPrefix(v, "POP3-AUTH-00") && !strings.HasPrefix(v, "POP3-LINE-003 info") {
			t.Errorf("violation: %s", v)
		}
	}
	if responses != 22 {
		t.Errorf("decoder saw %d responses, want 22", responses)
	}
}

func TestPrepare(t *testing.T) {
	for _, tc := range []struct{ in, canonical, wire string }{
		{"", "", ".\r\n"},
		{"a", "a\r\n", "a\r\n.\r\n"},
		{"a\r", "a\r\n", "a\r\n.\r\n"},
		{"a\n", "a\r\n", "a\r\n.\r\n"},
		{"a\r\n", "a\r\n", "a\r\n.\r\n"},
		{"\n", "\r\n", "\r\n.\r\n"},
		{".\n..\r\n.x", ".\r\n..\r\n.x\r\n", "..\r\n...\r\n..x\r\n.\r\n"},
		{"x\ry\n", "x\ry\r\n", "x\ry\r\n.\r\n"},
	} {
		m := Message{Data: []byte(tc.in)}
		p := prepare(m)
		if got := string(m.Canonical()); got != tc.canonical {
			t.Errorf("Canonical(%q) = %q, want %q", tc.in, got, tc.canonical)
		}
		if string(p.wire)+".\r\n" != tc.wire {
			t.Errorf("wire(%q) = %q, want %q", tc.in, p.wire, tc.wire)
		}
		if p.size != int64(len(tc.canonical)) || m.Size() != p.size {
			t.Errorf("size(%q) = %d / %d, want %d", tc.in, p.size, m.Size(), len(tc.canonical))
		}
	}
}

// FuzzSession feeds arbitrary client bytes to a session and checks that
// the server neither panics nor hangs and answers only with CRLF lines.
func FuzzSession(f *testing.F) {
	for _, s := range []string{
		"USER alice\r\nPASS s3cret pw\r\nSTAT\r\nRETR 2\r\nTOP 2 1\r\nQUIT\r\n",
		"AUTH PLAIN\r\n*\r\nAUTH PLAIN\r\nAGFsaWNlAHMzY3JldCBwdw==\r\nLIST\r\nUIDL 1\r\nDELE 1\r\nRSET\r\n",
		"\x00\xff\r\n\r\n \r\nCA\rPA\r\nLIST  1\r\n",
		"APOP alice 0123456789abcdef0123456789abcdef\r\nCAPA\n",
	} {
		f.Add([]byte(s))
	}
	cfg := testConfig()
	cfg.IdleTimeout = 100 * time.Millisecond // ends sessions left waiting for input
	srv := New(cfg)
	f.Fuzz(func(t *testing.T, in []byte) {
		a, b := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			srv.ServeConn(context.Background(), b)
		}()
		out := make(chan []byte, 1)
		go func() {
			all, _ := io.ReadAll(a)
			out <- all
		}()
		_ = a.SetWriteDeadline(time.Now().Add(2 * time.Second))
		_, _ = a.Write(in)
		// net.Pipe has no half-close: end the session with QUIT, or by
		// the idle timeout if the input left it inside an AUTH exchange.
		_, _ = a.Write([]byte("\r\nQUIT\r\n"))
		var got []byte
		select {
		case got = <-out:
		case <-time.After(5 * time.Second):
			a.Close()
			t.Fatal("session did not end")
		}
		a.Close()
		<-done
		if len(got) > 0 && !bytes.HasSuffix(got, []byte("\r\n")) {
			t.Fatalf("output does not end in CRLF: %q", got)
		}
	})
}

// BenchmarkRETR256MiB measures RETR of one 256 MiB message over loopback.
func BenchmarkRETR256MiB(b *testing.B) {
	line := strings.Repeat("0123456789", 7) + "abcdef\r\n" // 78 octets
	data := make([]byte, 0, 256<<20+len(line))
	data = append(data, "Subject: big\r\n\r\n"...)
	for len(data) < 256<<20 {
		data = append(data, line...)
	}
	cfg := testConfig()
	cfg.Messages = []Message{{Data: data}}
	_, addr := startServer(b, cfg)
	cl := dial(b, addr)
	cl.login()
	wire := int64(len(data)) + 3
	buf := make([]byte, 1<<20)
	b.SetBytes(wire)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cl.send("RETR 1\r\n")
		if r := cl.line(); !strings.HasPrefix(r, "+OK") {
			b.Fatal(r)
		}
		var n int64
		for n < wire {
			_ = cl.c.SetReadDeadline(time.Now().Add(10 * time.Second))
			m, err := cl.r.Read(buf[:min(int64(len(buf)), wire-n)])
			if err != nil {
				b.Fatal(err)
			}
			n += int64(m)
		}
	}
}

// refLines is the straightforward definition convert must match: split
// at LF, drop a CR before it, drop a final lone CR, re-join with CRLF.
func refLines(data []byte) [][]byte {
	var lines [][]byte
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		var l []byte
		if i < 0 {
			l, data = data, nil
		} else {
			l, data = data[:i], data[i+1:]
		}
		l = bytes.TrimSuffix(l, []byte("\r"))
		lines = append(lines, l)
	}
	return lines
}

func TestConvertMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("a.\r\n ")
	for n := 0; n < 20000; n++ {
		data := make([]byte, rng.IntN(24))
		for i := range data {
			data[i] = alphabet[rng.IntN(len(alphabet))]
		}
		var canonical, wire []byte
		hdr := -1
		for _, l := range refLines(data) {
			if len(l) > 0 && l[0] == '.' {
				wire = append(wire, '.')
			}
			wire = append(append(wire, l...), '\r', '\n')
			canonical = append(append(canonical, l...), '\r', '\n')
			if len(l) == 0 && hdr < 0 {
				hdr = len(wire)
			}
		}
		m := Message{Data: data}
		if got := m.Canonical(); !bytes.Equal(got, canonical) {
			t.Fatalf("Canonical(%q) = %q, want %q", data, got, canonical)
		}
		if m.Size() != int64(len(canonical)) {
			t.Fatalf("Size(%q) = %d, want %d", data, m.Size(), len(canonical))
		}
		p := prepare(m)
		if !bytes.Equal(p.wire, wire) || p.size != int64(len(canonical)) {
			t.Fatalf("prepare(%q): wire %q size %d, want %q %d", data, p.wire, p.size, wire, len(canonical))
		}
		if hdr < 0 {
			if !p.noSep || p.hdrEnd != len(wire) {
				t.Fatalf("prepare(%q): hdrEnd %d noSep %v, want none", data, p.hdrEnd, p.noSep)
			}
		} else if p.noSep || p.hdrEnd != hdr {
			t.Fatalf("prepare(%q): hdrEnd %d, want %d", data, p.hdrEnd, hdr)
		}
	}
}
