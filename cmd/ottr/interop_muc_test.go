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

// TestInteropSlixmppMUC has slixmpp's own multi-user chat plugin
// (xep_0045) drive ottr's group chat service (testdata/interop/
// slixmpp_muc.py): alice finds conference.localhost in the server's
// disco#items, creates a room (110 and 201, owner and moderator) and
// submits its configuration form; bob joins; both talk and get both
// messages from the occupant JIDs; alice kicks bob (307 to both); bob
// comes back with the two messages as history and leaves; carol's message
// is retracted by alice (xep_0425, XEP-0425 as slixmpp 1.8 speaks it) and
// carol is told.
func TestInteropSlixmppMUC(t *testing.T) {
	requireSlixmpp(t)
	addr := freeAddr(t)
	cfg := writeInteropConfig(t, addr)
	users := addPasswordUsers(t, cfg, "alice", "bob", "carol")
	p := startServe(t, cfg, addr)
	_, port, _ := net.SplitHostPort(addr)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	script := filepath.Join("..", "..", "testdata", "interop", "slixmpp_muc.py")
	argv := append([]string{script, "-v", "--timeout", "60",
		"--host", "127.0.0.1", "--port", port, "--domain", "localhost"}, users...)
	cmd := exec.CommandContext(ctx, python, argv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("slixmpp_muc.py: %v\n%s\nstdout:\n%s\nslixmpp debug log (stderr):\n%s\nserver stderr:\n%s",
			err, failLines(stderr.String()), stdout.String(), stderr.String(), p.stderr.String())
	}
	if !strings.Contains(stdout.String(), "all steps OK") {
		t.Fatalf("slixmpp_muc.py exited 0 without \"all steps OK\":\n%s", stdout.String())
	}
	t.Logf("slixmpp_muc.py:\n%s", strings.TrimRight(stdout.String(), "\n"))
	stopServe(t, p)
}
