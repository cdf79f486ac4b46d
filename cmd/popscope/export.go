package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/popscope/popscope/exporters/pcap"
	"github.com/popscope/popscope/exporters/record"
)

func init() {
	register(&command{name: "export", summary: "convert a recording: 'pcap' writes a pcapng capture for Wireshark/tshark", run: runExport})
}

func runExport(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "pcap" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprintln(stdout, "usage: popscope export pcap RECORDING -o OUT.pcapng [--port N] [--mss N]")
			return 0
		}
		fmt.Fprintln(stderr, "usage: popscope export pcap RECORDING -o OUT.pcapng [--port N] [--mss N]")
		return 2
	}
	fs := flag.NewFlagSet("export pcap", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "", "write the capture to `FILE` (\"-\" = stdout; required)")
	port := fs.Int("port", pcap.DefaultPort, "server TCP `PORT` in the synthetic headers (110 is dissected as POP without -d)")
	mss := fs.Int("mss", pcap.DefaultMSS, "largest TCP payload per segment in `BYTES`")
	fs.Usage = func() {
		fmt.Fprint(stderr, joinLines(
			"usage: popscope export pcap RECORDING -o OUT.pcapng [flags]",
			"",
			"Writes the recorded session as a pcapng capture: synthetic Ethernet/IPv4/TCP framing",
			"of both directions at the recorded times (handshake, MSS-sized segments with correct",
			"sequence and acknowledgement numbers, FIN), so that Wireshark and tshark dissect it:",
			"",
			"  tshark -r OUT.pcapng -T fields -e pop.request.command",
			"  tshark -r OUT.pcapng -d tcp.port==N,pop ...     (with --port N other than 110)",
			"",
			"A session whose TLS popscope terminated is exported as its decrypted POP3. Bytes the",
			"recorder lost show as a sequence gap (\"previous segment not captured\").",
			"",
			"flags:"))
		fs.PrintDefaults()
	}
	file, err := parseInterleaved(fs, args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "popscope export pcap: %v\n", err)
		return 2
	}
	if *out == "" {
		fmt.Fprintln(stderr, "popscope export pcap: -o FILE is required")
		return 2
	}
	rec, err := record.ReadFile(file)
	if err != nil {
		fmt.Fprintf(stderr, "popscope export pcap: %v\n", err)
		return 2
	}
	var w io.Writer = stdout
	var f *os.File
	if *out != "-" {
		if f, err = os.OpenFile(*out, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600); err != nil {
			fmt.Fprintf(stderr, "popscope export pcap: %v\n", err)
			return 1
		}
		w = f
	}
	st, err := pcap.Write(w, rec, pcap.Options{Port: *port, MSS: *mss, Version: version})
	if f != nil {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "popscope export pcap: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "popscope export pcap: %d packets (%d data segments, %d bytes), %s → %s", st.Packets, st.Segments, st.Bytes, st.Client, st.Server)
	if st.Gaps > 0 {
		fmt.Fprintf(stderr, "; %d gaps", st.Gaps)
	}
	if rec.Torn != nil || !rec.Complete {
		fmt.Fprint(stderr, "; the recording is incomplete (no FIN)")
	}
	fmt.Fprintln(stderr)
	if *port != 110 {
		fmt.Fprintf(stderr, "popscope export pcap: read it with: tshark -r %s -d tcp.port==%d,pop\n", *out, *port)
	}
	return 0
}
