//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	// popscopeBin is the binary under test, built once by TestMain.
	popscopeBin string
	// workRoot holds everything the tests write (Dovecot, mail, outputs).
	workRoot string
	// requireAll turns "program not installed" skips into failures (CI).
	requireAll = os.Getenv("E2E_REQUIRE_ALL") == "1"
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	root, err := os.MkdirTemp("", "popscope-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	// Dovecot's unprivileged processes (root mode) must traverse it.
	if err := os.Chmod(root, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	workRoot = root

	if bin := os.Getenv("POPSCOPE_BIN"); bin != "" {
		popscopeBin = bin
	} else {
		popscopeBin = filepath.Join(root, "bin", "popscope")
		t0 := time.Now()
		if err := buildPopscope(popscopeBin); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: building popscope:", err)
			os.RemoveAll(root)
			return 1
		}
		fmt.Fprintf(os.Stderr, "e2e: built %s in %v\n", popscopeBin, time.Since(t0).Round(time.Millisecond))
	}

	code := m.Run()

	stopSharedDovecot(code != 0)
	if code == 0 && os.Getenv("E2E_KEEP") == "" {
		os.RemoveAll(root)
	} else {
		fmt.Fprintf(os.Stderr, "e2e: test files kept in %s\n", root)
	}
	return code
}

// buildPopscope compiles ./cmd/popscope (the module root is the parent of
// this package's directory) into out, bounded in time.
func buildPopscope(out string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	goBin := "go"
	if gr := os.Getenv("GOROOT"); gr != "" {
		if p := filepath.Join(gr, "bin", "go"); fileExists(p) {
			goBin = p
		}
	}
	args := []string{"build", "-o", out}
	if os.Getenv("E2E_RACE") == "1" {
		args = append(args, "-race") // stderr is checked for DATA RACE reports
	}
	cmd := exec.CommandContext(ctx, goBin, append(args, "./cmd/popscope")...)
	cmd.Dir = ".."
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%v\n%s", err, buf.Bytes())
	}
	return nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// testDir returns a fresh directory for t under workRoot (kept on failure).
func testDir(t testing.TB) string {
	t.Helper()
	name := strings.NewReplacer("/", "_", " ", "_", ":", "_").Replace(t.Name())
	d := filepath.Join(workRoot, "tests", name)
	if err := os.RemoveAll(d); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// needTool skips t (or fails it under E2E_REQUIRE_ALL=1) when a program is
// not installed, and returns its path.
func needTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if requireAll {
			t.Fatalf("%s is not installed (E2E_REQUIRE_ALL=1)", name)
		}
		t.Skipf("%s is not installed", name)
	}
	return p
}

// cappedBuffer keeps the first limit bytes written to it and counts the
// rest; safe for concurrent use.
type cappedBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	limit   int
	dropped int64
}

func newCapped(limit int) *cappedBuffer { return &cappedBuffer{limit: limit} }

func (c *cappedBuffer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	room := c.limit - c.buf.Len()
	if room < len(p) {
		if room > 0 {
			c.buf.Write(p[:room])
		}
		c.dropped += int64(len(p) - max(room, 0))
		return len(p), nil
	}
	c.buf.Write(p)
	return len(p), nil
}

func (c *cappedBuffer) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dropped > 0 {
		return fmt.Sprintf("%s\n[... %d more bytes not kept]", c.buf.String(), c.dropped)
	}
	return c.buf.String()
}

// cmdResult is the outcome of one client invocation.
type cmdResult struct {
	exit     int // -1: did not run or was killed
	err      error
	timedOut bool
	output   string // stdout and stderr, capped
	dur      time.Duration
}

func (r cmdResult) String() string {
	s := fmt.Sprintf("exit %d after %v", r.exit, r.dur.Round(time.Millisecond))
	if r.timedOut {
		s += " (TIMED OUT, killed)"
	} else if r.err != nil && r.exit < 0 {
		s += " (" + r.err.Error() + ")"
	}
	return s
}

// runCmd runs a program under a timeout in its own process group; on
// timeout the whole group is killed, and the wait for its output is
// bounded too.
func runCmd(timeout time.Duration, dir string, env []string, name string, args ...string) cmdResult {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = procAttr(syscall.SIGKILL)
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	out := newCapped(256 << 10)
	cmd.Stdout, cmd.Stderr = out, out
	t0 := time.Now()
	var err error
	if wait, serr := startLocked(cmd); serr != nil {
		err = serr
	} else {
		err = <-wait
	}
	r := cmdResult{exit: -1, err: err, dur: time.Since(t0)}
	if cmd.ProcessState != nil {
		r.exit = cmd.ProcessState.ExitCode()
	}
	r.timedOut = errors.Is(ctx.Err(), context.DeadlineExceeded)
	r.output = out.String()
	return r
}

