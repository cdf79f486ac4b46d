package event

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Observer receives events from the bus, one at a time, on a goroutine the
// bus owns for it. Observe may be slow; the cost of slowness is lost events,
// never a slower relay.
type Observer interface {
	Observe(*Event)
}

// ObserverFunc adapts a function to Observer.
type ObserverFunc func(*Event)

// Observe calls f(e).
func (f ObserverFunc) Observe(e *Event) { f(e) }

// Policy says which event is lost when an observer's queue is full.
type Policy uint8

const (
	// DropNewest keeps the queued events and discards the one being
	// published (a log that must keep its beginning: JSON Lines).
	DropNewest Policy = iota
	// DropOldest discards the oldest queued event to make room (a live
	// view that wants the latest state: the TUI).
	DropOldest
)

// DefaultQueueLen is the queue length of a subscription made without
// WithQueueLen.
const DefaultQueueLen = 8192

// DeliveryDelay is how long an event may wait in a queue before its
// observer is woken. Batching wake-ups keeps observers from competing with
// the relay for the CPU on every event; a queue that reaches half its
// capacity wakes its observer at once.
const DeliveryDelay = 2 * time.Millisecond

// SubOption configures one subscription.
type SubOption func(*subscriber)

// WithQueueLen sets the bound of the subscriber's queue (minimum 1).
func WithQueueLen(n int) SubOption {
	return func(s *subscriber) {
		if n < 1 {
			n = 1
		}
		s.ring = make([]*Event, n)
	}
}

// WithPolicy sets the drop policy.
func WithPolicy(p Policy) SubOption { return func(s *subscriber) { s.policy = p } }

// Bus fans events out to observers. The zero value is not usable; call NewBus.
type Bus struct {
	mu     sync.RWMutex
	subs   []*subscriber
	closed bool
	now    func() time.Time
}

// NewBus returns an empty bus. It starts no goroutine until Subscribe.
func NewBus() *Bus { return &Bus{now: time.Now} }

// Subscription is the handle of one observer on the bus.
type Subscription struct{ s *subscriber }

// Dropped reports how many events this subscription has lost so far.
func (s *Subscription) Dropped() uint64 { return s.s.droppedTotal.Load() }

// Delivered reports how many events the observer has been handed.
func (s *Subscription) Delivered() uint64 { return s.s.delivered.Load() }

// Name is the name given at Subscribe.
func (s *Subscription) Name() string { return s.s.name }

type subscriber struct {
	name   string
	obs    Observer
	policy Policy
	bus    *Bus

	mu      sync.Mutex
	ring    []*Event
	head, n int
	pending uint64 // drops not yet reported to the observer
	closed  bool

	wake         chan struct{}
	timer        *time.Timer // delayed wake-up, armed when an event waits
	armed        bool
	done         chan struct{}
	droppedTotal atomic.Uint64
	delivered    atomic.Uint64
	busy         atomic.Bool // inside Observe
}

// idle reports whether nothing is queued, pending or being observed.
func (s *subscriber) idle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n == 0 && s.pending == 0 && !s.busy.Load()
}

// Subscribe attaches an observer under a name (used in drop reports) and
// starts its delivery goroutine.
func (b *Bus) Subscribe(name string, o Observer, opts ...SubOption) *Subscription {
	s := &subscriber{name: name, obs: o, bus: b, wake: make(chan struct{}, 1), done: make(chan struct{})}
	for _, opt := range opts {
		opt(s)
	}
	if s.ring == nil {
		s.ring = make([]*Event, DefaultQueueLen)
	}
	s.timer = time.AfterFunc(time.Hour, s.signal)
	s.timer.Stop()
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		close(s.done)
		return &Subscription{s}
	}
	b.subs = append(b.subs, s)
	b.mu.Unlock()
	go s.run()
	return &Subscription{s}
}

// Publish hands e to every observer's queue without ever blocking on an
// observer. Safe for concurrent use. e must not be modified afterwards.
func (b *Bus) Publish(e *Event) {
	b.mu.RLock()
	if !b.closed {
		for _, s := range b.subs {
			s.push(e)
		}
	}
	b.mu.RUnlock()
}

func (s *subscriber) push(e *Event) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	if s.n == len(s.ring) {
		s.droppedTotal.Add(1)
		s.pending++
		if s.policy == DropNewest {
			s.mu.Unlock()
			return
		}
		// DropOldest: overwrite the head.
		s.ring[s.head] = nil
		s.head = (s.head + 1) % len(s.ring)
		s.n--
	}
	s.ring[(s.head+s.n)%len(s.ring)] = e
	s.n++
	now := s.n >= len(s.ring)/2
	if !now && !s.armed {
		s.armed = true
		s.timer.Reset(DeliveryDelay)
	}
	s.mu.Unlock()
	if now {
		s.signal()
	}
}

// signal wakes the delivery goroutine.
func (s *subscriber) signal() {
	s.mu.Lock()
	s.armed = false
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// pop returns the next event, or a Dropped report if events were lost
// since the last delivery; ok is false when the queue is empty.
func (s *subscriber) pop() (e *Event, lost uint64, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending > 0 {
		lost = s.pending
		s.pending = 0
		s.busy.Store(true)
		return nil, lost, true
	}
	if s.n == 0 {
		return nil, 0, false
	}
	s.busy.Store(true) // until Observe returns; idle() looks at it
	e = s.ring[s.head]
	s.ring[s.head] = nil
	s.head = (s.head + 1) % len(s.ring)
	s.n--
	return e, 0, true
}

func (s *subscriber) run() {
	defer close(s.done)
	for {
		e, lost, ok := s.pop()
		if !ok {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				// Re-check: events pushed before close are delivered.
				if e, lost, ok = s.pop(); !ok {
					return
				}
			} else {
				<-s.wake
				continue
			}
		}
		if lost > 0 {
			e = &Event{Type: Dropped, Time: s.bus.now(), Observer: s.name, Dropped: lost}
			// Tell the others too, so a log records that the UI lost events.
			s.bus.publishExcept(e, s)
		}
		s.obs.Observe(e)
		s.busy.Store(false)
		s.delivered.Add(1)
	}
}

func (b *Bus) publishExcept(e *Event, skip *subscriber) {
	b.mu.RLock()
	for _, s := range b.subs {
		if s != skip {
			s.push(e)
		}
	}
	b.mu.RUnlock()
}

// Close stops accepting events, lets every observer drain what is queued,
// and waits until they are done or ctx ends. It is idempotent.
func (b *Bus) Close(ctx context.Context) error {
	b.mu.Lock()
	subs := b.subs
	b.closed = true
	b.mu.Unlock()
	// Drain until every observer is quiet: a drop report published while
	// draining reaches the others before they stop.
	for {
		quiet := true
		for _, s := range subs {
			if !s.idle() {
				quiet = false
				s.signal()
			}
		}
		if quiet {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
	for _, s := range subs {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.timer.Stop()
		s.signal()
	}
	for _, s := range subs {
		select {
		case <-s.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Stats is a snapshot of one subscription's counters.
type Stats struct {
	Name      string
	Delivered uint64
	Dropped   uint64
	Queued    int
}

// Stats returns counters for every subscription.
func (b *Bus) Stats() []Stats {
	b.mu.RLock()
	defer b.mu.RUnlock()
	out := make([]Stats, 0, len(b.subs))
	for _, s := range b.subs {
		s.mu.Lock()
		q := s.n
		s.mu.Unlock()
		out = append(out, Stats{Name: s.name, Delivered: s.delivered.Load(), Dropped: s.droppedTotal.Load(), Queued: q})
	}
	return out
}
