package record

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/popscope/popscope/decode"
	"github.com/popscope/popscope/event"
)

var t0 = time.Date(2026, 11, 26, 3, 54, 18, 0, time.UTC)

// step is one chunk of a scripted session.
type step struct {
	side event.Side
	data string
}

func c(s string) step { return step{event.Client, s} }
func s(s string) step { return step{event.Server, s} }

// record runs steps through a Recorder and returns the recording.
func record(t testing.TB, opt Options, steps []step, evs ...*event.Event) (*Recording, *Recorder, string) {
	t.Helper()
	if opt.Dir == "" {
		opt.Dir = filepath.Join(t.TempDir(), "rec")
	}
	r, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	ss := r.Open("abc123", t0, "127.0.0.1:4000", "127.0.0.1:110")
	at := t0
	for _, st := range steps {
		at = at.Add(time.Millisecond)
		ss.Data(st.side, at, []byte(st.data))
	}
	for _, e := range evs {
		ss.Event(e)
	}
	ss.Close(at.Add(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	rec, err := ReadFile(ss.Path())
	if err != nil {
		t.Fatal(err)
	}
	return rec, r, ss.Path()
}

func TestRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	steps := []step{
		s("+OK ready <1.2@host>\r\n"), c("CAPA\r\n"), s("+OK\r\nUSER\r\nSASL PLAIN\r\n.\r\n"),
		c("USER alice\r\n"), s("+OK\r\n"), c("PASS alicepw\r\n"), s("+OK logged in\r\n"),
		c("RETR 1\r\n"), s("+OK 5 octets\r\nhello\r\n.\r\n"), c("QUIT\r\n"), s("+OK bye\r\n"),
	}
	cmd := &event.Event{Type: event.Command, Session: "abc123", Time: t0.Add(5 * time.Millisecond), Seq: 7, By: event.Client, ID: 3, Verb: "PASS", Args: "<redacted>", Redacted: true}
	rec, r, path := record(t, Options{Dir: dir, Version: "test"}, steps, cmd)

	h := rec.Header
	if h.Format != FormatName || h.Version != Version || h.Session != "abc123" || h.Client != "127.0.0.1:4000" ||
		h.Upstream != "127.0.0.1:110" || !h.Start.Equal(t0) || h.Popscope != "test" || !h.Redacted || h.Placeholder != Placeholder {
		t.Errorf("header: %+v", h)
	}
	if !rec.Complete || rec.Torn != nil {
		t.Errorf("complete %v torn %v", rec.Complete, rec.Torn)
	}
	var wantC, wantS string
	for _, st := range steps {
		if st.side == event.Client {
			wantC += st.data
		} else {
			wantS += st.data
		}
	}
	wantC = strings.Replace(wantC, "PASS alicepw", "PASS <redacted>", 1)
	if got := string(rec.Stream(event.Client)); got != wantC {
		t.Errorf("client stream:\n got %q\nwant %q", got, wantC)
	}
	if got := string(rec.Stream(event.Server)); got != wantS {
		t.Errorf("server stream differs: %q", got)
	}
	// Times: one data record per step, 1ms apart.
	n := 0
	for _, x := range rec.Records {
		if x.Kind == KindData {
			n++
			if x.T != time.Duration(n)*time.Millisecond {
				t.Errorf("record %d at %v, want %v", n, x.T, time.Duration(n)*time.Millisecond)
			}
		}
	}
	evs := rec.Events()
	if len(evs) != 1 || evs[0].Verb != "PASS" || evs[0].Seq != 7 || !evs[0].Time.Equal(cmd.Time) {
		t.Errorf("events: %+v", evs)
	}
	end := rec.End()
	if end == nil || end.C2S != int64(len("CAPA\r\nUSER alice\r\nPASS alicepw\r\nRETR 1\r\nQUIT\r\n")) || end.S2C != int64(len(wantS)) || end.Redactions != 1 {
		t.Errorf("end: %+v", end)
	}
	if st := r.Stats(); st.Sessions != 1 || st.Files != 1 || st.Redactions != 1 || st.LostBytes != 0 {
		t.Errorf("stats: %+v", st)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, want 0600", fi.Mode().Perm())
	}
	di, _ := os.Stat(dir)
	if di.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v, want 0700", di.Mode().Perm())
	}
	di2, err := os.Stat(DataFileName(path))
	if err != nil || di2.Mode().Perm() != 0o600 {
		t.Errorf("data file: %v, mode %v, want 0600", err, di2.Mode().Perm())
	}
	raw, _ := os.ReadFile(path)
	data, _ := os.ReadFile(DataFileName(path))
	if bytes.Contains(raw, []byte("alicepw")) || bytes.Contains(data, []byte("alicepw")) {
		t.Error("the password is in the recording")
	}
	if want := len(rec.Stream(event.Client)) + len(rec.Stream(event.Server)); len(data) != want {
		t.Errorf("data file %d bytes, streams %d", len(data), want)
	}
	if bytes.Contains(raw, []byte(`"b64"`)) || !bytes.Contains(raw, []byte(`"off":0,"len":22}`)) {
		t.Errorf("index of a version 2 recording:\n%s", raw)
	}
	if !bytes.Contains(raw, []byte(`"placeholder":"<redacted>"`)) {
		t.Errorf("header not readable: %s", raw[:bytes.IndexByte(raw, '\n')])
	}
}