// startLocked starts cmd from a goroutine locked to its OS thread and
// keeps that thread until the process has exited; the returned channel
// yields cmd.Wait's result. Pdeathsig (procAttr) is delivered when the
// thread that forked the child ends, not the process, and the Go runtime
// may end threads: this pins the thread for the child's lifetime.
func startLocked(cmd *exec.Cmd) (<-chan error, error) {
	started := make(chan error, 1)
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		done <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return done, nil
}

// ---- the popscope proxy process ----

type proxyProc struct {
	addr    string // listening address
	tlsAddr string // implicit-TLS listening address (with --listen-tls)
	events  string // JSON Lines file
	cmd     *exec.Cmd
	stderr  *cappedBuffer
	done    chan struct{}
	// exit is valid after done is closed.
	exit    int
	stopped bool
}

// startProxy runs "popscope proxy" on a free loopback port in front of
// upstream, writing events to dir/events.jsonl. It is stopped (SIGTERM,
// bounded) when t ends if the test has not stopped it already.
func startProxy(t testing.TB, dir, upstream string, extra ...string) *proxyProc {
	t.Helper()
	p := &proxyProc{events: filepath.Join(dir, "events.jsonl"), stderr: newCapped(1 << 20), done: make(chan struct{})}
	args := append([]string{"proxy", "--listen", "127.0.0.1:0", "--upstream", upstream,
		"--no-ui", "--quiet", "--events", p.events}, extra...)
	p.cmd = exec.Command(popscopeBin, args...)
	p.cmd.SysProcAttr = procAttr(syscall.SIGTERM)
	// A pipe of our own (not StderrPipe): Wait runs concurrently with the
	// reader and must not close it.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = pw
	wait, err := startLocked(p.cmd)
	pw.Close()
	if err != nil {
		pr.Close()
		t.Fatalf("starting popscope: %v", err)
	}
	addrC, tlsC := make(chan string, 1), make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		found, foundTLS := false, false
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(p.stderr, line)
			if !found {
				if _, rest, ok := strings.Cut(line, "listening on "); ok {
					addr, _, _ := strings.Cut(rest, ",")
					addrC <- addr
					found = true
				}
			}
			if !foundTLS {
				if _, rest, ok := strings.Cut(line, "listening for implicit-TLS clients on "); ok {
					tlsC <- strings.TrimSpace(rest)
					foundTLS = true
				}
			}
		}
		_, _ = io.Copy(p.stderr, pr)
		pr.Close()
		err := <-wait
		p.exit = -1
		if p.cmd.ProcessState != nil {
			p.exit = p.cmd.ProcessState.ExitCode()
		}
		if err != nil && p.exit == -1 {
			fmt.Fprintf(p.stderr, "[e2e: wait: %v]\n", err)
		}
		close(p.done)
	}()
	select {
	case p.addr = <-addrC:
	case <-p.done:
		t.Fatalf("popscope proxy exited before listening:\n%s", p.stderr)
	case <-time.After(15 * time.Second):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		t.Fatalf("popscope proxy did not report its listening address within 15s:\n%s", p.stderr)
	}
	if slices.Contains(extra, "--listen-tls") {
		select {
		case p.tlsAddr = <-tlsC:
		case <-time.After(5 * time.Second):
			syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
			t.Fatalf("popscope proxy did not report its implicit-TLS address:\n%s", p.stderr)
		}
	}
	t.Cleanup(func() { p.stop(t) })
	return p
}

// stop sends SIGTERM and waits (at most 10s, then SIGKILL) for the proxy
// to drain its observers and exit. It fails t if the exit was not clean.
func (p *proxyProc) stop(t testing.TB) {
	t.Helper()
	if p.stopped {
		return
	}
	p.stopped = true
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		t.Errorf("popscope proxy did not exit within 10s of SIGTERM; killed.\nstderr:\n%s", p.stderr)
		return
	}
	if p.exit != 0 {
		t.Errorf("popscope proxy exited with %d after SIGTERM; stderr:\n%s", p.exit, p.stderr)
	}
	for _, line := range strings.Split(p.stderr.String(), "\n") {
		if strings.Contains(line, "panic") || strings.Contains(line, "did not drain") || strings.Contains(line, "DATA RACE") ||
			(strings.Contains(line, " lost ") && strings.Contains(line, " events")) {
			t.Errorf("popscope proxy stderr reports a problem: %s", line)
		}
	}
}

// port returns the port of a host:port address.
func port(addr string) string {
	i := strings.LastIndexByte(addr, ':')
	return addr[i+1:]
}
