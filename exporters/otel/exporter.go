package otel

import (
	"context"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	gotel "go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/popscope/popscope/event"
)

// ScopeName is the instrumentation scope of every span and metric: the
// import path of this package.
const ScopeName = "github.com/popscope/popscope/exporters/otel"

// Version is the instrumentation scope version.
const Version = "0.1.0"

// maxLive bounds the set of session IDs behind popscope.sessions.active
// (about 40 bytes each); sessions beyond it are not counted as active.
const maxLive = 1 << 16

// Exporter turns popscope events into OpenTelemetry traces and metrics. It
// is an event.Observer: subscribe it to the bus, and it sees the events on
// its own bounded queue, so neither a slow collector nor the exporter
// itself can slow the relay.
//
// Metrics are recorded as the events arrive. Spans are built when a
// session ends, from the buffered, bounded record of its events, with the
// events' own timestamps, so a trace shows when things happened on the
// wire, not when the exporter got round to them.
type Exporter struct {
	cfg    config
	tracer trace.Tracer
	m      *instruments

	mu       sync.Mutex
	sessions map[string]*session
	live     map[string]struct{} // sessions counted in popscope.sessions.active
	closed   bool
	logLast  time.Time
	logSkip  int
}

var _ event.Observer = (*Exporter)(nil)

// New returns an Exporter. It performs no I/O: the providers (the globals
// unless WithTracerProvider/WithMeterProvider say otherwise) own the
// exporting. The error, if any, is from creating an instrument; the
// Exporter is usable anyway (that instrument records nothing).
func New(opts ...Option) (*Exporter, error) {
	cfg := newConfig(opts)
	tp, mp := cfg.tp, cfg.mp
	if tp == nil {
		tp = gotel.GetTracerProvider()
	}
	if mp == nil {
		mp = gotel.GetMeterProvider()
	}
	m, err := newInstruments(mp.Meter(ScopeName, metric.WithInstrumentationVersion(Version)))
	if err != nil {
		err = fmt.Errorf("otel: creating instruments: %w", err)
	}
	return &Exporter{
		cfg:      cfg,
		tracer:   tp.Tracer(ScopeName, trace.WithInstrumentationVersion(Version)),
		m:        m,
		sessions: make(map[string]*session),
		live:     make(map[string]struct{}),
	}, err
}

// Observe implements event.Observer. Events must arrive in bus order (per
// session Seq order), as the bus guarantees.
func (x *Exporter) Observe(e *event.Event) {
	if e == nil {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return
	}
	x.measure(e)
	if e.Type == event.Dropped {
		if e.Observer == x.cfg.observerName {
			for _, s := range x.sessions {
				s.eventsLost = true
			}
		}
		return
	}
	if x.cfg.noTraces {
		return
	}
	if e.Type == event.SessionStart {
		x.startSession(e)
		return
	}
	s := x.sessions[e.Session]
	if s == nil {
		return
	}
	s.observe(e)
	if e.Type == event.SessionEnd {
		delete(x.sessions, e.Session)
		x.emit(s)
	}
}

// Close emits the traces of the sessions still open (marked pop3.truncated,
// reason "exporter closed") and stops observing. Call it after the bus has
// drained (event.Bus.Close) and before the TracerProvider shuts down. It is
// idempotent.
func (x *Exporter) Close() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return
	}
	x.closed = true
	for id, s := range x.sessions {
		delete(x.sessions, id)
		s.truncate("exporter closed")
		x.emit(s)
	}
}

// Sessions reports how many sessions are being traced.
func (x *Exporter) Sessions() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.sessions)
}

func (x *Exporter) startSession(e *event.Event) {
	if _, dup := x.sessions[e.Session]; dup || e.Session == "" {
		return
	}
	if len(x.sessions) >= x.cfg.maxSessions {
		x.evictOldest()
	}
	x.sessions[e.Session] = newSession(e, &x.cfg, x.m)
}

func (x *Exporter) evictOldest() {
	var old *session
	for _, s := range x.sessions { // bounded by maxSessions
		if old == nil || s.start.Before(old.start) {
			old = s
		}
	}
	if old == nil {
		return
	}
	delete(x.sessions, old.id)
	old.truncate("evicted: more than " + fmt.Sprint(x.cfg.maxSessions) + " sessions in flight")
	x.m.drop(context.Background(), DropSessionEvicted, 1)
	x.logf("otel: tracing more than %d sessions at once; the oldest (%s) was emitted early, truncated (see %s)",
		x.cfg.maxSessions, old.id, MetricTelemetryDrops)
	x.emit(old)
}

