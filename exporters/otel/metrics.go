package otel

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Metric names (OpenTelemetry form; a Prometheus scrape shows them with
// dots as underscores and a unit/_total suffix, e.g. popscope_sessions_total).
const (
	MetricSessionsActive  = "popscope.sessions.active"
	MetricSessions        = "popscope.sessions"
	MetricConnectDuration = "popscope.upstream.connect.duration"
	MetricCommands        = "popscope.commands"
	MetricReplyDuration   = "popscope.reply.duration"
	MetricBytes           = "popscope.bytes"
	MetricViolations      = "popscope.violations"
	MetricObserverDropped = "popscope.observer.dropped"
	MetricTelemetryDrops  = "popscope.otel.dropped"
)

// Reasons in popscope.otel.dropped{popscope.reason}.
const (
	DropSessionEvicted = "session_evicted" // a session's trace was cut short: too many sessions
	DropSpanCap        = "span_cap"        // a command got no span: per-session cap
	DropEventCap       = "event_cap"       // a span event was not kept: per-session cap
	DropQueueFull      = "queue_full"      // a finished span found the export queue full
	DropExportFailed   = "export_failed"   // the collector did not take a span
)

// Latency buckets in seconds, from a local NOOP (sub-millisecond) to a
// slow RETR of a large message.
var latencyBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

type instruments struct {
	active     metric.Int64UpDownCounter
	sessions   metric.Int64Counter
	connect    metric.Float64Histogram
	commands   metric.Int64Counter
	reply      metric.Float64Histogram
	bytes      metric.Int64Counter
	violations metric.Int64Counter
	obsDropped metric.Int64Counter
	telDropped metric.Int64Counter
}

// newInstruments creates every instrument; an error leaves a no-op
// instrument in place (the metric API guarantees a usable value), so the
// first error is only returned for the caller to report.
func newInstruments(m metric.Meter) (*instruments, error) {
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	in := &instruments{}
	var err error
	in.active, err = m.Int64UpDownCounter(MetricSessionsActive, metric.WithUnit("{session}"),
		metric.WithDescription("Sessions open through the proxy."))
	keep(err)
	in.sessions, err = m.Int64Counter(MetricSessions, metric.WithUnit("{session}"),
		metric.WithDescription("Sessions ended, by close reason."))
	keep(err)
	in.connect, err = m.Float64Histogram(MetricConnectDuration, metric.WithUnit("s"),
		metric.WithDescription("Time to open the upstream TCP connection."),
		metric.WithExplicitBucketBoundaries(latencyBuckets...))
	keep(err)
	in.commands, err = m.Int64Counter(MetricCommands, metric.WithUnit("{command}"),
		metric.WithDescription("Command exchanges completed, by verb and reply status."))
	keep(err)
	in.reply, err = m.Float64Histogram(MetricReplyDuration, metric.WithUnit("s"),
		metric.WithDescription("Time from a command's arrival to the end of its reply, by verb."),
		metric.WithExplicitBucketBoundaries(latencyBuckets...))
	keep(err)
	in.bytes, err = m.Int64Counter(MetricBytes, metric.WithUnit("By"),
		metric.WithDescription("Bytes relayed, by direction (counted when a session ends)."))
	keep(err)
	in.violations, err = m.Int64Counter(MetricViolations, metric.WithUnit("{violation}"),
		metric.WithDescription("POP3 rule violations, by rule, severity and side."))
	keep(err)
	in.obsDropped, err = m.Int64Counter(MetricObserverDropped, metric.WithUnit("{event}"),
		metric.WithDescription("Events lost by slow observers on popscope's event bus."))
	keep(err)
	in.telDropped, err = m.Int64Counter(MetricTelemetryDrops, metric.WithUnit("{item}"),
		metric.WithDescription("Spans, span events or session traces popscope did not export, by reason."))
	keep(err)
	return in, first
}

func (in *instruments) drop(ctx context.Context, reason string, n int64) {
	if n > 0 {
		in.telDropped.Add(ctx, n, metric.WithAttributes(KeyReason.String(reason)))
	}
}

func attrSet(kv ...attribute.KeyValue) metric.MeasurementOption {
	return metric.WithAttributeSet(attribute.NewSet(kv...))
}
