package tlspeek

import (
	"errors"
	"fmt"
)

// Protocol versions, as on the wire.
const (
	VersionSSL30 uint16 = 0x0300
	VersionTLS10 uint16 = 0x0301
	VersionTLS11 uint16 = 0x0302
	VersionTLS12 uint16 = 0x0303
	VersionTLS13 uint16 = 0x0304
)

// Limits.
const (
	// MaxHelloLen caps the length of a hello handshake message that is
	// reassembled; real ones are a few hundred bytes to a few KiB (post-
	// quantum key shares, many PSK identities). Longer claims get ErrTooLarge.
	MaxHelloLen = 1 << 16
	// maxRecordLen is the largest record payload accepted: 2^14 plaintext
	// plus the 2048 bytes RFC 5246 allows for expansion.
	maxRecordLen    = 1<<14 + 2048
	recordHeaderLen = 5
)

// Record and handshake types.
const (
	recordAlert     = 21
	recordHandshake = 22

	typeClientHello = 1
	typeServerHello = 2

	extServerName        = 0
	extALPN              = 16
	extSupportedVersions = 43
)

// Errors. Parse errors wrap ErrMalformed, ErrNotTLS or ErrTooLarge with a
// detail; a server alert is an *AlertError.
var (
	// ErrNeedMore: the input is a valid but incomplete start of a hello.
	ErrNeedMore = errors.New("tlspeek: need more bytes")
	// ErrNotTLS: the bytes are not a TLS handshake record (for example
	// plaintext POP3 where TLS was expected).
	ErrNotTLS = errors.New("tlspeek: not a TLS handshake")
	// ErrMalformed: a TLS handshake record that does not hold a well-formed hello.
	ErrMalformed = errors.New("tlspeek: malformed hello")
	// ErrTooLarge: the hello claims more than MaxHelloLen bytes.
	ErrTooLarge = errors.New("tlspeek: hello too large")
)

// helloRetryRandom is the ServerHello.random of a HelloRetryRequest
// (SHA-256 of "HelloRetryRequest", RFC 8446 §4.1.3).
var helloRetryRandom = [32]byte{
	0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91,
	0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C,
}

// ClientHello is what a ClientHello shows.
type ClientHello struct {
	// LegacyVersion is the legacy_version field: 0x0303 (TLS 1.2) for
	// clients that offer TLS 1.3, the highest version for older ones.
	LegacyVersion uint16
	// Versions are the offered versions: the supported_versions list in
	// the client's order without GREASE values, or just LegacyVersion when
	// the extension is absent (SupportedVersions false).
	Versions          []uint16
	SupportedVersions bool
	// SNI is the host_name of the server_name extension, as sent ("" if none).
	SNI string
	// ALPN lists the application protocols offered, in order.
	ALPN []string
	// CipherSuites is the number of cipher suites offered (including
	// GREASE and signalling values).
	CipherSuites int
	// SSLv2 is set for an SSL 2.0-format ClientHello; only LegacyVersion,
	// Versions and CipherSuites are then known.
	SSLv2 bool
	// Len is the number of input bytes up to the end of the record that
	// completed the hello.
	Len int
}

// MaxVersion returns the highest offered version (GREASE excluded).
func (h *ClientHello) MaxVersion() uint16 {
	var m uint16
	for _, v := range h.Versions {
		m = max(m, v)
	}
	return m
}

// VersionNames returns Versions as names ("TLS 1.3", ...), the form of
// event.TLSInfo.Offered.
func (h *ClientHello) VersionNames() []string {
	names := make([]string, len(h.Versions))
	for i, v := range h.Versions {
		names[i] = VersionName(v)
	}
	return names
}

// ServerHello is what a ServerHello shows.
type ServerHello struct {
	// LegacyVersion is the legacy_version field (0x0303 under TLS 1.3).
	LegacyVersion uint16
	// Version is the negotiated version: the supported_versions extension
	// if present (TLS 1.3), else LegacyVersion.
	Version uint16
	// CipherSuite is the selected cipher suite (see tls.CipherSuiteName).
	CipherSuite uint16
	// RetryRequest is set for a HelloRetryRequest: the server asks for a
	// new ClientHello and a real ServerHello follows later.
	RetryRequest bool
	// Len is the number of input bytes up to the end of the record that
	// completed the hello.
	Len int
}

// VersionName returns "SSL 3.0", "TLS 1.0" ... "TLS 1.3" (and "SSL 2.0"),
// or the hexadecimal value such as "0x7F1C" for anything else, as
// crypto/tls.VersionName does.
func VersionName(v uint16) string {
	switch v {
	case 0x0002:
		return "SSL 2.0"
	case VersionSSL30:
		return "SSL 3.0"
	case VersionTLS10:
		return "TLS 1.0"
	case VersionTLS11:
		return "TLS 1.1"
	case VersionTLS12:
		return "TLS 1.2"
	case VersionTLS13:
		return "TLS 1.3"
	}
	return fmt.Sprintf("0x%04X", v)
}

