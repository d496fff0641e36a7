package server_test

import (
	"context"
	"encoding/xml"
	"errors"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stream"

	"ottr.im/ottr/component"
	"ottr.im/ottr/config"
	"ottr.im/ottr/element"
	"ottr.im/ottr/internal/xmpptest"
	"ottr.im/ottr/storage/sqlite"
)

const (
	compName   = "push.localhost"
	compSecret = "0123456789abcdef-secret"
)

// withComponent adds the component push.localhost and its listener.
func withComponent(cfg *config.Config) {
	cfg.Components = config.Components{
		Listen:   []string{"127.0.0.1:0"},
		Services: []config.ComponentService{{Name: compName, Secret: compSecret}},
	}
}

// dialComponent connects as a component to ts's component listener.
func dialComponent(t *testing.T, ts *testServer, name, secret string) (*component.Client, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), xmpptest.Timeout)
	defer cancel()
	c, err := component.Dial(ctx, ts.srv.ComponentAddrs()[0].String(), name, secret)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(2 * xmpptest.Timeout))
	t.Cleanup(func() { c.Close() })
	return c, nil
}

func TestComponentHandshake(t *testing.T) {
	ts := startServer(t, withComponent)
	for _, tc := range []struct {
		name, domain, secret, want string
	}{
		{"bad secret", compName, "wrong-secret-0123456789", "not-authorized"},
		{"unknown domain", "other.localhost", compSecret, "host-unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := dialComponent(t, ts, tc.domain, tc.secret)
			var se stream.Error
			if !errors.As(err, &se) || se.Err != tc.want {
				t.Fatalf("got %v, want the stream error %s", err, tc.want)
			}
		})
	}
	if _, err := dialComponent(t, ts, compName, compSecret); err != nil {
		t.Fatalf("good secret: %v", err)
	}
	var se stream.Error
	if _, err := dialComponent(t, ts, compName, compSecret); !errors.As(err, &se) || se.Err != "conflict" {
		t.Fatalf("second connection: %v, want the stream error conflict", err)
	}
}

func TestComponentStanzas(t *testing.T) {
	ts := startServer(t, withComponent)
	comp, err := dialComponent(t, ts, compName, compSecret)
	if err != nil {
		t.Fatal(err)
	}
	alice := ts.online(t, "alice", "a")

	// Client to component and back: an iq and its result.
	alice.Send(`<iq type='get' id='v1' to='` + compName + `'><query xmlns='jabber:iq:version'/></iq>`)
	st, err := comp.Next()
	if err != nil || st.Name != "iq" || st.ID != "v1" || st.From.String() != "alice@localhost/a" {
		t.Fatalf("the component got %+v, %v", st, err)
	}
	comp.Send(`<iq type='result' id='v1' from='` + compName + `' to='alice@localhost/a'><query xmlns='jabber:iq:version'><name>bot</name></query></iq>`)
	if r := alice.WaitFor(func(r xmpptest.Received) bool { return r.Name == "iq" && r.ID == "v1" }); r.Type != "result" || r.From != compName || !strings.Contains(r.Inner, "bot") {
		t.Fatalf("alice got %+v", r)
	}
	// A message from a JID of the component to alice's bare JID.
	comp.Send(`<message from='bot@` + compName + `/x' to='alice@localhost' type='chat'><body>hello from the bot</body></message>`)
	if m := alice.NextNamed("message", "chat"); m.Body != "hello from the bot" || m.From != "bot@"+compName+"/x" {
		t.Fatalf("alice got %+v", m)
	}
	// From outside its domain: invalid-from, and nothing reaches alice.
	comp.Send(`<message from='bob@localhost/b' to='alice@localhost' type='chat'><body>spoof</body></message>`)
	var se stream.Error
	if _, err := comp.Next(); !errors.As(err, &se) || se.Err != "invalid-from" {
		t.Fatalf("got %v, want invalid-from", err)
	}
	alice.NoneWithin(200*time.Millisecond, func(r xmpptest.Received) bool { return r.Name == "message" })
	// The component is gone: a message to it gets a wait error.
	alice.Send(`<message to='` + compName + `' id='m9' type='chat'><body>?</body></message>`)
	if r := alice.NextNamed("message", "error"); !strings.Contains(r.Inner, "remote-server-timeout") {
		t.Fatalf("alice got %+v", r)
	}
}

