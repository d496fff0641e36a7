package server_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/stream"
)

func TestMessagesInOrder(t *testing.T) {
	ts := startServer(t, nil)
	alice := ts.mustLogin(t, "alice", "a1")
	bob := ts.mustLogin(t, "bob", "b1")
	bob.send(`<presence/>`)
	bob.nextNamed("presence", "")

	const n = 300
	for i := 0; i < n; i++ {
		to := "bob@localhost/b1"
		if i%3 == 0 {
			to = "bob@localhost" // bare JID: the one available resource
		}
		alice.send(fmt.Sprintf(`<message to='%s' type='chat' id='m%d'><body>%d</body></message>`, to, i, i))
	}
	for i := 0; i < n; i++ {
		m := bob.nextNamed("message", "chat")
		if m.Body != fmt.Sprint(i) {
			t.Fatalf("message %d: body %q (out of order)", i, m.Body)
		}
		if m.From != "alice@localhost/a1" {
			t.Fatalf("message %d: from %q, want the sender's full JID", i, m.From)
		}
	}
	// And back.
	bob.send(`<message to='alice@localhost/a1' type='chat'><body>hi</body></message>`)
	if m := alice.nextNamed("message", "chat"); m.Body != "hi" || m.From != "bob@localhost/b1" {
		t.Fatalf("reply: %+v", m)
	}
}

func TestFromIsStamped(t *testing.T) {
	ts := startServer(t, nil)
	mallory := ts.mustLogin(t, "mallory", "m")
	bob := ts.mustLogin(t, "bob", "b")
	mallory.send(`<message from='alice@localhost/a' to='bob@localhost/b' type='chat'><body>trust me</body></message>`)
	if m := bob.nextNamed("message", "chat"); m.From != "mallory@localhost/m" {
		t.Fatalf("from = %q, want the sender's real JID", m.From)
	}
}

func TestBareJIDByPriority(t *testing.T) {
	ts := startServer(t, nil)
	alice := ts.mustLogin(t, "alice", "a")
	low := ts.mustLogin(t, "bob", "low")
	high := ts.mustLogin(t, "bob", "high")
	neg := ts.mustLogin(t, "bob", "neg")
	low.send(`<presence><priority>1</priority></presence>`)
	high.send(`<presence><priority>5</priority></presence>`)
	neg.send(`<presence><priority>-1</priority></presence>`)
	// Each available resource sees the account's presence broadcasts.
	high.nextNamed("presence", "")
	alice.send(`<message to='bob@localhost' type='chat'><body>to the best</body></message>`)
	if m := high.nextNamed("message", "chat"); m.Body != "to the best" {
		t.Fatalf("high got %+v", m)
	}
	for _, c := range []*client{low, neg} {
		for {
			select {
			case r := <-c.in:
				if r.Name == "message" {
					t.Fatalf("%s got the bare-JID message: %+v", c.jid, r)
				}
				continue
			case <-time.After(300 * time.Millisecond):
			}
			break
		}
	}
	// Headlines go to every non-negative resource.
	alice.send(`<message to='bob@localhost' type='headline'><body>news</body></message>`)
	high.nextNamed("message", "headline")
	low.nextNamed("message", "headline")
}

func TestUnavailableRecipient(t *testing.T) {
	ts := startServer(t, nil)
	alice := ts.mustLogin(t, "alice", "a")
	// nobody has never logged in: no account, so nothing is stored.
	alice.send(`<message to='nobody@localhost' type='chat' id='x1'><body>anyone?</body></message>`)
	e := alice.nextNamed("message", "error")
	if e.ID != "x1" || e.From != "nobody@localhost" || !strings.Contains(e.Inner, "service-unavailable") {
		t.Fatalf("error reply %+v", e)
	}
	// A full JID that does not exist falls back to the bare JID rules.
	alice.send(`<message to='nobody@localhost/nope' type='chat' id='x2'><body>?</body></message>`)
	if e := alice.nextNamed("message", "error"); e.ID != "x2" {
		t.Fatalf("error reply %+v", e)
	}
	// groupchat to a bare JID is refused.
	alice.send(`<message to='alice@localhost' type='groupchat' id='x4'><body>?</body></message>`)
	if e := alice.nextNamed("message", "error"); e.ID != "x4" || !strings.Contains(e.Inner, "service-unavailable") {
		t.Fatalf("groupchat: %+v", e)
	}
	// Remote domains are not reachable without s2s.
	alice.send(`<message to='someone@example.net' type='chat' id='x3'><body>?</body></message>`)
	if e := alice.nextNamed("message", "error"); e.ID != "x3" || !strings.Contains(e.Inner, "remote-server-not-found") {
		t.Fatalf("remote: %+v", e)
	}
	// A bound full JID gets a message even before it sent presence.
	bob := ts.mustLogin(t, "bob", "b")
	alice.send(`<message to='bob@localhost/b' type='chat'><body>direct</body></message>`)
	if m := bob.nextNamed("message", "chat"); m.Body != "direct" {
		t.Fatalf("bob got %+v", m)
	}
}

