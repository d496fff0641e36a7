package push_test

import (
	"testing"

	"ottr.im/ottr/element"
	"ottr.im/ottr/internal/routertest"
	"ottr.im/ottr/mod/push"
)

// FuzzEnable sends the push module any enable or disable payload a client
// could send, publish-options form included: it answers exactly one iq
// and does not panic, and the registrations stay within their bound.
func FuzzEnable(f *testing.F) {
	core, store := routertest.New(f)
	if _, err := push.Register(core, store, push.Options{MaxRegistrations: 3}); err != nil {
		f.Fatal(err)
	}
	alice := routertest.Bind(f, core, "alice@localhost/a")
	for _, seed := range []string{
		`<enable xmlns='urn:xmpp:push:0' jid='push.example.org' node='n1'/>`,
		`<enable xmlns='urn:xmpp:push:0' jid='push.example.org' node='n2'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='secret'><value>s</value></field><field var='include-body'><value>true</value></field></x></enable>`,
		`<enable xmlns='urn:xmpp:push:0' jid='@@' node=''/>`,
		`<disable xmlns='urn:xmpp:push:0' jid='push.example.org'/>`,
		`<disable xmlns='urn:xmpp:push:0' jid='push.example.org' node='n1'/>`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, payload string) {
		st, err := element.FromBytes([]byte(`<iq type='set' id='fz'>` + payload + `</iq>`))
		if err != nil || st.Name != "iq" {
			return
		}
		if p, ok := st.Payload(); !ok || p.Name.Space != push.NS {
			return
		}
		st.From = alice.JID()
		alice.Take()
		core.Route(t.Context(), alice, st)
		got := alice.Take()
		if len(got) != 1 || got[0].ID != "fz" || (got[0].Type != "result" && got[0].Type != "error") {
			t.Fatalf("answers to %s: %d, want one iq result or error", payload, len(got))
		}
		regs, err := store.PushRegistrations(t.Context(), "localhost", "alice")
		if err != nil || len(regs) > 3 {
			t.Fatalf("%d registrations (%v), at most 3", len(regs), err)
		}
	})
}
