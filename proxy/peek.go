package proxy

import (
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"github.com/popscope/popscope/event"
	"github.com/popscope/popscope/internal/tlspeek"
)

// peekState follows TLS that popscope relays without terminating it
// (passthrough, or a TLS ClientHello on the plain port): it reads the
// ClientHello and ServerHello from the relayed bytes and reports what they
// show. Each side's fields are used only by that side's pipe goroutine;
// client is shared under session.mu.
type peekState struct {
	done   [3]bool   // indexed by event.Side
	buf    [3][]byte // bytes seen so far, bounded by maxPeek
	client *tlspeek.ClientHello
}

// maxPeek bounds what is kept to find a hello (a ClientHello with many
// extensions fits in a few KiB).
const maxPeek = 16 << 10

// peekTLS looks for a hello in the first bytes side sends after decoding
// stopped.
func (s *session) peekTLS(side event.Side, p []byte) {
	ps := &s.peek
	b := append(ps.buf[side], p...)
	if len(b) > maxPeek {
		b = b[:maxPeek]
	}
	ps.buf[side] = b
	now := time.Now()
	if side == event.Client {
		h, err := tlspeek.ParseClientHello(b)
		if errors.Is(err, tlspeek.ErrNeedMore) && len(b) < maxPeek {
			return
		}
		ps.done[side], ps.buf[side] = true, nil
		if err != nil {
			return // not TLS after all: nothing to report
		}
		info := &event.TLSInfo{Leg: event.Client, Mode: "passthrough", SNI: h.SNI, ALPN: joinALPN(h.ALPN), Offered: h.VersionNames()}
		s.mu.Lock()
		ps.client = h
		s.dec.Publish(&event.Event{Type: event.TLS, Time: now, By: event.Client, TLS: info})
		s.mu.Unlock()
		return
	}
	h, err := tlspeek.ParseServerHello(b)
	if errors.Is(err, tlspeek.ErrNeedMore) && len(b) < maxPeek {
		return
	}
	ps.done[side], ps.buf[side] = true, nil
	if err != nil || h.RetryRequest {
		return
	}
	info := &event.TLSInfo{Leg: event.Server, Mode: "passthrough", Version: tlspeek.VersionName(h.Version), Cipher: tls.CipherSuiteName(h.CipherSuite)}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dec.Publish(&event.Event{Type: event.TLS, Time: now, By: event.Server, TLS: info})
	if h.Version < tls.VersionTLS12 {
		sev := ""
		d := fmt.Sprintf("the server negotiated %s (below TLS 1.2)", info.Version)
		if c := ps.client; c != nil && c.MaxVersion() >= tls.VersionTLS12 {
			sev = "error"
			d += fmt.Sprintf(" although the client offered up to %s", tlspeek.VersionName(c.MaxVersion()))
		}
		s.dec.ReportSeverity(now, "POP3-TLS-008", event.Server, d, event.Severity(sev))
	}
}

func joinALPN(p []string) string {
	out := ""
	for i, v := range p {
		if i > 0 {
			out += ","
		}
		out += v
	}
	return out
}