// isGREASE reports a GREASE value (RFC 8701): 0x0A0A, 0x1A1A ... 0xFAFA.
func isGREASE(v uint16) bool { return v&0x0F0F == 0x0A0A && v>>8 == v&0xFF }

// AlertError is returned when the peer sent a TLS alert record instead of
// a hello (a server refusing the ClientHello, for instance).
type AlertError struct {
	Level       uint8 // 1 warning, 2 fatal
	Description uint8
}

func (e *AlertError) Error() string {
	level := "fatal"
	if e.Level == 1 {
		level = "warning"
	}
	if name, ok := alertNames[e.Description]; ok {
		return fmt.Sprintf("tlspeek: %s alert %s (%d)", level, name, e.Description)
	}
	return fmt.Sprintf("tlspeek: %s alert %d", level, e.Description)
}

var alertNames = map[uint8]string{
	0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac", 22: "record_overflow",
	40: "handshake_failure", 42: "bad_certificate", 43: "unsupported_certificate",
	44: "certificate_revoked", 45: "certificate_expired", 46: "certificate_unknown",
	47: "illegal_parameter", 48: "unknown_ca", 49: "access_denied", 50: "decode_error",
	51: "decrypt_error", 70: "protocol_version", 71: "insufficient_security",
	80: "internal_error", 86: "inappropriate_fallback", 90: "user_canceled",
	109: "missing_extension", 110: "unsupported_extension", 112: "unrecognized_name",
	113: "bad_certificate_status_response", 115: "unknown_psk_identity",
	116: "certificate_required", 120: "no_application_protocol",
}

func malformed(what string) error { return fmt.Errorf("%w: %s", ErrMalformed, what) }

// handshakeMessage reassembles the first handshake message from the
// records at the start of p and returns its body (without the 4-byte
// header) and the bytes consumed through the record that completed it.
// It checks every header byte as soon as it is available, so that
// ErrNeedMore means "valid so far".
func handshakeMessage(p []byte, want uint8) (body []byte, n int, err error) {
	var msg []byte // reassembled fragments; aliases p while in one record
	owned := false // msg is a buffer of our own, never p
	off := 0
	// Each pass consumes a record of at least 6 bytes, so the loop runs at
	// most len(p)/6+1 times.
	for pass := 0; pass <= len(p)/6+1; pass++ {
		rest := p[off:]
		if err := checkRecordHeader(rest, off == 0, len(msg) > 0); err != nil {
			return nil, 0, err
		}
		if len(rest) < recordHeaderLen {
			return nil, 0, ErrNeedMore
		}
		size := int(rest[3])<<8 | int(rest[4])
		frag := rest[recordHeaderLen:min(len(rest), recordHeaderLen+size)]
		// Check the handshake header as far as it is visible.
		if err := checkHandshakeHeader(msg, frag, want); err != nil {
			return nil, 0, err
		}
		if len(frag) < size {
			return nil, 0, ErrNeedMore
		}
		off += recordHeaderLen + size
		switch {
		case msg == nil:
			msg = frag // aliases p: no copy for the common one-record hello
		case !owned:
			msg = append(append(make([]byte, 0, 2*(len(msg)+len(frag))), msg...), frag...)
			owned = true
		default:
			msg = append(msg, frag...)
		}
		if len(msg) < 4 {
			continue
		}
		length := int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3])
		if len(msg) >= 4+length {
			return msg[4 : 4+length], off, nil
		}
	}
	return nil, 0, ErrNeedMore
}

// checkRecordHeader validates the visible bytes of a record header. first
// says whether this is the first record, midMessage whether a handshake
// message is partly reassembled.
func checkRecordHeader(h []byte, first, midMessage bool) error {
	if len(h) == 0 {
		return nil
	}
	switch h[0] {
	case recordHandshake:
	case recordAlert:
		if len(h) >= 2 && h[1] != 3 {
			break
		}
		if len(h) < recordHeaderLen {
			return ErrNeedMore
		}
		if size := int(h[3])<<8 | int(h[4]); size == 2 {
			if len(h) < recordHeaderLen+2 {
				return ErrNeedMore
			}
			return &AlertError{Level: h[5], Description: h[6]}
		}
		return malformed("alert record of unexpected length (encrypted?)")
	default:
		if first {
			return fmt.Errorf("%w: first byte 0x%02X is not a handshake record", ErrNotTLS, h[0])
		}
		if midMessage {
			return malformed(fmt.Sprintf("record type %d inside a handshake message", h[0]))
		}
		return malformed(fmt.Sprintf("record type %d", h[0]))
	}
	if len(h) >= 2 && h[1] != 3 {
		if first {
			return fmt.Errorf("%w: record version major %d", ErrNotTLS, h[1])
		}
		return malformed(fmt.Sprintf("record version major %d", h[1]))
	}
	if len(h) >= recordHeaderLen {
		size := int(h[3])<<8 | int(h[4])
		if size == 0 {
			return malformed("empty handshake record")
		}
		if size > maxRecordLen {
			return malformed(fmt.Sprintf("record length %d", size))
		}
	}
	return nil
}

