package pop3server

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// errLineTooLong reports a command or SASL line over the limit.
var errLineTooLong = errors.New("pop3server: line too long")

// state is the session's POP3 state (RFC 1939 §3).
type state uint8

const (
	authorization state = iota
	transaction
)

// session is one connection.
type session struct {
	srv  *Server
	cfg  *Config
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer

	state state
	quit  bool   // close after flushing the replies written so far
	ts    string // APOP timestamp of the greeting, "" without APOP
	// pendingUser is the name of a USER that got +OK; any command but
	// PASS clears it (PASS must come right after USER, RFC 1939 §7).
	pendingUser string

	// TRANSACTION: the maildrop as it was at login, numbered from 1.
	user     string
	drop     *maildrop
	msgs     []*message
	deleted  []bool
	nDeleted int
	delSize  int64
	total    int64
}

// connIO renews the deadline before each read or write chunk, which is
// how the idle timeout is applied.
type connIO struct {
	c    net.Conn
	idle time.Duration
}

func (c connIO) Read(p []byte) (int, error) {
	_ = c.c.SetReadDeadline(time.Now().Add(c.idle))
	return c.c.Read(p)
}

func (c connIO) Write(p []byte) (n int, err error) {
	for len(p) > 0 {
		chunk := p
		if len(chunk) > writeChunk {
			chunk = chunk[:writeChunk]
		}
		_ = c.c.SetWriteDeadline(time.Now().Add(c.idle))
		m, err := c.c.Write(chunk)
		n += m
		if err != nil {
			return n, err
		}
		p = p[m:]
	}
	return n, nil
}

func newSession(srv *Server, c net.Conn) *session {
	rsize := max(srv.cfg.MaxLine, maxSASLLine)
	cio := connIO{c: c, idle: srv.cfg.IdleTimeout}
	return &session{
		srv:  srv,
		cfg:  &srv.cfg,
		conn: c,
		r:    bufio.NewReaderSize(cio, rsize),
		w:    bufio.NewWriterSize(cio, 64<<10),
	}
}

// release gives back the maildrop lock. Idempotent.
func (s *session) release() {
	if s.drop == nil {
		return
	}
	s.drop.mu.Lock()
	s.drop.inUse--
	s.drop.mu.Unlock()
	s.drop = nil
}

// serve runs the command loop: read a line, answer it, and flush when no
// further complete command is already buffered (so pipelined commands
// are answered in one write, RFC 2449 §6.6).
func (s *session) serve() {
	greeting := "+OK " + s.cfg.Greeting
	if s.cfg.APOP {
		s.ts = s.srv.timestamp()
		greeting += " " + s.ts
	}
	s.w.WriteString(greeting + "\r\n")
	if s.w.Flush() != nil {
		return
	}
	for !s.quit {
		line, err := s.readLine(s.cfg.MaxLine)
		if err != nil {
			if errors.Is(err, errLineTooLong) {
				s.err("line too long")
				s.closeGracefully()
			}
			// EOF, reset or idle timeout: close without a reply (RFC 1939 §3).
			return
		}
		s.handle(line)
		if !s.quit && !s.commandBuffered() {
			if s.w.Flush() != nil {
				return
			}
		}
	}
	s.closeGracefully()
}

