package record

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/popscope/popscope/event"
)

// MaxLine bounds one line of a recording (a version 1 data record holds
// at most 1 MiB of bytes, 1.4 MB in base64). Longer lines are an error.
const MaxLine = 4 << 20

// MaxData bounds the bytes of one version 2 data record (the writer
// writes at most 1 MiB). Larger "len" values are an error.
const MaxData = 4 << 20

// ErrNotRecording says the first line is not a recording header.
var ErrNotRecording = errors.New("record: not a popscope recording (no header line)")

// Error reports a malformed line.
type Error struct {
	Line int
	Err  error
}

func (e *Error) Error() string { return fmt.Sprintf("record: line %d: %v", e.Line, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

// Torn describes an incomplete last line: the writer was stopped (kill
// -9, a full disk) in the middle of a record. Everything before it is
// intact. In version 2 a data record naming bytes beyond the end of the
// data file (or a missing data file) is torn the same way: reading stops
// there.
type Torn struct {
	Line  int // line number of the partial line (of the data record)
	Bytes int // its length (of the data record's line, with its LF)
	// Data says the line is complete but the data file ends before the
	// bytes it names (Missing: there is no data file).
	Data    bool
	Missing bool
}

// Reader reads a recording record by record.
type Reader struct {
	br   *bufio.Reader
	hdr  Header
	line int
	buf  []byte
	torn *Torn
	err  error
	// The data file of a version 2 recording (nil: none given or found).
	data     io.ReaderAt
	dataSize int64
}

// NewReader reads the header from r and returns a Reader positioned at
// the first record. It has no data file: the data records of a version 2
// recording are torn (see Torn) unless NewReaderData or ReadFile is used.
func NewReader(r io.Reader) (*Reader, error) {
	return NewReaderData(r, nil)
}

// NewReaderData is NewReader for a recording whose data file (version 2)
// is data, an *os.File, a *bytes.Reader or anything with a Size() int64
// or Stat method; nil if there is none. Version 1 recordings ignore it.
func NewReaderData(r io.Reader, data io.ReaderAt) (*Reader, error) {
	rd := &Reader{br: bufio.NewReaderSize(r, 64<<10), data: data}
	rd.statData()
	line, err := rd.readLine()
	if err != nil {
		if errors.Is(err, io.EOF) {
			if rd.torn != nil {
				return nil, fmt.Errorf("%w: the header line is incomplete (%d bytes)", ErrNotRecording, rd.torn.Bytes)
			}
			return nil, fmt.Errorf("%w: empty file", ErrNotRecording)
		}
		return nil, err
	}
	if !IsRecording(line) {
		return nil, ErrNotRecording
	}
	if err := json.Unmarshal(line, &rd.hdr); err != nil {
		return nil, &Error{Line: 1, Err: fmt.Errorf("header: %v", err)}
	}
	if rd.hdr.Format != FormatName {
		return nil, ErrNotRecording
	}
	if rd.hdr.Version < 1 || rd.hdr.Version > Version {
		return nil, &Error{Line: 1, Err: fmt.Errorf("format version %d: this popscope reads version 1 to %d", rd.hdr.Version, Version)}
	}
	if rd.hdr.Redacted && rd.hdr.Placeholder == "" {
		rd.hdr.Placeholder = Placeholder
	}
	return rd, nil
}

// statData updates the size of the data file (it may still be growing).
func (r *Reader) statData() {
	switch d := r.data.(type) {
	case nil:
	case interface{ Stat() (os.FileInfo, error) }:
		if fi, err := d.Stat(); err == nil {
			r.dataSize = fi.Size()
		}
	case interface{ Size() int64 }:
		r.dataSize = d.Size()
	}
}

// Header returns the recording's header.
func (r *Reader) Header() Header { return r.hdr }

// Torn returns the incomplete last line, once Next has returned io.EOF;
// nil if the file ended with a complete line.
func (r *Reader) Torn() *Torn { return r.torn }

// readLine returns the next complete line without its LF. At the end of
// the input it returns io.EOF; a final line without LF is recorded as
// torn and not returned.
func (r *Reader) readLine() ([]byte, error) {
	r.buf = r.buf[:0]
	for {
		frag, err := r.br.ReadSlice('\n')
		if len(r.buf)+len(frag) > MaxLine {
			r.line++
			return nil, &Error{Line: r.line, Err: fmt.Errorf("line longer than %d bytes", MaxLine)}
		}
		r.buf = append(r.buf, frag...)
		switch {
		case err == nil:
			r.line++
			return r.buf[:len(r.buf)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if len(r.buf) > 0 {
				r.torn = &Torn{Line: r.line + 1, Bytes: len(r.buf)}
			}
			return nil, io.EOF
		default:
			return nil, err
		}
	}
}

// Next returns the next record, or io.EOF after the last one. Blank lines
// are skipped. A malformed line yields an *Error and ends reading.
func (r *Reader) Next() (Record, error) {
	if r.err != nil {
		return Record{}, r.err
	}
	for {
		line, err := r.readLine()
		if err != nil {
			r.err = err
			return Record{}, err
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		rec, err := r.parse(line)
		if errors.Is(err, errTornData) {
			r.torn = &Torn{Line: r.line, Bytes: len(line) + 1, Data: true, Missing: r.data == nil}
			r.err = io.EOF
			return Record{}, r.err
		}
		if err != nil {
			r.err = &Error{Line: r.line, Err: err}
			return Record{}, r.err
		}
		rec.Line = r.line
		return rec, nil
	}
}

func (r *Reader) parse(line []byte) (Record, error) {
	var w wireRecord
	if err := json.Unmarshal(line, &w); err != nil {
		return Record{}, err
	}
	var rec Record
	if w.T != nil {
		rec.T = time.Duration(*w.T)
	}
	switch {
	case w.Type != "":
		ev := new(event.Event)
		if err := json.Unmarshal(line, ev); err != nil {
			return Record{}, fmt.Errorf("event: %v", err)
		}
		rec.Kind, rec.Event = KindEvent, ev
		if !ev.Time.IsZero() {
			rec.T = ev.Time.Sub(r.hdr.Start)
		}
	case w.End != nil:
		if w.T == nil {
			return Record{}, errors.New(`end record without "t"`)
		}
		rec.Kind, rec.End = KindEnd, w.End
	case w.Gap != 0 || w.GapEvents != 0:
		if w.T == nil {
			return Record{}, errors.New(`gap record without "t"`)
		}
		if w.Gap < 0 || w.GapEvents < 0 {
			return Record{}, errors.New("negative gap")
		}
		rec.Kind, rec.Lost, rec.LostEvents = KindGap, w.Gap, w.GapEvents
		if w.Gap > 0 {
			if rec.Side = parseSide(w.D); rec.Side == event.NoSide {
				return Record{}, fmt.Errorf("gap record: side %q: want \"c\" or \"s\"", w.D)
			}
		}
	case w.D != "":
		if w.T == nil {
			return Record{}, errors.New(`data record without "t"`)
		}
		if rec.Side = parseSide(w.D); rec.Side == event.NoSide {
			return Record{}, fmt.Errorf("data record: side %q: want \"c\" or \"s\"", w.D)
		}
		rec.Kind, rec.Data = KindData, w.B64
		if w.Off != nil || w.Len != nil {
			if w.B64 != nil || w.Off == nil || w.Len == nil {
				return Record{}, errors.New(`data record: want "off" and "len", or "b64"`)
			}
			data, err := r.readData(*w.Off, *w.Len)
			if err != nil {
				return Record{}, err
			}
			rec.Data = data
		}
	default:
		rec.Kind = KindUnknown
	}
	return rec, nil
}

// errTornData: a data record names bytes the data file does not hold.
var errTornData = errors.New("data file too short")

// readData reads n bytes at off from the data file.
func (r *Reader) readData(off, n int64) ([]byte, error) {
	if off < 0 || n < 0 {
		return nil, errors.New("data record: negative offset or length")
	}
	if n > MaxData {
		return nil, fmt.Errorf("data record: length %d over %d", n, MaxData)
	}
	if n == 0 {
		return []byte{}, nil
	}
	if r.data == nil {
		return nil, errTornData
	}
	if off > r.dataSize-n {
		r.statData() // a recording still being written
		if off > r.dataSize-n {
			return nil, errTornData
		}
	}
	b := make([]byte, n)
	if k, err := r.data.ReadAt(b, off); k < len(b) {
		if err == nil || errors.Is(err, io.EOF) {
			return nil, errTornData
		}
		return nil, fmt.Errorf("data file: %w", err)
	}
	return b, nil
}

// Recording is a whole recording in memory.
type Recording struct {
	Header  Header
	Records []Record
	// Torn is the incomplete last line, if any (the writer was killed).
	Torn *Torn
	// Complete says that the end record was read.
	Complete bool
	// Unknown counts records of kinds this version does not know.
	Unknown int
}

// Read reads a whole recording without a data file (version 1; the data
// of a version 2 recording is reported torn: use ReadFile or ReadNamed). A
// torn last line is not an error (see Recording.Torn); a malformed
// complete line is.
func Read(r io.Reader) (*Recording, error) {
	return ReadData(r, nil)
}

// ReadData reads a whole recording whose data file (version 2) is data
// (see NewReaderData).
func ReadData(r io.Reader, data io.ReaderAt) (*Recording, error) {
	rd, err := NewReaderData(r, data)
	if err != nil {
		return nil, err
	}
	rec := &Recording{Header: rd.Header()}
	for {
		x, err := rd.Next()
		if errors.Is(err, io.EOF) {
			rec.Torn = rd.Torn()
			return rec, nil
		}
		if err != nil {
			return nil, err
		}
		switch x.Kind {
		case KindEnd:
			rec.Complete = true
		case KindUnknown:
			rec.Unknown++
			continue
		}
		rec.Records = append(rec.Records, x)
	}
}

// ReadFile reads the recording in the named file (the index) and, for
// version 2, its data file DataFileName(name). A missing data file is
// not an error: the recording is torn at its first data record.
func ReadFile(name string) (*Recording, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadNamed(f, name)
}

// ReadNamed reads the recording whose index r was read from the file
// name (for example its bytes already in memory), with the data file
// next to it.
func ReadNamed(r io.Reader, name string) (*Recording, error) {
	var data io.ReaderAt
	df, err := os.Open(DataFileName(name))
	switch {
	case err == nil:
		defer df.Close()
		data = df
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	rec, err := ReadData(r, data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return rec, nil
}

// Stream returns everything side sent, concatenated (gaps are skipped).
func (rec *Recording) Stream(side event.Side) []byte {
	var n int
	for _, x := range rec.Records {
		if x.Kind == KindData && x.Side == side {
			n += len(x.Data)
		}
	}
	b := make([]byte, 0, n)
	for _, x := range rec.Records {
		if x.Kind == KindData && x.Side == side {
			b = append(b, x.Data...)
		}
	}
	return b
}

// Events returns the recorded events in order.
func (rec *Recording) Events() []*event.Event {
	var evs []*event.Event
	for _, x := range rec.Records {
		if x.Kind == KindEvent {
			evs = append(evs, x.Event)
		}
	}
	return evs
}

// End returns the end record, or nil if the recording is not complete.
func (rec *Recording) End() *End {
	for i := len(rec.Records) - 1; i >= 0; i-- {
		if rec.Records[i].Kind == KindEnd {
			return rec.Records[i].End
		}
	}
	return nil
}

// Lost returns the bytes of each side and the events the recording is
// missing, from its gap records.
func (rec *Recording) Lost() (c2s, s2c, events int64) {
	for _, x := range rec.Records {
		if x.Kind != KindGap {
			continue
		}
		switch x.Side {
		case event.Client:
			c2s += x.Lost
		case event.Server:
			s2c += x.Lost
		}
		events += x.LostEvents
	}
	return
}

// Duration returns the time of the last record.
func (rec *Recording) Duration() time.Duration {
	var d time.Duration
	for _, x := range rec.Records {
		if x.Kind != KindEvent && x.T > d {
			d = x.T
		}
	}
	return d
}

// Summary is a one-line description for humans.
func (rec *Recording) Summary() string {
	var c, s int64
	for _, x := range rec.Records {
		if x.Kind == KindData {
			if x.Side == event.Client {
				c += int64(len(x.Data))
			} else {
				s += int64(len(x.Data))
			}
		}
	}
	out := fmt.Sprintf("session %s, client %s, upstream %s, started %s, %v; %d client bytes, %d server bytes, %d records",
		rec.Header.Session, rec.Header.Client, rec.Header.Upstream, rec.Header.Start.Format(time.RFC3339),
		rec.Duration().Round(time.Millisecond), c, s, len(rec.Records))
	if rec.Header.Redacted {
		out += ", secrets redacted"
	} else {
		out += ", SECRETS RECORDED"
	}
	if lc, ls, le := rec.Lost(); lc+ls+le > 0 {
		out += fmt.Sprintf("; GAPS: %d client bytes, %d server bytes, %d events not recorded", lc, ls, le)
	}
	switch t := rec.Torn; {
	case t == nil:
	case t.Missing:
		out += fmt.Sprintf("; NO DATA FILE: data record at line %d and everything after it ignored", t.Line)
	case t.Data:
		out += fmt.Sprintf("; torn data file: data record at line %d names bytes it does not hold; that line and everything after it ignored", t.Line)
	default:
		out += fmt.Sprintf("; torn last line %d (%d bytes) ignored", t.Line, t.Bytes)
	}
	if !rec.Complete {
		out += "; no end record (recording cut short)"
	}
	return out
}
