package main

import (
	"strings"
	"testing"
)

// TestInteropXmppjsFAST logs in with @xmpp/client 0.14 in Node over ottr's
// WebSocket endpoint with SASL2 (XEP-0388) and Bind2 (XEP-0386): first
// with an app token (X-TOKEN, a mechanism the script registers), asking
// for a FAST token (XEP-0484); then, as a new client with the same
// user-agent id and no app token, with the FAST token only (its own
// HT-SHA-256-NONE), which the server rotates (fast_token_rotation = 0s:
// at every use); then with the rotated one. The script is
// testdata/xmppjs/fast.js.
func TestInteropXmppjsFAST(t *testing.T) {
	node, nodeArgs := requireXmppjs(t)
	p, cfg, _, httpAddr := startServeHTTPWith(t, "[limits]\nfast_token_rotation = \"0s\"\n")

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
