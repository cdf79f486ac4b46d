package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"

	"github.com/popscope/popscope/internal/certs"
	"github.com/popscope/popscope/proxy"
)

// tlsFlags are the TLS options of `popscope proxy`.
type tlsFlags struct {
	listenTLS    string
	cert, key    string
	caDir        string
	upstreamMode string
	upstreamCA   string
	insecure     bool
	passthrough  bool
}

func (f *tlsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.listenTLS, "listen-tls", "", "also accept implicit-TLS clients (port 995 style) on `ADDR`")
	fs.StringVar(&f.cert, "tls-cert", "", "certificate `FILE` (PEM) for the client leg instead of popscope's CA")
	fs.StringVar(&f.key, "tls-key", "", "private key `FILE` (PEM) for --tls-cert")
	fs.StringVar(&f.caDir, "ca-dir", "", "where popscope's CA lives (default: $POPSCOPE_CA_DIR or the user config dir; see 'popscope ca')")
	fs.StringVar(&f.upstreamMode, "upstream-tls", "auto", "upstream leg `MODE`: auto (995 → implicit, else mirror the client), plain, stls, implicit")
	fs.StringVar(&f.upstreamCA, "upstream-ca", "", "verify the upstream against the CA certificates in `FILE` (PEM) instead of the system roots")
	fs.BoolVar(&f.insecure, "upstream-insecure", false, "DANGER: do not verify the upstream certificate (shown in every session's events)")
	fs.BoolVar(&f.passthrough, "tls-passthrough", false, "do not terminate TLS: relay it untouched (sessions become opaque after STLS)")
}

// build returns the proxy's TLS configuration.
func (f *tlsFlags) build(upstream string, stderr io.Writer) (*proxy.TLSConfig, error) {
	if err := proxy.ParseUpstreamMode(f.upstreamMode); err != nil {
		return nil, fmt.Errorf("--upstream-tls: %w", err)
	}
	if (f.cert == "") != (f.key == "") {
		return nil, fmt.Errorf("--tls-cert and --tls-key go together")
	}
	host, _, err := net.SplitHostPort(upstream)
	if err != nil {
		return nil, err
	}
	up, err := certs.UpstreamConfig(host, f.upstreamCA, f.insecure)
	if err != nil {
		return nil, fmt.Errorf("--upstream-ca: %w", err)
	}
	cfg := &proxy.TLSConfig{Upstream: up, UpstreamMode: f.upstreamMode, Insecure: f.insecure, Passthrough: f.passthrough}
	if f.insecure {
		fmt.Fprintln(stderr, "popscope: WARNING: --upstream-insecure: upstream certificates are not verified")
	}
	if f.passthrough {
		if f.listenTLS != "" {
			return nil, fmt.Errorf("--listen-tls needs TLS termination; drop --tls-passthrough")
		}
		return cfg, nil
	}
	var server *tls.Config
	if f.cert != "" {
		server, err = certs.LoadKeyPair(f.cert, f.key)
		if err != nil {
			return nil, err
		}
	} else {
		dir := f.caDir
		if dir == "" {
			if dir, err = certs.DefaultDir(); err != nil {
				return nil, err
			}
		}
		ca, err := certs.LoadOrCreate(dir)
		if err != nil {
			return nil, fmt.Errorf("CA: %w", err)
		}
		if ca.Created() {
			fmt.Fprintf(stderr, "popscope: created a CA for TLS interception: %s (run 'popscope ca' to see how to trust it)\n", ca.CertPath())
		}
		server = ca.ServerConfig()
	}
	cfg.Server = server
	return cfg, nil
}
