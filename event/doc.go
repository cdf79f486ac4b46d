// Package event is popscope's one event model and the bus that fans events
// out to observers (JSON Lines, transcript, TUI, recordings, OpenTelemetry).
//
// Every observer sees the same *Event values; the JSON Lines schema is
// documented in docs/events.md.
//
// # Usage
//
//	bus := event.NewBus()
//	bus.Subscribe("jsonl", jsonl.New(f))                         // keeps the oldest on overflow
//	bus.Subscribe("ui", view, event.WithPolicy(event.DropOldest)) // keeps the newest
//	proxy.New(proxy.Config{Publish: bus.Publish, ...})
//	...
//	bus.Close(ctx) // drains every queue, bounded by ctx
//
// # Concurrency properties
//
//   - Publish never blocks on an observer. It takes a short lock per
//     subscriber to append to that subscriber's bounded ring (default
//     DefaultQueueLen events) and returns. A slow or stuck observer costs
//     the publisher nothing but that append.
//   - Each observer runs on its own goroutine and receives events one at a
//     time, in the order Publish was called. Wake-ups are batched: an
//     observer is woken at most DeliveryDelay (2 ms) after the first event
//     waiting for it, or at once when its queue is half full, so observers
//     do not compete with the relay for the CPU on every event. Events of one session are
//     published by that session under its own lock, so per-session order
//     (Event.Seq) is preserved for every observer; events of different
//     sessions interleave in publish order.
//   - When an observer's queue is full, an event is lost: the one being
//     published (DropNewest, the default) or the oldest queued one
//     (DropOldest). Losses are counted (Subscription.Dropped, Bus.Stats)
//     and reported: before the observer's next delivery it receives an
//     Event{Type: Dropped, Observer: name, Dropped: n}, and the same report
//     is published to every other observer, so a JSON Lines log records
//     that the UI fell behind. Drop reports carry no session.
//   - Events are immutable once published; observers must not modify them.
//   - Close stops accepting events, lets every observer drain its queue and
//     waits for that (bounded by its context). It is idempotent.
package event
