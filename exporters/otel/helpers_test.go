package otel

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/popscope/popscope/event"
)

// harness is an Exporter wired to an in-memory span exporter (synchronous)
// and a manual metric reader.
type harness struct {
	t      testing.TB
	exp    *Exporter
	spans  *tracetest.InMemoryExporter
	reader *sdkmetric.ManualReader
	tp     *sdktrace.TracerProvider
}

func newHarness(t testing.TB, opts ...Option) *harness {
	t.Helper()
	mem := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(mem))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	x, err := New(append([]Option{WithTracerProvider(tp), WithMeterProvider(mp)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()); _ = mp.Shutdown(context.Background()) })
	return &harness{t: t, exp: x, spans: mem, reader: reader, tp: tp}
}

func (h *harness) feed(evs ...*event.Event) {
	for _, e := range evs {
		h.exp.Observe(e)
	}
}

// trace returns the spans of one session, by name (a name that occurs more
// than once gets "#2", "#3"… suffixes).
func (h *harness) trace(session string) map[string]tracetest.SpanStub {
	h.t.Helper()
	all := h.spans.GetSpans()
	var rootTrace string
	for _, s := range all {
		if s.Name == SpanSession && attrOf(s.Attributes, "session.id").AsString() == session {
			rootTrace = s.SpanContext.TraceID().String()
		}
	}
	if rootTrace == "" {
		h.t.Fatalf("no session span for %s among %d spans", session, len(all))
	}
	out := map[string]tracetest.SpanStub{}
	for _, s := range all {
		if s.SpanContext.TraceID().String() != rootTrace {
			continue
		}
		name := s.Name
		for i := 2; ; i++ {
			if _, dup := out[name]; !dup {
				break
			}
			name = fmt.Sprintf("%s#%d", s.Name, i)
		}
		out[name] = s
	}
	return out
}

func attrOf(kvs []attribute.KeyValue, key string) attribute.Value {
	for _, kv := range kvs {
		if string(kv.Key) == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

func hasAttr(kvs []attribute.KeyValue, key string) bool {
	for _, kv := range kvs {
		if string(kv.Key) == key {
			return true
		}
	}
	return false
}

func (h *harness) metrics() metricdata.ResourceMetrics {
	h.t.Helper()
	var rm metricdata.ResourceMetrics
	if err := h.reader.Collect(context.Background(), &rm); err != nil {
		h.t.Fatal(err)
	}
	return rm
}

// sum returns the value of an int64 sum metric for the data point whose
// attributes include every key=value in match ("" matches all points,
// summed).
func sumOf(rm metricdata.ResourceMetrics, name string, match ...attribute.KeyValue) (int64, bool) {
	var total int64
	found := false
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			s, ok := m.Data.(metricdata.Sum[int64])
			if !ok {
				continue
			}
			for _, dp := range s.DataPoints {
				if matches(dp.Attributes, match) {
					total += dp.Value
					found = true
				}
			}
		}
	}
	return total, found
}

func histOf(rm metricdata.ResourceMetrics, name string, match ...attribute.KeyValue) (count uint64, sum float64, found bool) {
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			hg, ok := m.Data.(metricdata.Histogram[float64])
			if !ok {
				continue
			}
			for _, dp := range hg.DataPoints {
				if matches(dp.Attributes, match) {
					count += dp.Count
					sum += dp.Sum
					found = true
				}
			}
		}
	}
	return
}

func matches(set attribute.Set, want []attribute.KeyValue) bool {
	for _, kv := range want {
		v, ok := set.Value(kv.Key)
		if !ok || v != kv.Value {
			return false
		}
	}
	return true
}

// script builds the events of one session with times relative to t0 and
// sequence numbers.
type script struct {
	session string
	t0      time.Time
	seq     uint64
}

var baseTime = time.Date(2026, 11, 26, 3, 54, 18, 0, time.UTC)

func newScript(session string) *script { return &script{session: session, t0: baseTime} }

// at stamps e with t0+ms and the next seq.
func (s *script) at(ms float64, e event.Event) *event.Event {
	s.seq++
	e.Session = s.session
	e.Seq = s.seq
	e.Time = s.t0.Add(time.Duration(ms * float64(time.Millisecond)))
	return &e
}

func (s *script) time(ms float64) time.Time {
	return s.t0.Add(time.Duration(ms * float64(time.Millisecond)))
}

