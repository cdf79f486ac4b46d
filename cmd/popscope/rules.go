package main

import (
	"flag"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/popscope/popscope/decode"
	"github.com/popscope/popscope/event"
)

func init() {
	register(&command{name: "rules", summary: "list the POP3 rules catalog, or explain one rule", run: runRules})
}

func runRules(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rules", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sev := fs.String("severity", "", "only rules of this `SEVERITY` (error, warning, info)")
	side := fs.String("by", "", "only rules broken by this `SIDE` (client, server, either)")
	fs.Usage = func() {
		fmt.Fprint(stderr, joinLines(
			"usage: popscope rules [flags] [ID | PATTERN]",
			"",
			"Lists the rules catalog (docs/pop3-rules.md): ID, severity, side, RFC reference",
			"and a one-line explanation. With one exact ID (POP3-DROP-006 or DROP-006) it",
			"explains that rule in full. PATTERN is a glob on IDs, e.g. 'DROP-*' or '*-00[1-3]'.",
			"",
			"flags:"))
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 1 {
		fs.Usage()
		return 2
	}
	pattern := ""
	if fs.NArg() == 1 {
		pattern = strings.ToUpper(fs.Arg(0))
		if !strings.HasPrefix(pattern, "POP3-") {
			pattern = "POP3-" + pattern
		}
		if r := decode.LookupRule(pattern); r != nil {
			explain(stdout, r)
			return 0
		}
		if !strings.ContainsAny(pattern, "*?[") {
			fmt.Fprintf(stderr, "popscope rules: no rule %s (try 'popscope rules' for the list)\n", fs.Arg(0))
			return 1
		}
	}
	n := 0
	for _, r := range decode.Rules() {
		if *sev != "" && string(r.Severity) != *sev {
			continue
		}
		if *side != "" && r.By != *side {
			continue
		}
		if pattern != "" {
			if ok, _ := path.Match(pattern, r.ID); !ok {
				continue
			}
		}
		fmt.Fprintf(stdout, "%-15s %-7s %-6s %-22s %s\n", r.ID, r.Severity, r.By, clip(r.Ref, 22), r.Summary)
		n++
	}
	if n == 0 {
		fmt.Fprintln(stderr, "popscope rules: nothing matches")
		return 1
	}
	return 0
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

func explain(w io.Writer, r *decode.Rule) {
	fmt.Fprintf(w, "%s  (%s, broken by the %s)\n\n", r.ID, r.Severity, r.By)
	fmt.Fprintf(w, "  %s\n\n", r.Summary)
	fmt.Fprintf(w, "Detection:\n  %s\n\n", r.Detection)
	fmt.Fprintf(w, "Example:\n  %s\n\n", r.Example)
	fmt.Fprintf(w, "Reference: RFC %s\nScope: %s\n", r.Ref, scopeText(r.Scope))
	if r.Severity == event.Error {
		fmt.Fprintln(w, "\nAn error-severity violation makes `popscope check` exit 1.")
	}
}

func scopeText(s string) string {
	var parts []string
	for _, c := range strings.Split(s, ",") {
		switch strings.TrimSpace(c) {
		case "L":
			parts = append(parts, "one line or exchange")
		case "S":
			parts = append(parts, "needs session state")
		case "X":
			parts = append(parts, "needs memory across sessions")
		case "T":
			parts = append(parts, "needs timing")
		}
	}
	return strings.Join(parts, "; ")
}
