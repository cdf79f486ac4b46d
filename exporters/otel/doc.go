// Package otel exports popscope's events as OpenTelemetry traces and
// metrics: one trace per proxied POP3 session, a span per command
// exchange, violations as span events, and counters and histograms for
// sessions, commands, reply latency, bytes, violations and observer drops.
// docs/telemetry.md lists every span, attribute and metric.
//
// # Usage
//
//	pipe, err := otel.NewPipeline(ctx, otel.Config{Endpoint: "127.0.0.1:4317", SetErrorHandler: true})
//	exp, err := otel.New(append(pipe.Options(), otel.WithUserName(false))...)
//	sub := bus.Subscribe("otel", exp)
//	...
//	bus.Close(ctx)        // drain the observers
//	exp.Close()           // emit sessions still open, marked truncated
//	pipe.Shutdown(ctx)    // flush, bounded by ctx
//
// The Exporter works with any TracerProvider and MeterProvider (the otel
// globals by default); Pipeline is the SDK set-up popscope itself uses:
// OTLP over gRPC or HTTP, the standard OTEL_* environment variables, a
// bounded batch span processor, an optional Prometheus endpoint.
//
// # Trace shape
//
// The root span "POP3 session" (kind server) lasts from the session_start
// event to session_end. Its children: "POP3 connect" (kind client,
// session_start → upstream_connected; status Error when the upstream was
// unreachable), "POP3 greeting" (connected → greeting), "TLS handshake"
// for each tls event, and one "POP3 <VERB>" span per command, from the
// command event to its response event, matched by session and command ID,
// so pipelined commands overlap as they did on the wire. Violations are
// "pop3.violation" span events on the span they are about, with the rule
// ID, severity, side, detail and the catalog summary. Every timestamp is
// the event's own.
//
// # Redaction
//
// Events are redacted at the source, and this package does not rely on it:
// no command argument is exported except message numbers, the TOP line
// count and the AUTH mechanism name; SASL lines and challenges are never
// exported, nor the reply text of AUTH; decoder details that quote a
// client line have the quotation elided; user.name only with WithUserName.
//
// # Concurrency and bounds
//
// The Exporter is meant to be the observer of one bus subscription, which
// calls Observe from one goroutine; Observe and Close are nevertheless
// safe to call concurrently. It never blocks on the network: spans go to
// the SDK's batch processor, whose bounded queue drops (and the Pipeline
// counts) what does not fit. State is bounded: at most WithMaxSessions
// sessions (the oldest is emitted early, truncated, when a new one needs
// room), WithMaxSpansPerSession command spans and WithMaxEventsPerSession
// span events per session; whatever is cut is counted in the
// popscope.otel.dropped metric.
//
// Spans are built when a session ends, which allows tail sampling
// (WithSampleRatio keeps every session with a violation or failure) at the
// price of a session's trace appearing only once it has ended.
package otel