// logf reports at most one line a minute.
func (x *Exporter) logf(format string, args ...any) {
	if x.cfg.logf == nil {
		return
	}
	now := time.Now()
	if !x.logLast.IsZero() && now.Sub(x.logLast) < time.Minute {
		x.logSkip++
		return
	}
	if x.logSkip > 0 {
		format += fmt.Sprintf(" (%d similar messages suppressed)", x.logSkip)
	}
	x.logLast, x.logSkip = now, 0
	x.cfg.logf(format, args...)
}

// measure records the metrics of one event. Metrics need no session
// state, so they count every session, traced or not.
func (x *Exporter) measure(e *event.Event) {
	ctx := context.Background()
	switch e.Type {
	case event.SessionStart:
		// The set of live sessions keeps the up-down counter balanced
		// when a session_start was lost; it is bounded too.
		if _, dup := x.live[e.Session]; !dup && len(x.live) < maxLive {
			x.live[e.Session] = struct{}{}
			x.m.active.Add(ctx, 1)
		}
	case event.SessionEnd:
		if _, ok := x.live[e.Session]; ok {
			delete(x.live, e.Session)
			x.m.active.Add(ctx, -1)
		}
		x.m.sessions.Add(ctx, 1, attrSet(KeyCloseReason.String(closeReason(e.Reason))))
		if e.BytesC2S > 0 {
			x.m.bytes.Add(ctx, e.BytesC2S, attrSet(KeyDirection.String("client_to_server")))
		}
		if e.BytesS2C > 0 {
			x.m.bytes.Add(ctx, e.BytesS2C, attrSet(KeyDirection.String("server_to_client")))
		}
	case event.Connected:
		x.m.connect.Record(ctx, e.LatencyMS/1000)
	case event.Response:
		verb, status := verbName(e.Verb), statusName(e.Status)
		set := attrSet(KeyCommand.String(verb), KeyStatus.String(status))
		x.m.commands.Add(ctx, 1, set)
		x.m.reply.Record(ctx, e.LatencyMS/1000, set)
	case event.Violation:
		x.m.violations.Add(ctx, 1, attrSet(KeyRuleID.String(ruleID(e.Rule)),
			KeyRuleSeverity.String(severityName(e.Severity)), KeyRuleBy.String(sideName(e.By))))
	case event.Dropped:
		x.m.obsDropped.Add(ctx, int64(e.Dropped), attrSet(KeyObserver.String(cut(e.Observer, 40))))
	}
}

// keep decides (tail sampling) whether a finished session is exported.
func (x *Exporter) keep(s *session) bool {
	if x.cfg.sampleRatio >= 1 || s.nViolations > 0 || s.failed() {
		return true
	}
	if x.cfg.sampleRatio <= 0 {
		return false
	}
	h := fnv.New64a()
	h.Write([]byte(s.id))
	// FNV mixes the high bits of short keys poorly: finish with the
	// SplitMix64 finaliser.
	v := h.Sum64()
	v ^= v >> 30
	v *= 0xbf58476d1ce4e5b9
	v ^= v >> 27
	v *= 0x94d049bb133111eb
	v ^= v >> 31
	return float64(v>>11)/float64(1<<53) < x.cfg.sampleRatio
}

// emit builds the spans of a finished (or truncated) session.
func (x *Exporter) emit(s *session) {
	ctx := context.Background()
	x.m.drop(ctx, DropSpanCap, int64(s.skipped))
	x.m.drop(ctx, DropEventCap, int64(s.eventsDropped))
	if !x.keep(s) {
		return
	}
	s.build(ctx, x.tracer)
}

// closeReason bounds the reason text used as a metric attribute.
func closeReason(r string) string {
	if r == "" {
		return "unknown"
	}
	return cut(r, 40)
}

func statusName(st string) string {
	switch st {
	case "+OK", "-ERR":
		return st
	case "":
		return "none"
	}
	return "_OTHER"
}

func severityName(s event.Severity) string {
	switch s {
	case event.Error, event.Warning, event.Info:
		return string(s)
	}
	return "_OTHER"
}

func sideName(s event.Side) string {
	if n := s.String(); n != "" {
		return n
	}
	return "none"
}

// cut shortens s to at most n bytes without splitting a UTF-8 sequence.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}

// attrs is a small builder that skips empty values.
type attrs []attribute.KeyValue

func (a *attrs) str(k attribute.Key, v string) {
	if v != "" {
		*a = append(*a, k.String(v))
	}
}

func (a *attrs) num(k attribute.Key, v int64) {
	if v != 0 {
		*a = append(*a, k.Int64(v))
	}
}

func (a *attrs) flag(k attribute.Key, v bool) {
	if v {
		*a = append(*a, k.Bool(true))
	}
}
