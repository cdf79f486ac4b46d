//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/popscope/popscope/event"
	"github.com/popscope/popscope/exporters/record"
)

// The record & replay round trips against a private Dovecot (its maildrop
// is changed halfway, so it is not the shared instance):
//
//  1. curl and poplib sessions are recorded through `popscope proxy
//     --record DIR` (secrets redacted);
//  2. `popscope replay server REC --once` serves each recording to the
//     same client, which must retrieve byte-identical files;
//  3. `popscope replay client REC` against the same Dovecot reports no
//     difference; after a message is added, and after one is removed,
//     exactly that change (exit 1);
//  4. `popscope export pcap` + tshark list the recorded commands;
//  5. `popscope check` on the recordings finds what the live decoder found;
//
// and, separately, the proxy is killed with SIGKILL in the middle of a
// large RETR and the recording is read back.

// recClient is one recorded client invocation.
type recClient struct {
	name string
	tool string
	// run runs the client against addr writing into out.
	run func(t *testing.T, addr, out string) cmdResult
}

func recordClients(work string, nmsgs int) []recClient {
	curl := func(args ...string) func(t *testing.T, addr, out string) cmdResult {
		return func(t *testing.T, addr, out string) cmdResult {
			all := []string{"-sS", "--max-time", "120", "-u", mailUser + ":" + mailPass, "-o", filepath.Join(out, "out")}
			for _, a := range args {
				all = append(all, strings.ReplaceAll(a, "ADDR", addr))
			}
			return runCmd(3*time.Minute, out, nil, "curl", all...)
		}
	}
	poplib := func(mode string) func(t *testing.T, addr, out string) cmdResult {
		return func(t *testing.T, addr, out string) cmdResult {
			host, port := splitAddr(t, addr)
			return runCmd(3*time.Minute, out, nil, "python3", filepath.Join(work, "poplib_client.py"), host, port, mailUser, mailPass, mode, out)
		}
	}
	return []recClient{
		{"curl-retr-cram", "curl", curl("pop3://ADDR/1")},
		{"curl-retr-large", "curl", curl("pop3://ADDR/" + strconv.Itoa(nmsgs))},
		{"curl-list", "curl", curl("pop3://ADDR/")},
		{"curl-uidl", "curl", curl("-X", "UIDL", "pop3://ADDR/")},
		{"curl-apop", "curl", curl("--login-options", "AUTH=+APOP", "pop3://ADDR/7")},
		{"curl-plain", "curl", curl("--login-options", "AUTH=PLAIN", "pop3://ADDR/9")},
		{"curl-login", "curl", curl("--login-options", "AUTH=LOGIN", "pop3://ADDR/11")},
		{"poplib-user", "python3", poplib("user")},
		{"poplib-apop", "python3", poplib("apop")},
	}
}

// recordingsIn lists the complete recordings in dir, oldest first.
func recordingsIn(dir string) []string {
	names, _ := filepath.Glob(filepath.Join(dir, "*.rec.jsonl"))
	sort.Strings(names)
	var out []string
	for _, n := range names {
		if r, err := record.ReadFile(n); err == nil && r.Complete {
			out = append(out, n)
		}
	}
	return out
}

