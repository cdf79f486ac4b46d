package bench

// TLS on both legs: a client with implicit TLS → relay → an implicit-TLS
// source. popscope (terminating and re-originating TLS, decoding, JSON
// Lines to a file) is compared with a plain Go TLS relay that terminates
// both legs with crypto/tls and copies bytes with a 32 KiB buffer, in the
// same run. Run with
//
//	go test -run '^$' -bench TLS -benchtime 1x ./bench/
//
// POPSCOPE_BENCH_MIB (RETR size, default 256), POPSCOPE_BENCH_ROUNDS and
// POPSCOPE_BENCH_NOOPS tune it as for the plain benchmarks. Nothing is
// asserted about speed.

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/popscope/popscope/event"
	"github.com/popscope/popscope/exporters/jsonl"
	"github.com/popscope/popscope/internal/certs"
	"github.com/popscope/popscope/proxy"
)

// tlsBench holds two CAs: one for the source (the upstream) and one for
// the relays' client leg, as popscope's own CA would be.
type tlsBench struct {
	srcCfg    *tls.Config // the source's server side
	srcPool   *x509.CertPool
	relayCfg  *tls.Config // client leg of both relays
	cliCfg    *tls.Config // clients of the relays (trust relayCfg's CA)
	directCfg *tls.Config // clients of the source itself
}

