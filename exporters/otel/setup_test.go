package otel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	gotel "go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	collmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	colltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/popscope/popscope/event"
)

func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestPipelineOffUnlessAsked(t *testing.T) {
	for name, c := range map[string]Config{
		"nothing":      {Getenv: envMap(nil)},
		"sdk disabled": {Endpoint: "127.0.0.1:4317", Getenv: envMap(map[string]string{"OTEL_SDK_DISABLED": "true"})},
		"both none": {Endpoint: "127.0.0.1:4317", Getenv: envMap(map[string]string{
			"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"})},
	} {
		p, err := NewPipeline(context.Background(), c)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if p.Enabled() {
			t.Errorf("%s: pipeline enabled", name)
		}
		x, _ := New(p.Options()...)
		if !x.cfg.noTraces {
			t.Errorf("%s: exporter would buffer sessions for nothing", name)
		}
		_ = p.Shutdown(context.Background())
	}
	// The env endpoint alone turns traces on.
	p, err := NewPipeline(context.Background(), Config{Getenv: envMap(map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_METRICS_EXPORTER": "none"})})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(context.Background())
	if p.TracerProvider == nil || p.MeterProvider != nil || p.TraceProtocol != ProtocolHTTPProtobuf {
		t.Errorf("env endpoint: tp %v mp %v proto %q", p.TracerProvider != nil, p.MeterProvider != nil, p.TraceProtocol)
	}
}

func TestProtocolChoice(t *testing.T) {
	for _, c := range []struct {
		flag, endpoint string
		env            map[string]string
		want           string
		err            bool
	}{
		{endpoint: "127.0.0.1:4317", want: ProtocolGRPC},
		{endpoint: "127.0.0.1:4318", want: ProtocolHTTPProtobuf},
		{endpoint: "http://collector:4318/otlp", want: ProtocolHTTPProtobuf},
		{endpoint: "collector:9999", want: ProtocolGRPC},
		{flag: "http/protobuf", endpoint: "127.0.0.1:4317", want: ProtocolHTTPProtobuf},
		{endpoint: "127.0.0.1:4317", env: map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, want: ProtocolHTTPProtobuf},
		{endpoint: "127.0.0.1:4318", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}, want: ProtocolGRPC},
		{flag: "grpc", env: map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, want: ProtocolGRPC},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://h:4318"}, want: ProtocolHTTPProtobuf},
		{flag: "http/json", err: true},
		{flag: "smoke-signals", err: true},
	} {
		got, err := protocol(Config{Protocol: c.flag, Endpoint: c.endpoint}, envMap(c.env), "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
		if (err != nil) != c.err || got != c.want {
			t.Errorf("protocol(flag %q, endpoint %q, env %v) = %q, %v; want %q", c.flag, c.endpoint, c.env, got, err, c.want)
		}
	}
}

func TestParseEndpoint(t *testing.T) {
	for in, want := range map[string]endpoint{
		"127.0.0.1:4317":               {hostPort: "127.0.0.1:4317", insecure: true},
		"http://127.0.0.1:4318":        {hostPort: "127.0.0.1:4318", insecure: true},
		"https://collector:4318/otlp/": {hostPort: "collector:4318", path: "/otlp"},
	} {
		got, err := parseEndpoint(in)
		if err != nil || got != want {
			t.Errorf("parseEndpoint(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"collector", "ftp://x:1", "http://"} {
		if _, err := parseEndpoint(bad); err == nil {
			t.Errorf("parseEndpoint(%q) accepted", bad)
		}
	}
}

// otlpSink is a minimal OTLP receiver over HTTP and gRPC.
type otlpSink struct {
	colltrace.UnimplementedTraceServiceServer
	mu      sync.Mutex
	spans   []string // span names
	metrics []string // metric names
	paths   []string
}

func (s *otlpSink) Export(_ context.Context, req *colltrace.ExportTraceServiceRequest) (*colltrace.ExportTraceServiceResponse, error) {
	s.addTraces(req)
	return &colltrace.ExportTraceServiceResponse{}, nil
}

func (s *otlpSink) addTraces(req *colltrace.ExportTraceServiceRequest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				s.spans = append(s.spans, sp.Name)
			}
		}
	}
}

type metricsSvc struct {
	collmetrics.UnimplementedMetricsServiceServer
	s *otlpSink
}

func (m metricsSvc) Export(_ context.Context, req *collmetrics.ExportMetricsServiceRequest) (*collmetrics.ExportMetricsServiceResponse, error) {
	m.s.addMetrics(req)
	return &collmetrics.ExportMetricsServiceResponse{}, nil
}

func (s *otlpSink) addMetrics(req *collmetrics.ExportMetricsServiceRequest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rm := range req.ResourceMetrics {
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				s.metrics = append(s.metrics, m.Name)
			}
		}
	}
}