// TestPushToComponent is XEP-0357 end to end: the app server is a
// component; alice enables push with it, her only session goes, bob
// writes to her, and the component gets the publish; its error answer
// disables the registration.
func TestPushToComponent(t *testing.T) {
	ts := startServer(t, withComponent)
	comp, err := dialComponent(t, ts, compName, compSecret)
	if err != nil {
		t.Fatal(err)
	}
	alice := ts.online(t, "alice", "phone")
	if r := alice.IQ(`<iq type='set' id='e1'><enable xmlns='urn:xmpp:push:0' jid='`+compName+`' node='node-1'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='secret'><value>app-secret</value></field></x></enable></iq>`, "e1"); r.Type != "result" {
		t.Fatalf("enable: %+v", r)
	}
	if r := alice.IQ(`<iq type='get' id='d1' to='alice@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`, "d1"); !strings.Contains(r.Inner, "urn:xmpp:push:0") {
		t.Errorf("account disco#info lacks urn:xmpp:push:0: %s", r.Inner)
	}
	alice.Close()
	waitFor(t, func() bool {
		return len(ts.srv.Router().Resources(jid.MustParse("alice@localhost"))) == 0
	})

	bob := ts.online(t, "bob", "b")
	bob.Send(`<message to='alice@localhost' type='chat' id='m1'><body>are you there?</body></message>`)
	st, err := comp.Next()
	if err != nil {
		t.Fatalf("the app server got nothing: %v", err)
	}
	if st.Name != "iq" || st.Type != "set" || st.From.String() != "alice@localhost" || st.To.String() != compName {
		t.Fatalf("publish %s %s from %s to %s", st.Name, st.Type, st.From, st.To)
	}
	ps, fields := decodePublish(t, st)
	if ps.Publish.Node != "node-1" || fields["FORM_TYPE"] != "urn:xmpp:push:summary" || fields["message-count"] != "1" ||
		fields["last-message-sender"] != "bob@localhost/b" {
		t.Errorf("publish to node %q with %v", ps.Publish.Node, fields)
	}
	if _, ok := fields["last-message-body"]; ok {
		t.Errorf("the body was published unasked: %v", fields)
	}
	if len(ps.Options) != 2 || ps.Options[1].Var != "secret" || ps.Options[1].Value != "app-secret" {
		t.Errorf("publish-options %+v", ps.Options)
	}

	// The app server refuses: the registration is disabled.
	comp.Send(`<iq type='error' id='` + st.ID + `' from='` + compName + `' to='alice@localhost'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`)
	store, err := sqlite.Open(context.Background(), ts.cfg.DatabasePath())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	waitFor(t, func() bool {
		regs, err := store.PushRegistrations(context.Background(), "localhost", "alice")
		return err == nil && len(regs) == 0
	})
}

// publish is a push publish (XEP-0357) as the app server gets it.
type publish struct {
	XMLName xml.Name `xml:"http://jabber.org/protocol/pubsub pubsub"`
	Publish struct {
		Node   string `xml:"node,attr"`
		Fields []struct {
			Var   string `xml:"var,attr"`
			Value string `xml:"value"`
		} `xml:"item>notification>x>field"`
	} `xml:"publish"`
	Options []struct {
		Var   string `xml:"var,attr"`
		Value string `xml:"value"`
	} `xml:"publish-options>x>field"`
}

// decodePublish decodes a push publish and its summary form's fields by
// name, failing the test if st is not one.
func decodePublish(t *testing.T, st *element.Stanza) (publish, map[string]string) {
	t.Helper()
	var ps publish
	if st.Name != "iq" || st.Type != "set" {
		t.Fatalf("the app server got %s %s, want a publish", st.Name, st.Type)
	}
	if err := st.DecodePayload(&ps); err != nil {
		t.Fatalf("decoding the publish: %v", err)
	}
	fields := map[string]string{}
	for _, f := range ps.Publish.Fields {
		fields[f.Var] = f.Value
	}
	return ps, fields
}
