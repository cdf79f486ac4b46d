package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/popscope/popscope/decode"
	"github.com/popscope/popscope/decode/transcript"
	"github.com/popscope/popscope/event"
	"github.com/popscope/popscope/exporters/record"
	"github.com/popscope/popscope/proxy"
)

func init() {
	register(&command{name: "record", summary: "inspect session recordings (popscope proxy --record): info, transcript", run: runRecord})
}

// recorderAdapter gives a *record.Recorder the proxy.Recorder signature
// (Go has no covariant return types).
type recorderAdapter struct{ r *record.Recorder }

func (a recorderAdapter) Open(id string, start time.Time, client, upstream string) proxy.SessionRecorder {
	return a.r.Open(id, start, client, upstream)
}

var _ proxy.SessionRecorder = (*record.Session)(nil)

// recordFlags are the recording options of `popscope proxy`.
type recordFlags struct {
	dir       string
	secrets   bool
	bufferMiB int
}

func (f *recordFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.dir, "record", "", "record every session to its own file in `DIR` (created 0700; files 0600; docs/recording.md)")
	fs.BoolVar(&f.secrets, "record-secrets", false, "DANGER: keep passwords and SASL data in recordings (default: redacted)")
	fs.IntVar(&f.bufferMiB, "record-buffer", record.DefaultBufferLimit>>20, "bound each session's recording queue to `MiB`; beyond it data is dropped and marked as a gap, the relay never waits")
}

// open returns the Recorder the flags ask for, or nil.
func (f *recordFlags) open(stderr io.Writer) (*record.Recorder, error) {
	if f.dir == "" {
		if f.secrets {
			return nil, errors.New("--record-secrets needs --record DIR")
		}
		return nil, nil
	}
	if f.bufferMiB <= 0 || f.bufferMiB > 4096 {
		return nil, fmt.Errorf("--record-buffer %d: want 1 to 4096 MiB", f.bufferMiB)
	}
	rec, err := record.New(record.Options{Dir: f.dir, RecordSecrets: f.secrets, Version: version, BufferLimit: f.bufferMiB << 20,
		Logf: func(format string, a ...any) { fmt.Fprintf(stderr, "popscope: "+format+"\n", a...) }})
	if err != nil {
		return nil, fmt.Errorf("--record: %w", err)
	}
	if f.secrets {
		fmt.Fprintln(stderr, "popscope: WARNING: --record-secrets is on: recordings hold passwords and SASL data in clear")
	}
	fmt.Fprintf(stderr, "popscope: recording sessions to %s\n", f.dir)
	return rec, nil
}

// closeRecorder waits (bounded) for the recordings to be complete and
// reports losses.
func closeRecorder(rec *record.Recorder, stderr io.Writer) {
	if rec == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := rec.Close(ctx); err != nil {
		fmt.Fprintf(stderr, "popscope: recordings: %v\n", err)
	}
	st := rec.Stats()
	if st.LostBytes > 0 || st.LostEvents > 0 {
		fmt.Fprintf(stderr, "popscope: recordings lost %d bytes and %d events in %d gaps (the disk did not keep up; marked in the files)\n",
			st.LostBytes, st.LostEvents, st.Gaps)
	}
	if st.Errors > 0 {
		fmt.Fprintf(stderr, "popscope: %d recordings could not be written\n", st.Errors)
	}
}

// ---- popscope record info | transcript ----

func runRecord(args []string, stdout, stderr io.Writer) int {
	usage := func(w io.Writer) {
		fmt.Fprint(w, joinLines(
			"usage: popscope record info FILE...        one summary line per recording",
			"       popscope record transcript FILE     the recording as a C:/S: transcript (decode/transcript)",
			"",
			"Recordings are written by 'popscope proxy --record DIR' (format: docs/recording.md).",
			"Use them with 'popscope check', 'popscope replay server|client' and 'popscope export pcap'."))
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) == 0 {
			usage(stderr)
			return 2
		}
		usage(stdout)
		return 0
	}
	sub, files := args[0], args[1:]
	if len(files) == 0 {
		fmt.Fprintf(stderr, "popscope record %s: no FILE given\n", sub)
		return 2
	}
	switch sub {
	case "info":
		code := 0
		for _, name := range files {
			rec, err := record.ReadFile(name)
			if err != nil {
				fmt.Fprintf(stderr, "popscope record: %v\n", err)
				code = 2
				continue
			}
			fmt.Fprintf(stdout, "%s: %s\n", name, rec.Summary())
		}
		return code
	case "transcript":
		if len(files) != 1 {
			fmt.Fprintln(stderr, "popscope record transcript: one FILE")
			return 2
		}
		rec, err := record.ReadFile(files[0])
		if err != nil {
			fmt.Fprintf(stderr, "popscope record: %v\n", err)
			return 2
		}
		steps := recordingSteps(rec)
		fmt.Fprintf(stdout, "# %s\n", rec.Summary())
		stdout.Write(transcript.Format(transcript.Lines(steps)))
		return 0
	}
	fmt.Fprintf(stderr, "popscope record: unknown subcommand %q\n", sub)
	usage(stderr)
	return 2
}

