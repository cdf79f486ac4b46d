package main

import (
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/popscope/popscope/internal/certs"
)

func init() {
	register(&command{name: "ca", summary: "create or show the local CA behind TLS interception, and how to trust it", run: runCA})
}

func runCA(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ca", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "keep the CA in `DIR` (default $"+certs.EnvDir+", else the user config dir + /popscope)")
	pemOnly := fs.Bool("pem", false, "print only the CA certificate, in PEM form, on stdout")
	fs.Usage = func() {
		def, err := certs.DefaultDir()
		if err != nil {
			def = "(none: " + err.Error() + ")"
		}
		fmt.Fprint(stderr, joinLines(
			"usage: popscope ca [--dir DIR] [--pem]",
			"",
			"Creates on first use, or loads, the certificate authority that signs the",
			"certificates popscope presents to clients when it terminates TLS (implicit",
			"TLS or STLS), then prints where the CA certificate is and how to make POP3",
			"clients (curl, Python poplib, fetchmail, mpop) trust it.",
			"",
			"The CA is "+certs.CertFile+" (mode 0644) and "+certs.KeyFile+" (mode 0600) in",
			"DIR (mode 0700). A key file readable by group or others is refused. Default",
			"DIR here: "+def,
			"",
			"Exit status: 0 ok, 1 the CA cannot be created or loaded, 2 bad usage.",
			"",
			"flags:"))
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "popscope ca: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	ca, err := certs.LoadOrCreate(*dir)
	if err != nil {
		fmt.Fprintf(stderr, "popscope ca: %v\n", err)
		return 1
	}
	if *pemOnly {
		if _, err := stdout.Write(ca.CertPEM()); err != nil {
			fmt.Fprintf(stderr, "popscope ca: %v\n", err)
			return 1
		}
		return 0
	}
	printCA(stdout, ca)
	return 0
}

// printCA describes the CA and how to trust it in the usual POP3 clients.
func printCA(w io.Writer, ca *certs.Authority) {
	c := ca.Certificate()
	state := "existing"
	if ca.Created() {
		state = "created now"
	}
	path := ca.CertPath()
	sh := shellQuote(path)
	sum := sha256.Sum256(c.Raw)
	fp := make([]string, len(sum))
	for i, b := range sum {
		fp[i] = fmt.Sprintf("%02X", b)
	}
	fmt.Fprint(w, joinLines(
		"popscope CA certificate: "+path+" ("+state+")",
		"  subject      "+c.Subject.String(),
		"  valid until  "+c.NotAfter.UTC().Format(time.DateOnly),
		"  SHA-256      "+strings.Join(fp, ":"),
		"  private key  "+ca.KeyPath()+" (stays on this machine; whoever has it can",
		"               impersonate any server to clients that trust this CA)",
		"",
		"When popscope proxy terminates TLS, it presents a certificate signed by this CA",
		"for the name the client asked for (SNI), or for \"localhost\" and the proxy's IP",
		"address when the client connects by IP. Trust the CA in the clients you test,",
		"not system-wide. HOST:PORT below is where popscope proxy listens.",
		"",
		"  curl (STLS, then implicit TLS):",
		"    curl --ssl-reqd --cacert "+sh+" pop3://HOST:PORT/",
		"    curl --cacert "+sh+" pop3s://HOST:PORT/",
		"  Python poplib:",
		"    ctx = ssl.create_default_context(cafile="+strconv.Quote(path)+")",
		"    poplib.POP3(HOST, PORT).stls(context=ctx)   # STLS",
		"    poplib.POP3_SSL(HOST, PORT, context=ctx)    # implicit TLS",
		"  fetchmail (STLS, then implicit TLS):",
		"    fetchmail --sslproto tls1.2+ --sslcertck --sslcertfile "+sh+" ...",
		"    fetchmail --ssl --sslcertck --sslcertfile "+sh+" ...",
		"  mpop (STLS, then implicit TLS):",
		"    mpop --tls=on --tls-trust-file="+sh+" ...",
		"    mpop --tls=on --tls-starttls=off --tls-trust-file="+sh+" ...",
		"",
		"popscope ca --pem prints the certificate alone. To use a certificate of your own",
		"instead, give popscope proxy --tls-cert FILE --tls-key FILE. To start over with a",
		"new CA, delete both files; clients must then trust the new certificate.",
	))
}

// shellQuote returns s as one POSIX shell word.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:@%+=,-") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
