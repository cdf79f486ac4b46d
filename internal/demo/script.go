package demo

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/popscope/popscope/internal/pop3server"
)

// Script runs the demo's scripted POP3 client against addr (normally the
// proxy in front of the demo server) and reports each step on w. It runs
// four sessions, one after the other:
//
//  1. a well-behaved client: CAPA, USER/PASS, STAT, LIST, UIDL, RETR of
//     every message, TOP 1 5, DELE 2, RSET, NOOP, QUIT;
//  2. APOP login, then CAPA and STAT, LIST, UIDL pipelined in one write
//     (the server announces PIPELINING);
//  3. AUTH PLAIN answered after the server's empty challenge;
//  4. a misbehaving client, labelled as such, that makes mistakes a
//     debugger should flag (after a CAPA): a command before login, PASS
//     without USER, a lower-case command, a missing argument, and leaving
//     without QUIT.
//
// Every reply is checked against the sample maildrop (sizes, unique-ids,
// message content after unstuffing, TOP output); the first mismatch ends
// the script with an error. ctx bounds the whole run.
func Script(ctx context.Context, addr string, w io.Writer) error {
	sc := &script{w: w, msgs: Messages()}
	steps := []struct {
		title string
		run   func(context.Context, string) error
	}{
		{"session 1: a well-behaved client (USER/PASS, read everything)", sc.session1},
		{"session 2: APOP login, STAT/LIST/UIDL pipelined in one write", sc.session2},
		{"session 3: AUTH PLAIN after an empty challenge", sc.session3},
		{"session 4: a MISBEHAVING client (popscope should flag these)", sc.session4},
	}
	for _, st := range steps {
		sc.logf("%s", st.title)
		if err := st.run(ctx, addr); err != nil {
			sc.logf("  FAILED: %v", err)
			return fmt.Errorf("demo script: %s: %w", st.title[:9], err)
		}
	}
	sc.logf("ok: %d sessions, %d commands, every reply as expected", len(steps), sc.commands)
	return nil
}

type script struct {
	w        io.Writer
	msgs     []pop3server.Message
	uids     []string // from session 1, to check stability
	commands int
}

func (sc *script) logf(format string, a ...any) {
	fmt.Fprintf(sc.w, "script: "+format+"\n", a...)
}

// open connects and arranges for the command count to be kept.
func (sc *script) open(ctx context.Context, addr string) (*client, func(), error) {
	cl, err := dial(ctx, addr)
	if err != nil {
		return nil, nil, err
	}
	return cl, func() {
		sc.commands += cl.commands
		cl.close()
	}, nil
}

func (sc *script) totalSize() int64 {
	var n int64
	for _, m := range sc.msgs {
		n += m.Size()
	}
	return n
}

func (sc *script) session1(ctx context.Context, addr string) error {
	cl, done, err := sc.open(ctx, addr)
	if err != nil {
		return err
	}
	defer done()
	capa, err := cl.multi("CAPA")
	if err != nil {
		return err
	}
	caps := strings.Fields(strings.ReplaceAll(string(capa), "\r\n", " "))
	for _, want := range []string{"USER", "TOP", "UIDL", "PIPELINING", "RESP-CODES"} {
		if !containsWord(caps, want) {
			return fmt.Errorf("CAPA lacks %s", want)
		}
	}
	sc.logf("  CAPA: %s", strings.Join(caps, " "))
	if _, err := cl.ok("USER " + User); err != nil {
		return err
	}
	text, err := cl.ok("PASS " + Password)
	if err != nil {
		return err
	}
	sc.logf("  USER %s, PASS: +OK %s", User, text)
	if err := sc.stat(cl); err != nil {
		return err
	}
	list, err := cl.multi("LIST")
	if err != nil {
		return err
	}
	if err := sc.checkList(list); err != nil {
		return err
	}
	uidl, err := cl.multi("UIDL")
	if err != nil {
		return err
	}
	if sc.uids, err = sc.checkUIDL(uidl); err != nil {
		return err
	}
	sc.logf("  STAT, LIST, UIDL: %d messages, %d octets, sizes and unique-ids consistent", len(sc.msgs), sc.totalSize())
	for i, m := range sc.msgs {
		n := i + 1
		got, err := cl.multi("RETR " + strconv.Itoa(n))
		if err != nil {
			return err
		}
		if want := m.Canonical(); !bytes.Equal(got, want) {
			return fmt.Errorf("RETR %d: content differs from the maildrop (%d octets, want %d)", n, len(got), len(want))
		}
	}
	sc.logf("  RETR 1..%d: every message matches the maildrop byte for byte after unstuffing", len(sc.msgs))
	top, err := cl.multi("TOP 1 5")
	if err != nil {
		return err
	}
	if want := topOf(sc.msgs[0].Canonical(), 5); !bytes.Equal(top, want) {
		return fmt.Errorf("TOP 1 5: got %q, want %q", top, want)
	}
	sc.logf("  TOP 1 5: headers, blank line and 5 body lines, as expected")
	if _, err := cl.ok("DELE 2"); err != nil {
		return err
	}
	if _, err := cl.ok("RSET"); err != nil {
		return err
	}
	if _, err := cl.ok("NOOP"); err != nil {
		return err
	}
	if _, err := cl.ok("QUIT"); err != nil {
		return err
	}
	sc.logf("  DELE 2, RSET, NOOP, QUIT: +OK (RSET undid the deletion)")
	return cl.expectClose()
}

