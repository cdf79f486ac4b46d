package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/popscope/popscope/decode/wire"
	"github.com/popscope/popscope/event"
	"github.com/popscope/popscope/exporters/jsonl"
	"github.com/popscope/popscope/exporters/record"
	"github.com/popscope/popscope/internal/certs"
	"github.com/popscope/popscope/internal/replay"
)

func init() {
	register(&command{name: "replay", summary: "replay a recording: 'server' plays the server side, 'client' re-sends the commands and diffs the replies", run: runReplay})
}

func runReplay(args []string, stdout, stderr io.Writer) int {
	usage := func(w io.Writer) {
		fmt.Fprint(w, joinLines(
			"usage: popscope replay server FILE --listen ADDR [flags]",
			"       popscope replay client FILE --upstream HOST:PORT [flags]",
			"",
			"FILE is a recording made by 'popscope proxy --record DIR' (docs/recording.md).",
			"'replay server' turns it into a local POP3 server; 'replay client' regression-tests",
			"a server against it. Run 'popscope replay server --help' or 'client --help' for flags."))
	}
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "server":
		return runReplayServer(args[1:], stdout, stderr)
	case "client":
		return runReplayClient(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "popscope replay: unknown mode %q\n", args[0])
	usage(stderr)
	return 2
}

// loadConversation reads and segments a recording, printing its
// warnings.
func loadConversation(name, who string, stderr io.Writer) (*replay.Conversation, error) {
	rec, err := record.ReadFile(name)
	if err != nil {
		return nil, err
	}
	conv, err := replay.Build(rec)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(stderr, "popscope replay %s: %s: %s; %d commands\n", who, name, rec.Summary(), len(conv.Exchanges))
	for _, w := range conv.Warnings {
		fmt.Fprintf(stderr, "popscope replay %s: warning: %s\n", who, w)
	}
	return conv, nil
}

// parseInterleaved parses flags given before or after the one positional
// FILE argument.
func parseInterleaved(fs *flag.FlagSet, args []string) (string, error) {
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	var file string
	rest := fs.Args()
	for i := 0; i < 8 && len(rest) > 0; i++ {
		if file != "" {
			return "", fmt.Errorf("one FILE only (got %q and %q)", file, rest[0])
		}
		file = rest[0]
		if err := fs.Parse(rest[1:]); err != nil {
			return "", err
		}
		rest = fs.Args()
	}
	if file == "" {
		return "", errors.New("FILE is required")
	}
	return file, nil
}

func credentialFlags(fs *flag.FlagSet) (user, pass *string) {
	user = fs.String("user", "", "user name for the login (default: the recorded one)")
	pass = fs.String("pass", "", "password (default: $POPSCOPE_PASS); needed when the recording is redacted or uses APOP/CRAM-MD5")
	return
}

func passOrEnv(p string) string {
	if p != "" {
		return p
	}
	return os.Getenv("POPSCOPE_PASS")
}

