package otel

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	promclient "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	gotel "go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// OTLP protocols.
const (
	ProtocolGRPC         = "grpc"
	ProtocolHTTPProtobuf = "http/protobuf"
)

// Config says where a Pipeline sends telemetry. The zero value exports
// nothing: tracing is off unless an endpoint is given here or in the
// environment.
type Config struct {
	// Endpoint is the OTLP receiver: "host:port" (plaintext), or a URL
	// ("http://collector:4318", "https://collector:4317"; for HTTP a path
	// is the base to which /v1/traces and /v1/metrics are added). Empty:
	// the standard OTEL_EXPORTER_OTLP_[TRACES_|METRICS_]ENDPOINT variables
	// decide, and with none of them set nothing goes out over OTLP.
	// Headers, certificates, timeouts, compression come from the standard
	// OTEL_EXPORTER_OTLP_* variables, read by the SDK's exporters.
	Endpoint string
	// Protocol is ProtocolGRPC or ProtocolHTTPProtobuf. Empty:
	// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL / _METRICS_PROTOCOL /
	// OTEL_EXPORTER_OTLP_PROTOCOL, else guessed from the endpoint port
	// (4318: http/protobuf, otherwise grpc).
	Protocol string
	// MetricsListen, if set, serves the metrics for Prometheus at
	// http://MetricsListen/metrics.
	MetricsListen string
	// ServiceVersion is the service.version resource attribute.
	ServiceVersion string
	// Logf receives the few lines the pipeline prints: export errors,
	// rate-limited by ErrorInterval. nil discards them.
	Logf func(format string, args ...any)
	// ErrorInterval is the minimum time between two logged export errors
	// (default one minute). Errors in between are counted and the count
	// is printed with the next line.
	ErrorInterval time.Duration
	// Getenv reads the environment (default os.Getenv); for tests.
	Getenv func(string) string
	// SetErrorHandler installs the rate-limited logger as the global
	// OpenTelemetry error handler (otel.SetErrorHandler), through which
	// the SDK reports failed exports. popscope sets it; a library user
	// with its own handler leaves it false.
	SetErrorHandler bool
}

// Pipeline is the OpenTelemetry SDK set up from a Config: a TracerProvider
// with a bounded batch span processor and an OTLP exporter, a
// MeterProvider with an OTLP periodic reader and/or a Prometheus endpoint.
type Pipeline struct {
	// TracerProvider is nil when traces are off.
	TracerProvider *sdktrace.TracerProvider
	// MeterProvider is nil when metrics are off.
	MeterProvider *sdkmetric.MeterProvider
	// TraceEndpoint, TraceProtocol describe where spans go ("" when off).
	TraceEndpoint, TraceProtocol string
	// OTLPMetrics reports whether metrics go out over OTLP.
	OTLPMetrics bool
	// MetricsAddr is the address the Prometheus endpoint listens on.
	MetricsAddr string

	srv       *http.Server
	handler   *rateLimitedHandler
	inflight  atomic.Int64
	queueSize int64
	dropped   atomic.Uint64 // spans not exported: queue full
	failed    atomic.Uint64 // spans not exported: the receiver refused or was unreachable
	dropCtr   metric.Int64Counter
	once      sync.Once
	err       error
}

// Enabled reports whether the pipeline exports anything.
func (p *Pipeline) Enabled() bool { return p.TracerProvider != nil || p.MeterProvider != nil }

// Options returns the exporter options that use this pipeline's providers.
func (p *Pipeline) Options() []Option {
	var opts []Option
	if p.TracerProvider != nil {
		opts = append(opts, WithTracerProvider(p.TracerProvider))
	} else {
		opts = append(opts, WithoutTraces())
	}
	if p.MeterProvider != nil {
		opts = append(opts, WithMeterProvider(p.MeterProvider))
	}
	return opts
}

// Lost reports the spans that were not exported: dropped because the
// export queue was full, and refused by (or undeliverable to) the receiver.
func (p *Pipeline) Lost() (queueFull, exportFailed uint64) {
	return p.dropped.Load(), p.failed.Load()
}

// Pending reports the spans handed to the exporter and not yet settled
// (exported or failed); after a Shutdown that ran out of time, these are
// the spans that never left.
func (p *Pipeline) Pending() uint64 {
	return uint64(max(p.inflight.Load(), 0))
}

// Errors reports how many errors the SDK reported to the pipeline's error
// handler (only counted when SetErrorHandler was set).
func (p *Pipeline) Errors() uint64 {
	if p.handler == nil {
		return 0
	}
	return p.handler.total.Load()
}

