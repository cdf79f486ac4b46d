//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Environment knobs (see doc.go).
const (
	envJaegerBin     = "POPSCOPE_JAEGER_BIN"           // use this prebuilt binary
	envCacheDir      = "POPSCOPE_CACHE_DIR"            // where built binaries are kept
	envRequireJaeger = "POPSCOPE_REQUIRE_JAEGER"       // 1: fail instead of skipping
	envBuildTimeout  = "POPSCOPE_JAEGER_BUILD_TIMEOUT" // default 40m
)

// httpc bounds every request the tests make.
var httpc = &http.Client{Timeout: 5 * time.Second}

func requireAll() bool {
	return os.Getenv(envRequireJaeger) == "1" || os.Getenv("E2E_REQUIRE_ALL") == "1"
}

// skipOrFail skips, or fails when the environment demands every test.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if requireAll() {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// moduleRoot is the directory of the project's go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for range 10 {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			strings.Contains(string(b), "module github.com/popscope/popscope\n") {
			return dir, nil
		}
		dir = filepath.Dir(dir)
	}
	return "", errors.New("project go.mod not found above the working directory")
}

var (
	jaegerOnce sync.Once
	jaegerBin  string
	jaegerErr  error
)

// jaegerBinary returns the Jaeger v2 binary pinned by tools/jaeger, built
// once into a cache directory keyed by the hash of that module's go.mod
// and go.sum, so only a change of the pin rebuilds it.
func jaegerBinary(t *testing.T) string {
	t.Helper()
	jaegerOnce.Do(func() { jaegerBin, jaegerErr = buildJaeger(t) })
	if jaegerErr != nil {
		skipOrFail(t, "no Jaeger binary: %v", jaegerErr)
	}
	return jaegerBin
}

