package server_test

import (
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
