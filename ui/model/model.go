package model

import (
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/popscope/popscope/decode"
	"github.com/popscope/popscope/event"
)

// Default retention limits.
const (
	DefaultMaxLines       = 2000
	DefaultMaxEvents      = 4000
	DefaultMaxSessions    = 5000
	DefaultMaxTotalEvents = 200000
)

// Bounds on bookkeeping that must not grow with a misbehaving peer.
const (
	maxPending     = 64  // violations waiting for their line, per side
	offsetLookback = 256 // lines searched back for a violation's offset
	cmdLookback    = 256 // commands remembered to name their replies
)

// Options bound what a Model keeps. Zero values mean the defaults.
type Options struct {
	// MaxLines caps the transcript lines kept per session; the oldest
	// go first.
	MaxLines int
	// MaxEvents caps the events kept per session for export.
	MaxEvents int
	// MaxSessions caps the sessions kept; the oldest closed sessions go
	// first (then the oldest open ones).
	MaxSessions int
	// MaxTotalEvents caps the events kept over all sessions (about 0.5 KB
	// each), sessions going as for MaxSessions. Kept events are memory
	// the relay's allocator and garbage collector work around, so this
	// bounds what the UI costs the proxy as much as its size.
	MaxTotalEvents int
	// Observer is the name the UI is subscribed under on the bus: a
	// "dropped" event naming it means the UI itself lost events.
	Observer string
}

func (o *Options) defaults() {
	if o.MaxLines <= 0 {
		o.MaxLines = DefaultMaxLines
	}
	if o.MaxEvents <= 0 {
		o.MaxEvents = DefaultMaxEvents
	}
	if o.MaxSessions <= 0 {
		o.MaxSessions = DefaultMaxSessions
	}
	if o.MaxTotalEvents <= 0 {
		o.MaxTotalEvents = DefaultMaxTotalEvents
	}
	if o.Observer == "" {
		o.Observer = "ui"
	}
}

// Model holds the sessions seen so far. Create it with New.
type Model struct {
	mu  sync.Mutex
	opt Options

	sessions map[string]*Session
	list     []*Session // arrival order
	arrivals int

	gen      uint64
	events   uint64
	kept     int // events kept over all sessions
	evicted  int
	lost     uint64            // events the bus dropped for our observer
	lostBy   map[string]uint64 // ... and for other observers
	sev      [4]int            // violations by Severity.Rank
	open     int
	lastTime time.Time
}

// New returns an empty model.
func New(opt Options) *Model {
	opt.defaults()
	return &Model{opt: opt, sessions: map[string]*Session{}, lostBy: map[string]uint64{}}
}

// Options returns the effective options.
func (m *Model) Options() Options { return m.opt }

// Lock takes the model's mutex; hold it while reading sessions and lines.
func (m *Model) Lock() { m.mu.Lock() }

// Unlock releases the mutex.
func (m *Model) Unlock() { m.mu.Unlock() }

// Read calls fn with the mutex held.
func (m *Model) Read(fn func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fn()
}

// The accessors below are for a reader holding the lock.

// Gen increases with every change; a reader compares it to skip work.
func (m *Model) Gen() uint64 { return m.gen }

// Sessions returns the kept sessions in arrival order. The slice is the
// model's own: do not modify it, and do not keep it past Unlock.
func (m *Model) Sessions() []*Session { return m.list }

// Session returns the session with id, or nil.
func (m *Model) Session(id string) *Session { return m.sessions[id] }

// Events returns how many events were applied.
func (m *Model) Events() uint64 { return m.events }

// EvictedSessions returns how many sessions were let go (MaxSessions,
// MaxTotalEvents).
func (m *Model) EvictedSessions() int { return m.evicted }

// Open returns how many kept sessions are still open.
func (m *Model) Open() int { return m.open }

// Violations returns the number of violations of a severity seen so far.
func (m *Model) Violations(s event.Severity) int { return m.sev[s.Rank()] }

// LastTime is the time of the latest event applied.
func (m *Model) LastTime() time.Time { return m.lastTime }

// Lost returns how many events the bus dropped for the UI's observer.
func (m *Model) Lost() uint64 { return m.lost }

