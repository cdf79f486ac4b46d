package replay

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/popscope/popscope/event"
	"github.com/popscope/popscope/exporters/record"
	"github.com/popscope/popscope/internal/certs"
	"github.com/popscope/popscope/internal/pop3server"
	"github.com/popscope/popscope/proxy"
)

type recAdapter struct{ r *record.Recorder }

func (a recAdapter) Open(id string, start time.Time, client, upstream string) proxy.SessionRecorder {
	return a.r.Open(id, start, client, upstream)
}

func messages(n int) []pop3server.Message {
	var ms []pop3server.Message
	for i := 1; i <= n; i++ {
		body := fmt.Sprintf("From: a@example.test\r\nSubject: message %d\r\n\r\n", i)
		for k := 0; k < i*3; k++ {
			body += fmt.Sprintf("line %d of message %d\r\n", k, i)
		}
		body += ".leading dot\r\n"
		ms = append(ms, pop3server.Message{Data: []byte(body), UID: fmt.Sprintf("uid-%03d", i)})
	}
	return ms
}

// startPOP3 runs the in-repo server on 127.0.0.1.
func startPOP3(t *testing.T, msgs []pop3server.Message) string {
	t.Helper()
	srv := pop3server.New(pop3server.Config{Users: map[string]string{"alice": "alicepw"}, Messages: msgs, APOP: true, IdleTimeout: time.Minute})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String()
}

// script is a client: it writes each chunk, then reads until it has seen
// the given number of replies (a reply ends with a status line, or with
// ".\r\n" for multi-line replies), and returns every byte it received.
type chunk struct {
	send    string
	replies []bool // multi-line flag per reply expected after this chunk
}

func runScript(t *testing.T, addr string, chunks []chunk) []byte {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(c)
	var got bytes.Buffer
	line := func() string {
		l, err := r.ReadString('\n')
		got.WriteString(l)
		if err != nil {
			t.Fatalf("reading: %v after %q", err, got.String())
		}
		return l
	}
	line() // greeting
	for _, ch := range chunks {
		if _, err := c.Write([]byte(ch.send)); err != nil {
			t.Fatal(err)
		}
		for _, multi := range ch.replies {
			st := line()
			if multi && strings.HasPrefix(st, "+OK") {
				for i := 0; i < 100000 && line() != ".\r\n"; i++ {
				}
			}
		}
	}
	return got.Bytes()
}

var plainScript = []chunk{
	{"CAPA\r\n", []bool{true}},
	{"USER alice\r\n", []bool{false}},
	{"PASS alicepw\r\n", []bool{false}},
	{"STAT\r\n", []bool{false}},
	{"LIST\r\n", []bool{true}},
	{"UIDL\r\n", []bool{true}},
	{"LIST 2\r\n", []bool{false}},
	{"RETR 1\r\n", []bool{true}},
	{"RETR 2\r\nNOOP\r\nTOP 3 1\r\n", []bool{true, false, true}}, // pipelined
	{"RETR 3\r\n", []bool{true}},
	{"QUIT\r\n", []bool{false}},
}

// recordVia records one scripted session through the proxy against addr
// and returns the recording and what the client received.
func recordVia(t *testing.T, addr string, opt record.Options, chunks []chunk) (*record.Recording, []byte) {
	t.Helper()
	opt.Dir = filepath.Join(t.TempDir(), "rec")
	rec, err := record.New(opt)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := proxy.New(proxy.Config{Upstream: addr, Recorder: recAdapter{rec}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Serve(ctx, ln); close(done) }()
	got := runScript(t, ln.Addr().String(), chunks)
	// Wait (bounded) for the session to end before stopping the proxy.
	for i := 0; i < 500 && p.Active() > 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	cctx, cc := context.WithTimeout(context.Background(), 10*time.Second)
	defer cc()
	if err := rec.Close(cctx); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(opt.Dir, "*.rec.jsonl"))
	if len(files) != 1 {
		t.Fatalf("%d recordings", len(files))
	}
	r, err := record.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	return r, got
}

