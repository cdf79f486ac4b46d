package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/popscope/popscope/decode"
	"github.com/popscope/popscope/event"
)

// session is one proxied connection.
type session struct {
	p     *Proxy
	id    string
	start time.Time

	// The client and server connections may be replaced by TLS
	// connections on top of them. Each is read by one goroutine only (the
	// one that swaps it); writers go through writeClient/writeServer.
	cmu       sync.Mutex
	client    net.Conn
	rawClient net.Conn
	smu       sync.Mutex
	server    net.Conn
	rawServer net.Conn

	mu  sync.Mutex // serialises decoder calls and keeps event order
	dec *decode.Session
	// decBroken is set if the decoder panicked; the relay carries on.
	decBroken bool

	c2s, s2c atomic.Int64
	reasonM  sync.Mutex
	reason   string
	errText  string

	tls  *tlsState // nil without TLS interception
	rec  SessionRecorder
	peek peekState // TLS hellos seen in passthrough
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
	s.rawClient.Close()
	s.smu.Lock()
	if s.rawServer != nil {
		s.rawServer.Close()
	}
	s.smu.Unlock()
}

func (p *Proxy) handle(ctx context.Context, client net.Conn, implicit bool) {
	p.total.Add(1)
	p.active.Add(1)
	defer p.active.Add(-1)
	s := &session{p: p, id: NewSessionID(), client: client, rawClient: client, start: time.Now()}
	publish := p.cfg.Publish
	if p.cfg.Recorder != nil {
		s.rec = p.cfg.Recorder.Open(s.id, s.start, client.RemoteAddr().String(), p.cfg.Upstream)
		publish = func(e *event.Event) {
			s.rec.Event(e)
			p.cfg.Publish(e)
		}
		defer func() { s.rec.Close(time.Now()) }()
	}
	s.dec = decode.New(decode.Options{Session: s.id, RevealSecrets: p.cfg.RevealSecrets, MaxLine: p.cfg.MaxLine,
		Store: p.cfg.Store, Endpoint: p.cfg.Upstream, TerminateTLS: p.cfg.TLS != nil && !p.cfg.TLS.Passthrough,
		ClientTLS: implicit}, publish)
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

	if p.cfg.TLS != nil {
		s.tls = newTLSState(p.cfg.TLS, implicit, p.cfg.Upstream)
		if implicit && s.clientHandshake(ctx, "implicit") != nil {
			client.Close()
			s.end()
			return
		}
	}

	dctx, cancel := context.WithTimeout(ctx, p.cfg.DialTimeout)
	server, err := p.cfg.Dial(dctx, "tcp", p.cfg.Upstream)
	cancel()
	if err != nil {
		s.upstreamFailed(err)
		return
	}
	s.smu.Lock()
	s.server, s.rawServer = server, server
	s.smu.Unlock()
	s.event(&event.Event{Type: event.Connected, Time: time.Now(), Upstream: server.RemoteAddr().String(),
		LatencyMS: event.Millis(time.Since(s.start))})
	if s.tls != nil && s.tls.upMode == modeImplicit && s.upstreamHandshake(ctx, "implicit") != nil {
		s.failClient("upstream TLS handshake failed")
		client.Close()
		server.Close()
		s.end()
		return
	}
	if p.shutdown.Load() {
		s.abort("proxy shutdown")
	}

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); s.pipe(event.Client) }()
	go func() { defer wg.Done(); s.pipe(event.Server) }()
	wg.Wait()
	s.rawClient.Close()
	server.Close()
	s.end()
}

// tick gives the decoder the time, for its timing rules (PIPE-002,
// TIME-003). The proxy calls it for every session from one goroutine.
func (s *session) tick(now time.Time) {
	s.mu.Lock()
	if !s.decBroken {
		s.dec.Tick(now)
	}
	s.mu.Unlock()
}

// upstreamFailed answers the client with a temporary-failure greeting
// (RFC 3206 SYS/TEMP) so that it fails fast and clearly, and reports why.
func (s *session) upstreamFailed(err error) {
	now := time.Now()
	msg := fmt.Sprintf("-ERR [SYS/TEMP] popscope: upstream %s unreachable: %s\r\n", s.p.cfg.Upstream, shortErr(err))
	_ = s.rawClient.SetWriteDeadline(now.Add(5 * time.Second))
	_, _ = s.writeClient([]byte(msg))
	s.rawClient.Close()
	s.p.cfg.Logf("proxy: session %s: upstream %s: %v", s.id, s.p.cfg.Upstream, err)
	s.event(&event.Event{Type: event.Note, Time: now, Detail: "upstream unreachable; sent the client " + msg[:len(msg)-2], Error: err.Error()})
	s.setReason("upstream unreachable", err.Error())
	s.end()
}