// waitRecordings polls (bounded) until dir holds n complete recordings.
func waitRecordings(t *testing.T, dir string, n int, limit time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		got := recordingsIn(dir)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d complete recordings after %v, want %d", dir, len(got), limit, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// popscopeRun runs the popscope binary to completion (bounded). A race
// report (E2E_RACE=1) turns into exit status 66.
func popscopeRun(timeout time.Duration, dir string, args ...string) cmdResult {
	r := runCmd(timeout, dir, nil, popscopeBin, args...)
	if strings.Contains(r.output, "DATA RACE") || strings.Contains(r.output, "panic:") {
		r.exit = 66
	}
	return r
}

// replayServer is a running `popscope replay server`.
type replayServer struct {
	addr   string
	stderr *cappedBuffer
	done   chan struct{}
	exit   int
	cmd    *exec.Cmd
}

// startReplayServer runs `popscope replay server FILE --listen 127.0.0.1:0 extra...`.
func startReplayServer(t *testing.T, file string, extra ...string) *replayServer {
	t.Helper()
	rs := &replayServer{stderr: newCapped(1 << 20), done: make(chan struct{}), exit: -1}
	rs.cmd = exec.Command(popscopeBin, append([]string{"replay", "server", file, "--listen", "127.0.0.1:0"}, extra...)...)
	rs.cmd.SysProcAttr = procAttr(syscall.SIGTERM)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	rs.cmd.Stderr = pw
	wait, err := startLocked(rs.cmd)
	pw.Close()
	if err != nil {
		pr.Close()
		t.Fatalf("starting replay server: %v", err)
	}
	addrC := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		found := false
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(rs.stderr, line)
			if _, rest, ok := strings.Cut(line, "listening on "); ok && !found {
				addrC <- strings.TrimSpace(rest)
				found = true
			}
		}
		_, _ = io.Copy(rs.stderr, pr)
		pr.Close()
		<-wait
		if rs.cmd.ProcessState != nil {
			rs.exit = rs.cmd.ProcessState.ExitCode()
		}
		close(rs.done)
	}()
	select {
	case rs.addr = <-addrC:
	case <-rs.done:
		t.Fatalf("replay server exited before listening:\n%s", rs.stderr)
	case <-time.After(15 * time.Second):
		syscall.Kill(-rs.cmd.Process.Pid, syscall.SIGKILL)
		<-rs.done
		t.Fatalf("replay server did not listen within 15s:\n%s", rs.stderr)
	}
	t.Cleanup(func() {
		select {
		case <-rs.done:
		default:
			syscall.Kill(-rs.cmd.Process.Pid, syscall.SIGKILL)
			<-rs.done
		}
	})
	return rs
}

// wait waits (bounded) for a --once server to exit and returns its code.
func (rs *replayServer) wait(t *testing.T, limit time.Duration) int {
	t.Helper()
	select {
	case <-rs.done:
	case <-time.After(limit):
		syscall.Kill(-rs.cmd.Process.Pid, syscall.SIGKILL)
		<-rs.done
		t.Errorf("replay server did not exit within %v:\n%s", limit, rs.stderr)
	}
	if s := rs.stderr.String(); strings.Contains(s, "DATA RACE") || strings.Contains(s, "panic:") {
		t.Errorf("replay server stderr reports a problem:\n%s", s)
	}
	return rs.exit
}

