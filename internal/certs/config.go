package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/popscope/popscope/event"
)

// ErrVerifySkipped is the verifyErr to give Describe for an upstream leg
// dialled with UpstreamConfig(..., insecure=true): the handshake succeeded
// but nobody checked who the server is. Its text is what events show.
var ErrVerifySkipped = errors.New("skipped: --upstream-insecure")

// LoadKeyPair returns a client-leg TLS configuration that presents the
// user's own certificate (--tls-cert, --tls-key: PEM files; the
// certificate file may hold the chain after the leaf). MinVersion is
// TLS 1.2, as in (*Authority).ServerConfig.
func LoadKeyPair(certFile, keyFile string) (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("certs: --tls-cert %s / --tls-key %s: %w", certFile, keyFile, err)
	}
	if pair.Leaf == nil && len(pair.Certificate) > 0 {
		if pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, fmt.Errorf("certs: --tls-cert %s: %w", certFile, err)
		}
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{pair},
	}, nil
}

// UpstreamConfig returns the TLS configuration for the proxy↔upstream leg.
//
// serverName is the name the certificate must match and the SNI sent; a
// "host:port" form is accepted and the port dropped (so the --upstream
// value can be passed as is). The server's chain is verified against the
// system roots, or only against the PEM certificates in caFile when it is
// not empty (--upstream-ca, e.g. a test server's self-signed
// certificate). A failed verification makes the handshake fail with a
// *tls.CertificateVerificationError naming the reason; pass it to
// Describe to report the rejected certificate.
//
// insecure skips verification (InsecureSkipVerify, --upstream-insecure).
// The peer chain is still recorded by crypto/tls in
// ConnectionState.PeerCertificates, so Describe can report its subject,
// issuer and expiry; give Describe ErrVerifySkipped so that every
// session's events show that nothing was verified.
//
// MinVersion is Go's client default (TLS 1.2); callers that want to reach
// older servers, and have TLS-008 report them, may lower it.
func UpstreamConfig(serverName string, caFile string, insecure bool) (*tls.Config, error) {
	if host, _, err := net.SplitHostPort(serverName); err == nil {
		serverName = host
	}
	serverName = strings.TrimSuffix(strings.Trim(serverName, "[]"), ".")
	cfg := &tls.Config{ServerName: serverName}
	if caFile != "" {
		data, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("certs: --upstream-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(data) {
			return nil, fmt.Errorf("certs: --upstream-ca %s: no PEM certificates in the file", caFile)
		}
		cfg.RootCAs = pool
	}
	if insecure {
		cfg.InsecureSkipVerify = true
	} else if serverName == "" {
		return nil, errors.New("certs: no upstream server name to verify the certificate against " +
			"(give a host name, or skip verification explicitly with --upstream-insecure)")
	}
	return cfg, nil
}

// Describe reports a handshake on one leg as an event.TLSInfo: version
// ("TLS 1.3"), cipher suite name, SNI, ALPN, the peer certificate's
// subject, issuer and expiry, and the verification result.
//
// mode is "implicit", "stls" or "passthrough". verifyErr is the handshake
// error if verification failed (the rejected certificate is then taken
// from the *tls.CertificateVerificationError), ErrVerifySkipped for an
// insecure upstream, or nil. Verified is set when crypto/tls built a
// verified chain; on the client leg (no client certificates) it stays
// false and VerifyError empty.
func Describe(cs tls.ConnectionState, leg event.Side, mode string, verifyErr error) *event.TLSInfo {
	info := &event.TLSInfo{
		Leg:  leg,
		Mode: mode,
		SNI:  cs.ServerName,
		ALPN: cs.NegotiatedProtocol,
	}
	if cs.Version != 0 {
		info.Version = tls.VersionName(cs.Version)
	}
	if cs.CipherSuite != 0 {
		info.Cipher = tls.CipherSuiteName(cs.CipherSuite)
	}
	peer := cs.PeerCertificates
	var cve *tls.CertificateVerificationError
	if len(peer) == 0 && errors.As(verifyErr, &cve) {
		peer = cve.UnverifiedCertificates
	}
	if len(peer) > 0 && peer[0] != nil {
		info.PeerSubject = peer[0].Subject.String()
		info.PeerIssuer = peer[0].Issuer.String()
		info.PeerExpiry = peer[0].NotAfter.UTC()
	}
	switch {
	case verifyErr != nil:
		info.VerifyError = verifyErr.Error()
	case len(cs.VerifiedChains) > 0:
		info.Verified = true
	}
	return info
}