func buildJaeger(t *testing.T) (string, error) {
	if p := os.Getenv(envJaegerBin); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", envJaegerBin, p, err)
		}
		return p, nil
	}
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	tool := filepath.Join(root, "tools", "jaeger")
	h := sha256.New()
	for _, f := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(tool, f))
		if err != nil {
			return "", err
		}
		h.Write(b)
	}
	key := hex.EncodeToString(h.Sum(nil))[:16]
	cache := os.Getenv(envCacheDir)
	if cache == "" {
		if c, err := os.UserCacheDir(); err == nil {
			cache = filepath.Join(c, "popscope")
		} else {
			cache = filepath.Join(os.TempDir(), "popscope-cache")
		}
	}
	bin := filepath.Join(cache, "jaeger-"+key, "jaeger")
	if st, err := os.Stat(bin); err == nil && st.Mode().IsRegular() {
		t.Logf("jaeger: cached %s", bin)
		return bin, nil
	}
	if _, err := exec.LookPath("go"); err != nil {
		return "", fmt.Errorf("go tool not found to build Jaeger: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return "", err
	}
	limit := 40 * time.Minute
	if d, err := time.ParseDuration(os.Getenv(envBuildTimeout)); err == nil && d > 0 {
		limit = d
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	tmp := bin + ".tmp" + strconv.Itoa(os.Getpid())
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", tmp, "github.com/jaegertracing/jaeger/cmd/jaeger")
	cmd.Dir = tool
	cmd.Env = append(os.Environ(), "GOWORK=off")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	t.Logf("jaeger: building %s (cold: minutes; cached afterwards)", bin)
	start := time.Now()
	err = cmd.Run()
	if err != nil {
		os.Remove(tmp)
		msg := out.String()
		if len(msg) > 2000 {
			msg = msg[len(msg)-2000:]
		}
		return "", fmt.Errorf("building Jaeger in %s (%v): %v\n%s", tool, time.Since(start).Round(time.Second), err, msg)
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", err
	}
	t.Logf("jaeger: built in %v", time.Since(start).Round(time.Second))
	return bin, nil
}

// jaeger is a running Jaeger v2 with OTLP receivers and the query API,
// every port on 127.0.0.1.
type jaeger struct {
	otlpGRPC, otlpHTTP, query string // host:port
	cmd                       *exec.Cmd
	log                       *bytes.Buffer
	mu                        *sync.Mutex
}

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var lns []net.Listener
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

type lockedBuffer struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func newLockedBuffer() lockedBuffer { return lockedBuffer{mu: new(sync.Mutex), buf: new(bytes.Buffer)} }

func (l lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buf.Len() > 1<<20 { // keep the log bounded
		return len(p), nil
	}
	return l.buf.Write(p)
}

func startJaeger(t *testing.T) *jaeger {
	t.Helper()
	bin := jaegerBinary(t)
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(root, "exporters", "otel", "e2e", "testdata", "jaeger.yaml")
	p := freePorts(t, 5)
	j := &jaeger{
		otlpGRPC: fmt.Sprintf("127.0.0.1:%d", p[0]),
		otlpHTTP: fmt.Sprintf("127.0.0.1:%d", p[1]),
		query:    fmt.Sprintf("127.0.0.1:%d", p[2]),
		log:      &bytes.Buffer{},
		mu:       &sync.Mutex{},
	}
	health := fmt.Sprintf("127.0.0.1:%d", p[4])
	j.cmd = exec.Command(bin, "--config=file:"+conf)
	j.cmd.Env = append(os.Environ(),
		"OTLP_GRPC_PORT="+strconv.Itoa(p[0]), "OTLP_HTTP_PORT="+strconv.Itoa(p[1]),
		"JAEGER_QUERY_HTTP_PORT="+strconv.Itoa(p[2]), "JAEGER_QUERY_GRPC_PORT="+strconv.Itoa(p[3]),
		"JAEGER_HEALTH_PORT="+strconv.Itoa(p[4]))
	w := lockedBuffer{mu: j.mu, buf: j.log}
	j.cmd.Stdout, j.cmd.Stderr = w, w
	if err := j.cmd.Start(); err != nil {
		t.Fatalf("starting jaeger: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- j.cmd.Wait() }()
	t.Cleanup(func() {
		_ = j.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = j.cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("jaeger log:\n%s", j.logText())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			t.Fatalf("jaeger exited at start: %v\n%s", err, j.logText())
		default:
		}
		resp, err := httpc.Get("http://" + health + "/status")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return j
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("jaeger not healthy within 30s:\n%s", j.logText())
	return nil
}

func (j *jaeger) logText() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.log.String()
}

// Jaeger's /api/traces JSON (the parts the tests read).
type jTrace struct {
	TraceID   string              `json:"traceID"`
	Spans     []jSpan             `json:"spans"`
	Processes map[string]jProcess `json:"processes"`
}

type jSpan struct {
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	References    []struct {
		RefType string `json:"refType"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	StartTime int64  `json:"startTime"` // µs
	Duration  int64  `json:"duration"`  // µs
	Tags      []jKV  `json:"tags"`
	Logs      []jLog `json:"logs"`
	ProcessID string `json:"processID"`
}

type jLog struct {
	Timestamp int64 `json:"timestamp"`
	Fields    []jKV `json:"fields"`
}

type jKV struct {
	Key   string `json:"key"`
	Type  string `json:"type"`
	Value any    `json:"value"`
}

type jProcess struct {
	ServiceName string `json:"serviceName"`
	Tags        []jKV  `json:"tags"`
}

func tag(kvs []jKV, key string) (any, bool) {
	for _, kv := range kvs {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return nil, false
}

func tagString(kvs []jKV, key string) string {
	v, _ := tag(kvs, key)
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return ""
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	default:
		return fmt.Sprint(x)
	}
}

// traces polls the query API until at least want traces of service are
// there (bounded), and returns them with the raw JSON.
func (j *jaeger) traces(t *testing.T, service string, want int) ([]jTrace, string) {
	t.Helper()
	u := fmt.Sprintf("http://%s/api/traces?service=%s&limit=50&lookback=1h", j.query, url.QueryEscape(service))
	var last string
	for range 80 { // 80 × 250 ms
		resp, err := httpc.Get(u)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
			resp.Body.Close()
			last = string(body)
			var r struct {
				Data []jTrace `json:"data"`
			}
			if resp.StatusCode == 200 && json.Unmarshal(body, &r) == nil && len(r.Data) >= want {
				return r.Data, last
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("jaeger: fewer than %d traces of %q after 20s; last answer: %.2000s", want, service, last)
	return nil, ""
}

// tree indexes one trace: the root span and its children by operation.
type tree struct {
	root     jSpan
	children map[string][]jSpan
	all      []jSpan
}

func index(t *testing.T, tr jTrace) tree {
	t.Helper()
	var x tree
	x.children = map[string][]jSpan{}
	x.all = tr.Spans
	roots := 0
	for _, s := range tr.Spans {
		if len(s.References) == 0 {
			x.root = s
			roots++
		}
	}
	if roots != 1 {
		t.Fatalf("trace %s has %d roots", tr.TraceID, roots)
	}
	for _, s := range tr.Spans {
		if len(s.References) == 0 {
			continue
		}
		if s.References[0].RefType != "CHILD_OF" || s.References[0].SpanID != x.root.SpanID {
			t.Errorf("%s: reference %+v, want CHILD_OF the root %s", s.OperationName, s.References, x.root.SpanID)
		}
		x.children[s.OperationName] = append(x.children[s.OperationName], s)
	}
	return x
}