// checkHandshakeHeader validates the handshake header bytes visible in
// msg followed by frag.
func checkHandshakeHeader(msg, frag []byte, want uint8) error {
	var h [4]byte
	n := copy(h[:], msg)
	n += copy(h[n:], frag)
	if n >= 1 && h[0] != want {
		return malformed(fmt.Sprintf("handshake type %d, want %d", h[0], want))
	}
	if n >= 4 {
		if length := int(h[1])<<16 | int(h[2])<<8 | int(h[3]); length > MaxHelloLen {
			return fmt.Errorf("%w: %d bytes", ErrTooLarge, length)
		}
	}
	return nil
}

// ParseClientHello parses the ClientHello at the start of p, the first
// bytes a TLS client sends. The hello may span several records; bytes
// after the record that completes it are ignored.
//
// It returns ErrNeedMore while p is a valid but incomplete start,
// ErrNotTLS (wrapped) when p does not start with a handshake record,
// ErrTooLarge, an *AlertError, or ErrMalformed (wrapped) otherwise.
func ParseClientHello(p []byte) (*ClientHello, error) {
	if len(p) > 0 && p[0]&0x80 != 0 {
		return parseSSLv2Hello(p)
	}
	body, n, err := handshakeMessage(p, typeClientHello)
	if err != nil {
		return nil, err
	}
	h := &ClientHello{Len: n}
	r := reader{b: body}
	h.LegacyVersion = r.u16()
	r.skip(32) // random
	r.vec8()   // legacy_session_id
	suites := r.vec16()
	r.vec8() // legacy_compression_methods
	if r.err == nil && (len(suites) == 0 || len(suites)%2 != 0) {
		return nil, malformed("cipher_suites length")
	}
	h.CipherSuites = len(suites) / 2
	var exts []byte
	if !r.empty() {
		exts = r.vec16()
	}
	if r.err != nil {
		return nil, malformed("ClientHello " + r.err.Error())
	}
	if !r.empty() {
		return nil, malformed("bytes after the ClientHello extensions")
	}
	if err := forEachExtension(exts, func(typ uint16, data []byte) error {
		d := reader{b: data}
		switch typ {
		case extServerName:
			list := d.vec16()
			l := reader{b: list}
			for !l.empty() && l.err == nil { // consumes ≥ 3 bytes per pass
				nameType := l.u8()
				name := l.vec16()
				if l.err == nil && nameType == 0 && h.SNI == "" {
					if len(name) == 0 {
						return malformed("empty server name")
					}
					h.SNI = string(name)
				}
			}
			d.err = cmp(d.err, l.err)
		case extALPN:
			list := d.vec16()
			l := reader{b: list}
			for !l.empty() && l.err == nil { // consumes ≥ 1 byte per pass
				proto := l.vec8()
				if l.err == nil {
					if len(proto) == 0 {
						return malformed("empty ALPN protocol name")
					}
					h.ALPN = append(h.ALPN, string(proto))
				}
			}
			d.err = cmp(d.err, l.err)
		case extSupportedVersions:
			list := d.vec8()
			if d.err == nil && (len(list) == 0 || len(list)%2 != 0) {
				return malformed("supported_versions length")
			}
			h.SupportedVersions = true
			for i := 0; i+1 < len(list); i += 2 {
				if v := uint16(list[i])<<8 | uint16(list[i+1]); !isGREASE(v) {
					h.Versions = append(h.Versions, v)
				}
			}
		default:
			return nil
		}
		if d.err != nil {
			return malformed(fmt.Sprintf("extension %d: %v", typ, d.err))
		}
		if !d.empty() {
			return malformed(fmt.Sprintf("extension %d: trailing bytes", typ))
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if !h.SupportedVersions {
		h.Versions = []uint16{h.LegacyVersion}
	}
	return h, nil
}

// parseSSLv2Hello parses an SSL 2.0-format CLIENT-HELLO: a 2-byte header
// with the high bit set, then msg type 1, version, and the lengths of the
// cipher specs (3 bytes each), session id and challenge.
func parseSSLv2Hello(p []byte) (*ClientHello, error) {
	if len(p) >= 3 && p[2] != typeClientHello {
		return nil, fmt.Errorf("%w: first byte 0x%02X is not a handshake record", ErrNotTLS, p[0])
	}
	if len(p) >= 4 && p[3] != 0 && p[3] != 3 {
		return nil, fmt.Errorf("%w: SSL 2.0-format hello with version major %d", ErrNotTLS, p[3])
	}
	if len(p) < 2 {
		return nil, ErrNeedMore
	}
	length := int(p[0]&0x7F)<<8 | int(p[1])
	if len(p) < 2+length {
		if length < 9 {
			return nil, malformed("SSL 2.0 hello length")
		}
		return nil, ErrNeedMore
	}
	r := reader{b: p[2 : 2+length]}
	r.u8() // msg type, checked above
	version := r.u16()
	specs, sid, challenge := int(r.u16()), int(r.u16()), int(r.u16())
	if r.err != nil || specs%3 != 0 || specs+sid+challenge != len(r.b) {
		return nil, malformed("SSL 2.0 hello lengths")
	}
	return &ClientHello{
		LegacyVersion: version,
		Versions:      []uint16{version},
		CipherSuites:  specs / 3,
		SSLv2:         true,
		Len:           2 + length,
	}, nil
}

// ParseServerHello parses the ServerHello at the start of p, the first
// bytes a TLS server sends. Records that follow (Certificate, or the
// encrypted TLS 1.3 flight) are ignored. Errors are as for
// ParseClientHello; a server that refuses the ClientHello with an alert
// gives an *AlertError.
func ParseServerHello(p []byte) (*ServerHello, error) {
	body, n, err := handshakeMessage(p, typeServerHello)
	if err != nil {
		return nil, err
	}
	h := &ServerHello{Len: n}
	r := reader{b: body}
	h.LegacyVersion = r.u16()
	random := r.bytes(32)
	r.vec8() // legacy_session_id_echo
	h.CipherSuite = r.u16()
	r.u8() // legacy_compression_method
	var exts []byte
	if !r.empty() {
		exts = r.vec16()
	}
	if r.err != nil {
		return nil, malformed("ServerHello " + r.err.Error())
	}
	if !r.empty() {
		return nil, malformed("bytes after the ServerHello extensions")
	}
	h.RetryRequest = len(random) == 32 && [32]byte(random) == helloRetryRandom
	h.Version = h.LegacyVersion
	if err := forEachExtension(exts, func(typ uint16, data []byte) error {
		if typ != extSupportedVersions {
			return nil
		}
		if len(data) != 2 {
			return malformed("supported_versions in ServerHello: length")
		}
		h.Version = uint16(data[0])<<8 | uint16(data[1])
		return nil
	}); err != nil {
		return nil, err
	}
	return h, nil
}

// forEachExtension calls fn for each extension in an extensions block.
func forEachExtension(exts []byte, fn func(typ uint16, data []byte) error) error {
	r := reader{b: exts}
	for !r.empty() { // consumes ≥ 4 bytes per pass or stops on error
		typ := r.u16()
		data := r.vec16()
		if r.err != nil {
			return malformed("extensions " + r.err.Error())
		}
		if err := fn(typ, data); err != nil {
			return err
		}
	}
	return nil
}

// reader reads the TLS presentation language from a byte slice; its
// methods are named after the grammar and keep the first error, after
// which they return zero values.
type reader struct {
	b   []byte
	err error
}

var errShort = errors.New("truncated")

func (r *reader) empty() bool { return len(r.b) == 0 }

// bytes returns the next n bytes, or nil if there are fewer.
func (r *reader) bytes(n int) []byte {
	if r.err != nil || n < 0 || n > len(r.b) {
		r.err = cmp(r.err, errShort)
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) skip(n int) { r.bytes(n) }

func (r *reader) u8() uint8 {
	if b := r.bytes(1); len(b) == 1 {
		return b[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if b := r.bytes(2); len(b) == 2 {
		return uint16(b[0])<<8 | uint16(b[1])
	}
	return 0
}

// vec8 reads a vector with a 1-byte length prefix.
func (r *reader) vec8() []byte {
	n := int(r.u8())
	if r.err != nil {
		return nil
	}
	return r.bytes(n)
}

// vec16 reads a vector with a 2-byte length prefix.
func (r *reader) vec16() []byte {
	n := int(r.u16())
	if r.err != nil {
		return nil
	}
	return r.bytes(n)
}

// cmp returns the first non-nil error.
func cmp(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