func TestRecordReplay(t *testing.T) {
	needTool(t, "curl")
	needTool(t, "python3")
	dir := testDir(t)
	dv, err := startDovecot(filepath.Join(dir, "dovecot"))
	if err != nil {
		if requireAll || !strings.Contains(err.Error(), "not installed") {
			t.Fatalf("starting a private dovecot: %v", err)
		}
		t.Skip(err)
	}
	t.Cleanup(func() {
		if err := dv.stop(); err != nil {
			t.Error(err)
		}
	})
	work := filepath.Join(dir, "work")
	recDir := filepath.Join(dir, "rec")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "poplib_client.py"), poplibScript, 0o644); err != nil {
		t.Fatal(err)
	}
	clients := recordClients(work, len(dv.msgs))

	// 1. Record.
	p := startProxy(t, dir, dv.plain, "--record", recDir)
	recs := map[string]string{} // client name -> recording
	for i, c := range clients {
		out := filepath.Join(dir, "orig", c.name)
		if err := os.MkdirAll(out, 0o755); err != nil {
			t.Fatal(err)
		}
		checkExit(t, c.name+" through the recording proxy", c.run(t, p.addr, out), 0)
		got := waitRecordings(t, recDir, i+1, 20*time.Second)
		for _, f := range got {
			if !containsValue(recs, f) {
				recs[c.name] = f
			}
		}
	}
	p.stop(t)
	if t.Failed() {
		return
	}
	st, err := os.Stat(recDir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("recording dir mode %v (%v), want 0700", st.Mode().Perm(), err)
	}
	for name, rec := range recs {
		// Format 2 keeps the bytes in a data file beside the index: check both.
		for _, f := range []string{rec, strings.TrimSuffix(rec, ".jsonl") + ".data"} {
			fi, err := os.Stat(f)
			if errors.Is(err, os.ErrNotExist) && f != rec {
				continue // a version 1 recording has no data file
			}
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("%s: mode %v (%v), want 0600", f, fi, err)
				continue
			}
			raw, _ := os.ReadFile(f)
			if bytes.Contains(raw, []byte(mailPass)) || bytes.Contains(raw, []byte(b64s("\x00"+mailUser+"\x00"+mailPass))) {
				t.Errorf("%s (%s): the password is in the recording", name, f)
			}
		}
	}

	// 2. replay server → same client → same bytes.
	t.Run("replay-server", func(t *testing.T) {
		for _, c := range clients {
			rs := startReplayServer(t, recs[c.name], "--once")
			out := filepath.Join(dir, "replayed", c.name)
			if err := os.MkdirAll(out, 0o755); err != nil {
				t.Fatal(err)
			}
			checkExit(t, c.name+" against the replay server", c.run(t, rs.addr, out), 0)
			if code := rs.wait(t, 30*time.Second); code != 0 {
				t.Errorf("%s: replay server exit %d (divergences):\n%s", c.name, code, rs.stderr)
			}
			orig := filepath.Join(dir, "orig", c.name)
			files := listFiles(t, orig)
			if got := listFiles(t, out); strings.Join(got, " ") != strings.Join(files, " ") {
				t.Errorf("%s: replay wrote %v, original run %v", c.name, got, files)
			}
			for _, f := range files {
				a, _ := os.ReadFile(filepath.Join(orig, f))
				b, _ := os.ReadFile(filepath.Join(out, f))
				if !bytes.Equal(a, b) {
					off := firstDiff(a, b)
					t.Errorf("%s/%s: %d bytes from Dovecot, %d from the replay; first difference at %d: %q vs %q",
						c.name, f, len(a), len(b), off, excerpt(a, off), excerpt(b, off))
				}
			}
			t.Logf("%s: %d files byte-identical", c.name, len(files))
		}
	})

	// 3. replay client against the same Dovecot: no difference.
	t.Run("replay-client-same", func(t *testing.T) {
		for _, c := range clients {
			r := popscopeRun(2*time.Minute, dir, "replay", "client", recs[c.name], "--upstream", dv.plain, "--pass", mailPass)
			if r.exit != 0 || !strings.Contains(r.output, "no differences") {
				t.Errorf("%s: replay client: %v\n%s", c.name, r, r.output)
			}
		}
	})

	// 4. pcap export and tshark.
	t.Run("pcap", func(t *testing.T) {
		tshark := needTool(t, "tshark")
		for _, name := range []string{"poplib-user", "curl-retr-cram"} {
			rec, err := record.ReadFile(recs[name])
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, e := range rec.Events() {
				if e.Type == event.Command {
					want = append(want, e.Verb)
				}
			}
			for _, port := range []int{110, 2110} {
				out := filepath.Join(dir, fmt.Sprintf("%s-%d.pcapng", name, port))
				r := popscopeRun(time.Minute, dir, "export", "pcap", recs[name], "-o", out, "--port", strconv.Itoa(port))
				checkExit(t, "export pcap", r, 0)
				args := []string{"-r", out, "-T", "fields", "-e", "pop.request.command"}
				if port != 110 {
					args = append(args, "-d", fmt.Sprintf("tcp.port==%d,pop", port))
				}
				tr := runCmd(2*time.Minute, dir, []string{"HOME=" + dir}, tshark, args...)
				checkExit(t, "tshark", tr, 0)
				var got []string
				for _, l := range strings.Split(tr.output, "\n") {
					if l = strings.TrimSpace(l); l != "" && isWord(l) {
						got = append(got, strings.ToUpper(l))
					}
				}
				if strings.Join(got, " ") != strings.Join(want, " ") {
					t.Errorf("%s port %d: tshark lists %v, the recording %v", name, port, got, want)
				}
			}
			t.Logf("%s: tshark lists the %d recorded commands", name, len(want))
		}
	})

	// 5. check on the recordings finds what the live decoder found.
	t.Run("check", func(t *testing.T) {
		var files []string
		live := map[string]int{}
		for _, c := range clients {
			files = append(files, recs[c.name])
			rec, err := record.ReadFile(recs[c.name])
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range rec.Events() {
				if e.Type == event.Violation {
					live[e.Rule]++
				}
			}
		}
		sort.Strings(files)
		r := popscopeRun(2*time.Minute, dir, append([]string{"check", "--json"}, files...)...)
		if r.exit != 0 && r.exit != 1 {
			t.Fatalf("check: %v\n%s", r, r.output)
		}
		offline := map[string]int{}
		for _, l := range strings.Split(r.output, "\n") {
			var e struct{ Type, Rule string }
			if json.Unmarshal([]byte(l), &e) == nil && e.Type == "violation" {
				offline[e.Rule]++
			}
		}
		if fmt.Sprint(live) != fmt.Sprint(offline) {
			t.Errorf("violations: live decoder %v, check on the recordings %v", live, offline)
		}
		t.Logf("violations (live = offline): %v", live)
	})

	// 6. The maildrop changes: exactly that change shows.
	t.Run("replay-client-changed", func(t *testing.T) {
		md := filepath.Join(dv.dir, "mail", mailUser)
		uid, gid := ownerOf(t, filepath.Join(md, "new"))
		extra := []byte("From: late@example.test\nTo: alice@example.test\nSubject: added later\n\nA message delivered after the recording.\n")
		name := "1700009999.M999999P1Q99.pop3test"
		if err := os.WriteFile(filepath.Join(md, "tmp", name), extra, 0o644); err != nil {
			t.Fatal(err)
		}
		os.Chown(filepath.Join(md, "tmp", name), uid, gid)
		if err := os.Rename(filepath.Join(md, "tmp", name), filepath.Join(md, "new", name)); err != nil {
			t.Fatal(err)
		}
		n := len(dv.msgs)
		size := len(crlf(extra))
		r := popscopeRun(2*time.Minute, dir, "replay", "client", recs["poplib-user"], "--upstream", dv.plain, "--pass", mailPass)
		expectDiff(t, "message added, poplib", r, []string{
			fmt.Sprintf("messages %d → %d", n, n+1),
			fmt.Sprintf("LIST: message %d added (%d octets, unique-id ", n+1, size),
			fmt.Sprintf("UIDL: message %d added (unique-id ", n+1),
		}, 3)
		r = popscopeRun(2*time.Minute, dir, "replay", "client", recs["curl-list"], "--upstream", dv.plain, "--pass", mailPass)
		expectDiff(t, "message added, curl LIST", r, []string{fmt.Sprintf("LIST: message %d added (%d octets)", n+1, size)}, 1)

		// Remove the added message and the last one of the recording.
		for _, f := range []string{name, fmt.Sprintf("%d.M%06dP%dQ%d.pop3test", 1700000000+n, n, 1, n)} {
			if err := removeMaildirFile(md, f); err != nil {
				t.Fatal(err)
			}
		}
		r = popscopeRun(2*time.Minute, dir, "replay", "client", recs["poplib-user"], "--upstream", dv.plain, "--pass", mailPass)
		expectDiff(t, "message removed, poplib", r, []string{
			fmt.Sprintf("messages %d → %d", n, n-1),
			fmt.Sprintf("LIST: message %d removed (", n),
			fmt.Sprintf("UIDL: message %d removed (unique-id ", n),
			fmt.Sprintf("RETR %d: status +OK", n),
		}, 4)
		r = popscopeRun(2*time.Minute, dir, "replay", "client", recs["curl-retr-large"], "--upstream", dv.plain, "--pass", mailPass)
		expectDiff(t, "message removed, curl RETR", r, []string{fmt.Sprintf("RETR %d: status +OK", n)}, 1)
	})
}

