package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestInteropXmppjsFAST logs in with @xmpp/client 0.14 in Node over ottr's
// WebSocket endpoint with SASL2 (XEP-0388) and Bind2 (XEP-0386): first
// with an app token (X-TOKEN, a mechanism the script registers), asking
// for a FAST token (XEP-0484); then, as a new client with the same
// user-agent id and no app token, with the FAST token only (its own
// HT-SHA-256-NONE), which the server rotates; then with the rotated one.
// The script is testdata/xmppjs/fast.js.
func TestInteropXmppjsFAST(t *testing.T) {
	node, nodeArgs := requireXmppjs(t)
	c2sAddr, httpAddr := freeAddr(t), freeAddr(t)
	for httpAddr == c2sAddr {
		httpAddr = freeAddr(t)
	}
	cfg := writeConfigFile(t, func(dataDir string) string {
		return serveTOML(dataDir, c2sAddr, "localhost") + fmt.Sprintf("[http]\nlisten = [%q]\n", httpAddr)
	})
	p := startServe(t, cfg, c2sAddr)
	waitListening(t, p, httpAddr)

	runXmppjs(t, p, node, nodeArgs, "fast.js",
		"--service", "ws://"+httpAddr+"/xmpp-websocket",
		"--domain", "localhost",
		"--username", "alice", "--token", mintWithCLI(t, cfg, "alice@localhost"),
		"--timeout", "60")
	// The server saw FAST logins, and one X-TOKEN login only.
	logs := p.stderr.String()
	if n := strings.Count(logs, "mechanism=X-TOKEN user=alice@localhost"); n != 1 {
		t.Errorf("the server logged %d X-TOKEN logins of alice, want 1", n)
	}
	if n := strings.Count(logs, "mechanism=HT-SHA-256-NONE user=alice@localhost"); n != 2 {
		t.Errorf("the server logged %d FAST logins of alice, want 2", n)
	}
	stopServe(t, p)
}

// runXmppjs runs the script of testdata/xmppjs with node (and nodeArgs)
// and args, for at most 90 s, against the server p: it fails the test,
// with what the script and the server printed, unless the script exits 0
// having printed "all steps OK"; it logs the script's steps and returns
// its output.
func runXmppjs(t *testing.T, p *serveProc, node string, nodeArgs []string, script string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	argv := append(append(slices.Clone(nodeArgs), filepath.Join(xmppjsDir, script)), args...)
	cmd := exec.CommandContext(ctx, node, argv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\nstdout:\n%s\nstderr (every element in and out):\n%s\nserver stderr:\n%s",
			script, err, stdout.String(), stderr.String(), p.stderr.String())
	}
	if !strings.Contains(stdout.String(), "all steps OK") {
		t.Fatalf("%s exited 0 without \"all steps OK\":\n%s", script, stdout.String())
	}
	t.Logf("%s:\n%s", script, strings.TrimRight(stdout.String(), "\n"))
	return stdout.String()
}
