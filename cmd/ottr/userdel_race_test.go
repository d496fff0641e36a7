package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp/stream"

	"ottr.im/ottr/auth"
	"ottr.im/ottr/internal/testfixture"
	"ottr.im/ottr/internal/xmpptest"
)

// pendingMsg is what `ottr user add` says while a deletion of the account
// is pending.
const pendingMsg = "and a running server is still ending its sessions; try again in a few seconds"

// addUntilCreated runs `ottr user add` for bareJID until it succeeds,
// accepting only the pending-deletion refusal meanwhile, for at most 10
// seconds, and returns how many times it was refused.
func addUntilCreated(t *testing.T, cfg, bareJID, password string) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for refused := 0; ; refused++ {
		r := runOttr(t, "", password+"\n", "user", "add", "-c", cfg, bareJID)
		if r.code == 0 {
			return refused
		}
		if !strings.Contains(r.stderr, bareJID+" was deleted ") || !strings.Contains(r.stderr, pendingMsg) {
			t.Fatalf("user add %s: exit %d, stderr:\n%s", bareJID, r.code, r.stderr)
		}
		if time.Now().After(deadline) {
			t.Fatalf("user add %s still refused after 10 s (%d times): %s", bareJID, refused+1, r.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// writeLoop makes c write, until its stream ends, private XML, a roster
// item, a vCard and a block, each marked "old"; it returns a channel that
// gets how many rounds were sent.
func writeLoop(c *xmpptest.Client) <-chan int {
	rounds := make(chan int, 1)
	go func() {
		for n := 0; ; n++ {
			x := fmt.Sprintf(`<iq type='set' id='w%[1]d-pr'><query xmlns='jabber:iq:private'><notes xmlns='urn:example:notes'>old notes %[1]d</notes></query></iq>`+
				`<iq type='set' id='w%[1]d-ro'><query xmlns='jabber:iq:roster'><item jid='oldfriend@localhost' name='old %[1]d'/></query></iq>`+
				`<iq type='set' id='w%[1]d-vc'><vCard xmlns='vcard-temp'><FN>Old %[1]d</FN></vCard></iq>`+
				`<iq type='set' id='w%[1]d-bl'><block xmlns='urn:xmpp:blocking'><item jid='oldblock@localhost'/></block></iq>`, n)
			if c.TrySend(x) != nil {
				rounds <- n
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return rounds
}

// wantNothingOld fails unless c's account holds nothing writeLoop wrote.
func wantNothingOld(t *testing.T, c *xmpptest.Client) {
	t.Helper()
	get := func(x, id string) string {
		t.Helper()
		r := c.IQ(x, id)
		if r.Type != "result" {
			t.Fatalf("%s: %s: %+v", c.JID, id, r)
		}
		return r.Inner
	}
	if q := c.Roster(""); len(q.Items) != 0 {
		t.Errorf("%s: roster of the new account: %+v", c.JID, q)
	}
	if s := get(`<iq type='get' id='g-vc'><vCard xmlns='vcard-temp'/></iq>`, "g-vc"); strings.Contains(s, "Old") {
		t.Errorf("%s: vCard of the new account: %s", c.JID, s)
	}
	if s := get(`<iq type='get' id='g-pr'><query xmlns='jabber:iq:private'><notes xmlns='urn:example:notes'/></query></iq>`, "g-pr"); strings.Contains(s, "old notes") {
		t.Errorf("%s: private XML of the new account: %s", c.JID, s)
	}
	if s := get(`<iq type='get' id='g-bl'><blocklist xmlns='urn:xmpp:blocking'/></iq>`, "g-bl"); strings.Contains(s, "oldblock") {
		t.Errorf("%s: block list of the new account: %s", c.JID, s)
	}
}

// TestUserDelAddWhileWriting is the red team's race (security review #9):
// jay is online and writes private XML, a roster item, a vCard and a block
// in a loop while `ottr user del` and, at once, `ottr user add` run. The
// add is refused with a clear message until the server has ended the old
// session and removed what it wrote meanwhile; the new jay finds none of
// it. A token user who logs in again at once is refused the bind (wait,
// resource-constraint) just as long, and finds nothing either.
func TestUserDelAddWhileWriting(t *testing.T) {
	addr := freeAddr(t)
	cfg := writeInteropConfig(t, addr)
	p := startServe(t, cfg, addr)
	tlsCfg := dataDirTLS(t, filepath.Join(filepath.Dir(cfg), "data"))
	login := func(user, resource string, mech sasl.Mechanism, secret string) (*xmpptest.Client, error) {
		t.Helper()
		if secret == "" {
			secret = testfixture.Token(t, user+"@localhost")
		}
		return xmpptest.Login(t, addr, tlsCfg, user, "localhost", resource, mech, secret)
	}
	mustLogin := func(user, resource string, mech sasl.Mechanism, secret string) *xmpptest.Client {
		t.Helper()
		c, err := login(user, resource, mech, secret)
		if err != nil {
			t.Fatalf("login %s: %v\nserver:\n%s", user, err, p.stderr.String())
		}
		return c
	}
	// started waits until the writes of round 3 got their answers.
	started := func(c *xmpptest.Client) {
		t.Helper()
		c.WaitFor(func(r xmpptest.Received) bool { return r.Name == "iq" && r.ID == "w3-bl" })
	}

	t.Run("password user", func(t *testing.T) {
		runOttr(t, "", "old password\n", "user", "add", "-c", cfg, "jay@localhost").check(t, 0, nil, nil)
		jay := mustLogin("jay", "a", auth.Plain, "old password")
		rounds := writeLoop(jay)
		started(jay)
		start := time.Now()
		runOttr(t, "", "", "user", "del", "-c", cfg, "jay@localhost").check(t, 0, nil, []string{"deleted jay@localhost"})
		refused := addUntilCreated(t, cfg, "jay@localhost", "new password")
		t.Logf("user add refused %d times, created %v after the deletion began", refused, time.Since(start).Round(time.Millisecond))
		if err := jay.Ended(); !errors.Is(err, stream.NotAuthorized) {
			t.Fatalf("the old session ended with %v, want not-authorized", err)
		}
		t.Logf("the old session sent %d rounds of writes", <-rounds)
		wantNothingOld(t, mustLogin("jay", "b", auth.Plain, "new password"))
	})

	t.Run("token user", func(t *testing.T) {
		kim := mustLogin("kim", "a", auth.XToken, "")
		rounds := writeLoop(kim)
		started(kim)
		start := time.Now()
		runOttr(t, "", "", "user", "del", "-c", cfg, "kim@localhost").check(t, 0, nil, []string{"deleted kim@localhost"})
		deadline := time.Now().Add(10 * time.Second)
		var (
			again   *xmpptest.Client
			refused int
		)
		for {
			c, err := login("kim", "b", auth.XToken, "")
			if err == nil {
				again = c
				break
			}
			if !strings.Contains(err.Error(), "wait resource-constraint") || !strings.Contains(err.Error(), "try again in a few seconds") {
				t.Fatalf("login again: %v, want a resource-constraint bind error while the deletion is pending", err)
			}
			refused++
			if time.Now().After(deadline) {
				t.Fatalf("login again still refused after 10 s: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("bind refused %d times, new session %v after the deletion began", refused, time.Since(start).Round(time.Millisecond))
		if err := kim.Ended(); !errors.Is(err, stream.NotAuthorized) {
			t.Fatalf("the old session ended with %v, want not-authorized", err)
		}
		t.Logf("the old session sent %d rounds of writes", <-rounds)
		// The new session outlives a poll (which would end it were it
		// taken for the old account's).
		again.NoneWithin(1500*time.Millisecond, func(xmpptest.Received) bool { return false })
		wantNothingOld(t, again)
		if !strings.Contains(p.stderr.String(), "bind refused: the account's deletion is pending") && refused > 0 {
			t.Errorf("the server did not log the refused bind:\n%s", p.stderr.String())
		}
	})
}
