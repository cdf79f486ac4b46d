package transcript_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/popscope/popscope/decode"
	"github.com/popscope/popscope/decode/transcript"
	"github.com/popscope/popscope/event"
)

var _ transcript.Sink = (*decode.Session)(nil)

// show renders steps compactly for comparisons.
func show(steps []transcript.Step) string {
	var b strings.Builder
	for _, st := range steps {
		if st.Close {
			fmt.Fprintf(&b, "[%v close %s]", st.At, st.Side)
			continue
		}
		fmt.Fprintf(&b, "[%v %s %q]", st.At, st.Side, st.Data)
	}
	return b.String()
}

func TestParse(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"simple", "C: USER mrose\nS: +OK mrose is a real hoopy frood\n",
			`[0s client "USER mrose\r\n"][0s server "+OK mrose is a real hoopy frood\r\n"]`},
		{"empty line", "C:\nS:\n", `[0s client "\r\n"][0s server "\r\n"]`},
		{"indented RFC example", "      S: +OK POP3 server ready\n\tC: QUIT\n", `[0s server "+OK POP3 server ready\r\n"][0s client "QUIT\r\n"]`},
		{"CRLF file", "C: NOOP\r\nS: +OK\r\n", `[0s client "NOOP\r\n"][0s server "+OK\r\n"]`},
		{"comments and blanks", "# hello\n\n   \nC: NOOP\n#C: not a line\n", `[0s client "NOOP\r\n"]`},
		{"escapes", `C: a\tb\\c\x00\xFFd\re`, `[0s client "a\tb\\c\x00\xffd\re\r\n"]`},
		{"literal tab and 8-bit kept", "S: -ERR Mot de passe \xc3\xa9rron\xc3\xa9\t!", `[0s server "-ERR Mot de passe érroné\t!\r\n"]`},
		{"explicit bare LF", `C: user alice\n`, `[0s client "user alice\n"]`},
		{"explicit two lines in one write", `C: STLS\r\nCAPA\r\n`, `[0s client "STLS\r\nCAPA\r\n"]`},
		{"explicit CR inside", `C: CA\rPA\r\n`, `[0s client "CA\rPA\r\n"]`},
		{"explicit without final line end", `C: USER a\r\nPASS b`, `[0s client "USER a\r\nPASS b"]`},
		{"no terminator marker", `S: +OK\r\`, `[0s server "+OK\r"]`},
		{"partial line", `C: RET\`, `[0s client "RET"]`},
		{"nothing at all", `C: \`, `[0s client ""]`},
		{"escaped backslash at end", `C: a\\`, `[0s client "a\\\r\n"]`},
		{"escaped backslash then marker", `C: a\\\`, `[0s client "a\\"]`},
		{"trailing space kept", "C: RETR 1 \n", `[0s client "RETR 1 \r\n"]`},
		{"leading space after the separator kept", "C:  NOOP\n", `[0s client " NOOP\r\n"]`},
		{"hash inside text", "S: +OK # not a comment\n", `[0s server "+OK # not a comment\r\n"]`},
		{"clock relative", "C: A\n# at: +1.5s\nS: B\n# at: +500ms\nC: C\n",
			`[0s client "A\r\n"][1.5s server "B\r\n"][2s client "C\r\n"]`},
		{"clock absolute", "# at: 2s\nC: A\n# AT: 2s\nS: B\n# at: 3s\nC: C\n",
			`[2s client "A\r\n"][2s server "B\r\n"][3s client "C\r\n"]`},
		{"close", "S: +OK bye\n# close: server\n# at: +1ms\n#close:Client\n",
			`[0s server "+OK bye\r\n"][0s close server][1ms close client]`},
		{"other comment with colon", "# note: this is just a comment\n# TODO: more\nC: NOOP\n", `[0s client "NOOP\r\n"]`},
		{"no final newline", "C: NOOP", `[0s client "NOOP\r\n"]`},
		{"empty input", "", ``},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			steps, err := transcript.ParseString(tc.src)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := show(steps); got != tc.want {
				t.Errorf("Parse(%q)\n got %s\nwant %s", tc.src, got, tc.want)
			}
			for _, st := range steps {
				if st.Line == 0 {
					t.Errorf("step %v has no line number", st)
				}
				if !st.Close && st.Data == nil {
					t.Errorf("data step with nil Data")
				}
			}
		})
	}
}

func TestParseLineNumbers(t *testing.T) {
	steps := transcript.MustParse("# c\n\nC: A\r\n  S: B\n# close: server\n")
	want := []int{3, 4, 5}
	for i, st := range steps {
		if st.Line != want[i] {
			t.Errorf("step %d: line %d, want %d", i, st.Line, want[i])
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		src  string
		line int
		msg  string
	}{
		{"X: hello", 1, `want "C: "`},
		{"C: A\nUSER mrose", 2, `want "C: "`},
		{"C:USER", 1, "followed by a space"},
		{`C: \q`, 1, `unknown escape \q`},
		{`C: \x4`, 1, `two hex digits`},
		{`C: \xZZ`, 1, `two hex digits`},
		{`C: \x`, 1, `two hex digits`},
		{"C: A\n# at: soon", 2, "at: want a duration"},
		{"# at: +", 1, "at: want a duration"},
		{"# at: -1s", 1, "at: want a duration"},
		{"# at: 2s\n# at: 1s", 2, "move the clock back"},
		{"# close: both", 1, "close: want client or server"},
	}
	for _, tc := range tests {
		_, err := transcript.ParseString(tc.src)
		var pe *transcript.ParseError
		if !errors.As(err, &pe) {
			t.Errorf("Parse(%q): error %v, want a *ParseError", tc.src, err)
			continue
		}
		if pe.Line != tc.line || !strings.Contains(pe.Error(), tc.msg) || !strings.HasPrefix(pe.Error(), "transcript: ") {
			t.Errorf("Parse(%q): %q, want line %d containing %q", tc.src, pe.Error(), tc.line, tc.msg)
		}
	}
}

func TestMustParsePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("MustParse did not panic on a bad transcript")
		}
	}()
	transcript.MustParse("nonsense")
}

// sameSteps compares what Parse(Format(x)) must preserve.
func sameSteps(a, b []transcript.Step) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Side != b[i].Side || a[i].Close != b[i].Close || a[i].At != b[i].At || !bytes.Equal(a[i].Data, b[i].Data) {
			return false
		}
	}
	return true
}

func TestFormatRoundTrip(t *testing.T) {
	steps := []transcript.Step{
		{Side: event.Server, Data: []byte("+OK ready <1.2@x>\r\n")},
		{Side: event.Client, Data: []byte("\r\n")},
		{Side: event.Client, Data: []byte("")},
		{Side: event.Client, Data: []byte("RETR 1 \r\n"), At: time.Second},
		{Side: event.Client, Data: []byte(" \r\n"), At: time.Second},
		{Side: event.Client, Data: []byte("USER a\r\nPASS b\r\nSTAT\r\n"), At: 1500 * time.Millisecond},
		{Side: event.Server, Data: []byte("+OK\r")},
		{Side: event.Server, Data: []byte("\n"), At: 2 * time.Second},
		{Side: event.Server, Data: []byte("bare\nlf")},
		{Side: event.Server, Data: []byte("x\\")},
		{Side: event.Server, Data: []byte("x\\\r\n")},
		{Side: event.Server, Data: []byte("\x00\x7f\x80\xff\t\"#")},
		{Side: event.Server, Data: []byte("# looks like a comment\r\n")},
		{Side: event.Server, Close: true, At: 3 * time.Second},
		{Side: event.Client, Close: true, At: 3 * time.Second},
	}
	// Times must not decrease for the round trip to be exact.
	for i := 1; i < len(steps); i++ {
		if steps[i].At < steps[i-1].At {
			steps[i].At = steps[i-1].At
		}
	}
	text := transcript.Format(steps)
	got, err := transcript.Parse(text)
	if err != nil {
		t.Fatalf("Parse(Format): %v\n%s", err, text)
	}
	if !sameSteps(got, steps) {
		t.Errorf("round trip differs\ntext:\n%s\n got %s\nwant %s", text, show(got), show(steps))
	}
	if bytes.Contains(text, []byte(" \n")) {
		t.Errorf("Format left a trailing blank:\n%s", text)
	}
}

func TestFormatReadable(t *testing.T) {
	steps := transcript.MustParse("S: +OK hi\nC: USER a\n# at: +1s\nS: +OK\n# close: server\n")
	want := "S: +OK hi\nC: USER a\n# at: +1s\nS: +OK\n# close: server\n"
	if got := string(transcript.Format(steps)); got != want {
		t.Errorf("Format:\n%s\nwant:\n%s", got, want)
	}
	if got := steps[1].String(); got != "C: USER a" {
		t.Errorf("Step.String() = %q", got)
	}
}

func TestLinesAndSpread(t *testing.T) {
	steps := transcript.MustParse(`C: USER a\r\nPASS b\r\nST` + "\n# close: client\nS: +OK\n")
	lines := transcript.Lines(steps)
	want := `[0s client "USER a\r\n"][0s client "PASS b\r\n"][0s client "ST"][0s close client][0s server "+OK\r\n"]`
	if got := show(lines); got != want {
		t.Errorf("Lines:\n got %s\nwant %s", got, want)
	}
	sp := transcript.Spread(lines, time.Millisecond)
	if sp[0].At != 0 || sp[4].At != 4*time.Millisecond || lines[4].At != 0 {
		t.Errorf("Spread: %s (input changed: %v)", show(sp), lines[4].At)
	}
}

// fakeSink records calls as text.
type fakeSink struct {
	calls []string
	start time.Time
}

func (f *fakeSink) Feed(side event.Side, at time.Time, p []byte) {
	f.calls = append(f.calls, fmt.Sprintf("feed %s %v %q", side, at.Sub(f.start), p))
}

func (f *fakeSink) Close(side event.Side, at time.Time) {
	f.calls = append(f.calls, fmt.Sprintf("close %s %v", side, at.Sub(f.start)))
}

func TestReplay(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	steps := transcript.MustParse("S: +OK\n# at: +2s\nC: QUIT\n# close: client\n")
	f := &fakeSink{start: start}
	end := transcript.Replay(steps, f, start)
	want := []string{`feed server 0s "+OK\r\n"`, `feed client 2s "QUIT\r\n"`, `close client 2s`}
	if fmt.Sprint(f.calls) != fmt.Sprint(want) || !end.Equal(start.Add(2*time.Second)) {
		t.Errorf("Replay calls %q end %v", f.calls, end.Sub(start))
	}
	if got := transcript.Replay(nil, f, start); !got.Equal(start) {
		t.Errorf("Replay(nil) = %v", got)
	}
}

func TestRecorderRoundTrip(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	src := "S: +OK ready\nC: CAPA\n# at: +10ms\nS: +OK\\r\\nTOP\\r\\n.\\r\\n\nC: QUIT\nS: +OK\n# close: server\n# close: client\n"
	steps := transcript.MustParse(src)
	var evs []*event.Event
	sess := decode.New(decode.Options{Session: "t"}, func(e *event.Event) { evs = append(evs, e) })
	rec := &transcript.Recorder{Next: sess}
	end := transcript.Replay(steps, rec, start)
	sess.Finish(end)
	if !sameSteps(rec.Steps, steps) || !rec.Start.Equal(start) {
		t.Errorf("recorded %s\nwant %s", show(rec.Steps), show(steps))
	}
	if len(evs) == 0 || evs[len(evs)-1].To != string(decode.Closed) {
		t.Errorf("the session behind the recorder did not run to CLOSED: %d events", len(evs))
	}
	again, err := transcript.Parse(transcript.Format(transcript.Lines(rec.Steps)))
	if err != nil || !bytes.Equal(concat(again), concat(steps)) {
		t.Errorf("Format(Lines(recording)) lost bytes: %v", err)
	}
}

// concat returns the client stream and the server stream, separated.
func concat(steps []transcript.Step) []byte {
	var c, s []byte
	for _, st := range steps {
		if st.Side == event.Client {
			c = append(c, st.Data...)
		} else {
			s = append(s, st.Data...)
		}
	}
	return append(append(c, "\x00|"...), s...)
}

// FuzzParse checks that Parse never panics, that what it accepts formats
// back to text it reads as the same steps, and that formatting is stable.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"C: USER mrose\nS: +OK\n",
		`C: STLS\r\nCAPA\r\n`,
		`S: +OK\r\`,
		"# at: +1.5s\n# close: server\n",
		`C: \x00\\\t\r`,
		"\tS:\r\n#x\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		steps, err := transcript.Parse(src)
		if err != nil {
			var pe *transcript.ParseError
			if !errors.As(err, &pe) || pe.Line < 1 {
				t.Fatalf("error %v is not a *ParseError with a line", err)
			}
			return
		}
		for i, st := range steps {
			if st.Side != event.Client && st.Side != event.Server {
				t.Fatalf("step %d has no side", i)
			}
			if st.Close != (st.Data == nil) {
				t.Fatalf("step %d: Close %v with Data %q", i, st.Close, st.Data)
			}
			if i > 0 && st.At < steps[i-1].At {
				t.Fatalf("clock went back at step %d", i)
			}
		}
		text := transcript.Format(steps)
		again, err := transcript.Parse(text)
		if err != nil {
			t.Fatalf("Parse(Format(steps)): %v\n%s", err, text)
		}
		if !sameSteps(steps, again) {
			t.Fatalf("round trip differs\ntext:\n%s\n got %s\nwant %s", text, show(again), show(steps))
		}
		if text2 := transcript.Format(again); !bytes.Equal(text, text2) {
			t.Fatalf("Format not stable:\n%s\n---\n%s", text, text2)
		}
	})
}
