//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestUpstreamUnreachable: with nothing listening upstream, a client gets
// a temporary-failure greeting, the session ends with reason "upstream
// unreachable", and the proxy goes on serving the next client.
func TestUpstreamUnreachable(t *testing.T) {
	dir := testDir(t)
	ports, err := freePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	upstream := fmt.Sprintf("127.0.0.1:%d", ports[0]) // closed again by freePorts
	p := startProxy(t, dir, upstream, "--dial-timeout", "5s")

	greet, rest := dialGreeting(t, p.addr, "")
	if !strings.HasPrefix(greet, "-ERR [SYS/TEMP]") {
		t.Errorf("greeting with the upstream down: %q, want it to begin with \"-ERR [SYS/TEMP]\"", greet)
	}
	if rest != "" {
		t.Errorf("after the -ERR greeting the proxy sent %q before closing", rest)
	}
	t.Logf("greeting with the upstream down: %q", greet)

	// Now start a tiny POP3 server on that port: the proxy must serve the
	// next client normally. If the port was taken meanwhile, the second
	// client must at least get the same -ERR greeting.
	ln, err := net.Listen("tcp", upstream)
	fake := err == nil
	if fake {
		defer ln.Close()
		go fakePOP3(ln)
		greet2, rest2 := dialGreeting(t, p.addr, "QUIT\r\n")
		if greet2 != "+OK fake POP3 ready" || rest2 != "+OK bye\r\n" {
			t.Errorf("second client: greeting %q then %q, want \"+OK fake POP3 ready\" then \"+OK bye\\r\\n\"", greet2, rest2)
		}
	} else {
		t.Logf("could not listen on %s again (%v): the second client expects the -ERR greeting too", upstream, err)
		greet2, _ := dialGreeting(t, p.addr, "")
		if !strings.HasPrefix(greet2, "-ERR [SYS/TEMP]") {
			t.Errorf("second client: greeting %q", greet2)
		}
	}
	waitSessionEnds(t, p.events, 2, 15*time.Second)
	p.stop(t)

	evs, err := readEvents(p.events, true)
	if err != nil {
		t.Fatal(err)
	}
	sessions, order := bySession(t, evs)
	if len(order) != 2 {
		t.Fatalf("%d sessions in the events, want 2", len(order))
	}
	first := sessions[order[0]]
	end := first[len(first)-1]
	if end.Type != "session_end" || end.Reason != "upstream unreachable" {
		t.Errorf("first session ends with %s, want a session_end with reason \"upstream unreachable\"", end.raw)
	}
	if end.Error == "" {
		t.Errorf("first session_end carries no error text: %s", end.raw)
	}
	for _, e := range first {
		if e.Type == "violation" && e.Severity == "error" {
			t.Errorf("error-severity violation in the unreachable session: %s", e.raw)
		}
	}
	second := sessions[order[1]]
	vlog := &violationLog{}
	for _, e := range second {
		switch {
		case e.Type == "violation" && e.Severity == "error":
			t.Errorf("error-severity violation in a clean session: %s", e.raw)
		case e.Type == "violation":
			vlog.add(e)
		case e.Type == "session_end" && fake && e.Reason != "server closed" && e.Reason != "client closed":
			t.Errorf("second session: %s", e.raw)
		case e.Type == "session_end" && !fake && e.Reason != "upstream unreachable":
			t.Errorf("second session: %s", e.raw)
		}
	}
	if fake {
		var quit, ok bool
		for _, e := range second {
			quit = quit || (e.Type == "command" && e.Verb == "QUIT")
			ok = ok || (e.Type == "response" && e.Verb == "QUIT" && e.Status == "+OK")
		}
		if !quit || !ok {
			t.Errorf("second session lacks the QUIT command or its +OK response event")
		}
	}
	t.Logf("second session: non-error violations: %s", vlog)
}

// dialGreeting connects to addr, reads the first line (without CRLF),
// sends send, and reads everything else until the proxy closes; all
// bounded by a 15s deadline.
func dialGreeting(t *testing.T, addr, send string) (string, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("reading the greeting: %v (got %q)", err, line)
	}
	if send != "" {
		if _, err := io.WriteString(c, send); err != nil {
			t.Fatalf("sending %q: %v", send, err)
		}
	}
	rest, err := io.ReadAll(io.LimitReader(br, 1<<20))
	if err != nil {
		t.Errorf("reading until the proxy closes: %v", err)
	}
	return strings.TrimRight(line, "\r\n"), string(rest)
}

// fakePOP3 answers every connection with a greeting and QUIT with +OK.
func fakePOP3(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			io.WriteString(c, "+OK fake POP3 ready\r\n")
			br := bufio.NewReader(c)
			for range 100 {
				line, err := br.ReadString('\n')
				if err != nil {
					return
				}
				if strings.EqualFold(strings.TrimSpace(line), "QUIT") {
					io.WriteString(c, "+OK bye\r\n")
					return
				}
				io.WriteString(c, "-ERR unknown command\r\n")
			}
		}()
	}
}

