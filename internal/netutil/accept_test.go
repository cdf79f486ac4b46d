package netutil

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestAcceptLoopServesUntilCancelled(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var served atomic.Int64
	done := make(chan error, 1)
	go func() {
		done <- AcceptLoop(ctx, ln, "test", nil, func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() },
			func(c net.Conn) { served.Add(1); c.Close() })
	}()
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		c.Read(make([]byte, 1)) // returns when the handler closes it
		c.Close()
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("AcceptLoop after cancel: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("AcceptLoop did not return after cancel")
	}
	wg.Wait()
	if served.Load() != 3 {
		t.Errorf("served %d, want 3", served.Load())
	}
}

type failing struct{ net.Listener }

func (failing) Accept() (net.Conn, error) { return nil, errors.New("boom") }
func (failing) Close() error              { return nil }

func TestAcceptLoopReturnsPermanentError(t *testing.T) {
	err := AcceptLoop(context.Background(), failing{}, "x", nil, func(f func()) { go f() }, func(net.Conn) {})
	if err == nil || err.Error() != "x: accept: boom" {
		t.Fatalf("got %v", err)
	}
}
