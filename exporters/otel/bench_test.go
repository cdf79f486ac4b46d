package otel

import (
	"context"
	"fmt"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }

// BenchmarkSession measures the exporter's cost per session (the
// docs/events.md curl session: 20 events, 7 spans) with a real batch span
// processor and metric SDK behind it. This cost is paid on the exporter's
// own bus goroutine, never by the relay.
func BenchmarkSession(b *testing.B) {
	for _, traces := range []bool{true, false} {
		b.Run(fmt.Sprintf("traces=%v", traces), func(b *testing.B) {
			tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discard{}))
			mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
			defer tp.Shutdown(context.Background())
			defer mp.Shutdown(context.Background())
			opts := []Option{WithTracerProvider(tp), WithMeterProvider(mp)}
			if !traces {
				opts = append(opts, WithoutTraces())
			}
			x, _ := New(opts...)
			_, evs := curlSession("bench")
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				for _, e := range evs {
					x.Observe(e)
				}
			}
		})
	}
}
