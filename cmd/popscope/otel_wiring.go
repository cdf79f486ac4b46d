package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/popscope/popscope/event"
	otelexp "github.com/popscope/popscope/exporters/otel"
)

// otelShutdownTimeout bounds the final flush of traces and metrics.
const otelShutdownTimeout = 5 * time.Second

// otelFlags are the OpenTelemetry options shared by proxy and demo. With
// none of them set and no OTEL_EXPORTER_OTLP_*ENDPOINT in the environment,
// nothing is exported and no observer is added.
type otelFlags struct {
	endpoint      string
	protocol      string
	metricsListen string
	user          bool
	sample        float64
}

func (o *otelFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&o.endpoint, "otlp", "", "export traces and metrics over OTLP to `ENDPOINT` (host:port, or http(s):// URL);\n"+
		"default from OTEL_EXPORTER_OTLP_ENDPOINT; off when neither is set (see docs/telemetry.md)")
	fs.StringVar(&o.protocol, "otlp-protocol", "", "OTLP `PROTOCOL`: grpc or http/protobuf (default: OTEL_EXPORTER_OTLP_PROTOCOL,\n"+
		"else http/protobuf for port 4318 and grpc otherwise)")
	fs.StringVar(&o.metricsListen, "metrics-listen", "", "serve Prometheus metrics at http://`ADDR`/metrics")
	fs.BoolVar(&o.user, "otel-user", false, "put the login name (user.name) on session spans")
	fs.Float64Var(&o.sample, "otel-sample", 1, "keep this `RATIO` of uneventful sessions' traces; sessions with a violation\n"+
		"or a failure are always kept (OTEL_TRACES_SAMPLER applies on top)")
}

// start sets up the SDK and subscribes the exporter to the bus. The
// returned stop must run after bus.Close (so that the exporter has seen
// every event): it emits the sessions still open, flushes within
// otelShutdownTimeout and reports what was lost. With telemetry off, stop
// does nothing.
func (o *otelFlags) start(ctx context.Context, bus *event.Bus, stderr io.Writer) (stop func(), err error) {
	if o.sample < 0 || o.sample > 1 || o.sample != o.sample {
		return nil, fmt.Errorf("--otel-sample %v: want a ratio from 0 to 1", o.sample)
	}
	var mu sync.Mutex
	logf := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(stderr, "popscope: "+format+"\n", args...)
	}
	pipe, err := otelexp.NewPipeline(ctx, otelexp.Config{
		Endpoint:        o.endpoint,
		Protocol:        o.protocol,
		MetricsListen:   o.metricsListen,
		ServiceVersion:  version,
		Logf:            logf,
		SetErrorHandler: true,
	})
	if err != nil {
		return nil, err
	}
	if !pipe.Enabled() {
		return func() {}, nil
	}
	opts := append(pipe.Options(),
		otelexp.WithUserName(o.user),
		otelexp.WithSampleRatio(o.sample),
		otelexp.WithObserverName(otelexp.DefaultObserverName),
		otelexp.WithLogf(logf))
	x, err := otelexp.New(opts...)
	if err != nil {
		logf("%v", err) // the exporter still works; one instrument is a no-op
	}
	bus.Subscribe(otelexp.DefaultObserverName, x)
	if pipe.TracerProvider != nil {
		logf("otel: exporting traces to %s (%s)", orDefault(pipe.TraceEndpoint, "the OTLP default endpoint"), pipe.TraceProtocol)
	}
	if pipe.MetricsAddr != "" {
		logf("otel: metrics at http://%s/metrics", pipe.MetricsAddr)
	}
	return func() {
		x.Close()
		sctx, cancel := context.WithTimeout(context.Background(), otelShutdownTimeout)
		defer cancel()
		err := pipe.Shutdown(sctx)
		full, failed := pipe.Lost()
		unsent := pipe.Pending()
		if n := full + failed + unsent; n > 0 {
			logf("otel: %d spans were not exported (%d: export queue full, %d: refused or collector unreachable, %d: still unsent after %s)",
				n, full, failed, unsent, otelShutdownTimeout)
		} else if err != nil {
			logf("otel: shutdown: %v", err)
		}
	}, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