// curlSession is the docs/events.md example: curl, CRAM-MD5, RETR 6, QUIT.
func curlSession(id string) (*script, []*event.Event) {
	s := newScript(id)
	return s, []*event.Event{
		s.at(0, event.Event{Type: event.SessionStart, Client: "127.0.0.1:34668", Listener: "127.0.0.1:1110", Upstream: "127.0.0.1:11110"}),
		s.at(1.7, event.Event{Type: event.Connected, Upstream: "127.0.0.1:11110", LatencyMS: 1.7}),
		s.at(1.8, event.Event{Type: event.Greeting, By: event.Server, Status: "+OK", Text: "Dovecot ready. <1bd0.1@vm>", Timestamp: "<1bd0.1@vm>"}),
		s.at(1.8, event.Event{Type: event.State, From: "GREETING-WAIT", To: "AUTH.READY"}),
		s.at(2.6, event.Event{Type: event.Command, By: event.Client, ID: 1, Verb: "CAPA"}),
		s.at(2.7, event.Event{Type: event.Response, By: event.Server, ID: 1, Verb: "CAPA", Status: "+OK", Multiline: true, Octets: 96, WireOctets: 99, Lines: 9, LatencyMS: 0.1}),
		s.at(3.0, event.Event{Type: event.Command, By: event.Client, Offset: 6, ID: 2, Verb: "AUTH", Args: "CRAM-MD5"}),
		s.at(4.0, event.Event{Type: event.State, From: "AUTH.READY", To: "AUTH.SASL"}),
		s.at(4.0, event.Event{Type: event.Continuation, By: event.Server, ID: 2, Verb: "AUTH", Status: "+", Text: "PDM0NTYxNzEyMjQ4MDMwOTguMTc5NTY2NTI1OEB2bT4="}),
		s.at(4.3, event.Event{Type: event.SASLResponse, By: event.Client, Offset: 21, ID: 2, Verb: "AUTH", Args: "<redacted>", Redacted: true}),
		s.at(21.9, event.Event{Type: event.Response, By: event.Server, ID: 2, Verb: "AUTH", Status: "+OK", Text: "Logged in.", LatencyMS: 18.9}),
		s.at(21.9, event.Event{Type: event.State, From: "AUTH.SASL", To: "TRANSACTION"}),
		s.at(21.9, event.Event{Type: event.Login, By: event.Server, ID: 2, User: "alice", Verb: "AUTH CRAM-MD5"}),
		s.at(22.0, event.Event{Type: event.Command, By: event.Client, Offset: 75, ID: 3, Verb: "RETR", Args: "6"}),
		s.at(29.7, event.Event{Type: event.Response, By: event.Server, ID: 3, Verb: "RETR", Status: "+OK", Text: "280 octets", Multiline: true, Octets: 280, WireOctets: 288, Lines: 16, LatencyMS: 7.6}),
		s.at(30.2, event.Event{Type: event.Command, By: event.Client, Offset: 83, ID: 4, Verb: "QUIT"}),
		s.at(32.4, event.Event{Type: event.Response, By: event.Server, ID: 4, Verb: "QUIT", Status: "+OK", Text: "Logging out.", LatencyMS: 2.2}),
		s.at(32.4, event.Event{Type: event.State, From: "TRANSACTION", To: "UPDATE"}),
		s.at(32.9, event.Event{Type: event.State, From: "UPDATE", To: "CLOSED"}),
		s.at(32.9, event.Event{Type: event.SessionEnd, Reason: "client closed", DurationMS: 32.9, BytesC2S: 89, BytesS2C: 565, User: "alice"}),
	}
}

// allText flattens every name, attribute, event and status of the spans,
// and every metric attribute, for secret scanning.
func allText(spans tracetest.SpanStubs, rm metricdata.ResourceMetrics) string {
	var b strings.Builder
	for _, s := range spans {
		fmt.Fprintln(&b, s.Name, s.Status.Description)
		for _, kv := range s.Attributes {
			fmt.Fprintln(&b, kv.Key, kv.Value.Emit())
		}
		for _, e := range s.Events {
			fmt.Fprintln(&b, e.Name)
			for _, kv := range e.Attributes {
				fmt.Fprintln(&b, kv.Key, kv.Value.Emit())
			}
		}
		if s.Resource != nil {
			for _, kv := range s.Resource.Attributes() {
				fmt.Fprintln(&b, kv.Key, kv.Value.Emit())
			}
		}
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			fmt.Fprintln(&b, m.Name)
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					fmt.Fprintln(&b, dp.Attributes.Encoded(attribute.DefaultEncoder()))
				}
			case metricdata.Histogram[float64]:
				for _, dp := range d.DataPoints {
					fmt.Fprintln(&b, dp.Attributes.Encoded(attribute.DefaultEncoder()))
				}
			}
		}
	}
	return b.String()
}
