package certs

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

const ioTimeout = 10 * time.Second

func newCA(t *testing.T) *Authority {
	t.Helper()
	a, err := LoadOrCreate(filepath.Join(t.TempDir(), "ca"))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func skipPermsOnWindows(t *testing.T) {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("Unix file modes")
	}
}

// serveTLS accepts TLS connections on 127.0.0.1 with cfg; each one gets
// "+OK hello\r\n" after the handshake and is closed.
func serveTLS(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := tls.NewListener(raw, cfg)
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 10000 { // more than any test dials
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(ioTimeout))
				if err := c.(*tls.Conn).Handshake(); err != nil {
					return
				}
				c.Write([]byte("+OK hello\r\n"))
			}()
		}
	}()
	return raw.Addr().String()
}

// dialTLS completes a handshake with cfg and reads the greeting.
func dialTLS(addr string, cfg *tls.Config) (tls.ConnectionState, error) {
	d := &net.Dialer{Timeout: ioTimeout}
	c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioTimeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return c.ConnectionState(), err
	}
	if line != "+OK hello\r\n" {
		return c.ConnectionState(), fmt.Errorf("greeting %q", line)
	}
	return c.ConnectionState(), nil
}

func rootsOf(t *testing.T, a *Authority) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(a.CertPEM()) {
		t.Fatal("CertPEM: no certificate")
	}
	return pool
}

func checkLeaf(t *testing.T, leaf *x509.Certificate, a *Authority) {
	t.Helper()
	if err := leaf.CheckSignatureFrom(a.Certificate()); err != nil {
		t.Errorf("leaf not signed by the CA: %v", err)
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("leaf key %T, want ECDSA P-256", leaf.PublicKey)
	}
	if life := leaf.NotAfter.Sub(leaf.NotBefore); life > 398*24*time.Hour || life < 397*24*time.Hour {
		t.Errorf("leaf validity %v, want 397 days (+1h backdate) and at most 398 days", life)
	}
	if d := time.Until(leaf.NotBefore); d > -50*time.Minute || d < -70*time.Minute {
		t.Errorf("leaf NotBefore %v from now, want about -1h", d)
	}
	if len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
		t.Errorf("leaf ExtKeyUsage %v, want [ServerAuth]", leaf.ExtKeyUsage)
	}
	if leaf.IsCA {
		t.Error("leaf is a CA")
	}
}

func TestCACreateAndReload(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "ca")
	a, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !a.Created() {
		t.Error("Created() = false on first use")
	}
	if a.CertPath() != filepath.Join(dir, CertFile) || a.KeyPath() != filepath.Join(dir, KeyFile) {
		t.Errorf("paths %s %s", a.CertPath(), a.KeyPath())
	}
	c := a.Certificate()
	host, _ := os.Hostname()
	if want := "popscope local CA "; !strings.HasPrefix(c.Subject.CommonName, want) ||
		(host != "" && len(host) < 40 && c.Subject.CommonName != want+host) {
		t.Errorf("CA CN %q, want %q+hostname %q", c.Subject.CommonName, want, host)
	}
	if !c.IsCA || !c.BasicConstraintsValid || c.MaxPathLen != 0 || !c.MaxPathLenZero {
		t.Errorf("CA basic constraints: IsCA %v valid %v MaxPathLen %d zero %v", c.IsCA, c.BasicConstraintsValid, c.MaxPathLen, c.MaxPathLenZero)
	}
	if c.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Errorf("CA KeyUsage %v", c.KeyUsage)
	}
	if pub, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("CA key %T, want ECDSA P-256", c.PublicKey)
	}
	if life := c.NotAfter.Sub(time.Now()); life < CAValidity-2*time.Hour || life > CAValidity {
		t.Errorf("CA valid for %v more, want about 10 years", life)
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Errorf("CA not self-signed: %v", err)
	}
	onDisk, err := os.ReadFile(a.CertPath())
	if err != nil || !bytes.Equal(onDisk, a.CertPEM()) {
		t.Errorf("CertPEM differs from %s (%v)", a.CertPath(), err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("CA dir holds %d entries, want 2 (no temporary files left)", len(entries))
	}

	if runtime.GOOS != "windows" {
		for path, want := range map[string]os.FileMode{dir: 0o700, a.CertPath(): 0o644, a.KeyPath(): 0o600} {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != want {
				t.Errorf("%s mode %04o, want %04o", path, got, want)
			}
		}
	}

	b, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	if b.Created() {
		t.Error("Created() = true on reload")
	}
	if !bytes.Equal(a.CertPEM(), b.CertPEM()) || !a.key.Public().(*ecdsa.PublicKey).Equal(b.key.Public()) {
		t.Error("reload returned a different CA")
	}
}

func TestCAConcurrentCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	const n = 8
	var wg sync.WaitGroup
	got := make([]*Authority, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = LoadOrCreate(dir)
		}()
	}
	wg.Wait()
	created := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("LoadOrCreate %d: %v", i, errs[i])
		}
		if got[i].Created() {
			created++
		}
		if !bytes.Equal(got[i].CertPEM(), got[0].CertPEM()) {
			t.Errorf("LoadOrCreate %d returned a different CA", i)
		}
	}
	if created != 1 {
		t.Errorf("%d callers created the CA, want 1", created)
	}
}

func TestCAKeyPermissionRefused(t *testing.T) {
	skipPermsOnWindows(t)
	a := newCA(t)
	for _, mode := range []os.FileMode{0o640, 0o604, 0o660} {
		if err := os.Chmod(a.KeyPath(), mode); err != nil {
			t.Fatal(err)
		}
		_, err := LoadOrCreate(a.Dir())
		if err == nil {
			t.Fatalf("mode %04o: key accepted", mode)
		}
		if msg := err.Error(); !strings.Contains(msg, "chmod 600 "+a.KeyPath()) || !strings.Contains(msg, fmt.Sprintf("%04o", mode)) {
			t.Errorf("mode %04o: unclear error %q", mode, msg)
		}
	}
	if err := os.Chmod(a.KeyPath(), 0o400); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreate(a.Dir()); err != nil {
		t.Errorf("mode 0400 refused: %v", err)
	}
}

func TestCAMismatchedPair(t *testing.T) {
	a, b := newCA(t), newCA(t)
	keyB, err := os.ReadFile(b.KeyPath())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(a.KeyPath(), keyB, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = LoadOrCreate(a.Dir())
	if err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("mismatched pair: err = %v", err)
	}
}

func TestCAHalfPair(t *testing.T) {
	a := newCA(t)
	if err := os.Rename(a.KeyPath(), a.KeyPath()+".bak"); err != nil {
		t.Fatal(err)
	}
	_, err := LoadOrCreate(a.Dir())
	if err == nil || !strings.Contains(err.Error(), "its key") {
		t.Errorf("certificate without key: err = %v", err)
	}

	b := newCA(t)
	if err := os.Remove(b.CertPath()); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour) // not a CA being published right now
	if err := os.Chtimes(b.KeyPath(), old, old); err != nil {
		t.Fatal(err)
	}
	_, err = LoadOrCreate(b.Dir())
	if err == nil || !strings.Contains(err.Error(), "its certificate") {
		t.Errorf("key without certificate: err = %v", err)
	}
}

func TestCANotACA(t *testing.T) {
	a := newCA(t)
	leaf, err := a.GetCertificate(&tls.ClientHelloInfo{ServerName: "x.example"})
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(leaf.PrivateKey)
	os.WriteFile(a.CertPath(), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Certificate[0]}), 0o644)
	os.WriteFile(a.KeyPath(), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	_, err = LoadOrCreate(a.Dir())
	if err == nil || !strings.Contains(err.Error(), "not a CA") {
		t.Errorf("leaf as CA: err = %v", err)
	}
}

func TestCADefaultDir(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv(EnvDir, tmp)
	if d, err := DefaultDir(); err != nil || d != tmp {
		t.Errorf("DefaultDir with $%s = %q, %v", EnvDir, d, err)
	}
	a, err := LoadOrCreate("")
	if err != nil {
		t.Fatal(err)
	}
	if a.Dir() != tmp {
		t.Errorf("LoadOrCreate(\"\") used %s, want %s", a.Dir(), tmp)
	}
	t.Setenv(EnvDir, "")
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(tmp, "xdg"))
	t.Setenv("HOME", tmp)
	d, err := DefaultDir()
	if err != nil || filepath.Base(d) != "popscope" {
		t.Errorf("DefaultDir = %q, %v; want .../popscope", d, err)
	}
	if runtime.GOOS == "linux" && d != filepath.Join(tmp, "xdg", "popscope") {
		t.Errorf("DefaultDir = %q, want $XDG_CONFIG_HOME/popscope", d)
	}
}