func isWord(s string) bool {
	for _, c := range s {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}

func containsValue(m map[string]string, v string) bool {
	for _, x := range m {
		if x == v {
			return true
		}
	}
	return false
}

func b64s(s string) string {
	const enc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	var out []byte
	b := []byte(s)
	for len(b) > 0 {
		var v uint32
		n := min(3, len(b))
		for i := 0; i < 3; i++ {
			v <<= 8
			if i < n {
				v |= uint32(b[i])
			}
		}
		for i := 0; i < 4; i++ {
			if i <= n {
				out = append(out, enc[(v>>(18-6*i))&63])
			} else {
				out = append(out, '=')
			}
		}
		b = b[n:]
	}
	return string(out)
}

func ownerOf(t *testing.T, path string) (int, int) {
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid), int(st.Gid)
	}
	return os.Getuid(), os.Getgid()
}

// removeMaildirFile deletes a message file from new/ or cur/ (Dovecot may
// have moved it, adding flags to its name).
func removeMaildirFile(md, base string) error {
	for _, sub := range []string{"new", "cur"} {
		ms, _ := filepath.Glob(filepath.Join(md, sub, base+"*"))
		for _, m := range ms {
			return os.Remove(m)
		}
	}
	return fmt.Errorf("%s not found in %s", base, md)
}

