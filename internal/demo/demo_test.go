package demo

import (
	"bytes"
	"context"
	"encoding/base64"
	"net"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/popscope/popscope/internal/pop3server"
)

func serve(t *testing.T, cfg pop3server.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = pop3server.New(cfg).Serve(ctx, ln)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("server did not stop")
		}
	})
	return ln.Addr().String()
}

func TestScript(t *testing.T) {
	addr := serve(t, ServerConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := Script(ctx, addr, &out); err != nil {
		t.Fatalf("Script: %v\n%s", err, out.String())
	}
	s := out.String()
	for _, want := range []string{"session 1:", "session 2:", "session 3:", "session 4: a MISBEHAVING", "expect POP3-STATE-001", "script: ok: 4 sessions"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "wrong-password") {
		t.Errorf("output shows a password:\n%s", s)
	}
	// The script can run again: the demo server keeps no deletions.
	out.Reset()
	if err := Script(ctx, addr, &out); err != nil {
		t.Fatalf("second run: %v\n%s", err, out.String())
	}
}

func TestScriptDetectsWrongContent(t *testing.T) {
	cfg := ServerConfig()
	cfg.Messages[1] = pop3server.Message{Data: []byte("Subject: changed\r\n\r\nx\r\n")}
	addr := serve(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	err := Script(ctx, addr, &out)
	if err == nil || !strings.Contains(err.Error(), "session 1") {
		t.Fatalf("want a session 1 error, got %v\n%s", err, out.String())
	}
}

func TestScriptNoServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := Script(ctx, addr, &bytes.Buffer{}); err == nil {
		t.Fatal("want an error without a server")
	}
}

func TestScriptCancelled(t *testing.T) {
	// A server that greets and then says nothing: the context must end it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for i := 0; i < 10; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("+OK hi <1.2@x>\r\n"))
			defer c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := Script(ctx, ln.Addr().String(), &bytes.Buffer{}); err == nil {
		t.Fatal("want an error")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v", d)
	}
}

func TestMessages(t *testing.T) {
	msgs := Messages()
	if len(msgs) < 6 {
		t.Fatalf("%d messages", len(msgs))
	}
	for i, m := range msgs {
		c := m.Canonical()
		if int64(len(c)) != m.Size() {
			t.Errorf("message %d: size %d, canonical %d", i+1, m.Size(), len(c))
		}
		if !bytes.Contains(c, []byte("\r\n\r\n")) {
			t.Errorf("message %d has no header/body separator", i+1)
		}
		hdr, body, _ := bytes.Cut(c, []byte("\r\n\r\n"))
		for _, r := range hdr {
			if r >= 0x80 {
				t.Errorf("message %d: 8-bit header", i+1)
				break
			}
		}
		for _, l := range bytes.Split(c, []byte("\r\n")) {
			if len(l)+2 > 80 {
				t.Errorf("message %d: line of %d octets", i+1, len(l)+2)
			}
			if bytes.IndexByte(l, '\r') >= 0 || bytes.IndexByte(l, 0) >= 0 {
				t.Errorf("message %d: bare CR or NUL", i+1)
			}
		}
		_ = body
	}
	lines := strings.Split(string(msgs[1].Canonical()), "\r\n")
	for _, want := range []string{".", "..", ".x", "...", ". "} {
		found := false
		for _, l := range lines {
			found = found || l == want
		}
		if !found {
			t.Errorf("dot message lacks the line %q", want)
		}
	}
	u := msgs[2].Data
	if !bytes.Contains(u, []byte("Content-Transfer-Encoding: 8bit")) || !utf8.Valid(u) || bytes.IndexFunc(u, func(r rune) bool { return r >= 0x80 }) < 0 {
		t.Error("message 3 is not 8-bit UTF-8")
	}
	mime := string(msgs[3].Data)
	if !strings.Contains(mime, "multipart/mixed") || !strings.Contains(mime, "Content-Transfer-Encoding: base64") {
		t.Error("message 4 is not multipart with a base64 part")
	}
	b64 := mime[strings.Index(mime, "base64\r\n\r\n")+10 : strings.Index(mime, "\r\n\r\n--=_popscope_demo_boundary--")]
	if csv, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(b64, "\r\n", "")); err != nil || !strings.HasPrefix(string(csv), "month,") {
		t.Errorf("attachment: %q, %v", csv, err)
	}
	if n := len(msgs[4].Data); n < 60<<10 || n > 70<<10 {
		t.Errorf("big message is %d octets", n)
	}
	last := msgs[5].Data
	if last[len(last)-1] == '\n' {
		t.Error("message 6 ends with a newline")
	}
}