// TestRoundTripV1: FormatVersion 1 writes one file with base64 data
// records, and reading it gives what reading version 2 gives.
func TestRoundTripV1(t *testing.T) {
	steps := []step{s("+OK ready <1.2@host>\r\n"), c("USER alice\r\n"), s("+OK\r\n"), c("PASS alicepw\r\n"), s("+OK\r\n"),
		c("RETR 1\r\n"), s("+OK\r\n\x00\xff bin\r\r\n.\r\n"), s(strings.Repeat("z", maxDataRecord+7)), c("QUIT\r\n")}
	ev := &event.Event{Type: event.Command, Verb: "PASS", Args: "alicepw", Time: t0}
	v1, _, p1 := record(t, Options{FormatVersion: 1}, steps, ev)
	v2, _, p2 := record(t, Options{}, steps, ev)
	if v1.Header.Version != 1 || v2.Header.Version != 2 {
		t.Errorf("versions %d %d", v1.Header.Version, v2.Header.Version)
	}
	if _, err := os.Stat(DataFileName(p1)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("version 1 wrote a data file (%v)", err)
	}
	raw1, _ := os.ReadFile(p1)
	if !bytes.Contains(raw1, []byte(`"b64":"`)) || bytes.Contains(raw1, []byte("alicepw")) {
		t.Errorf("version 1 file:\n%.300s", raw1)
	}
	for _, side := range []event.Side{event.Client, event.Server} {
		if a, b := v1.Stream(side), v2.Stream(side); !bytes.Equal(a, b) {
			t.Errorf("%v stream: v1 %d bytes, v2 %d bytes", side, len(a), len(b))
		}
	}
	if !v1.Complete || !v2.Complete || v1.Torn != nil || v2.Torn != nil || len(v1.Events()) != 1 || len(v2.Events()) != 1 ||
		*v1.End() != *v2.End() {
		t.Errorf("v1 %+v\nv2 %+v", v1.End(), v2.End())
	}
	// Version 2 joins the pieces of one read (split over queue blocks)
	// into one data record; version 1 writes a record per piece.
	kinds := func(rec *Recording) (k []string) {
		for _, x := range rec.Records {
			if x.Kind == KindData && len(x.Data) > maxDataRecord {
				t.Errorf("data record of %d bytes", len(x.Data))
			}
			k = append(k, fmt.Sprintf("%v/%v/%d", x.Kind, x.Side, len(x.Data)))
		}
		return k
	}
	if k1, k2 := kinds(v1), kinds(v2); len(k2) >= len(k1) {
		t.Errorf("v1 records: %s\nv2 records: %s", k1, k2)
	}
	if _, err := New(Options{Dir: t.TempDir(), FormatVersion: 3}); err == nil {
		t.Error("format version 3 accepted")
	}
	// A version 2 index read without its data file: torn at the first
	// data record, reported as such.
	os.Remove(DataFileName(p2))
	rec, err := ReadFile(p2)
	if err != nil || rec.Torn == nil || !rec.Torn.Missing || rec.Torn.Line != 2 || len(rec.Records) != 0 || rec.Complete ||
		!strings.Contains(rec.Summary(), "NO DATA FILE") {
		t.Errorf("no data file: %v %+v", err, rec)
	}
}