func newTLSBench(tb testing.TB) *tlsBench {
	src, err := certs.LoadOrCreate(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	relay, err := certs.LoadOrCreate(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	e := &tlsBench{srcCfg: src.ServerConfig(), srcPool: x509.NewCertPool(), relayCfg: relay.ServerConfig()}
	e.srcPool.AddCert(src.Certificate())
	relayPool := x509.NewCertPool()
	relayPool.AddCert(relay.Certificate())
	e.cliCfg = &tls.Config{RootCAs: relayPool, ServerName: "localhost"}
	e.directCfg = &tls.Config{RootCAs: e.srcPool, ServerName: "localhost"}
	return e
}

// startTLSSource is the bench source behind implicit TLS.
func startTLSSource(tb testing.TB, e *tlsBench, reply []byte) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &source{ln: ln, reply: reply}
	tln := tls.NewListener(ln, e.srcCfg)
	go func() {
		for {
			c, err := tln.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	tb.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

// startTLSRelay is the baseline: crypto/tls on both legs, plainCopy (a
// 32 KiB read/write loop) in each direction, close_notify + FIN on EOF.
func startTLSRelay(tb testing.TB, e *tlsBench, upstream string) *relay {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tln := tls.NewListener(ln, e.relayCfg)
	up := &tls.Config{RootCAs: e.srcPool, ServerName: "127.0.0.1"}
	go func() {
		for {
			c, err := tln.Accept()
			if err != nil {
				return
			}
			go func() {
				u, err := tls.Dial("tcp", upstream, up)
				if err != nil {
					c.Close()
					return
				}
				var wg sync.WaitGroup
				wg.Add(2)
				go func() { defer wg.Done(); plainCopy(u, c); u.CloseWrite() }()
				go func() { defer wg.Done(); plainCopy(c, u); c.(*tls.Conn).CloseWrite() }()
				wg.Wait()
				c.Close()
				u.Close()
			}()
		}
	}()
	return &relay{name: "go tls relay", addr: ln.Addr().String(), stop: func() { ln.Close() }}
}

// startTLSPopscope runs popscope with an implicit-TLS listener in front
// of the implicit-TLS source (upstream verified against the source's CA),
// decoding and writing JSON Lines to a file.
func startTLSPopscope(tb testing.TB, e *tlsBench, upstream string) (*relay, *event.Bus) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	f, err := os.Create(filepath.Join(tb.TempDir(), "events.jsonl"))
	if err != nil {
		tb.Fatal(err)
	}
	bus := event.NewBus()
	jw := jsonl.New(f)
	bus.Subscribe("jsonl", jw)
	p := proxy.New(proxy.Config{Upstream: upstream, Publish: bus.Publish, TLS: &proxy.TLSConfig{
		Server: e.relayCfg, Upstream: &tls.Config{RootCAs: e.srcPool}, UpstreamMode: "implicit"}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.ServeTLS(ctx, ln); close(done) }()
	return &relay{name: "popscope", addr: ln.Addr().String(), stop: func() {
		cancel()
		<-done
		c, cc := context.WithTimeout(context.Background(), 5*time.Second)
		defer cc()
		bus.Close(c)
		jw.Close()
	}}, bus
}

// dialTLSPOP connects with implicit TLS, reads the greeting and, if
// login is set, logs in first (real clients retrieve in TRANSACTION).
func dialTLSPOP(addr string, cfg *tls.Config, login bool) (*tls.Conn, *bufio.Reader, error) {
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return nil, nil, err
	}
	c.SetDeadline(time.Now().Add(5 * time.Minute))
	r := bufio.NewReaderSize(c, 256<<10)
	if _, err := r.ReadString('\n'); err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("greeting: %w", err)
	}
	if login {
		for _, cmd := range []string{"USER bench\r\n", "PASS bench\r\n"} {
			if _, err := c.Write([]byte(cmd)); err != nil {
				c.Close()
				return nil, nil, err
			}
			if _, err := r.ReadString('\n'); err != nil {
				c.Close()
				return nil, nil, err
			}
		}
	}
	return c, r, nil
}

// retrOnceTLS is retrOnce over implicit TLS: the time from sending RETR
// to reading the terminator.
func retrOnceTLS(addr string, cfg *tls.Config, want int, login bool) (time.Duration, error) {
	c, r, err := dialTLSPOP(addr, cfg, login)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	start := time.Now()
	if _, err := c.Write([]byte("RETR 1\r\n")); err != nil {
		return 0, err
	}
	n, err := io.CopyN(io.Discard, r, int64(want))
	if err != nil {
		return 0, fmt.Errorf("after %d of %d bytes: %w", n, want, err)
	}
	d := time.Since(start)
	c.Write([]byte("QUIT\r\n"))
	return d, nil
}

// BenchmarkTLSRETRThroughput: a large RETR with TLS on both legs,
// (a) direct TLS to the source, (b) the Go TLS relay, (c) popscope.
// Rounds alternate the configurations; medians are reported.
func BenchmarkTLSRETRThroughput(b *testing.B) {
	e := newTLSBench(b)
	reply := retrReply(bodySize)
	up := startTLSSource(b, e, reply)
	rel := startTLSRelay(b, e, up)
	defer rel.stop()
	pop, bus := startTLSPopscope(b, e, up)
	defer pop.stop()

	targets := []struct {
		name, addr string
		cfg        *tls.Config
	}{{"a direct TLS", up, e.directCfg}, {"b go tls relay", rel.addr, e.cliCfg}, {"c popscope", pop.addr, e.cliCfg}}
	rounds := envInt("POPSCOPE_BENCH_ROUNDS", 5)
	names := make([]string, len(targets))
	for k, t := range targets {
		names[k] = t.name
	}
	b.ResetTimer()
	mbps := alternateRounds(b, names, len(reply), rounds, func(k int) (time.Duration, error) {
		return retrOnceTLS(targets[k].addr, targets[k].cfg, len(reply), true)
	})
	b.StopTimer()
	med := make([]float64, len(targets))
	fmt.Printf("\nTLS both legs (implicit client -> relay -> implicit-TLS source): RETR of %d MiB after login, %d rounds, GOMAXPROCS=%d (median MB/s)\n",
		bodySize>>20, rounds*b.N, runtime.GOMAXPROCS(0))
	for k, t := range targets {
		med[k] = median(mbps[k])
		fmt.Printf("  %-16s %8.0f MB/s\n", t.name, med[k])
	}
	ratio := med[2] / med[1]
	fmt.Printf("  ratio c/b (popscope / go tls relay) = %.2f  (target >= 0.9)\n", ratio)
	for _, st := range bus.Stats() {
		fmt.Printf("  observer %s: %d delivered, %d dropped\n", st.Name, st.Delivered, st.Dropped)
	}
	b.ReportMetric(med[2], "popscope-MB/s")
	b.ReportMetric(med[1], "relay-MB/s")
	b.ReportMetric(ratio, "c/b")
}

// noopP50TLS is noopP50 over implicit TLS (NOOP after login).
func noopP50TLS(addr string, cfg *tls.Config, n int) (time.Duration, error) {
	c, r, err := dialTLSPOP(addr, cfg, true)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return timeNOOPs(c, r, n)
}

// BenchmarkTLSNOOPLatency: p50 of sequential NOOPs with TLS on both legs,
// direct, through the Go TLS relay and through popscope.
func BenchmarkTLSNOOPLatency(b *testing.B) {
	e := newTLSBench(b)
	up := startTLSSource(b, e, []byte("+OK\r\n.\r\n"))
	rel := startTLSRelay(b, e, up)
	defer rel.stop()
	pop, _ := startTLSPopscope(b, e, up)
	defer pop.stop()
	n := envInt("POPSCOPE_BENCH_NOOPS", 10000)
	targets := []struct {
		name, addr string
		cfg        *tls.Config
	}{{"direct TLS", up, e.directCfg}, {"go tls relay", rel.addr, e.cliCfg}, {"popscope", pop.addr, e.cliCfg}}
	p50 := make([]time.Duration, len(targets))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k, t := range targets {
			d, err := noopP50TLS(t.addr, t.cfg, n)
			if err != nil {
				b.Fatalf("%s: %v", t.name, err)
			}
			p50[k] = d
		}
	}
	b.StopTimer()
	fmt.Printf("\nTLS both legs: NOOP round trip after login, %d sequential, p50\n", n)
	for k, t := range targets {
		fmt.Printf("  %-14s %8.1f µs\n", t.name, float64(p50[k].Nanoseconds())/1000)
	}
	ratio := float64(p50[2]) / float64(p50[1])
	fmt.Printf("  ratio popscope / go tls relay = %.2f  (target <= 1.1)\n", ratio)
	b.ReportMetric(float64(p50[2].Nanoseconds())/1000, "popscope-p50-µs")
	b.ReportMetric(ratio, "p50-ratio")
}
