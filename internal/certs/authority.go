package certs

import (
	"container/list"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// File names inside the CA directory, and the variable that overrides the
// default directory.
const (
	CertFile = "popscope-ca.pem"
	KeyFile  = "popscope-ca-key.pem"
	EnvDir   = "POPSCOPE_CA_DIR"
)

// Validity and cache limits.
const (
	// CAValidity is how long a generated CA is valid.
	CAValidity = 10 * 365 * 24 * time.Hour
	// LeafValidity is how long a leaf certificate is valid from issue; it
	// starts LeafBackdate earlier to absorb clock skew. The total stays
	// under the 398 days that Apple and browsers accept for server
	// certificates.
	LeafValidity = 397 * 24 * time.Hour
	LeafBackdate = time.Hour
	// LeafCacheSize bounds the number of leaf certificates kept in memory.
	LeafCacheSize = 1024
	// leafRenewBefore: a cached leaf this close to expiry is reissued.
	leafRenewBefore = 24 * time.Hour
	// publishWait bounds how long LoadOrCreate waits for another process
	// that has published the CA key but not yet the certificate.
	publishWait  = 2 * time.Second
	publishPolls = 40
)

// Authority is a local CA that issues leaf certificates for TLS
// interception. Create one with LoadOrCreate; it is safe for concurrent use.
type Authority struct {
	dir      string
	cert     *x509.Certificate
	certPEM  []byte
	key      crypto.Signer
	created  bool
	now      func() time.Time
	maxCache int

	mu       sync.Mutex
	lru      *list.List               // of *cacheEntry, most recent first
	cache    map[string]*list.Element // key → element of lru
	inflight map[string]*issueCall

	issued atomic.Int64 // leaf certificates generated (tests, diagnostics)
}

type cacheEntry struct {
	key     string
	cert    *tls.Certificate
	renewAt time.Time
}

// issueCall is one leaf generation that concurrent handshakes for the
// same name wait for.
type issueCall struct {
	done chan struct{}
	cert *tls.Certificate
	err  error
}

// DefaultDir returns the directory of the CA files: $POPSCOPE_CA_DIR if
// set, else os.UserConfigDir()/popscope, else $HOME/.config/popscope.
func DefaultDir() (string, error) {
	if d := os.Getenv(EnvDir); d != "" {
		return d, nil
	}
	if d, err := os.UserConfigDir(); err == nil && d != "" {
		return filepath.Join(d, "popscope"), nil
	}
	if h, err := os.UserHomeDir(); err == nil && h != "" {
		return filepath.Join(h, ".config", "popscope"), nil
	}
	return "", errors.New("certs: no directory for the CA: set $" + EnvDir + " or $HOME")
}

// LoadOrCreate returns the CA kept in dir ("" means DefaultDir()),
// generating it on first use. The directory is created with mode 0700, the
// certificate written with mode 0644 and the key with 0600. Loading fails
// if the key file is accessible to group or others, if only one of the two
// files exists, if the certificate is not a CA or has expired, or if the
// certificate does not match the key; each error says how to fix it.
func LoadOrCreate(dir string) (*Authority, error) {
	if dir == "" {
		d, err := DefaultDir()
		if err != nil {
			return nil, err
		}
		dir = d
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("certs: creating CA directory: %w", err)
	}
	keyPath, certPath := filepath.Join(dir, KeyFile), filepath.Join(dir, CertFile)
	if !exists(keyPath) && !exists(certPath) {
		a, err := create(dir)
		if !errors.Is(err, errLostRace) {
			return a, err
		}
		// Another process created the CA at the same moment: use theirs.
	}
	return load(dir)
}

var errLostRace = errors.New("certs: CA created concurrently by another process")

func exists(path string) bool {
	_, err := os.Lstat(path)
	return !errors.Is(err, fs.ErrNotExist)
}

func newAuthority(dir string, cert *x509.Certificate, key crypto.Signer, created bool) *Authority {
	return &Authority{
		dir:      dir,
		cert:     cert,
		certPEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}),
		key:      key,
		created:  created,
		now:      time.Now,
		maxCache: LeafCacheSize,
		lru:      list.New(),
		cache:    make(map[string]*list.Element),
		inflight: make(map[string]*issueCall),
	}
}

