package server_test

import (
	"crypto/tls"
	"encoding/xml"
	"slices"
	"strings"
	"testing"

	"ottr.im/ottr/config"
	"ottr.im/ottr/internal/caps"
	"ottr.im/ottr/internal/xmpptest"
)

// TestServerCaps: the stream features after authentication carry the
// server's XEP-0115 capabilities (§6.3), whose ver is the hash of the
// server's disco#info as a client gets it, and disco#info answers at
// node#ver; that disco#info lists msgoffline (XEP-0160) and the contact
// addresses of [contact] (XEP-0157).
func TestServerCaps(t *testing.T) {
	ts := startServer(t, func(c *config.Config) {
		c.Contact.Abuse = []string{"mailto:abuse@localhost"}
		c.Contact.Security = []string{"xmpp:security@localhost", "https://localhost/security"}
	})
	r := xmpptest.DialRaw(t, ts.addr)
	r.Open(testHost)
	r.StartTLS(ts.tlsConfig(), testHost)
	if e := r.Auth("X-TOKEN", xtokenPayload(ts, t, "alice")); e.XMLName.Local != "success" {
		t.Fatalf("auth: %s", e)
	}
	features := r.Open(testHost)
	var c xmpptest.Element
	for _, f := range features.Children {
		if f.XMLName.Space == caps.NS && f.XMLName.Local == "c" {
			c = f
		}
	}
	if c.XMLName.Local == "" {
		t.Fatalf("no caps in the stream features %s", features)
	}
	node, ver := attr(c, "", "node"), attr(c, "", "ver")
	if attr(c, "", "hash") != "sha-1" || node == "" || ver == "" {
		t.Fatalf("caps %s", c)
	}

	alice := ts.online(t, "alice", "pc")
	parse := func(inner string) caps.Info {
		t.Helper()
		d := xml.NewDecoder(strings.NewReader(inner))
		tok, err := d.Token()
		if err != nil {
			t.Fatal(err)
		}
		info, err := caps.Parse(d, tok.(xml.StartElement))
		if err != nil {
			t.Fatalf("disco#info %s: %v", inner, err)
		}
		return info
	}
	res := alice.IQ(`<iq to='localhost' type='get' id='i1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`, "i1")
	info := parse(res.Inner)
	if got := info.Ver(); got != ver {
		t.Errorf("the stream features' ver %s, the disco#info hashes to %s", ver, got)
	}
	if !slices.Contains(info.Features, "msgoffline") {
		t.Errorf("msgoffline not in the server's features %v", info.Features)
	}
	want := caps.Form{Type: "http://jabber.org/network/serverinfo", Fields: []caps.Field{
		{Var: "abuse-addresses", Values: []string{"mailto:abuse@localhost"}},
		{Var: "security-addresses", Values: []string{"xmpp:security@localhost", "https://localhost/security"}},
	}}
	if len(info.Forms) != 1 || info.Forms[0].Type != want.Type || len(info.Forms[0].Fields) != 2 ||
		!slices.Equal(info.Forms[0].Fields[0].Values, want.Fields[0].Values) || !slices.Equal(info.Forms[0].Fields[1].Values, want.Fields[1].Values) {
		t.Errorf("forms %+v, want %+v", info.Forms, want)
	}

	res = alice.IQ(`<iq to='localhost' type='get' id='i2'><query xmlns='http://jabber.org/protocol/disco#info' node='`+node+`#`+ver+`'/></iq>`, "i2")
	if res.Type != "result" || parse(res.Inner).Ver() != ver {
		t.Errorf("disco#info at node#ver: %s %s", res.Type, res.Inner)
	}
}

