package record

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/popscope/popscope/event"
)

// DefaultBufferLimit is the default bound of one session's queue of bytes
// not yet written. The writer keeps up with a loopback relay on ordinary
// disks; the bound only matters when the disk stalls.
const DefaultBufferLimit = 16 << 20

// eventCost is what a queued event counts against the bound.
const eventCost = 512

// maxDataRecord bounds the bytes of one data record (larger chunks are
// split), so that readers can cap what one record makes them allocate.
const maxDataRecord = 1 << 20

// writeChunk is how much output (index or data) is collected before a
// write(2).
const writeChunk = 1 << 20

// Options configure a Recorder.
type Options struct {
	// Dir receives the files of each session (an index, FileName, and
	// its data file, DataFileName). It is created with mode 0700 if
	// missing.
	Dir string
	// RecordSecrets keeps passwords and SASL data in the recorded bytes.
	RecordSecrets bool
	// BufferLimit bounds one session's queue in bytes (default
	// DefaultBufferLimit). Beyond it data is dropped and a gap recorded.
	BufferLimit int
	// Version is popscope's version, written to the header.
	Version string
	// FormatVersion chooses the recording format: 0 or 2 (the default,
	// Version) writes the bytes raw to a data file next to the index; 1
	// writes them base64-encoded into the index, one file per session,
	// at about twice the CPU cost (for tools that only read version 1).
	FormatVersion int
	// Logf, if set, receives one line per problem (a file that cannot be
	// created or written).
	Logf func(format string, args ...any)
}

// Recorder creates session recordings in a directory.
type Recorder struct {
	opt Options
	wg  sync.WaitGroup
	// beforeWrite, if set, is called by the writer goroutine before each
	// batch (tests use it to stall the "disk").
	beforeWrite func()
	logf        atomic.Pointer[func(string, ...any)]

	sessions   atomic.Int64
	files      atomic.Int64
	errors     atomic.Int64
	gaps       atomic.Int64
	lostBytes  atomic.Int64
	lostEvents atomic.Int64
	redactions atomic.Int64
}

// Stats summarise a Recorder's work so far.
type Stats struct {
	Sessions   int64 // sessions opened
	Files      int64 // files created
	Errors     int64 // files that could not be created or written
	Gaps       int64 // gap records (places where data was lost)
	LostBytes  int64 // bytes dropped because a queue was full
	LostEvents int64 // events dropped because a queue was full
	Redactions int64 // secrets replaced by the placeholder
}

// New returns a Recorder writing to opt.Dir, creating it (0700) if
// needed. It does no other I/O.
func New(opt Options) (*Recorder, error) {
	if opt.Dir == "" {
		return nil, errors.New("record: no directory")
	}
	if opt.BufferLimit <= 0 {
		opt.BufferLimit = DefaultBufferLimit
	}
	switch opt.FormatVersion {
	case 0:
		opt.FormatVersion = Version
	case 1, Version:
	default:
		return nil, fmt.Errorf("record: format version %d: want 1 or %d", opt.FormatVersion, Version)
	}
	if opt.Logf == nil {
		opt.Logf = func(string, ...any) {}
	}
	if err := os.MkdirAll(opt.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("record: %w", err)
	}
	st, err := os.Stat(opt.Dir)
	if err != nil {
		return nil, fmt.Errorf("record: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("record: %s is not a directory", opt.Dir)
	}
	r := &Recorder{opt: opt}
	r.logf.Store(&opt.Logf)
	return r, nil
}

// SetLogf replaces Options.Logf (for example once a terminal UI owns
// stderr). Safe for concurrent use.
func (r *Recorder) SetLogf(f func(format string, args ...any)) {
	if f != nil {
		r.logf.Store(&f)
	}
}

// Dir returns the directory recordings go to.
func (r *Recorder) Dir() string { return r.opt.Dir }

// Stats returns the counters.
func (r *Recorder) Stats() Stats {
	return Stats{Sessions: r.sessions.Load(), Files: r.files.Load(), Errors: r.errors.Load(), Gaps: r.gaps.Load(),
		LostBytes: r.lostBytes.Load(), LostEvents: r.lostEvents.Load(), Redactions: r.redactions.Load()}
}

// Close waits until every session that was closed has its file complete,
// or ctx ends. Sessions still open are not waited for.
func (r *Recorder) Close(ctx context.Context) error {
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("record: files not complete: %w", ctx.Err())
	}
}

