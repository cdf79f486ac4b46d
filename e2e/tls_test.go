//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The TLS matrix: every client leg {plain, STLS, implicit} × every
// upstream leg {plain, STLS, implicit} against the private Dovecot, with
// four real clients each (curl, poplib, fetchmail, mpop) trusting
// popscope's CA. Each proxied run must retrieve the same bytes as a
// direct run of the same client in the same TLS mode against Dovecot,
// and the events must show the decrypted commands, one "tls" event per
// TLS leg (the upstream leg verified against Dovecot's self-signed
// certificate, given as --upstream-ca) and no error-severity violation.
//
// It uses tlsUser's small mailbox (the same edge cases, a 1 MiB large
// message) so that its 48 client runs stay quick.

var tlsModes = []string{"plain", "stls", "implicit"}

// tlsEndpoint is where and how a client connects.
type tlsEndpoint struct {
	host, port string
	mode       string // plain, stls, implicit
	ca         string // CA certificate file to trust (TLS modes)
}

func (e tlsEndpoint) addr() string { return net.JoinHostPort(e.host, e.port) }

// tlsClient is one real client able to use each TLS mode.
type tlsClient struct {
	name, tool string
	fetch      func(t *testing.T, ep tlsEndpoint, msgs []message, run string)
	expected   func(dv *dovecot) map[string][]byte
	normalize  func(dv *dovecot, name string, b []byte) ([]byte, string)
}

var tlsClients = []tlsClient{
	{name: "curl", tool: "curl", fetch: curlTLSFetch, expected: curlTLSExpected},
	{name: "poplib", tool: "python3", fetch: poplibTLSFetch, expected: poplibTLSExpected},
	{name: "fetchmail", tool: "fetchmail", fetch: fetchmailTLSFetch, expected: fetchmailSpec.expected, normalize: fetchmailSpec.normalize},
	{name: "mpop", tool: "mpop", fetch: mpopTLSFetch, expected: lfMessages},
}

// ---- clients ----

// curl: every message and LIST in one invocation (curl may reuse the
// connection between URLs); default authentication (CRAM-MD5).
func curlTLSFetch(t *testing.T, ep tlsEndpoint, msgs []message, run string) {
	out := filepath.Join(run, "out")
	scheme := "pop3"
	args := []string{"-sS", "--max-time", "120", "-u", tlsUser + ":" + tlsPass}
	switch ep.mode {
	case "stls":
		args = append(args, "--ssl-reqd", "--cacert", ep.ca)
	case "implicit":
		scheme = "pop3s"
		args = append(args, "--cacert", ep.ca)
	}
	base := scheme + "://" + ep.addr() + "/"
	for _, m := range msgs {
		args = append(args, base+strconv.Itoa(m.num), "-o", filepath.Join(out, msgName("retr-", m.num)))
	}
	args = append(args, base, "-o", filepath.Join(out, "list"))
	r := runCmd(3*time.Minute, run, nil, "curl", args...)
	checkExit(t, "curl ("+ep.mode+")", r, 0)
}

func curlTLSExpected(dv *dovecot) map[string][]byte {
	m := map[string][]byte{}
	var list bytes.Buffer
	for _, msg := range dv.msgs {
		m[msgName("retr-", msg.num)] = msg.wire()
		fmt.Fprintf(&list, "%d %d\r\n", msg.num, len(crlf(msg.disk)))
	}
	m["list"] = list.Bytes()
	return m
}

