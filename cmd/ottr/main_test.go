package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"ottr.im/ottr/internal/testfixture"
)

// ottrBin is the ottr binary built once by TestMain; the tests run it as a
// user would.
var ottrBin string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

// buildAndRun builds the binary into a temporary directory, runs the tests
// and removes the directory.
func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "ottr-cli-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ottrBin = filepath.Join(dir, "ottr")
	out, err := exec.Command("go", "build", "-o", ottrBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// result is what one run of the binary gave.
type result struct {
	stdout, stderr string
	code           int
}

// runOttr runs the binary with args in dir (the test's working directory
// when empty), stdin as its standard input (none when empty), and returns
// its output and exit code.
func runOttr(t *testing.T, dir, stdin string, args ...string) result {
	t.Helper()
	r, err := execOttr(dir, stdin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// execOttr is runOttr for any goroutine: it returns an error when the
// binary could not be run at all.
func execOttr(dir, stdin string, args ...string) (result, error) {
	cmd := exec.Command(ottrBin, args...)
	cmd.Dir = dir
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	code := 0
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		return result{}, fmt.Errorf("running ottr %s: %w", strings.Join(args, " "), err)
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}, nil
}

// check reports a failure unless r exited with code and its stdout and
// stderr contain the given substrings.
func (r result) check(t *testing.T, code int, stdout, stderr []string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
	for _, s := range stdout {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("stdout lacks %q:\n%s", s, r.stdout)
		}
	}
	for _, s := range stderr {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr lacks %q:\n%s", s, r.stderr)
		}
	}
}

// writeConfig writes a configuration into a fresh temporary directory,
// with its data_dir there too, and returns the file's path. It serves
// example.com (default token settings), Chat.Example.org (10 digits, 60 s,
// deviation 2) and nosecret.example (no seed); listen is its c2s.listen
// address.
func writeConfig(t *testing.T, listen string) string {
	t.Helper()
	return writeConfigFile(t, func(dataDir string) string {
		return serveTOML(dataDir, listen, "example.com") + fmt.Sprintf(`
[[host]]
name = "Chat.Example.org"
otp_seed = %q
token_secret = %q
[host.token]
otp_digits = 10
otp_interval = "60s"
otp_deviation = 2

[[host]]
name = "nosecret.example"
`, testfixture.OtherSeed, testfixture.OtherSecret)
	})
}

// serveTOML is a configuration with its data_dir, debug logs, c2s on
// listen, and one host with the fixture's seed and secret.
func serveTOML(dataDir, listen, host string) string {
	return fmt.Sprintf(`data_dir = %q
[log]
level = "debug"
[c2s]
listen = [%q]
[[host]]
name = %q
otp_seed = %q
token_secret = %q
`, dataDir, listen, host, testfixture.Seed, testfixture.Secret)
}

// writeConfigFile writes the config that text returns for a data_dir in
// the test's temporary directory, and returns the file's path.
func writeConfigFile(t *testing.T, text func(dataDir string) string) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "ottr.toml")
	if err := os.WriteFile(path, []byte(text(filepath.Join(dir, "data"))), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestUsage(t *testing.T) {
	commands := []string{"serve", "token", "secrets", "user", "check-config", "version", "help"}
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string
		stderr []string
	}{
		{"no command", nil, 2, nil, append([]string{"no command given", "usage:"}, commands...)},
		{"unknown command", []string{"frobnicate"}, 2, nil, append([]string{`unknown command "frobnicate"`, "usage:"}, commands...)},
		{"help", []string{"help"}, 0, commands, nil},
		{"-h", []string{"-h"}, 0, commands, nil},
		{"version", []string{"version"}, 0, []string{"ottr ", "go1."}, nil},
		{"bad flag", []string{"token", "-x", "a@example.com"}, 2, nil, []string{"-x", "usage: ottr token"}},
		{"subcommand help", []string{"token", "-h"}, 0, []string{"usage: ottr token", "-nonce"}, nil},
		{"unknown user command", []string{"user", "frob"}, 2, nil, []string{`"frob"`, "ottr user add"}},
		{"user without command", []string{"user"}, 2, nil, []string{"ottr user list"}},
		{"secrets with an argument", []string{"secrets", "x"}, 2, nil, []string{"unexpected arguments: x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runOttr(t, t.TempDir(), "", tt.args...).check(t, tt.code, tt.stdout, tt.stderr)
		})
	}
}
