package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/popscope/popscope/decode"
	"github.com/popscope/popscope/event"
	"github.com/popscope/popscope/exporters/record"
	"github.com/popscope/popscope/ui"
	"github.com/popscope/popscope/ui/model"
)

func init() {
	register(&command{name: "view", summary: "browse a saved event stream (JSON Lines) or recordings in the terminal UI", run: runView})
}

func runView(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("view", flag.ContinueOnError)
	fs.SetOutput(stderr)
	maxLines := fs.Int("max-lines", 0, "keep at most `N` transcript lines per session (default 2000)")
	maxSessions := fs.Int("max-sessions", 0, "keep at most `N` sessions (default 5000; the oldest closed go first)")
	maxEvents := fs.Int("max-events", 0, "keep at most `N` events over all sessions (default 200000, about 100 MB)")
	maxMessage := fs.Int("max-message", ui.DefaultMessageCap>>10, "recordings: keep at most `KiB` of each retrieved message for the message view")
	maxMessages := fs.Int("max-messages", ui.DefaultMessagesTotal>>20, "recordings: keep at most `MiB` of retrieved messages over all")
	endpoint := fs.String("endpoint", "transcript", "recordings: upstream name used as the cross-session key (as popscope check)")
	exportDir := fs.String("export-dir", ".", "directory exports (e, E) are written to by default")
	fs.Usage = func() {
		fmt.Fprint(stderr, joinLines(
			"usage: popscope view [flags] FILE...",
			"",
			"Shows saved sessions in the same terminal UI as a live proxy: sessions, transcripts,",
			"violations with their rule explanations, filters, search and export. FILE is",
			"  - an event stream — what `popscope proxy --events FILE` writes, one JSON object",
			"    per line; \"-\" reads standard input (the UI itself talks to the terminal); or",
			"  - a recording — what `popscope proxy --record DIR` writes (docs/recording.md),",
			"    decoded as `popscope check` does; the message view (m on a RETR or TOP reply)",
			"    then shows the retrieved message: headers, MIME parts and body.",
			"The format is told from the first line. Press ? in the UI for help.",
			"",
			"flags:"))
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "popscope view: FILE is required")
		fs.Usage()
		return 2
	}
	if *maxMessage <= 0 || *maxMessages <= 0 {
		fmt.Fprintln(stderr, "popscope view: --max-message and --max-messages must be positive")
		return 2
	}
	// Open every file first: a typo is reported before the screen is taken.
	type source struct {
		name string
		br   *bufio.Reader
		rec  bool
	}
	var srcs []source
	anyRec := false
	for _, name := range fs.Args() {
		var in io.Reader = os.Stdin
		if name != "-" {
			f, err := os.Open(name)
			if err != nil {
				fmt.Fprintf(stderr, "popscope view: %v\n", err)
				return 1
			}
			defer f.Close()
			in = f
		}
		br := bufio.NewReaderSize(in, 64<<10)
		isRec := record.IsRecording(firstLine(br))
		anyRec = anyRec || isRec
		srcs = append(srcs, source{name, br, isRec})
	}
	title := "view " + strings.Join(fs.Args(), " ")
	if len(title) > 60 {
		title = fmt.Sprintf("view %s and %d more", fs.Arg(0), fs.NArg()-1)
	}
	opt := ui.Options{Title: title, MaxLines: *maxLines, MaxSessions: *maxSessions,
		MaxEvents: 2 * *maxLines, MaxTotalEvents: *maxEvents, ExportDir: *exportDir}
	if anyRec {
		opt.Messages = ui.NewMessages(*maxMessage<<10, *maxMessages<<20)
	}
	u := ui.New(opt)
	loaded := make(chan string, 1)
	go func() {
		store := decode.NewStore(0, 0, 0)
		var msgs []string
		for _, s := range srcs {
			var msg string
			if s.rec {
				msg = loadRecording(s.name, s.br, store, *endpoint, opt.Messages, u.Observe, u.Logf)
			} else {
				n, bad, err := model.ReadEvents(s.br, 0, u.Observe)
				msg = fmt.Sprintf("loaded %d events from %s", n, s.name)
				if bad > 0 {
					msg += fmt.Sprintf("; %d lines were not events and were skipped", bad)
				}
				if err != nil {
					msg += fmt.Sprintf("; stopped reading: %v", err)
				}
			}
			u.Logf("%s", msg)
			msgs = append(msgs, msg)
		}
		if opt.Messages != nil {
			n, cut, size := opt.Messages.Stats()
			m := fmt.Sprintf("%d retrieved message(s) kept for the message view (%s bytes)", n, model.Thousands(int64(size)))
			if cut > 0 {
				m += fmt.Sprintf("; %d truncated by --max-message/--max-messages", cut)
			}
			u.Logf("%s", m)
			msgs = append(msgs, m)
		}
		loaded <- strings.Join(msgs, "\npopscope view: ")
	}()
	if err := u.Run(); err != nil {
		fmt.Fprintf(stderr, "popscope view: terminal UI: %v\n", err)
		return 1
	}
	select {
	case msg := <-loaded:
		fmt.Fprintf(stderr, "popscope view: %s\n", msg)
	default:
	}
	return 0
}

