package decode_test

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/popscope/popscope/decode"
	"github.com/popscope/popscope/decode/transcript"
	"github.com/popscope/popscope/event"
)

// Fuzz input format: a sequence of chunks, each one header octet and
// data. Header bit 7 selects the side (0 client, 1 server); the low 7
// bits are the data length (0..126, cut at the end of the input), or 127
// for "this side closes".
const fuzzClose = 0x7f

// fuzzSteps decodes a fuzz input into steps (At is left 0; run spreads
// them one millisecond apart).
func fuzzSteps(data []byte) []transcript.Step {
	var steps []transcript.Step
	for len(data) > 0 {
		h := data[0]
		data = data[1:]
		side := event.Client
		if h&0x80 != 0 {
			side = event.Server
		}
		n := int(h & 0x7f)
		if n == fuzzClose {
			steps = append(steps, transcript.Step{Side: side, Close: true})
			continue
		}
		n = min(n, len(data))
		steps = append(steps, transcript.Step{Side: side, Data: data[:n:n]})
		data = data[n:]
	}
	return steps
}

// fuzzInput encodes steps in the fuzz input format.
func fuzzInput(steps []transcript.Step) []byte {
	var b []byte
	for _, st := range steps {
		var side byte
		if st.Side == event.Server {
			side = 0x80
		}
		if st.Close {
			b = append(b, side|fuzzClose)
			continue
		}
		d := st.Data
		for len(d) > 0 {
			n := min(len(d), fuzzClose-1)
			b = append(b, side|byte(n))
			b = append(b, d[:n]...)
			d = d[n:]
		}
	}
	return b
}

// seedInputs returns the golden transcripts and the playbook scripts in
// fuzz input form.
func seedInputs(tb testing.TB) [][]byte {
	var seeds [][]byte
	files, _ := filepath.Glob(filepath.Join(transcriptDir, "*.txt"))
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		steps, err := transcript.Parse(src)
		if err != nil {
			tb.Fatal(err)
		}
		seeds = append(seeds, fuzzInput(steps))
	}
	for _, tc := range cases() {
		steps, err := transcript.ParseString(tc.script)
		if err != nil {
			tb.Fatal(err)
		}
		seeds = append(seeds, fuzzInput(steps))
	}
	return seeds
}

func TestFuzzInputRoundTrip(t *testing.T) {
	steps := transcript.MustParse("S: +OK\nC: " + strings.Repeat("x", 300) + "\n# close: client\nC: \\\n")
	got := fuzzSteps(fuzzInput(steps))
	if string(concatSide(got, event.Client)) != string(concatSide(steps, event.Client)) ||
		string(concatSide(got, event.Server)) != "+OK\r\n" || !got[len(got)-1].Close {
		t.Errorf("fuzz encoding lost data: %d steps", len(got))
	}
}

func concatSide(steps []transcript.Step, side event.Side) []byte {
	var b []byte
	for _, st := range steps {
		if st.Side == side {
			b = append(b, st.Data...)
		}
	}
	return b
}

// feedAll runs steps, closes both sides, finishes, and then checks that
// the session shrugs off calls after Finish.
func feedAll(opt decode.Options, steps []transcript.Step) []*event.Event {
	var evs []*event.Event
	s := decode.New(opt, func(e *event.Event) { evs = append(evs, e) })
	end := transcript.Replay(transcript.Spread(steps, time.Millisecond), s, t0)
	end = end.Add(time.Millisecond)
	s.Close(event.Server, end)
	s.Close(event.Client, end)
	s.Finish(end)
	n := len(evs)
	s.Finish(end)
	s.Feed(event.Client, end, []byte("NOOP\r\n"))
	s.Feed(event.Server, end, []byte("+OK\r\n"))
	s.Close(event.Client, end)
	s.Finish(end)
	evs = evs[:n:n] // what came after Finish is checked by the caller
	return evs
}

// fuzzOptions derives decoder options from the fuzzer's mode octet: bit 0
// a small MaxLine (64), bit 1 implicit TLS on both legs, bit 2
// RevealSecrets.
func fuzzOptions(mode byte) decode.Options {
	opt := decode.Options{Session: "f"}
	if mode&1 != 0 {
		opt.MaxLine = 64
	}
	if mode&2 != 0 {
		opt.ClientTLS, opt.ServerTLS = true, true
	}
	opt.RevealSecrets = mode&4 != 0
	return opt
}

// FuzzFeed decodes an arbitrary interleaving of client and server chunks
// and checks that the decoder does not panic and that its events are
// well-formed (see wellFormed).
func FuzzFeed(f *testing.F) {
	for i, s := range seedInputs(f) {
		f.Add(s, byte(0))
		f.Add(s, byte(1+i%7))
	}
	f.Add([]byte{0x80 | 4, '+', 'O', 'K', '\n', 3, 'N', 'O', 'O', 0x7f, 0xff}, byte(1))
	f.Fuzz(func(t *testing.T, data []byte, mode byte) {
		steps := fuzzSteps(data)
		evs := watchdog(t, func() []*event.Event { return feedAll(fuzzOptions(mode), steps) })
		for _, p := range wellFormed(evs, "f") {
			t.Fatalf("%s\nevents:\n%s", p, dump(evs))
		}
	})
}

