package mam_test

import (
	"testing"

	"ottr.im/ottr/element"
	"ottr.im/ottr/internal/routertest"
	"ottr.im/ottr/mod/mam"
)

// FuzzQuery sends the archive any query and prefs payload a client could
// send: whatever the form, RSM set or prefs hold, the module answers with
// exactly one iq, last, and does not panic.
func FuzzQuery(f *testing.F) {
	core, store := routertest.New(f)
	mod, err := mam.Register(core, store, mam.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(mod.Close)
	alice := routertest.Bind(f, core, "alice@localhost/a")
	bob := routertest.Bind(f, core, "bob@localhost/b")
	for i := 0; i < 5; i++ {
		routertest.Send(f, core, bob, `<message to='alice@localhost/a' type='chat'><body>hello</body></message>`)
	}
	mod.Flush()
	for _, seed := range []string{
		`<query xmlns='urn:xmpp:mam:2' queryid='q'/>`,
		`<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:xmpp:mam:2</value></field><field var='with'><value>bob@localhost</value></field><field var='start'><value>2010-08-07T00:00:00Z</value></field></x><set xmlns='http://jabber.org/protocol/rsm'><max>2</max><before/></set></query>`,
		`<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='submit'><field var='ids'><value>a</value><value>b</value></field></x></query>`,
		`<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><max>-1</max><after>zzz</after></set><flip-page/></query>`,
		`<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='submit'><field var='end'><value>not a date</value></field><field var='before-id'/></x></query>`,
		`<prefs xmlns='urn:xmpp:mam:2' default='roster'><always><jid>bob@localhost</jid></always><never><jid>@@</jid></never></prefs>`,
		`<metadata xmlns='urn:xmpp:mam:2'/>`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, payload string) {
		for _, typ := range []string{"set", "get"} {
			st, err := element.FromBytes([]byte(`<iq type='` + typ + `' id='fz'>` + payload + `</iq>`))
			if err != nil || st.Name != "iq" {
				return // not a stanza the framer would let through
			}
			if p, ok := st.Payload(); !ok || p.Name.Space != mam.NS {
				return // not the archive's
			}
			st.From = alice.JID()
			alice.Take()
			core.Route(t.Context(), alice, st)
			got := alice.Take()
			if len(got) == 0 {
				t.Fatalf("no answer to %s", payload)
			}
			last := got[len(got)-1]
			if last.Name != "iq" || last.ID != "fz" || (last.Type != "result" && last.Type != "error") {
				t.Fatalf("the last answer to %s is %s", payload, last.AppendXML(nil))
			}
			for _, r := range got[:len(got)-1] {
				if r.Name == "iq" {
					t.Fatalf("two iq answers to %s", payload)
				}
			}
		}
	})
}