// create generates a CA and publishes it in dir: key first, with an
// exclusive link so that one of several racing processes wins, then the
// certificate.
func create(dir string) (*Authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certs: generating CA key: %w", err)
	}
	serial, err := randSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: caCommonName(), Organization: []string{"popscope"}},
		NotBefore:             now.Add(-LeafBackdate),
		NotAfter:              now.Add(CAValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("certs: creating CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	a := newAuthority(dir, cert, key, true)
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})

	keyPath, certPath := filepath.Join(dir, KeyFile), filepath.Join(dir, CertFile)
	tmpKey, err := writeTemp(dir, ".popscope-ca-key-*.tmp", keyPEM, 0o600)
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmpKey)
	tmpCert, err := writeTemp(dir, ".popscope-ca-*.tmp", a.certPEM, 0o644)
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmpCert) // no-op once renamed

	if err := os.Link(tmpKey, keyPath); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, errLostRace
		}
		// No hard links here (some file systems): exclusive create.
		if err := writeExclusive(keyPath, keyPEM); err != nil {
			return nil, err
		}
	}
	if err := os.Rename(tmpCert, certPath); err != nil {
		os.Remove(keyPath)
		return nil, fmt.Errorf("certs: writing CA certificate: %w", err)
	}
	return a, nil
}

func caCommonName() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	const prefix = "popscope local CA "
	if max := 64 - len(prefix); len(host) > max { // X.520 ub-common-name
		host = host[:max]
	}
	return prefix + host
}

func writeTemp(dir, pattern string, data []byte, mode os.FileMode) (string, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return "", fmt.Errorf("certs: %w", err)
	}
	name := f.Name()
	err = f.Chmod(mode)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return "", fmt.Errorf("certs: writing %s: %w", name, err)
	}
	return name, nil
}

func writeExclusive(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return errLostRace
	}
	if err != nil {
		return fmt.Errorf("certs: writing CA key: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("certs: writing CA key: %w", err)
	}
	return nil
}

// load reads and checks the CA files in dir.
func load(dir string) (*Authority, error) {
	keyPath, certPath := filepath.Join(dir, KeyFile), filepath.Join(dir, CertFile)
	fi, err := os.Stat(keyPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("certs: CA certificate %s exists but its key %s does not; "+
			"delete the certificate to generate a new CA (clients must then trust the new one)", certPath, keyPath)
	}
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("certs: CA key %s is accessible to group or others (mode %04o); "+
			"it lets anyone impersonate any server to clients trusting the CA; run: chmod 600 %s",
			keyPath, fi.Mode().Perm(), keyPath)
	}
	certPEM, err := os.ReadFile(certPath)
	// A CA key younger than publishWait without its certificate is most
	// likely being published by another process right now.
	for i := 0; i < publishPolls && errors.Is(err, fs.ErrNotExist) && time.Since(fi.ModTime()) < publishWait; i++ {
		time.Sleep(publishWait / publishPolls)
		certPEM, err = os.ReadFile(certPath)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("certs: CA key %s exists but its certificate %s does not; "+
			"delete the key to generate a new CA", keyPath, certPath)
	}
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	cert, err := parseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("certs: %s: %w", certPath, err)
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("certs: %s: %w", keyPath, err)
	}
	if !cert.IsCA || !cert.BasicConstraintsValid || (cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0) {
		return nil, fmt.Errorf("certs: %s is not a CA certificate (it cannot sign certificates)", certPath)
	}
	pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(key.Public()) {
		return nil, fmt.Errorf("certs: CA certificate %s does not match the key %s; "+
			"restore the matching pair or delete both to generate a new CA", certPath, keyPath)
	}
	if now := time.Now(); now.After(cert.NotAfter) {
		return nil, fmt.Errorf("certs: CA certificate %s expired on %s; delete %s and %s to generate a new CA "+
			"(clients must then trust the new one)", certPath, cert.NotAfter.Format(time.DateOnly), certPath, keyPath)
	}
	return newAuthority(dir, cert, key, false), nil
}

