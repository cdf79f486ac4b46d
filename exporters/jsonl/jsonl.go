// Package jsonl writes events as JSON Lines: one JSON object per line, in
// the order the bus delivers them (per session, the order they happened).
// The schema is documented in docs/events.md.
//
// Usage:
//
//	w := jsonl.New(f)
//	bus.Subscribe("jsonl", w)
//	...
//	bus.Close(ctx); w.Close()
//
// Concurrency: Observe is called by the bus from one goroutine; a
// background flusher writes buffered lines out at least every
// FlushInterval. Close flushes and stops the flusher; it is idempotent.
// Secrets are redacted by the decoder before events exist, so nothing
// here can leak them.
package jsonl

import (
	"bufio"
	"encoding/json"
	"io"
	"sync"
	"time"

	"github.com/popscope/popscope/event"
)

// FlushInterval bounds how long an event may sit in the buffer.
const FlushInterval = 200 * time.Millisecond

// Writer is an event.Observer that encodes events to an io.Writer.
type Writer struct {
	mu     sync.Mutex
	bw     *bufio.Writer
	enc    *json.Encoder
	err    error
	dirty  bool
	stop   chan struct{}
	done   chan struct{}
	closer io.Closer
	once   sync.Once
	n      int64
}

var _ event.Observer = (*Writer)(nil)

// New returns a Writer on w. If w is an io.Closer, Close closes it too.
func New(w io.Writer) *Writer {
	bw := bufio.NewWriterSize(w, 64<<10)
	j := &Writer{bw: bw, enc: json.NewEncoder(bw), stop: make(chan struct{}), done: make(chan struct{})}
	j.enc.SetEscapeHTML(false)
	if c, ok := w.(io.Closer); ok {
		j.closer = c
	}
	go j.flusher()
	return j
}

// Observe encodes one event.
func (j *Writer) Observe(e *event.Event) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err != nil {
		return
	}
	if err := j.enc.Encode(e); err != nil {
		j.err = err
		return
	}
	j.n++
	j.dirty = true
}

// Written returns the number of events encoded.
func (j *Writer) Written() int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.n
}

// Err returns the first write error, if any.
func (j *Writer) Err() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.err
}

func (j *Writer) flusher() {
	defer close(j.done)
	t := time.NewTicker(FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-j.stop:
			return
		case <-t.C:
			j.Flush()
		}
	}
}

// Flush writes buffered lines out.
func (j *Writer) Flush() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.dirty && j.err == nil {
		j.err = j.bw.Flush()
		j.dirty = false
	}
	return j.err
}

// Close flushes, stops the flusher and closes the underlying writer if it
// is a Closer. It is idempotent.
func (j *Writer) Close() error {
	j.once.Do(func() {
		close(j.stop)
		<-j.done
		j.Flush()
		if j.closer != nil {
			j.mu.Lock()
			if err := j.closer.Close(); err != nil && j.err == nil {
				j.err = err
			}
			j.mu.Unlock()
		}
	})
	return j.Err()
}
