package pop3server

import (
	"context"
	"fmt"
	"github.com/popscope/popscope/internal/netutil"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for the zero values in Config.
const (
	// DefaultIdleTimeout is the inactivity timer of RFC 1939 §3 (at least
	// 10 minutes).
	DefaultIdleTimeout = 10 * time.Minute
	// DefaultMaxLine bounds a command line, CRLF included. RFC 2449 §4
	// asks CAPA servers to accept 255 octets; we allow more.
	DefaultMaxLine = 1024
	// DefaultGreeting is the greeting text before the APOP timestamp.
	DefaultGreeting = "popscope demo server ready"
	// maxSASLLine bounds a SASL response line (RFC 5034 §4 sets no limit;
	// PLAIN with 255-octet fields needs about 1 KiB).
	maxSASLLine = 8 << 10
	// writeChunk is the largest single write; the write deadline is
	// renewed per chunk so that a slow but live reader is not cut off.
	writeChunk = 4 << 20
	// drainTimeout and drainMax bound how long and how much we read after
	// the last reply before closing, so that the kernel does not answer
	// unread client data with a reset that could destroy that reply.
	drainTimeout = 2 * time.Second
	drainMax     = 1 << 20
)

// Config configures a Server. Users is required for anyone to log in;
// every other field has a default.
type Config struct {
	// Users maps user names to passwords (USER/PASS, APOP, AUTH PLAIN).
	Users map[string]string
	// Messages is the initial maildrop of every user. Each user gets its
	// own copy of the list, so PersistentDeletes by one user do not affect
	// another. Ignored if Maildrop is set.
	Messages []Message
	// Maildrop, if set, returns the initial maildrop of user. It is
	// called once per user, at that user's first successful login; the
	// result is prepared and kept for the Server's lifetime. An error
	// refuses the login with "-ERR [SYS/PERM]".
	Maildrop func(user string) ([]Message, error)
	// Hostname is the right-hand side of the APOP timestamp in the
	// greeting (default "localhost").
	Hostname string
	// Greeting is the greeting text (default DefaultGreeting).
	Greeting string
	// APOP enables the APOP command; the greeting then carries a
	// timestamp that is unique per connection.
	APOP bool
	// Implementation, if set, is announced as the IMPLEMENTATION
	// capability in the TRANSACTION state (RFC 2449 §6.9).
	Implementation string
	// PersistentDeletes makes QUIT remove messages marked with DELE from
	// the user's in-memory maildrop, so that later sessions no longer see
	// them. By default deletions last for the session only, and QUIT after
	// DELE answers "-ERR [SYS/PERM]" as RFC 1939 §6 allows ("some deleted
	// messages not removed"), so that clients are not told a lie.
	PersistentDeletes bool
	// ExclusiveLock refuses a second concurrent login to the same
	// maildrop with "-ERR [IN-USE]" (RFC 1939 §4, RFC 2449 §8.1.2).
	ExclusiveLock bool
	// IdleTimeout closes a connection, without a reply, when the client
	// sends nothing for this long; it also bounds a stalled write
	// (default DefaultIdleTimeout).
	IdleTimeout time.Duration
	// MaxLine bounds a command line in octets, CRLF included (default
	// DefaultMaxLine). A longer line gets "-ERR line too long" and the
	// connection is closed.
	MaxLine int
	// Logf, if set, receives one line per operational problem (accept
	// errors). Protocol errors of clients are not logged.
	Logf func(format string, args ...any)
}

// Server is a POP3 server (RFC 1939 with CAPA, UIDL, TOP, APOP, AUTH
// PLAIN, RESP-CODES and PIPELINING) over an in-memory maildrop.
type Server struct {
	cfg    Config
	shared []*message // prepared Config.Messages
	pid    int

	mu    sync.Mutex
	drops map[string]*maildrop

	counter atomic.Uint64 // connections greeted, for APOP timestamps
	active  atomic.Int64
	total   atomic.Int64
}

// maildrop is one user's current list of messages.
type maildrop struct {
	mu    sync.Mutex
	msgs  []*message
	inUse int // sessions in TRANSACTION
}

// New returns a Server for cfg. It performs no I/O, but it prepares every
// message of cfg.Messages (CRLF form, dot-stuffing, size, unique-id) at
// once, which costs a copy of the messages in memory and a pass over
// them. cfg must not be modified afterwards.
func New(cfg Config) *Server {
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxLine <= 0 {
		cfg.MaxLine = DefaultMaxLine
	}
	if cfg.Greeting == "" {
		cfg.Greeting = DefaultGreeting
	}
	cfg.Hostname = sanitizeHost(cfg.Hostname)
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	s := &Server{cfg: cfg, pid: os.Getpid(), drops: map[string]*maildrop{}}
	if cfg.Maildrop == nil {
		s.shared = prepareAll(cfg.Messages)
	}
	return s
}

// sanitizeHost keeps the APOP timestamp msg-id shaped (RFC 1939 §7).
func sanitizeHost(h string) string {
	h = strings.Map(func(r rune) rune {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune("<>@\"\\()[],;:", r) {
			return -1
		}
		return r
	}, h)
	if h == "" {
		h = "localhost"
	}
	return h
}

// Active returns the number of connections being served.
func (s *Server) Active() int64 { return s.active.Load() }

// Total returns the number of connections served so far.
func (s *Server) Total() int64 { return s.total.Load() }

// Serve accepts connections on ln and serves each in its own goroutine
// until ctx ends or ln fails. It closes ln. When ctx ends, open sessions
// are closed (without UPDATE, so their deletions are void) and Serve
// returns nil after they have finished; otherwise it returns the accept
// error.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel() // closes the sessions still open
		wg.Wait()
	}()
	return netutil.AcceptLoop(ctx, ln, "pop3server", s.cfg.Logf,
		func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() },
		func(c net.Conn) { s.ServeConn(ctx, c) })
}

// ServeConn runs one POP3 session on c and returns when it is over; it
// closes c. When ctx ends the connection is closed at once.
func (s *Server) ServeConn(ctx context.Context, c net.Conn) {
	s.total.Add(1)
	s.active.Add(1)
	defer s.active.Add(-1)
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	defer c.Close()
	if ctx.Err() != nil {
		return
	}
	sess := newSession(s, c)
	defer sess.release()
	sess.serve()
}

// open returns user's maildrop, creating it on first use.
func (s *Server) open(user string) (*maildrop, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d := s.drops[user]; d != nil {
		return d, nil
	}
	var msgs []*message
	if s.cfg.Maildrop != nil {
		m, err := s.cfg.Maildrop(user)
		if err != nil {
			return nil, err
		}
		msgs = prepareAll(m)
	} else {
		msgs = append([]*message(nil), s.shared...)
	}
	d := &maildrop{msgs: msgs}
	s.drops[user] = d
	return d, nil
}

// timestamp returns a fresh APOP timestamp <pid.counter.time@host>.
func (s *Server) timestamp() string {
	n := s.counter.Add(1)
	return fmt.Sprintf("<%d.%d.%d@%s>", s.pid, n, time.Now().UnixNano(), s.cfg.Hostname)
}
