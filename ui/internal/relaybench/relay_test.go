//go:build unix

// Package relaybench measures what the terminal UI costs the relay: the
// same proxy, in front of the in-repo POP3 server, with no observer, with
// an observer that does nothing (the bus's own cost of a subscriber), and
// with a running UI subscribed (DropOldest, as `popscope proxy` wires
// it), under an event flood (pipelined NOOPs: two events per command)
// and under a bulk transfer (RETR of a large message). The UI draws on a
// tcell SimulationScreen at its usual ≤30 frames per second.
//
//	go test -run '^$' -bench . -benchtime 3x ./ui/internal/relaybench/
//
// It lives apart from package ui because it needs the proxy, which the
// UI itself never imports. Nothing here asserts a speed. (Unix only: CPU
// time comes from getrusage.)
package relaybench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gdamore/tcell/v2"

	"github.com/popscope/popscope/event"
	"github.com/popscope/popscope/internal/pop3server"
	"github.com/popscope/popscope/proxy"
	"github.com/popscope/popscope/ui"
)

const (
	floodClients = 4
	floodNOOPs   = 10000 // per client
	floodBatch   = 100   // NOOPs per write
	bigMessage   = 16 << 20
)

type rig struct {
	proxyAddr string
	bus       *event.Bus
	u         *ui.UI
	stop      func()
}

type observers int

const (
	noObserver observers = iota
	nopObserver
	withUI
)

var observerNames = [...]string{"no-observer", "nop-observer", "ui"}

func startRig(b *testing.B, obs observers) *rig {
	b.Helper()
	msg := bytes.Repeat([]byte("0123456789 popscope relay benchmark line of text, long enough\r\n"), bigMessage/64)
	srv := pop3server.New(pop3server.Config{
		Users:    map[string]string{"bench": "bench"},
		Messages: []pop3server.Message{{Data: append([]byte("Subject: big\r\n\r\n"), msg...)}},
	})
	ctx, cancel := context.WithCancel(context.Background())
	sln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ctx, sln)

	r := &rig{bus: event.NewBus()}
	var runDone chan error
	if obs == nopObserver {
		r.bus.Subscribe("nop", event.ObserverFunc(func(*event.Event) {}), event.WithPolicy(event.DropOldest))
	}
	if obs == withUI {
		r.u = ui.New(ui.Options{Live: true, Title: "bench"})
		r.bus.Subscribe(r.u.Name(), r.u, event.WithPolicy(event.DropOldest))
		scr := tcell.NewSimulationScreen("UTF-8")
		scr.SetSize(200, 50)
		runDone = make(chan error, 1)
		go func() { runDone <- r.u.RunOn(scr) }()
	}
	p := proxy.New(proxy.Config{Upstream: sln.Addr().String(), Publish: r.bus.Publish})
	pln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	served := make(chan struct{})
	go func() { p.Serve(ctx, pln); close(served) }()
	r.proxyAddr = pln.Addr().String()
	r.stop = func() {
		cancel()
		<-served
		c, cc := context.WithTimeout(context.Background(), 10*time.Second)
		defer cc()
		r.bus.Close(c)
		if r.u != nil {
			r.u.Stop()
			<-runDone
		}
	}
	return r
}

// session logs in and returns the connection and its reader.
func session(addr string) (net.Conn, *bufio.Reader, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	r := bufio.NewReaderSize(c, 256<<10)
	if _, err := r.ReadString('\n'); err != nil {
		c.Close()
		return nil, nil, err
	}
	if _, err := io.WriteString(c, "USER bench\r\nPASS bench\r\n"); err != nil {
		c.Close()
		return nil, nil, err
	}
	for i := 0; i < 2; i++ {
		if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "+OK") {
			c.Close()
			return nil, nil, fmt.Errorf("login: %q %v", l, err)
		}
	}
	return c, r, nil
}

func flood(addr string) error {
	var wg sync.WaitGroup
	errs := make(chan error, floodClients)
	batch := strings.Repeat("NOOP\r\n", floodBatch)
	for k := 0; k < floodClients; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, r, err := session(addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for n := 0; n < floodNOOPs; n += floodBatch {
				if _, err := io.WriteString(c, batch); err != nil {
					errs <- err
					return
				}
				for i := 0; i < floodBatch; i++ {
					if _, err := r.ReadString('\n'); err != nil {
						errs <- err
						return
					}
				}
			}
			io.WriteString(c, "QUIT\r\n")
			r.ReadString('\n')
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func retr(addr string) (int64, error) {
	c, r, err := session(addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if _, err := io.WriteString(c, "RETR 1\r\n"); err != nil {
		return 0, err
	}
	var n int64
	for {
		l, err := r.ReadSlice('\n')
		n += int64(len(l))
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return n, err
		}
		if string(l) == ".\r\n" {
			return n, nil
		}
	}
}

func BenchmarkRelay(b *testing.B) {
	for _, obs := range []observers{noObserver, nopObserver, withUI} {
		name := observerNames[obs]
		b.Run("noop-flood/"+name, func(b *testing.B) {
			r := startRig(b, obs)
			defer r.stop()
			b.ResetTimer()
			cpu0 := cpuTime()
			for i := 0; i < b.N; i++ {
				if err := flood(r.proxyAddr); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			cmds := float64(b.N * floodClients * floodNOOPs)
			b.ReportMetric(cmds/b.Elapsed().Seconds(), "commands/s")
			b.ReportMetric(2*cmds/b.Elapsed().Seconds(), "events/s")
			reportUI(b, r)
			reportCPU(b, cpu0)
		})
		b.Run("retr-16MiB/"+name, func(b *testing.B) {
			r := startRig(b, obs)
			defer r.stop()
			var total int64
			b.ResetTimer()
			cpu0 := cpuTime()
			for i := 0; i < b.N; i++ {
				n, err := retr(r.proxyAddr)
				if err != nil {
					b.Fatal(err)
				}
				total += n
			}
			b.StopTimer()
			b.ReportMetric(float64(total)/b.Elapsed().Seconds()/1e6, "MB/s")
			reportUI(b, r)
			reportCPU(b, cpu0)
		})
	}
}

func reportUI(b *testing.B, r *rig) {
	for _, st := range r.bus.Stats() {
		if st.Name == "ui" {
			b.ReportMetric(float64(st.Dropped), "ui-dropped")
		}
	}
}

// reportCPU reports the process's CPU time per iteration: on a busy
// machine a steadier cost than wall time.
func reportCPU(b *testing.B, cpu0 time.Duration) {
	if c := cpuTime() - cpu0; cpu0 > 0 || c > 0 {
		b.ReportMetric(float64(c.Milliseconds())/float64(b.N), "cpu-ms/op")
	}
}

// cpuTime is the CPU time the process has used (user + system).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