// FileName returns the name of a session's recording (its JSON Lines
// index) in the directory: start time (UTC) and session id.
func FileName(id string, start time.Time) string {
	return start.UTC().Format("20060102T150405.000000000Z") + "-" + sanitizeID(id) + ".rec.jsonl"
}

// DataFileName returns the name of the data file that goes with the
// recording (index) name: "X.rec.jsonl" → "X.rec.data" (any other name
// gets ".data" appended). Version 1 recordings have no data file.
func DataFileName(name string) string {
	if base, ok := strings.CutSuffix(name, ".jsonl"); ok {
		return base + ".data"
	}
	return name + ".data"
}

func sanitizeID(id string) string {
	b := []byte(id)
	for i, c := range b {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "session"
	}
	return string(b)
}

// Open starts the recording of one session. It does no I/O: the file is
// created by the writer goroutine.
func (r *Recorder) Open(id string, start time.Time, client, upstream string) *Session {
	r.sessions.Add(1)
	r.wg.Add(1)
	path := filepath.Join(r.opt.Dir, FileName(id, start))
	s := &Session{r: r, start: start, path: path, dataPath: DataFileName(path),
		v1: r.opt.FormatVersion == 1, last: lastData{at: -1},
		hdr: Header{Format: FormatName, Version: r.opt.FormatVersion, Session: id, Client: client, Upstream: upstream,
			Start: start, Popscope: r.opt.Version, Redacted: !r.opt.RecordSecrets, BufferLimit: int64(r.opt.BufferLimit)},
		limit: int64(r.opt.BufferLimit)}
	if !r.opt.RecordSecrets {
		s.hdr.Placeholder = Placeholder
	}
	s.red.t = &Tracker{}
	return s
}

// Session records one session; see the package doc for its concurrency
// properties.
type Session struct {
	r        *Recorder
	start    time.Time
	path     string
	dataPath string
	v1       bool // format version 1: no data file, base64 in the index
	hdr      Header
	limit    int64

	mu      sync.Mutex
	cur     *batch
	spare   *batch
	pending int64 // bytes queued or being written
	running bool
	closed  bool
	// Losses not yet marked in the queue, and totals.
	gapBytes  [3]int64 // by event.Side
	gapEvents int64
	gapT      time.Duration
	total     [3]int64
	lost      [3]int64
	lostEv    int64

	// Writer goroutine state (one at a time, handed over under mu).
	f      *os.File // the index (JSON Lines)
	df     *os.File // the data file
	failed error
	out    []byte // index records not yet written
	// Data bytes not yet written, in order: dvec, then dbuf[dmark:].
	// Large chunks of queue blocks (valid until the batch is reset, after
	// its flush) are written from where they are; small or transient ones
	// are gathered in dbuf.
	dvec  [][]byte
	dbuf  []byte
	dmark int
	dlen  int   // bytes in dvec and dbuf[dmark:]
	doff  int64 // data file offset after them
	// The last data record in out, to extend it with the next chunk of
	// the same read (split over queue blocks).
	last   lastData
	red    redactor
	redBuf []byte
	jbuf   bytes.Buffer
	enc    *json.Encoder
}

type lastData struct {
	at       int // its offset in out; -1: none
	end      int // len(out) after it
	side     event.Side
	t        time.Duration
	off, len int64
}

type itemKind uint8

const (
	itData itemKind = iota
	itEvent
	itGap
	itEnd
)

type item struct {
	kind   itemKind
	side   event.Side
	t      time.Duration
	data   []byte // a copy, in one of the batch's blocks
	ev     *event.Event
	lost   int64
	lostEv int64
}

// Copies of data live in fixed-size blocks recycled through a free list:
// no slice growth (which would copy and clear ever larger arrays under the
// session's lock), no garbage, and no page faults on fresh memory during
// a bulk transfer. The free list keeps at most freeBlocks blocks (16 MiB)
// for all sessions; more are left to the garbage collector.
const (
	blockSize  = 256 << 10
	freeBlocks = 64
)

var blockFree = make(chan *[]byte, freeBlocks)

func getBlock() *[]byte {
	select {
	case b := <-blockFree:
		return b
	default:
		b := make([]byte, 0, blockSize)
		return &b
	}
}

func putBlock(b *[]byte) {
	*b = (*b)[:0]
	select {
	case blockFree <- b:
	default:
	}
}

type batch struct {
	items  []item
	blocks []*[]byte
	cost   int64
}