// recordingSteps turns data records into transcript steps, with the
// closes the session_end event implies.
func recordingSteps(rec *record.Recording) []transcript.Step {
	var steps []transcript.Step
	var endAt time.Duration
	reason := ""
	for _, r := range rec.Records {
		switch r.Kind {
		case record.KindData:
			steps = append(steps, transcript.Step{Side: r.Side, Data: r.Data, At: r.T})
		case record.KindEvent:
			if r.Event.Type == event.SessionEnd {
				reason = r.Event.Reason
			}
		case record.KindEnd:
			endAt = r.T
		}
	}
	if rec.Complete {
		first, second := event.Client, event.Server
		if strings.HasPrefix(reason, "server") {
			first, second = second, first
		}
		steps = append(steps, transcript.Step{Side: first, Close: true, At: endAt}, transcript.Step{Side: second, Close: true, At: endAt})
	}
	return steps
}

// isRecordingFile reports whether src starts with a recording header.
func isRecordingFile(src []byte) bool {
	first := src
	if i := bytes.IndexByte(src, '\n'); i >= 0 {
		first = src[:i]
	}
	return record.IsRecording(first)
}

// decodeRecording runs the decoder over a recording as `popscope check`
// does over a transcript: the recorded bytes with their recorded times,
// the recorded TLS handshakes at their place (a TLS-terminated session
// decodes as plaintext), the closes at the end. It returns the events
// and a function mapping a stream offset to the recording line of the
// data record that holds it.
func decodeRecording(name string, src []byte, opt decode.Options, stderr io.Writer) ([]*event.Event, func(event.Side, int64) int, error) {
	rec, err := record.ReadNamed(bytes.NewReader(src), name)
	if err != nil {
		return nil, nil, err
	}
	if rec.Torn != nil {
		fmt.Fprintf(stderr, "popscope check: %s: last line %d is incomplete (%d bytes; the recorder was stopped): ignored\n", name, rec.Torn.Line, rec.Torn.Bytes)
	}
	if !rec.Complete {
		fmt.Fprintf(stderr, "popscope check: %s: the recording has no end record: the session was cut short\n", name)
	}
	if rec.Header.Redacted {
		// Placeholders would look like broken SASL messages and APOP
		// digests to the decoder: decode well-formed stand-ins instead.
		user := ""
		for _, e := range rec.Events() {
			if (e.Type == event.Login || e.Type == event.SessionEnd) && e.User != "" {
				user = e.User
				break
			}
		}
		rec = rec.WithStandIns(user)
	}
	if lc, ls, le := rec.Lost(); lc+ls > 0 {
		fmt.Fprintf(stderr, "popscope check: %s: the recording lost %d client and %d server bytes (and %d events): violations after the gap may be artefacts\n", name, lc, ls, le)
	}
	sawData := false
	for _, r := range rec.Records {
		if r.Kind == record.KindData {
			sawData = true
		}
		if r.Kind == record.KindEvent && r.Event.Type == event.TLS && r.Event.TLS != nil && r.Event.Error == "" {
			if r.Event.TLS.Mode != "passthrough" {
				opt.TerminateTLS = true
			}
			if r.Event.TLS.Mode == "implicit" && !sawData {
				if r.Event.TLS.Leg == event.Client {
					opt.ClientTLS = true
				} else {
					opt.ServerTLS = true
				}
			}
		}
	}
	var evs []*event.Event
	s := decode.New(opt, func(e *event.Event) { evs = append(evs, e) })
	starts := map[event.Side][]int64{}
	lines := map[event.Side][]int{}
	off := map[event.Side]int64{}
	start := rec.Header.Start
	sawData = false
	for _, r := range rec.Records {
		at := start.Add(r.T)
		switch r.Kind {
		case record.KindData:
			sawData = true
			starts[r.Side] = append(starts[r.Side], off[r.Side])
			lines[r.Side] = append(lines[r.Side], r.Line)
			off[r.Side] += int64(len(r.Data))
			s.Feed(r.Side, at, r.Data)
		case record.KindEvent:
			e := r.Event
			if e.Type == event.TLS && e.TLS != nil && sawData {
				info := *e.TLS
				if e.Error == "" {
					s.StartTLS(e.Time, &info)
				} else {
					s.TLSFailed(e.Time, &info, errors.New(e.Error), event.NoSide)
				}
			}
		}
	}
	steps := recordingSteps(rec)
	end := start.Add(rec.Duration())
	for _, st := range steps {
		if st.Close {
			s.Close(st.Side, start.Add(st.At))
			end = start.Add(st.At)
		}
	}
	s.Finish(end)
	locate := func(side event.Side, o int64) int {
		st := starts[side]
		i := sort.Search(len(st), func(i int) bool { return st[i] > o }) - 1
		if i < 0 {
			return 0
		}
		return lines[side][i]
	}
	return evs, locate, nil
}
