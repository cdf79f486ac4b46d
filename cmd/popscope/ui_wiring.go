package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/popscope/popscope/event"
	"github.com/popscope/popscope/ui"
)

// uiWanted reports whether proxy and demo should show the terminal UI:
// stdout is a terminal, and neither --no-ui nor --quiet was given, and the
// event stream does not go to stdout (--events -).
func (o *outputFlags) uiWanted(stdout io.Writer) bool {
	if o.noUI || o.quiet || o.events == "-" {
		return false
	}
	f, ok := stdout.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// startUI shows the terminal UI for a running proxy, if uiWanted. It
// subscribes the UI to bus under the name "ui" (dropping the oldest
// events when it falls behind, never slowing the relay), turns the plain
// transcript off, and runs the UI on its own goroutine. Call it before
// out.observers. It returns
//
//   - a context that also ends when the user quits: serve the proxy with it;
//   - the writer for the proxy's own log lines: while the UI runs they go
//     to its status bar (stderr would tear the screen) and are printed to
//     stderr once it has stopped;
//   - finish, to call (once) after the proxy has stopped and the bus is
//     closed: it stops the UI if it still runs, restores the terminal and
//     prints what was logged.
//
// When the UI is not wanted it returns ctx, stderr and a no-op, so the
// caller needs no branch:
//
//	ctx, stderr, finishUI := out.startUI(ctx, bus, "proxy "+ln.Addr().String()+" → "+upstream, stdout, stderr)
//	defer finishUI()
func (o *outputFlags) startUI(ctx context.Context, bus *event.Bus, title string, stdout, stderr io.Writer) (context.Context, io.Writer, func()) {
	if !o.uiWanted(stdout) {
		return ctx, stderr, func() {}
	}
	u := ui.New(ui.Options{Live: true, Name: "ui", Title: title})
	bus.Subscribe(u.Name(), u, event.WithPolicy(event.DropOldest))
	o.quiet = true // the UI replaces the transcript
	ctx, cancel := context.WithCancel(ctx)
	lw := &uiLog{u: u}
	runErr := make(chan error, 1)
	go func() {
		err := u.Run()
		cancel() // the user quit: stop the proxy
		runErr <- err
	}()
	var once sync.Once
	finish := func() {
		once.Do(func() {
			u.Stop()
			err := <-runErr
			lw.detach(stderr)
			for _, l := range u.Logs() {
				fmt.Fprintln(stderr, l)
			}
			if err != nil {
				fmt.Fprintf(stderr, "popscope: terminal UI: %v (use --no-ui)\n", err)
			}
		})
	}
	return ctx, lw, finish
}

// uiLog is an io.Writer that hands complete lines to the UI's log, and
// after detach writes straight through.
type uiLog struct {
	mu      sync.Mutex
	u       *ui.UI
	partial []byte
	out     io.Writer // set by detach
}

func (w *uiLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.out != nil {
		return w.out.Write(p)
	}
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		w.u.Logf("%s", w.partial[:i])
		w.partial = w.partial[i+1:]
	}
	if len(w.partial) > 4096 {
		w.u.Logf("%s", w.partial)
		w.partial = nil
	}
	return len(p), nil
}

func (w *uiLog) detach(out io.Writer) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.partial) > 0 {
		w.u.Logf("%s", w.partial)
		w.partial = nil
	}
	w.out = out
}
