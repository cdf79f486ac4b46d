package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/popscope/popscope/decode"
	"github.com/popscope/popscope/event"
	"github.com/popscope/popscope/exporters/record"
	"github.com/popscope/popscope/ui"
)

// TestViewLoadRecording loads a recording made with the record writer
// the way popscope view does: decoded as check decodes it, framed by the
// session's start and end, and its retrieved messages cut out.
func TestViewLoadRecording(t *testing.T) {
	dir := t.TempDir()
	rec, err := record.New(record.Options{Dir: dir, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	s := rec.Open("v1", start, "127.0.0.1:5000", "127.0.0.1:110")
	s.Event(&event.Event{Type: event.SessionStart, Session: "v1", Time: start, Client: "127.0.0.1:5000", Upstream: "127.0.0.1:110"})
	at := start
	msg := "Subject: hi\r\n\r\n.dot\r\nend\r\n"
	for _, st := range []struct {
		side event.Side
		data string
	}{
		{event.Server, "+OK ready\r\n"},
		{event.Client, "USER a\r\n"}, {event.Server, "+OK\r\n"},
		{event.Client, "PASS b\r\n"}, {event.Server, "+OK\r\n"},
		{event.Client, "RETR 1\r\n"}, {event.Server, "+OK\r\nSubject: hi\r\n\r\n..dot\r\n"}, {event.Server, "end\r\n.\r\n"},
		{event.Client, "QUIT\r\n"}, {event.Server, "+OK\r\n"},
	} {
		at = at.Add(time.Millisecond)
		s.Data(st.side, at, []byte(st.data))
	}
	s.Event(&event.Event{Type: event.SessionEnd, Session: "v1", Time: at, Reason: "client closed"})
	s.Close(at)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rec.Close(ctx); err != nil {
		t.Fatal(err)
	}
	path := s.Path()
	var evs []*event.Event
	var logs []string
	ms := ui.NewMessages(0, 0)
	sum := loadRecording(path, mustOpen(t, path), decode.NewStore(0, 0, 0), "transcript", ms,
		func(e *event.Event) { evs = append(evs, e) }, func(f string, a ...any) { logs = append(logs, f) })
	if !strings.Contains(sum, "loaded "+path) {
		t.Fatalf("summary %q (logs %q)", sum, logs)
	}
	if len(evs) < 3 || evs[0].Type != event.SessionStart || evs[len(evs)-1].Type != event.SessionEnd {
		t.Fatalf("events not framed by session start and end: first %v last %v", evs[0].Type, evs[len(evs)-1].Type)
	}
	var id uint64
	for _, e := range evs {
		if e.Session != path {
			t.Fatalf("event of session %q, want %q", e.Session, path)
		}
		if e.Type == event.Response && e.Verb == "RETR" {
			id = e.ID
		}
	}
	m, ok := ms.Get(path, id)
	if id == 0 || !ok {
		t.Fatalf("RETR message not extracted (id %d)", id)
	}
	if string(m.Data) != msg || !m.Complete {
		t.Errorf("message %q complete=%v, want %q", m.Data, m.Complete, msg)
	}
}

func TestViewUsage(t *testing.T) {
	var out, errb strings.Builder
	if code := runView(nil, &out, &errb); code != 2 || !strings.Contains(errb.String(), "recording") {
		t.Errorf("no FILE: code %d, %q", code, errb.String())
	}
	errb.Reset()
	if code := runView([]string{t.TempDir() + "/missing"}, &out, &errb); code != 1 {
		t.Errorf("missing file: code %d, %q", code, errb.String())
	}
}

func mustOpen(t *testing.T, name string) *os.File {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}
