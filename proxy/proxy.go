package proxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/popscope/popscope/decode"
	"github.com/popscope/popscope/event"
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
}

// Proxy relays POP3 connections to one upstream and decodes them.
type Proxy struct {
	cfg Config

	mu       sync.Mutex
	conns    map[*session]struct{}
	wg       sync.WaitGroup
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
	return &Proxy{cfg: cfg, conns: map[*session]struct{}{}}
}

// Active returns the number of sessions in progress.
func (p *Proxy) Active() int64 { return p.active.Load() }

// Total returns the number of sessions accepted so far.
func (p *Proxy) Total() int64 { return p.total.Load() }

// Serve accepts connections on ln until ctx is done or ln fails, relaying
// each in its own goroutines. When ctx ends, open sessions are closed and
// Serve returns after they have finished.
func (p *Proxy) Serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var tempDelay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				p.closeAll()
				p.wg.Wait()
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// Out of descriptors or a transient failure: back off, keep serving.
				if tempDelay == 0 {
					tempDelay = 5 * time.Millisecond
				} else if tempDelay *= 2; tempDelay > time.Second {
					tempDelay = time.Second
				}
				p.cfg.Logf("proxy: accept: %v; retrying in %v", err, tempDelay)
				time.Sleep(tempDelay)
				continue
			}
			p.closeAll()
			p.wg.Wait()
			return fmt.Errorf("proxy: accept: %w", err)
		}
		tempDelay = 0
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.handle(ctx, c)
		}()
	}
}

func (p *Proxy) closeAll() {
	p.shutdown.Store(true)
	p.mu.Lock()
	for s := range p.conns {
		s.abort("proxy shutdown")
	}
	p.mu.Unlock()
}

// NewSessionID returns a random 12-hex-digit session identifier.
func NewSessionID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// session is one proxied connection.
type session struct {
	p      *Proxy
	id     string
	client net.Conn
	server net.Conn
	start  time.Time
	mu     sync.Mutex // serialises decoder calls and keeps event order
	dec    *decode.Session
	// decBroken is set if the decoder panicked; the relay carries on.
	decBroken bool
	c2s       atomic.Int64
	s2c       atomic.Int64
	reasonM   sync.Mutex
	reason    string
	errText   string
}

func (s *session) setReason(r, errText string) {
	s.reasonM.Lock()
	if s.reason == "" {
		s.reason, s.errText = r, errText
	}
	s.reasonM.Unlock()
}

func (s *session) abort(reason string) {
	s.setReason(reason, "")
	s.client.Close()
	if s.server != nil {
		s.server.Close()
	}
}

func (p *Proxy) handle(ctx context.Context, client net.Conn) {
	p.total.Add(1)
	p.active.Add(1)
	defer p.active.Add(-1)
	s := &session{p: p, id: NewSessionID(), client: client, start: time.Now()}
	s.dec = decode.New(decode.Options{Session: s.id, RevealSecrets: p.cfg.RevealSecrets, MaxLine: p.cfg.MaxLine}, p.cfg.Publish)
	s.event(&event.Event{Type: event.SessionStart, Time: s.start, Client: client.RemoteAddr().String(),
		Listener: client.LocalAddr().String(), Upstream: p.cfg.Upstream})

	p.mu.Lock()
	if p.shutdown.Load() {
		p.mu.Unlock()
		client.Close()
		return
	}
	p.conns[s] = struct{}{}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.conns, s)
		p.mu.Unlock()
	}()

	dctx, cancel := context.WithTimeout(ctx, p.cfg.DialTimeout)
	server, err := p.cfg.Dial(dctx, "tcp", p.cfg.Upstream)
	cancel()
	if err != nil {
		s.upstreamFailed(err)
		return
	}
	s.server = server
	s.event(&event.Event{Type: event.Connected, Time: time.Now(), Upstream: server.RemoteAddr().String(),
		LatencyMS: event.Millis(time.Since(s.start))})
	if p.shutdown.Load() {
		s.abort("proxy shutdown")
	}

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); s.pipe(event.Client, client, server) }()
	go func() { defer wg.Done(); s.pipe(event.Server, server, client) }()
	wg.Wait()
	client.Close()
	server.Close()
	s.end()
}

