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

// TestInteropSlixmppSOCKS5 has two slixmpp clients send a file through
// ottr's SOCKS5 bytestreams proxy with slixmpp's XEP-0065 plugin
// (testdata/interop/slixmpp_socks5.py): alice discovers the proxy through
// the server's disco#items, opens a bytestream to bob (bob connects to the
// proxy, then alice, who activates it), sends 2 MiB and closes; bob gets
// every byte, then the end; bob's activation of a stream in alice's name
// is refused.
func TestInteropSlixmppSOCKS5(t *testing.T) {
	requireSlixmpp(t)
	addr, proxyAddr := freeAddr(t), freeAddr(t)
	cfg := writeConfigFile(t, func(dataDir string) string {
		return serveTOML(dataDir, addr, "localhost") + "[proxy65]\nlisten = \"" + proxyAddr + "\"\n"
	})
	users := addPasswordUsers(t, cfg, "alice", "bob")
	p := startServe(t, cfg, addr)
	_, port, _ := net.SplitHostPort(addr)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	script := filepath.Join("..", "..", "testdata", "interop", "slixmpp_socks5.py")
	argv := append([]string{script, "-v", "--timeout", "60", "--bytes", "2097152",
		"--host", "127.0.0.1", "--port", port, "--domain", "localhost"}, users...)
	cmd := exec.CommandContext(ctx, python, argv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("slixmpp_socks5.py: %v\n%s\nstdout:\n%s\nslixmpp debug log (stderr):\n%s\nserver stderr:\n%s",
			err, failLines(stderr.String()), stdout.String(), stderr.String(), p.stderr.String())
	}
	out := stdout.String()
	if !strings.Contains(out, "all steps OK") || !strings.Contains(out, "found the proxy proxy.localhost at "+proxyAddr[:strings.LastIndex(proxyAddr, ":")]) {
		t.Fatalf("slixmpp_socks5.py exited 0 without finding proxy.localhost and \"all steps OK\":\n%s", out)
	}
	t.Logf("%s", strings.TrimRight(out, "\n"))
	stopServe(t, p)
}