// poplibTLSScript: POP3 (plain), POP3 + stls(context) or POP3_SSL; CAPA,
// USER/PASS, STAT, LIST, UIDL, TOP 1 0, RETR every message, QUIT.
const poplibTLSScript = `import json, os, poplib, ssl, sys
poplib._MAXLINE = 1 << 20
host, port, user, pw, mode, cafile, out = sys.argv[1:8]
ctx = None if mode == "plain" else ssl.create_default_context(cafile=cafile)
if mode == "implicit":
    p = poplib.POP3_SSL(host, int(port), timeout=60, context=ctx)
else:
    p = poplib.POP3(host, int(port), timeout=60)
if mode == "stls":
    p.stls(context=ctx)
meta = {"capa": sorted(k for k in p.capa().keys() if k != "IMPLEMENTATION")}
p.user(user)
p.pass_(pw)
n, size = p.stat()
meta["stat"] = [n, size]
meta["list"] = [l.decode() for l in p.list()[1]]
meta["uidl"] = [l.decode() for l in p.uidl()[1]]
def save(name, lines):
    with open(os.path.join(out, name), "wb") as f:
        f.write(b"\r\n".join(lines) + b"\r\n")
save("top-01", p.top(1, 0)[1])
for i in range(1, n + 1):
    save("retr-%02d" % i, p.retr(i)[1])
p.quit()
with open(os.path.join(out, "meta.json"), "w") as f:
    json.dump(meta, f, sort_keys=True, indent=1)
`

