package ui

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/gdamore/tcell/v2"

	"github.com/popscope/popscope/event"
	"github.com/popscope/popscope/ui/internal/fixture"
)

// The load of the issue: 1,000 sessions, 100,000 events, each session a
// realistic decoder-made conversation (login, RETRs, QUIT).
const (
	benchSessions = 1000
	benchPer      = 100
)

var (
	benchLoad    []*event.Event
	benchLoadMem uint64 // heap the events themselves take
)

func load(b *testing.B) []*event.Event {
	if benchLoad == nil {
		before := heapInUse()
		tmpl := fixture.Template(benchPer)
		evs := make([]*event.Event, 0, benchSessions*len(tmpl))
		for i := 0; i < benchSessions; i++ {
			evs = append(evs, fixture.Clone(tmpl, fmt.Sprintf("%012x", i+1),
				fmt.Sprintf("127.0.0.1:%d", 20000+i), time.Duration(i)*time.Millisecond)...)
		}
		benchLoad = evs
		benchLoadMem = heapInUse() - before
	}
	return benchLoad
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkFeed measures Observe: applying every event of the load to a
// fresh UI (what the bus goroutine pays), and what the UI then holds.
func BenchmarkFeed(b *testing.B) {
	evs := load(b)
	b.ReportAllocs()
	var retained uint64
	b.ResetTimer()
	var cpu time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		before := heapInUse()
		cpu0 := cpuTime()
		b.StartTimer()
		u := New(Options{Live: true})
		for _, e := range evs {
			u.Observe(e)
		}
		b.StopTimer()
		cpu += cpuTime() - cpu0
		if i == 0 {
			retained = heapInUse() - before
		}
		runtime.KeepAlive(u)
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(evs)), "ns/event")
	if cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*len(evs)), "cpu-ns/event")
	}
	// The model's own structures; the events it keeps come on top
	// (MB-events: what the bus handed over).
	b.ReportMetric(float64(retained)/(1<<20), "MB-model")
	b.ReportMetric(float64(benchLoadMem)/(1<<20), "MB-events")
	b.ReportMetric(float64(len(evs)), "events")
}

// BenchmarkRedraw measures one frame on a 200×50 screen with the whole
// load in the model, while events keep coming: each iteration applies one
// event (so the list and transcript must be brought up to date, as live)
// and draws everything.
func BenchmarkRedraw(b *testing.B) {
	for _, c := range []struct {
		name   string
		filter string
		sort   sortKey
		pane   pane
	}{
		{"list", "", sortStart, paneSessions},
		{"transcript", "", sortStart, paneTranscript},
		{"sorted-by-violations", "", sortViolations, paneSessions},
		{"filter-cmd-RETR-err", "cmd:RETR err", sortStart, paneSessions},
		{"filter-text", "bulk", sortStart, paneTranscript},
	} {
		b.Run(c.name, func(b *testing.B) {
			evs := load(b)
			scr := tcell.NewSimulationScreen("UTF-8")
			if err := scr.Init(); err != nil {
				b.Fatal(err)
			}
			defer scr.Fini()
			scr.SetSize(200, 50)
			u := New(Options{Live: true, Now: func() time.Time { return fixture.Base.Add(time.Hour) }})
			for _, e := range evs {
				u.Observe(e)
			}
			u.m.Lock()
			u.sessions.sortBy = c.sort
			if c.filter != "" {
				if err := u.setFilter(c.filter); err != nil {
					b.Fatal(err)
				}
			}
			u.setPane(c.pane)
			u.m.Unlock()
			draw := func() {
				u.root.SetRect(0, 0, 200, 50)
				scr.Clear()
				u.root.Draw(scr)
				scr.Show()
			}
			draw()
			live := &liveSession{id: "ffffffffffff", at: fixture.Base}
			u.Observe(live.ev(event.Event{Type: event.SessionStart, Client: "127.0.0.1:1"}))
			runtime.GC()
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			for i := 0; i < b.N; i++ {
				u.Observe(live.ev(event.Event{Type: event.Command, By: event.Client, ID: uint64(i + 1), Verb: "NOOP", Offset: int64(6 * i)}))
				draw()
			}
			b.StopTimer()
			cpu := cpuTime() - cpu0
			perFrame := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			b.ReportMetric(perFrame/1e6, "ms/frame")
			if cpu > 0 {
				// CPU per frame (all threads, GC included): at MaxFPS this
				// is the share of a core the UI takes under a flood.
				b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N)/1e6, "cpu-ms/frame")
			}
		})
	}
}
