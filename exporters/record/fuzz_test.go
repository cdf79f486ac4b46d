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
// from a torn line or read past the data file, and agree with the
// streaming reader. The inputs are an index and its data file (version
// 1 recordings have none).
func FuzzReadRecording(f *testing.F) {
	steps := []step{s("+OK ready <1.2@h>\r\n"), c("USER a\r\nPASS b\r\n"), s("+OK\r\n+OK\r\n"),
		c("RETR 1\r\n"), s("+OK\r\nbody\r\n..dot\r\n.\r\n"), c("QUIT\r\n")}
	ev := &event.Event{Type: event.Command, Verb: "USER", Args: "a", Time: t0, TLS: &event.TLSInfo{Leg: event.Client, Mode: "stls"}}
	_, _, path := record(f, Options{}, steps, ev)
	full, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	dfile, err := os.ReadFile(DataFileName(path))
	if err != nil {
		f.Fatal(err)
	}
	_, _, path1 := record(f, Options{FormatVersion: 1}, steps, ev)
	full1, err := os.ReadFile(path1)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(full, dfile)
	f.Add(full[:len(full)-7], dfile)
	f.Add(full, dfile[:len(dfile)-3])
	f.Add(full, []byte(nil))
	f.Add(full1, []byte(nil))
	f.Add(full1[:len(full1)-7], dfile)
	f.Add(full[:bytes.IndexByte(full, '\n')+1], dfile)
	hdr := full[:bytes.IndexByte(full, '\n')+1]
	f.Add(append(append([]byte(nil), hdr...), `{"t":1,"d":"s","gap":5,"gap_events":2}`+"\n"+`{"t":2,"end":{"c2s":1}}`+"\n"...), []byte(nil))
	f.Add(append(append([]byte(nil), hdr...), `{"type":"tls","time":"2026-01-01T00:00:00Z","tls":{"leg":"server","mode":"implicit"}}`+"\n{}\n"...), []byte(nil))
	f.Add(append(append([]byte(nil), hdr...), `{"t":1,"d":"s","off":3,"len":2}`+"\n"+`{"t":2,"d":"c","off":0,"len":9}`+"\n"...), []byte("abcdef"))
	f.Fuzz(func(t *testing.T, data, dfile []byte) {
		rec, err := ReadData(bytes.NewReader(data), bytes.NewReader(dfile))
		if err != nil {
			return
		}
		tail := data[bytes.LastIndexByte(data, '\n')+1:]
		switch {
		case rec.Torn == nil:
			if len(tail) > 0 {
				t.Fatalf("tail %q but not torn", tail)
			}
		case rec.Torn.Data:
			// Torn at a complete data record naming bytes beyond the data
			// file: it is a line of the index.
			if rec.Torn.Line < 2 || rec.Torn.Line > bytes.Count(data, []byte("\n")) || rec.Torn.Missing {
				t.Fatalf("torn data %+v", rec.Torn)
			}
		case rec.Torn.Bytes != len(tail) || len(tail) == 0:
			t.Fatalf("torn %+v, tail %d", rec.Torn, len(tail))
		}
		if rec.Header.Version == 2 && !bytes.Contains(data, []byte(`"b64"`)) {
			for _, x := range rec.Records {
				if len(x.Data) > len(dfile) {
					t.Fatalf("record of %d bytes from a data file of %d", len(x.Data), len(dfile))
				}
			}
		}
		rd, err := NewReaderData(bytes.NewReader(data), bytes.NewReader(dfile))
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
