package main

import (
	"strings"
	"testing"
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
	out := runSlixmppOn(t, p, addr, nil, "slixmpp_socks5.py", append([]string{"--bytes", "2097152"}, users...)...)
	if !strings.Contains(out, "found the proxy proxy.localhost at "+proxyAddr[:strings.LastIndex(proxyAddr, ":")]) {
		t.Fatalf("slixmpp_socks5.py did not find proxy.localhost at %s:\n%s", proxyAddr, out)
	}
	stopServe(t, p)
}
