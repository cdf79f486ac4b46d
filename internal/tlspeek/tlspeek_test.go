package tlspeek

import (
	"crypto/tls"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestParseCapturedHellos(t *testing.T) {
	tls13Suites := []uint16{tls.TLS_AES_128_GCM_SHA256, tls.TLS_AES_256_GCM_SHA384, tls.TLS_CHACHA20_POLY1305_SHA256}
	for _, tc := range []struct {
		name     string
		sni      string
		versions []string
		alpn     []string
		version  string
		hrr      bool
	}{
		{"tls13-sni-alpn", "mail.example", []string{"TLS 1.3", "TLS 1.2"}, []string{"pop3"}, "TLS 1.3", false},
		{"tls13-no-sni", "", []string{"TLS 1.3", "TLS 1.2"}, nil, "TLS 1.3", false},
		{"tls12-only-client", "mail.example", []string{"TLS 1.2"}, nil, "TLS 1.2", false},
		{"tls12-server", "mail.example", []string{"TLS 1.3", "TLS 1.2"}, nil, "TLS 1.2", false},
		{"tls10-client", "old.example", []string{"TLS 1.2", "TLS 1.1", "TLS 1.0"}, nil, "TLS 1.0", false},
		{"hello-retry", "mail.example", []string{"TLS 1.3", "TLS 1.2"}, []string{"pop3", "imap"}, "TLS 1.3", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cc captured
			for _, c := range capturedCases() {
				if c.name == tc.name {
					cc = c
				}
			}
			chBytes, shBytes := capture(t, cc.client, cc.server)
			ch, err := ParseClientHello(chBytes)
			if err != nil {
				t.Fatal(err)
			}
			if ch.SNI != tc.sni || !slices.Equal(ch.VersionNames(), tc.versions) || !slices.Equal(ch.ALPN, tc.alpn) {
				t.Errorf("ClientHello SNI %q versions %v ALPN %q; want %q %v %q", ch.SNI, ch.VersionNames(), ch.ALPN, tc.sni, tc.versions, tc.alpn)
			}
			if ch.LegacyVersion != VersionTLS12 || !ch.SupportedVersions || ch.SSLv2 {
				t.Errorf("ClientHello legacy %s supported_versions %v SSLv2 %v", VersionName(ch.LegacyVersion), ch.SupportedVersions, ch.SSLv2)
			}
			if ch.CipherSuites < 3 || ch.Len != len(chBytes) {
				t.Errorf("ClientHello suites %d Len %d of %d", ch.CipherSuites, ch.Len, len(chBytes))
			}
			if got, want := VersionName(ch.MaxVersion()), tc.versions[0]; got != want {
				t.Errorf("MaxVersion %s, want %s", got, want)
			}

			sh, err := ParseServerHello(shBytes)
			if err != nil {
				t.Fatal(err)
			}
			if VersionName(sh.Version) != tc.version || sh.RetryRequest != tc.hrr || sh.Len != len(shBytes) {
				t.Errorf("ServerHello version %s HRR %v Len %d; want %s %v %d", VersionName(sh.Version), sh.RetryRequest, sh.Len, tc.version, tc.hrr, len(shBytes))
			}
			name := tls.CipherSuiteName(sh.CipherSuite)
			if strings.HasPrefix(name, "0x") {
				t.Errorf("ServerHello cipher %s unknown to crypto/tls", name)
			}
			if is13 := slices.Contains(tls13Suites, sh.CipherSuite); is13 != (sh.Version == VersionTLS13) {
				t.Errorf("cipher %s with %s", name, VersionName(sh.Version))
			}
			if sh.Version == VersionTLS13 && sh.LegacyVersion != VersionTLS12 {
				t.Errorf("TLS 1.3 ServerHello legacy_version %s", VersionName(sh.LegacyVersion))
			}

			// Followed by other bytes: ignored.
			if ch2, err := ParseClientHello(append(slices.Clip(chBytes), "\x14\x03\x03\x00\x01\x01"...)); err != nil || ch2.Len != ch.Len {
				t.Errorf("hello followed by more records: %v", err)
			}
			checkSplits(t, chBytes, func(p []byte) (any, error) { return ParseClientHello(p) })
			checkSplits(t, shBytes, func(p []byte) (any, error) { return ParseServerHello(p) })
		})
	}
}