func parseCertPEM(data []byte) (*x509.Certificate, error) {
	for range 64 { // skip a few non-certificate blocks, bounded
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type == "CERTIFICATE" {
			return x509.ParseCertificate(block.Bytes)
		}
	}
	return nil, errors.New("no CERTIFICATE block")
}

func parseKeyPEM(data []byte) (crypto.Signer, error) {
	for range 64 {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		var key any
		var err error
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, err
		}
		s, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("unsupported key type %T", key)
		}
		return s, nil
	}
	return nil, errors.New("no PRIVATE KEY block")
}

func randSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("certs: serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil // positive, never zero
}

// Created reports whether LoadOrCreate generated the CA (rather than
// loading an existing one).
func (a *Authority) Created() bool { return a.created }

// Dir returns the absolute directory holding the CA files.
func (a *Authority) Dir() string { return a.dir }

// CertPath returns the absolute path of the CA certificate file, the one
// clients must trust.
func (a *Authority) CertPath() string { return filepath.Join(a.dir, CertFile) }

// KeyPath returns the absolute path of the CA private key file.
func (a *Authority) KeyPath() string { return filepath.Join(a.dir, KeyFile) }

// CertPEM returns the CA certificate in PEM form. The caller must not
// modify it.
func (a *Authority) CertPEM() []byte { return a.certPEM }

// Certificate returns the parsed CA certificate. The caller must not
// modify it.
func (a *Authority) Certificate() *x509.Certificate { return a.cert }

// ServerConfig returns a TLS configuration for the client leg that
// presents leaf certificates from GetCertificate.
//
// MinVersion is TLS 1.2: a client that offers only older versions fails
// the handshake here rather than being served an insecure session. Old
// versions are still observed and reported by rule TLS-008 where popscope
// does not terminate (passthrough ClientHellos, upstream ServerHellos).
func (a *Authority) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: a.GetCertificate,
	}
}

// GetCertificate implements tls.Config.GetCertificate: it returns a leaf
// certificate signed by the CA for the name the client asked for.
//
//   - SNI is a host name: the leaf is for that DNS name (lower-cased).
//   - SNI is an IP address (not allowed by RFC 6066, but some clients
//     send it): the leaf has that IP address SAN.
//   - No SNI (clients connecting to an IP address send none), or an SNI
//     that is not a valid host name: the leaf is for "localhost" and the
//     local IP address the client connected to (hello.Conn.LocalAddr()),
//     or 127.0.0.1 and ::1 if that is unknown.
//
// Leaves are cached; concurrent calls for one name generate it once.
func (a *Authority) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	var ctx context.Context
	var name string
	var conn net.Conn
	if hello != nil {
		name, conn = hello.ServerName, hello.Conn
		ctx = hello.Context()
	}
	if ctx == nil {
		ctx = context.Background()
	}
	key, dns, ips := leafNames(name, conn)
	return a.leaf(ctx, key, dns, ips)
}

