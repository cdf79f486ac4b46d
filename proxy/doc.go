// Package proxy holds popscope's listeners and relay: it accepts POP3
// clients, dials the upstream server, and copies bytes both ways while
// feeding them to a per-session decoder (package decode).
//
// # The relay is sacred
//
// In plain mode every byte read from one side is written to the other
// unchanged and in order, whatever it is (garbage, binary, bare LF, lines
// of any length); half-closes are propagated with CloseWrite. The decoder
// sees each chunk just before it is forwarded: a peer cannot react to bytes
// it has not received, so the decoder always sees a command before its
// reply and a reply before the next command, without any buffering or
// copying in the relay. Decoding is bounded work per byte and never waits;
// events go to Config.Publish, which must not block (event.Bus.Publish
// never does). A decoder panic is recovered, reported once, and the
// session keeps relaying undecoded.
//
// # Usage
//
//	p := proxy.New(proxy.Config{Upstream: "mail.example:110", Publish: bus.Publish})
//	err := p.Serve(ctx, ln) // returns when ctx ends, after open sessions close
//
// If the upstream cannot be reached the client receives
// "-ERR [SYS/TEMP] popscope: upstream ... unreachable: ..." (RFC 3206) as its
// greeting, the session ends with reason "upstream unreachable", and the
// proxy keeps serving.
//
// # Concurrency
//
// Each session runs two goroutines (one per direction) and serialises
// decoder calls with a per-session mutex, which also keeps its events in
// order. Idle sessions hold a 2 KiB read buffer per direction; reads that
// fill it switch to a pooled 1 MiB buffer until traffic is small again.
package proxy