// watchdog runs f and fails the test if it takes more than a few
// seconds, so that the fuzzer saves an input that makes the decoder hang
// (instead of dying with "context deadline exceeded").
func watchdog(t *testing.T, f func() []*event.Event) []*event.Event {
	t.Helper()
	done := make(chan []*event.Event, 1)
	go func() { done <- f() }()
	select {
	case evs := <-done:
		return evs
	case <-time.After(5 * time.Second):
		buf := make([]byte, 1<<16)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("the decoder did not return within 5 s (hang):\n%s", buf)
		return nil
	}
}

// knownSplitBugs are rules whose reports depend on how the input was
// chunked, because of known decoder bugs (see the playbook cases with
// knownBug). FuzzFeedSplit ignores differences that only concern them.
var knownSplitBugs = map[string]string{}

// FuzzFeedSplit checks that the events do not depend on how the bytes
// were chunked: the fuzz input's chunking, every write fed byte by byte,
// and consecutive writes of one side merged must all give the same
// events.
func FuzzFeedSplit(f *testing.F) {
	for _, s := range seedInputs(f) {
		f.Add(s, byte(0))
	}
	f.Fuzz(func(t *testing.T, data []byte, mode byte) {
		if len(data) > 4096 {
			return
		}
		steps := fuzzSteps(data)
		opt := fuzzOptions(mode)
		ref := feedAll(opt, steps)
		for mode, st := range map[string][]transcript.Step{"byte by byte": bytewise(steps), "merged writes": coalesce(steps)} {
			got := feedAll(opt, st)
			d := diffKeys(keys(ref), keys(got))
			if d == "" {
				continue
			}
			if bug := splitBugOnly(ref, got); bug != "" {
				t.Skip("known bug: " + bug)
			}
			t.Fatalf("%s: events differ from the fuzz chunking: %s\ninput steps:\n%s\nreference:\n%s%s:\n%s",
				mode, d, transcript.Format(steps), dump(ref), mode, dump(got))
		}
	})
}

// splitBugOnly reports whether a and b differ only in violations of
// knownSplitBugs, and names the bug if so.
func splitBugOnly(a, b []*event.Event) string {
	var bug string
	strip := func(evs []*event.Event) []string {
		var out []string
		for _, e := range evs {
			if why, ok := knownSplitBugs[e.Rule]; ok && e.Type == event.Violation {
				bug = why
				continue
			}
			c := *e
			c.Seq = 0
			out = append(out, key(&c))
		}
		return out
	}
	if diffKeys(strip(a), strip(b)) != "" {
		return ""
	}
	return bug
}

// TestMemoryBounded feeds 3 MiB without a line end on each side, in both
// line mode and a RETR body, and checks that the heap does not grow with
// the input (MaxLine is 64 KiB).
func TestMemoryBounded(t *testing.T) {
	const total = 3 << 20
	chunk := []byte(strings.Repeat("x", 32<<10))
	for _, tc := range []struct {
		name   string
		prefix string
		side   event.Side
		rule   string // reported once the line ends
	}{
		{"client line", "S: +OK ready\n", event.Client, "POP3-LINE-010"},
		{"server line", "S: +OK ready\nC: NOOP\n", event.Server, "POP3-LINE-010"},
		{"server greeting", "", event.Server, "POP3-LINE-010"},
		{"RETR body line", loggedIn + "C: RETR 1\nS: +OK\n", event.Server, "POP3-LINE-006"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rules := map[string]int{}
			s := decode.New(decode.Options{Session: "m", MaxLine: decode.DefaultMaxLine}, func(e *event.Event) { rules[e.Rule]++ })
			transcript.Replay(transcript.MustParse(tc.prefix), s, t0)
			// Warm up so that the line buffer reaches its cap before measuring.
			for i := 0; i < 4; i++ {
				s.Feed(tc.side, t0, chunk)
			}
			before := heapInUse()
			for fed := 0; fed < total; fed += len(chunk) {
				s.Feed(tc.side, t0, chunk)
			}
			after := heapInUse()
			runtime.KeepAlive(s)
			if grow := int64(after) - int64(before); grow > 2<<20 {
				t.Errorf("heap grew by %d KiB while feeding %d MiB", grow>>10, total>>20)
			}
			s.Feed(tc.side, t0, []byte("\r\n.\r\n"))
			s.Finish(t0)
			if rules[tc.rule] != 1 {
				t.Errorf("%s reported %d times, want once", tc.rule, rules[tc.rule])
			}
		})
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}