func TestRecordSecrets(t *testing.T) {
	rec, _, _ := record(t, Options{RecordSecrets: true}, []step{s("+OK\r\n"), c("USER a\r\n"), s("+OK\r\n"), c("PASS pw\r\n")},
		&event.Event{Type: event.Command, Verb: "PASS", Args: "pw", Time: t0})
	if rec.Header.Redacted {
		t.Error("header says redacted")
	}
	if got := string(rec.Stream(event.Client)); got != "USER a\r\nPASS pw\r\n" {
		t.Errorf("client stream %q", got)
	}
	if rec.Events()[0].Args != "pw" {
		t.Errorf("event args %q", rec.Events()[0].Args)
	}
}

func TestEventArgsRedacted(t *testing.T) {
	// The decoder ran with --reveal-secrets; the recording still hides them.
	evs := []*event.Event{
		{Type: event.Command, Verb: "PASS", Args: "pw one", Time: t0},
		{Type: event.Command, Verb: "APOP", Args: "alice 0123abcd", Time: t0},
		{Type: event.Command, Verb: "AUTH", Args: "PLAIN AGEAYg==", Time: t0},
		{Type: event.Command, Verb: "AUTH", Args: "PLAIN =", Time: t0},
		{Type: event.Command, Verb: "USER", Args: "alice", Time: t0},
		{Type: event.SASLResponse, Verb: "AUTH", Args: "YWxpY2U=", Time: t0},
		{Type: event.SASLResponse, Verb: "AUTH", Args: "*", Time: t0},
	}
	rec, _, _ := record(t, Options{}, nil, evs...)
	var got []string
	for _, e := range rec.Events() {
		got = append(got, e.Args)
	}
	want := []string{"<redacted>", "alice <redacted>", "PLAIN <redacted>", "PLAIN =", "alice", "<redacted>", "*"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("args %q, want %q", got, want)
	}
}

