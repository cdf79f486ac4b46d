package bench

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/popscope/popscope/event"
	"github.com/popscope/popscope/exporters/jsonl"
	"github.com/popscope/popscope/exporters/record"
	"github.com/popscope/popscope/proxy"
)

// cpuTime returns the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// recorderAdapter gives a *record.Recorder the proxy.Recorder signature.
type recorderAdapter struct{ r *record.Recorder }

func (a recorderAdapter) Open(id string, start time.Time, client, upstream string) proxy.SessionRecorder {
	return a.r.Open(id, start, client, upstream)
}

// startPopscopeRecording is startPopscope with --record: every session is
// also written to a recording in a temporary directory.
func startPopscopeRecording(tb testing.TB, upstream string) (*relay, *record.Recorder) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	if parent := os.Getenv("POPSCOPE_BENCH_RECORD_DIR"); parent != "" {
		// e.g. /dev/shm, to measure the CPU cost without the disk.
		d, err := os.MkdirTemp(parent, "popscope-bench-")
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { os.RemoveAll(d) })
		dir = d
	}
	f, err := os.Create(filepath.Join(dir, "events.jsonl"))
	if err != nil {
		tb.Fatal(err)
	}
	rec, err := record.New(record.Options{Dir: filepath.Join(dir, "rec"), Version: "bench"})
	if err != nil {
		tb.Fatal(err)
	}
	bus := event.NewBus()
	jw := jsonl.New(f)
	bus.Subscribe("jsonl", jw)
	p := proxy.New(proxy.Config{Upstream: upstream, Publish: bus.Publish, Recorder: recorderAdapter{rec}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Serve(ctx, ln); close(done) }()
	return &relay{name: "popscope+record", addr: ln.Addr().String(), stop: func() {
		cancel()
		<-done
		c, cc := context.WithTimeout(context.Background(), 30*time.Second)
		defer cc()
		bus.Close(c)
		jw.Close()
		rec.Close(c)
	}}, rec
}

// BenchmarkRETRRecording: the large RETR through popscope without and
// with --record, alternating rounds; the ratio recording/plain is the
// recording overhead figure (target >= 0.9). Bytes the recorder had to
// drop (its queue was full: the disk did not keep up) are reported.
// POPSCOPE_BENCH_RECORD_DIR=/dev/shm records to memory, to separate the
// CPU cost from the disk's speed.
func BenchmarkRETRRecording(b *testing.B) {
	reply := retrReply(bodySize)
	src := startSource(b, reply)
	up := src.ln.Addr().String()
	pop, _ := startPopscope(b, up)
	defer pop.stop()
	recd, rec := startPopscopeRecording(b, up)
	stopped := false
	defer func() {
		if !stopped {
			recd.stop()
		}
	}()
	targets := []struct{ name, addr string }{{"popscope", pop.addr}, {"popscope --record", recd.addr}}
	rounds := envInt("POPSCOPE_BENCH_ROUNDS", 5)
	names := make([]string, len(targets))
	for k, t := range targets {
		names[k] = t.name
	}
	b.ResetTimer()
	mbps := alternateRounds(b, names, len(reply), rounds, func(k int) (time.Duration, error) { return retrOnce(targets[k].addr, len(reply)) })
	b.StopTimer()
	// CPU cost per relayed byte, whatever the machine's load: process CPU
	// time (user+sys, all goroutines: source, relay, client, writer) over
	// a few RETRs of each kind run on their own, the recorder drained.
	cpu := make([]float64, len(targets))
	for k, t := range targets {
		n := envInt("POPSCOPE_BENCH_CPU_ROUNDS", 3)
		before := cpuTime()
		for i := 0; i < n; i++ {
			if _, err := retrOnce(t.addr, len(reply)); err != nil {
				b.Fatalf("%s: %v", t.name, err)
			}
		}
		if k == 1 {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			rec.Close(ctx) // waits for the files of the sessions so far
			cancel()
		}
		cpu[k] = float64(cpuTime()-before) / float64(n*len(reply))
	}
	recd.stop()
	stopped = true
	st := rec.Stats()
	fmt.Printf("\nRETR of %d MiB, %d rounds, GOMAXPROCS=%d (median MB/s)\n", bodySize>>20, rounds*b.N, runtime.GOMAXPROCS(0))
	med := make([]float64, len(targets))
	for k, t := range targets {
		med[k] = median(mbps[k])
		fmt.Printf("  %-18s %8.0f MB/s\n", t.name, med[k])
	}
	ratio := med[1] / med[0]
	fmt.Printf("  ratio record/plain = %.2f  (target >= 0.9)\n", ratio)
	fmt.Printf("  CPU per relayed byte (source+relay+client+writer): %.2f ns without, %.2f ns with recording (x%.2f)\n",
		cpu[0], cpu[1], cpu[1]/cpu[0])
	fmt.Printf("  recorder: %d sessions, %d files, %d bytes lost in %d gaps, %d write errors\n",
		st.Sessions, st.Files, st.LostBytes, st.Gaps, st.Errors)
	b.ReportMetric(med[1], "record-MB/s")
	b.ReportMetric(ratio, "record/plain")
	b.ReportMetric(float64(st.LostBytes), "lost-bytes")
	b.ReportMetric(cpu[1]/cpu[0], "cpu-record/plain")
}
