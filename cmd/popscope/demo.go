package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/popscope/popscope/internal/demo"
	"github.com/popscope/popscope/internal/pop3server"
)

func init() {
	register(&command{name: "demo", summary: "built-in POP3 server with sample mail behind the proxy: try popscope at once", run: runDemo})
}

// Demo timing: how long --once waits for the scripted sessions to wind
// down before stopping, and the bound on the script itself.
const (
	demoDrain         = 3 * time.Second
	demoSettle        = 300 * time.Millisecond // transcript catch-up before the report
	demoScriptTimeout = 2 * time.Minute
)

func runDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:1110", "the proxy accepts POP3 clients on `ADDR` (host:port; port 0 = any free port)")
	serverListen := fs.String("server-listen", "127.0.0.1:0", "the built-in POP3 server listens on `ADDR` (port 0 = any free port)")
	script := fs.Bool("script", false, "run the scripted demo client through the proxy once it is ready, print its result, keep serving")
	once := fs.Bool("once", false, "run the scripted client (implies --script) and exit: status 0 if it passed, 1 if not")
	var out outputFlags
	out.register(fs)
	fs.Usage = func() {
		fmt.Fprint(stderr, joinLines(
			"usage: popscope demo [flags]",
			"",
			"Starts a small POP3 server with a sample maildrop (user "+demo.User+", password "+demo.Password+";",
			"plain text, dot-stuffed lines, 8-bit UTF-8, MIME with an attachment, 64 KiB, no final",
			"newline) and the popscope proxy in front of it. Point any POP3 client at the proxy",
			"and watch the decoded conversation; the commands to try are printed at start.",
			"With --script a built-in client runs a realistic session, a pipelined one, a SASL",
			"one and, clearly labelled, a misbehaving one that popscope should flag.",
			"Deletions last for one session only (QUIT after DELE answers -ERR [SYS/PERM]),",
			"so the demo always starts from the same mail.",
			"Ctrl-C stops.",
			"",
			"flags:"))
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "popscope demo: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	if *once {
		*script = true
	}

	srvLn, err := net.Listen("tcp", *serverListen)
	if err != nil {
		fmt.Fprintf(stderr, "popscope demo: --server-listen %s: %v\n", *serverListen, err)
		return 1
	}
	proxyLn, err := net.Listen("tcp", *listen)
	if err != nil {
		srvLn.Close()
		if errors.Is(err, syscall.EADDRINUSE) {
			fmt.Fprintf(stderr, "popscope demo: %s is already in use (another popscope demo?).\n"+
				"Choose another address, e.g. --listen 127.0.0.1:0 for any free port.\n", *listen)
		} else {
			fmt.Fprintf(stderr, "popscope demo: --listen %s: %v\n", *listen, err)
		}
		return 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	srv := pop3server.New(demo.ServerConfig())
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Serve(ctx, srvLn) }()

	// The script's report goes to stdout, unless stdout carries the event
	// stream (--events -). It is collected and printed in one piece once
	// the transcript has caught up, so that the two do not interleave.
	scriptOut := stdout
	if out.events == "-" {
		scriptOut = stderr
	}
	proxyAddr := proxyLn.Addr().String()
	var (
		scriptWG  sync.WaitGroup
		scriptErr error
		report    bytes.Buffer
	)
	ready := func(msg io.Writer) {
		// With the terminal UI running, messages go to its log pane.
		if msg != stderr {
			scriptOut = msg
		}
		printDemoHints(msg, proxyAddr, srvLn.Addr().String(), *script)
		if !*script {
			return
		}
		scriptWG.Add(1)
		go func() {
			defer scriptWG.Done()
			sctx, scancel := context.WithTimeout(ctx, demoScriptTimeout)
			scriptErr = demo.Script(sctx, proxyAddr, &report)
			scancel()
			if scriptErr != nil {
				fmt.Fprintf(&report, "popscope demo: the scripted client FAILED: %v\n", scriptErr)
			} else {
				fmt.Fprintln(&report, "popscope demo: the scripted client finished: every reply was as expected")
			}
			if *once {
				// Let the last sessions close on both legs so that their
				// final events are recorded, then stop; the report is
				// printed once the observers are drained.
				deadline := time.Now().Add(demoDrain)
				for srv.Active() > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
					time.Sleep(20 * time.Millisecond)
				}
				time.Sleep(100 * time.Millisecond)
				cancel()
				return
			}
			if !out.quiet {
				select { // give the transcript a moment to catch up
				case <-time.After(demoSettle):
				case <-ctx.Done():
				}
			}
			_, _ = scriptOut.Write(report.Bytes())
		}()
	}
	code := serveProxy(ctx, proxyLn, srvLn.Addr().String(), 5*time.Second, 0, &out, stdout, stderr, ready)
	cancel()
	scriptWG.Wait()
	if *once {
		_, _ = scriptOut.Write(report.Bytes())
	}
	select {
	case err := <-srvDone:
		if err != nil {
			fmt.Fprintf(stderr, "popscope demo: server: %v\n", err)
		}
	case <-time.After(5 * time.Second):
		fmt.Fprintln(stderr, "popscope demo: the demo server did not stop in 5s")
	}
	if *once && scriptErr != nil && code == 0 {
		code = 1
	}
	return code
}

// printDemoHints tells the user what to try, with the real addresses.
func printDemoHints(w io.Writer, proxyAddr, serverAddr string, scripted bool) {
	host, port, err := net.SplitHostPort(proxyAddr)
	if err != nil {
		host, port = "127.0.0.1", "1110"
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1" // listening on all addresses: loopback works
	}
	n := len(demo.Messages())
	fmt.Fprintf(w, "popscope demo: POP3 server with %d sample messages on %s (user %s, password %s)\n",
		n, serverAddr, demo.User, demo.Password)
	fmt.Fprintf(w, "popscope demo: the proxy listens on %s; the decoded conversation appears here\n", proxyAddr)
	fmt.Fprintln(w, "Try, in another terminal:")
	fmt.Fprintf(w, "  curl pop3://%s/1 -u %s:%s\n", net.JoinHostPort(host, port), demo.User, demo.Password)
	fmt.Fprintf(w, "  python3 -c 'import poplib; p = poplib.POP3(%s, %s); p.user(%s); p.pass_(%s); print(p.stat()); print(b\"\\n\".join(p.retr(1)[1]).decode()); p.quit()'\n",
		strconv.Quote(host), port, strconv.Quote(demo.User), strconv.Quote(demo.Password))
	if !scripted {
		fmt.Fprintln(w, "  popscope demo --script    (instead of this command: also runs a scripted client through the proxy)")
	}
	fmt.Fprintln(w, "Stop with Ctrl-C.")
}