func runReplayServer(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("replay server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:1110", "accept POP3 clients on `ADDR`")
	user, pass := credentialFlags(fs)
	events := fs.String("events", "", "write the live sessions' events (and a note per divergence) as JSON Lines to `FILE` (\"-\" = stdout)")
	once := fs.Bool("once", false, "serve one connection, then exit: 0 if it followed the recording, 1 if it diverged")
	idle := fs.Duration("idle-timeout", replay.DefaultIdleTimeout, "close a connection whose client is silent for `DURATION`")
	cert := fs.String("tls-cert", "", "certificate `FILE` (PEM) for STLS instead of popscope's CA")
	key := fs.String("tls-key", "", "private key `FILE` (PEM) for --tls-cert")
	caDir := fs.String("ca-dir", "", "popscope's CA directory, for STLS (default: $POPSCOPE_CA_DIR or the user config dir)")
	implicit := fs.Bool("implicit-tls", false, "start every connection with TLS (port 995 style); default: when the recorded client leg was implicit TLS")
	fs.Usage = func() {
		fmt.Fprint(stderr, joinLines(
			"usage: popscope replay server FILE --listen ADDR [flags]",
			"",
			"Serves the recorded server side to new clients: the recorded greeting, then for each",
			"command the reply recorded for the same command (keyword and arguments; the next one",
			"in recorded order first, so repeated and pipelined commands work), byte for byte.",
			"A SASL exchange plays the recorded challenges. Credentials: with --user/--pass they",
			"are checked; otherwise a redacted recording accepts any, an unredacted one the",
			"recorded ones. Where the live client departs from the recording (a command not",
			"recorded, another order, a command sent again, commands never sent) popscope says",
			"so on stderr and, with --events, as a note event; an unrecorded command gets -ERR.",
			"STLS is answered with TLS when the recording did (popscope's CA or --tls-cert); a",
			"recording of an implicit-TLS client leg is served with implicit TLS (--implicit-tls).",
			"",
			"flags:"))
		fs.PrintDefaults()
	}
	file, err := parseInterleaved(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "popscope replay server: %v\n", err)
		return 2
	}
	conv, err := loadConversation(file, "server", stderr)
	if err != nil {
		fmt.Fprintf(stderr, "popscope replay server: %v\n", err)
		return 2
	}
	opt := replay.ServerOptions{User: *user, Pass: passOrEnv(*pass), IdleTimeout: *idle,
		Logf: func(f string, a ...any) { fmt.Fprintf(stderr, "popscope "+f+"\n", a...) }}
	explicitTLS := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "implicit-tls" {
			explicitTLS = true
		}
	})
	opt.ImplicitTLS = *implicit || (!explicitTLS && conv.ImplicitTLS)
	if needsTLS(conv) || opt.ImplicitTLS {
		if opt.TLS, err = replayServerTLS(*cert, *key, *caDir, stderr); err != nil {
			fmt.Fprintf(stderr, "popscope replay server: %v\n", err)
			return 2
		}
	}
	var closeEvents func()
	if *events != "" {
		var w io.Writer = stdout
		if *events != "-" {
			f, err := os.OpenFile(*events, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
			if err != nil {
				fmt.Fprintf(stderr, "popscope replay server: --events: %v\n", err)
				return 2
			}
			w = f
		}
		bus := event.NewBus()
		jw := jsonl.New(w)
		bus.Subscribe("jsonl", jw)
		opt.Publish = bus.Publish
		closeEvents = func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			bus.Close(ctx)
			jw.Close()
		}
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "popscope replay server: %v\n", err)
		return 1
	}
	srv := replay.NewServer(conv, opt)
	fmt.Fprintf(stderr, "popscope: replaying %s: listening on %s\n", file, ln.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code := 0
	if *once {
		c, err := ln.Accept()
		ln.Close()
		if err != nil {
			fmt.Fprintf(stderr, "popscope replay server: %v\n", err)
			return 1
		}
		srv.ServeConn(ctx, c)
		if len(srv.Divergences()) > 0 {
			code = 1
		}
	} else if err := srv.Serve(ctx, ln); err != nil {
		fmt.Fprintf(stderr, "popscope replay server: %v\n", err)
		code = 1
	}
	if closeEvents != nil {
		closeEvents()
	}
	d := srv.Divergences()
	fmt.Fprintf(stderr, "popscope replay server: %d connections, %d divergences from the recording\n", srv.Connections(), len(d))
	return code
}

// needsTLS reports whether the recorded server accepted STLS.
func needsTLS(conv *replay.Conversation) bool {
	for _, x := range conv.Exchanges {
		if x.Verb() == "STLS" && x.Status.Indicator == wire.OK {
			return true
		}
	}
	return false
}