// minPiece: a chunk is split over blocks rather than leave less than
// this much of the current block unused.
const minPiece = 16 << 10

// copyData copies as much of p as fits into the batch's current block (a
// fresh one if less than min(len(p), minPiece) is left) and returns the
// copy; the caller queues the rest the same way. Chunks larger than a
// block (the proxy reads up to 1 MiB at a time) are thus split over
// recycled blocks instead of getting a fresh allocation each.
func (b *batch) copyData(p []byte) []byte {
	n := len(b.blocks)
	if n == 0 || cap(*b.blocks[n-1])-len(*b.blocks[n-1]) < min(len(p), minPiece) {
		b.blocks = append(b.blocks, getBlock())
	}
	blk := b.blocks[len(b.blocks)-1]
	off := len(*blk)
	k := min(len(p), cap(*blk)-off)
	*blk = append(*blk, p[:k]...)
	return (*blk)[off : off+k : off+k]
}

func (b *batch) reset() {
	clear(b.items) // drop event pointers and data slices
	b.items = b.items[:0]
	for i, blk := range b.blocks {
		putBlock(blk)
		b.blocks[i] = nil
	}
	b.blocks = b.blocks[:0]
	b.cost = 0
	if cap(b.items) > 4096 {
		b.items = nil
	}
}

// Path returns the file the session is recorded to (the index; its data
// file is DataFileName(Path())).
func (s *Session) Path() string { return s.path }

// Data queues bytes side sent at time at. It copies p and never blocks.
func (s *Session) Data(side event.Side, at time.Time, p []byte) {
	if len(p) == 0 || (side != event.Client && side != event.Server) {
		return
	}
	n := int64(len(p))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.total[side] += n
	t := at.Sub(s.start)
	if s.pending+n > s.limit {
		s.lose(side, n, 0, t)
		return
	}
	s.markGap()
	b := s.batch()
	for len(p) > 0 {
		q := b.copyData(p)
		p = p[len(q):]
		b.items = append(b.items, item{kind: itData, side: side, t: t, data: q})
	}
	b.cost += n
	s.pending += n
	s.kick()
}

// Event queues an event. Events are immutable; the pointer is kept.
func (s *Session) Event(e *event.Event) {
	if e == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if s.pending+eventCost > s.limit {
		s.lose(event.NoSide, 0, 1, e.Time.Sub(s.start))
		return
	}
	s.markGap()
	b := s.batch()
	b.items = append(b.items, item{kind: itEvent, ev: e})
	b.cost += eventCost
	s.pending += eventCost
	s.kick()
}

// Close queues the end record; the file is complete once the writer has
// written it (Recorder.Close waits for that).
func (s *Session) Close(at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.markGap()
	s.closed = true
	b := s.batch()
	b.items = append(b.items, item{kind: itEnd, t: at.Sub(s.start)})
	s.kick()
}

// lose counts dropped data (mu held).
func (s *Session) lose(side event.Side, n, nev int64, t time.Duration) {
	if s.gapBytes[event.Client] == 0 && s.gapBytes[event.Server] == 0 && s.gapEvents == 0 {
		s.gapT = t
	}
	s.gapBytes[side] += n
	s.gapEvents += nev
	s.lost[side] += n
	s.lostEv += nev
	s.r.lostBytes.Add(n)
	s.r.lostEvents.Add(nev)
}

// markGap queues the gap records for losses not yet marked (mu held). A
// gap record costs nothing against the bound: there is at most one per
// side between two queued items.
func (s *Session) markGap() {
	if s.gapBytes[event.Client] == 0 && s.gapBytes[event.Server] == 0 && s.gapEvents == 0 {
		return
	}
	b := s.batch()
	for _, side := range []event.Side{event.Client, event.Server} {
		if n := s.gapBytes[side]; n > 0 {
			b.items = append(b.items, item{kind: itGap, side: side, t: s.gapT, lost: n})
			s.r.gaps.Add(1)
			s.gapBytes[side] = 0
		}
	}
	if s.gapEvents > 0 {
		b.items = append(b.items, item{kind: itGap, t: s.gapT, lostEv: s.gapEvents})
		s.r.gaps.Add(1)
		s.gapEvents = 0
	}
}

func (s *Session) batch() *batch {
	if s.cur == nil {
		if s.spare != nil {
			s.cur, s.spare = s.spare, nil
		} else {
			s.cur = &batch{}
		}
	}
	return s.cur
}

