// Package tlspeek reads what can be seen of a TLS handshake without
// taking part in it, for passthrough mode: the proxy relays TLS bytes
// unchanged and reports the client's SNI, offered versions and ALPN
// protocols from its ClientHello, and the negotiated version and cipher
// suite from the ServerHello.
//
// It is a pure parser: no I/O, no goroutines, no allocation beyond the
// result (and a reassembly buffer when a hello spans several records).
// Every length is checked against the input, so garbage yields an error,
// never a panic (FuzzParseClientHello, FuzzParseServerHello).
//
// Covered: the TLS record layer (RFC 8446 §5.1; a handshake message may be
// split across records), ClientHello and ServerHello (RFC 8446 §4.1.2,
// §4.1.3; RFC 5246 §7.4.1), the server_name (RFC 6066 §3),
// application_layer_protocol_negotiation (RFC 7301) and supported_versions
// (RFC 8446 §4.2.1) extensions, GREASE values (RFC 8701, skipped),
// HelloRetryRequest (RFC 8446 §4.1.4), and SSL 2.0-format ClientHellos
// (RFC 6101 Appendix E.2), which old clients send to offer SSL 3.0/TLS 1.0.
//
// # Usage
//
// Buffer what one side sent, and parse again as bytes arrive:
//
//	ch, err := tlspeek.ParseClientHello(buf)
//	switch {
//	case errors.Is(err, tlspeek.ErrNeedMore):
//		// read more (at most MaxHelloLen + record headers)
//	case errors.Is(err, tlspeek.ErrNotTLS):
//		// plaintext where TLS was expected
//	case err != nil:
//		// malformed or too large: report and stop looking
//	default:
//		info.SNI, info.Offered = ch.SNI, ch.VersionNames()
//	}
//
// ErrNeedMore is returned only while the input is a valid prefix of a
// hello, so a caller never buffers more than MaxHelloLen plus record
// headers before getting a definite answer.
//
// # Concurrency
//
// The functions keep no state and may be called from any goroutine. The
// results do not alias the input.
package tlspeek
