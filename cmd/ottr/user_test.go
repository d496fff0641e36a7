package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp/stream"

	"ottr.im/ottr/auth"
	"ottr.im/ottr/config"
	"ottr.im/ottr/internal/testfixture"
	"ottr.im/ottr/internal/xmpptest"
	"ottr.im/ottr/storage/sqlite"
)

// checkPassword reports a failure unless user@host is stored in the
// database of the configuration at cfgPath with password pw.
func checkPassword(t *testing.T, cfgPath, host, user, pw string) {
	t.Helper()
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	checkPasswordIn(t, cfg.DatabasePath(), host, user, pw)
}

// checkPasswordIn is checkPassword for the database at dbPath.
func checkPasswordIn(t *testing.T, dbPath, host, user, pw string) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	stored, err := st.PasswordHash(context.Background(), host, user)
	if err != nil {
		t.Fatal(err)
	}
	h, err := auth.ParsePasswordHash(stored)
	if err != nil {
		t.Fatal(err)
	}
	if !h.Check(pw) {
		t.Errorf("%s@%s: stored password is not %q", user, host, pw)
	}
}

func TestUser(t *testing.T) {
	cfg := writeConfig(t, "127.0.0.1:5222")
	dbPath := filepath.Join(filepath.Dir(cfg), "data", config.DatabaseFile)

	// The steps run in order on one database.
	steps := []struct {
		name   string
		args   []string
		stdin  string
		code   int
		stdout string   // exact, for list
		stderr []string // substrings
		after  func(t *testing.T)
	}{
		{name: "list empty", args: []string{"list", "-c", cfg}, stdout: ""},
		{name: "add", args: []string{"add", "-c", cfg, "Alice@Example.com"}, stdin: "s3cret pass\n",
			stderr: []string{"created alice@example.com"},
			after:  func(t *testing.T) { checkPassword(t, cfg, "example.com", "alice", "s3cret pass") }},
		{name: "list", args: []string{"list", "-c", cfg}, stdout: "alice@example.com\n"},
		{name: "add duplicate", args: []string{"add", "-c", cfg, "alice@example.com"}, stdin: "other\n", code: 1,
			stderr: []string{"alice@example.com already exists (use `ottr user passwd`)"},
			after:  func(t *testing.T) { checkPassword(t, cfg, "example.com", "alice", "s3cret pass") }},
		{name: "add empty stdin", args: []string{"add", "-c", cfg, "bob@example.com"}, code: 1,
			stderr: []string{"empty password"}},
		{name: "add empty line", args: []string{"add", "-c", cfg, "bob@example.com"}, stdin: "\n", code: 1,
			stderr: []string{"empty password"}},
		{name: "add CRLF, no seed needed", args: []string{"add", "-c", cfg, "bob@nosecret.example"}, stdin: "pw\r\nignored\n",
			after: func(t *testing.T) { checkPassword(t, cfg, "nosecret.example", "bob", "pw") }},
		{name: "add last line without newline", args: []string{"add", "-c", cfg, "carol@chat.example.org"}, stdin: "pw2",
			after: func(t *testing.T) { checkPassword(t, cfg, "chat.example.org", "carol", "pw2") }},
		{name: "add unknown host", args: []string{"add", "-c", cfg, "dave@unknown.example"}, stdin: "pw\n", code: 1,
			stderr: []string{`"unknown.example"`}},
		{name: "token-only account", after: func(t *testing.T) {
			st, err := sqlite.Open(context.Background(), dbPath)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if _, err := st.EnsureAccount(context.Background(), "example.com", "erin"); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "list all", args: []string{"list", "-c", cfg},
			stdout: "carol@chat.example.org\nalice@example.com\nerin@example.com (token only)\nbob@nosecret.example\n"},
		{name: "list host", args: []string{"list", "-c", cfg, "EXAMPLE.com"},
			stdout: "alice@example.com\nerin@example.com (token only)\n"},
		{name: "list unknown host", args: []string{"list", "-c", cfg, "unknown.example"}, code: 1,
			stderr: []string{`"unknown.example"`}},
		{name: "passwd", args: []string{"passwd", "-c", cfg, "alice@example.com"}, stdin: "new\n",
			after: func(t *testing.T) { checkPassword(t, cfg, "example.com", "alice", "new") }},
		{name: "passwd of a token-only account", args: []string{"passwd", "-c", cfg, "erin@example.com"}, stdin: "pw\n",
			after: func(t *testing.T) { checkPassword(t, cfg, "example.com", "erin", "pw") }},
		{name: "passwd missing", args: []string{"passwd", "-c", cfg, "zed@example.com"}, stdin: "pw\n", code: 1,
			stderr: []string{"zed@example.com does not exist"}},
		{name: "del", args: []string{"del", "-c", cfg, "ALICE@example.com"}, stderr: []string{"deleted alice@example.com"}},
		{name: "list after del", args: []string{"list", "-c", cfg, "example.com"}, stdout: "erin@example.com\n"},
		{name: "del again", args: []string{"del", "-c", cfg, "alice@example.com"}, code: 1,
			stderr: []string{"alice@example.com does not exist"}},
		// No server runs (none holds the claim log): nobody would mark the
		// deletion done, so add settles it and creates the account at once.
		{name: "add again after del, no server", args: []string{"add", "-c", cfg, "alice@example.com"}, stdin: "again\n",
			stderr: []string{"created alice@example.com"},
			after:  func(t *testing.T) { checkPassword(t, cfg, "example.com", "alice", "again") }},
		{name: "del after re-add", args: []string{"del", "-c", cfg, "alice@example.com"}, stderr: []string{"deleted alice@example.com"}},
		{name: "del without argument", args: []string{"del", "-c", cfg}, code: 2, stderr: []string{"missing user@host"}},
		{name: "add bad JID", args: []string{"add", "-c", cfg, "example.com"}, stdin: "pw\n", code: 2,
			stderr: []string{"is not user@host"}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if s.args != nil {
				r := runOttr(t, "", s.stdin, append([]string{"user"}, s.args...)...)
				r.check(t, s.code, nil, s.stderr)
				if r.stdout != s.stdout {
					t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, s.stdout)
				}
			}
			if s.after != nil {
				s.after(t)
			}
		})
	}
}