func TestCAHandshake(t *testing.T) {
	a := newCA(t)
	cfg := a.ServerConfig()
	if cfg.MinVersion != tls.VersionTLS12 || cfg.GetCertificate == nil {
		t.Fatalf("ServerConfig: MinVersion %x, GetCertificate set %v", cfg.MinVersion, cfg.GetCertificate != nil)
	}
	addr := serveTLS(t, cfg)
	for _, tc := range []struct {
		serverName string
		dns        []string
		ips        []string
	}{
		{"localhost", []string{"localhost"}, nil},
		{"127.0.0.1", []string{"localhost"}, []string{"127.0.0.1"}}, // Go sends no SNI for an IP
		{"Mail.Example.TEST", []string{"mail.example.test"}, nil},
	} {
		t.Run(tc.serverName, func(t *testing.T) {
			for _, maxV := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
				cs, err := dialTLS(addr, &tls.Config{RootCAs: rootsOf(t, a), ServerName: tc.serverName, MaxVersion: maxV})
				if err != nil {
					t.Fatalf("max %s: %v", tls.VersionName(maxV), err)
				}
				if cs.Version != maxV {
					t.Errorf("negotiated %s, want %s", tls.VersionName(cs.Version), tls.VersionName(maxV))
				}
				leaf := cs.PeerCertificates[0]
				checkLeaf(t, leaf, a)
				var ips []string
				for _, ip := range leaf.IPAddresses {
					ips = append(ips, ip.String())
				}
				if fmt.Sprint(leaf.DNSNames) != fmt.Sprint(tc.dns) || fmt.Sprint(ips) != fmt.Sprint(tc.ips) {
					t.Errorf("leaf SANs DNS %v IP %v, want %v %v", leaf.DNSNames, ips, tc.dns, tc.ips)
				}
			}
		})
	}
	// Untrusting clients and too-old clients fail.
	if _, err := dialTLS(addr, &tls.Config{ServerName: "localhost", RootCAs: x509.NewCertPool()}); err == nil {
		t.Error("client without the CA accepted the leaf")
	}
	if _, err := dialTLS(addr, &tls.Config{RootCAs: rootsOf(t, a), ServerName: "localhost",
		MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}); err == nil {
		t.Error("TLS 1.1 client accepted despite MinVersion TLS 1.2")
	}
}

func TestCALeafNames(t *testing.T) {
	tcp := func(ip string) net.Conn { return fakeConn{&net.TCPAddr{IP: net.ParseIP(ip), Port: 995}} }
	for _, tc := range []struct {
		sni  string
		conn net.Conn
		key  string
		dns  string
		ips  string
	}{
		{"mail.example", nil, "dns:mail.example", "[mail.example]", "[]"},
		{"MAIL.example.", nil, "dns:mail.example", "[mail.example]", "[]"},
		{"192.0.2.7", nil, "ip:192.0.2.7", "[]", "[192.0.2.7]"},
		{"::ffff:192.0.2.7", nil, "ip:192.0.2.7", "[]", "[192.0.2.7]"},
		{"2001:db8::1", nil, "ip:2001:db8::1", "[]", "[2001:db8::1]"},
		{"", tcp("192.0.2.9"), "local:192.0.2.9", "[localhost]", "[192.0.2.9]"},
		{"", tcp("::ffff:10.1.2.3"), "local:10.1.2.3", "[localhost]", "[10.1.2.3]"},
		{"", fakeConn{pipeAddr("[2001:db8::5]:995")}, "local:2001:db8::5", "[localhost]", "[2001:db8::5]"},
		{"", fakeConn{pipeAddr("pipe")}, "local:", "[localhost]", "[127.0.0.1 ::1]"},
		{"", tcp("0.0.0.0"), "local:", "[localhost]", "[127.0.0.1 ::1]"},
		{"", nil, "local:", "[localhost]", "[127.0.0.1 ::1]"},
		{"bad name!", tcp("127.0.0.1"), "local:127.0.0.1", "[localhost]", "[127.0.0.1]"},
		{"*.example", nil, "local:", "[localhost]", "[127.0.0.1 ::1]"},
		{"a..b", nil, "local:", "[localhost]", "[127.0.0.1 ::1]"},
		{strings.Repeat("a", 64) + ".example", nil, "local:", "[localhost]", "[127.0.0.1 ::1]"},
		{"under_score.example", nil, "dns:under_score.example", "[under_score.example]", "[]"},
	} {
		key, dns, ips := leafNames(tc.sni, tc.conn)
		if key != tc.key || fmt.Sprint(dns) != tc.dns || fmt.Sprint(ips) != tc.ips {
			t.Errorf("leafNames(%q) = %q %v %v, want %q %s %s", tc.sni, key, dns, ips, tc.key, tc.dns, tc.ips)
		}
	}
}

type pipeAddr string

func (p pipeAddr) Network() string { return "pipe" }
func (p pipeAddr) String() string  { return string(p) }

type fakeConn struct{ local net.Addr }

