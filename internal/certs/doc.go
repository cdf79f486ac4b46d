// Package certs is popscope's certificate authority for TLS interception
// and the TLS configurations of both legs.
//
// On the client leg popscope terminates TLS itself (implicit TLS or after
// STLS). Unless the user brings a certificate (--tls-cert/--tls-key, see
// LoadKeyPair), it presents a leaf certificate issued on the fly for the
// name the client asked for (SNI) and signed by a local CA that the user
// trusts in the client under test. The CA is generated on first use:
//
//	DIR/popscope-ca.pem      CA certificate, mode 0644 (give this to clients)
//	DIR/popscope-ca-key.pem  CA private key, mode 0600 (never leaves DIR)
//
// where DIR is --dir, else $POPSCOPE_CA_DIR, else os.UserConfigDir()/popscope
// (DefaultDir). The directory is created with mode 0700. A key file that
// the group or others may read is refused, as is a certificate that does
// not belong to the key. The CA is ECDSA P-256, valid for 10 years, may
// sign only leaf certificates (MaxPathLen 0), and carries the host name
// in its common name so that several machines' CAs can be told apart.
//
// Leaf certificates are ECDSA P-256, valid from one hour ago for 397 days
// (clients refuse server certificates valid for more than 398 days), never
// beyond the CA's own expiry, and for server authentication only. They
// are cached in memory per name (an LRU of LeafCacheSize entries) and
// renewed a day before they expire.
//
// On the upstream leg, UpstreamConfig verifies the server against the
// system roots or a PEM bundle (--upstream-ca); verification is skipped
// only on explicit request, and Describe turns the result of either leg's
// handshake into an event.TLSInfo.
//
// # Usage
//
//	ca, err := certs.LoadOrCreate("")   // "" = DefaultDir()
//	ln := tls.NewListener(raw, ca.ServerConfig())
//	fmt.Println("trust", ca.CertPath())
//
//	up, err := certs.UpstreamConfig("mail.example", caFile, false)
//	conn := tls.Client(rawUpstream, up)
//	err = conn.HandshakeContext(ctx)
//	info := certs.Describe(conn.ConnectionState(), event.Server, "stls", err)
//
// # Concurrency
//
// An Authority is safe for concurrent use; GetCertificate is meant to be
// called by many handshakes at once. Concurrent handshakes for one name
// wait for a single certificate to be generated (a singleflight guard)
// instead of each making their own; a waiter gives up when its handshake
// context ends. Generation runs outside the cache lock, so handshakes for
// other names are not held up.
//
// LoadOrCreate is safe against another popscope process creating the CA
// in the same directory at the same moment: the key file is published
// with an exclusive link, so exactly one CA wins and the other process
// loads it.
package certs
