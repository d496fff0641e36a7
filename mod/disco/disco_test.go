package disco_test

import (
	"context"
	"encoding/xml"
	"strings"
	"testing"

	"ottr.im/ottr/element"
	"ottr.im/ottr/internal/caps"
	"ottr.im/ottr/internal/routertest"
	"ottr.im/ottr/mod/disco"
	"ottr.im/ottr/router"
)

func TestDisco(t *testing.T) {
	core, store := routertest.New(t)
	if _, err := disco.Register(core, disco.Options{}); err != nil {
		t.Fatal(err)
	}
	// A module registered after disco: its feature is listed all the
	// same.
	err := core.HandleIQ(xml.Name{Space: "urn:example:a", Local: "a"}, router.AtServer, "urn:example:a",
		router.IQHandlerFunc(func(context.Context, router.IQRequest) (xml.TokenReader, error) { return nil, nil }))
	if err != nil {
		t.Fatal(err)
	}
	// Services on subdomains of the host are its items; another
	// domain's are not.
	for _, d := range []string{"upload.localhost", "conference.localhost", "conference.example.org"} {
		if err := core.AddDomain(d, router.DomainHandlerFunc(func(context.Context, router.Target, *element.Stanza) {})); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := store.EnsureAccount(context.Background(), routertest.Host, "bob"); err != nil {
		t.Fatal(err)
	}
	alice := routertest.Bind(t, core, "alice@localhost/home")
	const (
		head      = `<iq xmlns="jabber:client" from="`
		to        = `" to="alice@localhost/home" id="`
		badReq    = `<error type="cancel"><bad-request xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"></bad-request></error></iq>`
		notFound  = `<error type="cancel"><item-not-found xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"></item-not-found></error></iq>`
		account   = `<query xmlns="http://jabber.org/protocol/disco#info"><identity category="account" type="registered"></identity><feature var="http://jabber.org/protocol/disco#info"></feature></query></iq>`
		infoQuery = `<query xmlns="http://jabber.org/protocol/disco#info"></query>`
	)
	for _, tc := range []struct{ send, want string }{
		{`<iq to="localhost" id="1" type="get"><query xmlns="http://jabber.org/protocol/disco#info"/></iq>`,
			head + "localhost" + to + `1" type="result"><query xmlns="http://jabber.org/protocol/disco#info"><identity category="server" type="im" name="ottr"></identity>` +
				`<feature var="http://jabber.org/protocol/disco#info"></feature><feature var="http://jabber.org/protocol/disco#items"></feature><feature var="urn:example:a"></feature></query></iq>`},
		{`<iq to="localhost" id="2" type="get"><query xmlns="http://jabber.org/protocol/disco#info" node="x"/></iq>`,
			head + "localhost" + to + `2" type="error"><query xmlns="http://jabber.org/protocol/disco#info" node="x"></query>` + notFound},
		{`<iq to="localhost" id="3" type="set"><query xmlns="http://jabber.org/protocol/disco#info"/></iq>`,
			head + "localhost" + to + `3" type="error">` + infoQuery + badReq},
		{`<iq id="4" type="get"><query xmlns="http://jabber.org/protocol/disco#info"/></iq>`,
			head + "alice@localhost" + to + `4" type="result">` + account},
		{`<iq to="bob@localhost" id="5" type="get"><query xmlns="http://jabber.org/protocol/disco#info"/></iq>`,
			head + "bob@localhost" + to + `5" type="result">` + account},
		{`<iq to="nobody@localhost" id="6" type="get"><query xmlns="http://jabber.org/protocol/disco#info"/></iq>`,
			head + "nobody@localhost" + to + `6" type="error">` + infoQuery + notFound},
		{`<iq to="bob@localhost" id="7" type="get"><query xmlns="http://jabber.org/protocol/disco#info" node="n"/></iq>`,
			head + "bob@localhost" + to + `7" type="error"><query xmlns="http://jabber.org/protocol/disco#info" node="n"></query>` + notFound},
		{`<iq to="bob@localhost" id="8" type="set"><query xmlns="http://jabber.org/protocol/disco#info"/></iq>`,
			head + "bob@localhost" + to + `8" type="error">` + infoQuery + badReq},
		{`<iq to="localhost" id="9" type="get"><query xmlns="http://jabber.org/protocol/disco#items"/></iq>`,
			head + "localhost" + to + `9" type="result"><query xmlns="http://jabber.org/protocol/disco#items"><item jid="conference.localhost"></item><item jid="upload.localhost"></item></query></iq>`},
		{`<iq to="localhost" id="9n" type="get"><query xmlns="http://jabber.org/protocol/disco#items" node="x"/></iq>`,
			head + "localhost" + to + `9n" type="result"><query xmlns="http://jabber.org/protocol/disco#items"></query></iq>`},
		{`<iq to="bob@localhost" id="10" type="get"><query xmlns="http://jabber.org/protocol/disco#items"/></iq>`,
			head + "bob@localhost" + to + `10" type="result"><query xmlns="http://jabber.org/protocol/disco#items"></query></iq>`},
		{`<iq id="11" type="set"><query xmlns="http://jabber.org/protocol/disco#items"/></iq>`,
			head + "localhost" + to + `11" type="error"><query xmlns="http://jabber.org/protocol/disco#items"></query>` + badReq},
	} {
		if got := routertest.Ask(t, core, alice, tc.send); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.send, got, tc.want)
		}
	}
}