func poplibTLSFetch(t *testing.T, ep tlsEndpoint, _ []message, run string) {
	script := filepath.Join(run, "work", "poplib_tls.py")
	if err := os.WriteFile(script, []byte(poplibTLSScript), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runCmd(3*time.Minute, run, nil, "python3", script, ep.host, ep.port, tlsUser, tlsPass, ep.mode, ep.ca, filepath.Join(run, "out"))
	checkExit(t, "poplib ("+ep.mode+")", r, 0)
}

func poplibTLSExpected(dv *dovecot) map[string][]byte {
	m := map[string][]byte{"top-01": dv.msgs[0].header()}
	for _, msg := range dv.msgs {
		m[msgName("retr-", msg.num)] = msg.wire()
	}
	return m
}

func fetchmailTLSFetch(t *testing.T, ep tlsEndpoint, _ []message, run string) {
	work, out := filepath.Join(run, "work"), filepath.Join(run, "out")
	rc := filepath.Join(work, "fetchmailrc")
	if err := os.WriteFile(rc, fmt.Appendf(nil, "poll %s user \"%s\" password \"%s\"\n", ep.host, tlsUser, tlsPass), 0o600); err != nil {
		t.Fatal(err)
	}
	mda := writeMDA(t, work)
	args := []string{"-f", rc, "-N", "-d0", "-v", "-p", "pop3", "-k", "-a", "--invisible",
		"-i", filepath.Join(work, "ids"), "--mda", mda + " " + out, ep.host, "--service", ep.port}
	switch ep.mode {
	case "plain":
		args = append(args, "--sslproto", "")
	case "stls":
		args = append(args, "--sslproto", "tls1.2+", "--sslcertck", "--sslcertfile", ep.ca)
	case "implicit":
		args = append(args, "--ssl", "--sslcertck", "--sslcertfile", ep.ca)
	}
	r := runCmd(5*time.Minute, work, []string{"FETCHMAILHOME=" + work}, "fetchmail", args...)
	checkExit(t, "fetchmail ("+ep.mode+")", r, 0)
}

func mpopTLSFetch(t *testing.T, ep tlsEndpoint, _ []message, run string) {
	work, out := filepath.Join(run, "work"), filepath.Join(run, "out")
	mda := writeMDA(t, work)
	args := []string{"-C", "/dev/null", "--host=" + ep.host, "--port=" + ep.port, "--timeout=60", "--auth=user",
		"--user=" + tlsUser, "--passwordeval=echo " + tlsPass, "--keep=on", "--only-new=off",
		"--uidls-file=" + filepath.Join(work, "uidls"), "--received-header=off",
		"--delivery=mda," + mda + " " + out, "-q"}
	switch ep.mode {
	case "plain":
		args = append(args, "--tls=off")
	case "stls":
		args = append(args, "--tls=on", "--tls-starttls=on", "--tls-trust-file="+ep.ca)
	case "implicit":
		args = append(args, "--tls=on", "--tls-starttls=off", "--tls-trust-file="+ep.ca)
	}
	r := runCmd(5*time.Minute, work, nil, "mpop", args...)
	checkExit(t, "mpop ("+ep.mode+")", r, 0)
}

// ---- the matrix ----

func TestTLSMatrix(t *testing.T) {
	dv := needDovecot(t)
	root := testDir(t)
	small := &dovecot{msgs: dv.small} // what expected/normalize look at
	dvCA := filepath.Join(dv.dir, "tls", "cert.pem")
	caDir := filepath.Join(root, "ca")
	popCA := filepath.Join(caDir, "popscope-ca.pem")
	t0 := time.Now()

	var mu sync.Mutex
	results := map[string]string{} // "client leg/upstream leg/client" -> outcome
	record := func(key string, t *testing.T, d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		if t.Failed() {
			results[key] = "FAIL"
		} else if t.Skipped() {
			results[key] = "skip"
		} else {
			results[key] = fmt.Sprintf("ok %.1fs", d.Seconds())
		}
	}

	// Direct runs against Dovecot: the reference for each client and
	// client-side TLS mode.
	direct := map[string]string{} // client/mode -> run dir
	t.Run("direct", func(t *testing.T) {
		for _, mode := range tlsModes {
			ep := tlsEndpoint{host: "127.0.0.1", mode: mode, ca: dvCA}
			ep.port = port(dv.plain)
			if mode != "plain" {
				ep.host = "localhost"
			}
			if mode == "implicit" {
				ep.port = port(dv.tls)
			}
			for _, c := range tlsClients {
				t.Run(mode+"/"+c.name, func(t *testing.T) {
					needTool(t, c.tool)
					run := runDirs(t, filepath.Join(root, "direct", mode, c.name))
					c.fetch(t, ep, dv.small, run)
					if !t.Failed() {
						direct[c.name+"/"+mode] = filepath.Join(run, "out")
					}
				})
			}
		}
	})

	for _, cm := range tlsModes {
		for _, um := range tlsModes {
			t.Run("client-"+cm+"/upstream-"+um, func(t *testing.T) {
				upstream := dv.plain
				if um == "implicit" {
					upstream = dv.tls
				}
				for _, c := range tlsClients {
					t.Run(c.name, func(t *testing.T) {
						needTool(t, c.tool)
						t1 := time.Now()
						defer func() { record(cm+"/"+um+"/"+c.name, t, time.Since(t1)) }()
						run := runDirs(t, filepath.Join(root, "client-"+cm, "upstream-"+um, c.name))
						p := startProxy(t, run, upstream, "--listen-tls", "127.0.0.1:0", "--ca-dir", caDir,
							"--upstream-tls", um, "--upstream-ca", dvCA)
						ep := tlsEndpoint{host: "127.0.0.1", port: port(p.addr), mode: cm, ca: popCA}
						if cm != "plain" {
							ep.host = "localhost"
						}
						if cm == "implicit" {
							ep.port = port(p.tlsAddr)
						}
						c.fetch(t, ep, dv.small, run)
						waitAllEnded(t, p.events, 15*time.Second)
						p.stop(t)

						ref := direct[c.name+"/"+cm]
						if ref == "" {
							t.Errorf("no direct %s run of %s to compare with", cm, c.name)
							ref = filepath.Join(run, "out")
						}
						var expected map[string][]byte
						if c.expected != nil {
							expected = c.expected(small)
						}
						compareOutputs(t, ref, filepath.Join(run, "out"), expected, func(name string, b []byte) ([]byte, string) {
							if c.normalize == nil {
								return b, ""
							}
							return c.normalize(small, name, b)
						})
						evs, err := readEvents(p.events, true)
						if err != nil {
							t.Fatalf("events: %v", err)
						}
						sum := checkTLSSessions(t, evs, cm, tlsLegMode(um), dv.small)
						t.Logf("%s: %s in %v", c.name, sum, time.Since(t1).Round(time.Millisecond))
					})
				}
			})
		}
	}

	// The matrix, for humans.
	var b strings.Builder
	fmt.Fprintf(&b, "TLS matrix (client leg × upstream leg), %d messages of %d octets in all, %v:\n", len(dv.small), mailboxSize(dv.small), time.Since(t0).Round(time.Second))
	fmt.Fprintf(&b, "  %-36s", "")
	for _, c := range tlsClients {
		fmt.Fprintf(&b, " %-11s", c.name)
	}
	for _, cm := range tlsModes {
		for _, um := range tlsModes {
			fmt.Fprintf(&b, "\n  %-36s", "client "+cm+" / upstream "+um)
			for _, c := range tlsClients {
				fmt.Fprintf(&b, " %-11s", results[cm+"/"+um+"/"+c.name])
			}
		}
	}
	t.Log(b.String())
}

func mailboxSize(msgs []message) int {
	n := 0
	for _, m := range msgs {
		n += len(m.disk)
	}
	return n
}

// tlsLegMode is the mode the upstream leg's tls event must show.
func tlsLegMode(upstreamTLS string) string {
	if upstreamTLS == "plain" {
		return ""
	}
	return upstreamTLS
}

// runDirs makes dir/out and dir/work and returns dir.
func runDirs(t *testing.T, dir string) string {
	t.Helper()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"out", "work"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// waitAllEnded polls the events file (bounded) until it holds at least
// one session and as many session_end as session_start events.
func waitAllEnded(t testing.TB, path string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	var starts, ends int
	for {
		evs, err := readEvents(path, false)
		if err == nil {
			starts, ends = 0, 0
			for _, e := range evs {
				switch e.Type {
				case "session_start":
					starts++
				case "session_end":
					ends++
				}
			}
			if starts > 0 && starts == ends {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Errorf("events file %s: %d sessions started, %d ended after %v (err %v)", path, starts, ends, limit, err)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// jtls is the "tls" member of an event, as the JSON Lines schema names it.
type jtls struct {
	Leg         string    `json:"leg"`
	Mode        string    `json:"mode"`
	Version     string    `json:"version"`
	Cipher      string    `json:"cipher"`
	SNI         string    `json:"sni"`
	PeerSubject string    `json:"peer_subject"`
	PeerIssuer  string    `json:"peer_issuer"`
	PeerExpiry  time.Time `json:"peer_not_after"`
	Verified    bool      `json:"verified"`
	VerifyError string    `json:"verify_error"`
}

func tlsOf(t testing.TB, e jevent) *jtls {
	t.Helper()
	var v struct {
		TLS *jtls `json:"tls"`
	}
	if err := json.Unmarshal([]byte(e.raw), &v); err != nil || v.TLS == nil {
		t.Errorf("tls event without a tls member (%v): %s", err, e.raw)
		return &jtls{}
	}
	return v.TLS
}

// checkTLSSessions checks every session of one proxied client run: the
// generic session checks (seq, greeting, one response per command, no
// error-severity violation, nothing opaque), one "tls" event per TLS leg
// with the expected mode ("" = that leg is plaintext; the upstream leg
// verified), and that the decrypted RETR commands cover every message
// with the right sizes. It returns a summary line.
func checkTLSSessions(t *testing.T, evs []jevent, clientMode, serverMode string, msgs []message) string {
	t.Helper()
	vlog := &violationLog{}
	sessions, order := bySession(t, evs)
	if len(order) == 0 {
		t.Fatalf("no sessions in the events")
	}
	retrieved := map[int]int{}
	notes := map[string]int{}
	var versions []string
	cmds := 0
	for _, id := range order {
		s := sessions[id]
		checkSession(t, id, s, nil, vlog)
		legs := map[string][]*jtls{}
		retrArgs := map[uint64]string{}
		var clientTLSSeq uint64
		for _, e := range s {
			switch e.Type {
			case "tls":
				i := tlsOf(t, e)
				if e.Error != "" {
					t.Errorf("session %s: failed handshake: %s", id, e.raw)
				}
				legs[i.Leg] = append(legs[i.Leg], i)
				if i.Leg == "client" {
					clientTLSSeq = e.Seq
				}
				versions = append(versions, i.Leg+" "+i.Version)
			case "command":
				cmds++
				if e.Verb == "RETR" {
					retrArgs[e.ID] = e.Args
					if clientMode != "plain" && e.Seq < clientTLSSeq {
						t.Errorf("session %s: RETR before the client leg's TLS: %s", id, e.raw)
					}
				}
			case "response":
				if e.Verb != "RETR" || e.Status != "+OK" {
					continue
				}
				n, err := strconv.Atoi(retrArgs[e.ID])
				if err != nil || n < 1 || n > len(msgs) {
					t.Errorf("session %s: RETR response for argument %q: %s", id, retrArgs[e.ID], e.raw)
					continue
				}
				retrieved[n]++
				if want := int64(len(msgs[n-1].wire())); e.Octets != want {
					t.Errorf("session %s: RETR %d decoded as %d octets, want %d", id, n, e.Octets, want)
				}
			case "note":
				if strings.Contains(e.Detail, "CAPA adjusted") || strings.Contains(e.Detail, "answered STLS") {
					d, _, _ := strings.Cut(e.Detail, ":")
					notes[d]++
				}
			}
		}
		for _, leg := range []struct{ name, mode string }{{"client", clientMode}, {"server", serverMode}} {
			got := legs[leg.name]
			if leg.mode == "plain" {
				leg.mode = ""
			}
			switch {
			case leg.mode == "" && len(got) > 0:
				t.Errorf("session %s: %s leg should be plaintext, has tls event %+v", id, leg.name, *got[0])
			case leg.mode != "" && len(got) != 1:
				t.Errorf("session %s: %d tls events for the %s leg, want 1", id, len(got), leg.name)
			case leg.mode != "":
				i := got[0]
				if i.Mode != leg.mode || !strings.HasPrefix(i.Version, "TLS 1.") || i.Cipher == "" {
					t.Errorf("session %s: %s leg %+v, want mode %s with a version and a cipher", id, leg.name, *i, leg.mode)
				}
				if leg.name == "server" && (!i.Verified || i.VerifyError != "" || !strings.Contains(i.PeerSubject, "localhost") || i.PeerExpiry.IsZero()) {
					t.Errorf("session %s: upstream leg %+v, want Dovecot's certificate verified", id, *i)
				}
				if leg.name == "client" && i.SNI != "localhost" {
					t.Logf("session %s: client leg SNI %q", id, i.SNI)
				}
			}
		}
	}
	for _, m := range msgs {
		if retrieved[m.num] == 0 {
			t.Errorf("no decoded RETR %d (+OK) in the events", m.num)
		}
	}
	sort.Strings(versions)
	return fmt.Sprintf("%d sessions, %d commands decoded, tls %v, popscope notes %v, other violations: %s",
		len(order), cmds, compact(versions), notes, vlog)
}

// compact turns a sorted list into "x ×n" items.
func compact(xs []string) []string {
	var out []string
	for i := 0; i < len(xs); {
		j := i
		for j < len(xs) && xs[j] == xs[i] {
			j++
		}
		out = append(out, fmt.Sprintf("%s ×%d", xs[i], j-i))
		i = j
	}
	return out
}

// ---- upstream verification ----

// --upstream-insecure: the session works, and the upstream leg's tls
// event says that nothing was verified. The CA comes from
// POPSCOPE_CA_DIR here (the matrix uses --ca-dir).
func TestTLSUpstreamInsecure(t *testing.T) {
	dv := needDovecot(t)
	needTool(t, "curl")
	dir := testDir(t)
	caDir := filepath.Join(dir, "ca")
	t.Setenv("POPSCOPE_CA_DIR", caDir)
	p := startProxy(t, dir, dv.tls, "--listen-tls", "127.0.0.1:0", "--upstream-tls", "implicit", "--upstream-insecure")
	out := filepath.Join(dir, "retr-01")
	r := runCmd(2*time.Minute, dir, nil, "curl", "-sS", "--max-time", "60", "-u", tlsUser+":"+tlsPass,
		"--cacert", filepath.Join(caDir, "popscope-ca.pem"), "-o", out, "pop3s://localhost:"+port(p.tlsAddr)+"/1")
	checkExit(t, "curl pop3s", r, 0)
	if b, err := os.ReadFile(out); err != nil || !bytes.Equal(b, dv.small[0].wire()) {
		t.Errorf("message 1 through an insecure upstream leg: %d bytes (%v), want %d", len(b), err, len(dv.small[0].wire()))
	}
	waitAllEnded(t, p.events, 15*time.Second)
	p.stop(t)
	if !strings.Contains(p.stderr.String(), "WARNING: --upstream-insecure") {
		t.Errorf("no --upstream-insecure warning on stderr:\n%s", p.stderr)
	}
	evs, err := readEvents(p.events, true)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range evs {
		if e.Type != "tls" {
			continue
		}
		i := tlsOf(t, e)
		if i.Leg != "server" {
			continue
		}
		n++
		if e.Error != "" || i.Verified || !strings.HasPrefix(i.VerifyError, "skipped") || i.PeerSubject == "" {
			t.Errorf("insecure upstream leg: %s, want success, verified false, verify_error \"skipped...\" and the peer subject", e.raw)
		} else {
			t.Logf("upstream leg: mode %s, %s, verify_error %q, peer %q", i.Mode, i.Version, i.VerifyError, i.PeerSubject)
		}
	}
	if n == 0 {
		t.Errorf("no tls event for the upstream leg")
	}
	for _, e := range evs {
		if e.Type == "violation" && e.Severity == "error" {
			t.Errorf("error-severity violation: %s", e.raw)
		}
	}
}

// A wrong --upstream-ca (a self-signed certificate that is not
// Dovecot's): the upstream handshake fails with a clear tls event and the
// client gets a -ERR — as its greeting with an implicit-TLS upstream, or
// right after Dovecot's greeting with popscope's own STLS.
func TestTLSUpstreamWrongCA(t *testing.T) {
	dv := needDovecot(t)
	dir := testDir(t)
	wrong := filepath.Join(dir, "wrong-ca")
	if err := os.MkdirAll(wrong, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeCert(wrong); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"implicit", "stls"} {
		t.Run(mode, func(t *testing.T) {
			run := runDirs(t, filepath.Join(dir, mode))
			upstream := dv.plain
			if mode == "implicit" {
				upstream = dv.tls
			}
			p := startProxy(t, run, upstream, "--ca-dir", filepath.Join(dir, "ca"), "--upstream-tls", mode,
				"--upstream-ca", filepath.Join(wrong, "cert.pem"))
			const want = "-ERR [SYS/TEMP] popscope: upstream TLS handshake failed"
			greet, rest := dialGreeting(t, p.addr, "")
			switch mode {
			case "implicit":
				if greet != want || rest != "" {
					t.Errorf("client got %q then %q, want %q as greeting", greet, rest, want)
				}
			case "stls":
				if !strings.HasPrefix(greet, "+OK") || rest != want+"\r\n" {
					t.Errorf("client got %q then %q, want Dovecot's greeting then %q", greet, rest, want)
				}
			}
			t.Logf("raw client: %q then %q", greet, rest)
			sessions := 1
			if _, err := exec.LookPath("curl"); err == nil {
				r := runCmd(time.Minute, run, nil, "curl", "-sS", "--max-time", "30", "-u", tlsUser+":"+tlsPass,
					"pop3://"+p.addr+"/1")
				if r.exit == 0 {
					t.Errorf("curl succeeded through an upstream that failed verification")
				}
				t.Logf("curl: %v: %s", r, strings.TrimSpace(r.output))
				sessions++
			}
			waitSessionEnds(t, p.events, sessions, 15*time.Second)
			p.stop(t)
			evs, err := readEvents(p.events, true)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, e := range evs {
				switch {
				case e.Type == "tls":
					i := tlsOf(t, e)
					if i.Leg != "server" {
						t.Errorf("tls event for the client leg: %s", e.raw)
						continue
					}
					n++
					if e.Error == "" || i.Verified || !strings.Contains(i.VerifyError, "certificate") || i.Mode != mode {
						t.Errorf("upstream leg: %s, want a failed %s handshake naming the certificate problem", e.raw, mode)
					}
				case e.Type == "session_end" && e.Reason != "upstream TLS handshake failed":
					t.Errorf("session_end: %s", e.raw)
				case e.Type == "command":
					t.Errorf("a command was decoded (so forwarded) after the upstream handshake failed: %s", e.raw)
				}
			}
			if n != sessions {
				t.Errorf("%d failed upstream tls events, want %d", n, sessions)
			}
			for _, e := range evs {
				if e.Type == "tls" {
					t.Logf("tls event: %s", e.raw)
					break
				}
			}
		})
	}
}
