package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"ottr.im/ottr/internal/testtool"
)

// This file has what the interop tests (interop*_test.go) share: the
// third-party clients' requirements, the accounts they log in with, and
// the runners of their scripts (testdata/interop, testdata/xmppjs).

// python is Debian's interpreter, which has python3-slixmpp and
// python3-pyotp; a python3 earlier on PATH may not.
const python = "/usr/bin/python3"

// interopTimeout bounds one run of a client's script.
const interopTimeout = 90 * time.Second

// requireSlixmpp ends the test (testtool.Missing) when python lacks the
// interop packages.
func requireSlixmpp(t *testing.T) {
	t.Helper()
	requirePython(t, "slixmpp, pyotp", "python3-slixmpp python3-pyotp")
}

// requirePython ends the test (testtool.Missing) when python cannot
// import modules, naming the Debian packages that have them.
func requirePython(t *testing.T, modules, packages string) {
	t.Helper()
	if err := exec.Command(python, "-c", "import "+modules).Run(); err != nil {
		testtool.Missing(t, fmt.Sprintf("python modules %s (apt-get install %s): %v", modules, packages, err))
	}
}

// writeInteropConfig serves localhost with the public example seed and
// secret of mod_auth_token's README.
func writeInteropConfig(t *testing.T, listen string) string {
	t.Helper()
	return writeConfigFile(t, func(dataDir string) string { return serveTOML(dataDir, listen, "localhost") })
}

// startServeHTTP starts ottr for localhost with an [http] listener
// (WebSocket, BOSH) beside c2s, after creating the password accounts
// users; it returns the server, its config file and the c2s and [http]
// addresses once both listen.
func startServeHTTP(t *testing.T, users ...string) (p *serveProc, cfg, c2sAddr, httpAddr string) {
	t.Helper()
	return startServeHTTPWith(t, "", users...)
}

// startServeHTTPWith is startServeHTTP with more TOML at the end of the
// config file.
func startServeHTTPWith(t *testing.T, extra string, users ...string) (p *serveProc, cfg, c2sAddr, httpAddr string) {
	t.Helper()
	c2sAddr, httpAddr = freeAddr(t), freeAddr(t)
	for httpAddr == c2sAddr {
		httpAddr = freeAddr(t)
	}
	cfg = writeConfigFile(t, func(dataDir string) string {
		return serveTOML(dataDir, c2sAddr, "localhost") + fmt.Sprintf("[http]\nlisten = [%q]\n", httpAddr) + extra
	})
	addPasswordUsers(t, cfg, users...)
	p = startServe(t, cfg, c2sAddr)
	waitListening(t, p, httpAddr)
	return p, cfg, c2sAddr, httpAddr
}

// password is the password addPasswordUsers gives user.
func password(user string) string { return user + "'s password" }

// addPasswordUsers creates each user@localhost with its password and
// returns the script arguments for them.
func addPasswordUsers(t *testing.T, cfg string, users ...string) []string {
	t.Helper()
	var args []string
	for _, u := range users {
		pw := password(u)
		runOttr(t, "", pw+"\n", "user", "add", "-c", cfg, u+"@localhost").check(t, 0, nil, nil)
		args = append(args, "--"+u+"-password", pw)
	}
	return args
}

// stopServe stops the server with SIGINT and reports a non-zero exit.
func stopServe(t *testing.T, p *serveProc) {
	t.Helper()
	if code := p.stop(t, os.Interrupt); code != 0 {
		t.Errorf("exit code %d\nserver stderr:\n%s", code, p.stderr.String())
	}
}

// failLines picks the script's "FAIL: ..." lines out of its stderr, where
// they follow the client's debug log.
func failLines(stderr string) string {
	var fails []string
	for _, line := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(line, "FAIL:") {
			fails = append(fails, line)
		}
	}
	if len(fails) == 0 {
		return "(no FAIL line on stderr)"
	}
	return strings.Join(fails, "\n")
}

// interopScript is the path of testdata/interop/<script>.
func interopScript(script string) string {
	return filepath.Join("..", "..", "testdata", "interop", script)
}

// runSlixmpp runs testdata/interop/<script> (a slixmpp client) with args
// for at most interopTimeout and returns its combined output, failing the
// test, with the server's stderr, on a non-zero exit.
func runSlixmpp(t *testing.T, p *serveProc, script string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), interopTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, python, append([]string{interopScript(script)}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s\nserver stderr:\n%s", script, args, err, out, p.stderr.String())
	}
	return string(out)
}

// runSlixmppScript starts ottr with the password accounts users, runs
// testdata/interop/<script> against it with runSlixmppOn, with the
// arguments args returns for ottr's c2s address (args may be nil) and
// --<user>-password for each user, and stops ottr.
func runSlixmppScript(t *testing.T, script string, users []string, args func(c2sAddr string) []string) {
	t.Helper()
	requireSlixmpp(t)
	addr := freeAddr(t)
	cfg := writeInteropConfig(t, addr)
	passwords := addPasswordUsers(t, cfg, users...)
	p := startServe(t, cfg, addr)
	var argv []string
	if args != nil {
		argv = args(addr)
	}
	runSlixmppOn(t, p, addr, nil, script, append(argv, passwords...)...)
	stopServe(t, p)
}

// runSlixmppOn runs testdata/interop/<script>, a slixmpp client that
// prints its steps, with args (and env added to this process's
// environment) against the server p, whose c2s listens at addr, for
// localhost, with -v (slixmpp's debug log, every stanza, shown only on
// failure) and --timeout 60, as runClientScript does. The script's name
// in messages is followed by args[0] when that is not an option (a
// scenario). It returns the script's stdout.
func runSlixmppOn(t *testing.T, p *serveProc, addr string, env []string, script string, args ...string) string {
	t.Helper()
	_, port, _ := net.SplitHostPort(addr)
	argv := append([]string{interopScript(script)}, args...)
	argv = append(argv, "-v", "--timeout", "60", "--host", "127.0.0.1", "--port", port, "--domain", "localhost")
	name := script
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name += " " + args[0]
	}
	return runClientScript(t, p, name, "slixmpp debug log (stderr)", env, python, argv...)
}

// runXmppjs runs the script of testdata/xmppjs with node (and nodeArgs)
// and args against the server p, as runClientScript does.
func runXmppjs(t *testing.T, p *serveProc, node string, nodeArgs []string, script string, args ...string) string {
	t.Helper()
	argv := append(append(slices.Clone(nodeArgs), filepath.Join(xmppjsDir, script)), args...)
	return runClientScript(t, p, script, "stderr (every element in and out)", nil, node, argv...)
}

// runClientScript runs a third-party client's script, bin with argv (and
// env added to this process's environment), for at most interopTimeout
// against the server p: it fails the test, with the script's FAIL lines,
// its stdout, its stderr (stderrWhat says what is there) and the server's
// stderr, unless the script exits 0 having printed "all steps OK"; it logs
// the script's steps under name and returns its stdout.
func runClientScript(t *testing.T, p *serveProc, name, stderrWhat string, env []string, bin string, argv ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), interopTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, argv...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s\nstdout:\n%s\n%s:\n%s\nserver stderr:\n%s",
			name, err, failLines(stderr.String()), stdout.String(), stderrWhat, stderr.String(), p.stderr.String())
	}
	if !strings.Contains(stdout.String(), "all steps OK") {
		t.Fatalf("%s exited 0 without \"all steps OK\":\n%s", name, stdout.String())
	}
	t.Logf("%s:\n%s", name, strings.TrimRight(stdout.String(), "\n"))
	return stdout.String()
}