// firstLine peeks at the first line of br (at most its buffer), without
// consuming it and without waiting for more than that line.
func firstLine(br *bufio.Reader) []byte {
	n := 1
	for {
		b, err := br.Peek(n)
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			return b[:i]
		}
		if err != nil {
			return b
		}
		n = max(br.Buffered(), len(b)) + 1
		if n > br.Size() {
			b, _ := br.Peek(br.Buffered())
			return b
		}
	}
}

// loadRecording decodes a recording as `popscope check` does
// (decodeRecording), hands the events to observe, framed by the
// recording's session start and end, and cuts the retrieved messages out
// of the recorded server bytes into msgs (at the offsets of the
// decoder's RETR/TOP replies). It returns a summary line; diagnostics go
// to logf.
func loadRecording(name string, r io.Reader, store *decode.Store, endpoint string, msgs *ui.Messages,
	observe func(*event.Event), logf func(string, ...any)) string {
	src, err := io.ReadAll(r)
	if err != nil {
		return fmt.Sprintf("%s: %v", name, err)
	}
	var warn bytes.Buffer
	opts := decode.Options{Session: name, Store: store, Endpoint: endpoint}
	evs, _, err := decodeRecording(name, src, opts, &warn)
	for _, ln := range strings.Split(strings.TrimSpace(warn.String()), "\n") {
		if ln = strings.TrimPrefix(ln, "popscope check: "); ln != "" {
			logf("%s", ln)
		}
	}
	if err != nil {
		return fmt.Sprintf("%s: not loaded: %v", name, err)
	}
	var rec *record.Recording
	if name == "-" {
		rec, err = record.Read(bytes.NewReader(src))
	} else {
		rec, err = record.ReadFile(name)
	}
	src = nil
	if err != nil {
		return fmt.Sprintf("%s: %v", name, err)
	}
	if msgs != nil {
		x := msgs.Extract(name)
		x.WantEvents(evs)
		for _, r := range rec.Records {
			if r.Kind == record.KindData && r.Side == event.Server {
				x.Server(r.Data)
			}
		}
		x.Close()
	}
	// The decoder reports the protocol; the recorded proxy events say
	// who connected and how the session ended.
	var start, end []*event.Event
	for _, e := range rec.Events() {
		switch e.Type {
		case event.SessionStart, event.Connected:
			c := *e
			c.Session = name
			start = append(start, &c)
		case event.SessionEnd:
			c := *e
			c.Session = name
			end = append(end, &c)
		}
	}
	if len(start) == 0 {
		start = append(start, &event.Event{Type: event.SessionStart, Session: name, Time: rec.Header.Start,
			Client: rec.Header.Client, Upstream: rec.Header.Upstream})
	}
	if len(end) == 0 && rec.Complete {
		end = append(end, &event.Event{Type: event.SessionEnd, Session: name, Time: rec.Header.Start.Add(rec.Duration()),
			Reason: "recording ended", DurationMS: event.Millis(rec.Duration())})
	}
	n := 0
	for _, list := range [][]*event.Event{start, evs, end} {
		for _, e := range list {
			observe(e)
			n++
		}
	}
	return fmt.Sprintf("loaded %s: %s; %d events (decoded as popscope check does)", name, rec.Summary(), n)
}