// expectDiff checks a replay client run that must report exactly the
// given differences (substrings) in n replies, and exit 1.
func expectDiff(t *testing.T, what string, r cmdResult, want []string, n int) {
	t.Helper()
	if r.exit != 1 {
		t.Errorf("%s: %v, want exit 1:\n%s", what, r, r.output)
		return
	}
	for _, w := range want {
		if !strings.Contains(r.output, w) {
			t.Errorf("%s: %q missing from:\n%s", what, w, r.output)
		}
	}
	if !strings.Contains(r.output, fmt.Sprintf("\n%d of ", n)) {
		t.Errorf("%s: want exactly %d differing replies:\n%s", what, n, r.output)
	}
	t.Logf("%s:\n%s", what, r.output)
}

// TestRecordCrash kills the recording proxy with SIGKILL in the middle
// of a large RETR: the recording must be readable up to its last
// complete record, hold the RETR, and agree with what the client got.
func TestRecordCrash(t *testing.T) {
	dv := needDovecot(t)
	dir := testDir(t)
	recDir := filepath.Join(dir, "rec")
	p := startProxy(t, dir, dv.plain, "--record", recDir)
	large := dv.msgs[len(dv.msgs)-1]
	c, err := net.DialTimeout("tcp", p.addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	r := bufio.NewReader(c)
	var got bytes.Buffer
	readLine := func() string {
		l, err := r.ReadString('\n')
		got.WriteString(l)
		if err != nil {
			t.Fatalf("reading: %v", err)
		}
		return l
	}
	readLine()
	fmt.Fprintf(c, "USER %s\r\nPASS %s\r\nRETR %d\r\n", mailUser, mailPass, large.num)
	readLine()
	readLine()
	if l := readLine(); !strings.HasPrefix(l, "+OK") {
		t.Fatalf("RETR: %q", l)
	}
	// Read 1 MiB of the 8 MiB body, then kill the proxy mid-transfer.
	if _, err := io.CopyN(&got, r, 1<<20); err != nil {
		t.Fatal(err)
	}
	p.stopped = true // the cleanup must not expect a clean exit
	if err := syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the proxy did not die")
	}
	rest, _ := io.ReadAll(io.LimitReader(r, 64<<20))
	got.Write(rest)

	files, _ := filepath.Glob(filepath.Join(recDir, "*.rec.jsonl"))
	if len(files) != 1 {
		t.Fatalf("%d recordings", len(files))
	}
	rec, err := record.ReadFile(files[0])
	if err != nil {
		t.Fatalf("reading the recording of a killed proxy: %v", err)
	}
	if rec.Complete {
		t.Error("the recording of a killed proxy claims to be complete")
	}
	if rec.Torn != nil {
		t.Logf("torn last line %d (%d bytes) ignored", rec.Torn.Line, rec.Torn.Bytes)
	}
	cli := rec.Stream(event.Client)
	if !bytes.Contains(cli, []byte(fmt.Sprintf("RETR %d\r\n", large.num))) || !bytes.Contains(cli, []byte("PASS <redacted>\r\n")) {
		t.Errorf("client stream %q", cli)
	}
	srv := rec.Stream(event.Server)
	n := min(len(srv), got.Len())
	if n < 100 || !bytes.Equal(srv[:n], got.Bytes()[:n]) {
		t.Errorf("recorded %d server bytes, the client got %d; they differ within the first %d", len(srv), got.Len(), n)
	}
	t.Logf("killed mid-RETR: the client got %d bytes, the recording holds %d server bytes in %d records (complete=%v)",
		got.Len(), len(srv), len(rec.Records), rec.Complete)
	info := popscopeRun(time.Minute, dir, "record", "info", files[0])
	checkExit(t, "record info", info, 0)
	if !strings.Contains(info.output, "no end record") {
		t.Errorf("record info does not say the recording was cut short:\n%s", info.output)
	}
	chk := popscopeRun(time.Minute, dir, "check", files[0])
	if chk.exit == 2 || !strings.Contains(chk.output, "no end record") {
		t.Errorf("check on the cut recording: %v\n%s", chk, chk.output)
	}
}

