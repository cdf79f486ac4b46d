package event

import (
	"context"
	"sync"
	"testing"
	"time"
)

type collector struct {
	mu  sync.Mutex
	got []*Event
}

func (c *collector) Observe(e *Event) {
	c.mu.Lock()
	c.got = append(c.got, e)
	c.mu.Unlock()
}

func (c *collector) events() []*Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Event(nil), c.got...)
}

func closeBus(t *testing.T, b *Bus) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
}

func TestBusDeliversInOrder(t *testing.T) {
	b := NewBus()
	var c1, c2 collector
	b.Subscribe("a", &c1)
	b.Subscribe("b", &c2)
	for i := 1; i <= 1000; i++ {
		b.Publish(&Event{Type: Command, Seq: uint64(i)})
	}
	closeBus(t, b)
	for _, c := range []*collector{&c1, &c2} {
		got := c.events()
		if len(got) != 1000 {
			t.Fatalf("got %d events, want 1000", len(got))
		}
		for i, e := range got {
			if e.Seq != uint64(i+1) {
				t.Fatalf("event %d has seq %d", i, e.Seq)
			}
		}
	}
}

// A stuck observer must neither block Publish nor the other observers;
// its losses are counted and reported to it and to the others.
func TestBusStuckObserverDoesNotBlock(t *testing.T) {
	b := NewBus()
	release := make(chan struct{})
	var stuck collector
	sub := b.Subscribe("stuck", ObserverFunc(func(e *Event) {
		<-release
		stuck.Observe(e)
	}), WithQueueLen(10))
	var fast collector
	b.Subscribe("fast", &fast)

	done := make(chan struct{})
	go func() {
		for i := 1; i <= 5000; i++ {
			b.Publish(&Event{Type: Command, Seq: uint64(i)})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Publish blocked on a stuck observer")
	}
	if d := sub.Dropped(); d < 5000-11 {
		t.Fatalf("stuck observer dropped %d, want at least %d", d, 5000-11)
	}
	close(release)
	closeBus(t, b)

	got := stuck.events()
	var reported uint64
	for _, e := range got {
		if e.Type == Dropped {
			if e.Observer != "stuck" {
				t.Errorf("drop report names %q", e.Observer)
			}
			reported += e.Dropped
		}
	}
	if reported != sub.Dropped() {
		t.Errorf("stuck observer was told of %d drops, counter says %d", reported, sub.Dropped())
	}
	var fastCmds, fastDropReports int
	for _, e := range fast.events() {
		switch e.Type {
		case Command:
			fastCmds++
		case Dropped:
			fastDropReports++
		}
	}
	if fastCmds != 5000 {
		t.Errorf("fast observer got %d commands, want 5000", fastCmds)
	}
	if fastDropReports == 0 {
		t.Error("fast observer was not told that 'stuck' lost events")
	}
}

func TestBusDropOldestKeepsLatest(t *testing.T) {
	b := NewBus()
	release := make(chan struct{})
	var c collector
	first := true
	b.Subscribe("ui", ObserverFunc(func(e *Event) {
		if first {
			first = false
			<-release
		}
		c.Observe(e)
	}), WithQueueLen(4), WithPolicy(DropOldest))
	b.Publish(&Event{Type: Command, Seq: 0})
	// Wait until the observer holds event 0, so the queue is empty.
	deadline := time.Now().Add(5 * time.Second)
	for b.Stats()[0].Queued != 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	for i := 1; i <= 100; i++ {
		b.Publish(&Event{Type: Command, Seq: uint64(i)})
	}
	close(release)
	closeBus(t, b)
	got := c.events()
	var seqs []uint64
	for _, e := range got {
		if e.Type == Command {
			seqs = append(seqs, e.Seq)
		}
	}
	want := []uint64{0, 97, 98, 99, 100}
	if len(seqs) != len(want) {
		t.Fatalf("got seqs %v, want %v", seqs, want)
	}
	for i := range want {
		if seqs[i] != want[i] {
			t.Fatalf("got seqs %v, want %v", seqs, want)
		}
	}
}

func TestBusCloseIdempotentAndLateSubscribe(t *testing.T) {
	b := NewBus()
	closeBus(t, b)
	closeBus(t, b)
	var c collector
	b.Subscribe("late", &c)
	b.Publish(&Event{Type: Command})
	if n := len(c.events()); n != 0 {
		t.Fatalf("closed bus delivered %d events", n)
	}
}