// redactCases: a session script and the client stream it must record.
var redactCases = []struct {
	name  string
	steps []step
	want  string
}{
	{"user-pass", []step{s("+OK\r\n"), c("USER alice\r\n"), s("+OK\r\n"), c("PASS secret pw\r\n"), s("+OK\r\n"), c("STAT\r\n"), s("+OK 1 2\r\n")},
		"USER alice\r\nPASS <redacted>\r\nSTAT\r\n"},
	{"lower-case-bare-lf", []step{s("+OK\r\n"), c("user alice\n"), s("+OK\r\n"), c("pass pw\n"), s("-ERR no\r\n"), c("  PASS\tpw2\r\n"), s("+OK\r\n")},
		"user alice\npass <redacted>\n  PASS\t<redacted>\r\n"},
	{"empty-pass", []step{s("+OK\r\n"), c("PASS \r\nPASS\r\n"), s("-ERR\r\n-ERR\r\n")}, "PASS \r\nPASS\r\n"},
	{"apop", []step{s("+OK <1.2@h>\r\n"), c("APOP alice c4c9334bac560ecc979e58001b3e22fb\r\n"), s("+OK\r\n")},
		"APOP alice <redacted>\r\n"},
	{"apop-no-digest", []step{s("+OK <1.2@h>\r\n"), c("APOP alice\r\n"), s("-ERR\r\n")}, "APOP alice\r\n"},
	{"rpop", []step{s("+OK\r\n"), c("RPOP bob\r\n"), s("-ERR\r\n")}, "RPOP <redacted>\r\n"},
	{"auth-plain-ir", []step{s("+OK\r\n"), c("AUTH PLAIN AGFsaWNlAGFsaWNlcHc=\r\n"), s("+OK\r\n"), c("QUIT\r\n"), s("+OK\r\n")},
		"AUTH PLAIN <redacted>\r\nQUIT\r\n"},
	{"auth-plain-empty-ir", []step{s("+OK\r\n"), c("AUTH PLAIN =\r\n"), s("+ \r\n"), c("AGFsaWNlAGFsaWNlcHc=\r\n"), s("+OK\r\n")},
		"AUTH PLAIN =\r\n<redacted>\r\n"},
	{"auth-cram", []step{s("+OK\r\n"), c("AUTH CRAM-MD5\r\n"), s("+ PDEyMzQ1QGhvc3Q+\r\n"), c("YWxpY2UgYjkxM2E2MDJjN2VkYTdhNDk1YjRlNmU3MzM0ZDM4OTA=\r\n"),
		s("+OK\r\n"), c("STAT\r\n"), s("+OK 0 0\r\n")}, "AUTH CRAM-MD5\r\n<redacted>\r\nSTAT\r\n"},
	{"auth-login", []step{s("+OK\r\n"), c("AUTH LOGIN\r\n"), s("+ VXNlcm5hbWU6\r\n"), c("YWxpY2U=\r\n"), s("+ UGFzc3dvcmQ6\r\n"), c("YWxpY2Vwdw==\r\n"), s("+OK\r\n"), c("QUIT\r\n")},
		"AUTH LOGIN\r\n<redacted>\r\n<redacted>\r\nQUIT\r\n"},
	{"auth-cancel", []step{s("+OK\r\n"), c("AUTH LOGIN\r\n"), s("+ VXNlcm5hbWU6\r\n"), c("*\r\n"), s("-ERR cancelled\r\n"), c("USER bob\r\n")},
		"AUTH LOGIN\r\n*\r\nUSER bob\r\n"},
	{"auth-empty-response", []step{s("+OK\r\n"), c("AUTH EXTERNAL\r\n"), s("+ \r\n"), c("\r\n"), s("+OK\r\n")}, "AUTH EXTERNAL\r\n\r\n"},
	{"auth-refused", []step{s("+OK\r\n"), c("AUTH GSSAPI\r\n"), s("-ERR unsupported\r\n"), c("USER bob\r\n"), s("+OK\r\n")},
		"AUTH GSSAPI\r\nUSER bob\r\n"},
	{"auth-listing", []step{s("+OK\r\n"), c("AUTH\r\n"), s("+OK\r\nPLAIN\r\n.\r\n"), c("USER bob\r\n"), s("+OK\r\n")}, "AUTH\r\nUSER bob\r\n"},
	{"pipelined-capa-auth", []step{s("+OK\r\n"), c("CAPA\r\nAUTH PLAIN\r\n"), s("+OK\r\nSASL PLAIN\r\n+OK not a status\r\n.\r\n"), s("+ \r\n"),
		c("AGFsaWNlAGFsaWNlcHc=\r\n"), s("+OK\r\n"), c("STAT\r\n")}, "CAPA\r\nAUTH PLAIN\r\n<redacted>\r\nSTAT\r\n"},
	{"pass-in-transaction", []step{s("+OK\r\n"), c("USER a\r\nPASS b\r\n"), s("+OK\r\n+OK\r\n"), c("RETR 1\r\n"), s("+OK\r\nPASS x\r\n.\r\n"), c("PASS again\r\n")},
		"USER a\r\nPASS <redacted>\r\nRETR 1\r\nPASS <redacted>\r\n"},
	{"auth-after-login", []step{s("+OK\r\n"), c("USER a\r\nPASS b\r\n"), s("+OK\r\n+OK\r\n"), c("AUTH PLAIN\r\n"), s("-ERR\r\n"),
		c("c2VjcmV0\r\n"), s("-ERR\r\n"), c("QUIT\r\n")}, "USER a\r\nPASS <redacted>\r\nAUTH PLAIN\r\n<redacted>\r\nQUIT\r\n"},
	{"stls-passthrough", []step{s("+OK\r\n"), c("STLS\r\n"), s("+OK go\r\n"), c("\x16\x03\x01PASS x\r\n")}, "STLS\r\n\x16\x03\x01PASS x\r\n"},
	{"stls-terminated", []step{s("+OK\r\n"), c("STLS\r\n"), s("+OK go\r\n"), c("USER a\r\n"), s("+OK\r\n"), c("PASS b\r\n")},
		"STLS\r\nUSER a\r\nPASS <redacted>\r\n"},
	{"tls-on-plain-port", []step{c("\x16\x03\x01\x00PASS x\r\n")}, "\x16\x03\x01\x00PASS x\r\n"},
	{"cut-short", []step{s("+OK\r\n"), c("PASS sec")}, "PASS <redacted>"},
	{"cut-short-undecided", []step{s("+OK\r\n"), c("PAS")}, "PAS"},
	{"long-line", []step{s("+OK\r\n"), c("NOOP " + strings.Repeat("x", 600) + "\r\n"), c("PASS " + strings.Repeat("y", 600) + "\r\n")},
		"NOOP " + strings.Repeat("x", 600) + "\r\nPASS <redacted>\r\n"},
}