// NewPipeline sets up the SDK. It opens no connection (OTLP exporters
// connect lazily) but does listen on MetricsListen. Shut it down with
// Shutdown.
func NewPipeline(ctx context.Context, cfg Config) (*Pipeline, error) {
	getenv := cfg.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	p := &Pipeline{}
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return p, nil
	}
	tracesOn := (cfg.Endpoint != "" || getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "") &&
		!envNone(getenv("OTEL_TRACES_EXPORTER"))
	metricsExp := strings.ToLower(strings.TrimSpace(getenv("OTEL_METRICS_EXPORTER")))
	otlpMetricsOn := (cfg.Endpoint != "" || getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") != "") &&
		!envNone(metricsExp) && metricsExp != "prometheus"
	if !tracesOn && !otlpMetricsOn && cfg.MetricsListen == "" {
		return p, nil
	}
	if cfg.SetErrorHandler {
		iv := cfg.ErrorInterval
		if iv <= 0 {
			iv = time.Minute
		}
		p.handler = &rateLimitedHandler{logf: cfg.Logf, interval: iv}
		gotel.SetErrorHandler(p.handler)
	}
	res, err := newResource(ctx, cfg.ServiceVersion)
	if err != nil {
		return nil, err
	}

	// Metrics first: the span drop counter lives there.
	var readers []sdkmetric.Option
	if otlpMetricsOn {
		proto, err := protocol(cfg, getenv, "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL")
		if err != nil {
			return nil, err
		}
		exp, err := newMetricExporter(ctx, cfg.Endpoint, proto)
		if err != nil {
			return nil, fmt.Errorf("otel: OTLP metrics: %w", err)
		}
		readers = append(readers, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp)))
		p.OTLPMetrics = true
	}
	var reg *promclient.Registry
	if cfg.MetricsListen != "" {
		reg = promclient.NewRegistry()
		pe, err := otelprom.New(otelprom.WithRegisterer(reg))
		if err != nil {
			return nil, fmt.Errorf("otel: prometheus exporter: %w", err)
		}
		readers = append(readers, sdkmetric.WithReader(pe))
	}
	if len(readers) > 0 {
		p.MeterProvider = sdkmetric.NewMeterProvider(append(readers, sdkmetric.WithResource(res))...)
		in, _ := newInstruments(p.MeterProvider.Meter(ScopeName, metric.WithInstrumentationVersion(Version)))
		p.dropCtr = in.telDropped
	}

	if tracesOn {
		proto, err := protocol(cfg, getenv, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
		if err != nil {
			p.shutdownMeters(ctx)
			return nil, err
		}
		exp, err := newTraceExporter(ctx, cfg.Endpoint, proto)
		if err != nil {
			p.shutdownMeters(ctx)
			return nil, fmt.Errorf("otel: OTLP traces: %w", err)
		}
		p.queueSize = int64(envInt(getenv, "OTEL_BSP_MAX_QUEUE_SIZE", sdktrace.DefaultMaxQueueSize))
		bsp := sdktrace.NewBatchSpanProcessor(&countingExporter{SpanExporter: exp, p: p},
			sdktrace.WithMaxQueueSize(int(p.queueSize)))
		// No WithSampler: the SDK reads OTEL_TRACES_SAMPLER(_ARG) itself.
		p.TracerProvider = sdktrace.NewTracerProvider(
			sdktrace.WithResource(res),
			sdktrace.WithSpanProcessor(&guardProcessor{SpanProcessor: bsp, p: p}),
		)
		p.TraceProtocol = proto
		p.TraceEndpoint = cfg.Endpoint
		if p.TraceEndpoint == "" {
			p.TraceEndpoint = firstNonEmpty(getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), getenv("OTEL_EXPORTER_OTLP_ENDPOINT"))
		}
	}

	if reg != nil {
		ln, err := net.Listen("tcp", cfg.MetricsListen)
		if err != nil {
			p.Shutdown(ctx)
			return nil, fmt.Errorf("otel: --metrics-listen %s: %w", cfg.MetricsListen, err)
		}
		p.MetricsAddr = ln.Addr().String()
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		p.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go p.srv.Serve(ln) //nolint:errcheck // ends with Shutdown
	}
	return p, nil
}

