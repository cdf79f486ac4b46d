package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/popscope/popscope/decode"
	"github.com/popscope/popscope/event"
	"github.com/popscope/popscope/exporters/jsonl"
	"github.com/popscope/popscope/exporters/record"
	"github.com/popscope/popscope/exporters/text"
	"github.com/popscope/popscope/proxy"
)

func init() {
	register(&command{name: "proxy", summary: "relay POP3 clients to an upstream server and decode the traffic", run: runProxy})
}

// outputFlags are the observer options shared by proxy and demo.
type outputFlags struct {
	events        string
	noUI          bool
	quiet         bool
	verbose       bool
	revealSecrets bool
	otel          otelFlags // otel_wiring.go
}

func (o *outputFlags) register(fs *flag.FlagSet) {
	o.otel.register(fs)
	fs.StringVar(&o.events, "events", "", "write events as JSON Lines to `FILE` (\"-\" = stdout)")
	fs.BoolVar(&o.noUI, "no-ui", false, "no terminal UI: print a plain transcript to stderr instead")
	fs.BoolVar(&o.quiet, "quiet", false, "do not print the transcript (events still go to --events)")
	fs.BoolVar(&o.verbose, "verbose", false, "transcript also shows state changes and notes")
	fs.BoolVar(&o.revealSecrets, "reveal-secrets", false, "DANGER: show passwords, APOP digests and SASL data in every output")
}

