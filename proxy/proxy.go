package proxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/popscope/popscope/decode"
	"github.com/popscope/popscope/event"
	"github.com/popscope/popscope/internal/netutil"
)

// Config configures a Proxy. Upstream is required; everything else has a
// default.
type Config struct {
	// Upstream is the POP3 server, host:port.
	Upstream string
	// DialTimeout bounds the upstream connect (default 10s).
	DialTimeout time.Duration
	// Publish receives every event (normally event.Bus.Publish). It must
	// not block; nil discards events.
	Publish func(*event.Event)
	// RevealSecrets turns off redaction of passwords and SASL data.
	RevealSecrets bool
	// Logf, if set, receives one line per operational problem (accept
	// errors, upstream failures).
	Logf func(format string, args ...any)
	// MaxLine is the decoder's line cap (default decode.DefaultMaxLine).
	MaxLine int
	// Dial replaces net.Dialer for the upstream (tests).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// TLS configures TLS interception; nil relays TLS untouched
	// (passthrough) and decodes plaintext only.
	TLS *TLSConfig
	// Store is the decoder's cross-session memory (nil: none).
	Store *decode.Store
	// TickEvery is how often idle sessions are given a decoder Tick for
	// timing rules (default 5s).
	TickEvery time.Duration
	// Recorder, if set, receives every session's bytes and events for
	// lossless recordings.
	Recorder Recorder
}

// Recorder opens one SessionRecorder per session. Implementations must
// never block the relay: copy what they need and return.
type Recorder interface {
	Open(id string, start time.Time, client, upstream string) SessionRecorder
}

// SessionRecorder receives, in order, the plaintext bytes each side sent
// (after TLS termination; before forwarding, exactly as the decoder sees
// them) and every event of the session. p is valid only during the call.
type SessionRecorder interface {
	Data(side event.Side, at time.Time, p []byte)
	Event(e *event.Event)
	Close(at time.Time)
}

// Proxy relays POP3 connections to one upstream and decodes them.
type Proxy struct {
	cfg Config

	mu       sync.Mutex
	conns    map[*session]struct{}
	wg       sync.WaitGroup
	tickOnce sync.Once
	active   atomic.Int64
	total    atomic.Int64
	shutdown atomic.Bool
}

// New returns a Proxy. It does no I/O until Serve.
func New(cfg Config) *Proxy {
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.Publish == nil {
		cfg.Publish = func(*event.Event) {}
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if cfg.Dial == nil {
		d := &net.Dialer{}
		cfg.Dial = d.DialContext
	}
	if cfg.TickEvery <= 0 {
		cfg.TickEvery = 5 * time.Second
	}
	return &Proxy{cfg: cfg, conns: map[*session]struct{}{}}
}

// Active returns the number of sessions in progress.
func (p *Proxy) Active() int64 { return p.active.Load() }

// Total returns the number of sessions accepted so far.
func (p *Proxy) Total() int64 { return p.total.Load() }

// Serve accepts plaintext POP3 clients on ln until ctx is done or ln fails,
// relaying each in its own goroutines. When ctx ends, open sessions are
// closed and Serve returns after they have finished.
func (p *Proxy) Serve(ctx context.Context, ln net.Listener) error {
	return p.serve(ctx, ln, false)
}

// ServeTLS is Serve for an implicit-TLS listener (port 995 style): every
// client starts with a TLS handshake. It needs Config.TLS.
func (p *Proxy) ServeTLS(ctx context.Context, ln net.Listener) error {
	if p.cfg.TLS == nil || p.cfg.TLS.Server == nil {
		return errors.New("proxy: ServeTLS needs Config.TLS with a server certificate")
	}
	return p.serve(ctx, ln, true)
}

func (p *Proxy) serve(ctx context.Context, ln net.Listener, implicit bool) error {
	p.tickOnce.Do(func() { go p.ticker(ctx) })
	err := netutil.AcceptLoop(ctx, ln, "proxy", p.cfg.Logf,
		func(f func()) { p.wg.Add(1); go func() { defer p.wg.Done(); f() }() },
		func(c net.Conn) { p.handle(ctx, c, implicit) })
	p.closeAll()
	p.wg.Wait()
	return err
}

func (p *Proxy) closeAll() {
	p.shutdown.Store(true)
	p.mu.Lock()
	for s := range p.conns {
		s.abort("proxy shutdown")
	}
	p.mu.Unlock()
}

// ticker gives every open session the time every TickEvery, from one
// goroutine for the whole proxy (idle sessions cost no timer).
func (p *Proxy) ticker(ctx context.Context) {
	t := time.NewTicker(p.cfg.TickEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			p.mu.Lock()
			open := make([]*session, 0, len(p.conns))
			for s := range p.conns {
				open = append(open, s)
			}
			p.mu.Unlock()
			for _, s := range open {
				s.tick(now)
			}
		}
	}
}

// NewSessionID returns a random 12-hex-digit session identifier.
func NewSessionID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