// poplibSTLS: poplib over STLS (trusting CAFILE) through one session:
// CAPA, USER/PASS, STAT, LIST, UIDL, RETR 1 and 2, QUIT.
const poplibSTLS = `import os, poplib, ssl, sys
poplib._MAXLINE = 1 << 20
host, port, user, pw, cafile, out = sys.argv[1:7]
p = poplib.POP3(host, int(port), timeout=60)
p.stls(context=ssl.create_default_context(cafile=cafile))
caps = sorted(k for k in p.capa().keys() if k != "IMPLEMENTATION")
p.user(user)
p.pass_(pw)
n, size = p.stat()
def save(name, lines):
    with open(os.path.join(out, name), "wb") as f:
        f.write(b"\r\n".join(lines) + b"\r\n")
save("list", p.list()[1])
save("uidl", p.uidl()[1])
for i in (1, 2):
    save("retr-%02d" % i, p.retr(i)[1])
p.quit()
with open(os.path.join(out, "meta"), "w") as f:
    f.write("%s %d %d\n" % (" ".join(caps), n, size))
`

// TestRecordReplaySTLS: a session whose STLS popscope terminated is
// recorded decrypted; the replay client upgrades where the recording did
// and finds no difference; the replay server offers STLS with popscope's
// CA and serves the same client the same bytes; tshark sees the
// decrypted commands.
func TestRecordReplaySTLS(t *testing.T) {
	dv := needDovecot(t)
	needTool(t, "python3")
	dir := testDir(t)
	recDir, caDir := filepath.Join(dir, "rec"), filepath.Join(dir, "ca")
	dvCA := filepath.Join(dv.dir, "tls", "cert.pem")
	popCA := filepath.Join(caDir, "popscope-ca.pem")
	script := filepath.Join(dir, "poplib_stls.py")
	if err := os.WriteFile(script, []byte(poplibSTLS), 0o644); err != nil {
		t.Fatal(err)
	}
	fetch := func(addr, out string) cmdResult {
		if err := os.MkdirAll(out, 0o755); err != nil {
			t.Fatal(err)
		}
		return runCmd(3*time.Minute, out, nil, "python3", script, "localhost", port(addr), mailUser, mailPass, popCA, out)
	}
	p := startProxy(t, dir, dv.plain, "--record", recDir, "--ca-dir", caDir, "--upstream-tls", "stls", "--upstream-ca", dvCA)
	checkExit(t, "poplib STLS through the recording proxy", fetch(p.addr, filepath.Join(dir, "orig")), 0)
	recs := waitRecordings(t, recDir, 1, 20*time.Second)
	p.stop(t)
	if t.Failed() {
		return
	}
	rec, err := record.ReadFile(recs[0])
	if err != nil {
		t.Fatal(err)
	}
	legs := map[string]bool{}
	for _, e := range rec.Events() {
		if e.Type == event.TLS && e.TLS != nil && e.Error == "" {
			legs[e.TLS.Leg.String()+"/"+e.TLS.Mode] = true
		}
	}
	cli := string(rec.Stream(event.Client))
	if !legs["client/stls"] || !legs["server/stls"] || cli != "CAPA\r\nSTLS\r\nCAPA\r\nUSER alice\r\nPASS <redacted>\r\nSTAT\r\nLIST\r\nUIDL\r\nRETR 1\r\nRETR 2\r\nQUIT\r\n" {
		t.Fatalf("TLS legs %v, client stream %q", legs, cli)
	}

	t.Run("replay-client", func(t *testing.T) {
		r := popscopeRun(2*time.Minute, dir, "replay", "client", recs[0], "--upstream", dv.plain, "--upstream-ca", dvCA, "--pass", mailPass)
		if r.exit != 0 || !strings.Contains(r.output, "no differences") {
			t.Errorf("replay client: %v\n%s", r, r.output)
		}
		r = popscopeRun(2*time.Minute, dir, "replay", "client", recs[0], "--upstream", dv.plain, "--upstream-tls", "stls", "--pass", mailPass)
		if r.exit != 2 {
			t.Errorf("replay client without the upstream's CA: %v, want exit 2 (unverifiable certificate)\n%s", r, r.output)
		}
	})
	t.Run("replay-server", func(t *testing.T) {
		rs := startReplayServer(t, recs[0], "--once", "--ca-dir", caDir)
		out := filepath.Join(dir, "replayed")
		checkExit(t, "poplib STLS against the replay server", fetch(rs.addr, out), 0)
		if code := rs.wait(t, 30*time.Second); code != 0 {
			t.Errorf("replay server exit %d:\n%s", code, rs.stderr)
		}
		orig := filepath.Join(dir, "orig")
		for _, f := range listFiles(t, orig) {
			a, _ := os.ReadFile(filepath.Join(orig, f))
			b, _ := os.ReadFile(filepath.Join(out, f))
			if !bytes.Equal(a, b) {
				t.Errorf("%s: %d bytes from Dovecot, %d from the replay", f, len(a), len(b))
			}
		}
	})
	t.Run("pcap", func(t *testing.T) {
		tshark := needTool(t, "tshark")
		out := filepath.Join(dir, "stls.pcapng")
		checkExit(t, "export pcap", popscopeRun(time.Minute, dir, "export", "pcap", recs[0], "-o", out), 0)
		tr := runCmd(2*time.Minute, dir, []string{"HOME=" + dir}, tshark, "-r", out, "-T", "fields", "-e", "pop.request.command")
		var got []string
		for _, l := range strings.Split(tr.output, "\n") {
			if l = strings.TrimSpace(l); l != "" && isWord(l) {
				got = append(got, l)
			}
		}
		if want := "CAPA STLS CAPA USER PASS STAT LIST UIDL RETR RETR QUIT"; strings.Join(got, " ") != want {
			t.Errorf("tshark lists %v, want %s", got, want)
		}
	})
	t.Run("check", func(t *testing.T) {
		r := popscopeRun(time.Minute, dir, "check", "--json", recs[0])
		if r.exit == 2 {
			t.Fatalf("check: %v\n%s", r, r.output)
		}
		live, offline := map[string]int{}, map[string]int{}
		for _, e := range rec.Events() {
			if e.Type == event.Violation {
				live[e.Rule]++
			}
		}
		for _, l := range strings.Split(r.output, "\n") {
			var e struct{ Type, Rule string }
			if json.Unmarshal([]byte(l), &e) == nil && e.Type == "violation" {
				offline[e.Rule]++
			}
		}
		if fmt.Sprint(live) != fmt.Sprint(offline) {
			t.Errorf("violations: live %v, offline %v", live, offline)
		}
	})
}