func (f fakeConn) LocalAddr() net.Addr              { return f.local }
func (f fakeConn) RemoteAddr() net.Addr             { return pipeAddr("remote") }
func (f fakeConn) Read([]byte) (int, error)         { return 0, errors.New("fake") }
func (f fakeConn) Write([]byte) (int, error)        { return 0, errors.New("fake") }
func (f fakeConn) Close() error                     { return nil }
func (f fakeConn) SetDeadline(time.Time) error      { return nil }
func (f fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (f fakeConn) SetWriteDeadline(time.Time) error { return nil }
func (f fakeConn) String() string                   { return "fake" }

func TestCALeafCache(t *testing.T) {
	a := newCA(t)
	get := func(name string) *tls.Certificate {
		t.Helper()
		c, err := a.GetCertificate(&tls.ClientHelloInfo{ServerName: name})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	x1 := get("x.example")
	if x2 := get("X.EXAMPLE"); x2 != x1 {
		t.Error("second call for the same name generated a new leaf")
	}
	y := get("y.example")
	if y == x1 || y.Leaf.DNSNames[0] != "y.example" {
		t.Errorf("other name: %v", y.Leaf.DNSNames)
	}
	if n := a.issued.Load(); n != 2 {
		t.Errorf("issued %d leaves, want 2", n)
	}

	// Bounded LRU: x is used last, so z evicts y.
	a.maxCache = 2
	get("x.example")
	get("z.example")
	if n := a.issued.Load(); n != 3 {
		t.Errorf("issued %d leaves, want 3", n)
	}
	if get("x.example") != x1 {
		t.Error("recently used x.example was evicted")
	}
	get("y.example")
	if n := a.issued.Load(); n != 4 {
		t.Errorf("issued %d leaves after y.example was evicted, want 4", n)
	}
	a.mu.Lock()
	if a.lru.Len() != 2 || len(a.cache) != 2 {
		t.Errorf("cache holds %d/%d entries, want 2", a.lru.Len(), len(a.cache))
	}
	a.mu.Unlock()

	// A leaf close to expiry is reissued.
	a.now = func() time.Time { return time.Now().Add(LeafValidity - time.Hour) }
	if get("x.example") == x1 {
		t.Error("leaf about to expire was served from the cache")
	}
}

func TestCALeafNeverOutlivesCA(t *testing.T) {
	a := newCA(t)
	a.now = func() time.Time { return a.cert.NotAfter.Add(-10 * 24 * time.Hour) }
	c, err := a.GetCertificate(&tls.ClientHelloInfo{ServerName: "late.example"})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Leaf.NotAfter.Equal(a.cert.NotAfter) {
		t.Errorf("leaf NotAfter %v, CA NotAfter %v", c.Leaf.NotAfter, a.cert.NotAfter)
	}
	a.now = func() time.Time { return a.cert.NotAfter.Add(time.Hour) }
	if _, err := a.GetCertificate(&tls.ClientHelloInfo{ServerName: "later.example"}); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired CA: err = %v", err)
	}
}

func TestCAConcurrentHandshakes(t *testing.T) {
	a := newCA(t)
	addr := serveTLS(t, a.ServerConfig())
	roots := rootsOf(t, a)
	const n = 32
	var wg sync.WaitGroup
	errs := make(chan error, n)
	serials := make(chan string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := "same.example"
			if i%4 == 3 {
				name = fmt.Sprintf("other%d.example", i%3)
			}
			cs, err := dialTLS(addr, &tls.Config{RootCAs: roots, ServerName: name})
			if err != nil {
				errs <- err
				return
			}
			if name == "same.example" {
				serials <- cs.PeerCertificates[0].SerialNumber.String()
			}
		}()
	}
	wg.Wait()
	close(errs)
	close(serials)
	for err := range errs {
		t.Error(err)
	}
	seen := map[string]bool{}
	for s := range serials {
		seen[s] = true
	}
	if len(seen) != 1 {
		t.Errorf("same.example got %d different leaves, want 1", len(seen))
	}
	// same.example, other0, other1, other2 (other2 only if i%4==3 && i%3==2 occurs: i=11,23).
	if got := a.issued.Load(); got != 4 {
		t.Errorf("issued %d leaves for 4 names", got)
	}
}

func TestCAGetCertificateContext(t *testing.T) {
	a := newCA(t)
	// A waiter whose handshake is gone does not wait for the generation.
	c := &issueCall{done: make(chan struct{})}
	a.mu.Lock()
	a.inflight["dns:stuck.example"] = c
	a.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := a.leaf(ctx, "dns:stuck.example", []string{"stuck.example"}, nil); err == nil {
		t.Error("cancelled waiter got no error")
	}
	close(c.done)
}

func TestCAConcurrentGetCertificate(t *testing.T) {
	a := newCA(t)
	const n = 64
	start := make(chan struct{})
	var wg sync.WaitGroup
	got := make([]*tls.Certificate, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			c, err := a.GetCertificate(&tls.ClientHelloInfo{ServerName: "burst.example"})
			if err != nil {
				t.Error(err)
			}
			got[i] = c
		}()
	}
	close(start)
	wg.Wait()
	for i := range n {
		if got[i] != got[0] {
			t.Fatalf("caller %d got a different leaf", i)
		}
	}
	if n := a.issued.Load(); n != 1 {
		t.Errorf("%d concurrent calls for one name generated %d leaves, want 1", 64, n)
	}
}