func replayServerTLS(cert, key, caDir string, stderr io.Writer) (*tls.Config, error) {
	if (cert == "") != (key == "") {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	if cert != "" {
		return certs.LoadKeyPair(cert, key)
	}
	dir := caDir
	if dir == "" {
		var err error
		if dir, err = certs.DefaultDir(); err != nil {
			return nil, err
		}
	}
	ca, err := certs.LoadOrCreate(dir)
	if err != nil {
		return nil, fmt.Errorf("CA: %w", err)
	}
	if ca.Created() {
		fmt.Fprintf(stderr, "popscope: created a CA for STLS: %s (run 'popscope ca' to see how to trust it)\n", ca.CertPath())
	}
	return ca.ServerConfig(), nil
}

func runReplayClient(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("replay client", flag.ContinueOnError)
	fs.SetOutput(stderr)
	upstream := fs.String("upstream", "", "POP3 server to replay against, `HOST:PORT` (required)")
	user, pass := credentialFlags(fs)
	mode := fs.String("upstream-tls", replay.TLSAuto, "`MODE`: auto (STLS where the recording did), plain (skip STLS), stls (STLS first), implicit (TLS from the start)")
	ca := fs.String("upstream-ca", "", "verify the upstream against the CA certificates in `FILE` (PEM) instead of the system roots")
	insecure := fs.Bool("upstream-insecure", false, "DANGER: do not verify the upstream certificate")
	timeout := fs.Duration("timeout", 60*time.Second, "give up on a connect or a reply after `DURATION`")
	fs.Usage = func() {
		fmt.Fprint(stderr, joinLines(
			"usage: popscope replay client FILE --upstream HOST:PORT [flags]",
			"",
			"Re-sends the recorded client commands to a server, pipelined as recorded (a command",
			"goes out once as many replies have arrived as had when it was recorded), and compares",
			"each reply with the recorded one: status, response code, STAT/LIST counts and sizes,",
			"unique-ids, capabilities, message content (size and hash). Free text after +OK/-ERR",
			"and the greeting text (APOP timestamp) legitimately vary and are ignored. Credentials",
			"the recording lacks (redacted) or cannot reuse (APOP, CRAM-MD5) come from --user/--pass.",
			"",
			"Exit status: 0 same replies, 1 replies differ, 2 unusable recording or no connection.",
			"",
			"flags:"))
		fs.PrintDefaults()
	}
	file, err := parseInterleaved(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "popscope replay client: %v\n", err)
		return 2
	}
	if *upstream == "" {
		fmt.Fprintln(stderr, "popscope replay client: --upstream HOST:PORT is required")
		return 2
	}
	host, _, err := net.SplitHostPort(*upstream)
	if err != nil {
		fmt.Fprintf(stderr, "popscope replay client: --upstream %q: %v\n", *upstream, err)
		return 2
	}
	conv, err := loadConversation(file, "client", stderr)
	if err != nil {
		fmt.Fprintf(stderr, "popscope replay client: %v\n", err)
		return 2
	}
	tcfg, err := certs.UpstreamConfig(host, *ca, *insecure)
	if err != nil {
		fmt.Fprintf(stderr, "popscope replay client: --upstream-ca: %v\n", err)
		return 2
	}
	if *insecure {
		fmt.Fprintln(stderr, "popscope: WARNING: --upstream-insecure: the upstream certificate is not verified")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := replay.RunClient(ctx, conv, replay.ClientOptions{Upstream: *upstream, User: *user, Pass: passOrEnv(*pass),
		TLSMode: *mode, TLS: tcfg, Timeout: *timeout})
	if err != nil {
		fmt.Fprintf(stderr, "popscope replay client: %v\n", err)
		return 2
	}
	res.Format(stdout)
	if conv.Lost || conv.Cut {
		fmt.Fprintln(stderr, "popscope replay client: warning: the recording is incomplete; only what it holds was compared")
	}
	if !res.Same() {
		return 1
	}
	return 0
}
