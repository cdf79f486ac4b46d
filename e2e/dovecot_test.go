//go:build e2e

package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// A private Dovecot POP3 server on 127.0.0.1, one per test binary run.
// Everything lives under workRoot/dovecot: config (no includes, nothing from
// /etc/dovecot), base_dir, state_dir, log, certificate, passwd-file and the
// maildir. It is a port of the essentials of the peers recipe
// (dovecot-up.sh / make-maildir.sh), run in the foreground (-F) as a child
// of the test process so that it can always be stopped.

const (
	mailUser = "alice"
	mailPass = "alicepw"
	// tlsUser has the small mailbox of the TLS matrix (tls_test.go).
	tlsUser = "carol"
	tlsPass = "carolpw"
)

type dovecot struct {
	dir   string
	plain string // 127.0.0.1:port, plain POP3 (STLS offered)
	tls   string // 127.0.0.1:port, implicit TLS
	msgs  []message
	small []message // tlsUser's mailbox
	cmd   *exec.Cmd
	out   *cappedBuffer
	done  chan struct{}
	mode  string // privilege mode, for the log
}

var errNotInstalled = errors.New("dovecot (dovecot-pop3d) is not installed")

var (
	dvMu     sync.Mutex
	dvShared *dovecot
	dvErr    error
	dvTried  bool
)

// needDovecot returns the shared Dovecot, starting it on first use.
func needDovecot(t testing.TB) *dovecot {
	t.Helper()
	dvMu.Lock()
	defer dvMu.Unlock()
	if !dvTried {
		dvTried = true
		t0 := time.Now()
		dvShared, dvErr = startDovecot(filepath.Join(workRoot, "dovecot"))
		if dvErr == nil {
			t.Logf("dovecot: plain %s, pop3s %s, %s, %d messages, up in %v", dvShared.plain, dvShared.tls,
				dvShared.mode, len(dvShared.msgs), time.Since(t0).Round(time.Millisecond))
		}
	}
	if errors.Is(dvErr, errNotInstalled) {
		if requireAll {
			t.Fatalf("%v (E2E_REQUIRE_ALL=1)", dvErr)
		}
		t.Skip(dvErr)
	}
	if dvErr != nil {
		t.Fatalf("starting dovecot: %v", dvErr)
	}
	select {
	case <-dvShared.done:
		t.Fatalf("dovecot has exited; log:\n%s", dvShared.logTail(30))
	default:
	}
	return dvShared
}

func stopSharedDovecot(verbose bool) {
	dvMu.Lock()
	defer dvMu.Unlock()
	if dvShared != nil {
		if err := dvShared.stop(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
		}
		if verbose {
			fmt.Fprintf(os.Stderr, "e2e: last lines of the dovecot log:\n%s\n", dvShared.logTail(20))
		}
		dvShared = nil
	}
}

func dovecotBinary() (string, error) {
	bin := os.Getenv("DOVECOT")
	if bin == "" {
		bin = "/usr/sbin/dovecot"
		if !fileExists(bin) {
			p, err := exec.LookPath("dovecot")
			if err != nil {
				return "", errNotInstalled
			}
			bin = p
		}
	}
	if bin == "/usr/sbin/dovecot" && !fileExists("/usr/lib/dovecot/pop3") {
		return "", fmt.Errorf("%w (no /usr/lib/dovecot/pop3)", errNotInstalled)
	}
	return bin, nil
}

// privileges decides who runs what, as dovecot-up.sh does.
type privileges struct {
	mailUID, mailGID            int
	internalUser, internalGroup string
	loginUser, loginChroot      string
	mode                        string
}

