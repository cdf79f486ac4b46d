package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/popscope/popscope/event"
)

type sink struct {
	mu sync.Mutex
	ev []*event.Event
}

func (s *sink) publish(e *event.Event) {
	s.mu.Lock()
	s.ev = append(s.ev, e)
	s.mu.Unlock()
}

func (s *sink) events() []*event.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*event.Event(nil), s.ev...)
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// startProxy runs a proxy to upstream and returns its address.
func startProxy(t *testing.T, upstream string, publish func(*event.Event)) string {
	t.Helper()
	ln := listen(t)
	p := New(Config{Upstream: upstream, Publish: publish, DialTimeout: 2 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("proxy did not stop")
		}
	})
	return ln.Addr().String()
}

func garbage(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return b
}

// The relay must deliver every byte unchanged and in order, whatever it
// is, including half-closes in both orders.
func TestRelayIsByteExact(t *testing.T) {
	oneMiBLine := bytes.Repeat([]byte("A"), 1<<20) // no line end at all
	c2s := bytes.Join([][]byte{[]byte("USER a\nPASS b\r\n"), garbage(1, 300000), oneMiBLine, []byte("\r\n.\r\n\x00\xff")}, nil)
	s2c := bytes.Join([][]byte{[]byte("+OK hi\r\n"), garbage(2, 500000), []byte("+OK 3\r\n..\r\n.\n"), oneMiBLine}, nil)

	up := listen(t)
	defer up.Close()
	gotAtServer := make(chan []byte, 1)
	go func() {
		c, err := up.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, _ := io.ReadAll(c)
			gotAtServer <- b
		}()
		c.Write(s2c)
		wg.Wait() // client half-closed; the server keeps its side open until it has read all
		c.(*net.TCPConn).CloseWrite()
	}()

	var s sink
	addr := startProxy(t, up.Addr().String(), s.publish)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	go func() {
		c.Write(c2s)
		c.(*net.TCPConn).CloseWrite()
	}()
	gotAtClient, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	var atServer []byte
	select {
	case atServer = <-gotAtServer:
	case <-time.After(10 * time.Second):
		t.Fatal("server did not finish")
	}
	if sha256.Sum256(atServer) != sha256.Sum256(c2s) {
		t.Errorf("client->server bytes differ: got %d bytes, want %d", len(atServer), len(c2s))
	}
	if sha256.Sum256(gotAtClient) != sha256.Sum256(s2c) {
		t.Errorf("server->client bytes differ: got %d bytes, want %d", len(gotAtClient), len(s2c))
	}
	end := waitFor(t, &s, event.SessionEnd)
	if end.BytesC2S != int64(len(c2s)) || end.BytesS2C != int64(len(s2c)) {
		t.Errorf("session_end counts %d/%d, want %d/%d", end.BytesC2S, end.BytesS2C, len(c2s), len(s2c))
	}
	var sawCap bool
	for _, e := range s.events() {
		if e.Rule == "POP3-LINE-010" {
			sawCap = true
		}
	}
	if !sawCap {
		t.Error("1 MiB line was not flagged as POP3-LINE-010")
	}
}

func waitFor(t *testing.T, s *sink, typ event.Type) *event.Event {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, e := range s.events() {
			if e.Type == typ {
				return e
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no %s event", typ)
	return nil
}

func TestUpstreamUnreachable(t *testing.T) {
	dead := listen(t)
	deadAddr := dead.Addr().String()
	dead.Close() // nothing listens there now

	var s sink
	addr := startProxy(t, deadAddr, s.publish)
	for i := 0; i < 2; i++ { // the proxy keeps serving after a failure
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		b, _ := io.ReadAll(c)
		c.Close()
		if !strings.HasPrefix(string(b), "-ERR [SYS/TEMP] ") || !strings.HasSuffix(string(b), "\r\n") {
			t.Fatalf("client got %q, want a -ERR [SYS/TEMP] greeting", b)
		}
	}
	end := waitFor(t, &s, event.SessionEnd)
	if end.Reason != "upstream unreachable" || end.Error == "" {
		t.Errorf("session_end reason %q error %q", end.Reason, end.Error)
	}
}

// A POP3 exchange through the proxy produces command and response events
// in order, with the password redacted.
func TestEventsForASession(t *testing.T) {
	up := listen(t)
	defer up.Close()
	go func() {
		c, err := up.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.Write([]byte("+OK ready <1.2@host>\r\n"))
		buf := make([]byte, 4096)
		replies := []string{"+OK\r\n", "+OK in\r\n", "+OK 1 5\r\n", "+OK 5 octets\r\nhello\r\n.\r\n", "+OK bye\r\n"}
		var pending string
		for _, r := range replies {
			for !strings.Contains(pending, "\r\n") {
				n, err := c.Read(buf)
				if err != nil {
					return
				}
				pending += string(buf[:n])
			}
			pending = pending[strings.Index(pending, "\r\n")+2:]
			c.Write([]byte(r))
		}
	}()
	var s sink
	addr := startProxy(t, up.Addr().String(), s.publish)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := make([]byte, 1024)
	c.Read(r)
	for _, cmd := range []string{"USER bob\r\n", "PASS hunter2\r\n", "STAT\r\n", "RETR 1\r\n", "QUIT\r\n"} {
		c.Write([]byte(cmd))
		time.Sleep(5 * time.Millisecond)
	}
	io.ReadAll(c)
	c.Close()
	waitFor(t, &s, event.SessionEnd)
	var verbs []string
	for _, e := range s.events() {
		if strings.Contains(e.Args, "hunter2") || strings.Contains(e.Text, "hunter2") {
			t.Errorf("password leaked in %+v", e)
		}
		if e.Type == event.Response {
			verbs = append(verbs, e.Verb+" "+e.Status)
		}
		if e.Type == event.Response && e.Verb == "RETR" && (e.Octets != 7 || e.Lines != 1) {
			t.Errorf("RETR octets %d lines %d, want 7 and 1", e.Octets, e.Lines)
		}
	}
	want := "USER +OK,PASS +OK,STAT +OK,RETR +OK,QUIT +OK"
	if got := strings.Join(verbs, ","); got != want {
		t.Errorf("responses %s, want %s", got, want)
	}
	for i, e := range s.events() {
		if e.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d", i, e.Seq)
		}
	}
}

// A stuck observer on the bus must not slow the relay: the transfer
// completes and the loss is counted.
func TestStuckObserverDoesNotStallRelay(t *testing.T) {
	bus := event.NewBus()
	block := make(chan struct{})
	sub := bus.Subscribe("stuck", event.ObserverFunc(func(*event.Event) { <-block }), event.WithQueueLen(2))
	defer func() {
		close(block)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		bus.Close(ctx)
	}()

	up := listen(t)
	defer up.Close()
	const n = 300
	go func() {
		c, err := up.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.Write([]byte("+OK ready\r\n"))
		buf := make([]byte, 64)
		for i := 0; i < n; i++ {
			if _, err := io.ReadFull(c, buf[:6]); err != nil { // "NOOP\r\n"
				return
			}
			c.Write([]byte("+OK\r\n"))
		}
	}()
	addr := startProxy(t, up.Addr().String(), bus.Publish)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	rd := make([]byte, 64)
	if _, err := io.ReadFull(c, rd[:11]); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		c.Write([]byte("NOOP\r\n"))
		if _, err := io.ReadFull(c, rd[:5]); err != nil {
			t.Fatalf("round trip %d: %v", i, err)
		}
	}
	if sub.Dropped() == 0 {
		t.Error("stuck observer reports no drops")
	}
}