// Shutdown flushes what is queued and stops everything, bounded by ctx.
// It is idempotent; later calls return the first result.
func (p *Pipeline) Shutdown(ctx context.Context) error {
	p.once.Do(func() {
		var errs []error
		if p.srv != nil {
			errs = append(errs, p.srv.Shutdown(ctx))
		}
		if p.TracerProvider != nil {
			errs = append(errs, p.TracerProvider.Shutdown(ctx))
		}
		errs = append(errs, p.shutdownMeters(ctx))
		p.err = errors.Join(errs...)
	})
	return p.err
}

func (p *Pipeline) shutdownMeters(ctx context.Context) error {
	if p.MeterProvider == nil {
		return nil
	}
	return p.MeterProvider.Shutdown(ctx)
}

// ForceFlush exports what is queued now, bounded by ctx.
func (p *Pipeline) ForceFlush(ctx context.Context) error {
	var errs []error
	if p.TracerProvider != nil {
		errs = append(errs, p.TracerProvider.ForceFlush(ctx))
	}
	if p.MeterProvider != nil {
		errs = append(errs, p.MeterProvider.ForceFlush(ctx))
	}
	return errors.Join(errs...)
}

func (p *Pipeline) lose(reason string, n int64, ctr *atomic.Uint64) {
	ctr.Add(uint64(n))
	if p.dropCtr != nil {
		p.dropCtr.Add(context.Background(), n, metric.WithAttributes(KeyReason.String(reason)))
	}
}

// guardProcessor keeps the batch processor's queue from overflowing
// silently: a span that would not fit is counted (queue_full) and dropped
// here. In flight = handed to the batch processor and not yet returned by
// the exporter.
type guardProcessor struct {
	sdktrace.SpanProcessor
	p *Pipeline
}

func (g *guardProcessor) OnEnd(s sdktrace.ReadOnlySpan) {
	if !s.SpanContext().IsSampled() {
		return
	}
	if g.p.inflight.Add(1) > g.p.queueSize {
		g.p.inflight.Add(-1)
		g.p.lose(DropQueueFull, 1, &g.p.dropped)
		return
	}
	g.SpanProcessor.OnEnd(s)
}

// countingExporter counts the spans the receiver did not take.
type countingExporter struct {
	sdktrace.SpanExporter
	p *Pipeline
}

func (c *countingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := c.SpanExporter.ExportSpans(ctx, spans)
	c.p.inflight.Add(-int64(len(spans)))
	if err != nil {
		c.p.lose(DropExportFailed, int64(len(spans)), &c.p.failed)
	}
	return err
}

// rateLimitedHandler is the global OpenTelemetry error handler: the first
// error is logged at once, later ones at most once per interval, with a
// count of those in between. It never blocks on anything but logf.
type rateLimitedHandler struct {
	logf     func(format string, args ...any)
	interval time.Duration
	total    atomic.Uint64

	mu      sync.Mutex
	last    time.Time
	skipped int
}

func (h *rateLimitedHandler) Handle(err error) {
	h.total.Add(1)
	if h.logf == nil || err == nil {
		return
	}
	now := time.Now()
	h.mu.Lock()
	if !h.last.IsZero() && now.Sub(h.last) < h.interval {
		h.skipped++
		h.mu.Unlock()
		return
	}
	skipped := h.skipped
	h.last, h.skipped = now, 0
	h.mu.Unlock()
	msg := cut(err.Error(), 300)
	if skipped > 0 {
		h.logf("otel: %s (and %d more errors; telemetry is being dropped, the relay is unaffected)", msg, skipped)
		return
	}
	h.logf("otel: %s (telemetry is being dropped, the relay is unaffected; at most one such line per %s)", msg, h.interval)
}

func newResource(ctx context.Context, version string) (*resource.Resource, error) {
	var id [8]byte
	_, _ = rand.Read(id[:])
	base := []resource.Option{
		resource.WithAttributes(semconv.ServiceName("popscope"), semconv.ServiceInstanceID(hex.EncodeToString(id[:]))),
	}
	if version != "" {
		base = append(base, resource.WithAttributes(semconv.ServiceVersion(version)))
	}
	// Later detectors win: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
	// override the defaults above.
	res, err := resource.New(ctx, append(base, resource.WithTelemetrySDK(), resource.WithHost(), resource.WithFromEnv())...)
	if err != nil && res == nil {
		return nil, fmt.Errorf("otel: resource: %w", err)
	}
	// A partial resource (e.g. a malformed OTEL_RESOURCE_ATTRIBUTES) is
	// still usable; the SDK reports the error.
	if err != nil {
		gotel.Handle(err)
	}
	return res, nil
}

