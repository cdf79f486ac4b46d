package bench

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	otelexp "github.com/popscope/popscope/exporters/otel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

type discardSpans struct{}

func (discardSpans) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardSpans) Shutdown(context.Context) error                             { return nil }

// BenchmarkOTelOverhead: popscope with and without the OpenTelemetry
// exporter on its bus (real SDK: batch span processor, metric SDK; spans
// discarded instead of sent), large RETR throughput and NOOP p50.
func BenchmarkOTelOverhead(b *testing.B) {
	reply := retrReply(bodySize)
	src := startSource(b, reply)
	up := src.ln.Addr().String()

	plain, _ := startPopscope(b, up)
	defer plain.stop()
	traced, bus := startPopscope(b, up)
	defer traced.stop()
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discardSpans{}))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	defer tp.Shutdown(context.Background())
	defer mp.Shutdown(context.Background())
	x, err := otelexp.New(otelexp.WithTracerProvider(tp), otelexp.WithMeterProvider(mp))
	if err != nil {
		b.Fatal(err)
	}
	bus.Subscribe("otel", x)

	rounds := envInt("POPSCOPE_BENCH_ROUNDS", 5)
	n := envInt("POPSCOPE_BENCH_NOOPS", 10000)
	addrs := []string{plain.addr, traced.addr}
	b.ResetTimer()
	mbps := alternateRounds(b, []string{"otel off", "otel on"}, len(reply), rounds,
		func(k int) (time.Duration, error) { return retrOnce(addrs[k], len(reply)) })
	off, on := mbps[0], mbps[1]
	p50off, err := noopP50(plain.addr, n)
	if err != nil {
		b.Fatal(err)
	}
	p50on, err := noopP50(traced.addr, n)
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	fmt.Printf("\nOpenTelemetry exporter on the bus (SDK, spans discarded), GOMAXPROCS=%d\n", runtime.GOMAXPROCS(0))
	fmt.Printf("  RETR %d MiB median: off %.0f MB/s, on %.0f MB/s, ratio %.2f\n", bodySize>>20, median(off), median(on), median(on)/median(off))
	fmt.Printf("  NOOP p50 (%d sequential): off %.1f µs, on %.1f µs, ratio %.2f\n", n,
		float64(p50off.Nanoseconds())/1000, float64(p50on.Nanoseconds())/1000, float64(p50on)/float64(p50off))
	for _, st := range bus.Stats() {
		fmt.Printf("  observer %s: %d delivered, %d dropped\n", st.Name, st.Delivered, st.Dropped)
	}
	b.ReportMetric(median(on)/median(off), "retr-on/off")
	b.ReportMetric(float64(p50on)/float64(p50off), "noop-p50-on/off")
}
