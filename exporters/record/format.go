package record

import (
	"bytes"
	"time"

	"github.com/popscope/popscope/event"
)

// Format identification. Version changes only for incompatible changes;
// new record kinds and new fields may appear within a version and readers
// skip what they do not know. Version 1 holds the bytes base64-encoded in
// the data records; version 2 (written by default) holds them raw in a
// data file next to the index (DataFileName), the data records naming
// offset and length. Readers read both.
const (
	FormatName = "popscope-recording"
	Version    = 2
)

// Placeholder replaces a secret in the recorded client bytes. It is the
// same text the decoder puts in event args, it is not base64 (so a
// redacted SASL line can never be mistaken for data), and it contains no
// line end, so the line structure is kept.
const Placeholder = "<redacted>"

// Header is the first line of a recording.
type Header struct {
	Format   string    `json:"format"`
	Version  int       `json:"version"`
	Session  string    `json:"session"`
	Client   string    `json:"client,omitempty"`
	Upstream string    `json:"upstream,omitempty"`
	Start    time.Time `json:"start"`
	Popscope string    `json:"popscope,omitempty"`
	// Redacted says that secrets in the client bytes were replaced by
	// Placeholder (the default; false with --record-secrets).
	Redacted    bool   `json:"redacted"`
	Placeholder string `json:"placeholder,omitempty"`
	// BufferLimit is the per-session queue bound the recorder ran with.
	BufferLimit int64 `json:"buffer_limit,omitempty"`
}

// Kind says what a Record holds.
type Kind uint8

// Record kinds.
const (
	KindData     Kind = iota + 1 // Side sent Data
	KindEvent                    // Event
	KindGap                      // Lost bytes of Side (and/or LostEvents events) were not recorded here
	KindEnd                      // the session ended (End)
	KindUnknown                  // a record of a later format revision; skipped by consumers
	kindSentinel                 // keep last
)

func (k Kind) String() string {
	switch k {
	case KindData:
		return "data"
	case KindEvent:
		return "event"
	case KindGap:
		return "gap"
	case KindEnd:
		return "end"
	case KindUnknown:
		return "unknown"
	}
	return "invalid"
}

// Record is one line of a recording after the header.
type Record struct {
	Kind Kind
	// T is the time since Header.Start (data, gap, end records; for
	// events, Event.Time minus Header.Start).
	T    time.Duration
	Side event.Side
	Data []byte
	// Event is set for KindEvent.
	Event *event.Event
	// Lost counts bytes of Side not recorded (KindGap); LostEvents counts
	// events not recorded.
	Lost       int64
	LostEvents int64
	End        *End
	// Line is the record's line number in the file (the header is line 1).
	Line int
}

// End is the content of the final record.
type End struct {
	C2S        int64  `json:"c2s"`                   // client bytes the recorder received
	S2C        int64  `json:"s2c"`                   // server bytes the recorder received
	LostC2S    int64  `json:"lost_c2s,omitempty"`    // of them not recorded (gaps)
	LostS2C    int64  `json:"lost_s2c,omitempty"`    // likewise for the server
	LostEvents int64  `json:"lost_events,omitempty"` // events not recorded
	Redactions int64  `json:"redactions,omitempty"`  // secrets replaced by the placeholder
	Error      string `json:"error,omitempty"`       // a write error that ended recording early
}

// wireRecord is the JSON shape of every non-header line; which fields are
// set tells the kind.
type wireRecord struct {
	Type      string `json:"type"` // events only
	T         *int64 `json:"t"`
	D         string `json:"d"`
	B64       []byte `json:"b64"` // version 1
	Off       *int64 `json:"off"` // version 2: data file offset
	Len       *int64 `json:"len"` // version 2: byte count
	Gap       int64  `json:"gap"`
	GapEvents int64  `json:"gap_events"`
	End       *End   `json:"end"`
}

// sideCode is the "d" value of a side.
func sideCode(s event.Side) byte {
	if s == event.Server {
		return 's'
	}
	return 'c'
}

func parseSide(d string) event.Side {
	switch d {
	case "c":
		return event.Client
	case "s":
		return event.Server
	}
	return event.NoSide
}

// IsRecording reports whether first, the first line of a file, is a
// recording header (checked by its format field, so it works on any
// field order).
func IsRecording(first []byte) bool {
	first = bytes.TrimSpace(first)
	return len(first) > 0 && first[0] == '{' && bytes.Contains(first, []byte(`"`+FormatName+`"`)) &&
		bytes.Contains(first, []byte(`"format"`))
}