// TestContactsAndCaps: the XEP-0157 form is in the server's disco#info,
// the caps ver hashes that result, and the node#ver answers it.
func TestContactsAndCaps(t *testing.T) {
	core, _ := routertest.New(t)
	if _, err := disco.Register(core, disco.Options{Contacts: map[string][]string{"nonsense": {"x"}}}); err == nil {
		t.Error("an unknown contact field was accepted")
	}
	core, _ = routertest.New(t)
	m, err := disco.Register(core, disco.Options{Contacts: map[string][]string{
		"abuse": {"mailto:abuse@example.org", "xmpp:abuse@example.org"},
		"admin": {"xmpp:admin@example.org"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	alice := routertest.Bind(t, core, "alice@localhost/home")
	const result = `<identity category="server" type="im" name="ottr"></identity>` +
		`<feature var="http://jabber.org/protocol/disco#info"></feature><feature var="http://jabber.org/protocol/disco#items"></feature>` +
		`<x xmlns="jabber:x:data" type="result"><field var="FORM_TYPE" type="hidden"><value>http://jabber.org/network/serverinfo</value></field>` +
		`<field var="abuse-addresses"><value>mailto:abuse@example.org</value><value>xmpp:abuse@example.org</value></field>` +
		`<field var="admin-addresses"><value>xmpp:admin@example.org</value></field></x></query></iq>`
	got := routertest.Ask(t, core, alice, `<iq to="localhost" id="1" type="get"><query xmlns="http://jabber.org/protocol/disco#info"/></iq>`)
	if want := `<iq xmlns="jabber:client" from="localhost" to="alice@localhost/home" id="1" type="result"><query xmlns="http://jabber.org/protocol/disco#info">` + result; got != want {
		t.Errorf("disco#info:\n got %s\nwant %s", got, want)
	}
	// The ver is the hash of what was just answered.
	d := xml.NewDecoder(strings.NewReader(got))
	var ver string
	for {
		tok, err := d.Token()
		if err != nil {
			t.Fatal(err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "query" {
			info, err := caps.Parse(d, se)
			if err != nil {
				t.Fatal(err)
			}
			ver = info.Ver()
			break
		}
	}
	if m.Ver() != ver {
		t.Errorf("caps ver %s, want %s (the hash of the disco#info result)", m.Ver(), ver)
	}
	c := m.Caps()
	if c.Name.Space != caps.NS || len(c.Attr) != 3 || c.Attr[2].Value != ver {
		t.Errorf("caps element %+v", c)
	}
	node := disco.CapsNode + "#" + ver
	got = routertest.Ask(t, core, alice, `<iq to="localhost" id="2" type="get"><query xmlns="http://jabber.org/protocol/disco#info" node="`+node+`"/></iq>`)
	if want := `<iq xmlns="jabber:client" from="localhost" to="alice@localhost/home" id="2" type="result"><query xmlns="http://jabber.org/protocol/disco#info" node="` + node + `">` + result; got != want {
		t.Errorf("disco#info at node#ver:\n got %s\nwant %s", got, want)
	}
	got = routertest.Ask(t, core, alice, `<iq to="localhost" id="3" type="get"><query xmlns="http://jabber.org/protocol/disco#info" node="`+disco.CapsNode+`#wrong"/></iq>`)
	if !strings.Contains(got, "item-not-found") {
		t.Errorf("disco#info at a wrong ver: %s", got)
	}
}