// failClient tells a client that has not seen a greeting yet why the
// session cannot go on.
func (s *session) failClient(why string) {
	msg := "-ERR [SYS/TEMP] popscope: " + why + "\r\n"
	_ = s.rawClient.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = s.writeClient([]byte(msg))
	s.setReason(why, "")
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

func (s *session) note(detail string) {
	s.event(&event.Event{Type: event.Note, Time: time.Now(), Detail: detail})
}

func (s *session) end() {
	now := time.Now()
	s.mu.Lock()
	s.dec.Finish(now)
	s.reasonM.Lock()
	reason, errText := s.reason, s.errText
	s.reasonM.Unlock()
	s.dec.Publish(&event.Event{Type: event.SessionEnd, Time: now, Reason: reason, Error: errText, User: s.dec.User(),
		DurationMS: event.Millis(now.Sub(s.start)), BytesC2S: s.c2s.Load(), BytesS2C: s.s2c.Load()})
	s.mu.Unlock()
}

func (s *session) writeClient(p []byte) (int, error) {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	return s.client.Write(p)
}

func (s *session) writeServer(p []byte) (int, error) {
	if s.tls != nil && s.tls.upTLS.Load() {
		s.tls.afterUpTLS.Add(int64(len(p))) // TLS-004 bookkeeping
	}
	s.smu.Lock()
	defer s.smu.Unlock()
	return s.server.Write(p)
}

func (s *session) conn(side event.Side) net.Conn {
	if side == event.Client {
		s.cmu.Lock()
		defer s.cmu.Unlock()
		return s.client
	}
	s.smu.Lock()
	defer s.smu.Unlock()
	return s.server
}

// Buffer sizes: idle sessions hold a small buffer; a read that fills it
// switches to a large pooled one for bulk transfers (RETR).
const (
	smallBuf = 2 << 10
	largeBuf = 1 << 20
)

var largePool = sync.Pool{New: func() any { b := make([]byte, largeBuf); return &b }}

// pipe copies what side `from` sends to the other side, decoding each
// chunk just before forwarding it.
func (s *session) pipe(from event.Side) {
	small := make([]byte, smallBuf)
	buf := small
	var big *[]byte
	defer func() {
		if big != nil {
			largePool.Put(big)
		}
	}()
	count, write := &s.c2s, s.writeServer
	if from == event.Server {
		count, write = &s.s2c, s.writeClient
	}
	for {
		src := s.conn(from)
		n, rerr := src.Read(buf)
		if n > 0 {
			var werr error
			if s.tlsActive(from) {
				werr = s.tlsChunk(from, buf[:n])
			} else {
				// Decode first, then forward: the peer cannot react to
				// bytes it has not received, so the decoder always sees a
				// command before its reply and a reply before the next
				// command. Decoding is bounded work that never waits.
				if opaque := s.feed(from, buf[:n]); opaque && !s.peek.done[from] {
					s.peekTLS(from, buf[:n])
				}
				_, werr = write(buf[:n])
			}
			if werr != nil {
				s.setReason(from.Other().String()+" write failed", werr.Error())
				// The reader of this side is gone: stop both directions.
				s.closeBoth()
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
			// Decode the close before the peer can react to it.
			s.mu.Lock()
			s.dec.Close(from, now)
			s.mu.Unlock()
			if errors.Is(rerr, io.EOF) {
				s.setReason(from.String()+" closed", "")
				// Half-close: tell the other side no more data comes.
				s.closeWrite(from.Other())
			} else {
				if !errors.Is(rerr, net.ErrClosed) {
					s.setReason(from.String()+" reset", rerr.Error())
				}
				s.closeBoth()
			}
			return
		}
	}
}

func (s *session) closeBoth() {
	s.rawClient.Close()
	s.smu.Lock()
	if s.rawServer != nil {
		s.rawServer.Close()
	}
	s.smu.Unlock()
}

// closeWrite half-closes side's connection: a TLS close_notify first if
// the leg is TLS, then the TCP FIN.
func (s *session) closeWrite(side event.Side) {
	c := s.conn(side)
	raw := s.rawClient
	if side == event.Server {
		s.smu.Lock()
		raw = s.rawServer
		s.smu.Unlock()
	}
	if c != raw {
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
	}
	if cw, ok := raw.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		return
	}
	raw.Close()
}

// feed hands bytes to the decoder. A decoder panic is a bug, but it must
// never take the relay down: it is reported once and decoding stops for
// this session while the bytes keep flowing.
func (s *session) feed(from event.Side, p []byte) (opaque bool) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.feedLocked(now, from, p)
	return s.dec.Opaque()
}

func (s *session) feedLocked(now time.Time, from event.Side, p []byte) {
	if s.rec != nil {
		s.rec.Data(from, now, p)
	}
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