func build(t *testing.T, rec *record.Recording) *Conversation {
	t.Helper()
	conv, err := Build(rec)
	if err != nil {
		t.Fatal(err)
	}
	return conv
}

// startReplay serves conv on 127.0.0.1.
func startReplay(t *testing.T, conv *Conversation, opt ServerOptions) (*Server, string) {
	t.Helper()
	srv := NewServer(conv, opt)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return srv, ln.Addr().String()
}

func waitConns(srv *Server, n int64) {
	for i := 0; i < 500 && srv.Connections() < n; i++ {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
}

func TestBuild(t *testing.T) {
	up := startPOP3(t, messages(3))
	rec, _ := recordVia(t, up, record.Options{}, plainScript)
	conv := build(t, rec)
	var verbs []string
	for _, x := range conv.Exchanges {
		verbs = append(verbs, x.String())
		if x.Reply == nil {
			t.Errorf("#%d %s: no reply", x.N, x)
		}
	}
	want := "CAPA|USER alice|PASS ****|STAT|LIST|UIDL|LIST 2|RETR 1|RETR 2|NOOP|TOP 3 1|RETR 3|QUIT"
	if got := strings.Join(verbs, "|"); got != want {
		t.Errorf("exchanges %s\nwant      %s", got, want)
	}
	if !bytes.HasPrefix(conv.Greeting, []byte("+OK ")) || conv.User != "alice" || conv.Lost || conv.Cut {
		t.Errorf("greeting %q user %q lost %v cut %v", conv.Greeting, conv.User, conv.Lost, conv.Cut)
	}
	// RETR 2, NOOP, TOP 3 1 were sent together: NOOP and TOP pipelined.
	x := conv.Exchanges[9]
	if x.Verb() != "NOOP" || x.DoneBefore != 8 || conv.Exchanges[10].DoneBefore != 8 || conv.Exchanges[8].DoneBefore != 8 {
		t.Errorf("pipelining: NOOP done-before %d, TOP %d", x.DoneBefore, conv.Exchanges[10].DoneBefore)
	}
	if !conv.Exchanges[2].Redacted || string(conv.Exchanges[2].Line) != "PASS <redacted>\r\n" {
		t.Errorf("PASS line %q", conv.Exchanges[2].Line)
	}
	// The recorded replies concatenate to the server stream.
	var all []byte
	all = append(all, conv.Greeting...)
	for _, x := range conv.Exchanges {
		all = append(all, x.Reply...)
	}
	if !bytes.Equal(all, rec.Stream(event.Server)) {
		t.Error("greeting + replies != server stream")
	}
}

// TestServerByteExact: the same client gets the same bytes from the
// replay server as it got through the proxy from the real server.
func TestServerByteExact(t *testing.T) {
	up := startPOP3(t, messages(3))
	rec, orig := recordVia(t, up, record.Options{}, plainScript)
	conv := build(t, rec)
	var evMu sync.Mutex
	var evs []*event.Event
	srv, addr := startReplay(t, conv, ServerOptions{Publish: func(e *event.Event) { evMu.Lock(); evs = append(evs, e); evMu.Unlock() }})
	got := runScript(t, addr, plainScript)
	if !bytes.Equal(got, orig) {
		t.Errorf("replayed bytes differ:\n got %q\nwant %q", got, orig)
	}
	waitConns(srv, 1)
	time.Sleep(50 * time.Millisecond)
	if d := srv.Divergences(); len(d) != 0 {
		t.Errorf("divergences: %v", d)
	}
	evMu.Lock()
	defer evMu.Unlock()
	n := 0
	for _, e := range evs {
		if e.Type == event.Command {
			n++
		}
	}
	if n != 13 {
		t.Errorf("%d command events from the live session, want 13", n)
	}
}

func TestServerDivergence(t *testing.T) {
	up := startPOP3(t, messages(3))
	rec, _ := recordVia(t, up, record.Options{}, plainScript)
	conv := build(t, rec)
	var logMu sync.Mutex
	var logged []string
	srv, addr := startReplay(t, conv, ServerOptions{Logf: func(f string, a ...any) {
		logMu.Lock()
		logged = append(logged, fmt.Sprintf(f, a...))
		logMu.Unlock()
	}})
	got := runScript(t, addr, []chunk{
		{"USER bob\r\n", []bool{false}},
		{"PASS whatever\r\n", []bool{false}},
		{"RETR 3\r\n", []bool{true}},
		{"RETR 1\r\n", []bool{true}},
		{"RETR 1\r\n", []bool{true}},
		{"DELE 1\r\n", []bool{false}},
		{"QUIT\r\n", []bool{false}},
	})
	s := string(got)
	if !strings.Contains(s, "-ERR popscope replay: DELE is not in the recording") {
		t.Errorf("no -ERR for DELE: %q", s)
	}
	if strings.Count(s, "line 2 of message 1") != 2 {
		t.Errorf("RETR 1 not answered twice")
	}
	waitConns(srv, 1)
	var details []string
	for _, d := range srv.Divergences() {
		details = append(details, d.String())
	}
	all := strings.Join(details, "\n")
	for _, want := range []string{
		"command 1 (USER bob): out of order: recorded as #2; #1 to #1 not sent before it; arguments differ from the recording (USER alice)",
		"command 3 (RETR 3): out of order: recorded as #12",
		"command 4 (RETR 1): out of order: recorded as #8, before commands already sent",
		"command 5 (RETR 1): sent again: answered with the reply recorded for #8",
		"command 6 (DELE 1): not in the recording",
		"recorded commands never sent: #1 CAPA, #4 STAT",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("missing divergence %q in:\n%s", want, all)
		}
	}
	logMu.Lock()
	defer logMu.Unlock()
	if len(logged) != len(details) {
		t.Errorf("%d logged, %d divergences", len(logged), len(details))
	}
}

