package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"ottr.im/ottr/auth"
	"ottr.im/ottr/internal/testfixture"
	"ottr.im/ottr/internal/xmpptest"
)

// TestRestartKeepsState stops a running ottr (cleanly, and with SIGKILL)
// and starts it again on the same data directory: rosters, subscriptions
// and offline messages are all still there, and the offline messages
// arrive exactly once.
func TestRestartKeepsState(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			addr := freeAddr(t)
			cfg := writeInteropConfig(t, addr)
			dataDir := filepath.Join(filepath.Dir(cfg), "data")
			p := startServe(t, cfg, addr)
			tlsCfg := dataDirTLS(t, dataDir)
			login := func(user, resource string) *xmpptest.Client {
				t.Helper()
				tok := testfixture.Token(t, user+"@localhost")
				c, err := xmpptest.Login(t, addr, tlsCfg, user, "localhost", resource, auth.XToken, tok)
				if err != nil {
					t.Fatalf("login %s: %v\nserver:\n%s", user, err, p.stderr.String())
				}
				return c
			}

			alice, bob := login("alice", "a").Online(), login("bob", "b").Online()
			xmpptest.SubscribeBoth(t, alice, bob)
			bob.Close()
			alice.PresenceFrom("bob@localhost/b", "unavailable")
			const n = 3
			for i := 0; i < n; i++ {
				alice.Send(fmt.Sprintf(`<message to='bob@localhost' type='chat' id='k%d'><body>kept %d</body></message>`, i, i))
			}
			// A ping round trip: every message before it was handled
			// (stored) by the time the answer comes.
			if r := alice.IQ(`<iq type='get' id='sync' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`, "sync"); r.Type != "result" {
				t.Fatalf("ping: %+v", r)
			}
			alice.Close()

			p.kill(t, sig)

			p = startServe(t, cfg, addr)
			bob = login("bob", "b")
			q := bob.Roster("")
			if len(q.Items) != 1 || q.Items[0].JID != "alice@localhost" || q.Items[0].Subscription != "both" {
				t.Fatalf("bob's roster after restart: %+v", q)
			}
			bob.Send(`<presence/>`)
			for i := 0; i < n; i++ {
				m := bob.NextNamed("message", "chat")
				if m.Body != fmt.Sprintf("kept %d", i) || !strings.Contains(m.Inner, "urn:xmpp:delay") {
					t.Fatalf("offline message %d after restart: %+v", i, m)
				}
			}
			bob.NoneWithin(300*time.Millisecond, func(r xmpptest.Received) bool { return r.Name == "message" })
			bob.Close()
			// Exactly once: a new login finds nothing stored, and alice's
			// subscription survived too.
			bob = login("bob", "b2")
			bob.Online()
			bob.NoneWithin(300*time.Millisecond, func(r xmpptest.Received) bool { return r.Name == "message" })
			alice = login("alice", "a")
			q = alice.Roster("")
			if len(q.Items) != 1 || q.Items[0].Subscription != "both" {
				t.Fatalf("alice's roster after restart: %+v", q)
			}
			alice.Send(`<presence/>`)
			bob.PresenceFrom("alice@localhost/a", "")
		})
	}
}

// dataDirTLS trusts the certificate ottr generated into dataDir.
func dataDirTLS(t *testing.T, dataDir string) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(dataDir, "tls", "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("no certificate in cert.pem")
	}
	return &tls.Config{RootCAs: pool, ServerName: "localhost"}
}

// TestRestartRefusesUsedToken is security review #8: a token used once is
// refused after the server restarts (stopped cleanly or killed) within the
// token's validity, with not-authorized; a fresh token logs in.
func TestRestartRefusesUsedToken(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			addr := freeAddr(t)
			cfg := writeInteropConfig(t, addr)
			dataDir := filepath.Join(filepath.Dir(cfg), "data")
			mint := func() string {
				t.Helper()
				return testfixture.Token(t, "alice@localhost")
			}
			p := startServe(t, cfg, addr)
			tlsCfg := dataDirTLS(t, dataDir)
			used := mint()
			c, err := xmpptest.Login(t, addr, tlsCfg, "alice", "localhost", "", auth.XToken, used)
			if err != nil {
				t.Fatalf("first use: %v\nserver:\n%s", err, p.stderr.String())
			}
			c.Close()
			if _, err := xmpptest.Login(t, addr, tlsCfg, "alice", "localhost", "", auth.XToken, used); err == nil || !strings.Contains(err.Error(), "not-authorized") {
				t.Fatalf("second use before the restart: %v, want not-authorized", err)
			}

			p.kill(t, sig)
			p = startServe(t, cfg, addr)
			_, err = xmpptest.Login(t, addr, tlsCfg, "alice", "localhost", "", auth.XToken, used)
			if err == nil {
				t.Fatal("the used token logged in again after the restart")
			}
			if !strings.Contains(err.Error(), "not-authorized") {
				t.Fatalf("used token after the restart: %v, want not-authorized", err)
			}
			if _, err := xmpptest.Login(t, addr, tlsCfg, "alice", "localhost", "", auth.XToken, mint()); err != nil {
				t.Fatalf("fresh token after the restart: %v\nserver:\n%s", err, p.stderr.String())
			}
		})
	}
}
