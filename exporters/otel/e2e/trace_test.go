//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/popscope/popscope/event"
	otelexp "github.com/popscope/popscope/exporters/otel"
	"github.com/popscope/popscope/proxy"
)

const secretPassword = "s3cret-e2e-pw"

func uniqueService(t *testing.T, prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

// fakeServer is a tiny scripted POP3 server: two messages, PIPELINING,
// every reply 15 ms late (so spans have a visible length), and one fault:
// the NOOP reply ends in a bare LF (rule POP3-LINE-001, severity error).
func fakeServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	msgs := []string{
		"From: a@example.org\r\nSubject: one\r\n\r\nfirst message\r\n",
		"From: b@example.org\r\nSubject: two\r\n\r\nsecond message\r\n..with a stuffed dot\r\n",
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				serveFake(c, msgs)
			}()
		}
	}()
	return ln.Addr().String()
}

func serveFake(c net.Conn, msgs []string) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	w := bufio.NewWriter(c)
	r := bufio.NewReader(c)
	fmt.Fprint(w, "+OK popscope e2e server ready <4711.1@e2e.test>\r\n")
	w.Flush()
	size := func(i int) int { return len(strings.ReplaceAll(msgs[i], "\r\n..", "\r\n.")) }
	for range 100 {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		time.Sleep(15 * time.Millisecond)
		switch strings.ToUpper(f[0]) {
		case "CAPA":
			fmt.Fprint(w, "+OK capabilities\r\nUSER\r\nPIPELINING\r\nUIDL\r\n.\r\n")
		case "USER":
			fmt.Fprint(w, "+OK\r\n")
		case "PASS":
			fmt.Fprint(w, "+OK logged in\r\n")
		case "STAT":
			fmt.Fprintf(w, "+OK 2 %d\r\n", size(0)+size(1))
		case "LIST":
			fmt.Fprintf(w, "+OK 2 messages\r\n1 %d\r\n2 %d\r\n.\r\n", size(0), size(1))
		case "RETR":
			n := 0
			if len(f) > 1 {
				fmt.Sscan(f[1], &n)
			}
			if n < 1 || n > len(msgs) {
				fmt.Fprint(w, "-ERR no such message\r\n")
				break
			}
			fmt.Fprintf(w, "+OK %d octets\r\n%s.\r\n", size(n-1), msgs[n-1])
		case "NOOP":
			fmt.Fprint(w, "+OK\n") // the fault
		case "QUIT":
			fmt.Fprint(w, "+OK bye\r\n")
			w.Flush()
			return
		default:
			fmt.Fprint(w, "-ERR unknown command\r\n")
		}
		w.Flush()
	}
}

// pop3Client speaks POP3 over a raw connection.
type pop3Client struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialPOP3(t *testing.T, addr string) (*pop3Client, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	p := &pop3Client{t: t, c: c, r: bufio.NewReader(c)}
	return p, p.line()
}

func (p *pop3Client) line() string {
	p.t.Helper()
	l, err := p.r.ReadString('\n')
	if err != nil {
		p.t.Fatalf("reading reply: %v (got %q)", err, l)
	}
	return strings.TrimRight(l, "\r\n")
}

func (p *pop3Client) send(lines ...string) {
	p.t.Helper()
	if _, err := fmt.Fprint(p.c, strings.Join(lines, "\r\n")+"\r\n"); err != nil {
		p.t.Fatal(err)
	}
}

// reply reads a status line and, if multi and +OK, the body up to ".".
func (p *pop3Client) reply(multi bool) string {
	p.t.Helper()
	st := p.line()
	if multi && strings.HasPrefix(st, "+OK") {
		for range 10000 {
			if p.line() == "." {
				break
			}
		}
	}
	return st
}

// clientSession: CAPA, USER/PASS, STAT, LIST, RETR 1 + RETR 2 pipelined
// in one write, NOOP (the faulty reply), QUIT.
func clientSession(t *testing.T, addr string) {
	t.Helper()
	c, greet := dialPOP3(t, addr)
	defer c.c.Close()
	if !strings.HasPrefix(greet, "+OK") {
		t.Fatalf("greeting %q", greet)
	}
	for _, step := range []struct {
		cmd   string
		multi bool
	}{{"CAPA", true}, {"USER alice", false}, {"PASS " + secretPassword, false}, {"STAT", false}, {"LIST", true}} {
		c.send(step.cmd)
		if st := c.reply(step.multi); !strings.HasPrefix(st, "+OK") {
			t.Fatalf("%s: %q", step.cmd, st)
		}
	}
	c.send("RETR 1", "RETR 2")
	c.reply(true)
	c.reply(true)
	c.send("NOOP")
	c.reply(false)
	c.send("QUIT")
	c.reply(false)
}

