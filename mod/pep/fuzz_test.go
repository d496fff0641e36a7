package pep_test

import (
	"context"
	"encoding/xml"
	"strings"
	"testing"

	"ottr.im/ottr/element"
	"ottr.im/ottr/internal/caps"
	"ottr.im/ottr/internal/routertest"
	"ottr.im/ottr/mod/pep"
	"ottr.im/ottr/router"
)

// FuzzPubSub sends the PEP service any <pubsub/> payload a client could
// send, publish-options and configuration forms included, in either
// namespace: it answers exactly one iq, does not panic, and the user's
// nodes stay within their bound.
func FuzzPubSub(f *testing.F) {
	core, store := routertest.New(f)
	if _, err := pep.Register(core, store, pep.Options{MaxNodes: 3, MaxItems: 4, MaxItemBytes: 512, MaxBytes: 2048}); err != nil {
		f.Fatal(err)
	}
	alice := routertest.Bind(f, core, "alice@localhost/a")
	form := `<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>` +
		`<field var='pubsub#access_model'><value>open</value></field><field var='pubsub#max_items'><value>max</value></field>` +
		`<field var='pubsub#persist_items'><value>1</value></field><field var='pubsub#send_last_published_item'><value>never</value></field></x>`
	for _, seed := range []string{
		`<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='n'><item id='1'><x xmlns='urn:e'/></item></publish></pubsub>`,
		`<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='n'><item><x xmlns='urn:e'/></item></publish><publish-options>` + form + `</publish-options></pubsub>`,
		`<pubsub xmlns='http://jabber.org/protocol/pubsub'><retract node='n' notify='1'><item id='1'/></retract></pubsub>`,
		`<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='n' max_items='2'><item id='1'/></items></pubsub>`,
		`<pubsub xmlns='http://jabber.org/protocol/pubsub'><create node='m'/><configure>` + strings.Replace(form, "publish-options", "node_config", 1) + `</configure></pubsub>`,
		`<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='n'>` + strings.Replace(form, "publish-options", "node_config", 1) + `</configure></pubsub>`,
		`<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><delete node='n'/></pubsub>`,
		`<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><purge node='n'/></pubsub>`,
		`<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><default/></pubsub>`,
		`<pubsub xmlns='http://jabber.org/protocol/pubsub'><subscribe node='n' jid='alice@localhost'/></pubsub>`,
	} {
		f.Add("set", seed)
		f.Add("get", seed)
	}
	f.Fuzz(func(t *testing.T, typ, payload string) {
		st, err := element.FromBytes([]byte(`<iq type='` + typ + `' id='fz'>` + payload + `</iq>`))
		if err != nil || !st.IsIQRequest() {
			return
		}
		if p, ok := st.Payload(); !ok || p.Name.Local != "pubsub" || !strings.HasPrefix(p.Name.Space, "http://jabber.org/protocol/pubsub") {
			return
		}
		st.From = alice.JID()
		alice.Take()
		core.Route(t.Context(), alice, st)
		n := 0
		for _, got := range alice.Take() {
			if got.Name == "iq" {
				if got.ID != "fz" || (got.Type != "result" && got.Type != "error") {
					t.Fatalf("answer %s to %s", routertest.XML(t, got), payload)
				}
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%d answers to %s, want 1", n, payload)
		}
		nodes, err := store.PEPNodes(t.Context(), "localhost", "alice")
		if err != nil || len(nodes) > 3 {
			t.Fatalf("%d nodes (%v), at most 3", len(nodes), err)
		}
		for _, node := range nodes {
			if node.MaxItems < 1 || node.MaxItems > 4 {
				t.Fatalf("node %+v: max_items beyond 1 to 4", node)
			}
		}
	})
}

// FuzzCapsAnswer answers the server's capability query with any
// disco#info a client could send: no panic, and a forged answer is never
// shared with a session that advertises the same ver.
func FuzzCapsAnswer(f *testing.F) {
	core, store := routertest.New(f)
	if _, err := pep.Register(core, store, pep.Options{CapsCache: 4, CapsQueries: 4}); err != nil {
		f.Fatal(err)
	}
	real := caps.Info{Identities: []caps.Identity{{Category: "client", Type: "pc"}}, Features: []string{"urn:e:n+notify"}}
	for _, seed := range []string{
		queryXML(real, "x"),
		`<query xmlns='http://jabber.org/protocol/disco#info'><feature var='a+notify'/><feature var='a+notify'/></query>`,
		`<query xmlns='http://jabber.org/protocol/disco#info'><x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE'><value>a</value></field></x></query>`,
		`<query xmlns='urn:other'/>`,
	} {
		f.Add(seed, real.Ver())
	}
	f.Fuzz(func(t *testing.T, answer, ver string) {
		var esc strings.Builder
		if xml.EscapeText(&esc, []byte(ver)) != nil {
			return
		}
		presence := `<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='x' ver='` +
			strings.ReplaceAll(esc.String(), "'", "&apos;") + `'/></presence>`
		if _, err := element.FromBytes([]byte(presence)); err != nil {
			return
		}
		// online makes a session of user available with the presence
		// and reports the capability query it was sent, if any; it is
		// unbound when the run ends.
		online := func(user string) (*routertest.Target, *element.Stanza) {
			tg := routertest.Bind(t, core, user+"@localhost/r")
			t.Cleanup(func() { core.Unbind(context.Background(), tg) })
			st := routertest.Stanza(t, presence)
			st.From = tg.JID()
			core.SetPresence(tg, st, 0)
			core.Fire(router.PresenceBroadcast, &router.EventData{Ctx: t.Context(), Target: tg, Stanza: st})
			for _, got := range tg.Take() {
				if got.Name == "iq" {
					return tg, got
				}
			}
			return tg, nil
		}
		first, q := online("a")
		if q == nil {
			return // a ver cached before, or no valid caps
		}
		reply, err := element.FromBytes([]byte(`<iq type='result' id='` + q.ID + `' to='localhost'>` + answer + `</iq>`))
		if err != nil {
			return
		}
		reply.From = first.JID()
		core.Route(t.Context(), first, reply)
		if _, q2 := online("b"); q2 == nil {
			// Served from the cache: the answer must hash to ver.
			d := xml.NewDecoder(strings.NewReader(answer))
			tok, err := d.Token()
			start, ok := tok.(xml.StartElement)
			if err != nil || !ok {
				t.Fatalf("a ver cached from the answer %q, which is no element", answer)
			}
			info, err := caps.Parse(d, start)
			if err != nil || info.Ver() != ver {
				t.Fatalf("the answer %q (%v) was shared for ver %q", answer, err, ver)
			}
		}
	})
}
