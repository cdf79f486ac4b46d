package otel

import (
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Defaults of the bounds on the exporter's state.
const (
	// DefaultMaxSessions is how many sessions are traced at once; a new
	// session beyond it evicts the oldest one, whose trace is emitted
	// at once, marked pop3.truncated.
	DefaultMaxSessions = 4096
	// DefaultMaxSpansPerSession caps the command spans buffered for one
	// session; further commands are counted (pop3.spans_skipped) and still
	// measured by the metrics.
	DefaultMaxSpansPerSession = 256
	// DefaultMaxEventsPerSession caps the span events (state changes,
	// notes, violations) buffered for one session.
	DefaultMaxEventsPerSession = 256
	// DefaultObserverName is the bus subscription name the exporter
	// expects for itself (see WithObserverName).
	DefaultObserverName = "otel"
)

type config struct {
	tp           trace.TracerProvider
	mp           metric.MeterProvider
	userName     bool
	maxSessions  int
	maxSpans     int
	maxEvents    int
	sampleRatio  float64
	observerName string
	logf         func(format string, args ...any)
	noTraces     bool
}

func newConfig(opts []Option) config {
	c := config{
		maxSessions:  DefaultMaxSessions,
		maxSpans:     DefaultMaxSpansPerSession,
		maxEvents:    DefaultMaxEventsPerSession,
		sampleRatio:  1,
		observerName: DefaultObserverName,
	}
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	return c
}

// Option configures an Exporter. Options are sealed: only this package
// makes them.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithTracerProvider sets the TracerProvider spans are made with. nil (or
// no option) means the global one (otel.GetTracerProvider).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return optionFunc(func(c *config) { c.tp = tp })
}

// WithMeterProvider sets the MeterProvider of the metrics. nil (or no
// option) means the global one (otel.GetMeterProvider).
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(c *config) { c.mp = mp })
}

// WithUserName adds user.name (the USER/APOP name or SASL authcid) to the
// session span. Off by default: a user name is personal data.
func WithUserName(on bool) Option {
	return optionFunc(func(c *config) { c.userName = on })
}

// WithMaxSessions bounds how many sessions are traced at once (default
// DefaultMaxSessions; n < 1 means 1).
func WithMaxSessions(n int) Option {
	return optionFunc(func(c *config) { c.maxSessions = max(n, 1) })
}

// WithMaxSpansPerSession bounds the command spans buffered per session
// (default DefaultMaxSpansPerSession; n < 1 means 1).
func WithMaxSpansPerSession(n int) Option {
	return optionFunc(func(c *config) { c.maxSpans = max(n, 1) })
}

// WithMaxEventsPerSession bounds the span events buffered per session
// (default DefaultMaxEventsPerSession; n < 1 means 1).
func WithMaxEventsPerSession(n int) Option {
	return optionFunc(func(c *config) { c.maxEvents = max(n, 1) })
}

// WithSampleRatio keeps only a fraction r (0..1) of the uneventful
// sessions. A session with a violation, a failed upstream connect or an
// error status is always kept. The decision is made when the session
// ends, from the session ID, before any span exists, so a dropped session
// costs no span at all. Metrics always count every session. Default 1.
// The SDK's head sampler (OTEL_TRACES_SAMPLER) applies on top of this.
func WithSampleRatio(r float64) Option {
	return optionFunc(func(c *config) {
		if r != r || r > 1 { // NaN or above 1
			r = 1
		}
		c.sampleRatio = max(r, 0)
	})
}

// WithObserverName tells the exporter the name it is subscribed under on
// the bus, so that a drop report about itself marks the sessions in
// flight as incomplete (pop3.events_lost). Default DefaultObserverName.
func WithObserverName(name string) Option {
	return optionFunc(func(c *config) { c.observerName = name })
}

// WithLogf sets where the exporter reports evictions (rate-limited to one
// line a minute). nil discards them; they are counted either way.
func WithLogf(logf func(format string, args ...any)) Option {
	return optionFunc(func(c *config) { c.logf = logf })
}

// WithoutTraces makes a metrics-only exporter: no session is buffered and
// no span is made.
func WithoutTraces() Option {
	return optionFunc(func(c *config) { c.noTraces = true })
}