// leafNames decides the subject alternative names for a handshake and the
// cache key that identifies them.
func leafNames(sni string, conn net.Conn) (key string, dns []string, ips []net.IP) {
	sni = strings.ToLower(strings.TrimSuffix(sni, "."))
	if sni != "" {
		if ip, err := netip.ParseAddr(sni); err == nil && ip.Zone() == "" {
			ip = ip.Unmap()
			return "ip:" + ip.String(), nil, []net.IP{net.IP(ip.AsSlice())}
		}
		if validHostname(sni) {
			return "dns:" + sni, []string{sni}, nil
		}
	}
	var local netip.Addr
	if conn != nil {
		if la := conn.LocalAddr(); la != nil {
			if ta, ok := la.(*net.TCPAddr); ok {
				local, _ = netip.AddrFromSlice(ta.IP)
			} else if host, _, err := net.SplitHostPort(la.String()); err == nil {
				local, _ = netip.ParseAddr(host)
			}
		}
	}
	local = local.Unmap().WithZone("")
	if !local.IsValid() || local.IsUnspecified() {
		return "local:", []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	}
	return "local:" + local.String(), []string{"localhost"}, []net.IP{net.IP(local.AsSlice())}
}

// validHostname accepts what may go in a dNSName SAN: dot-separated labels
// of letters, digits, '-' and '_' (seen in the wild), 1-63 bytes each,
// 253 bytes in all. Wildcards are not accepted.
func validHostname(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	label := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.':
			if label == 0 {
				return false
			}
			label = 0
			continue
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
		label++
		if label > 63 {
			return false
		}
	}
	return label > 0
}

// leaf returns the cached certificate for key or generates it once.
func (a *Authority) leaf(ctx context.Context, key string, dns []string, ips []net.IP) (*tls.Certificate, error) {
	now := a.now()
	a.mu.Lock()
	if el, ok := a.cache[key]; ok {
		e := el.Value.(*cacheEntry)
		if now.Before(e.renewAt) {
			a.lru.MoveToFront(el)
			a.mu.Unlock()
			return e.cert, nil
		}
		a.lru.Remove(el)
		delete(a.cache, key)
	}
	if c, ok := a.inflight[key]; ok {
		a.mu.Unlock()
		select {
		case <-c.done:
			return c.cert, c.err
		case <-ctx.Done():
			return nil, fmt.Errorf("certs: waiting for a certificate for %s: %w", key, ctx.Err())
		}
	}
	c := &issueCall{done: make(chan struct{})}
	a.inflight[key] = c
	a.mu.Unlock()

	c.cert, c.err = a.issue(now, dns, ips)

	a.mu.Lock()
	delete(a.inflight, key)
	if c.err == nil {
		renew := c.cert.Leaf.NotAfter.Add(-leafRenewBefore)
		a.cache[key] = a.lru.PushFront(&cacheEntry{key: key, cert: c.cert, renewAt: renew})
		for a.lru.Len() > a.maxCache { // at most one eviction per insert
			old := a.lru.Back()
			a.lru.Remove(old)
			delete(a.cache, old.Value.(*cacheEntry).key)
		}
	}
	a.mu.Unlock()
	close(c.done)
	return c.cert, c.err
}

// issue generates and signs one leaf certificate.
func (a *Authority) issue(now time.Time, dns []string, ips []net.IP) (*tls.Certificate, error) {
	if !now.Before(a.cert.NotAfter) {
		return nil, fmt.Errorf("certs: CA certificate %s expired on %s; delete it and its key to generate a new CA",
			a.CertPath(), a.cert.NotAfter.Format(time.DateOnly))
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certs: generating leaf key: %w", err)
	}
	serial, err := randSerial()
	if err != nil {
		return nil, err
	}
	cn := "popscope leaf"
	if len(dns) > 0 && len(dns[0]) <= 64 {
		cn = dns[0]
	} else if len(dns) == 0 && len(ips) > 0 {
		cn = ips[0].String()
	}
	notAfter := now.Add(LeafValidity)
	if notAfter.After(a.cert.NotAfter) {
		notAfter = a.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"popscope"}},
		NotBefore:             now.Add(-LeafBackdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              dns,
		IPAddresses:           ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, &key.PublicKey, a.key)
	if err != nil {
		return nil, fmt.Errorf("certs: signing leaf certificate for %v %v: %w", dns, ips, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	a.issued.Add(1)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}