// checkSplits checks that every strict prefix of a one-record hello asks
// for more, and that the hello split across records of several sizes
// parses to the same result.
func checkSplits(t *testing.T, hello []byte, parse func([]byte) (any, error)) {
	t.Helper()
	want, err := parse(hello)
	if err != nil {
		t.Fatal(err)
	}
	for i := range len(hello) {
		if _, err := parse(hello[:i]); !errors.Is(err, ErrNeedMore) {
			t.Fatalf("prefix of %d/%d bytes: err = %v, want ErrNeedMore", i, len(hello), err)
		}
	}
	msg := hello[recordHeaderLen:] // one record in captures
	for _, size := range []int{1, 2, 3, 4, 5, 7, 64, 100, 1000} {
		split := records(msg, hello[1:3], size)
		got, err := parse(split)
		if err != nil {
			t.Fatalf("split in records of %d bytes: %v", size, err)
		}
		setLen(got, len(hello))
		if !reflect.DeepEqual(got, want) {
			t.Errorf("split in records of %d: %+v, want %+v", size, got, want)
		}
		// The first and last prefixes, a sample in between (the 1-byte
		// split of a post-quantum hello is 10 KB).
		for i := range len(split) {
			if i > 200 && i < len(split)-200 && i%97 != 0 {
				continue
			}
			if _, err := parse(split[:i]); !errors.Is(err, ErrNeedMore) {
				t.Fatalf("split %d, prefix %d/%d: err = %v, want ErrNeedMore", size, i, len(split), err)
			}
		}
	}
}

func setLen(h any, n int) {
	switch h := h.(type) {
	case *ClientHello:
		h.Len = n
	case *ServerHello:
		h.Len = n
	}
}

// records splits a handshake message into handshake records of size bytes.
func records(msg []byte, version []byte, size int) []byte {
	var out []byte
	for len(msg) > 0 {
		n := min(size, len(msg))
		out = append(out, recordHandshake, version[0], version[1], byte(n>>8), byte(n))
		out = append(out, msg[:n]...)
		msg = msg[n:]
	}
	return out
}

// Builders for synthetic hellos.

func u16(v int) []byte { return []byte{byte(v >> 8), byte(v)} }

func ext(typ int, data []byte) []byte {
	return slices.Concat(u16(typ), u16(len(data)), data)
}

func sniExt(names ...string) []byte {
	var list []byte
	for _, n := range names {
		list = slices.Concat(list, []byte{0}, u16(len(n)), []byte(n))
	}
	return ext(extServerName, slices.Concat(u16(len(list)), list))
}

func alpnExt(protos ...string) []byte {
	var list []byte
	for _, p := range protos {
		list = slices.Concat(list, []byte{byte(len(p))}, []byte(p))
	}
	return ext(extALPN, slices.Concat(u16(len(list)), list))
}

func versionsExt(vs ...uint16) []byte {
	var list []byte
	for _, v := range vs {
		list = append(list, u16(int(v))...)
	}
	return ext(extSupportedVersions, slices.Concat([]byte{byte(len(list))}, list))
}

// clientHello builds a handshake message; exts == nil means no
// extensions block at all.
func clientHello(legacy uint16, suites int, exts ...[]byte) []byte {
	body := slices.Concat(u16(int(legacy)), make([]byte, 32), []byte{0}, u16(2*suites))
	for i := range suites {
		body = append(body, u16(0xC02B+i)...)
	}
	body = append(body, 1, 0) // compression: null
	if exts != nil {
		all := slices.Concat(exts...)
		body = slices.Concat(body, u16(len(all)), all)
	}
	return handshake(typeClientHello, body)
}