// observers wires the bus to the outputs chosen by the flags and returns
// a function that drains and closes them.
func (o *outputFlags) observers(bus *event.Bus, stdout, stderr io.Writer) (closeFn func(), err error) {
	var closers []func()
	if o.events != "" {
		var w io.Writer = stdout
		if o.events != "-" {
			f, err := os.OpenFile(o.events, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
			if err != nil {
				return nil, fmt.Errorf("--events: %w", err)
			}
			w = f
		}
		jw := jsonl.New(w)
		bus.Subscribe("jsonl", jw)
		closers = append(closers, func() {
			if err := jw.Close(); err != nil {
				fmt.Fprintf(stderr, "popscope: writing events: %v\n", err)
			}
		})
	}
	otelStop, err := o.otel.start(context.Background(), bus, stderr)
	if err != nil {
		return nil, err
	}
	if !o.quiet {
		// The plain transcript (stdout may carry the JSON stream).
		tp := text.New(stderr)
		tp.Verbose = o.verbose
		bus.Subscribe("transcript", tp, event.WithPolicy(event.DropOldest))
	}
	if o.revealSecrets {
		fmt.Fprintln(stderr, "popscope: WARNING: --reveal-secrets is on: passwords and SASL data appear in every output")
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := bus.Close(ctx); err != nil {
			fmt.Fprintln(stderr, "popscope: observers did not drain in 5s; some events are lost")
		}
		for _, c := range closers {
			c()
		}
		otelStop() // after bus.Close: the exporter has seen every event
		for _, st := range bus.Stats() {
			if st.Dropped > 0 {
				fmt.Fprintf(stderr, "popscope: observer %s lost %d events\n", st.Name, st.Dropped)
			}
		}
	}, nil
}

func runProxy(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:1110", "accept POP3 clients on `ADDR` (host:port)")
	upstream := fs.String("upstream", "", "POP3 server to relay to, `HOST:PORT` (required)")
	dialTimeout := fs.Duration("dial-timeout", 10*time.Second, "give up connecting to the upstream after `DURATION`")
	maxLine := fs.Int("max-line", 0, "decoder cap for one command/status line in `BYTES` (default 65536); the relay is never capped")
	var out outputFlags
	out.register(fs)
	var tf tlsFlags
	tf.register(fs)
	var rf recordFlags // record.go
	rf.register(fs)
	fs.Usage = func() {
		fmt.Fprint(stderr, joinLines(
			"usage: popscope proxy --listen ADDR --upstream HOST:PORT [flags]",
			"",
			"Relays every client connection on --listen to --upstream byte for byte, decodes",
			"both directions, and reports commands, replies and rule violations.",
			"If the upstream cannot be reached the client gets '-ERR [SYS/TEMP] ...' as greeting.",
			"",
			"TLS: popscope terminates TLS on each leg on its own. On --listen it offers STLS",
			"(adding it to CAPA when the upstream lacks it); --listen-tls takes implicit-TLS",
			"clients. The upstream leg follows --upstream-tls. Certificates come from popscope's",
			"own CA (see 'popscope ca') unless --tls-cert/--tls-key are given.",
			"",
			"flags:"))
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *upstream == "" {
		fmt.Fprintln(stderr, "popscope proxy: --upstream HOST:PORT is required")
		fs.Usage()
		return 2
	}
	if _, _, err := net.SplitHostPort(*upstream); err != nil {
		fmt.Fprintf(stderr, "popscope proxy: --upstream %q: %v\n", *upstream, err)
		return 2
	}
	tlsCfg, err := tf.build(*upstream, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "popscope proxy: %v\n", err)
		return 2
	}
	rec, err := rf.open(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "popscope proxy: %v\n", err)
		return 2
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "popscope proxy: %v\n", err)
		return 1
	}
	var tlsLn net.Listener
	if tf.listenTLS != "" {
		if tlsLn, err = net.Listen("tcp", tf.listenTLS); err != nil {
			ln.Close()
			fmt.Fprintf(stderr, "popscope proxy: %v\n", err)
			return 1
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serveProxyOpts(ctx, ln, proxyOptions{upstream: *upstream, dialTimeout: *dialTimeout, maxLine: *maxLine,
		tls: tlsCfg, tlsLn: tlsLn, recorder: rec}, &out, stdout, stderr, nil)
}

// proxyOptions are the relay settings shared by proxy and demo.
type proxyOptions struct {
	upstream    string
	dialTimeout time.Duration
	maxLine     int
	tls         *proxy.TLSConfig
	tlsLn       net.Listener     // implicit-TLS listener, optional
	recorder    *record.Recorder // --record, optional (record.go)
}

// serveProxy runs a proxy on ln until ctx ends; ready, if set, is called
// once the observers are wired, with the writer for messages meant for
// the user (stderr, or the terminal UI's log while it runs).
func serveProxy(ctx context.Context, ln net.Listener, upstream string, dialTimeout time.Duration, maxLine int,
	out *outputFlags, stdout, stderr io.Writer, ready func(msg io.Writer)) int {
	return serveProxyOpts(ctx, ln, proxyOptions{upstream: upstream, dialTimeout: dialTimeout, maxLine: maxLine}, out, stdout, stderr, ready)
}

func serveProxyOpts(ctx context.Context, ln net.Listener, o proxyOptions, out *outputFlags, stdout, stderr io.Writer, ready func(msg io.Writer)) int {
	upstream := o.upstream
	bus := event.NewBus()
	// The terminal UI, when stdout is a terminal and --no-ui is not given;
	// while it runs, log lines go to its status bar.
	ctx, stderr, finishUI := out.startUI(ctx, bus, fmt.Sprintf("proxy %s → %s", ln.Addr(), upstream), stdout, stderr)
	defer finishUI()
	closeObs, err := out.observers(bus, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "popscope: %v\n", err)
		ln.Close()
		return 2
	}
	var recorder proxy.Recorder
	if o.recorder != nil {
		recorder = recorderAdapter{o.recorder}
		o.recorder.SetLogf(func(f string, a ...any) { fmt.Fprintf(stderr, "popscope: "+f+"\n", a...) })
	}
	p := proxy.New(proxy.Config{
		Recorder:      recorder,
		Upstream:      upstream,
		DialTimeout:   o.dialTimeout,
		Publish:       bus.Publish,
		RevealSecrets: out.revealSecrets,
		MaxLine:       o.maxLine,
		TLS:           o.tls,
		Store:         decode.NewStore(0, 0, 0),
		Logf:          func(f string, a ...any) { fmt.Fprintf(stderr, "popscope: "+f+"\n", a...) },
	})
	fmt.Fprintf(stderr, "popscope: listening on %s, relaying to %s\n", ln.Addr(), upstream)
	var tlsDone chan error
	if o.tlsLn != nil {
		fmt.Fprintf(stderr, "popscope: listening for implicit-TLS clients on %s\n", o.tlsLn.Addr())
		tlsDone = make(chan error, 1)
		go func() { tlsDone <- p.ServeTLS(ctx, o.tlsLn) }()
	}
	if ready != nil {
		ready(stderr)
	}
	err = p.Serve(ctx, ln)
	if tlsDone != nil {
		if terr := <-tlsDone; err == nil {
			err = terr
		}
	}
	closeObs()
	closeRecorder(o.recorder, stderr)
	finishUI()
	if err != nil {
		fmt.Fprintf(stderr, "popscope: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "popscope: stopped after %d sessions\n", p.Total())
	return 0
}