// readLine returns the next line without its line end (CRLF, or a bare LF,
// which is accepted). The slice is valid until the next read.
func (s *session) readLine(limit int) ([]byte, error) {
	line, err := s.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) || len(line) > limit {
		return nil, errLineTooLong
	}
	if err != nil {
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// commandBuffered reports whether a complete line is already buffered.
func (s *session) commandBuffered() bool {
	n := s.r.Buffered()
	if n == 0 {
		return false
	}
	b, _ := s.r.Peek(n)
	return bytes.IndexByte(b, '\n') >= 0
}

// closeGracefully flushes, half-closes and reads what the client still
// sends (bounded in time and size) before the connection is closed, so
// that unread input does not turn the close into a reset that could
// discard the last reply.
func (s *session) closeGracefully() {
	if s.w.Flush() != nil {
		return
	}
	cw, ok := s.conn.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	_ = s.conn.SetReadDeadline(time.Now().Add(drainTimeout))
	_, _ = io.CopyN(io.Discard, s.conn, drainMax)
}

// ---- replies ----

// ok writes a +OK status line; an empty format gives a bare "+OK".
func (s *session) ok(format string, a ...any) {
	if format == "" {
		s.w.WriteString("+OK\r\n")
		return
	}
	s.w.WriteString("+OK ")
	fmt.Fprintf(s.w, format, a...)
	s.w.WriteString("\r\n")
}

func (s *session) err(text string) {
	s.w.WriteString("-ERR " + text + "\r\n")
}

// ---- dispatch ----

type handler struct {
	inAuth, inTrans bool
	fn              func(s *session, args []string, rest string) // rest: text after the first SP
}

// handlers maps keywords to their state legality and implementation.
var handlers = map[string]handler{
	"CAPA": {true, true, (*session).capa},
	"QUIT": {true, true, (*session).quitCmd},
	"USER": {true, false, (*session).userCmd},
	"PASS": {true, false, (*session).passCmd},
	"APOP": {true, false, (*session).apop},
	"AUTH": {true, false, (*session).auth},
	"STLS": {true, false, func(s *session, _ []string, _ string) { s.err("STLS not available: this server has no TLS") }},
	"STAT": {false, true, (*session).stat},
	"LIST": {false, true, (*session).list},
	"UIDL": {false, true, (*session).uidl},
	"RETR": {false, true, (*session).retr},
	"TOP":  {false, true, (*session).top},
	"DELE": {false, true, (*session).dele},
	"RSET": {false, true, (*session).rset},
	"NOOP": {false, true, (*session).noop},
}

// handle answers one command line.
func (s *session) handle(line []byte) {
	pending := s.pendingUser
	s.pendingUser = ""
	if !printable(line) {
		s.err("command contains octets outside printable ASCII")
		return
	}
	kw, rest, hasRest := strings.Cut(string(line), " ")
	verb := strings.ToUpper(kw)
	h, known := handlers[verb]
	if !known {
		s.err("unknown command")
		return
	}
	if (s.state == authorization && !h.inAuth) || (s.state == transaction && !h.inTrans) {
		s.err("command not valid in this state")
		return
	}
	var args []string
	if hasRest {
		args = strings.Split(rest, " ")
		if verb != "PASS" { // the password may contain spaces (RFC 1939 §7)
			for _, a := range args {
				if a == "" {
					s.err("syntax error: arguments are separated by exactly one space")
					return
				}
			}
		}
	}
	if verb == "PASS" {
		s.pendingUser = pending // PASS consumes it
	}
	h.fn(s, args, rest)
}

func printable(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// noArgs answers -ERR if args is not empty.
func (s *session) noArgs(args []string) bool {
	if len(args) > 0 {
		s.err("syntax error: no arguments expected")
		return false
	}
	return true
}

// ---- AUTHORIZATION ----

func (s *session) capa(args []string, _ string) {
	if !s.noArgs(args) {
		return
	}
	s.w.WriteString("+OK capability list follows\r\n" +
		"TOP\r\n" +
		"UIDL\r\n" +
		"RESP-CODES\r\n" +
		"AUTH-RESP-CODE\r\n" +
		"PIPELINING\r\n" +
		"USER\r\n" +
		"SASL PLAIN\r\n")
	if s.state == transaction && s.cfg.Implementation != "" {
		s.w.WriteString("IMPLEMENTATION " + s.cfg.Implementation + "\r\n")
	}
	s.w.Write(terminator)
}

func (s *session) quitCmd(args []string, _ string) {
	if !s.noArgs(args) {
		return
	}
	s.quit = true
	if s.state == authorization {
		s.ok("bye")
		return
	}
	// UPDATE state (RFC 1939 §6). The maildrop is released before the
	// reply goes out, so a client that reconnects at once finds it free.
	defer s.release()
	switch {
	case s.nDeleted == 0:
		s.ok("bye")
	case s.cfg.PersistentDeletes:
		gone := make(map[*message]bool, s.nDeleted)
		for i, d := range s.deleted {
			if d {
				gone[s.msgs[i]] = true
			}
		}
		s.drop.mu.Lock()
		kept := s.drop.msgs[:0:0]
		for _, m := range s.drop.msgs {
			if !gone[m] {
				kept = append(kept, m)
			}
		}
		s.drop.msgs = kept
		s.drop.mu.Unlock()
		s.ok("bye, %d messages deleted", s.nDeleted)
	default:
		s.err(fmt.Sprintf("[SYS/PERM] this server does not keep deletions: %d messages not removed", s.nDeleted))
	}
}

func (s *session) userCmd(args []string, _ string) {
	if len(args) != 1 {
		s.err("syntax error: USER takes one argument, the user name")
		return
	}
	s.pendingUser = args[0]
	s.ok("send PASS")
}

func (s *session) passCmd(_ []string, rest string) {
	user := s.pendingUser
	s.pendingUser = ""
	if user == "" {
		s.err("no user name given: send USER first")
		return
	}
	if rest == "" {
		s.err("syntax error: PASS takes the password")
		return
	}
	if !s.checkPassword(user, rest) {
		s.err("[AUTH] invalid user name or password")
		return
	}
	s.login(user)
}

func (s *session) checkPassword(user, pass string) bool {
	want, ok := s.cfg.Users[user]
	eq := subtle.ConstantTimeCompare([]byte(want), []byte(pass)) == 1
	return ok && eq
}

func (s *session) apop(args []string, _ string) {
	if !s.cfg.APOP {
		s.err("APOP not available on this server")
		return
	}
	if len(args) != 2 {
		s.err("syntax error: APOP takes a user name and a digest")
		return
	}
	digest := args[1]
	if !isLowerHex(digest, 32) {
		s.err("syntax error: the APOP digest is 32 lower-case hex digits")
		return
	}
	user := args[0]
	want, ok := s.cfg.Users[user]
	sum := md5.Sum([]byte(s.ts + want))
	eq := subtle.ConstantTimeCompare([]byte(hex.EncodeToString(sum[:])), []byte(digest)) == 1
	if !ok || !eq {
		s.err("[AUTH] invalid user name or digest")
		return
	}
	s.login(user)
}

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// auth implements AUTH (RFC 5034) with the PLAIN mechanism (RFC 4616),
// with or without an initial response. A bare AUTH lists the mechanisms
// (legacy discovery, see docs/pop3-rules.md §6.17).
func (s *session) auth(args []string, _ string) {
	if len(args) == 0 {
		s.w.WriteString("+OK SASL mechanisms follow\r\nPLAIN\r\n.\r\n")
		return
	}
	if len(args) > 2 {
		s.err("syntax error: AUTH takes a mechanism and an optional initial response")
		return
	}
	if !strings.EqualFold(args[0], "PLAIN") {
		s.err("unsupported SASL mechanism")
		return
	}
	var resp string
	if len(args) == 2 {
		resp = args[1]
		if resp == "=" { // present but empty (RFC 5034 §4)
			resp = ""
		}
	} else {
		s.w.WriteString("+ \r\n") // empty challenge: PLAIN has the client speak first
		if s.w.Flush() != nil {
			s.quit = true
			return
		}
		line, err := s.readLine(maxSASLLine)
		if err != nil {
			s.quit = true
			if errors.Is(err, errLineTooLong) {
				s.err("line too long")
			}
			return
		}
		if string(line) == "*" {
			s.err("authentication cancelled")
			return
		}
		resp = string(line)
	}
	msg, err := base64.StdEncoding.Strict().DecodeString(resp)
	if err != nil {
		s.err("invalid base64 in SASL response")
		return
	}
	parts := bytes.Split(msg, []byte{0})
	if len(parts) != 3 || len(parts[1]) == 0 || len(parts[2]) == 0 {
		s.err("malformed PLAIN message: want authzid NUL authcid NUL password")
		return
	}
	authz, user, pass := string(parts[0]), string(parts[1]), string(parts[2])
	if !s.checkPassword(user, pass) {
		s.err("[AUTH] invalid user name or password")
		return
	}
	if authz != "" && authz != user {
		s.err("[AUTH] " + user + " may not act as another user")
		return
	}
	s.login(user)
}

// login opens user's maildrop and enters TRANSACTION.
func (s *session) login(user string) {
	d, err := s.srv.open(user)
	if err != nil {
		s.err("[SYS/PERM] cannot open the maildrop")
		return
	}
	d.mu.Lock()
	if s.cfg.ExclusiveLock && d.inUse > 0 {
		d.mu.Unlock()
		s.err("[IN-USE] maildrop already in use")
		return
	}
	d.inUse++
	s.msgs = append([]*message(nil), d.msgs...)
	d.mu.Unlock()
	s.drop, s.user, s.state = d, user, transaction
	s.deleted = make([]bool, len(s.msgs))
	for _, m := range s.msgs {
		s.total += m.size
	}
	s.ok("%s has %d messages (%d octets)", user, len(s.msgs), s.total)
}

// ---- TRANSACTION ----

// msgArg parses a message-number argument and checks that the message
// exists and is not marked deleted; it answers -ERR itself and returns
// -1 on failure.
func (s *session) msgArg(a string) int {
	for i := 0; i < len(a); i++ {
		if a[i] < '0' || a[i] > '9' {
			s.err("syntax error: a message number is a positive decimal number")
			return -1
		}
	}
	n, err := strconv.Atoi(a)
	if err != nil || n < 1 || n > len(s.msgs) {
		s.err(fmt.Sprintf("no such message, only %d messages in maildrop", len(s.msgs)))
		return -1
	}
	if s.deleted[n-1] {
		s.err(fmt.Sprintf("message %d already deleted", n))
		return -1
	}
	return n - 1
}

func (s *session) stat(args []string, _ string) {
	if s.noArgs(args) {
		s.ok("%d %d", len(s.msgs)-s.nDeleted, s.total-s.delSize)
	}
}

func (s *session) list(args []string, _ string) {
	s.listing(args, "scan listing", func(i int) string { return strconv.FormatInt(s.msgs[i].size, 10) })
}

func (s *session) uidl(args []string, _ string) {
	s.listing(args, "unique-id listing", func(i int) string { return s.msgs[i].uid() })
}

// listing answers LIST or UIDL: one line for "n", a body without.
func (s *session) listing(args []string, what string, val func(i int) string) {
	switch len(args) {
	case 0:
		s.ok("%d messages (%d octets), %s follows", len(s.msgs)-s.nDeleted, s.total-s.delSize, what)
		for i := range s.msgs {
			if !s.deleted[i] {
				s.w.WriteString(strconv.Itoa(i+1) + " " + val(i) + "\r\n")
			}
		}
		s.w.Write(terminator)
	case 1:
		if i := s.msgArg(args[0]); i >= 0 {
			s.ok("%d %s", i+1, val(i))
		}
	default:
		s.err("syntax error: at most one message number")
	}
}

func (s *session) retr(args []string, _ string) {
	if len(args) != 1 {
		s.err("syntax error: RETR takes a message number")
		return
	}
	if i := s.msgArg(args[0]); i >= 0 {
		s.ok("%d octets", s.msgs[i].size)
		s.w.Write(s.msgs[i].wire) // large: bufio writes it straight through
		s.w.Write(terminator)
	}
}

func (s *session) top(args []string, _ string) {
	if len(args) != 2 {
		s.err("syntax error: TOP takes a message number and a line count")
		return
	}
	k := args[1]
	for i := 0; i < len(k); i++ {
		if k[i] < '0' || k[i] > '9' {
			s.err("syntax error: the line count is a non-negative decimal number")
			return
		}
	}
	lines, err := strconv.Atoi(k)
	if err != nil { // only overflow is possible here: more lines than any message has
		lines = int(^uint(0) >> 1)
	}
	if i := s.msgArg(args[0]); i >= 0 {
		s.ok("top of message %d follows", i+1)
		s.w.Write(s.msgs[i].top(lines))
		s.w.Write(terminator)
	}
}

func (s *session) dele(args []string, _ string) {
	if len(args) != 1 {
		s.err("syntax error: DELE takes a message number")
		return
	}
	if i := s.msgArg(args[0]); i >= 0 {
		s.deleted[i] = true
		s.nDeleted++
		s.delSize += s.msgs[i].size
		s.ok("message %d deleted", i+1)
	}
}

func (s *session) rset(args []string, _ string) {
	if !s.noArgs(args) {
		return
	}
	clear(s.deleted)
	s.nDeleted, s.delSize = 0, 0
	s.ok("maildrop has %d messages (%d octets)", len(s.msgs), s.total)
}

func (s *session) noop(args []string, _ string) {
	if s.noArgs(args) {
		s.ok("")
	}
}