// upstreamFailed answers the client with a temporary-failure greeting
// (RFC 3206 SYS/TEMP) so that it fails fast and clearly, and reports why.
func (s *session) upstreamFailed(err error) {
	now := time.Now()
	msg := fmt.Sprintf("-ERR [SYS/TEMP] popscope: upstream %s unreachable: %s\r\n", s.p.cfg.Upstream, shortErr(err))
	_ = s.client.SetWriteDeadline(now.Add(5 * time.Second))
	_, _ = io.WriteString(s.client, msg)
	s.client.Close()
	s.p.cfg.Logf("proxy: session %s: upstream %s: %v", s.id, s.p.cfg.Upstream, err)
	s.event(&event.Event{Type: event.Note, Time: now, Detail: "upstream unreachable; sent the client " + msg[:len(msg)-2], Error: err.Error()})
	s.setReason("upstream unreachable", err.Error())
	s.end()
}

func shortErr(err error) string {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err.Error()
	}
	return err.Error()
}

func (s *session) event(e *event.Event) {
	s.mu.Lock()
	s.dec.Publish(e)
	s.mu.Unlock()
}

func (s *session) end() {
	now := time.Now()
	s.mu.Lock()
	s.dec.Finish(now)
	s.reasonM.Lock()
	reason, errText := s.reason, s.errText
	s.reasonM.Unlock()
	s.dec.Publish(&event.Event{Type: event.SessionEnd, Time: now, Reason: reason, Error: errText,
		DurationMS: event.Millis(now.Sub(s.start)), BytesC2S: s.c2s.Load(), BytesS2C: s.s2c.Load()})
	s.mu.Unlock()
}

// Buffer sizes: idle sessions hold a small buffer; a read that fills it
// switches to a large pooled one for bulk transfers (RETR).
const (
	smallBuf = 2 << 10
	largeBuf = 256 << 10
)

var largePool = sync.Pool{New: func() any { b := make([]byte, largeBuf); return &b }}

// pipe copies from src to dst, forwarding each chunk before decoding it.
// from is the side that writes to src.
func (s *session) pipe(from event.Side, src, dst net.Conn) {
	small := make([]byte, smallBuf)
	buf := small
	var big *[]byte
	defer func() {
		if big != nil {
			largePool.Put(big)
		}
	}()
	count := &s.c2s
	if from == event.Server {
		count = &s.s2c
	}
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			// Decode first, then forward: the peer cannot react to bytes it
			// has not received, so the decoder always sees a command
			// before its reply and a reply before the next command. Decoding
			// is bounded work that never waits on anything.
			s.feed(from, buf[:n])
			if _, werr := dst.Write(buf[:n]); werr != nil {
				s.setReason(from.Other().String()+" write failed", werr.Error())
				// The reader of this side is gone: stop both directions.
				src.Close()
				dst.Close()
				return
			}
			count.Add(int64(n))
			// Grow for bulk transfers, shrink back when traffic is small.
			switch {
			case n == len(buf) && big == nil:
				big = largePool.Get().(*[]byte)
				buf = *big
			case n < smallBuf && big != nil:
				largePool.Put(big)
				big, buf = nil, small
			}
		}
		if rerr != nil {
			now := time.Now()
			if errors.Is(rerr, io.EOF) {
				s.setReason(from.String()+" closed", "")
				// Half-close: tell the other side no more data comes.
				if cw, ok := dst.(interface{ CloseWrite() error }); ok {
					_ = cw.CloseWrite()
				} else {
					dst.Close()
				}
			} else {
				if !errors.Is(rerr, net.ErrClosed) {
					s.setReason(from.String()+" reset", rerr.Error())
				}
				src.Close()
				dst.Close()
			}
			s.mu.Lock()
			s.dec.Close(from, now)
			s.mu.Unlock()
			return
		}
	}
}

// feed hands bytes to the decoder. A decoder panic is a bug, but it must
// never take the relay down: it is reported once and decoding stops for
// this session while the bytes keep flowing.
func (s *session) feed(from event.Side, p []byte) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.decBroken {
		return
	}
	defer func() {
		if r := recover(); r != nil {
			s.decBroken = true
			s.p.cfg.Logf("proxy: session %s: decoder panic (bug, please report): %v", s.id, r)
			s.p.cfg.Publish(&event.Event{Type: event.Note, Session: s.id, Time: now, By: from,
				Detail: fmt.Sprintf("decoder failed (%v); relaying continues without decoding", r), Error: "decoder panic"})
		}
	}()
	s.dec.Feed(from, now, p)
}