// protocol picks the OTLP protocol: the Config, then the signal's and the
// general OTEL_EXPORTER_OTLP_*PROTOCOL variables, then the port.
func protocol(cfg Config, getenv func(string) string, signalVar string) (string, error) {
	p := firstNonEmpty(cfg.Protocol, getenv(signalVar), getenv("OTEL_EXPORTER_OTLP_PROTOCOL"))
	switch strings.ToLower(strings.TrimSpace(p)) {
	case "grpc":
		return ProtocolGRPC, nil
	case "http/protobuf", "http":
		return ProtocolHTTPProtobuf, nil
	case "":
		ep := firstNonEmpty(cfg.Endpoint, getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), getenv("OTEL_EXPORTER_OTLP_ENDPOINT"))
		if _, port := splitEndpoint(ep); port == "4318" {
			return ProtocolHTTPProtobuf, nil
		}
		return ProtocolGRPC, nil
	case "http/json":
		return "", errors.New("otel: OTLP protocol http/json is not supported by the Go SDK; use grpc or http/protobuf")
	}
	return "", fmt.Errorf("otel: unknown OTLP protocol %q (want grpc or http/protobuf)", p)
}

// endpoint is a parsed Config.Endpoint.
type endpoint struct {
	hostPort string
	insecure bool
	path     string // HTTP base path, without trailing slash
}

func parseEndpoint(s string) (endpoint, error) {
	if !strings.Contains(s, "://") {
		if _, _, err := net.SplitHostPort(s); err != nil {
			return endpoint{}, fmt.Errorf("otel: endpoint %q: want host:port or a URL", s)
		}
		return endpoint{hostPort: s, insecure: true}, nil
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return endpoint{}, fmt.Errorf("otel: endpoint %q: want host:port or a URL", s)
	}
	switch u.Scheme {
	case "http", "https":
	default:
		return endpoint{}, fmt.Errorf("otel: endpoint %q: scheme must be http or https", s)
	}
	return endpoint{hostPort: u.Host, insecure: u.Scheme == "http", path: strings.TrimSuffix(u.Path, "/")}, nil
}

func splitEndpoint(s string) (host, port string) {
	if s == "" {
		return "", ""
	}
	if strings.Contains(s, "://") {
		if u, err := url.Parse(s); err == nil {
			return u.Hostname(), u.Port()
		}
		return "", ""
	}
	h, p, _ := net.SplitHostPort(s)
	return h, p
}

func newTraceExporter(ctx context.Context, ep, proto string) (sdktrace.SpanExporter, error) {
	var e endpoint
	if ep != "" {
		var err error
		if e, err = parseEndpoint(ep); err != nil {
			return nil, err
		}
	}
	if proto == ProtocolHTTPProtobuf {
		var opts []otlptracehttp.Option
		if ep != "" {
			opts = append(opts, otlptracehttp.WithEndpoint(e.hostPort), otlptracehttp.WithURLPath(e.path+"/v1/traces"))
			if e.insecure {
				opts = append(opts, otlptracehttp.WithInsecure())
			}
		}
		return otlptracehttp.New(ctx, opts...)
	}
	var opts []otlptracegrpc.Option
	if ep != "" {
		opts = append(opts, otlptracegrpc.WithEndpoint(e.hostPort))
		if e.insecure {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
	}
	return otlptracegrpc.New(ctx, opts...)
}

func newMetricExporter(ctx context.Context, ep, proto string) (sdkmetric.Exporter, error) {
	var e endpoint
	if ep != "" {
		var err error
		if e, err = parseEndpoint(ep); err != nil {
			return nil, err
		}
	}
	if proto == ProtocolHTTPProtobuf {
		var opts []otlpmetrichttp.Option
		if ep != "" {
			opts = append(opts, otlpmetrichttp.WithEndpoint(e.hostPort), otlpmetrichttp.WithURLPath(e.path+"/v1/metrics"))
			if e.insecure {
				opts = append(opts, otlpmetrichttp.WithInsecure())
			}
		}
		return otlpmetrichttp.New(ctx, opts...)
	}
	var opts []otlpmetricgrpc.Option
	if ep != "" {
		opts = append(opts, otlpmetricgrpc.WithEndpoint(e.hostPort))
		if e.insecure {
			opts = append(opts, otlpmetricgrpc.WithInsecure())
		}
	}
	return otlpmetricgrpc.New(ctx, opts...)
}

func envNone(v string) bool { return strings.EqualFold(strings.TrimSpace(v), "none") }

func envInt(getenv func(string) string, key string, def int) int {
	if n, err := strconv.Atoi(strings.TrimSpace(getenv(key))); err == nil && n > 0 {
		return n
	}
	return def
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