type inProcess struct {
	bus    *event.Bus
	cancel context.CancelFunc
	wg     sync.WaitGroup
	pipe   *otelexp.Pipeline
	exp    *otelexp.Exporter
}

// startProxies runs one proxy per upstream, all publishing to one bus
// with the OpenTelemetry exporter subscribed, exporting to endpoint.
func startProxies(t *testing.T, endpoint, proto string, upstreams ...string) (*inProcess, []string) {
	t.Helper()
	pipe, err := otelexp.NewPipeline(context.Background(), otelexp.Config{
		Endpoint: endpoint, Protocol: proto, ServiceVersion: "e2e",
		SetErrorHandler: true, Logf: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	if pipe.TracerProvider == nil {
		t.Fatal("tracing is off")
	}
	x, err := otelexp.New(pipe.Options()...)
	if err != nil {
		t.Fatal(err)
	}
	ip := &inProcess{bus: event.NewBus(), pipe: pipe, exp: x}
	ip.bus.Subscribe(otelexp.DefaultObserverName, x)
	ctx, cancel := context.WithCancel(context.Background())
	ip.cancel = cancel
	var addrs []string
	for _, up := range upstreams {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, ln.Addr().String())
		p := proxy.New(proxy.Config{Upstream: up, DialTimeout: 3 * time.Second, Publish: ip.bus.Publish, Logf: t.Logf})
		ip.wg.Add(1)
		go func() {
			defer ip.wg.Done()
			_ = p.Serve(ctx, ln)
		}()
	}
	t.Cleanup(ip.stop)
	return ip, addrs
}

// stop ends the proxies, drains the bus, emits and flushes (idempotent
// enough for Cleanup after an explicit call).
func (ip *inProcess) stop() {
	ip.cancel()
	ip.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = ip.bus.Close(ctx)
	ip.exp.Close()
	_ = ip.pipe.Shutdown(ctx)
}

func deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}