func TestUserDefaults(t *testing.T) {
	dir := t.TempDir()
	runOttr(t, dir, "pw\n", "user", "add", "alice@localhost").check(t, 0, nil, nil)
	r := runOttr(t, dir, "", "user", "list")
	r.check(t, 0, nil, nil)
	if r.stdout != "alice@localhost\n" {
		t.Errorf("list: %q, want alice@localhost", r.stdout)
	}
	checkPasswordIn(t, filepath.Join(dir, "ottr-data", config.DatabaseFile), "localhost", "alice", "pw")
}

// TestUserDelWhileServing deletes an account with everything stored for
// it while its user is logged in to a running server (another process):
// the session ends with not-authorized within seconds, a contact gets the
// server-side unsubscribe (unavailable, unsubscribed, unsubscribe, a roster
// push), and an account created again with the same name finds nothing
// of the old one's; a token user's account is deleted the same way
// (security review #9).
func TestUserDelWhileServing(t *testing.T) {
	addr := freeAddr(t)
	cfg := writeInteropConfig(t, addr)
	p := startServe(t, cfg, addr)
	tlsCfg := dataDirTLS(t, filepath.Join(filepath.Dir(cfg), "data"))
	login := func(user, resource string, mech sasl.Mechanism, secret string) *xmpptest.Client {
		t.Helper()
		if secret == "" {
			secret = testfixture.Token(t, user+"@localhost")
		}
		c, err := xmpptest.Login(t, addr, tlsCfg, user, "localhost", resource, mech, secret)
		if err != nil {
			t.Fatalf("login %s: %v\nserver:\n%s", user, err, p.stderr.String())
		}
		return c
	}
	iq := func(c *xmpptest.Client, x, id string) xmpptest.Received {
		t.Helper()
		r := c.IQ(x, id)
		if r.Type != "result" {
			t.Fatalf("%s: %s: %+v", c.JID, id, r)
		}
		return r
	}

	runOttr(t, "", "old password\n", "user", "add", "-c", cfg, "alice@localhost").check(t, 0, nil, nil)
	alice := login("alice", "a", auth.Plain, "old password").Online()
	bob := login("bob", "b", auth.XToken, "").Online()
	xmpptest.SubscribeBoth(t, alice, bob)
	iq(alice, `<iq type='set' id='vc'><vCard xmlns='vcard-temp'><FN>Old Alice</FN></vCard></iq>`, "vc")
	iq(alice, `<iq type='set' id='pr'><query xmlns='jabber:iq:private'><notes xmlns='urn:example:notes'>secret notes</notes></query></iq>`, "pr")
	iq(alice, `<iq type='set' id='bl'><block xmlns='urn:xmpp:blocking'><item jid='mallory@localhost'/></block></iq>`, "bl")
	// A negative priority: alice stays available to bob, and messages to
	// her bare JID are stored offline.
	alice.Send(`<presence><priority>-1</priority></presence>`)
	bob.PresenceFrom("alice@localhost/a", "")
	for i := 0; i < 2; i++ {
		bob.Send(fmt.Sprintf(`<message to='alice@localhost' type='chat'><body>stored %d</body></message>`, i))
	}
	iq(bob, `<iq type='get' id='sync' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`, "sync")

	start := time.Now()
	runOttr(t, "", "", "user", "del", "-c", cfg, "alice@localhost").check(t, 0, nil, []string{"deleted alice@localhost"})
	if err := alice.Ended(); !errors.Is(err, stream.NotAuthorized) {
		t.Fatalf("alice's session ended with %v, want not-authorized\nserver:\n%s", err, p.stderr.String())
	}
	t.Logf("alice's session ended %v after the deletion began", time.Since(start).Round(time.Millisecond))
	bob.PresenceFrom("alice@localhost/a", "unavailable")
	bob.PresenceFrom("alice@localhost", "unsubscribed")
	bob.PresenceFrom("alice@localhost", "unsubscribe")
	if it := bob.RosterPush(); it.JID != "alice@localhost" || it.Subscription != "none" || it.Ask != "" {
		t.Fatalf("bob's push: %+v", it)
	}
	if q := bob.Roster(""); len(q.Items) != 1 || q.Items[0].Subscription != "none" {
		t.Fatalf("bob's roster: %+v", q)
	}

	// A new alice finds nothing of the old one's, and the old password
	// is gone with the account.
	if _, err := xmpptest.Login(t, addr, tlsCfg, "alice", "localhost", "a", auth.Plain, "old password"); err == nil {
		t.Fatal("the deleted account's password still logs in")
	}
	// Refused until the server has purged and marked the deletion done.
	addUntilCreated(t, cfg, "alice@localhost", "new password")
	alice = login("alice", "a", auth.Plain, "new password")
	if q := alice.Roster(""); len(q.Items) != 0 {
		t.Fatalf("new alice's roster: %+v", q)
	}
	alice.Send(`<presence/>`)
	alice.PresenceFrom("alice@localhost/a", "")
	if r := iq(alice, `<iq type='get' id='vc2'><vCard xmlns='vcard-temp'/></iq>`, "vc2"); strings.Contains(r.Inner, "Old Alice") {
		t.Fatalf("new alice's vCard: %+v", r)
	}
	if r := iq(alice, `<iq type='get' id='pr2'><query xmlns='jabber:iq:private'><notes xmlns='urn:example:notes'/></query></iq>`, "pr2"); strings.Contains(r.Inner, "secret notes") {
		t.Fatalf("new alice's private XML: %+v", r)
	}
	if r := iq(alice, `<iq type='get' id='bl2'><blocklist xmlns='urn:xmpp:blocking'/></iq>`, "bl2"); strings.Contains(r.Inner, "mallory") {
		t.Fatalf("new alice's block list: %+v", r)
	}
	// Offline messages would have come right after initial presence,
	// before the answers above.
	alice.NoneWithin(0, func(r xmpptest.Received) bool { return r.Name == "message" })
	// A token user (no password, the row made at first login).
	erin := login("erin", "e", auth.XToken, "").Online()
	runOttr(t, "", "", "user", "del", "-c", cfg, "erin@localhost").check(t, 0, nil, []string{"deleted erin@localhost"})
	if err := erin.Ended(); !errors.Is(err, stream.NotAuthorized) {
		t.Fatalf("erin's session ended with %v, want not-authorized", err)
	}
	runOttr(t, "", "", "user", "list", "-c", cfg, "localhost").check(t, 0, []string{"alice@localhost\nbob@localhost (token only)\n"}, nil)
}
