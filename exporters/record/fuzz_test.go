package record

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/popscope/popscope/event"
)

// FuzzReadRecording: the reader must never panic, never return a record
// from a torn line, and agree with the streaming reader.
func FuzzReadRecording(f *testing.F) {
	_, _, path := record(f, Options{}, []step{s("+OK ready <1.2@h>\r\n"), c("USER a\r\nPASS b\r\n"), s("+OK\r\n+OK\r\n"),
		c("RETR 1\r\n"), s("+OK\r\nbody\r\n..dot\r\n.\r\n"), c("QUIT\r\n")},
		&event.Event{Type: event.Command, Verb: "USER", Args: "a", Time: t0, TLS: &event.TLSInfo{Leg: event.Client, Mode: "stls"}})
	full, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(full)
	f.Add(full[:len(full)-7])
	f.Add(full[:bytes.IndexByte(full, '\n')+1])
	hdr := full[:bytes.IndexByte(full, '\n')+1]
	f.Add(append(append([]byte(nil), hdr...), `{"t":1,"d":"s","gap":5,"gap_events":2}`+"\n"+`{"t":2,"end":{"c2s":1}}`+"\n"...))
	f.Add(append(append([]byte(nil), hdr...), `{"type":"tls","time":"2026-01-01T00:00:00Z","tls":{"leg":"server","mode":"implicit"}}`+"\n{}\n"...))
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := Read(bytes.NewReader(data))
		if err != nil {
			return
		}
		tail := data[bytes.LastIndexByte(data, '\n')+1:]
		if (len(tail) > 0) != (rec.Torn != nil) {
			t.Fatalf("tail %q but torn %+v", tail, rec.Torn)
		}
		if rec.Torn != nil && rec.Torn.Bytes != len(tail) {
			t.Fatalf("torn %d bytes, tail %d", rec.Torn.Bytes, len(tail))
		}
		rd, err := NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("Read ok, NewReader: %v", err)
		}
		n := 0
		for i := 0; i <= len(data); i++ {
			x, err := rd.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("Read ok, Next: %v", err)
			}
			if x.Kind != KindUnknown {
				n++
			}
		}
		if n != len(rec.Records) {
			t.Fatalf("streaming %d records, Read %d", n, len(rec.Records))
		}
		_ = rec.Summary()
		_ = rec.Stream(event.Client)
	})
}
