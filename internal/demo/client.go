package demo

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// Client limits: every read and write has a deadline, and a body is
// bounded so that a broken server cannot make the script run away.
const (
	ioTimeout = 10 * time.Second
	maxLine   = 64 << 10
	maxBody   = 64 << 20
)

// client is a minimal POP3 client: plain net + bufio, no pipelining
// unless the caller writes several commands at once with sendRaw.
type client struct {
	c        net.Conn
	r        *bufio.Reader
	greeting string
	commands int // command lines sent
	stop     func() bool
}

func dial(ctx context.Context, addr string) (*client, error) {
	d := net.Dialer{Timeout: ioTimeout}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	cl := &client{c: c, r: bufio.NewReaderSize(c, maxLine)}
	cl.stop = context.AfterFunc(ctx, func() { c.Close() })
	g, err := cl.line()
	if err != nil {
		cl.close()
		return nil, fmt.Errorf("greeting: %w", err)
	}
	if !strings.HasPrefix(g, "+OK") {
		cl.close()
		return nil, fmt.Errorf("greeting is not +OK: %q", g)
	}
	cl.greeting = g
	return cl, nil
}

func (cl *client) close() {
	cl.stop()
	cl.c.Close()
}

// sendRaw writes p in one write; commands counts the lines in it.
func (cl *client) sendRaw(p string) error {
	cl.commands += strings.Count(p, "\n")
	_ = cl.c.SetWriteDeadline(time.Now().Add(ioTimeout))
	_, err := io.WriteString(cl.c, p)
	return err
}

// line reads one line, which must end in CRLF, and returns it without.
func (cl *client) line() (string, error) {
	_ = cl.c.SetReadDeadline(time.Now().Add(ioTimeout))
	b, err := cl.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return "", fmt.Errorf("line longer than %d octets", maxLine)
	}
	if err != nil {
		return "", err
	}
	if !bytes.HasSuffix(b, []byte("\r\n")) {
		return "", fmt.Errorf("line %q does not end in CRLF", b)
	}
	return string(b[:len(b)-2]), nil
}

// status sends cmd and returns the status line.
func (cl *client) status(cmd string) (string, error) {
	if err := cl.sendRaw(cmd + "\r\n"); err != nil {
		return "", err
	}
	return cl.line()
}

// ok sends cmd and requires a +OK reply; it returns the text after +OK.
func (cl *client) ok(cmd string) (string, error) {
	st, err := cl.status(cmd)
	if err != nil {
		return "", fmt.Errorf("%s: %w", redactCmd(cmd), err)
	}
	return okText(cmd, st)
}

func okText(cmd, st string) (string, error) {
	if st != "+OK" && !strings.HasPrefix(st, "+OK ") {
		return "", fmt.Errorf("%s: server answered %q, want +OK", redactCmd(cmd), st)
	}
	return strings.TrimPrefix(strings.TrimPrefix(st, "+OK"), " "), nil
}

// fail sends cmd and requires a -ERR reply; it returns the status line.
func (cl *client) fail(cmd string) (string, error) {
	st, err := cl.status(cmd)
	if err != nil {
		return "", fmt.Errorf("%s: %w", redactCmd(cmd), err)
	}
	if !strings.HasPrefix(st, "-ERR") {
		return "", fmt.Errorf("%s: server answered %q, want -ERR", redactCmd(cmd), st)
	}
	return st, nil
}

// multi sends cmd, requires +OK and returns the unstuffed body (CRLF
// line ends, terminator removed).
func (cl *client) multi(cmd string) ([]byte, error) {
	if _, err := cl.ok(cmd); err != nil {
		return nil, err
	}
	b, err := cl.body()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	return b, nil
}

// body reads a multi-line body up to the terminator and removes the
// dot-stuffing (RFC 1939 §3). A line that starts with one dot followed
// by something other than a dot is an error: a correct server stuffs.
func (cl *client) body() ([]byte, error) {
	var out []byte
	for {
		l, err := cl.line()
		if err != nil {
			return nil, err
		}
		if l == "." {
			return out, nil
		}
		if strings.HasPrefix(l, ".") {
			if !strings.HasPrefix(l, "..") {
				return nil, fmt.Errorf("line %q is not dot-stuffed", l)
			}
			l = l[1:]
		}
		if len(out)+len(l) > maxBody {
			return nil, fmt.Errorf("body larger than %d octets", maxBody)
		}
		out = append(out, l...)
		out = append(out, '\r', '\n')
	}
}

// redactCmd hides passwords and SASL data in error messages.
func redactCmd(cmd string) string {
	kw, _, _ := strings.Cut(cmd, " ")
	switch strings.ToUpper(kw) {
	case "PASS", "APOP", "AUTH":
		return strings.ToUpper(kw) + " ..."
	}
	if len(cmd) > 40 { // a SASL line
		return cmd[:12] + "..."
	}
	return cmd
}