// kick starts the writer goroutine if it is not running (mu held).
func (s *Session) kick() {
	if !s.running {
		s.running = true
		go s.work()
	}
}

// work writes queued batches until the queue is empty.
func (s *Session) work() {
	for {
		s.mu.Lock()
		b := s.cur
		if b == nil || len(b.items) == 0 {
			s.running = false
			s.mu.Unlock()
			return
		}
		s.cur = nil
		s.mu.Unlock()

		end := s.writeBatch(b)

		s.mu.Lock()
		s.pending -= b.cost
		b.reset()
		if s.spare == nil {
			s.spare = b
		}
		if end {
			s.running = false
			s.cur, s.spare = nil, nil
			s.mu.Unlock()
			s.r.wg.Done()
			return
		}
		s.mu.Unlock()
	}
}

// writeBatch encodes and appends one batch; it reports whether the end
// record was in it (the file is then closed).
func (s *Session) writeBatch(b *batch) (end bool) {
	if s.r.beforeWrite != nil {
		s.r.beforeWrite()
	}
	if s.f == nil && s.failed == nil {
		s.open()
	}
	for i := range b.items {
		it := &b.items[i]
		switch it.kind {
		case itData:
			p, stable := it.data, true // it.data lives until the batch is reset
			if it.side == event.Client && s.hdr.Redacted {
				before := s.red.count
				s.redBuf = s.red.client(s.redBuf[:0], p)
				s.r.redactions.Add(s.red.count - before)
				p, stable = s.redBuf, false
			} else if it.side == event.Server && s.hdr.Redacted {
				s.red.t.Server(p)
			}
			s.appendData(it.side, it.t, p, stable)
		case itEvent:
			e := it.ev
			if s.hdr.Redacted {
				e = redactEvent(e)
			}
			s.appendEvent(e)
		case itGap:
			if it.side == event.Client && s.hdr.Redacted {
				if rest := s.red.lost(nil); len(rest) > 0 {
					s.appendData(event.Client, it.t, rest, false)
				}
			} else if it.side == event.Server {
				s.red.t.Lost()
			}
			s.appendGap(it)
		case itEnd:
			if s.hdr.Redacted {
				if rest := s.red.flush(nil); len(rest) > 0 {
					s.appendData(event.Client, it.t, rest, false)
				}
			}
			s.appendEnd(it.t)
			end = true
		}
		if len(s.out) >= writeChunk || s.dlen >= writeChunk {
			s.flush()
		}
	}
	s.flush()
	if end {
		if s.df != nil {
			if err := s.df.Close(); err != nil && s.failed == nil {
				s.fail(err)
			}
			s.df = nil
		}
		if s.f != nil {
			if err := s.f.Close(); err != nil && s.failed == nil {
				s.fail(err)
			}
			s.f = nil
		}
	}
	return end
}

// open creates the index and the data file (both O_EXCL, 0600).
func (s *Session) open() {
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		s.fail(err)
		return
	}
	if !s.v1 {
		df, err := os.OpenFile(s.dataPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
		if err != nil {
			f.Close()
			os.Remove(s.path) // still empty: ours
			s.fail(err)
			return
		}
		s.df = df
	}
	s.f = f
	s.r.files.Add(1)
	s.appendJSON(&s.hdr)
}

// appendJSON encodes v as one line, without HTML escaping (the
// placeholder and APOP timestamps stay readable).
func (s *Session) appendJSON(v any) {
	if s.enc == nil {
		s.enc = json.NewEncoder(&s.jbuf)
		s.enc.SetEscapeHTML(false)
	}
	s.jbuf.Reset()
	if s.enc.Encode(v) != nil {
		return
	}
	s.out = append(s.out, s.jbuf.Bytes()...)
}

func (s *Session) fail(err error) {
	s.failed = err
	s.r.errors.Add(1)
	(*s.r.logf.Load())("record: session %s: %v; recording stops", s.hdr.Session, err)
}

