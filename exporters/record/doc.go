// Package record writes and reads popscope session recordings: one file
// per proxied session holding the plaintext bytes each side sent, with
// their times, every event of the session, and the recorder's own loss
// accounting. Recordings feed `popscope check`, `popscope replay` and
// `popscope export pcap`. The format is documented in docs/recording.md.
//
// # Format (version 2)
//
// Two files per session: an index in JSON Lines, one record per line,
// appended as the session happens (X.rec.jsonl), and the data file
// holding the bytes both sides sent, raw, in the order of the index's data
// records (X.rec.data):
//
//	{"format":"popscope-recording","version":2,"session":"…","client":"…","upstream":"…","start":"…","popscope":"…","redacted":true,"placeholder":"<redacted>"}
//	{"t":1234567,"d":"s","off":0,"len":12}                      data: t ns after start, d side, bytes off..off+len of the data file
//	{"type":"greeting","session":"…",…}                          an event (docs/events.md)
//	{"t":1300000,"d":"s","gap":65536}                            65536 server bytes were not recorded here
//	{"t":1300000,"gap_events":3}                                 3 events were not recorded here
//	{"t":9999999,"end":{"c2s":89,"s2c":565}}                     the session ended; totals
//
// Version 1 (still read) had no data file: a data record held its bytes
// base64-encoded, {"t":1234567,"d":"s","b64":"K09LIHJlYWR5DQo="}.
// Encoding every relayed byte cost as much CPU as relaying it.
//
// # Usage
//
//	rec, err := record.New(record.Options{Dir: dir, Version: version})
//	s := rec.Open(id, start, client, upstream) // one per session
//	s.Data(event.Client, at, p); s.Event(e); …; s.Close(at)
//	rec.Close(ctx)                             // waits for the files to be complete
//
//	r, err := record.ReadFile(name)            // whole recording (and its data file), torn tail tolerated
//
// # Concurrency
//
// Data, Event and Close never block on disk and never wait for another
// session: they copy what they get into a bounded per-session queue under a
// short mutex and return. A writer goroutine, started on demand and gone
// when the queue is empty (idle sessions cost no goroutine and no buffer),
// appends the bytes to the data file and the records to the index; every
// batch ends on a record boundary and is written with write(2) at once,
// data file first, so a process killed with SIGKILL leaves an index that
// is readable up to its last complete record and never names bytes the
// data file does not hold. When the
// queue is full (Options.BufferLimit) new bytes and events are dropped,
// counted, and marked in the file by a gap record at the place they were
// lost; the relay is never slowed down and memory never grows beyond the
// bound.
//
// # Secrets
//
// Unless Options.RecordSecrets is set, the PASS argument, the APOP digest,
// the RPOP argument, an AUTH initial response and every SASL response line
// are replaced in the recorded client bytes by Placeholder, keeping the
// line structure (docs/recording.md, "Secrets"). Command and sasl_response
// events get the same treatment, so a recording made with
// --reveal-secrets but without --record-secrets does not hold the
// secrets in its event args either.
package record
