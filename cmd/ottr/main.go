// Command ottr runs the ottr XMPP server and manages what it serves: login
// tokens, token secrets, password accounts and the configuration file.
//
// Usage:
//
//	ottr serve [-c FILE]                           run the server
//	ottr token [-c FILE] [-nonce DIGITS] user@host print an X-TOKEN login token valid now
//	ottr secrets                                   print a fresh otp_seed and token_secret
//	ottr secrets -rotate HOST -c FILE [-keep D]    print HOST's lines for a secret rotation
//	ottr user add|passwd|del [-c FILE] user@host   manage password accounts
//	ottr user list [-c FILE] [host]                list accounts
//	ottr user kick [-c FILE] user@host             end the user's sessions, revoke its FAST tokens
//	ottr ctl [-c FILE] sessions|kick JID|stats|reload  talk to the running server
//	ottr check-config -c FILE                      check a configuration file
//	ottr version                                   print the version
//
// Without -c, serve, token and user use the built-in defaults: data in
// ./ottr-data and one host, "localhost", whose token secrets are generated
// once into ./ottr-data/token-secrets.toml.
//
// The exit code is 0 on success, 1 when the command failed and 2 when it
// was called wrongly.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
)

// env is where a subcommand reads and writes: the process's standard
// streams.
type env struct {
	stdin  *os.File
	stdout io.Writer
	stderr io.Writer
}

// command is one subcommand.
type command struct {
	name     string
	synopsis string // what follows "ottr NAME" in the usage text
	summary  string
	run      func(ctx context.Context, e *env, args []string) error
}

// commands returns the subcommands in the order the usage text lists them.
func commands() []command {
	return []command{
		{"serve", "[-c FILE]", "run the server until SIGINT or SIGTERM", runServe},
		{"token", "[-c FILE] [-nonce DIGITS] user@host", "print an X-TOKEN login token valid now", runToken},
		{"secrets", secretsSynopsis, "print a fresh otp_seed and token_secret, TOML-ready, or the lines of a rotation", runSecretsCmd},
		{"user", userSynopsis, "manage password accounts", runUser},
		{"ctl", ctlSynopsis, "talk to the running server: list or kick sessions, stats, reload", runCtl},
		{"check-config", "-c FILE", "check a configuration file, print the values in force", runCheckConfig},
		{"version", "", "print the version", runVersion},
		{"help", "", "print this text", nil},
	}
}

func main() {
	e := &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}
	os.Exit(run(context.Background(), e, os.Args[1:]))
}

// run runs the subcommand named by args[0] with the rest of args and
// returns the exit code: 0 on success (and for -h), 1 when the command
// failed, 2 when it was called wrongly. Messages go to e.stderr, prefixed
// with the command.
func run(ctx context.Context, e *env, args []string) int {
	if len(args) == 0 {
		return fail(e, "ottr", &usageError{msg: "no command given", usage: mainUsage()})
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(e.stdout, mainUsage())
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] && c.run != nil {
			return fail(e, "ottr "+c.name, c.run(ctx, e, args[1:]))
		}
	}
	return fail(e, "ottr", &usageError{msg: fmt.Sprintf("unknown command %q", args[0]), usage: mainUsage()})
}

// fail prints err, if any, prefixed with who, and returns the exit code for
// it.
func fail(e *env, who string, err error) int {
	var uerr *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &uerr):
		fmt.Fprintf(e.stderr, "%s: %s\n\n%s", who, uerr.msg, uerr.usage)
		return 2
	default:
		fmt.Fprintf(e.stderr, "%s: %v\n", who, err)
		return 1
	}
}

// mainUsage returns the usage text listing every subcommand.
func mainUsage() string {
	var b strings.Builder
	b.WriteString("usage: ottr COMMAND [FLAGS] [ARGS]\n\ncommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-13s %s\n", c.name, c.summary)
	}
	b.WriteString("\n")
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %s\n", strings.TrimSpace("ottr "+c.name+" "+c.synopsis))
	}
	b.WriteString(`
Without -c, serve, token and user use the built-in defaults: data in
./ottr-data and one host, "localhost", whose token secrets are generated
once into ./ottr-data/token-secrets.toml.
Run "ottr COMMAND -h" for the flags of a command.
`)
	return b.String()
}

// usageError reports a command called wrongly: the message and the usage
// text of the command are printed and ottr exits with code 2.
type usageError struct {
	msg   string
	usage string
}

func (e *usageError) Error() string { return e.msg }

// flagSet is the flag set of one subcommand, with its usage line.
type flagSet struct {
	*flag.FlagSet
	synopsis string
}

// newFlagSet returns an empty flag set for "ottr name synopsis". It prints
// nothing itself: parse and usageErr report problems.
func newFlagSet(name, synopsis string) *flagSet {
	fs := flag.NewFlagSet("ottr "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return &flagSet{FlagSet: fs, synopsis: synopsis}
}

// configFlag defines -c FILE (and its long form -config) and returns where
// its value goes.
func (f *flagSet) configFlag() *string {
	path := new(string)
	const help = "read the configuration from `FILE` (default: the built-in defaults)"
	f.StringVar(path, "c", "", help)
	f.StringVar(path, "config", "", "same as -c `FILE`")
	return path
}

// usage returns the usage text of the subcommand: its synopsis and its
// flags.
func (f *flagSet) usage() string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: %s\n", strings.TrimSpace(f.Name()+" "+f.synopsis))
	n := 0
	f.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		b.WriteString("\nflags:\n")
		f.SetOutput(&b)
		f.PrintDefaults()
		f.SetOutput(io.Discard)
	}
	return b.String()
}

// parse parses args. For -h it prints the usage text to e.stdout and
// returns flag.ErrHelp; for a bad flag it returns a usage error.
func (f *flagSet) parse(e *env, args []string) error {
	err := f.Parse(args)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(e.stdout, f.usage())
		return flag.ErrHelp
	default:
		return f.usageErr("%v", err)
	}
}

// usageErr returns a usage error with the usage text of the subcommand.
func (f *flagSet) usageErr(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...), usage: f.usage()}
}

// nArgs checks that exactly n positional arguments are left after the
// flags, naming them in the error.
func (f *flagSet) nArgs(n int, names string) error {
	switch {
	case f.NArg() < n:
		return f.usageErr("missing %s", names)
	case f.NArg() > n:
		return f.usageErr("unexpected arguments: %s", strings.Join(f.Args()[n:], " "))
	}
	return nil
}

// runVersion implements "ottr version": the module version ottr was built
// from ("(devel)" for a build from a checkout), the VCS revision when the
// build recorded it, and the Go version.
func runVersion(_ context.Context, e *env, args []string) error {
	f := newFlagSet("version", "")
	if err := f.parse(e, args); err != nil {
		return err
	}
	if err := f.nArgs(0, ""); err != nil {
		return err
	}
	version := "(unknown)"
	if info, ok := debug.ReadBuildInfo(); ok {
		version = info.Main.Version
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				version += " " + s.Value
			}
		}
	}
	_, err := fmt.Fprintf(e.stdout, "ottr %s %s\n", version, runtime.Version())
	return err
}
