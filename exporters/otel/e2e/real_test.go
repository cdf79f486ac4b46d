//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// dovecotUp starts a private Dovecot POP3 server (plaintext only) on
// 127.0.0.1 with user alice, password pw and two messages; everything
// lives in one temporary directory. Skips when Dovecot is not installed.
func dovecotUp(t *testing.T, pw string) string {
	t.Helper()
	bin := "/usr/sbin/dovecot"
	if _, err := os.Stat("/usr/lib/dovecot/pop3"); err != nil {
		skipOrFail(t, "dovecot-pop3d is not installed")
	}
	if _, err := os.Stat(bin); err != nil {
		skipOrFail(t, "dovecot-pop3d is not installed")
	}
	dir, err := os.MkdirTemp("", "popscope-otel-dovecot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// Dovecot's mail processes must reach the files: as root they run as
	// nobody (Dovecot refuses uid 0 for mail), otherwise as the caller.
	uid, gid := os.Getuid(), os.Getgid()
	name := ""
	if uid == 0 {
		u, err := user.Lookup("nobody")
		if err != nil {
			skipOrFail(t, "running as root and no user nobody: %v", err)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		name = "nobody"
	} else {
		u, err := user.Current()
		if err != nil {
			t.Fatal(err)
		}
		name = u.Username
	}
	group := name
	if g, err := user.LookupGroupId(strconv.Itoa(gid)); err == nil {
		group = g.Name
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"run", "state", "log", "home/alice", "mail/alice/cur", "mail/alice/new", "mail/alice/tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for i, body := range []string{
		"From: bob@example.org\r\nTo: alice@example.org\r\nSubject: hello\r\n\r\nHello Alice.\r\n",
		"From: carol@example.org\r\nTo: alice@example.org\r\nSubject: dots\r\n\r\n.a line starting with a dot\r\nbye\r\n",
	} {
		f := filepath.Join(dir, "mail/alice/new", fmt.Sprintf("%d.M%dP1.e2e", 1700000000+i, i))
		if err := os.WriteFile(f, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	users := fmt.Sprintf("alice:{PLAIN}%s:%d:%d::%s/home/alice::\n", pw, uid, gid, dir)
	if err := os.WriteFile(filepath.Join(dir, "users"), []byte(users), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePorts(t, 1)[0]
	conf := strings.NewReplacer("@DIR@", dir, "@USER@", name, "@GROUP@", group, "@PORT@", strconv.Itoa(port)).Replace(dovecotConf)
	confPath := filepath.Join(dir, "dovecot.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if os.Getuid() == 0 {
		err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, uid, gid)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "-F", "-c", confPath)
	out := newLockedBuffer()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("dovecot: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for range 100 { // 10 s
		select {
		case err := <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "log", "dovecot.log"))
			t.Fatalf("dovecot exited: %v %s\n%s", err, out.String(), log)
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return addr
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("dovecot did not listen on %s", addr)
	return ""
}

const dovecotConf = `# popscope otel e2e: private Dovecot, loopback, plaintext only
protocols = pop3
listen = 127.0.0.1
base_dir = @DIR@/run
state_dir = @DIR@/state
instance_name = popscope-otel-@PORT@
log_path = @DIR@/log/dovecot.log
info_log_path = @DIR@/log/dovecot.log
default_internal_user = @USER@
default_internal_group = @GROUP@
default_login_user = @USER@
first_valid_uid = 1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login cram-md5 apop
auth_failure_delay = 0
passdb {
  driver = passwd-file
  args = scheme=PLAIN @DIR@/users
}
userdb {
  driver = passwd-file
  args = @DIR@/users
}
mail_location = maildir:@DIR@/mail/%u
mail_fsync = never
pop3_uidl_format = %08Xu%08Xv
service pop3-login {
  chroot =
  inet_listener pop3 {
    port = @PORT@
  }
  inet_listener pop3s {
    port = 0
  }
}
service anvil {
  chroot =
}
`

// TestJaegerCurlDovecot: curl fetches a message through the in-process
// proxy from a real Dovecot (curl picks a SASL mechanism); the trace
// arrives in Jaeger over OTLP/HTTP with a span per command and without
// the password.
func TestJaegerCurlDovecot(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		skipOrFail(t, "curl not installed")
	}
	const pw = "alice-e2e-Pw-77"
	up := dovecotUp(t, pw)
	j := startJaeger(t)
	service := uniqueService(t, "popscope-curl")
	t.Setenv("OTEL_SERVICE_NAME", service)
	t.Setenv("OTEL_METRICS_EXPORTER", "none")

	ip, addrs := startProxies(t, "http://"+j.otlpHTTP, "http/protobuf", up)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, curl, "-sS", "--max-time", "20", "pop3://"+addrs[0]+"/1", "-u", "alice:"+pw).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Hello Alice.") {
		t.Fatalf("curl: %v\n%s", err, out)
	}
	time.Sleep(100 * time.Millisecond)
	ip.stop()

	traces, raw := j.traces(t, service, 1)
	if strings.Contains(raw, pw) {
		t.Error("the password reached Jaeger")
	}
	if len(traces) != 1 {
		t.Fatalf("%d traces, want 1", len(traces))
	}
	x := index(t, traces[0])
	for _, op := range []string{"POP3 connect", "POP3 greeting", "POP3 CAPA", "POP3 RETR", "POP3 QUIT"} {
		if len(x.children[op]) != 1 {
			t.Errorf("%d %q spans", len(x.children[op]), op)
		}
	}
	login := tagString(x.root.Tags, "pop3.login.mechanism")
	if login == "" {
		t.Errorf("no login mechanism on the session span: %v", x.root.Tags)
	}
	if a := x.children["POP3 AUTH"]; strings.HasPrefix(login, "AUTH ") {
		if len(a) != 1 || tagString(a[0].Tags, "pop3.auth.mechanism") == "" {
			t.Errorf("AUTH spans %+v", a)
		}
	}
	if r := x.children["POP3 RETR"]; len(r) == 1 {
		if tagString(r[0].Tags, "pop3.message_number") != "1" || tagString(r[0].Tags, "pop3.status") != "+OK" ||
			tagString(r[0].Tags, "pop3.octets") == "" {
			t.Errorf("RETR tags %v", r[0].Tags)
		}
	}
	if tagString(x.root.Tags, "pop3.close_reason") == "" || tagString(x.root.Tags, "pop3.state") != "CLOSED" {
		t.Errorf("root tags %v", x.root.Tags)
	}
	t.Logf("curl → popscope → Dovecot, in Jaeger:\n%s", render(&x))
}

// TestJaegerPopscopeBinary runs the real popscope binary with --otlp and
// --metrics-listen in front of the scripted server.
func TestJaegerPopscopeBinary(t *testing.T) {
	bin := popscopeBinary(t)
	help, _ := exec.Command(bin, "proxy", "--help").CombinedOutput()
	if !strings.Contains(string(help), "-otlp") {
		t.Skip("popscope proxy has no --otlp flag yet (wire otelFlags into cmd/popscope/proxy.go)")
	}
	j := startJaeger(t)
	service := uniqueService(t, "popscope-bin")
	ports := freePorts(t, 2)
	listen := fmt.Sprintf("127.0.0.1:%d", ports[0])
	metrics := fmt.Sprintf("127.0.0.1:%d", ports[1])
	cmd := exec.Command(bin, "proxy", "--listen", listen, "--upstream", fakeServer(t), "--quiet",
		"--otlp", "http://"+j.otlpHTTP, "--otlp-protocol", "http/protobuf", "--metrics-listen", metrics)
	cmd.Env = append(os.Environ(), "OTEL_SERVICE_NAME="+service, "OTEL_METRICS_EXPORTER=none")
	out := newLockedBuffer()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
		}
	})
	up := false
	for range 300 { // 30 s: the machine may be busy
		if c, err := net.DialTimeout("tcp", listen, time.Second); err == nil {
			c.Close()
			up = true
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !up {
		t.Fatalf("popscope did not listen:\n%s", out.String())
	}
	clientSession(t, listen)

	// The exporter sees events after the bus's delivery delay: poll.
	var body []byte
	for range 50 { // 10 s
		time.Sleep(200 * time.Millisecond)
		resp, err := httpc.Get("http://" + metrics + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), `POP3-LINE-001`) {
			break
		}
	}
	for _, want := range []string{`popscope_commands_total{`, `pop3_command="RETR"`, `popscope_violations_total{`, `POP3-LINE-001`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(15 * time.Second):
		t.Fatalf("popscope did not exit within 15s of SIGTERM:\n%s", out.String())
	}
	// Two sessions: the probe that saw popscope listening (connect and
	// greeting only) and the client's. Judge the client's: the largest.
	traces, raw := j.traces(t, service, 2)
	if strings.Contains(raw, secretPassword) {
		t.Error("the password reached Jaeger")
	}
	best := 0
	for i, tr := range traces {
		if len(tr.Spans) > len(traces[best].Spans) {
			best = i
		}
	}
	x := index(t, traces[best])
	if len(x.all) != 12 || len(x.children["POP3 RETR"]) != 2 {
		t.Errorf("binary trace: %d spans, %d RETR\n%s", len(x.all), len(x.children["POP3 RETR"]), render(&x))
	}
	if !strings.Contains(out.String(), "otel: exporting traces to") {
		t.Errorf("no start line on stderr:\n%s", out.String())
	}
}

// popscopeBinary builds cmd/popscope (or takes POPSCOPE_BIN).
func popscopeBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("POPSCOPE_BIN"); p != "" {
		return p
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "popscope")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/popscope")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building popscope: %v\n%s", err, out)
	}
	return bin
}