func (sc *script) session2(ctx context.Context, addr string) error {
	cl, done, err := sc.open(ctx, addr)
	if err != nil {
		return err
	}
	defer done()
	ts := apopTimestamp.FindString(cl.greeting)
	if ts == "" {
		return fmt.Errorf("greeting %q has no APOP timestamp", cl.greeting)
	}
	if _, err := cl.multi("CAPA"); err != nil {
		return err
	}
	sum := md5.Sum([]byte(ts + Password))
	if _, err := cl.ok("APOP " + User + " " + hex.EncodeToString(sum[:])); err != nil {
		return err
	}
	sc.logf("  APOP %s with md5(%s + password): +OK", User, ts)
	capa, err := cl.multi("CAPA")
	if err != nil {
		return err
	}
	if !bytes.Contains(capa, []byte("PIPELINING\r\n")) {
		return errors.New("CAPA after login lacks PIPELINING")
	}
	if err := cl.sendRaw("STAT\r\nLIST\r\nUIDL\r\n"); err != nil {
		return err
	}
	st, err := cl.line()
	if err != nil {
		return err
	}
	if err := sc.checkStat(st); err != nil {
		return err
	}
	for _, cmd := range []string{"LIST", "UIDL"} {
		st, err := cl.line()
		if err != nil {
			return err
		}
		if _, err := okText(cmd, st); err != nil {
			return err
		}
		b, err := cl.body()
		if err != nil {
			return fmt.Errorf("%s: %w", cmd, err)
		}
		if cmd == "LIST" {
			err = sc.checkList(b)
		} else {
			var uids []string
			uids, err = sc.checkUIDL(b)
			if err == nil && strings.Join(uids, " ") != strings.Join(sc.uids, " ") {
				err = errors.New("UIDL: unique-ids differ from session 1")
			}
		}
		if err != nil {
			return err
		}
	}
	sc.logf("  STAT+LIST+UIDL in one write: three replies in order, unique-ids stable across sessions")
	if _, err := cl.ok("QUIT"); err != nil {
		return err
	}
	return cl.expectClose()
}

func (sc *script) session3(ctx context.Context, addr string) error {
	cl, done, err := sc.open(ctx, addr)
	if err != nil {
		return err
	}
	defer done()
	capa, err := cl.multi("CAPA")
	if err != nil {
		return err
	}
	if !bytes.Contains(capa, []byte("SASL PLAIN\r\n")) {
		return errors.New("CAPA lacks SASL PLAIN")
	}
	st, err := cl.status("AUTH PLAIN")
	if err != nil {
		return err
	}
	if st != "+ " {
		return fmt.Errorf("AUTH PLAIN: want the empty challenge \"+ \", got %q", st)
	}
	resp := base64.StdEncoding.EncodeToString([]byte("\x00" + User + "\x00" + Password))
	if err := cl.sendRaw(resp + "\r\n"); err != nil {
		return err
	}
	if st, err = cl.line(); err != nil {
		return err
	}
	if _, err := okText("AUTH PLAIN", st); err != nil {
		return err
	}
	sc.logf("  AUTH PLAIN, empty challenge, base64 response: +OK")
	last := len(sc.msgs)
	text, err := cl.ok("LIST " + strconv.Itoa(last))
	if err != nil {
		return err
	}
	if want := fmt.Sprintf("%d %d", last, sc.msgs[last-1].Size()); text != want {
		return fmt.Errorf("LIST %d: %q, want %q", last, text, want)
	}
	got, err := cl.multi("RETR " + strconv.Itoa(last))
	if err != nil {
		return err
	}
	if int64(len(got)) != sc.msgs[last-1].Size() {
		return fmt.Errorf("RETR %d delivered %d octets, LIST said %d", last, len(got), sc.msgs[last-1].Size())
	}
	sc.logf("  LIST %d, RETR %d: the message stored without a final newline is listed at its delivered size (%d)", last, last, len(got))
	if _, err := cl.ok("QUIT"); err != nil {
		return err
	}
	return cl.expectClose()
}