// LostBy returns the drops reported for other observers, by name, sorted.
func (m *Model) LostBy() []ObserverLoss {
	out := make([]ObserverLoss, 0, len(m.lostBy))
	for n, c := range m.lostBy {
		out = append(out, ObserverLoss{Name: n, Dropped: c})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ObserverLoss is one observer's reported losses.
type ObserverLoss struct {
	Name    string
	Dropped uint64
}

// Apply adds one event to the model. It takes the mutex for its
// duration and never blocks otherwise. The event must not be modified
// afterwards (events are immutable once published).
func (m *Model) Apply(e *event.Event) {
	if e == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gen++
	m.events++
	if e.Time.After(m.lastTime) {
		m.lastTime = e.Time
	}
	if e.Type == event.Dropped {
		if e.Observer == m.opt.Observer {
			m.lost += e.Dropped
		} else {
			m.lostBy[e.Observer] += e.Dropped
		}
		return
	}
	if e.Session == "" {
		return // nothing else is session-less today
	}
	s := m.sessions[e.Session]
	if s == nil {
		s = m.newSession(e)
	}
	wasOpen, before := s.Open, s.events.len()
	s.apply(e)
	m.kept += s.events.len() - before
	if wasOpen && !s.Open {
		m.open--
	}
	if e.Type == event.Violation {
		m.sev[e.Severity.Rank()]++
	}
	if len(m.list) > m.opt.MaxSessions || m.kept > m.opt.MaxTotalEvents {
		m.evict(s)
	}
}

func (m *Model) newSession(e *event.Event) *Session {
	m.arrivals++
	s := &Session{
		ID:      e.Session,
		Start:   e.Time,
		Open:    true,
		Arrival: m.arrivals,
		opt:     &m.opt,
		lines:   ring[*Line]{max: m.opt.MaxLines},
		events:  ring[*event.Event]{max: m.opt.MaxEvents},
		cmds:    ring[*event.Event]{max: cmdLookback},
	}
	m.sessions[e.Session] = s
	m.list = append(m.list, s)
	m.open++
	return s
}

// evict lets go of whole sessions, closed ones first, oldest first, then
// the oldest open ones, until the sessions and the events kept are a
// tenth below their caps (so that evicting is rare). keep, the session
// being fed, stays.
func (m *Model) evict(keep *Session) {
	needSessions := len(m.list) - (m.opt.MaxSessions - m.opt.MaxSessions/10)
	needEvents := m.kept - (m.opt.MaxTotalEvents - m.opt.MaxTotalEvents/10)
	gone := make(map[*Session]bool)
	freed := 0
	enough := func() bool { return len(gone) >= needSessions && freed >= needEvents }
	for pass := 0; pass < 2 && !enough(); pass++ {
		for _, s := range m.list {
			if enough() {
				break
			}
			if gone[s] || s == keep || (pass == 0 && s.Open) {
				continue
			}
			gone[s] = true
			freed += s.events.len()
		}
	}
	if len(gone) == 0 {
		return
	}
	kept := make([]*Session, 0, len(m.list)-len(gone))
	for _, s := range m.list {
		if gone[s] {
			delete(m.sessions, s.ID)
			if s.Open {
				m.open--
			}
			continue
		}
		kept = append(kept, s)
	}
	m.kept -= freed
	m.evicted += len(gone)
	m.list = kept
}

// KeptEvents is the number of events kept over all sessions.
func (m *Model) KeptEvents() int { return m.kept }

// Session is what the model knows about one proxied connection. Fields
// are read with the model's lock held.
type Session struct {
	ID       string
	Client   string // client address
	Listener string
	Upstream string
	// User is the login identity (login and session_end events; before
	// a login, the USER or APOP name the client sent). Never a password.
	User string
	// Mech is how the user logged in (PASS, APOP, AUTH PLAIN ...), empty
	// before a successful login.
	Mech  string
	State string // POP3 state after the latest state event
	// TLS holds the handshake seen on each leg, indexed by event.Client
	// and event.Server; TLSError the failure text of a failed one.
	TLS      [3]*event.TLSInfo
	TLSError [3]string
	Opaque   bool // the decoder stopped interpreting the session

	Start, End, Last time.Time
	Open             bool
	Reason, Error    string // from session_end
	DurationMS       float64
	// BytesC2S and BytesS2C are known once the session ended (Ended).
	BytesC2S, BytesS2C int64
	Ended              bool

	Commands, Replies, ErrReplies int
	Sev                           [4]int // violations by event.Severity.Rank
	// Arrival numbers sessions in the order they were first seen.
	Arrival int
	// Missing counts events that never reached the model (sequence gaps).
	Missing uint64

	lines        ring[*Line]
	DroppedLines int
	events       ring[*event.Event]
	// DroppedEvents counts events let go by the MaxEvents cap.
	DroppedEvents int

	gen      uint64
	lastSeq  uint64
	cmds     ring[*event.Event] // recent commands, to name their replies
	pendingC []*event.Event     // client violations waiting for their line
	pendingS []*event.Event     // server violations waiting for their line
	post     *Line              // the reply just published: checks made after it
	postOff  int64              // ... name this offset
	postSet  bool
	opt      *Options
}

// Gen increases with every change to the session.
func (s *Session) Gen() uint64 { return s.gen }

// LineCount is the number of kept transcript lines.
func (s *Session) LineCount() int { return s.lines.len() }

// Line returns the i-th kept line, 0 being the oldest.
func (s *Session) Line(i int) *Line { return s.lines.at(i) }

// Lines returns a copy of the kept lines, oldest first.
func (s *Session) Lines() []*Line { return s.lines.slice() }

// EventCount is the number of kept events.
func (s *Session) EventCount() int { return s.events.len() }

// Events returns a copy of the kept events, in order.
func (s *Session) Events() []*event.Event { return s.events.slice() }

// Violations returns the total number of violations in the session.
func (s *Session) Violations() int { return s.Sev[1] + s.Sev[2] + s.Sev[3] }

// Duration is the session's length: exact once it ended, else up to now
// (live) or up to its last event (a recording: pass the zero time).
func (s *Session) Duration(now time.Time) time.Duration {
	if s.Ended {
		return time.Duration(s.DurationMS * float64(time.Millisecond))
	}
	end := s.Last
	if !now.IsZero() {
		end = now
	}
	if end.Before(s.Start) {
		return 0
	}
	return end.Sub(s.Start)
}

// HasTLS reports whether a TLS handshake was seen on either leg.
func (s *Session) HasTLS() bool {
	return s.TLS[event.Client] != nil || s.TLS[event.Server] != nil
}

// Kind classifies transcript lines.
type Kind uint8

// Line kinds.
const (
	KindInfo      Kind = iota // lifecycle: start, connected, login, TLS, opaque, end
	KindClient                // C: a command or SASL line
	KindServer                // S: greeting, continuation, reply
	KindViolation             // a violation not tied to one line
	KindState                 // a POP3 state change (verbose)
	KindNote                  // a decoder note
	KindGap                   // events missing here
)

// Line is one transcript line. Only Violations changes after the line is
// made (a violation may arrive after its line).
type Line struct {
	Kind Kind
	// Ev is the event the line shows (nil for a gap).
	Ev   *event.Event
	Time time.Time
	// Text is the line as shown, escaped (control octets as \r, \xHH):
	// "C: RETR 3", "S: +OK 4218 octets", "── login: alice (PASS)".
	Text string
	// Fold summarises a multi-line reply: "RETR 3 → 4,218 octets, 87 lines".
	Fold string
	// Cmd is the command line ("RETR 3") a reply answers, if known.
	Cmd string
	// Verbose lines (state changes, routine notes) are hidden unless the
	// user asks for them.
	Verbose bool
	// Missing is the number of events lost at a gap line.
	Missing uint64
	// Violations are the violation events about this line (or, for a
	// KindViolation line, the one it shows).
	Violations []*event.Event
}

// Side is the side whose bytes the line shows (NoSide for info lines).
func (l *Line) Side() event.Side {
	switch l.Kind {
	case KindClient:
		return event.Client
	case KindServer:
		return event.Server
	}
	return event.NoSide
}

// IsErr reports a -ERR reply or greeting.
func (l *Line) IsErr() bool {
	return l.Ev != nil && (l.Ev.Type == event.Response || l.Ev.Type == event.Greeting) && l.Ev.Status == "-ERR"
}

// Foldable reports a multi-line reply, which the UI folds to Fold.
func (l *Line) Foldable() bool { return l.Fold != "" }

// WorstSeverity is the most serious severity among the line's violations.
func (l *Line) WorstSeverity() event.Severity {
	var w event.Severity
	for _, v := range l.Violations {
		if v.Severity.Rank() > w.Rank() {
			w = v.Severity
		}
	}
	return w
}

func (s *Session) apply(e *event.Event) {
	s.gen++
	if !e.Time.IsZero() {
		if e.Time.After(s.Last) {
			s.Last = e.Time
		}
		if s.Start.IsZero() || e.Type == event.SessionStart {
			s.Start = e.Time
		}
	}
	if e.Seq > 0 {
		if e.Seq > s.lastSeq+1 {
			gap := e.Seq - s.lastSeq - 1
			s.Missing += gap
			s.addLine(&Line{Kind: KindGap, Time: e.Time, Missing: gap,
				Text: "… " + Thousands(int64(gap)) + " events missing here (the UI fell behind)"})
		}
		if e.Seq > s.lastSeq {
			s.lastSeq = e.Seq
		}
	}
	s.keepEvent(e)

	switch e.Type {
	case event.SessionStart:
		s.Client, s.Listener, s.Upstream = e.Client, e.Listener, e.Upstream
		s.addLine(s.line(KindInfo, e, "── session "+e.Session+": client "+orDash(e.Client)+" → upstream "+orDash(e.Upstream)))
	case event.Connected:
		if e.Upstream != "" {
			s.Upstream = e.Upstream
		}
		l := s.line(KindInfo, e, "── upstream "+e.Upstream+" connected in "+Millis(e.LatencyMS))
		l.Verbose = true
		s.addLine(l)
	case event.Greeting:
		if e.Status == "-ERR" {
			s.ErrReplies++
		}
		s.addServerLine(s.line(KindServer, e, "S: "+join(e.Status, Escape(e.Text))))
	case event.Command:
		s.Commands++
		if s.User == "" && (e.Verb == "USER" || e.Verb == "APOP") {
			if name, _, _ := strings.Cut(e.Args, " "); name != "" {
				s.User = Escape(name)
			}
		}
		s.rememberCmd(e)
		t := "C: " + join(Escape(e.Verb), Escape(e.Args))
		if e.Pipelined {
			t += "   (pipelined)"
		}
		s.addClientLine(s.line(KindClient, e, t))
	case event.SASLResponse:
		args := Escape(e.Args)
		if strings.TrimSpace(args) == "" {
			args = "(empty)"
		}
		s.addClientLine(s.line(KindClient, e, "C: "+args+"   (SASL)"))
	case event.Continuation:
		s.addServerLine(s.line(KindServer, e, "S: "+join("+", Escape(e.Text))))
	case event.Response:
		s.Replies++
		if e.Status == "-ERR" {
			s.ErrReplies++
		}
		l := s.line(KindServer, e, "S: "+join(e.Status, Escape(e.Text)))
		l.Cmd = s.cmdFor(e)
		if e.Multiline {
			l.Fold = FoldSummary(l.Cmd, e)
		}
		s.addServerLine(l)
	case event.State:
		s.State = e.To
		l := s.line(KindState, e, "   state "+orDash(e.From)+" → "+e.To)
		l.Verbose = true
		s.addLine(l)
		if e.To == "CLOSED" || e.To == "ABORTED" || e.To == "OPAQUE" {
			s.flushPending()
		}
	case event.Login:
		if e.User != "" {
			s.User = Escape(e.User)
		}
		s.Mech = e.Verb
		s.addLine(s.line(KindInfo, e, "── login: "+orDash(s.User)+" via "+orDash(e.Verb)))
	case event.TLS:
		s.applyTLS(e)
	case event.Violation:
		s.addViolation(e)
	case event.Opaque:
		s.Opaque = true
		s.addLine(s.line(KindInfo, e, "── opaque: "+Escape(e.Detail)))
	case event.Note:
		if e.By == event.Server && e.Offset != 0 {
			s.flushPending() // resynchronised: what waited is not about a later line
		}
		t := "   note: " + Escape(e.Detail)
		if e.Error != "" {
			t += " (" + Escape(e.Error) + ")"
		}
		l := s.line(KindNote, e, t)
		l.Verbose = e.Error == ""
		s.addLine(l)
	case event.SessionEnd:
		s.flushPending()
		if s.Open {
			s.Open = false
		}
		s.Ended = true
		s.End = e.Time
		s.Reason, s.Error = e.Reason, e.Error
		s.DurationMS = e.DurationMS
		s.BytesC2S, s.BytesS2C = e.BytesC2S, e.BytesS2C
		if e.User != "" {
			s.User = Escape(e.User)
		}
		t := "── session end: " + orDash(e.Reason) + " after " + Millis(e.DurationMS) + ", " +
			Bytes(e.BytesC2S) + " up, " + Bytes(e.BytesS2C) + " down"
		if e.Error != "" {
			t += " (" + Escape(e.Error) + ")"
		}
		s.addLine(s.line(KindInfo, e, t))
	default:
		t := "── " + string(e.Type)
		if e.Detail != "" {
			t += ": " + Escape(e.Detail)
		}
		l := s.line(KindNote, e, t)
		l.Verbose = true
		s.addLine(l)
	}
}

func (s *Session) applyTLS(e *event.Event) {
	if e.TLS == nil {
		return
	}
	leg := e.TLS.Leg
	if leg != event.Client && leg != event.Server {
		return
	}
	s.TLS[leg] = e.TLS
	s.TLSError[leg] = e.Error
	t := "── TLS " + leg.String() + " leg"
	if e.TLS.Mode != "" {
		t += " (" + e.TLS.Mode + ")"
	}
	if e.Error != "" {
		t += " failed: " + Escape(e.Error)
	} else {
		t += ": " + join(e.TLS.Version, e.TLS.Cipher)
		if e.TLS.SNI != "" {
			t += ", SNI " + Escape(e.TLS.SNI)
		}
		switch {
		case e.TLS.Verified:
			t += ", verified"
		case e.TLS.VerifyError != "":
			t += ", not verified: " + Escape(e.TLS.VerifyError)
		}
	}
	s.addLine(s.line(KindInfo, e, t))
}

func (s *Session) line(k Kind, e *event.Event, text string) *Line {
	return &Line{Kind: k, Ev: e, Time: e.Time, Text: text}
}

func (s *Session) keepEvent(e *event.Event) {
	if s.events.push(e) {
		s.DroppedEvents++
	}
}

func (s *Session) addLine(l *Line) {
	if s.lines.push(l) {
		s.DroppedLines++
	}
}

func (s *Session) rememberCmd(e *event.Event) { s.cmds.push(e) }

// cmdFor names the command a reply answers ("RETR 3"), from the ID.
func (s *Session) cmdFor(e *event.Event) string {
	for i := s.cmds.len() - 1; i >= 0; i-- {
		if c := s.cmds.at(i); c.ID == e.ID {
			return join(Escape(c.Verb), Escape(c.Args))
		}
	}
	return Escape(e.Verb)
}

// ---- violations ----
//
// A violation names its side (By) and the byte offset, in that side's
// stream, of the line it is about. Client lines (commands, SASL lines)
// carry their offsets, and so do greetings and continuations (and
// replies, if the decoder sets Offset on them). So:
//
//   - A violation whose offset matches a kept line of its side is
//     attached to that line (checks made when a reply arrives name the
//     command by its offset).
//   - Checks on a reply made right after its event (state transition,
//     single-line reply checks) come at the same instant as the reply and
//     name one offset, the reply's: they are attached to that reply.
//   - Otherwise the decoder has not published the line yet: line checks,
//     execution checks and body checks run before the line's event. A
//     client violation waits for the client line with its offset; a
//     server violation waits for the next server line (the reply whose
//     status line or body it is about).
//   - What still waits when the session ends, resynchronises or turns
//     opaque is about no single line: it becomes a line of its own,
//     unless it came at the same instant as the last server line.
//
// Offset 0 is ambiguous (omitted in JSON, and used by session-level rules
// that have no line): it only matches by offset for line-scoped rules.

func (s *Session) addViolation(e *event.Event) {
	s.Sev[e.Severity.Rank()]++
	if l := s.lineAt(e.By, e.Offset, lineScoped(e)); l != nil {
		l.Violations = append(l.Violations, e)
		return
	}
	switch e.By {
	case event.Client:
		s.pendingC = s.pend(s.pendingC, e)
	case event.Server:
		if p := s.post; p != nil && e.Time.Equal(p.Time) && len(s.pendingS) == 0 && (!s.postSet || e.Offset == s.postOff) {
			s.postOff, s.postSet = e.Offset, true
			p.Violations = append(p.Violations, e)
			return
		}
		s.post = nil
		s.pendingS = s.pend(s.pendingS, e)
	default:
		s.addLine(violationLine(e))
	}
}

func (s *Session) pend(q []*event.Event, e *event.Event) []*event.Event {
	if len(q) >= maxPending {
		s.addLine(violationLine(q[0]))
		q = q[1:]
	}
	return append(q, e)
}

func lineScoped(e *event.Event) bool {
	if e.Offset != 0 {
		return true
	}
	r := decode.LookupRule(e.Rule)
	return r != nil && r.Scope == "L"
}

// hasOffset reports lines whose event carries a meaningful offset.
func hasOffset(l *Line) bool {
	if l.Ev == nil {
		return false
	}
	switch l.Ev.Type {
	case event.Command, event.SASLResponse, event.Greeting, event.Continuation:
		return true
	case event.Response:
		return l.Ev.Offset != 0 // a reply is never at offset 0: the greeting is
	}
	return false
}

func (s *Session) lineAt(by event.Side, off int64, useZero bool) *Line {
	if off == 0 && !useZero {
		return nil
	}
	for i, n := s.lines.len()-1, 0; i >= 0 && n < offsetLookback; i, n = i-1, n+1 {
		l := s.lines.at(i)
		if l.Side() == by && hasOffset(l) && l.Ev.Offset == off {
			return l
		}
	}
	return nil
}

func (s *Session) addClientLine(l *Line) {
	s.addLine(l)
	s.post = nil
	if len(s.pendingC) == 0 {
		return
	}
	kept := s.pendingC[:0]
	for _, v := range s.pendingC {
		if v.Offset == l.Ev.Offset {
			l.Violations = append(l.Violations, v)
		} else {
			kept = append(kept, v)
		}
	}
	s.pendingC = kept
}

func (s *Session) addServerLine(l *Line) {
	s.addLine(l)
	s.post, s.postSet = nil, false
	if l.Ev.Type == event.Response {
		s.post = l
	}
	if len(s.pendingS) > 0 {
		l.Violations = append(l.Violations, s.pendingS...)
		s.pendingS = s.pendingS[:0]
	}
}

// flushPending turns waiting violations into lines of their own, or
// attaches a server one to the last server line when they share an
// instant.
func (s *Session) flushPending() {
	var last *Line
	for i, n := s.lines.len()-1, 0; i >= 0 && n < offsetLookback; i, n = i-1, n+1 {
		if l := s.lines.at(i); l.Kind == KindServer {
			last = l
			break
		}
	}
	for _, v := range s.pendingS {
		if last != nil && v.Time.Equal(last.Time) {
			last.Violations = append(last.Violations, v)
			continue
		}
		s.addLine(violationLine(v))
	}
	for _, v := range s.pendingC {
		s.addLine(violationLine(v))
	}
	s.pendingS, s.pendingC = nil, nil
	s.post = nil
}

func violationLine(e *event.Event) *Line {
	return &Line{Kind: KindViolation, Ev: e, Time: e.Time, Violations: []*event.Event{e},
		Text: "!! " + string(e.Severity) + " " + e.Rule + " (" + orDash(e.By.String()) + "): " + Escape(e.Detail)}
}