// TestComplianceSuites runs, one by one, the checks of the compliance
// tester Conversations' users run against their server
// (github.com/iNPUTmice/ComplianceTester: the Advanced Server Core, IM
// and Mobile suites of XEP-0387 and the Conversations suite), each as
// that tester does it, plus its two checks outside the suites (XEP-0157,
// XEP-0160). XEP-0368's check resolves public SRV records, which a test
// cannot: its half here is a direct TLS handshake that verifies the
// certificate for the domain (the records are TestSRVRecords').
func TestComplianceSuites(t *testing.T) {
	ws := startWeb(t, func(c *config.Config) {
		c.Contact.Abuse = []string{"mailto:abuse@localhost"}
		// Off by default: its address must be one both clients reach.
		c.Proxy65.Listen = "127.0.0.1:0"
	})
	ts := ws.testServer
	features := loginFeatures(t, ts)
	alice := ts.online(t, "alice", "compliance")

	info := func(to string) (caps.Info, bool) {
		t.Helper()
		res := alice.IQ(`<iq to='`+to+`' type='get' id='info'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`, "info")
		if res.Type != "result" {
			return caps.Info{}, false
		}
		d := xml.NewDecoder(strings.NewReader(res.Inner))
		tok, err := d.Token()
		if err != nil {
			return caps.Info{}, false
		}
		in, err := caps.Parse(d, tok.(xml.StartElement))
		return in, err == nil
	}
	hasFeature := func(to string, any ...string) bool {
		in, ok := info(to)
		return ok && slices.ContainsFunc(any, func(f string) bool { return slices.Contains(in.Features, f) })
	}
	hasIdentity := func(to, category, typ string) bool {
		in, ok := info(to)
		return ok && slices.ContainsFunc(in.Identities, func(id caps.Identity) bool { return id.Category == category && id.Type == typ })
	}
	// AbstractServiceTest: the domain's items and the domain itself.
	service := func(ns string) bool {
		res := alice.IQ(`<iq to='localhost' type='get' id='items'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`, "items")
		jids := []string{testHost}
		d := xml.NewDecoder(strings.NewReader(res.Inner))
		for {
			tok, err := d.Token()
			if err != nil {
				break
			}
			if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "item" {
				for _, a := range se.Attr {
					if a.Name.Local == "jid" {
						jids = append(jids, a.Value)
					}
				}
			}
		}
		return slices.ContainsFunc(jids, func(j string) bool { return hasFeature(j, ns) })
	}
	feature := func(space, local string) bool {
		return slices.ContainsFunc(features, func(n xml.Name) bool { return n.Space == space && n.Local == local })
	}
	mam := []string{"urn:xmpp:mam:0", "urn:xmpp:mam:1", "urn:xmpp:mam:2"}
	const me = "alice@localhost"

	checks := []struct {
		name string
		ok   func() bool
	}{
		{"XEP-0115: Entity Capabilities", func() bool { return feature(caps.NS, "c") }},
		{"XEP-0163: Personal Eventing Protocol", func() bool { return hasIdentity(me, "pubsub", "pep") }},
		{"Roster Versioning", func() bool { return feature("urn:xmpp:features:rosterver", "ver") }},
		{"XEP-0280: Message Carbons", func() bool { return hasFeature(testHost, "urn:xmpp:carbons:2") }},
		{"XEP-0191: Blocking Command", func() bool { return hasFeature(testHost, "urn:xmpp:blocking") }},
		{"XEP-0045: Multi-User Chat", func() bool { return service("http://jabber.org/protocol/muc") }},
		{"XEP-0198: Stream Management", func() bool { return feature("urn:xmpp:sm:3", "sm") }},
		{"XEP-0313: Message Archive Management", func() bool { return hasFeature(me, mam...) }},
		{"XEP-0352: Client State Indication", func() bool { return feature("urn:xmpp:csi:0", "csi") }},
		{"XEP-0363: HTTP File Upload", func() bool { return service("urn:xmpp:http:upload:0") }},
		{"XEP-0065: SOCKS5 Bytestreams (Proxy)", func() bool { return service("http://jabber.org/protocol/bytestreams") }},
		{"XEP-0357: Push Notifications", func() bool { return hasFeature(me, "urn:xmpp:push:0") }},
		{"XEP-0368: SRV records for XMPP over TLS (the TLS half)", func() bool {
			cfg := ts.tlsConfig()
			cfg.ServerName = testHost
			conn, err := tls.Dial("tcp", ts.directTLS, cfg)
			if err != nil {
				return false
			}
			defer conn.Close()
			return conn.ConnectionState().PeerCertificates[0].VerifyHostname(testHost) == nil
		}},
		{"XEP-0384: OMEMO Encryption", func() bool {
			return hasFeature(me, "http://jabber.org/protocol/pubsub#publish-options", "eu.siacs.conversations.axolotl.whitelisted") &&
				hasIdentity(me, "pubsub", "pep")
		}},
		{"XEP-0313: Message Archive Management (MUC)", func() bool {
			service := ""
			for _, s := range []string{"conference." + testHost} {
				if hasIdentity(s, "conference", "text") {
					service = s
				}
			}
			if service == "" {
				return false
			}
			room := "compliance@" + service
			alice.Send(`<presence to='` + room + `/test'><x xmlns='http://jabber.org/protocol/muc'/></presence>`)
			alice.WaitFor(func(r xmpptest.Received) bool { return r.Name == "presence" && r.From == room+"/test" })
			defer alice.IQ(`<iq to='`+room+`' type='set' id='destroy'><query xmlns='http://jabber.org/protocol/muc#owner'><destroy/></query></iq>`, "destroy")
			res := alice.IQ(`<iq to='`+room+`' type='get' id='config'><query xmlns='http://jabber.org/protocol/muc#owner'/></iq>`, "config")
			if strings.Contains(res.Inner, `var="mam"`) || strings.Contains(res.Inner, `var='mam'`) {
				return true
			}
			return hasFeature(room, mam...)
		}},
		{"XEP-0157: Contact Addresses for XMPP Services", func() bool {
			in, ok := info(testHost)
			return ok && slices.ContainsFunc(in.Forms, func(f caps.Form) bool {
				return slices.ContainsFunc(f.Fields, func(fd caps.Field) bool { return fd.Var == "abuse-addresses" && len(fd.Values) > 0 })
			})
		}},
		{"XEP-0160: Best Practices for Handling Offline Messages", func() bool { return hasFeature(testHost, "msgoffline") }},
	}
	passed := 0
	for _, c := range checks {
		result := "PASSED"
		if c.ok() {
			passed++
		} else {
			result = "FAILED"
			t.Errorf("%s: FAILED", c.name)
		}
		t.Logf("running %s…\t%s", c.name, result)
	}
	t.Logf("passed %d/%d", passed, len(checks))
}

// loginFeatures logs alice in by hand and returns the names of every
// stream feature the server listed on the way (before TLS, after it, and
// after authentication), as the tester's StreamFeaturesManager collects
// them.
func loginFeatures(t *testing.T, ts *testServer) []xml.Name {
	t.Helper()
	r := xmpptest.DialRaw(t, ts.addr)
	var names []xml.Name
	add := func(e xmpptest.Element) {
		for _, c := range e.Children {
			names = append(names, c.XMLName)
		}
	}
	add(r.Open(testHost))
	add(r.StartTLS(ts.tlsConfig(), testHost))
	if e := r.Auth("X-TOKEN", xtokenPayload(ts, t, "alice")); e.XMLName.Local != "success" {
		t.Fatalf("auth: %s", e)
	}
	add(r.Open(testHost))
	r.Close()
	return names
}
