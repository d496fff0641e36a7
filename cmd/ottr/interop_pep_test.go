package main

import (
	"bytes"
	"context"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestInteropSlixmppPEP has slixmpp's PEP and avatar plugins (xep_0163,
// xep_0084, xep_0118, with xep_0115 capabilities) run against the built
// ottr (testdata/interop/slixmpp_pep.py): alice publishes an avatar and a
// tune, bob (subscribed, with +notify in his capabilities) receives both
// events and retrieves the avatar data and the tune item, alice's
// disco#info has pubsub/pep, and a second resource of bob gets alice's
// last avatar metadata with a delay stamp when it comes online.
func TestInteropSlixmppPEP(t *testing.T) {
	runSlixmppScript(t, "slixmpp_pep.py", "alice", "bob")
}

// runSlixmppScript starts ottr with the password accounts users, runs
// testdata/interop/<script> against it (with -v, --timeout 60, ottr's
// c2s address and --<user>-password for each user) and stops ottr. The
// test fails unless the script printed "all steps OK" and exited 0;
// slixmpp's debug log (every stanza) is shown only on failure.
func runSlixmppScript(t *testing.T, script string, users ...string) {
	t.Helper()
	requireSlixmpp(t)
	addr := freeAddr(t)
	cfg := writeInteropConfig(t, addr)
	passwords := addPasswordUsers(t, cfg, users...)
	p := startServe(t, cfg, addr)
	_, port, _ := net.SplitHostPort(addr)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	argv := append([]string{filepath.Join("..", "..", "testdata", "interop", script), "-v", "--timeout", "60",
		"--host", "127.0.0.1", "--port", port, "--domain", "localhost"}, passwords...)
	cmd := exec.CommandContext(ctx, python, argv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s\nstdout:\n%s\nslixmpp debug log (stderr):\n%s\nserver stderr:\n%s",
			script, err, failLines(stderr.String()), stdout.String(), stderr.String(), p.stderr.String())
	}
	if !strings.Contains(stdout.String(), "all steps OK") {
		t.Fatalf("%s exited 0 without \"all steps OK\":\n%s", script, stdout.String())
	}
	t.Logf("%s:\n%s", script, strings.TrimRight(stdout.String(), "\n"))
	stopServe(t, p)
}
