package certs

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/popscope/popscope/event"
)

// writePair writes a leaf issued by a for name as PEM files.
func writePair(t *testing.T, a *Authority, name string) (certFile, keyFile string) {
	t.Helper()
	leaf, err := a.GetCertificate(&tls.ClientHelloInfo{ServerName: name})
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(leaf.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Certificate[0]}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestUpstreamConfigVerifies(t *testing.T) {
	server, other := newCA(t), newCA(t)
	addr := serveTLS(t, server.ServerConfig())

	// Trusting the server's CA: verified.
	cfg, err := UpstreamConfig("localhost:995", server.CertPath(), false)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ServerName != "localhost" || cfg.InsecureSkipVerify {
		t.Fatalf("ServerName %q InsecureSkipVerify %v", cfg.ServerName, cfg.InsecureSkipVerify)
	}
	cs, err := dialTLS(addr, cfg)
	if err != nil {
		t.Fatalf("handshake with the right CA: %v", err)
	}
	info := Describe(cs, event.Server, "implicit", nil)
	if !info.Verified || info.VerifyError != "" {
		t.Errorf("Verified %v VerifyError %q", info.Verified, info.VerifyError)
	}
	if info.Leg != event.Server || info.Mode != "implicit" || info.Version != "TLS 1.3" || info.SNI != "localhost" {
		t.Errorf("Describe = %+v", info)
	}
	if info.Cipher != tls.CipherSuiteName(cs.CipherSuite) || !strings.HasPrefix(info.Cipher, "TLS_") {
		t.Errorf("Cipher %q", info.Cipher)
	}
	if info.PeerSubject != "CN=localhost,O=popscope" || !strings.Contains(info.PeerIssuer, "popscope local CA") {
		t.Errorf("peer subject %q issuer %q", info.PeerSubject, info.PeerIssuer)
	}
	if !info.PeerExpiry.Equal(cs.PeerCertificates[0].NotAfter) {
		t.Errorf("PeerExpiry %v", info.PeerExpiry)
	}

	// Trusting another CA: the handshake fails and says why.
	cfg, err = UpstreamConfig("localhost", other.CertPath(), false)
	if err != nil {
		t.Fatal(err)
	}
	cs, err = dialTLS(addr, cfg)
	if err == nil {
		t.Fatal("handshake with the wrong CA succeeded")
	}
	var cve *tls.CertificateVerificationError
	if !errors.As(err, &cve) || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Fatalf("wrong CA: err = %v (%T)", err, err)
	}
	info = Describe(cs, event.Server, "stls", err)
	if info.Verified || !strings.Contains(info.VerifyError, "unknown authority") {
		t.Errorf("Verified %v VerifyError %q", info.Verified, info.VerifyError)
	}
	if info.PeerSubject != "CN=localhost,O=popscope" {
		t.Errorf("rejected certificate not reported: subject %q", info.PeerSubject)
	}

	// System roots do not know the test CA either.
	cfg, err = UpstreamConfig("localhost", "", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dialTLS(addr, cfg); !errors.As(err, &cve) {
		t.Errorf("system roots accepted a test CA: %v", err)
	}
}

func TestUpstreamConfigNameMismatch(t *testing.T) {
	a := newCA(t)
	certFile, keyFile := writePair(t, a, "localhost")
	srv, err := LoadKeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if srv.MinVersion != tls.VersionTLS12 || len(srv.Certificates) != 1 || srv.Certificates[0].Leaf == nil {
		t.Fatalf("LoadKeyPair config: %+v", srv)
	}
	addr := serveTLS(t, srv)
	cfg, err := UpstreamConfig("localhost", a.CertPath(), false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dialTLS(addr, cfg); err != nil {
		t.Fatalf("own key pair, right name: %v", err)
	}
	cfg, err = UpstreamConfig("mail.example", a.CertPath(), false)
	if err != nil {
		t.Fatal(err)
	}
	_, err = dialTLS(addr, cfg)
	if err == nil || !strings.Contains(err.Error(), "not mail.example") {
		t.Errorf("wrong name: err = %v", err)
	}
}

func TestUpstreamConfigInsecure(t *testing.T) {
	a := newCA(t)
	addr := serveTLS(t, a.ServerConfig())
	cfg, err := UpstreamConfig("", "", true)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.InsecureSkipVerify {
		t.Fatal("insecure config verifies")
	}
	cs, err := dialTLS(addr, cfg)
	if err != nil {
		t.Fatalf("insecure handshake: %v", err)
	}
	if len(cs.PeerCertificates) == 0 {
		t.Fatal("peer chain not recorded")
	}
	info := Describe(cs, event.Server, "implicit", ErrVerifySkipped)
	if info.Verified || info.VerifyError != "skipped: --upstream-insecure" {
		t.Errorf("Verified %v VerifyError %q", info.Verified, info.VerifyError)
	}
	if info.PeerSubject == "" || info.PeerIssuer == "" || info.PeerExpiry.IsZero() {
		t.Errorf("peer certificate not described: %+v", info)
	}
}

func TestUpstreamConfigErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	os.WriteFile(notPEM, []byte("hello\n"), 0o644)
	for _, tc := range []struct {
		name, ca string
		insecure bool
		want     string
	}{
		{"localhost", filepath.Join(dir, "missing.pem"), false, "--upstream-ca"},
		{"localhost", notPEM, false, "no PEM certificates"},
		{"", "", false, "--upstream-insecure"},
		{":995", "", false, "--upstream-insecure"},
	} {
		_, err := UpstreamConfig(tc.name, tc.ca, tc.insecure)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("UpstreamConfig(%q, %q, %v): err = %v, want %q", tc.name, tc.ca, tc.insecure, err, tc.want)
		}
	}
	for in, want := range map[string]string{"[::1]:995": "::1", "mail.example.": "mail.example", "192.0.2.1": "192.0.2.1"} {
		cfg, err := UpstreamConfig(in, "", false)
		if err != nil || cfg.ServerName != want {
			t.Errorf("UpstreamConfig(%q): ServerName %q, %v; want %q", in, cfg.ServerName, err, want)
		}
	}
	if _, err := LoadKeyPair(filepath.Join(dir, "nope.pem"), filepath.Join(dir, "nope.key")); err == nil || !strings.Contains(err.Error(), "--tls-cert") {
		t.Errorf("LoadKeyPair on missing files: %v", err)
	}
}

func TestDescribeClientLeg(t *testing.T) {
	info := Describe(tls.ConnectionState{
		Version:            tls.VersionTLS12,
		CipherSuite:        tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		ServerName:         "mail.example",
		NegotiatedProtocol: "pop3",
	}, event.Client, "stls", nil)
	want := event.TLSInfo{Leg: event.Client, Mode: "stls", Version: "TLS 1.2",
		Cipher: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", SNI: "mail.example", ALPN: "pop3"}
	if info.Leg != want.Leg || info.Mode != want.Mode || info.Version != want.Version || info.Cipher != want.Cipher ||
		info.SNI != want.SNI || info.ALPN != want.ALPN || info.Verified || info.VerifyError != "" || info.PeerSubject != "" {
		t.Errorf("Describe = %+v, want %+v", *info, want)
	}
	if got := Describe(tls.ConnectionState{}, event.Client, "implicit", errors.New("tls: handshake failure")); got.Version != "" || got.VerifyError == "" {
		t.Errorf("failed handshake: %+v", *got)
	}
}
