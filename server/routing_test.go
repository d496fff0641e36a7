package server_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/stream"
	"ottr.im/ottr/internal/xmpptest"
)

func TestMessagesInOrder(t *testing.T) {
	ts := startServer(t, nil)
	alice := ts.mustLogin(t, "alice", "a1")
	bob := ts.mustLogin(t, "bob", "b1")
	bob.Send(`<presence/>`)
	bob.NextNamed("presence", "")

	const n = 300
	for i := 0; i < n; i++ {
		to := "bob@localhost/b1"
		if i%3 == 0 {
			to = "bob@localhost" // bare JID: the one available resource
		}
		alice.Send(fmt.Sprintf(`<message to='%s' type='chat' id='m%d'><body>%d</body></message>`, to, i, i))
	}
	for i := 0; i < n; i++ {
		m := bob.NextNamed("message", "chat")
		if m.Body != fmt.Sprint(i) {
			t.Fatalf("message %d: body %q (out of order)", i, m.Body)
		}
		if m.From != "alice@localhost/a1" {
			t.Fatalf("message %d: from %q, want the sender's full JID", i, m.From)
		}
	}
	// And back.
	bob.Send(`<message to='alice@localhost/a1' type='chat'><body>hi</body></message>`)
	if m := alice.NextNamed("message", "chat"); m.Body != "hi" || m.From != "bob@localhost/b1" {
		t.Fatalf("reply: %+v", m)
	}
}

func TestFromIsStamped(t *testing.T) {
	ts := startServer(t, nil)
	mallory := ts.mustLogin(t, "mallory", "m")
	bob := ts.mustLogin(t, "bob", "b")
	mallory.Send(`<message from='alice@localhost/a' to='bob@localhost/b' type='chat'><body>trust me</body></message>`)
	if m := bob.NextNamed("message", "chat"); m.From != "mallory@localhost/m" {
		t.Fatalf("from = %q, want the sender's real JID", m.From)
	}
}

func TestBareJIDByPriority(t *testing.T) {
	ts := startServer(t, nil)
	alice := ts.mustLogin(t, "alice", "a")
	low := ts.mustLogin(t, "bob", "low")
	high := ts.mustLogin(t, "bob", "high")
	neg := ts.mustLogin(t, "bob", "neg")
	low.Send(`<presence><priority>1</priority></presence>`)
	high.Send(`<presence><priority>5</priority></presence>`)
	neg.Send(`<presence><priority>-1</priority></presence>`)
	// Each available resource sees the account's presence broadcasts.
	high.NextNamed("presence", "")
	alice.Send(`<message to='bob@localhost' type='chat'><body>to the best</body></message>`)
	if m := high.NextNamed("message", "chat"); m.Body != "to the best" {
		t.Fatalf("high got %+v", m)
	}
	for _, c := range []*xmpptest.Client{low, neg} {
		c.NoneWithin(300*time.Millisecond, func(r xmpptest.Received) bool { return r.Name == "message" })
	}
	// Headlines go to every non-negative resource.
	alice.Send(`<message to='bob@localhost' type='headline'><body>news</body></message>`)
	high.NextNamed("message", "headline")
	low.NextNamed("message", "headline")
}

func TestUnavailableRecipient(t *testing.T) {
	ts := startServer(t, nil)
	alice := ts.mustLogin(t, "alice", "a")
	// nobody has never logged in: no account, so nothing is stored.
	alice.Send(`<message to='nobody@localhost' type='chat' id='x1'><body>anyone?</body></message>`)
	e := alice.NextNamed("message", "error")
	if e.ID != "x1" || e.From != "nobody@localhost" || !strings.Contains(e.Inner, "service-unavailable") {
		t.Fatalf("error reply %+v", e)
	}
	// A full JID that does not exist falls back to the bare JID rules.
	alice.Send(`<message to='nobody@localhost/nope' type='chat' id='x2'><body>?</body></message>`)
	if e := alice.NextNamed("message", "error"); e.ID != "x2" {
		t.Fatalf("error reply %+v", e)
	}
	// groupchat to a bare JID is refused.
	alice.Send(`<message to='alice@localhost' type='groupchat' id='x4'><body>?</body></message>`)
	if e := alice.NextNamed("message", "error"); e.ID != "x4" || !strings.Contains(e.Inner, "service-unavailable") {
		t.Fatalf("groupchat: %+v", e)
	}
	// Remote domains are not reachable without s2s.
	alice.Send(`<message to='someone@example.net' type='chat' id='x3'><body>?</body></message>`)
	if e := alice.NextNamed("message", "error"); e.ID != "x3" || !strings.Contains(e.Inner, "remote-server-not-found") {
		t.Fatalf("remote: %+v", e)
	}
	// A bound full JID gets a message even before it sent presence.
	bob := ts.mustLogin(t, "bob", "b")
	alice.Send(`<message to='bob@localhost/b' type='chat'><body>direct</body></message>`)
	if m := bob.NextNamed("message", "chat"); m.Body != "direct" {
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
			alice.Send(tc.send)
			r := alice.NextNamed("iq", "*")
			if r.Type != tc.wantType || !strings.Contains(r.Inner, tc.wantInner) {
				t.Fatalf("got %+v, want type %s containing %q", r, tc.wantType, tc.wantInner)
			}
		})
	}
	// An iq to another user's full JID goes to that client, whose answer
	// comes back.
	alice.Send(`<iq type='get' id='c1' to='bob@localhost/b'><ping xmlns='urn:xmpp:ping'/></iq>`)
	if r := bob.NextNamed("iq", "get"); r.From != "alice@localhost/a" {
		t.Fatalf("bob got %+v", r)
	}
	if r := alice.NextNamed("iq", "*"); r.Type != "result" || r.ID != "c1" || r.From != "bob@localhost/b" {
		t.Fatalf("alice got %+v", r)
	}
}

func TestResourceConflict(t *testing.T) {
	ts := startServer(t, nil)
	first := ts.mustLogin(t, "alice", "same")
	second := ts.mustLogin(t, "alice", "same")
	err := first.Ended()
	if !errors.Is(err, stream.Conflict) {
		t.Fatalf("first session ended with %v, want conflict", err)
	}
	// The new session is the one that gets messages.
	bob := ts.mustLogin(t, "bob", "b")
	bob.Send(`<message to='alice@localhost/same' type='chat'><body>which?</body></message>`)
	if m := second.NextNamed("message", "chat"); m.Body != "which?" {
		t.Fatalf("second got %+v", m)
	}
	if n := ts.srv.Router().Sessions(); n != 2 {
		t.Fatalf("%d sessions bound, want 2", n)
	}
}

func TestShutdownSendsSystemShutdown(t *testing.T) {
	ts := startServer(t, nil)
	clients := []*xmpptest.Client{ts.mustLogin(t, "alice", ""), ts.mustLogin(t, "bob", "")}
	raw := xmpptest.DialRaw(t, ts.addr)
	raw.Open(testHost) // still negotiating
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
		if err := c.Ended(); !errors.Is(err, stream.SystemShutdown) {
			t.Errorf("%s ended with %v, want system-shutdown", c.JID, err)
		}
	}
}