func (s *otlpSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	if err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	s.mu.Lock()
	s.paths = append(s.paths, r.URL.Path)
	s.mu.Unlock()
	switch {
	case strings.HasSuffix(r.URL.Path, "/v1/traces"):
		var req colltrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		s.addTraces(&req)
		b, _ := proto.Marshal(&colltrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(b)
	case strings.HasSuffix(r.URL.Path, "/v1/metrics"):
		var req collmetrics.ExportMetricsServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		s.addMetrics(&req)
		b, _ := proto.Marshal(&collmetrics.ExportMetricsServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(b)
	default:
		http.NotFound(w, r)
	}
}

func (s *otlpSink) snapshot() (spans, metrics, paths []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.spans...), append([]string(nil), s.metrics...), append([]string(nil), s.paths...)
}

func runThrough(t *testing.T, p *Pipeline) {
	t.Helper()
	x, err := New(p.Options()...)
	if err != nil {
		t.Fatal(err)
	}
	_, evs := curlSession("wire")
	for _, e := range evs {
		x.Observe(e)
	}
	x.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.ForceFlush(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	if err := p.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

func TestOTLPOverHTTP(t *testing.T) {
	sink := &otlpSink{}
	srv := httptest.NewServer(sink) // 127.0.0.1
	defer srv.Close()
	// httptest picks a random port, so the protocol is not guessed: say it.
	p, err := NewPipeline(context.Background(), Config{Endpoint: srv.URL + "/base/", Protocol: "http/protobuf", Getenv: envMap(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if p.TraceProtocol != ProtocolHTTPProtobuf || !p.OTLPMetrics {
		t.Fatalf("protocol %q, OTLP metrics %v", p.TraceProtocol, p.OTLPMetrics)
	}
	runThrough(t, p)
	spans, metrics, paths := sink.snapshot()
	if len(spans) != 7 || !contains(spans, "POP3 RETR") {
		t.Errorf("received spans %v", spans)
	}
	if !contains(metrics, MetricCommands) || !contains(metrics, MetricReplyDuration) {
		t.Errorf("received metrics %v", metrics)
	}
	if !contains(paths, "/base/v1/traces") || !contains(paths, "/base/v1/metrics") {
		t.Errorf("paths %v", paths)
	}
}

func TestOTLPOverGRPC(t *testing.T) {
	sink := &otlpSink{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	colltrace.RegisterTraceServiceServer(gs, sink)
	collmetrics.RegisterMetricsServiceServer(gs, metricsSvc{s: sink})
	go gs.Serve(ln)
	defer gs.Stop()
	p, err := NewPipeline(context.Background(), Config{Endpoint: ln.Addr().String(), Getenv: envMap(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if p.TraceProtocol != ProtocolGRPC {
		t.Fatalf("protocol %q", p.TraceProtocol)
	}
	runThrough(t, p)
	spans, metrics, _ := sink.snapshot()
	if len(spans) != 7 || !contains(spans, SpanSession) {
		t.Errorf("received spans %v", spans)
	}
	if !contains(metrics, MetricSessions) {
		t.Errorf("received metrics %v", metrics)
	}
}

func TestPrometheusEndpoint(t *testing.T) {
	p, err := NewPipeline(context.Background(), Config{MetricsListen: "127.0.0.1:0", Getenv: envMap(nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(context.Background())
	if p.TracerProvider != nil || p.MeterProvider == nil || p.MetricsAddr == "" {
		t.Fatalf("metrics-only pipeline: tp %v mp %v addr %q", p.TracerProvider != nil, p.MeterProvider != nil, p.MetricsAddr)
	}
	x, _ := New(p.Options()...)
	_, evs := curlSession("prom")
	for _, e := range evs {
		x.Observe(e)
	}
	resp, err := http.Get("http://" + p.MetricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`popscope_sessions_total{`, `pop3_close_reason="client closed"`,
		`popscope_commands_total{`, `pop3_command="RETR"`,
		`popscope_reply_duration_seconds_bucket{`,
		`popscope_bytes_total{`, `pop3_direction="server_to_client"`,
		`popscope_sessions_active`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", body)
	}
}

// TestUnreachableCollector: with nothing listening, observing costs no
// more than without, Shutdown returns within its bound, the loss is
// counted and one log line says so.
func TestUnreachableCollector(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "300") // ms, read by the SDK exporter
	t.Cleanup(func() { gotel.SetErrorHandler(gotel.ErrorHandlerFunc(func(error) {})) })

	var mu sync.Mutex
	var lines []string
	p, err := NewPipeline(context.Background(), Config{
		Endpoint: "http://" + dead, Protocol: "http/protobuf", SetErrorHandler: true, ErrorInterval: time.Hour,
		Getenv: envMap(map[string]string{"OTEL_METRICS_EXPORTER": "none"}),
		Logf: func(f string, a ...any) {
			mu.Lock()
			lines = append(lines, fmt.Sprintf(f, a...))
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	x, _ := New(p.Options()...)
	start := time.Now()
	for i := range 200 {
		_, evs := curlSession(fmt.Sprintf("dead%03d", i))
		for _, e := range evs {
			x.Observe(e)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("observing 200 sessions took %v with the collector down", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = p.ForceFlush(ctx)
	t0 := time.Now()
	sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer scancel()
	_ = p.Shutdown(sctx)
	if d := time.Since(t0); d > 3*time.Second {
		t.Errorf("Shutdown took %v, bound 2s", d)
	}
	full, failed := p.Lost()
	if full+failed == 0 {
		t.Error("no loss counted")
	}
	if p.Errors() == 0 {
		t.Error("no error reached the handler")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(lines) != 1 || !strings.Contains(lines[0], "relay is unaffected") {
		t.Errorf("log lines %q, want exactly one", lines)
	}
}

// blockedProcessor never exports: every span stays in flight.
type blockedProcessor struct{ sdktrace.SpanProcessor }

func (blockedProcessor) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (blockedProcessor) OnEnd(sdktrace.ReadOnlySpan)                     {}
func (blockedProcessor) Shutdown(context.Context) error                  { return nil }
func (blockedProcessor) ForceFlush(context.Context) error                { return nil }

func TestQueueFullIsCounted(t *testing.T) {
	p := &Pipeline{queueSize: 3}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(&guardProcessor{SpanProcessor: blockedProcessor{}, p: p}))
	defer tp.Shutdown(context.Background())
	tr := tp.Tracer("t")
	for range 10 {
		_, sp := tr.Start(context.Background(), "x")
		sp.End()
	}
	if full, _ := p.Lost(); full != 7 {
		t.Errorf("queue_full = %d, want 7", full)
	}
	// An export returning gives the room back.
	ce := &countingExporter{SpanExporter: nopExporter{}, p: p}
	_ = ce.ExportSpans(context.Background(), make([]sdktrace.ReadOnlySpan, 3))
	if got := p.inflight.Load(); got != 0 {
		t.Errorf("in flight %d after export", got)
	}
	ce.SpanExporter = nopExporter{err: errors.New("refused")}
	p.inflight.Add(2)
	_ = ce.ExportSpans(context.Background(), make([]sdktrace.ReadOnlySpan, 2))
	if _, failed := p.Lost(); failed != 2 {
		t.Errorf("export_failed = %d", failed)
	}
}

type nopExporter struct{ err error }

func (n nopExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return n.err }
func (nopExporter) Shutdown(context.Context) error                               { return nil }

func TestRateLimitedHandler(t *testing.T) {
	var lines []string
	h := &rateLimitedHandler{interval: time.Hour, logf: func(f string, a ...any) { lines = append(lines, fmt.Sprintf(f, a...)) }}
	for range 50 {
		h.Handle(errors.New("connection refused"))
	}
	if len(lines) != 1 || h.total.Load() != 50 {
		t.Errorf("%d lines, %d counted", len(lines), h.total.Load())
	}
	h.last = time.Now().Add(-2 * time.Hour)
	h.Handle(errors.New("again"))
	if len(lines) != 2 || !strings.Contains(lines[1], "49 more errors") {
		t.Errorf("lines %q", lines)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

var _ event.Observer = (*Exporter)(nil)