func serverHello(legacy uint16, suite uint16, exts ...[]byte) []byte {
	body := slices.Concat(u16(int(legacy)), make([]byte, 32), []byte{0}, u16(int(suite)), []byte{0})
	if exts != nil {
		all := slices.Concat(exts...)
		body = slices.Concat(body, u16(len(all)), all)
	}
	return handshake(typeServerHello, body)
}

func handshake(typ byte, body []byte) []byte {
	n := len(body)
	return slices.Concat([]byte{typ, byte(n >> 16), byte(n >> 8), byte(n)}, body)
}

func rec(msg []byte) []byte { return records(msg, []byte{3, 1}, 1<<14) }

func TestParseClientHelloTable(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want ClientHello // Len is filled in as len(in)
	}{
		{"tls12 legacy only, no extensions", rec(clientHello(VersionTLS12, 5)),
			ClientHello{LegacyVersion: VersionTLS12, Versions: []uint16{VersionTLS12}, CipherSuites: 5}},
		{"tls10 with SNI", rec(clientHello(VersionTLS10, 2, sniExt("pop.example"))),
			ClientHello{LegacyVersion: VersionTLS10, Versions: []uint16{VersionTLS10}, SNI: "pop.example", CipherSuites: 2}},
		{"empty extensions block", rec(clientHello(VersionTLS11, 1, []byte{})),
			ClientHello{LegacyVersion: VersionTLS11, Versions: []uint16{VersionTLS11}, CipherSuites: 1}},
		{"tls13 with GREASE, SNI, ALPN", rec(clientHello(VersionTLS12, 3,
			ext(0x0A0A, nil), sniExt("mail.example"), alpnExt("pop3", "h2"), versionsExt(0x3A3A, VersionTLS13, VersionTLS12), ext(0xFAFA, []byte{0}))),
			ClientHello{LegacyVersion: VersionTLS12, Versions: []uint16{VersionTLS13, VersionTLS12}, SupportedVersions: true,
				SNI: "mail.example", ALPN: []string{"pop3", "h2"}, CipherSuites: 3}},
		{"first host_name wins", rec(clientHello(VersionTLS12, 1, sniExt("a.example", "b.example"))),
			ClientHello{LegacyVersion: VersionTLS12, Versions: []uint16{VersionTLS12}, SNI: "a.example", CipherSuites: 1}},
		{"unknown versions kept", rec(clientHello(VersionTLS12, 1, versionsExt(0x7F1C, VersionSSL30))),
			ClientHello{LegacyVersion: VersionTLS12, Versions: []uint16{0x7F1C, VersionSSL30}, SupportedVersions: true, CipherSuites: 1}},
		{"SSL 2.0 format offering TLS 1.0", []byte{0x80, 0x22, 1, 3, 1, 0, 9, 0, 0, 0, 16,
			0, 0, 0x39, 0, 0, 0x38, 0, 0, 0x35, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
			ClientHello{LegacyVersion: VersionTLS10, Versions: []uint16{VersionTLS10}, CipherSuites: 3, SSLv2: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseClientHello(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			tc.want.Len = len(tc.in)
			if !reflect.DeepEqual(*got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", *got, tc.want)
			}
			for i := range len(tc.in) {
				if _, err := ParseClientHello(tc.in[:i]); !errors.Is(err, ErrNeedMore) {
					t.Fatalf("prefix %d: %v", i, err)
				}
			}
		})
	}
}

func TestParseServerHelloTable(t *testing.T) {
	hrr := serverHello(VersionTLS12, tls.TLS_AES_128_GCM_SHA256, ext(extSupportedVersions, u16(int(VersionTLS13))))
	copy(hrr[4+2:], helloRetryRandom[:])
	for _, tc := range []struct {
		name string
		in   []byte
		want ServerHello
	}{
		{"tls12 no extensions", rec(serverHello(VersionTLS12, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)),
			ServerHello{LegacyVersion: VersionTLS12, Version: VersionTLS12, CipherSuite: tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}},
		{"ssl3", rec(serverHello(VersionSSL30, 0x000A, []byte{})),
			ServerHello{LegacyVersion: VersionSSL30, Version: VersionSSL30, CipherSuite: 0x000A}},
		{"tls13", rec(serverHello(VersionTLS12, tls.TLS_AES_256_GCM_SHA384, ext(51, make([]byte, 36)), ext(extSupportedVersions, u16(int(VersionTLS13))))),
			ServerHello{LegacyVersion: VersionTLS12, Version: VersionTLS13, CipherSuite: tls.TLS_AES_256_GCM_SHA384}},
		{"hello retry request", rec(hrr),
			ServerHello{LegacyVersion: VersionTLS12, Version: VersionTLS13, CipherSuite: tls.TLS_AES_128_GCM_SHA256, RetryRequest: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseServerHello(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			tc.want.Len = len(tc.in)
			if *got != tc.want {
				t.Errorf("got  %+v\nwant %+v", *got, tc.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	good := clientHello(VersionTLS12, 2, sniExt("x.example"))
	big := []byte{typeClientHello, 0x01, 0x00, 0x01} // 65537 bytes claimed
	for _, tc := range []struct {
		name   string
		in     []byte
		server bool
		want   error
	}{
		{"empty", nil, false, ErrNeedMore},
		{"plaintext command", []byte("USER bob\r\n"), false, ErrNotTLS},
		{"plaintext greeting", []byte("+OK POP3 ready\r\n"), true, ErrNotTLS},
		{"one plaintext byte", []byte("+"), true, ErrNotTLS},
		{"record version 2", []byte{22, 2}, false, ErrNotTLS},
		{"empty record", []byte{22, 3, 1, 0, 0}, false, ErrMalformed},
		{"oversized record", []byte{22, 3, 1, 0x48, 0x01}, false, ErrMalformed},
		{"ServerHello given to ParseClientHello", rec(serverHello(VersionTLS12, 1)), false, ErrMalformed},
		{"ClientHello given to ParseServerHello", rec(good), true, ErrMalformed},
		{"wrong type seen early", []byte{22, 3, 1, 0, 50, typeServerHello}, false, ErrMalformed},
		{"too large", rec(big), false, ErrTooLarge},
		{"application data mid-message", slices.Concat(records(good, []byte{3, 3}, 10)[:15], []byte{23, 3, 3, 0, 1, 0}), false, ErrMalformed},
		{"odd cipher suites", rec(handshake(typeClientHello, slices.Concat(u16(0x0303), make([]byte, 32), []byte{0}, u16(3), []byte{1, 2, 3, 1, 0}))), false, ErrMalformed},
		{"no cipher suites", rec(handshake(typeClientHello, slices.Concat(u16(0x0303), make([]byte, 32), []byte{0}, u16(0), []byte{1, 0}))), false, ErrMalformed},
		{"truncated body", rec(handshake(typeClientHello, make([]byte, 20))), false, ErrMalformed},
		{"trailing bytes", rec(handshake(typeClientHello, slices.Concat(good[4:], []byte{0}))), false, ErrMalformed},
		{"extension overruns", rec(clientHello(VersionTLS12, 1, []byte{0, 0, 0, 9, 0})), false, ErrMalformed},
		{"SNI list overruns", rec(clientHello(VersionTLS12, 1, ext(extServerName, []byte{0, 9, 0, 0, 1, 'a'}))), false, ErrMalformed},
		{"SNI extension trailing", rec(clientHello(VersionTLS12, 1, ext(extServerName, []byte{0, 4, 0, 0, 1, 'a', 0}))), false, ErrMalformed},
		{"empty SNI", rec(clientHello(VersionTLS12, 1, sniExt(""))), false, ErrMalformed},
		{"empty ALPN name", rec(clientHello(VersionTLS12, 1, alpnExt("pop3", ""))), false, ErrMalformed},
		{"odd supported_versions", rec(clientHello(VersionTLS12, 1, ext(extSupportedVersions, []byte{3, 3, 4, 3}))), false, ErrMalformed},
		{"empty supported_versions", rec(clientHello(VersionTLS12, 1, ext(extSupportedVersions, []byte{0}))), false, ErrMalformed},
		{"ServerHello supported_versions length", rec(serverHello(VersionTLS12, 1, ext(extSupportedVersions, []byte{3, 4, 0}))), true, ErrMalformed},
		{"truncated ServerHello", rec(handshake(typeServerHello, make([]byte, 34))), true, ErrMalformed},
		{"SSLv2 not a hello", []byte{0x80, 0x10, 4}, false, ErrNotTLS},
		{"SSLv2 bad lengths", []byte{0x80, 0x0B, 1, 3, 1, 0, 3, 0, 0, 0, 0, 1, 2}, false, ErrMalformed},
		{"SSLv2 too short", []byte{0x80, 0x03, 1, 3, 1}, false, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.server {
				_, err = ParseServerHello(tc.in)
			} else {
				_, err = ParseClientHello(tc.in)
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "tlspeek: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestParseAlert(t *testing.T) {
	_, err := ParseServerHello([]byte{21, 3, 3, 0, 2, 2, 70})
	var ae *AlertError
	if !errors.As(err, &ae) || ae.Level != 2 || ae.Description != 70 {
		t.Fatalf("err = %v", err)
	}
	if err.Error() != "tlspeek: fatal alert protocol_version (70)" {
		t.Errorf("alert text %q", err)
	}
	if _, err := ParseServerHello([]byte{21, 3, 3, 0, 2, 2}); !errors.Is(err, ErrNeedMore) {
		t.Errorf("partial alert: %v", err)
	}
	if _, err := ParseServerHello([]byte{21, 3, 3, 0, 26, 1}); !errors.Is(err, ErrMalformed) {
		t.Errorf("encrypted alert: %v", err)
	}
	if got := (&AlertError{Level: 1, Description: 200}).Error(); got != "tlspeek: warning alert 200" {
		t.Errorf("unknown alert text %q", got)
	}
}

func TestVersionName(t *testing.T) {
	for v, want := range map[uint16]string{
		0x0002: "SSL 2.0", 0x0300: "SSL 3.0", 0x0301: "TLS 1.0", 0x0302: "TLS 1.1",
		0x0303: "TLS 1.2", 0x0304: "TLS 1.3", 0x7F1C: "0x7F1C", 0x0A0A: "0x0A0A",
	} {
		if got := VersionName(v); got != want {
			t.Errorf("VersionName(%#04x) = %q, want %q", v, got, want)
		}
		if v >= 0x0301 && v <= 0x0304 && tls.VersionName(v) != want { // crypto/tls says "SSLv3"
			t.Errorf("tls.VersionName(%#04x) = %q, differs", v, tls.VersionName(v))
		}
	}
}

func TestResultsDoNotAliasInput(t *testing.T) {
	in := rec(clientHello(VersionTLS12, 1, sniExt("keep.example"), alpnExt("pop3")))
	h, err := ParseClientHello(in)
	if err != nil {
		t.Fatal(err)
	}
	for i := range in {
		in[i] = 'X'
	}
	if h.SNI != "keep.example" || h.ALPN[0] != "pop3" {
		t.Errorf("result changed with the input: %+v", h)
	}
}

// seeds returns real hellos captured from crypto/tls (in one record and
// split across records) plus the synthetic ones, for the fuzz targets.
func seeds(tb testing.TB) (client, server [][]byte) {
	for _, c := range capturedCases() {
		ch, sh := capture(tb, c.client, c.server)
		client = append(client, ch, records(ch[recordHeaderLen:], ch[1:3], 97))
		server = append(server, sh, records(sh[recordHeaderLen:], sh[1:3], 13))
	}
	client = append(client,
		rec(clientHello(VersionTLS12, 5)),
		rec(clientHello(VersionTLS12, 3, sniExt("mail.example"), alpnExt("pop3"), versionsExt(0x3A3A, VersionTLS13))),
		[]byte{0x80, 0x22, 1, 3, 1, 0, 9, 0, 0, 0, 16, 0, 0, 0x39, 0, 0, 0x38, 0, 0, 0x35, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		[]byte("USER bob\r\n"))
	server = append(server,
		rec(serverHello(VersionTLS12, 0xC02F)),
		[]byte{21, 3, 3, 0, 2, 2, 40},
		[]byte("+OK ready\r\n"))
	return client, server
}

// checkFuzzResult holds for any input: no panic, a classified error, a Len
// within the input, the same result from the input cut at Len, and
// ErrNeedMore for the input shortened by one byte if it was ErrNeedMore.
func checkFuzzResult(t *testing.T, p []byte, parse func([]byte) (any, int, error)) {
	h, n, err := parse(p)
	var ae *AlertError
	switch {
	case err == nil:
		if n <= 0 || n > len(p) {
			t.Fatalf("Len %d of %d bytes", n, len(p))
		}
		h2, n2, err2 := parse(p[:n])
		if err2 != nil || n2 != n || !reflect.DeepEqual(h, h2) {
			t.Fatalf("input cut at Len: %+v, %v; want %+v", h2, err2, h)
		}
	case errors.Is(err, ErrNeedMore):
		if len(p) > 0 {
			if _, _, err := parse(p[:len(p)-1]); !errors.Is(err, ErrNeedMore) {
				t.Fatalf("a prefix of an incomplete hello gave %v", err)
			}
		}
	case errors.Is(err, ErrNotTLS), errors.Is(err, ErrMalformed), errors.Is(err, ErrTooLarge), errors.As(err, &ae):
	default:
		t.Fatalf("unclassified error %v", err)
	}
}

func FuzzParseClientHello(f *testing.F) {
	client, _ := seeds(f)
	for _, s := range client {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		checkFuzzResult(t, p, func(p []byte) (any, int, error) {
			h, err := ParseClientHello(p)
			if err != nil {
				return nil, 0, err
			}
			if len(h.VersionNames()) != len(h.Versions) || (len(h.Versions) > 0 && !slices.Contains(h.Versions, h.MaxVersion())) {
				t.Fatalf("versions %v, max %v", h.Versions, h.MaxVersion())
			}
			n := h.Len
			h.Len = 0
			return h, n, nil
		})
	})
}

func FuzzParseServerHello(f *testing.F) {
	_, server := seeds(f)
	for _, s := range server {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		checkFuzzResult(t, p, func(p []byte) (any, int, error) {
			h, err := ParseServerHello(p)
			if err != nil {
				return nil, 0, err
			}
			n := h.Len
			h.Len = 0
			return h, n, nil
		})
	})
}

func ExampleParseClientHello() {
	hello := rec(clientHello(VersionTLS12, 2, sniExt("mail.example"), alpnExt("pop3"), versionsExt(VersionTLS13, VersionTLS12)))
	h, err := ParseClientHello(hello)
	if err != nil {
		panic(err)
	}
	fmt.Println(h.SNI, h.VersionNames(), h.ALPN, h.CipherSuites)
	_, err = ParseClientHello(hello[:10])
	fmt.Println(err)
	_, err = ParseClientHello([]byte("CAPA\r\n"))
	fmt.Println(err)
	// Output:
	// mail.example [TLS 1.3 TLS 1.2] [pop3] 2
	// tlspeek: need more bytes
	// tlspeek: not a TLS handshake: first byte 0x43 is not a handshake record
}