// session4 makes mistakes on purpose. Each line of the log names the rule
// of docs/pop3-rules.md the debugger should report for it; the server
// must refuse every wrong command with -ERR.
func (sc *script) session4(ctx context.Context, addr string) error {
	cl, done, err := sc.open(ctx, addr)
	if err != nil {
		return err
	}
	defer done()
	// CAPA first, as a careful client would: without it the debugger
	// cannot know that the server announced RESP-CODES and AUTH-RESP-CODE.
	if _, err := cl.multi("CAPA"); err != nil {
		return err
	}
	steps := []struct {
		cmd, expect string
		ok          bool
	}{
		{"STAT", "POP3-STATE-001: command before login", false},
		{"PASS " + Password, "POP3-STATE-003: PASS without USER", false},
		{"user " + User, "POP3-SYNTAX-002 (info): lower-case command", true},
		{"PASS wrong-password", "no rule: a refused login, [AUTH] response code", false},
		{"USER " + User, "", true},
		{"PASS " + Password, "", true},
		{"RETR 99", "no rule: the server refuses a message that does not exist", false},
		{"TOP 1", "POP3-SYNTAX-005: TOP without its line count", false},
		{"DELE 1", "", true},
		{"RETR 1", "no rule: the server refuses a deleted message", false},
	}
	for _, st := range steps {
		var reply string
		if st.ok {
			var text string
			if text, err = cl.ok(st.cmd); err == nil {
				reply = "+OK " + text
			}
		} else {
			reply, err = cl.fail(st.cmd)
		}
		if err != nil {
			return err
		}
		shown := st.cmd
		if strings.HasPrefix(st.cmd, "PASS") {
			shown = "PASS <password>"
		}
		if st.expect != "" {
			sc.logf("  %-16s -> %s", shown, reply)
			sc.logf("  %-16s    expect %s", "", st.expect)
		}
	}
	sc.logf("  %-16s -> (no reply)", "close, no QUIT")
	sc.logf("  %-16s    expect POP3-CONN-004 (info): no UPDATE, DELE marks are void", "")
	return nil
}

// ---- checks ----

var apopTimestamp = regexp.MustCompile(`<[^<>@\s]+@[^<>\s]+>`)

func containsWord(list []string, w string) bool {
	for _, x := range list {
		if x == w {
			return true
		}
	}
	return false
}

func (sc *script) stat(cl *client) error {
	st, err := cl.status("STAT")
	if err != nil {
		return err
	}
	return sc.checkStat(st)
}

func (sc *script) checkStat(st string) error {
	if want := fmt.Sprintf("+OK %d %d", len(sc.msgs), sc.totalSize()); st != want {
		return fmt.Errorf("STAT: %q, want %q", st, want)
	}
	return nil
}

func (sc *script) checkList(body []byte) error {
	var want strings.Builder
	for i, m := range sc.msgs {
		fmt.Fprintf(&want, "%d %d\r\n", i+1, m.Size())
	}
	if string(body) != want.String() {
		return fmt.Errorf("LIST: %q, want %q", body, want.String())
	}
	return nil
}

// checkUIDL parses a unique-id listing and returns the ids in order.
func (sc *script) checkUIDL(body []byte) ([]string, error) {
	lines := strings.Split(strings.TrimSuffix(string(body), "\r\n"), "\r\n")
	if len(lines) != len(sc.msgs) {
		return nil, fmt.Errorf("UIDL: %d lines for %d messages", len(lines), len(sc.msgs))
	}
	seen := map[string]bool{}
	uids := make([]string, len(lines))
	for i, l := range lines {
		num, uid, ok := strings.Cut(l, " ")
		if !ok || num != strconv.Itoa(i+1) || uid == "" || len(uid) > 70 || strings.ContainsAny(uid, " \t") || seen[uid] {
			return nil, fmt.Errorf("UIDL: bad line %q", l)
		}
		seen[uid] = true
		uids[i] = uid
	}
	return uids, nil
}

// topOf computes what TOP n k must deliver for a CRLF message: the header
// section, the empty line and the first k body lines.
func topOf(msg []byte, k int) []byte {
	i := bytes.Index(msg, []byte("\r\n\r\n"))
	if i < 0 {
		return append(append([]byte(nil), msg...), '\r', '\n')
	}
	end := i + 4
	for ; k > 0 && end < len(msg); k-- {
		end += bytes.Index(msg[end:], []byte("\r\n")) + 2
	}
	return msg[:end]
}

// expectClose waits for the server to close after QUIT.
func (cl *client) expectClose() error {
	if l, err := cl.line(); err == nil {
		return fmt.Errorf("server sent %q after the QUIT reply", l)
	} else if !errors.Is(err, io.EOF) {
		return fmt.Errorf("after QUIT: %w", err)
	}
	return nil
}
