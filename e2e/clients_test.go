//go:build e2e

package e2e

import (
	"bytes"
	_ "embed"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

//go:embed testdata/poplib_client.py
var poplibScript []byte

// clientSpec describes one real client: how to make it fetch every
// message from a POP3 address, and what it should have written.
type clientSpec struct {
	name string
	tool string // program that must be installed
	// fetch runs the client against addr, writing what it retrieves under
	// run/out (run/work is for its configuration); it fails t when an
	// invocation does not end as expected.
	fetch func(t *testing.T, dv *dovecot, addr, run string)
	// expected returns output file name -> exact content. Output files not
	// listed are only compared between the direct and the proxied run.
	expected func(dv *dovecot) map[string][]byte
	// normalize, if set, undoes a client's own nondeterministic damage to
	// an output file before any comparison; it returns what it did ("" if
	// nothing).
	normalize func(dv *dovecot, name string, b []byte) ([]byte, string)
	// quirks describes what the client itself changes in what it stores;
	// expected already accounts for it. Logged for humans.
	quirks []string
}

// TestClients retrieves the whole test mailbox with each real client,
// directly from Dovecot and through the proxy, and checks that the two
// runs deliver the same bytes, that the bytes are the stored messages, and
// that the proxy's events account for every command.
func TestClients(t *testing.T) {
	dv := needDovecot(t)
	for _, c := range []clientSpec{curlSpec, poplibSpec, fetchmailSpec, mpopSpec, mpopDefaultAuthSpec} {
		t.Run(c.name, func(t *testing.T) { testClient(t, dv, c) })
	}
}

func testClient(t *testing.T, dv *dovecot, c clientSpec) {
	needTool(t, c.tool)
	dir := testDir(t)
	direct, proxied := filepath.Join(dir, "direct"), filepath.Join(dir, "proxied")
	for _, d := range []string{direct, proxied} {
		for _, sub := range []string{"out", "work"} {
			if err := os.MkdirAll(filepath.Join(d, sub), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}

	t0 := time.Now()
	c.fetch(t, dv, dv.plain, direct)
	tDirect := time.Since(t0)

	p := startProxy(t, dir, dv.plain)
	rec := newRecorder(t, p.addr)
	t1 := time.Now()
	c.fetch(t, dv, rec.addr(), proxied)
	tProxied := time.Since(t1)
	conns := rec.close(t, 10*time.Second)
	waitSessionEnds(t, p.events, len(conns), 15*time.Second)
	p.stop(t)

	var expected map[string][]byte
	if c.expected != nil {
		expected = c.expected(dv)
	}
	compareOutputs(t, filepath.Join(direct, "out"), filepath.Join(proxied, "out"), expected,
		func(name string, b []byte) ([]byte, string) {
			if c.normalize == nil {
				return b, ""
			}
			return c.normalize(dv, name, b)
		})
	for _, q := range c.quirks {
		t.Logf("%s quirk (same direct and proxied; expected accounts for it): %s", c.name, q)
	}

	evs, err := readEvents(p.events, true)
	if err != nil {
		t.Fatalf("events: %v", err)
	}
	vlog := checkClientEvents(t, evs, conns)
	t.Logf("%s: %d connections, %d events; direct %v, through the proxy %v",
		c.name, len(conns), len(evs), tDirect.Round(time.Millisecond), tProxied.Round(time.Millisecond))
	t.Logf("%s: non-error violations: %s", c.name, vlog)
}

// compareOutputs checks that the direct and proxied runs wrote the same
// files with the same bytes, and that the expected files are right.
func compareOutputs(t *testing.T, direct, proxied string, expected map[string][]byte,
	normalize func(name string, b []byte) ([]byte, string)) {
	t.Helper()
	dn, pn := listFiles(t, direct), listFiles(t, proxied)
	if strings.Join(dn, " ") != strings.Join(pn, " ") {
		t.Errorf("direct run wrote %v, proxied run wrote %v", dn, pn)
	}
	cache := map[string][]byte{}
	read := func(dir, name string) ([]byte, error) {
		p := filepath.Join(dir, name)
		if b, ok := cache[p]; ok {
			return b, nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		nb, what := normalize(name, b)
		if what != "" {
			t.Logf("%s/%s: %s", filepath.Base(filepath.Dir(dir)), name, what)
		}
		cache[p] = nb
		return nb, nil
	}
	for _, name := range dn {
		a, err1 := read(direct, name)
		b, err2 := read(proxied, name)
		if err1 != nil || err2 != nil {
			continue
		}
		if !bytes.Equal(a, b) {
			off := firstDiff(a, b)
			t.Errorf("%s: direct (%d bytes) and proxied (%d bytes) differ at offset %d: %q vs %q",
				name, len(a), len(b), off, excerpt(a, off), excerpt(b, off))
		}
	}
	names := make([]string, 0, len(expected))
	for n := range expected {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		want := expected[name]
		got, err := read(direct, name)
		if err != nil {
			t.Errorf("expected output %s: %v", name, err)
			continue
		}
		if !bytes.Equal(got, want) {
			off := firstDiff(got, want)
			t.Errorf("%s: %d bytes, want %d; first difference at offset %d: got %q, want %q",
				name, len(got), len(want), off, excerpt(got, off), excerpt(want, off))
		}
	}
}

func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

func firstDiff(a, b []byte) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

func excerpt(b []byte, off int) []byte {
	return b[min(off, len(b)):min(off+24, len(b))]
}

func checkExit(t *testing.T, what string, r cmdResult, want int) {
	t.Helper()
	if r.timedOut || r.exit != want {
		t.Errorf("%s: %v, want exit %d; output:\n%s", what, r, want, r.output)
	}
}

func splitAddr(t *testing.T, addr string) (string, string) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return h, p
}

// writeMDA writes a delivery agent for fetchmail and mpop: "mda.sh DIR"
// stores its input as DIR/msg-NN, counting deliveries (both clients
// deliver one message at a time, in order).
func writeMDA(t *testing.T, work string) string {
	t.Helper()
	p := filepath.Join(work, "mda.sh")
	script := "#!/bin/sh\n# popscope e2e MDA: store stdin as $1/msg-NN\nset -e\nn=$(ls \"$1\" | wc -l)\nexec cat > \"$1/msg-$(printf %02d $((n + 1)))\"\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func msgName(prefix string, n int) string { return fmt.Sprintf("%s%02d", prefix, n) }

// ---- curl ----

var curlMechs = []string{"+APOP", "PLAIN", "LOGIN"}

var curlSpec = clientSpec{
	name: "curl",
	tool: "curl",
	fetch: func(t *testing.T, dv *dovecot, addr, run string) {
		out := filepath.Join(run, "out")
		base := "pop3://" + addr + "/"
		get := func(file string, args ...string) {
			all := append([]string{"-sS", "--max-time", "120", "-u", mailUser + ":" + mailPass,
				"-o", filepath.Join(out, file)}, args...)
			r := runCmd(3*time.Minute, run, nil, "curl", all...)
			checkExit(t, "curl "+strings.Join(args, " "), r, 0)
		}
		// Default login: curl picks the strongest SASL mechanism (CRAM-MD5).
		for _, m := range dv.msgs {
			get(msgName("retr-", m.num), base+strconv.Itoa(m.num))
		}
		get("list", base)
		get("uidl", "-X", "UIDL", base)
		for _, mech := range curlMechs {
			get("retr-01-"+strings.TrimPrefix(mech, "+"), "--login-options", "AUTH="+mech, base+"1")
		}
	},
	expected: func(dv *dovecot) map[string][]byte {
		m := map[string][]byte{}
		var list bytes.Buffer
		for _, msg := range dv.msgs {
			m[msgName("retr-", msg.num)] = msg.wire()
			// LIST gives the stored size in CRLF form; for the message
			// without a final newline Dovecot's RETR adds a CRLF that
			// LIST does not count.
			fmt.Fprintf(&list, "%d %d\r\n", msg.num, len(crlf(msg.disk)))
		}
		m["list"] = list.Bytes()
		for _, mech := range curlMechs {
			m["retr-01-"+strings.TrimPrefix(mech, "+")] = dv.msgs[0].wire()
		}
		return m
	},
}

// ---- Python poplib ----

var poplibSpec = clientSpec{
	name: "poplib",
	tool: "python3",
	fetch: func(t *testing.T, dv *dovecot, addr, run string) {
		script := filepath.Join(run, "work", "poplib_client.py")
		if err := os.WriteFile(script, poplibScript, 0o644); err != nil {
			t.Fatal(err)
		}
		host, port := splitAddr(t, addr)
		for _, mode := range []string{"user", "apop"} {
			r := runCmd(3*time.Minute, run, nil, "python3", script, host, port, mailUser, mailPass, mode, filepath.Join(run, "out"))
			checkExit(t, "poplib "+mode, r, 0)
		}
	},
	expected: func(dv *dovecot) map[string][]byte {
		m := map[string][]byte{"user-top-01": dv.msgs[0].header()}
		for _, msg := range dv.msgs {
			m[msgName("user-retr-", msg.num)] = msg.wire()
			m[msgName("apop-retr-", msg.num)] = msg.wire()
		}
		return m
	},
}

// ---- fetchmail ----

var fetchmailSpec = clientSpec{
	name: "fetchmail",
	tool: "fetchmail",
	fetch: func(t *testing.T, dv *dovecot, addr, run string) {
		work, out := filepath.Join(run, "work"), filepath.Join(run, "out")
		host, port := splitAddr(t, addr)
		// fetchmail takes no password on the command line: an rc file,
		// mode 0600, and FETCHMAILHOME for its lock and state.
		rc := filepath.Join(work, "fetchmailrc")
		if err := os.WriteFile(rc, fmt.Appendf(nil, "poll %s user \"%s\" password \"%s\"\n", host, mailUser, mailPass), 0o600); err != nil {
			t.Fatal(err)
		}
		mda := writeMDA(t, work)
		// --sslproto '': no STLS although the server offers it;
		// --invisible: no Received: header, so runs are comparable.
		r := runCmd(5*time.Minute, work, []string{"FETCHMAILHOME=" + work}, "fetchmail",
			"-f", rc, "-N", "-d0", "-v", "-p", "pop3", "-k", "-a", "--invisible",
			"-i", filepath.Join(work, "ids"), "--mda", mda+" "+out,
			host, "--service", port, "--sslproto", "")
		checkExit(t, "fetchmail", r, 0)
	},
	expected: func(dv *dovecot) map[string][]byte {
		m := lfMessages(dv)
		for _, msg := range dv.msgs {
			if msg.kind == "bareCR" {
				m[msgName("msg-", msg.num)] = bytes.ReplaceAll(msg.lf(), []byte("\r"), nil)
			}
		}
		return m
	},
	normalize: func(dv *dovecot, name string, b []byte) ([]byte, string) {
		for _, msg := range dv.msgs {
			if msg.kind == "longline" && name == msgName("msg-", msg.num) {
				n := len(fetchmailSplit.FindAll(b, -1))
				if n == 0 {
					return b, ""
				}
				return fetchmailSplit.ReplaceAll(b, nil), fmt.Sprintf(
					"removed %d NUL,?,LF triples that fetchmail inserted into the 100,000-octet line", n)
			}
		}
		return b, ""
	},
	quirks: []string{
		"fetchmail drops a bare CR (bareCR message)",
		"fetchmail splits lines longer than its 8 KiB buffer, inserting NUL, one varying byte (uninitialised memory) and LF; normalized before comparing",
	},
}

// fetchmailSplit is what fetchmail 6.4 inserts every 8 KiB into a long line.
var fetchmailSplit = regexp.MustCompile(`(?s)\x00.\n`)

// lfMessages: what an LF-storing client (fetchmail, mpop) delivers.
func lfMessages(dv *dovecot) map[string][]byte {
	m := map[string][]byte{}
	for _, msg := range dv.msgs {
		m[msgName("msg-", msg.num)] = msg.lf()
	}
	return m
}

// ---- mpop ----

func mpopFetch(auth string, wantExit int) func(t *testing.T, dv *dovecot, addr, run string) {
	return func(t *testing.T, dv *dovecot, addr, run string) {
		work, out := filepath.Join(run, "work"), filepath.Join(run, "out")
		host, port := splitAddr(t, addr)
		mda := writeMDA(t, work)
		args := []string{"-C", "/dev/null", "--host=" + host, "--port=" + port, "--tls=off", "--timeout=60",
			"--user=" + mailUser, "--passwordeval=echo " + mailPass, "--keep=on", "--only-new=off",
			"--uidls-file=" + filepath.Join(work, "uidls"), "--received-header=off",
			"--delivery=mda," + mda + " " + out, "-q"}
		if auth != "" {
			args = append(args, "--auth="+auth)
		}
		r := runCmd(5*time.Minute, work, nil, "mpop", args...)
		checkExit(t, "mpop "+auth, r, wantExit)
		if wantExit != 0 {
			t.Logf("mpop (auth %q) over plain POP3: %v: %s", auth, r, strings.TrimSpace(r.output))
		}
	}
}

// mpop with --auth=user logs in over plain POP3.
var mpopSpec = clientSpec{
	name:     "mpop",
	tool:     "mpop",
	fetch:    mpopFetch("user", 0),
	expected: lfMessages,
}

// mpop with its default authentication ("on": choose a method) refuses to
// log in without TLS ("cannot use a secure authentication method", exit
// 69 = EX_UNAVAILABLE) after CAPA, although CRAM-MD5 is offered. The
// proxied session must look the same as the direct one.
var mpopDefaultAuthSpec = clientSpec{
	name:  "mpop-default-auth",
	tool:  "mpop",
	fetch: mpopFetch("", 69),
}
