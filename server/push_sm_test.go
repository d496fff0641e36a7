package server_test

import (
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"ottr.im/ottr/internal/xmpptest"
)

// TestPushWhileWaiting: alice's only session waits for stream management
// resumption (its connection was cut); a message for her makes the app
// server, a component, get a push publish (XEP-0357); once she resumes,
// she has the message exactly once.
func TestPushWhileWaiting(t *testing.T) {
	ts := startServer(t, withComponent)
	comp, err := dialComponent(t, ts, compName, compSecret)
	if err != nil {
		t.Fatal(err)
	}
	alice := ts.smLogin(t, "alice", "phone", true)
	alice.conn.write(`<iq type='set' id='e1'><enable xmlns='urn:xmpp:push:0' jid='` + compName + `' node='node-1'/></iq>`)
	for {
		e := alice.next()
		if e.XMLName.Local == "iq" && smAttr(e, "id") == "e1" {
			if typ := smAttr(e, "type"); typ != "result" {
				t.Fatalf("push enable: %s", e)
			}
			break
		}
	}
	alice.conn.kill()
	full := jid.MustParse("alice@localhost/phone")
	waitFor(t, func() bool {
		w, ok := ts.srv.Router().Session(full).(interface{ Waiting() bool })
		return ok && w.Waiting()
	})

	bob := ts.online(t, "bob", "b")
	bob.Send(`<message to='alice@localhost' type='chat' id='m1'><body>wake up</body></message>`)
	comp.SetDeadline(time.Now().Add(xmpptest.Timeout))
	st, err := comp.Next()
	if err != nil {
		t.Fatalf("the app server got no publish while alice's session waits: %v", err)
	}
	ps, fields := decodePublish(t, st)
	if ps.Publish.Node != "node-1" || fields["message-count"] != "1" || fields["last-message-sender"] != "bob@localhost/b" {
		t.Errorf("publish to node %q with %v", ps.Publish.Node, fields)
	}
	comp.Send(`<iq type='result' id='` + st.ID + `' from='` + compName + `' to='alice@localhost'/>`)

	alice, e := ts.resumeTCP(t, "alice", false, alice.id, alice.h)
	wantResumed(t, e, alice.id)
	if b := alice.nextMessage(); b != "wake up" {
		t.Fatalf("after resuming alice got %q", b)
	}
	alice.conn.write(`<iq type='get' id='end'><ping xmlns='urn:xmpp:ping'/></iq>`)
	for {
		e := alice.next()
		if e.XMLName.Local == "message" {
			t.Fatalf("a second message after resuming: %s", e)
		}
		if e.XMLName.Local == "iq" && smAttr(e, "id") == "end" {
			break
		}
	}
}