func TestIQ(t *testing.T) {
	ts := startServer(t, nil)
	alice := ts.mustLogin(t, "alice", "a")
	bob := ts.mustLogin(t, "bob", "b")
	for _, tc := range []struct {
		name, send, wantType, wantInner string
	}{
		{"ping server", `<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`, "result", ""},
		{"ping no to", `<iq type='get' id='p2'><ping xmlns='urn:xmpp:ping'/></iq>`, "result", ""},
		{"disco server", `<iq type='get' id='d1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`, "result", `category="server"`},
		{"unknown to server", `<iq type='get' id='u1' to='localhost'><query xmlns='urn:example:nothing'/></iq>`, "error", "service-unavailable"},
		{"to offline full jid", `<iq type='get' id='o1' to='carol@localhost/x'><ping xmlns='urn:xmpp:ping'/></iq>`, "error", "service-unavailable"},
		{"no payload", `<iq type='get' id='n1' to='localhost'/>`, "error", "bad-request"},
		{"bad to", `<iq type='get' id='j1' to='a@b@c'><ping xmlns='urn:xmpp:ping'/></iq>`, "error", "jid-malformed"},
		{"session", `<iq type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>`, "result", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			alice.send(tc.send)
			r := alice.nextNamed("iq", "*")
			if r.Type != tc.wantType || !strings.Contains(r.Inner, tc.wantInner) {
				t.Fatalf("got %+v, want type %s containing %q", r, tc.wantType, tc.wantInner)
			}
		})
	}
	// An iq to another user's full JID goes to that client, whose answer
	// comes back.
	alice.send(`<iq type='get' id='c1' to='bob@localhost/b'><ping xmlns='urn:xmpp:ping'/></iq>`)
	if r := bob.nextNamed("iq", "get"); r.From != "alice@localhost/a" {
		t.Fatalf("bob got %+v", r)
	}
	if r := alice.nextNamed("iq", "*"); r.Type != "result" || r.ID != "c1" || r.From != "bob@localhost/b" {
		t.Fatalf("alice got %+v", r)
	}
}

func TestResourceConflict(t *testing.T) {
	ts := startServer(t, nil)
	first := ts.mustLogin(t, "alice", "same")
	second := ts.mustLogin(t, "alice", "same")
	err := first.ended()
	if !errors.Is(err, stream.Conflict) {
		t.Fatalf("first session ended with %v, want conflict", err)
	}
	// The new session is the one that gets messages.
	bob := ts.mustLogin(t, "bob", "b")
	bob.send(`<message to='alice@localhost/same' type='chat'><body>which?</body></message>`)
	if m := second.nextNamed("message", "chat"); m.Body != "which?" {
		t.Fatalf("second got %+v", m)
	}
	if n := ts.srv.Router().Sessions(); n != 2 {
		t.Fatalf("%d sessions bound, want 2", n)
	}
}

func TestShutdownSendsSystemShutdown(t *testing.T) {
	ts := startServer(t, nil)
	clients := []*client{ts.mustLogin(t, "alice", ""), ts.mustLogin(t, "bob", "")}
	raw := dialRaw(t, ts.addr)
	raw.open(testHost) // still negotiating
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := ts.srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("shutdown took %v", d)
	}
	for _, c := range clients {
		if err := c.ended(); !errors.Is(err, stream.SystemShutdown) {
			t.Errorf("%s ended with %v, want system-shutdown", c.jid, err)
		}
	}
}
