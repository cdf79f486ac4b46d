package tlspeek

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"
)

// testCert is a self-signed ECDSA certificate for "localhost".
var testCert = sync.OnceValue(func() tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		DNSNames:     []string{"localhost"},
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
})

// capture runs a crypto/tls client and server over two net.Pipes with the
// test in the middle and returns the client's bytes up to the end of its
// ClientHello and the server's bytes up to the end of its ServerHello.
// The handshake is then abandoned.
func capture(tb testing.TB, client, server *tls.Config) (ch, sh []byte) {
	tb.Helper()
	cc, cp := net.Pipe() // client ↔ test
	sp, sc := net.Pipe() // test ↔ server
	deadline := time.Now().Add(10 * time.Second)
	for _, c := range []net.Conn{cc, cp, sp, sc} {
		c.SetDeadline(deadline)
	}
	if server == nil {
		server = &tls.Config{}
	}
	server = server.Clone()
	server.Certificates = []tls.Certificate{testCert()}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		tls.Client(cc, client).Handshake()
		cc.Close()
	}()
	go func() {
		defer wg.Done()
		tls.Server(sc, server).Handshake()
		sc.Close()
	}()
	defer func() {
		cp.Close()
		sp.Close()
		wg.Wait()
	}()

	ch = readHello(tb, cp, func(b []byte) (int, error) {
		h, err := ParseClientHello(b)
		if err != nil {
			return 0, err
		}
		return h.Len, nil
	})
	if _, err := sp.Write(ch); err != nil {
		tb.Fatalf("writing ClientHello to the server: %v", err)
	}
	sh = readHello(tb, sp, func(b []byte) (int, error) {
		h, err := ParseServerHello(b)
		if err != nil {
			return 0, err
		}
		return h.Len, nil
	})
	return ch, sh
}

// readHello reads from c until parse stops asking for more.
func readHello(tb testing.TB, c net.Conn, parse func([]byte) (int, error)) []byte {
	tb.Helper()
	buf := make([]byte, 0, 4096)
	for range 1000 {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := c.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil {
			tb.Fatalf("reading hello: %v after %d bytes", err, len(buf))
		}
		l, perr := parse(buf)
		if errors.Is(perr, ErrNeedMore) {
			continue
		}
		if perr != nil {
			tb.Fatalf("parsing captured hello: %v", perr)
		}
		return buf[:l:l]
	}
	tb.Fatal("hello not complete after 1000 reads")
	return nil
}

// hellos are real handshakes used by the table tests and as fuzz seeds.
type captured struct {
	name           string
	client, server *tls.Config
}

func capturedCases() []captured {
	return []captured{
		{"tls13-sni-alpn", &tls.Config{ServerName: "mail.example", NextProtos: []string{"pop3"}, InsecureSkipVerify: true}, nil},
		{"tls13-no-sni", &tls.Config{ServerName: "127.0.0.1", InsecureSkipVerify: true}, nil},
		{"tls12-only-client", &tls.Config{ServerName: "mail.example", MaxVersion: tls.VersionTLS12, InsecureSkipVerify: true}, nil},
		{"tls12-server", &tls.Config{ServerName: "mail.example", InsecureSkipVerify: true}, &tls.Config{MaxVersion: tls.VersionTLS12}},
		{"tls10-client", &tls.Config{ServerName: "old.example", MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS12, InsecureSkipVerify: true},
			&tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10}},
		{"hello-retry", &tls.Config{ServerName: "mail.example", InsecureSkipVerify: true, NextProtos: []string{"pop3", "imap"}},
			&tls.Config{CurvePreferences: []tls.CurveID{tls.CurveP384}}},
	}
}
