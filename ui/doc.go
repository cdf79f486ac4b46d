// Package ui is popscope's terminal UI: a live view of the sessions a
// proxy relays (or of a saved event stream, `popscope view FILE`), built
// on tview and tcell.
//
// The screen has a session list (one row per session: client, user,
// state, TLS per leg, commands, bytes, violations by severity, duration,
// open or closed; sortable), the transcript of the selected session
// (client and server lines coloured apart, timestamps, per-command
// latency, multi-line replies folded to "RETR 3 → 4,218 octets, 87
// lines", violations marked on the exact line), a detail pane that
// explains the selected violation from the rules catalog (ID, severity,
// side, RFC reference, detection text), a status bar and a footer of key
// hints. A filter language (package model: FilterTerms) narrows sessions
// and lines; "/" searches as you type; follow mode keeps the newest in
// view and pauses when you scroll up. Key bindings are one table
// (bindings) that renders both the "?" help overlay and the footer.
//
// The data model lives in ui/model and knows no widget; this package only
// draws it and turns keys into actions.
//
// # Usage
//
//	u := ui.New(ui.Options{Live: true, Title: "127.0.0.1:1110 → pop.example.org:110"})
//	bus.Subscribe(u.Name(), u, event.WithPolicy(event.DropOldest))
//	err := u.Run() // until the user quits; u.Done() is closed then
//
// # Concurrency
//
// UI is an event.Observer. Observe is called on the bus's goroutine for
// this subscriber; it appends the event to the model under the model's
// mutex (microseconds) and flags a redraw without blocking. A separate
// goroutine turns flags into at most 30 redraws per second through
// tview's QueueUpdateDraw, so a flood of events costs a bounded number of
// frames and never holds up the bus. Everything that reads the model — a
// frame being drawn, a key or mouse event being handled — runs on tview's
// goroutine with the model's mutex held (the root primitive takes it), so
// a frame is always consistent. When the bus drops events for the UI
// (its queue was full), the model counts them and the status bar says so.
//
// Retention is bounded per session (lines, events) and in sessions; what
// is let go is shown as a note in the transcript or the list title.
package ui
