package decode_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/popscope/popscope/decode"
	"github.com/popscope/popscope/decode/transcript"
	"github.com/popscope/popscope/event"
)

var update = flag.Bool("update", false, "rewrite the .golden files of TestGolden")

// transcriptDir holds realistic sessions (NAME.txt) and the events they
// decode to (NAME.golden, JSON Lines).
const transcriptDir = "../testdata/transcripts"

// goldenEvents renders events as JSON Lines.
func goldenEvents(evs []*event.Event) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	for _, e := range evs {
		if err := enc.Encode(e); err != nil {
			panic(err)
		}
	}
	return b.Bytes()
}

// TestGolden decodes every transcript in testdata/transcripts (session
// "golden", step i at t0 + i ms, Finish 1 ms after the last step) and
// compares the events with the .golden file next to it. Refresh with
//
//	go test ./decode -run Golden -update
func TestGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(transcriptDir, "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no transcripts in " + transcriptDir)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".txt")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			steps, err := transcript.Parse(src)
			if err != nil {
				t.Fatal(err)
			}
			opt := decode.Options{Session: "golden"}
			evs := run(opt, steps)
			for _, p := range wellFormed(evs, "golden") {
				t.Errorf("malformed event stream: %s", p)
			}
			// The golden must not depend on how the bytes were chunked.
			if d := diffKeys(keys(evs), keys(run(opt, bytewise(steps)))); d != "" {
				t.Errorf("fed byte by byte the events differ: %s", d)
			}
			got := goldenEvents(evs)
			golden := strings.TrimSuffix(file, ".txt") + ".golden"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./decode -run Golden -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs (refresh with go test ./decode -run Golden -update if the change is intended):\n%s", golden, lineDiff(want, got))
			}
		})
	}
}

// lineDiff describes where two JSON Lines files start to differ.
func lineDiff(want, got []byte) string {
	w := strings.Split(string(want), "\n")
	g := strings.Split(string(got), "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a != b {
			return "first difference at line " + strconv.Itoa(i+1) + ":\n-" + a + "\n+" + b
		}
	}
	return "(no line differs)"
}

// TestReplayClock checks that "# at:" directives reach the events: times
// and latencies come from the transcript's clock.
func TestReplayClock(t *testing.T) {
	steps := transcript.MustParse(greetS + "# at: +2s\nC: NOOP\n# at: +250ms\nS: +OK\n")
	var evs []*event.Event
	s := decode.New(decode.Options{Session: "c"}, func(e *event.Event) { evs = append(evs, e) })
	end := transcript.Replay(steps, s, t0)
	s.Finish(end)
	var resp *event.Event
	for _, e := range evs {
		if e.Type == event.Response {
			resp = e
		}
	}
	if resp == nil || resp.LatencyMS != 250 || !resp.Time.Equal(t0.Add(2250*time.Millisecond)) {
		t.Fatalf("response %+v, want latency 250 ms at t0+2.25s", resp)
	}
	if last := evs[len(evs)-1]; !last.Time.Equal(t0.Add(2250 * time.Millisecond)) {
		t.Errorf("final event at %v", last.Time.Sub(t0))
	}
}