func TestServerCredentials(t *testing.T) {
	up := startPOP3(t, messages(1))
	rec, _ := recordVia(t, up, record.Options{}, []chunk{{"USER alice\r\n", []bool{false}}, {"PASS alicepw\r\n", []bool{false}},
		{"STAT\r\n", []bool{false}}, {"QUIT\r\n", []bool{false}}})
	conv := build(t, rec)
	_, addr := startReplay(t, conv, ServerOptions{User: "alice", Pass: "right"})
	bad := runScript(t, addr, []chunk{{"USER alice\r\nPASS wrong\r\n", []bool{false, false}}, {"QUIT\r\n", []bool{false}}})
	if !strings.Contains(string(bad), "-ERR [AUTH] popscope replay: invalid credentials") {
		t.Errorf("wrong password accepted: %q", bad)
	}
	good := runScript(t, addr, []chunk{{"USER alice\r\nPASS right\r\n", []bool{false, false}}, {"QUIT\r\n", []bool{false}}})
	if strings.Contains(string(good), "-ERR") {
		t.Errorf("right password refused: %q", good)
	}
	// APOP against the recorded greeting's timestamp.
	rec2, _ := recordVia(t, up, record.Options{}, nil)
	_ = rec2
}

// TestClientSame: replaying against the unchanged server shows nothing.
func TestClientSame(t *testing.T) {
	up := startPOP3(t, messages(3))
	rec, _ := recordVia(t, up, record.Options{}, plainScript)
	res, err := RunClient(context.Background(), build(t, rec), ClientOptions{Upstream: up, Pass: "alicepw", Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	res.Format(&b)
	if !res.Same() || res.Sent != 13 || res.Compared != 14 {
		t.Errorf("sent %d compared %d:\n%s", res.Sent, res.Compared, b.String())
	}
}

// TestClientChanged: a maildrop with a message added, and one with the
// last message removed, show exactly that change.
func TestClientChanged(t *testing.T) {
	up := startPOP3(t, messages(3))
	rec, _ := recordVia(t, up, record.Options{}, plainScript)
	conv := build(t, rec)
	four := messages(4)
	for _, tc := range []struct {
		name string
		msgs []pop3server.Message
		want []string
	}{
		{"added", four, []string{
			"#4 STAT:\n    messages 3 → 4\n    maildrop size",
			"#5 LIST: message 4 added (" + fmt.Sprint(four[3].Size()) + " octets, unique-id uid-004)",
			"#6 UIDL: message 4 added (unique-id uid-004)",
			"3 of 14 replies differ",
		}},
		{"removed", four[:2], []string{
			"#4 STAT:\n    messages 3 → 2\n    maildrop size",
			"#5 LIST: message 3 removed (",
			"#6 UIDL: message 3 removed (unique-id uid-003)",
			"#11 TOP 3 1: status +OK (",
			"#12 RETR 3: status +OK (",
			"5 of 14 replies differ",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up2 := startPOP3(t, tc.msgs)
			res, err := RunClient(context.Background(), conv, ClientOptions{Upstream: up2, Pass: "alicepw", Timeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			res.Format(&b)
			for _, w := range tc.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("missing %q in:\n%s", w, b.String())
				}
			}
		})
	}
	// A different message under the same number is recognised by its unique-id.
	swapped := messages(3)
	swapped[0], swapped[1] = swapped[1], swapped[0]
	up3 := startPOP3(t, swapped)
	res, err := RunClient(context.Background(), conv, ClientOptions{Upstream: up3, Pass: "alicepw", Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	res.Format(&b)
	if !strings.Contains(b.String(), "a different message: recorded unique-id uid-001, live uid-002 (uid-001 is now message 2)") {
		t.Errorf("swap not recognised:\n%s", b.String())
	}
}

func TestClientUnusable(t *testing.T) {
	up := startPOP3(t, messages(1))
	rec, _ := recordVia(t, up, record.Options{}, []chunk{{"USER alice\r\nPASS alicepw\r\n", []bool{false, false}}, {"QUIT\r\n", []bool{false}}})
	conv := build(t, rec)
	_, err := RunClient(context.Background(), conv, ClientOptions{Upstream: up})
	if _, ok := err.(*UnusableError); !ok || !strings.Contains(err.Error(), "give --pass") {
		t.Errorf("no --pass: %v", err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	_, err = RunClient(context.Background(), conv, ClientOptions{Upstream: dead, Pass: "x", Timeout: 2 * time.Second})
	if _, ok := err.(*UnusableError); !ok {
		t.Errorf("dead upstream: %v", err)
	}
}

// TestClientPipelining: commands the recording shows sent together reach
// the server in one write.
func TestClientPipelining(t *testing.T) {
	up := startPOP3(t, messages(3))
	rec, _ := recordVia(t, up, record.Options{RecordSecrets: true}, plainScript)
	conv := build(t, rec)
	// A relay in front of the server logs each read from the client.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var mu sync.Mutex
	var reads []string
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		u, err := net.Dial("tcp", up)
		if err != nil {
			return
		}
		defer u.Close()
		go func() { bufio.NewReader(u).WriteTo(c) }()
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				mu.Lock()
				reads = append(reads, string(buf[:n]))
				mu.Unlock()
				u.Write(buf[:n])
			}
			if err != nil {
				return
			}
		}
	}()
	res, err := RunClient(context.Background(), conv, ClientOptions{Upstream: ln.Addr().String(), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Same() {
		var b bytes.Buffer
		res.Format(&b)
		t.Errorf("differs:\n%s", b.String())
	}
	mu.Lock()
	defer mu.Unlock()
	found := false
	for _, r := range reads {
		if r == "RETR 2\r\nNOOP\r\nTOP 3 1\r\n" {
			found = true
		}
		if r == "PASS alicepw\r\n" {
			continue
		}
	}
	if !found {
		t.Errorf("pipelined commands not sent together: %q", reads)
	}
}

// synthetic writes a recording from steps with the recorder itself.
func synthetic(t *testing.T, redact bool, steps []string) *Conversation {
	t.Helper()
	dir := t.TempDir()
	r, err := record.New(record.Options{Dir: dir, RecordSecrets: !redact})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	s := r.Open("synthetic", start, "c", "u")
	for i, st := range steps {
		side := event.Server
		if strings.HasPrefix(st, "C:") {
			side = event.Client
		}
		s.Data(side, start.Add(time.Duration(i)*time.Millisecond), []byte(st[2:]))
	}
	s.Close(start.Add(time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r.Close(ctx)
	rec, err := record.ReadFile(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	return build(t, rec)
}

// TestSASLRoundTrip: a redacted CRAM-MD5 and LOGIN recording, served by
// the replay server (checking credentials) to the replay client
// (computing them).
func TestSASLRoundTrip(t *testing.T) {
	for _, mech := range []string{"CRAM-MD5", "LOGIN", "PLAIN"} {
		t.Run(mech, func(t *testing.T) {
			var steps []string
			switch mech {
			case "CRAM-MD5":
				steps = []string{"S:+OK ready\r\n", "C:AUTH CRAM-MD5\r\n", "S:+ " + b64("<1896.697170952@postoffice.example.net>") + "\r\n",
					"C:" + b64(cramResponse("alice", "pw", []byte("<1896.697170952@postoffice.example.net>"))) + "\r\n", "S:+OK in\r\n"}
			case "LOGIN":
				steps = []string{"S:+OK ready\r\n", "C:AUTH LOGIN\r\n", "S:+ VXNlcm5hbWU6\r\n", "C:" + b64("alice") + "\r\n",
					"S:+ UGFzc3dvcmQ6\r\n", "C:" + b64("pw") + "\r\n", "S:+OK in\r\n"}
			case "PLAIN":
				steps = []string{"S:+OK ready\r\n", "C:AUTH PLAIN " + plainResponse("alice", "pw") + "\r\n", "S:+OK in\r\n"}
			}
			steps = append(steps, "C:STAT\r\n", "S:+OK 2 20\r\n", "C:QUIT\r\n", "S:+OK bye\r\n")
			conv := synthetic(t, true, steps)
			if conv.Exchanges[0].Steps != nil && !conv.Exchanges[0].Steps[len(conv.Exchanges[0].Steps)-1].Redacted {
				t.Fatalf("SASL response not redacted: %+v", conv.Exchanges[0].Steps)
			}
			srv, addr := startReplay(t, conv, ServerOptions{User: "alice", Pass: "pw"})
			res, err := RunClient(context.Background(), conv, ClientOptions{Upstream: addr, User: "alice", Pass: "pw", Timeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			res.Format(&b)
			if !res.Same() {
				t.Errorf("right password:\n%s", b.String())
			}
			res, err = RunClient(context.Background(), conv, ClientOptions{Upstream: addr, User: "alice", Pass: "wrong", Timeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			b.Reset()
			res.Format(&b)
			if res.Same() || !strings.Contains(b.String(), "#1 AUTH "+mech) || !strings.Contains(b.String(), "status +OK → -ERR") {
				t.Errorf("wrong password:\n%s", b.String())
			}
			waitConns(srv, 2)
		})
	}
}

// TestAPOPRoundTrip: APOP against the recorded greeting's timestamp.
func TestAPOPRoundTrip(t *testing.T) {
	up := startPOP3(t, messages(2))
	var chunks []chunk
	rec, _ := recordVia(t, up, record.Options{}, append(chunks, chunk{"APOP alice " + "0123456789abcdef0123456789abcdef" + "\r\n", []bool{false}}, chunk{"QUIT\r\n", []bool{false}}))
	conv := build(t, rec)
	if string(conv.Exchanges[0].Line) != "APOP alice <redacted>\r\n" {
		t.Fatalf("APOP line %q", conv.Exchanges[0].Line)
	}
	// The recorded digest was wrong: the recording shows -ERR; against the
	// real server with the right password the replay gets +OK.
	res, err := RunClient(context.Background(), conv, ClientOptions{Upstream: up, Pass: "alicepw", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	res.Format(&b)
	if !strings.Contains(b.String(), "#1 APOP alice ****: status -ERR [AUTH] → +OK") {
		t.Errorf("APOP:\n%s", b.String())
	}
}

func TestMain(m *testing.M) {
	os.Exit(m.Run())
}

// TestTLSReplay: STLS (recorded +OK) and implicit TLS, served by the
// replay server with a CA's certificate, replayed by the replay client.
func TestTLSReplay(t *testing.T) {
	ca, err := certs.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.CertPEM())
	clientTLS := &tls.Config{RootCAs: roots, ServerName: "localhost"}
	conv := synthetic(t, true, []string{"S:+OK ready\r\n", "C:CAPA\r\n", "S:+OK\r\nSTLS\r\nUSER\r\n.\r\n", "C:STLS\r\n", "S:+OK go ahead\r\n",
		"C:USER alice\r\n", "S:+OK\r\n", "C:PASS pw\r\n", "S:+OK in\r\n", "C:STAT\r\n", "S:+OK 1 5\r\n", "C:QUIT\r\n", "S:+OK bye\r\n"})
	srv, addr := startReplay(t, conv, ServerOptions{TLS: ca.ServerConfig()})
	res, err := RunClient(context.Background(), conv, ClientOptions{Upstream: addr, Pass: "pw", TLS: clientTLS, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	res.Format(&b)
	if !res.Same() {
		t.Errorf("STLS replay:\n%s", b.String())
	}
	waitConns(srv, 1)
	if d := srv.Divergences(); len(d) != 0 {
		t.Errorf("divergences %v", d)
	}
	// Without TLS the replay server refuses STLS and says so.
	srv2, addr2 := startReplay(t, conv, ServerOptions{})
	got := runScript(t, addr2, []chunk{{"STLS\r\n", []bool{false}}, {"QUIT\r\n", []bool{false}}})
	if !strings.Contains(string(got), "-ERR popscope replay: TLS is not available") {
		t.Errorf("STLS without TLS: %q", got)
	}
	waitConns(srv2, 1)
	// Implicit TLS: the recording without STLS, served and replayed over TLS.
	conv2 := synthetic(t, true, []string{"S:+OK ready\r\n", "C:USER alice\r\n", "S:+OK\r\n", "C:PASS pw\r\n", "S:+OK in\r\n", "C:QUIT\r\n", "S:+OK bye\r\n"})
	_, addr3 := startReplay(t, conv2, ServerOptions{TLS: ca.ServerConfig(), ImplicitTLS: true})
	res, err = RunClient(context.Background(), conv2, ClientOptions{Upstream: addr3, Pass: "pw", TLS: clientTLS, TLSMode: TLSImplicit, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Same() {
		b.Reset()
		res.Format(&b)
		t.Errorf("implicit TLS replay:\n%s", b.String())
	}
	// A client that does not trust the certificate: unusable, not a diff.
	_, err = RunClient(context.Background(), conv2, ClientOptions{Upstream: addr3, Pass: "pw", TLS: &tls.Config{ServerName: "localhost"}, TLSMode: TLSImplicit, Timeout: 5 * time.Second})
	if _, ok := err.(*UnusableError); !ok {
		t.Errorf("untrusted certificate: %v", err)
	}
}