func TestRedaction(t *testing.T) {
	for _, tc := range redactCases {
		t.Run(tc.name, func(t *testing.T) {
			rec, _, _ := record(t, Options{}, tc.steps)
			if got := string(rec.Stream(event.Client)); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestRedactionSplit feeds every case with the client bytes split at
// every offset (and byte by byte): the result must not depend on chunking.
func TestRedactionSplit(t *testing.T) {
	run := func(steps []step) string {
		r := &redactor{t: &Tracker{}}
		var out []byte
		for _, st := range steps {
			if st.side == event.Client {
				out = r.client(out, []byte(st.data))
			} else {
				r.t.Server([]byte(st.data))
			}
		}
		return string(r.flush(out))
	}
	for _, tc := range redactCases {
		if got := run(tc.steps); got != tc.want {
			t.Errorf("%s: whole: got %q want %q", tc.name, got, tc.want)
			continue
		}
		// Split every step at every offset.
		for i, st := range tc.steps {
			for k := 1; k < len(st.data); k++ {
				split := append(append(append([]step(nil), tc.steps[:i]...), step{st.side, st.data[:k]}, step{st.side, st.data[k:]}), tc.steps[i+1:]...)
				if got := run(split); got != tc.want {
					t.Fatalf("%s: step %d split at %d: got %q want %q", tc.name, i, k, got, tc.want)
				}
			}
		}
		var bytewise []step
		for _, st := range tc.steps {
			for k := 0; k < len(st.data); k++ {
				bytewise = append(bytewise, step{st.side, st.data[k : k+1]})
			}
		}
		if got := run(bytewise); got != tc.want {
			t.Errorf("%s: byte by byte: got %q want %q", tc.name, got, tc.want)
		}
	}
}

func TestTornLastLine(t *testing.T) {
	for _, v := range []int{1, 2} {
		t.Run(fmt.Sprint("v", v), func(t *testing.T) { testTornLastLine(t, v) })
	}
}

func testTornLastLine(t *testing.T, version int) {
	_, _, path := record(t, Options{FormatVersion: version}, []step{s("+OK ready\r\n"), c("STAT\r\n"), s("+OK 1 10\r\n")})
	full, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(DataFileName(path)) // none for version 1
	lines := bytes.Count(full, []byte("\n"))
	// Cut inside the end record, and inside every earlier line.
	for cut := len(full) - 1; cut > 0; cut-- {
		part := full[:cut]
		rec, err := ReadData(bytes.NewReader(part), bytes.NewReader(data))
		if bytes.IndexByte(part, '\n') < 0 {
			if !errors.Is(err, ErrNotRecording) {
				t.Fatalf("cut %d (inside the header): err %v", cut, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		complete := bytes.Count(part, []byte("\n"))
		if part[len(part)-1] == '\n' {
			if rec.Torn != nil {
				t.Fatalf("cut %d at a line end: torn %+v", cut, rec.Torn)
			}
		} else if rec.Torn == nil || rec.Torn.Line != complete+1 || rec.Torn.Bytes != len(part)-bytes.LastIndexByte(part, '\n')-1 {
			t.Fatalf("cut %d: torn %+v, want line %d", cut, rec.Torn, complete+1)
		}
		if len(rec.Records) != complete-1 {
			t.Fatalf("cut %d: %d records, want %d", cut, len(rec.Records), complete-1)
		}
		if rec.Complete != (complete == lines) {
			t.Fatalf("cut %d: complete %v", cut, rec.Complete)
		}
	}
}

// TestTornDataFile: a data file shorter than its index says (the
// recorder was stopped between the two writes, or a copy was cut) tears
// the recording at the first data record naming missing bytes.
func TestTornDataFile(t *testing.T) {
	_, _, path := record(t, Options{}, []step{s("+OK ready\r\n"), c("STAT\r\n"), s("+OK 1 10\r\n"), c("QUIT\r\n")},
		&event.Event{Type: event.Note, Time: t0})
	index, _ := os.ReadFile(path)
	data, _ := os.ReadFile(DataFileName(path))
	// The data records' ends in the data file, and their lines.
	ends := []int{11, 17, 27, 33}
	lines := []int{2, 3, 4, 5}
	if len(data) != 33 {
		t.Fatalf("data file %d bytes", len(data))
	}
	for cut := 0; cut < len(data); cut++ {
		rec, err := ReadData(bytes.NewReader(index), bytes.NewReader(data[:cut]))
		if err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		k := 0
		for ends[k] <= cut {
			k++
		}
		if rec.Torn == nil || !rec.Torn.Data || rec.Torn.Missing || rec.Torn.Line != lines[k] || rec.Complete || len(rec.Records) != k {
			t.Fatalf("cut %d: torn %+v, %d records, want torn at line %d after %d records", cut, rec.Torn, len(rec.Records), lines[k], k)
		}
		if got := string(rec.Stream(event.Server)) + string(rec.Stream(event.Client)); len(got) > cut {
			t.Fatalf("cut %d: %d bytes read", cut, len(got))
		}
		if !strings.Contains(rec.Summary(), "torn data file: data record at line") {
			t.Fatalf("summary %s", rec.Summary())
		}
	}
	// Bytes beyond what the index names (the recorder was stopped between
	// the two writes) are ignored.
	rec, err := ReadData(bytes.NewReader(index), bytes.NewReader(append(data, "more"...)))
	if err != nil || rec.Torn != nil || !rec.Complete {
		t.Errorf("longer data file: %v %+v", err, rec)
	}
	// A data file still growing: the reader looks again before tearing.
	f, err := os.CreateTemp(t.TempDir(), "data")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Write(data[:11])
	rd, err := NewReaderData(bytes.NewReader(index), f)
	if err != nil {
		t.Fatal(err)
	}
	if x, err := rd.Next(); err != nil || string(x.Data) != "+OK ready\r\n" {
		t.Fatalf("first record %+v %v", x, err)
	}
	f.Write(data[11:])
	n := 1
	for {
		_, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if rd.Torn() != nil || n != 6 {
		t.Errorf("growing data file: %d records, torn %+v", n, rd.Torn())
	}
}

func TestReaderErrors(t *testing.T) {
	hdr := `{"format":"popscope-recording","version":1,"session":"x","start":"2026-01-01T00:00:00Z","redacted":true}` + "\n"
	for _, tc := range []struct{ name, in, want string }{
		{"empty", "", "not a popscope recording"},
		{"transcript", "C: USER a\n", "not a popscope recording"},
		{"future", `{"format":"popscope-recording","version":99}` + "\n", "format version 99"},
		{"bad-json", hdr + "{\n", "line 2"},
		{"bad-side", hdr + `{"t":1,"d":"x","b64":""}` + "\n", `side "x"`},
		{"no-t", hdr + `{"d":"c","b64":"QQ=="}` + "\n", `without "t"`},
		{"bad-b64", hdr + `{"t":1,"d":"c","b64":"!!"}` + "\n", "line 2"},
		{"neg-gap", hdr + `{"t":1,"d":"c","gap":-1}` + "\n", "negative"},
		{"off-no-len", hdr + `{"t":1,"d":"c","off":0}` + "\n", `want "off" and "len"`},
		{"len-and-b64", hdr + `{"t":1,"d":"c","off":0,"len":1,"b64":"QQ=="}` + "\n", `want "off" and "len"`},
		{"neg-off", hdr + `{"t":1,"d":"c","off":-1,"len":1}` + "\n", "negative offset"},
		{"neg-len", hdr + `{"t":1,"d":"c","off":0,"len":-1}` + "\n", "negative offset"},
		{"huge-len", hdr + `{"t":1,"d":"c","off":0,"len":99999999999}` + "\n", "length 99999999999"},
		{"bad-off", hdr + `{"t":1,"d":"c","off":"x","len":1}` + "\n", "line 2"},
	} {
		_, err := ReadData(strings.NewReader(tc.in), strings.NewReader("ABCD"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.want)
		}
	}
	// Unknown record kinds and blank lines are skipped.
	rec, err := Read(strings.NewReader(hdr + `{"t":1,"future":true}` + "\n\n" + `{"t":2,"d":"c","b64":"QQ=="}` + "\n"))
	if err != nil || rec.Unknown != 1 || len(rec.Records) != 1 || string(rec.Records[0].Data) != "A" {
		t.Errorf("unknown: %v %+v", err, rec)
	}
	// Version 2 data records, in any order of the data file, and empty.
	hdr2 := strings.Replace(hdr, `"version":1`, `"version":2`, 1)
	rec, err = ReadData(strings.NewReader(hdr2+`{"t":1,"d":"c","off":2,"len":2}`+"\n"+`{"t":2,"d":"s","off":0,"len":3}`+"\n"+
		`{"t":3,"d":"s","off":4,"len":0}`+"\n"), strings.NewReader("ABCD"))
	if err != nil || len(rec.Records) != 3 || string(rec.Stream(event.Client)) != "CD" || string(rec.Stream(event.Server)) != "ABC" || rec.Torn != nil {
		t.Errorf("version 2: %v %+v", err, rec)
	}
}

// TestGapAccounting: data that does not fit the bound is dropped,
// counted, and marked where it was lost.
func TestGapAccounting(t *testing.T) {
	rec, r, _ := record(t, Options{BufferLimit: 100}, []step{s("+OK\r\n"), s(strings.Repeat("x", 200)), s(strings.Repeat("y", 150)), c("QUIT\r\n"), s("+OK\r\n")},
		&event.Event{Type: event.Note, Time: t0})
	var kinds []string
	for _, x := range rec.Records {
		k := x.Kind.String()
		if x.Kind == KindGap {
			k += "/" + x.Side.String()
		}
		kinds = append(kinds, k)
	}
	if got := strings.Join(kinds, " "); got != "data gap/server data data gap/ end" {
		t.Errorf("records: %s", got)
	}
	for _, x := range rec.Records {
		if x.Kind == KindGap && x.Side == event.Server && x.Lost != 350 {
			t.Errorf("server gap %d, want 350", x.Lost)
		}
		if x.Kind == KindGap && x.Side == event.NoSide && x.LostEvents != 1 {
			t.Errorf("event gap %d, want 1", x.LostEvents)
		}
	}
	end := rec.End()
	if end.LostS2C != 350 || end.LostEvents != 1 || end.S2C != 5+200+150+5 {
		t.Errorf("end %+v", end)
	}
	if st := r.Stats(); st.LostBytes != 350 || st.LostEvents != 1 || st.Gaps != 2 {
		t.Errorf("stats %+v", st)
	}
	if lc, ls, le := rec.Lost(); lc != 0 || ls != 350 || le != 1 {
		t.Errorf("Lost() = %d %d %d", lc, ls, le)
	}
}

// TestNeverBlocks stalls the writer: Data must return at once, memory
// must stay within the bound, and every byte is either recorded or
// counted as lost.
func TestNeverBlocks(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	r, err := New(Options{Dir: t.TempDir(), BufferLimit: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	r.beforeWrite = func() { <-release }
	ss := r.Open("stall", t0, "c", "u")
	chunk := bytes.Repeat([]byte("z"), 1000)
	start := time.Now()
	for i := 0; i < 2000; i++ {
		ss.Data(event.Server, t0.Add(time.Duration(i)), chunk)
		ss.mu.Lock()
		p := ss.pending
		ss.mu.Unlock()
		if p > 64<<10 {
			t.Fatalf("pending %d over the bound", p)
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("2000 Data calls against a stalled writer took %v", d)
	}
	once.Do(func() { close(release) })
	ss.Close(t0.Add(time.Hour))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	rec, err := ReadFile(ss.Path())
	if err != nil {
		t.Fatal(err)
	}
	got := int64(len(rec.Stream(event.Server)))
	_, lost, _ := rec.Lost()
	if got+lost != 2000*1000 || lost == 0 || lost != r.Stats().LostBytes {
		t.Errorf("recorded %d + lost %d != %d (stats %+v)", got, lost, 2000*1000, r.Stats())
	}
}

func TestCreateFailure(t *testing.T) {
	dir := t.TempDir()
	var logged []string
	var mu sync.Mutex
	r, err := New(Options{Dir: dir, Logf: func(f string, a ...any) { mu.Lock(); logged = append(logged, f); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	ss := r.Open("dup", t0, "c", "u")
	if err := os.WriteFile(ss.Path(), nil, 0o600); err != nil { // O_EXCL will fail
		t.Fatal(err)
	}
	ss.Data(event.Server, t0, []byte("+OK\r\n"))
	ss.Close(t0)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if r.Stats().Errors != 1 || len(logged) != 1 {
		t.Errorf("errors %d, logged %q", r.Stats().Errors, logged)
	}
}

func TestLargeChunksSplit(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), (3*maxDataRecord)/16+5)
	rec, _, _ := record(t, Options{BufferLimit: 8 * maxDataRecord}, []step{s(string(big))})
	n := 0
	for _, x := range rec.Records {
		if x.Kind == KindData {
			n++
			if len(x.Data) > maxDataRecord {
				t.Errorf("data record of %d bytes", len(x.Data))
			}
		}
	}
	if n < 4 || !bytes.Equal(rec.Stream(event.Server), big) {
		t.Errorf("%d records, stream equal %v", n, bytes.Equal(rec.Stream(event.Server), big))
	}
}

func TestStreamingReader(t *testing.T) {
	_, _, path := record(t, Options{}, []step{s("+OK\r\n"), c("QUIT\r\n")})
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	df, err := os.Open(DataFileName(path))
	if err != nil {
		t.Fatal(err)
	}
	defer df.Close()
	rd, err := NewReaderData(f, df)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for i := 0; i < 10; i++ {
		x, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, x.Kind.String())
	}
	if strings.Join(kinds, " ") != "data data end" || rd.Torn() != nil {
		t.Errorf("kinds %v torn %v", kinds, rd.Torn())
	}
}

// TestStandIns: decoding a redacted recording with stand-ins finds the
// same violations as decoding the one with secrets.
func TestStandIns(t *testing.T) {
	cram := "<1896.697170952@postoffice.example.net>"
	steps := []step{
		s("+OK ready <1.2@host>\r\n"), c("CAPA\r\n"), s("+OK\r\nSASL PLAIN LOGIN CRAM-MD5\r\nUSER\r\n.\r\n"),
		c("AUTH CRAM-MD5\r\n"), s("+ " + b64(cram) + "\r\n"), c(b64("alice 0123456789abcdef0123456789abcdef") + "\r\n"), s("-ERR no\r\n"),
		c("AUTH LOGIN\r\n"), s("+ VXNlcm5hbWU6\r\n"), c(b64("alice") + "\r\n"), s("+ UGFzc3dvcmQ6\r\n"), c(b64("pw") + "\r\n"), s("-ERR no\r\n"),
		c("APOP alice c4c9334bac560ecc979e58001b3e22fb\r\n"), s("-ERR no\r\n"),
		c("AUTH PLAIN " + b64("\x00alice\x00pw") + "\r\n"), s("+OK in\r\n"),
		c("QUIT\r\n"), s("+OK bye\r\n"),
	}
	secret, _, _ := record(t, Options{RecordSecrets: true}, steps)
	redacted, _, _ := record(t, Options{}, steps)
	with := redacted.WithStandIns("alice")
	cli := string(with.Stream(event.Client))
	for _, want := range []string{"AUTH CRAM-MD5\r\n" + b64("alice "+strings.Repeat("0", 32)) + "\r\n",
		b64("alice") + "\r\n" + b64("redacted") + "\r\n", "APOP alice " + strings.Repeat("0", 32) + "\r\n",
		"AUTH PLAIN " + b64("\x00alice\x00redacted") + "\r\n"} {
		if !strings.Contains(cli, want) {
			t.Errorf("stand-ins: %q missing from %q", want, cli)
		}
	}
	rules := func(rec *Recording) string {
		var got []string
		d := decode.New(decode.Options{}, func(e *event.Event) {
			if e.Type == event.Violation {
				got = append(got, e.Rule)
			}
		})
		for _, r := range rec.Records {
			if r.Kind == KindData {
				d.Feed(r.Side, rec.Header.Start.Add(r.T), r.Data)
			}
		}
		d.Finish(rec.Header.Start.Add(time.Minute))
		sort.Strings(got)
		return strings.Join(got, " ")
	}
	if a, b := rules(secret), rules(with); a != b {
		t.Errorf("violations with secrets: %s\nwith stand-ins: %s", a, b)
	}
	if a, b := rules(secret), rules(redacted); a == b {
		t.Logf("note: placeholders alone gave the same violations (%s)", a)
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
