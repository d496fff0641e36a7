package muc_test

import (
	"context"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"ottr.im/ottr/element"
	"ottr.im/ottr/internal/routertest"
	"ottr.im/ottr/mod/muc"
	"ottr.im/ottr/router"
)

// FuzzRoomRequests sends what an occupant may send a persistent, archived
// room: an iq get or set (the owner's configuration form, admin items,
// destroy, archive queries, moderation, the room's vCard, anything),
// and a join whose <x/> carries anything (history, password). Whatever
// it is, the iq gets exactly one answer, nothing panics, and the room's
// bounds hold.
func FuzzRoomRequests(f *testing.F) {
	for _, seed := range []struct{ typ, payload, join string }{
		{"set", `<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_maxusers'><value>5</value></field><field var='muc#maxhistoryfetch'><value>-3</value></field></x></query>`, `<history maxstanzas='-1' seconds='99999999999'/>`},
		{"set", `<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_passwordprotectedroom'><value>1</value></field><field var='muc#roomconfig_roomsecret'><value>pw</value></field></x></query>`, `<password>pw</password>`},
		{"set", `<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='cancel'/></query>`, ``},
		{"set", `<query xmlns='http://jabber.org/protocol/muc#owner'><destroy jid='x@y'><reason>r</reason></destroy></query>`, ``},
		{"set", `<query xmlns='http://jabber.org/protocol/muc#admin'><item nick='bob' role='none'/><item jid='bob@localhost' affiliation='outcast'/></query>`, `<history since='1970-01-01T00:00:00Z' maxchars='10'/>`},
		{"set", `<query xmlns='http://jabber.org/protocol/muc#admin'><item jid='alice@localhost' affiliation='admin'/></query>`, ``},
		{"get", `<query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='owner'/></query>`, ``},
		{"get", `<query xmlns='http://jabber.org/protocol/disco#info'/>`, ``},
		{"set", `<query xmlns='http://jabber.org/protocol/muc#admin'><item nick='bob' role='moderator'/></query>`, ``},
		{"set", `<query xmlns='urn:xmpp:mam:2' queryid='q'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:xmpp:mam:2</value></field><field var='start'><value>2020-01-01T00:00:00Z</value></field></x><set xmlns='http://jabber.org/protocol/rsm'><max>1</max><before/></set></query>`, ``},
		{"set", `<moderate xmlns='urn:xmpp:message-moderate:1' id='x'><retract xmlns='urn:xmpp:message-retract:1'/></moderate>`, ``},
		{"set", `<apply-to xmlns='urn:xmpp:fasten:0' id='x'><moderate xmlns='urn:xmpp:message-moderate:0'><retract xmlns='urn:xmpp:message-retract:0'/></moderate></apply-to>`, ``},
		{"set", `<vCard xmlns='vcard-temp'><FN>R</FN><PHOTO><TYPE>image/png</TYPE><BINVAL>iVBO Rw==</BINVAL></PHOTO></vCard>`, ``},
		{"get", `<vCard xmlns='vcard-temp'/>`, ``},
	} {
		f.Add(seed.typ, seed.payload, seed.join)
	}
	_, store := routertest.New(f)
	f.Fuzz(func(t *testing.T, typ, payload, join string) {
		if typ != "get" && typ != "set" {
			typ = "set"
		}
		iq, err := element.FromBytes([]byte(`<iq xmlns='jabber:client' type='` + typ + `' id='fz' to='` + room + `'>` + payload + `</iq>`))
		if err != nil {
			t.Skip()
		}
		pres, err := element.FromBytes([]byte(`<presence xmlns='jabber:client' to='` + room + `/bob'><x xmlns='http://jabber.org/protocol/muc'>` + join + `</x></presence>`))
		if err != nil {
			t.Skip()
		}
		ctx := context.Background()
		defer store.DeleteMUCRoom(ctx, svc, "room")
		// A new core over the same store: each input starts from the
		// stored rooms only, and the store is emptied after it.
		c := router.New(router.Options{Hosts: []string{routertest.Host}, Accounts: store})
		fx := register(t, c, store, muc.Options{Rate: 1000, ArchiveMessages: 10})
		alice := routertest.Bind(t, fx.core, "alice@localhost/a")
		bob := routertest.Bind(t, fx.core, "bob@localhost/b")
		create(t, fx, alice, field("muc#roomconfig_persistentroom", "1"))
		routertest.Send(t, fx.core, alice, `<message type='groupchat' to='`+room+`'><body>archived</body></message>`)
		alice.Take()
		pres.From = bob.JID()
		fx.core.Route(ctx, bob, pres)
		bob.Take()
		iq.From = alice.JID()
		fx.core.Route(ctx, alice, iq)
		answers := 0
		for _, st := range alice.Take() {
			if st.Name == "iq" && st.ID == "fz" {
				answers++
			}
		}
		if answers != 1 {
			t.Fatalf("%d answers to %s", answers, payload)
		}
		if n := fx.mod.Occupants(jid.MustParse(room)); n > 2 {
			t.Fatalf("%d occupants", n)
		}
		// Whatever happened, the room still works or is gone.
		routertest.Send(t, fx.core, alice, `<message type='groupchat' to='`+room+`'><body>after</body></message>`)
		for _, st := range alice.Take() {
			if x := routertest.XML(t, st); st.Type == "error" && !strings.Contains(x, "item-not-found") && !strings.Contains(x, "not-acceptable") && !strings.Contains(x, "forbidden") {
				t.Fatalf("a message after %s: %s", payload, x)
			}
		}
	})
}