func choosePrivileges() (privileges, error) {
	var p privileges
	if os.Geteuid() != 0 {
		u, err := user.Current()
		if err != nil {
			return p, err
		}
		g, err := user.LookupGroupId(u.Gid)
		if err != nil {
			return p, fmt.Errorf("group of uid %s: %w", u.Uid, err)
		}
		p.mailUID, _ = strconv.Atoi(u.Uid)
		p.mailGID, _ = strconv.Atoi(u.Gid)
		p.internalUser, p.internalGroup, p.loginUser = u.Username, g.Name, u.Username
		p.mode = "single-user mode as " + u.Username
		return p, nil
	}
	// root: Dovecot refuses uid 0 for mail, so mail is served as nobody.
	name := os.Getenv("E2E_MAIL_USER")
	if name == "" {
		name = "nobody"
	}
	mu, err := user.Lookup(name)
	if err != nil {
		return p, fmt.Errorf("mail user %s: %w", name, err)
	}
	p.mailUID, _ = strconv.Atoi(mu.Uid)
	p.mailGID, _ = strconv.Atoi(mu.Gid)
	_, e1 := user.Lookup("dovecot")
	_, e2 := user.Lookup("dovenull")
	_, e3 := user.LookupGroup("dovecot")
	if e1 == nil && e2 == nil && e3 == nil {
		p.internalUser, p.internalGroup, p.loginUser, p.loginChroot = "dovecot", "dovecot", "dovenull", "login"
		p.mode = "root with privilege separation, mail as " + name
		return p, nil
	}
	g, err := user.LookupGroupId(mu.Gid)
	if err != nil {
		return p, err
	}
	p.internalUser, p.internalGroup, p.loginUser = name, g.Name, name
	p.mode = "root without dovecot/dovenull users, everything as " + name
	return p, nil
}

func startDovecot(dir string) (*dovecot, error) {
	bin, err := dovecotBinary()
	if err != nil {
		return nil, err
	}
	pr, err := choosePrivileges()
	if err != nil {
		return nil, err
	}
	for _, d := range []string{"run", "state", "log", "tls", "home/" + mailUser,
		"mail/" + mailUser + "/cur", "mail/" + mailUser + "/new", "mail/" + mailUser + "/tmp",
		"home/" + tlsUser, "mail/" + tlsUser + "/cur", "mail/" + tlsUser + "/new", "mail/" + tlsUser + "/tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	if err := writeCert(filepath.Join(dir, "tls")); err != nil {
		return nil, err
	}
	users := fmt.Sprintf("%s:{PLAIN}%s:%d:%d::%s::\n", mailUser, mailPass, pr.mailUID, pr.mailGID, filepath.Join(dir, "home", mailUser)) +
		fmt.Sprintf("%s:{PLAIN}%s:%d:%d::%s::\n", tlsUser, tlsPass, pr.mailUID, pr.mailGID, filepath.Join(dir, "home", tlsUser))
	if err := os.WriteFile(filepath.Join(dir, "users"), []byte(users), 0o644); err != nil {
		return nil, err
	}
	msgs := buildMessages(mailUser)
	if err := writeMaildir(filepath.Join(dir, "mail", mailUser), msgs); err != nil {
		return nil, err
	}
	small := buildMailbox(tlsUser, smallSizes, smallLarge)
	if err := writeMaildir(filepath.Join(dir, "mail", tlsUser), small); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		for _, d := range []string{"mail", "home"} {
			if err := chownTree(filepath.Join(dir, d), pr.mailUID, pr.mailGID); err != nil {
				return nil, err
			}
		}
	}

	// Free ports can be taken between the probe and Dovecot's bind: retry.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		ports, err := freePorts(2)
		if err != nil {
			return nil, err
		}
		conf := filepath.Join(dir, "dovecot.conf")
		if err := os.WriteFile(conf, []byte(dovecotConf(dir, ports[0], ports[1], pr)), 0o644); err != nil {
			return nil, err
		}
		d := &dovecot{dir: dir, plain: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0])),
			tls: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1])), msgs: msgs, small: small,
			out: newCapped(64 << 10), done: make(chan struct{}), mode: pr.mode}
		d.cmd = exec.Command(bin, "-F", "-c", conf)
		d.cmd.SysProcAttr = procAttr(syscall.SIGTERM)
		d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
		wait, err := startLocked(d.cmd)
		if err != nil {
			return nil, err
		}
		go func() { <-wait; close(d.done) }()
		if err := d.waitReady(20 * time.Second); err != nil {
			_ = d.stop()
			lastErr = err
			if strings.Contains(err.Error(), "in use") {
				continue
			}
			return nil, err
		}
		return d, nil
	}
	return nil, lastErr
}

