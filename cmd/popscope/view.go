package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/popscope/popscope/ui"
	"github.com/popscope/popscope/ui/model"
)

func init() {
	register(&command{name: "view", summary: "browse a saved event stream (JSON Lines) in the terminal UI", run: runView})
}

func runView(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("view", flag.ContinueOnError)
	fs.SetOutput(stderr)
	maxLines := fs.Int("max-lines", 0, "keep at most `N` transcript lines per session (default 2000)")
	maxSessions := fs.Int("max-sessions", 0, "keep at most `N` sessions (default 5000; the oldest closed go first)")
	maxEvents := fs.Int("max-events", 0, "keep at most `N` events over all sessions (default 200000, about 100 MB)")
	exportDir := fs.String("export-dir", ".", "directory exports (e, E) are written to by default")
	fs.Usage = func() {
		fmt.Fprint(stderr, joinLines(
			"usage: popscope view [flags] FILE",
			"",
			"Shows a saved event stream — what `popscope proxy --events FILE` writes, one JSON",
			"object per line — in the same terminal UI as a live proxy: sessions, transcripts,",
			"violations with their rule explanations, filters, search and export. FILE \"-\" reads",
			"standard input (the UI itself talks to the terminal). Press ? in the UI for help.",
			"",
			"flags:"))
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "popscope view: one FILE is required")
		fs.Usage()
		return 2
	}
	name := fs.Arg(0)
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
	u := ui.New(ui.Options{Title: "view " + name, MaxLines: *maxLines, MaxSessions: *maxSessions,
		MaxEvents: 2 * *maxLines, MaxTotalEvents: *maxEvents, ExportDir: *exportDir})
	loaded := make(chan string, 1)
	go func() {
		n, bad, err := model.ReadEvents(in, 0, u.Observe)
		msg := fmt.Sprintf("loaded %d events from %s", n, name)
		if bad > 0 {
			msg += fmt.Sprintf("; %d lines were not events and were skipped", bad)
		}
		if err != nil {
			msg += fmt.Sprintf("; stopped reading: %v", err)
		}
		u.Logf("%s", msg)
		loaded <- msg
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