// TestGarbageIsRelayedExactly sends random binary, bare-LF lines and a
// 1 MiB line without a newline both ways through the proxy to a raw TCP
// server; the client half-closes and the server keeps sending afterwards.
// Both directions must arrive byte for byte (sha256 compared).
func TestGarbageIsRelayedExactly(t *testing.T) {
	for _, tc := range []struct{ name, greeting string }{
		{"binary-from-the-start", ""},
		{"pop3-greeting-then-garbage", "+OK garbage server ready\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) { testGarbage(t, tc.greeting) })
	}
}

func testGarbage(t *testing.T, greeting string) {
	dir := testDir(t)
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("E2E_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("E2E_SEED: %v", err)
		}
		seed = n
	}
	t.Logf("random seed %d (rerun with E2E_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	longLine := func(n int) []byte { // printable, no line end
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('!' + rng.IntN(94))
		}
		return b
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	clientData := cat(random(256<<10), []byte("USER x\nPASS y\n\n\nRETR 1\n.\n"), random(64<<10), []byte("\r\n"), longLine(1<<20))
	serverBefore := cat([]byte(greeting), random(256<<10), []byte("+OK\nline\n..dots\n.\n"), random(64<<10))
	serverAfter := cat([]byte("\n+OK still talking after the client's FIN\n"), random(128<<10), longLine(1<<20))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result = hashResult
	srvRes := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			srvRes <- result{err: err}
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(60 * time.Second))
		got := make(chan result, 1)
		go func() { got <- readAllHash(c) }()
		if _, err := c.Write(serverBefore); err != nil {
			srvRes <- result{err: fmt.Errorf("server write before: %w", err)}
			return
		}
		r := <-got // the client's FIN has arrived (or an error)
		if r.err != nil {
			srvRes <- r
			return
		}
		if _, err := c.Write(serverAfter); err != nil {
			srvRes <- result{err: fmt.Errorf("server write after the client's FIN: %w", err)}
			return
		}
		_ = c.(*net.TCPConn).CloseWrite()
		srvRes <- r
	}()

	p := startProxy(t, dir, ln.Addr().String())
	c, err := net.DialTimeout("tcp", p.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	cliRes := make(chan result, 1)
	go func() { cliRes <- readAllHash(c) }()
	if _, err := c.Write(clientData); err != nil {
		t.Fatalf("client write: %v", err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatalf("client half-close: %v", err)
	}
	var cr, sr result
	timeout := time.After(90 * time.Second)
	for range 2 {
		select {
		case cr = <-cliRes:
		case sr = <-srvRes:
		case <-timeout:
			t.Fatal("relay did not finish within 90s")
		}
	}
	if cr.err != nil || sr.err != nil {
		t.Fatalf("client: %v; server: %v", cr.err, sr.err)
	}
	wantS2C := cat(serverBefore, serverAfter)
	if want := sha256hex(clientData); sr.sum != want || sr.n != int64(len(clientData)) {
		t.Errorf("client to server: server got %d bytes sha256 %s, client sent %d bytes sha256 %s", sr.n, sr.sum, len(clientData), want)
	}
	if want := sha256hex(wantS2C); cr.sum != want || cr.n != int64(len(wantS2C)) {
		t.Errorf("server to client: client got %d bytes sha256 %s, server sent %d bytes sha256 %s", cr.n, cr.sum, len(wantS2C), want)
	}

	waitSessionEnds(t, p.events, 1, 15*time.Second)
	p.stop(t)
	evs, err := readEvents(p.events, true)
	if err != nil {
		t.Fatal(err)
	}
	sessions, order := bySession(t, evs)
	if len(order) != 1 {
		t.Fatalf("%d sessions in the events, want 1", len(order))
	}
	s := sessions[order[0]]
	end := s[len(s)-1]
	if end.Type != "session_end" || end.BytesC2S != int64(len(clientData)) || end.BytesS2C != int64(len(wantS2C)) {
		t.Errorf("last event %s, want session_end with bytes_c2s=%d bytes_s2c=%d", end.raw, len(clientData), len(wantS2C))
	}
	counts := map[string]int{}
	for _, e := range s {
		counts[e.Type]++
		if e.Type == "note" && (strings.Contains(e.Error, "panic") || strings.Contains(e.Detail, "decoder failed")) {
			t.Errorf("decoder failure on garbage: %s", e.raw)
		}
	}
	vlog := &violationLog{}
	for _, e := range s {
		if e.Type == "violation" {
			vlog.add(e)
		}
	}
	t.Logf("%d bytes up, %d bytes down, identical; events by type %v; violations: %s", len(clientData), len(wantS2C), counts, vlog)
}

type hashResult struct {
	n   int64
	sum string
	err error
}

func readAllHash(r io.Reader) (res hashResult) {
	h := sha256.New()
	res.n, res.err = io.Copy(h, r)
	res.sum = hexSum(h)
	return res
}

func hexSum(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }

func sha256hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