// TestJaegerTraceTree runs a scripted session and an upstream-unreachable
// session through the in-process proxy, exports over OTLP/gRPC to a real
// Jaeger v2 and checks the traces through Jaeger's query API.
func TestJaegerTraceTree(t *testing.T) {
	j := startJaeger(t)
	service := uniqueService(t, "popscope-e2e")
	t.Setenv("OTEL_SERVICE_NAME", service)    // the SDK's env handling
	t.Setenv("OTEL_METRICS_EXPORTER", "none") // Jaeger takes no metrics
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=e2e")

	ip, addrs := startProxies(t, j.otlpGRPC, "grpc", fakeServer(t), deadAddr(t))
	clientSession(t, addrs[0])
	c, greet := dialPOP3(t, addrs[1])
	c.c.Close()
	if !strings.HasPrefix(greet, "-ERR [SYS/TEMP]") {
		t.Errorf("unreachable upstream: greeting %q", greet)
	}
	time.Sleep(100 * time.Millisecond) // let the sessions end
	ip.stop()
	if full, failed := ip.pipe.Lost(); full+failed > 0 {
		t.Errorf("%d spans lost on the way to Jaeger", full+failed)
	}

	traces, raw := j.traces(t, service, 2)
	if strings.Contains(raw, secretPassword) {
		t.Error("the password reached Jaeger")
	}
	var ok, down *tree
	for i := range traces {
		x := index(t, traces[i])
		switch tagString(x.root.Tags, "pop3.close_reason") {
		case "upstream unreachable":
			down = &x
		default:
			ok = &x
		}
		p := traces[i].Processes[x.root.ProcessID]
		if p.ServiceName != service || tagString(p.Tags, "deployment.environment.name") != "e2e" {
			t.Errorf("process %+v", p)
		}
	}
	if ok == nil || down == nil {
		t.Fatalf("want a normal and an unreachable session, got %d traces", len(traces))
	}

	// The normal session.
	r := ok.root
	if r.OperationName != otelexp.SpanSession {
		t.Errorf("root %q", r.OperationName)
	}
	for k, v := range map[string]string{"span.kind": "server", "network.protocol.name": "pop3", "network.transport": "tcp",
		"client.address": "127.0.0.1", "pop3.state": "CLOSED", "pop3.commands": "9", "otel.status_code": "ERROR"} {
		if got := tagString(r.Tags, k); got != v {
			t.Errorf("root tag %s = %q, want %q", k, got, v)
		}
	}
	if tagString(r.Tags, "session.id") == "" || tagString(r.Tags, "server.port") == "" {
		t.Errorf("root tags %v", r.Tags)
	}
	want := map[string]int{"POP3 connect": 1, "POP3 greeting": 1, "POP3 CAPA": 1, "POP3 USER": 1, "POP3 PASS": 1,
		"POP3 STAT": 1, "POP3 LIST": 1, "POP3 RETR": 2, "POP3 NOOP": 1, "POP3 QUIT": 1}
	for op, n := range want {
		if len(ok.children[op]) != n {
			t.Errorf("%d %q spans, want %d", len(ok.children[op]), op, n)
		}
	}
	if len(ok.all) != 1+2+9 { // session, connect, greeting, 9 commands
		t.Errorf("%d spans, want 12", len(ok.all))
	}
	for _, s := range ok.all {
		if s.StartTime < r.StartTime || s.StartTime+s.Duration > r.StartTime+r.Duration {
			t.Errorf("%s [%d +%d] outside the session [%d +%d]", s.OperationName, s.StartTime, s.Duration, r.StartTime, r.Duration)
		}
	}
	retr := ok.children["POP3 RETR"]
	if len(retr) == 2 {
		a, b := retr[0], retr[1]
		if tagString(a.Tags, "pop3.message_number") == "2" {
			a, b = b, a
		}
		if tagString(b.Tags, "pop3.pipelined") != "true" || tagString(a.Tags, "pop3.octets") == "" {
			t.Errorf("RETR tags %v / %v", a.Tags, b.Tags)
		}
		if !(b.StartTime < a.StartTime+a.Duration) {
			t.Errorf("pipelined RETR 2 [%d] does not overlap RETR 1 [%d +%d]", b.StartTime, a.StartTime, a.Duration)
		}
		if a.Duration < 10_000 {
			t.Errorf("RETR 1 lasted %dµs; the server answers after 15ms", a.Duration)
		}
	}
	if noop := ok.children["POP3 NOOP"]; len(noop) == 1 {
		if tagString(noop[0].Tags, "error") != "true" {
			t.Errorf("NOOP tags %v", noop[0].Tags)
		}
		found := false
		for _, l := range noop[0].Logs {
			if tagString(l.Fields, "event") == otelexp.EventViolation && tagString(l.Fields, "pop3.rule.id") == "POP3-LINE-001" &&
				tagString(l.Fields, "pop3.rule.by") == "server" && tagString(l.Fields, "pop3.rule.summary") != "" {
				found = true
			}
		}
		if !found {
			t.Errorf("NOOP logs lack the POP3-LINE-001 violation: %+v", noop[0].Logs)
		}
	}
	if pass := ok.children["POP3 PASS"]; len(pass) == 1 {
		if tagString(pass[0].Tags, "pop3.status") != "+OK" || tagString(pass[0].Tags, "pop3.state") != "AUTH.USER" {
			t.Errorf("PASS tags %v", pass[0].Tags)
		}
	}
	if tagString(r.Tags, "user.name") != "" {
		t.Error("user.name exported by default")
	}

	// The unreachable session.
	if tagString(down.root.Tags, "otel.status_code") != "ERROR" || tagString(down.root.Tags, "error.type") != "upstream_unreachable" {
		t.Errorf("unreachable root tags %v", down.root.Tags)
	}
	if c := down.children["POP3 connect"]; len(c) != 1 || tagString(c[0].Tags, "error") != "true" || tagString(c[0].Tags, "span.kind") != "client" {
		t.Errorf("unreachable connect span %+v", c)
	}
	t.Logf("jaeger has the trace tree:\n%s", render(ok))
}

// render draws a trace like Jaeger's timeline, for the log and the docs.
func render(x *tree) string {
	var b strings.Builder
	r := x.root
	fmt.Fprintf(&b, "%-22s %8.3f ms\n", r.OperationName, float64(r.Duration)/1000)
	spans := append([]jSpan(nil), x.all...)
	for i := 1; i < len(spans); i++ { // insertion sort by start; small
		for k := i; k > 0 && spans[k].StartTime < spans[k-1].StartTime; k-- {
			spans[k], spans[k-1] = spans[k-1], spans[k]
		}
	}
	for _, s := range spans {
		if s.SpanID == r.SpanID {
			continue
		}
		extra := ""
		if v := tagString(s.Tags, "pop3.message_number"); v != "" {
			extra += " msg=" + v
		}
		if v := tagString(s.Tags, "pop3.status"); v != "" {
			extra += " " + v
		}
		if tagString(s.Tags, "pop3.pipelined") == "true" {
			extra += " pipelined"
		}
		for _, l := range s.Logs {
			if id := tagString(l.Fields, "pop3.rule.id"); id != "" {
				extra += " ⚠ " + id
			}
		}
		fmt.Fprintf(&b, "  ├─ %-18s +%7.3f ms %8.3f ms%s\n", s.OperationName,
			float64(s.StartTime-r.StartTime)/1000, float64(s.Duration)/1000, extra)
	}
	return b.String()
}
