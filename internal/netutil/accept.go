// Package netutil holds the accept loop shared by popscope's servers (the
// proxy, the demo POP3 server and the replay server).
package netutil

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"
)

// AcceptLoop accepts connections on ln until ctx ends or ln fails for
// good, calling handle for each in its own goroutine (started through
// spawn, which lets the caller track it, e.g. with a WaitGroup). Transient
// failures — timeouts, running out of file descriptors — back off from
// 5 ms up to 1 s and are reported through logf, and the loop keeps
// serving. ln is closed when ctx ends. AcceptLoop returns nil when ctx
// ended, otherwise the accept error prefixed with name.
func AcceptLoop(ctx context.Context, ln net.Listener, name string, logf func(string, ...any),
	spawn func(func()), handle func(net.Conn)) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				if logf != nil {
					logf("%s: accept: %v; retrying in %v", name, err, delay)
				}
				select {
				case <-time.After(delay):
				case <-ctx.Done():
					return nil
				}
				continue
			}
			ln.Close()
			return fmt.Errorf("%s: accept: %w", name, err)
		}
		delay = 0
		spawn(func() { handle(c) })
	}
}
