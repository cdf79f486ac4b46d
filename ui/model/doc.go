// Package model is the terminal UI's data model: what popscope's events
// say about each session, kept in a form the widgets can draw quickly. It
// knows the event model and the rules catalog; it knows no widget, no
// terminal and no clock (times come from the events).
//
// A Model is fed events with Apply (it does not subscribe to a bus
// itself: the ui package's UI is the event.Observer and forwards to it).
// For each session it keeps:
//
//   - facts for the session list: client, user (never a password), state,
//     TLS per leg, commands, -ERR replies, bytes each way (known at the
//     end), violations by severity, start, end, open or closed;
//   - transcript lines: one per command, reply, SASL line, lifecycle
//     event, with multi-line replies folded to a summary
//     ("RETR 3 → 4,218 octets, 87 lines") and every violation attached to
//     the line it is about (by side and byte offset; see Session.Lines);
//   - the events themselves, for export as JSON Lines.
//
// Retention is bounded: at most Options.MaxLines lines and
// Options.MaxEvents events per session and Options.MaxSessions sessions.
// What is let go is counted (Session.DroppedLines, Model.EvictedSessions)
// so that the UI can say so. Events the bus dropped for the UI show as a
// gap line in the session's transcript (sequence numbers jump) and as a
// total (Model.Lost).
//
// # Filters
//
// ParseFilter reads the filter language of the UI: space-separated terms
// that must all hold. See FilterTerms for the list; a Filter matches
// sessions (MatchSession) and transcript lines (MatchLine).
//
// # Concurrency
//
// A Model is safe for concurrent use in one narrow way: Apply takes the
// model's mutex for the time it takes to append one event. Everything a
// reader touches (Sessions, Session fields, Lines) may change under Apply,
// so readers hold the mutex for the whole read: Lock/Unlock, or Read. The
// UI holds it while it draws one frame or handles one key.
package model
