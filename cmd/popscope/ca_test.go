package main

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/popscope/popscope/internal/certs"
)

func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCACommand(t *testing.T) {
	t.Setenv(certs.EnvDir, t.TempDir()) // never the user's own CA
	tmp := filepath.Join(t.TempDir(), "my ca")
	code, out, errs := runCmd(t, "ca", "--dir", tmp)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	certPath := filepath.Join(tmp, certs.CertFile)
	quoted := "'" + certPath + "'" // the path has a space: shell-quoted
	for _, want := range []string{
		"popscope CA certificate: " + certPath + " (created now)",
		filepath.Join(tmp, certs.KeyFile),
		"SHA-256",
		"--cacert " + quoted + " pop3://",
		"--cacert " + quoted + " pop3s://",
		"ssl.create_default_context(cafile=" + strconv.Quote(certPath) + ")",
		"poplib.POP3_SSL(", ".stls(context=ctx)",
		"--sslcertck --sslcertfile " + quoted,
		"--tls-trust-file=" + quoted,
		"--tls-cert",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(certPath); err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		fi, err := os.Stat(filepath.Join(tmp, certs.KeyFile))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("key file: %v %v", fi.Mode(), err)
		}
	}

	// Second run: the same CA, loaded.
	code, out2, errs := runCmd(t, "ca", "--dir", tmp)
	if code != 0 || !strings.Contains(out2, certPath+" (existing)") {
		t.Fatalf("second run: exit %d %s\n%s", code, errs, out2)
	}
	fp := func(s string) string {
		i := strings.Index(s, "SHA-256")
		return strings.Fields(s[i:])[1]
	}
	if fp(out) != fp(out2) {
		t.Errorf("fingerprint changed: %s vs %s", fp(out), fp(out2))
	}

	// --pem: the certificate alone, as in the file.
	code, pemOut, errs := runCmd(t, "ca", "--dir", tmp, "--pem")
	if code != 0 {
		t.Fatalf("--pem: exit %d %s", code, errs)
	}
	onDisk, _ := os.ReadFile(certPath)
	if pemOut != string(onDisk) {
		t.Errorf("--pem output differs from %s", certPath)
	}
	block, rest := pem.Decode([]byte(pemOut))
	if block == nil || block.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
		t.Fatalf("--pem output is not one PEM certificate:\n%s", pemOut)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil || !c.IsCA || !strings.HasPrefix(c.Subject.CommonName, "popscope local CA ") {
		t.Errorf("--pem certificate: %v %+v", err, c.Subject)
	}
}

func TestCACommandDefaultDirFromEnv(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(certs.EnvDir, dir)
	code, out, errs := runCmd(t, "ca")
	if code != 0 || !strings.Contains(out, filepath.Join(dir, certs.CertFile)) {
		t.Fatalf("exit %d %s\n%s", code, errs, out)
	}
}

func TestCACommandHelp(t *testing.T) {
	t.Setenv(certs.EnvDir, t.TempDir())
	for _, args := range [][]string{{"ca", "--help"}, {"help", "ca"}} {
		code, _, errs := runCmd(t, args...)
		if code != 0 {
			t.Errorf("%v: exit %d", args, code)
		}
		for _, want := range []string{"usage: popscope ca", "-dir", "-pem", "$" + certs.EnvDir, "0600"} {
			if !strings.Contains(errs, want) {
				t.Errorf("%v: help lacks %q:\n%s", args, want, errs)
			}
		}
	}
	code, out, _ := runCmd(t, "help")
	if code != 0 || !strings.Contains(out, "  ca ") {
		t.Errorf("command list lacks ca:\n%s", out)
	}
}

func TestCACommandErrors(t *testing.T) {
	t.Setenv(certs.EnvDir, t.TempDir())
	if code, _, _ := runCmd(t, "ca", "--nope"); code != 2 {
		t.Errorf("unknown flag: exit %d, want 2", code)
	}
	if code, _, errs := runCmd(t, "ca", "extra"); code != 2 || !strings.Contains(errs, `unexpected argument "extra"`) {
		t.Errorf("extra argument: exit %d %s", code, errs)
	}
	if runtime.GOOS == "windows" {
		return
	}
	dir := t.TempDir()
	if code, _, errs := runCmd(t, "ca", "--dir", dir); code != 0 {
		t.Fatalf("exit %d %s", code, errs)
	}
	keyPath := filepath.Join(dir, certs.KeyFile)
	if err := os.Chmod(keyPath, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCmd(t, "ca", "--dir", dir)
	if code != 1 || out != "" || !strings.Contains(errs, "popscope ca: ") || !strings.Contains(errs, "chmod 600 "+keyPath) {
		t.Errorf("world-readable key: exit %d stdout %q stderr %q", code, out, errs)
	}
}
