package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	"github.com/popscope/popscope/decode"
	"github.com/popscope/popscope/decode/transcript"
	"github.com/popscope/popscope/event"
)

func init() {
	register(&command{name: "check", summary: "run the decoder and rules offline over transcripts and recordings; exit 1 on error-severity violations", run: runCheck})
}

func runCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print violations as JSON Lines (events schema, docs/events.md)")
	all := fs.Bool("all", false, "with --json: print every event, not only violations")
	minSev := fs.String("severity", "info", "show violations of at least this `SEVERITY` (info, warning, error)")
	reveal := fs.Bool("reveal-secrets", false, "do not redact passwords and SASL data in the output")
	endpoint := fs.String("endpoint", "transcript", "upstream name used as the cross-session key (files checked together share it)")
	fs.Usage = func() {
		fmt.Fprint(stderr, joinLines(
			"usage: popscope check [flags] FILE...",
			"",
			"Decodes each FILE as one POP3 session and reports rule violations. FILE is a",
			"C:/S: transcript (the form of RFC 1939's examples; see decode/transcript), one",
			"line sent per C:/S: line, CRLF appended unless the text has an escaped \\n,",
			"or a recording made by 'popscope proxy --record' (docs/recording.md), decoded",
			"with its recorded times; FILE:LINE then names the recording's data record.",
			"The format is told from the first line.",
			"Files given together are judged as consecutive sessions of one mailbox, so",
			"cross-session rules (UIDL-004, SESS-*) apply across them.",
			"",
			"Exit status: 0 no error-severity violation, 1 at least one, 2 unusable input.",
			"",
			"flags:"))
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "popscope check: no FILE given")
		fs.Usage()
		return 2
	}
	min := event.Severity(*minSev)
	if min.Rank() == 0 {
		fmt.Fprintf(stderr, "popscope check: --severity %q: want info, warning or error\n", *minSev)
		return 2
	}
	store := decode.NewStore(0, 0, 0)
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	errorsSeen, shown := 0, 0
	counts := map[event.Severity]int{}
	start := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, name := range fs.Args() {
		src, err := os.ReadFile(name)
		if err != nil {
			fmt.Fprintf(stderr, "popscope check: %v\n", err)
			return 2
		}
		var evs []*event.Event
		var locate func(event.Side, int64) int
		opts := decode.Options{Session: name, RevealSecrets: *reveal, Store: store, Endpoint: *endpoint}
		if isRecordingFile(src) {
			// A recording (popscope proxy --record): its own times and TLS (record.go).
			if evs, locate, err = decodeRecording(name, src, opts, stderr); err != nil {
				fmt.Fprintf(stderr, "popscope check: %s: %v\n", name, err)
				return 2
			}
		} else {
			steps, err := transcript.Parse(src)
			if err != nil {
				fmt.Fprintf(stderr, "popscope check: %s: %v\n", name, err)
				return 2
			}
			if len(steps) == 0 {
				fmt.Fprintf(stderr, "popscope check: %s: no C:/S: lines: not a transcript or recording\n", name)
				return 2
			}
			locate = newLineMap(steps).line
			s := decode.New(opts, func(e *event.Event) { evs = append(evs, e) })
			// Sessions of several files follow each other, an hour apart.
			at := start.Add(time.Duration(i) * time.Hour)
			end := transcript.Replay(transcript.Spread(steps, time.Millisecond), s, at)
			s.Close(event.Client, end)
			s.Close(event.Server, end)
			s.Finish(end)
		}
		for _, e := range evs {
			if e.Type == event.Violation {
				counts[e.Severity]++
				if e.Severity == event.Error {
					errorsSeen++
				}
			}
			if *asJSON {
				if *all || (e.Type == event.Violation && e.Severity.Rank() >= min.Rank()) {
					enc.Encode(e)
				}
				continue
			}
			if e.Type != event.Violation || e.Severity.Rank() < min.Rank() {
				continue
			}
			shown++
			loc := name
			if l := locate(e.By, e.Offset); l > 0 {
				loc = fmt.Sprintf("%s:%d", name, l)
			}
			fmt.Fprintf(stdout, "%s: %s %s (%s): %s\n", loc, e.Severity, e.Rule, e.By, e.Detail)
		}
	}
	if !*asJSON {
		fmt.Fprintf(stdout, "%d file(s): %d error, %d warning, %d info\n", fs.NArg(), counts[event.Error], counts[event.Warning], counts[event.Info])
	}
	if errorsSeen > 0 {
		return 1
	}
	return 0
}

// lineMap maps a byte offset in one side's stream to the transcript line
// that sent it.
type lineMap struct {
	starts map[event.Side][]int64
	lines  map[event.Side][]int
}

func newLineMap(steps []transcript.Step) *lineMap {
	m := &lineMap{starts: map[event.Side][]int64{}, lines: map[event.Side][]int{}}
	off := map[event.Side]int64{}
	for _, st := range steps {
		if st.Close {
			continue
		}
		m.starts[st.Side] = append(m.starts[st.Side], off[st.Side])
		m.lines[st.Side] = append(m.lines[st.Side], st.Line)
		off[st.Side] += int64(len(st.Data))
	}
	return m
}

func (m *lineMap) line(side event.Side, off int64) int {
	starts := m.starts[side]
	i := sort.Search(len(starts), func(i int) bool { return starts[i] > off }) - 1
	if i < 0 {
		return 0
	}
	return m.lines[side][i]
}