// flush writes the collected data bytes, then the collected index
// records, the index with one write(2): the index only ever names bytes
// that are already in the data file, and it ends inside a record only if
// the process dies mid-write.
func (s *Session) flush() {
	if s.dlen > 0 {
		if s.dmark < len(s.dbuf) {
			s.dvec = append(s.dvec, s.dbuf[s.dmark:])
		}
		for _, p := range s.dvec {
			if s.df == nil || s.failed != nil {
				break
			}
			if _, err := s.df.Write(p); err != nil {
				s.fail(err) // the index records naming these bytes are not written
			}
		}
		clear(s.dvec)
		s.dvec, s.dbuf, s.dmark, s.dlen = s.dvec[:0], s.dbuf[:0], 0, 0
		if cap(s.dbuf) > 2*writeChunk {
			s.dbuf = nil
		}
	}
	if len(s.out) > 0 {
		if s.f != nil && s.failed == nil {
			if _, err := s.f.Write(s.out); err != nil {
				s.fail(err)
			}
		}
		s.out = s.out[:0]
		if cap(s.out) > 4*writeChunk {
			s.out = nil
		}
	}
	s.last.at = -1
}

// directMin: stable chunks at least this large are written from the
// queue block they are in rather than copied.
const directMin = 32 << 10

// appendData adds p to the data file's output and a data record naming
// it (offset, length) to the index output. stable says p stays valid
// until the next flush (so it need not be copied). A chunk that
// continues the previous data record (same side and time: one read split
// over queue blocks) extends it.
func (s *Session) appendData(side event.Side, t time.Duration, p []byte, stable bool) {
	for len(p) > 0 {
		if s.v1 {
			chunk := p[:min(len(p), maxDataRecord)]
			p = p[len(chunk):]
			s.out = append(s.out, `{"t":`...)
			s.out = strconv.AppendInt(s.out, int64(t), 10)
			s.out = append(s.out, `,"d":"`...)
			s.out = append(s.out, sideCode(side))
			s.out = append(s.out, `","b64":"`...)
			s.out = appendBase64(s.out, chunk)
			s.out = append(s.out, "\"}\n"...)
			continue
		}
		off, n := s.doff, int64(0)
		l := &s.last
		extend := l.at >= 0 && l.end == len(s.out) && l.side == side && l.t == t && l.off+l.len == s.doff && l.len < maxDataRecord
		if extend {
			off, n = l.off, l.len
		}
		chunk := p[:min(int64(len(p)), maxDataRecord-n)]
		p = p[len(chunk):]
		if stable && len(chunk) >= directMin {
			if s.dmark < len(s.dbuf) {
				s.dvec = append(s.dvec, s.dbuf[s.dmark:])
				s.dmark = len(s.dbuf)
			}
			s.dvec = append(s.dvec, chunk)
		} else {
			s.dbuf = append(s.dbuf, chunk...)
		}
		s.dlen += len(chunk)
		s.doff += int64(len(chunk))
		n += int64(len(chunk))
		if extend {
			s.out = s.out[:l.at]
		}
		at := len(s.out)
		s.out = append(s.out, `{"t":`...)
		s.out = strconv.AppendInt(s.out, int64(t), 10)
		s.out = append(s.out, `,"d":"`...)
		s.out = append(s.out, sideCode(side))
		s.out = append(s.out, `","off":`...)
		s.out = strconv.AppendInt(s.out, off, 10)
		s.out = append(s.out, `,"len":`...)
		s.out = strconv.AppendInt(s.out, n, 10)
		s.out = append(s.out, "}\n"...)
		*l = lastData{at: at, end: len(s.out), side: side, t: t, off: off, len: n}
	}
}

func (s *Session) appendEvent(e *event.Event) { s.appendJSON(e) }

func (s *Session) appendGap(it *item) {
	s.out = append(s.out, `{"t":`...)
	s.out = strconv.AppendInt(s.out, int64(it.t), 10)
	if it.lost > 0 {
		s.out = append(s.out, `,"d":"`...)
		s.out = append(s.out, sideCode(it.side))
		s.out = append(s.out, `","gap":`...)
		s.out = strconv.AppendInt(s.out, it.lost, 10)
	}
	if it.lostEv > 0 {
		s.out = append(s.out, `,"gap_events":`...)
		s.out = strconv.AppendInt(s.out, it.lostEv, 10)
	}
	s.out = append(s.out, "}\n"...)
}

func (s *Session) appendEnd(t time.Duration) {
	s.mu.Lock()
	e := End{C2S: s.total[event.Client], S2C: s.total[event.Server], LostC2S: s.lost[event.Client],
		LostS2C: s.lost[event.Server], LostEvents: s.lostEv, Redactions: s.red.count}
	s.mu.Unlock()
	if s.failed != nil {
		e.Error = s.failed.Error()
	}
	s.appendJSON(struct {
		T   int64 `json:"t"`
		End *End  `json:"end"`
	}{int64(t), &e})
}
