//go:build e2e

package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// recorder is a byte-exact TCP relay placed between a client and the
// proxy. It records what the client sent on each connection, so that the
// proxy's command events can be checked against an independent copy of
// the client's bytes, and it remembers the address the proxy sees as the
// client, which ties each connection to its session_start event.
type recorder struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	conns []*recConn
	wg    sync.WaitGroup
}

type recConn struct {
	client   net.Conn
	upstream net.Conn
	local    string // upstream.LocalAddr(): the "client" of session_start
	c2s      bytes.Buffer
	s2c      int64
	err      error
}

func newRecorder(t testing.TB, target string) *recorder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{ln: ln, target: target}
	r.wg.Add(1)
	go r.serve()
	t.Cleanup(func() { r.close(t, 5*time.Second) })
	return r
}

func (r *recorder) addr() string { return r.ln.Addr().String() }

func (r *recorder) serve() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		rc := &recConn{client: c}
		up, err := net.DialTimeout("tcp", r.target, 10*time.Second)
		if err != nil {
			rc.err = err
			c.Close()
			r.mu.Lock()
			r.conns = append(r.conns, rc)
			r.mu.Unlock()
			continue
		}
		rc.upstream, rc.local = up, up.LocalAddr().String()
		r.mu.Lock()
		r.conns = append(r.conns, rc)
		r.mu.Unlock()
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			rc.relay()
		}()
	}
}

// relay copies both ways with half-close, recording client bytes.
func (rc *recConn) relay() {
	var wg sync.WaitGroup
	wg.Add(2)
	var e1, e2 error
	go func() {
		defer wg.Done()
		buf := make([]byte, 32<<10)
		for {
			n, err := rc.client.Read(buf)
			if n > 0 {
				rc.c2s.Write(buf[:n])
				if _, werr := rc.upstream.Write(buf[:n]); werr != nil {
					e1 = werr
					rc.client.Close()
					return
				}
			}
			if err != nil {
				if err != io.EOF {
					e1 = err
					rc.upstream.Close()
					return
				}
				_ = rc.upstream.(*net.TCPConn).CloseWrite()
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		n, err := io.Copy(rc.client, rc.upstream)
		rc.s2c = n
		if err != nil {
			e2 = err
			rc.client.Close()
			rc.upstream.Close()
			return
		}
		_ = rc.client.(*net.TCPConn).CloseWrite()
	}()
	wg.Wait()
	rc.client.Close()
	rc.upstream.Close()
	if e1 != nil {
		rc.err = fmt.Errorf("client to proxy: %w", e1)
	} else if e2 != nil {
		rc.err = fmt.Errorf("proxy to client: %w", e2)
	}
}

// close stops accepting and waits (bounded) for the relays to finish; it
// returns the connections seen. Safe to call more than once.
func (r *recorder) close(t testing.TB, limit time.Duration) []*recConn {
	t.Helper()
	r.ln.Close()
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(limit):
		r.mu.Lock()
		for _, c := range r.conns {
			c.client.Close()
			if c.upstream != nil {
				c.upstream.Close()
			}
		}
		r.mu.Unlock()
		<-done
		t.Errorf("recorder: connections still open %v after the client finished; closed them", limit)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*recConn(nil), r.conns...)
}
