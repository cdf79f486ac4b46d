// Command popscope is an observable POP3 debugging proxy.
//
//	popscope demo                      built-in server behind the proxy
//	popscope proxy --listen A --upstream H:P
//	popscope help [command]
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// command is one subcommand; run gets the arguments after the name and
// returns the process exit code.
type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

var commands = map[string]*command{}

func register(c *command) { commands[c.name] = c }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	name := args[0]
	switch name {
	case "-h", "--help", "help":
		if len(args) > 1 {
			if c := commands[args[1]]; c != nil {
				return c.run([]string{"--help"}, stdout, stderr)
			}
		}
		usage(stdout)
		return 0
	case "version", "--version":
		fmt.Fprintln(stdout, "popscope", version)
		return 0
	}
	c := commands[name]
	if c == nil {
		fmt.Fprintf(stderr, "popscope: unknown command %q\n\n", name)
		usage(stderr)
		return 2
	}
	return c.run(args[1:], stdout, stderr)
}

const version = "0.1.0-dev"

func usage(w io.Writer) {
	fmt.Fprintln(w, "popscope: an observable POP3 debugging proxy")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "usage: popscope <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "  version  print the version")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'popscope <command> --help' for its flags.")
}

// parseFlags parses a subcommand's flags; ok is false when the command
// must stop with code: 0 after --help, 2 on a bad flag (the flag package
// has printed the reason and the usage).
func parseFlags(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	return 0, true
}

// joinLines is a small helper for multi-line help texts.
func joinLines(lines ...string) string { return strings.Join(lines, "\n") + "\n" }