// waitReady polls both ports (bounded) until they accept connections.
func (d *dovecot) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		select {
		case <-d.done:
			return fmt.Errorf("dovecot exited at startup: %s\nlog:\n%s", d.out, d.logTail(20))
		default:
		}
		ok := true
		for _, a := range []string{d.plain, d.tls} {
			c, err := net.DialTimeout("tcp", a, 500*time.Millisecond)
			if err != nil {
				ok = false
				break
			}
			c.Close()
		}
		if ok {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("dovecot did not listen on %s and %s within %v: %s\nlog:\n%s", d.plain, d.tls, limit, d.out, d.logTail(20))
}

// stop sends SIGTERM to the master and waits at most 10s, then kills the
// whole process group.
func (d *dovecot) stop() error {
	if d.cmd.Process == nil {
		return nil
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		return nil
	case <-time.After(10 * time.Second):
	}
	_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-d.done:
	case <-time.After(5 * time.Second):
		return fmt.Errorf("dovecot master %d did not exit after SIGKILL", d.cmd.Process.Pid)
	}
	return fmt.Errorf("dovecot did not stop within 10s of SIGTERM; killed")
}

func (d *dovecot) logTail(n int) string {
	b, err := os.ReadFile(filepath.Join(d.dir, "log", "dovecot.log"))
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func dovecotConf(dir string, plainPort, tlsPort int, p privileges) string {
	dh := ""
	if fileExists("/usr/share/dovecot/dh.pem") {
		// Without it Dovecot 2.3 still does (EC)DHE; with it, DHE too.
		dh = "ssl_dh = </usr/share/dovecot/dh.pem"
	}
	r := strings.NewReplacer(
		"@DIR@", dir,
		"@PLAIN@", strconv.Itoa(plainPort),
		"@TLS@", strconv.Itoa(tlsPort),
		"@IUSER@", p.internalUser,
		"@IGROUP@", p.internalGroup,
		"@LUSER@", p.loginUser,
		"@CHROOT@", p.loginChroot,
		"@DH@", dh,
	)
	return r.Replace(`# generated by popscope e2e tests -- private instance, loopback only
protocols = pop3
listen = 127.0.0.1
base_dir = @DIR@/run
state_dir = @DIR@/state
instance_name = popscope-e2e-@PLAIN@
log_path = @DIR@/log/dovecot.log
info_log_path = @DIR@/log/dovecot.log
debug_log_path = @DIR@/log/dovecot.log
auth_verbose = yes
default_internal_user = @IUSER@
default_internal_group = @IGROUP@
default_login_user = @LUSER@
first_valid_uid = 1
shutdown_clients = yes
default_process_limit = 1000
default_client_limit = 4000
default_vsz_limit = 1G

ssl = yes
ssl_cert = <@DIR@/tls/cert.pem
ssl_key = <@DIR@/tls/key.pem
@DH@
ssl_min_protocol = TLSv1.2

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
pop3_no_flag_updates = yes

protocol pop3 {
  mail_max_userip_connections = 10000
}
service pop3-login {
  chroot = @CHROOT@
  service_count = 0
  process_min_avail = 2
  client_limit = 2000
  inet_listener pop3 {
    port = @PLAIN@
  }
  inet_listener pop3s {
    port = @TLS@
    ssl = yes
  }
}
service pop3 {
  process_limit = 1000
}
service anvil {
  chroot =
}
service auth {
  client_limit = 4000
}
`)
}

// writeCert writes a self-signed ECDSA certificate for localhost,
// 127.0.0.1 and ::1 (no openssl needed).
func writeCert(dir string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "localhost"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(30 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
}

func chownTree(root string, uid, gid int) error {
	return filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
