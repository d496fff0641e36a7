package server_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"ottr.im/ottr/auth"
	"ottr.im/ottr/config"
	"ottr.im/ottr/internal/caps"
	"ottr.im/ottr/internal/xmpptest"
)

// capsClient is a client with XEP-0115 capabilities: it sends them in its
// presence and answers the server's disco#info query with its features
// (the +notify of nodes), which xmpptest's client cannot.
type capsClient struct {
	t    *testing.T
	sess *xmpp.Session
	JID  jid.JID
	info caps.Info

	mu      sync.Mutex
	in      chan xmpptest.Received
	backlog []xmpptest.Received
}

// capsLogin logs user in with resource; its disco#info names nodes with
// +notify.
func (ts *testServer) capsLogin(t *testing.T, user, resource string, nodes ...string) *capsClient {
	t.Helper()
	info := caps.Info{Identities: []caps.Identity{{Category: "client", Type: "pc", Name: "ottr test"}},
		Features: []string{caps.NS, caps.NSInfo}}
	for _, n := range nodes {
		info.Features = append(info.Features, n+"+notify")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	origin := jid.MustParse(user + "@" + testHost)
	sess, err := xmpp.NewClientSession(ctx, origin, conn, xmpp.StartTLS(ts.tlsConfig()),
		xmpp.SASL("", ts.token(t, user), auth.XToken), xmpptest.BindResource(resource))
	if err != nil {
		conn.Close()
		t.Fatalf("login %s: %v", user, err)
	}
	c := &capsClient{t: t, sess: sess, JID: sess.LocalAddr(), info: info, in: make(chan xmpptest.Received, 1024)}
	go func() { _ = sess.Serve(xmpp.HandlerFunc(c.handle)) }()
	t.Cleanup(func() { sess.Close(); conn.Close() })
	return c
}

func (c *capsClient) handle(r xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	var buf bytes.Buffer
	enc := xml.NewEncoder(&buf)
	if _, err := xmlstream.Copy(enc, xmlstream.MultiReader(xmlstream.Token(*start), r)); err != nil {
		return err
	}
	if err := enc.Flush(); err != nil {
		return err
	}
	var el struct {
		From  string `xml:"from,attr"`
		To    string `xml:"to,attr"`
		Type  string `xml:"type,attr"`
		ID    string `xml:"id,attr"`
		Inner []byte `xml:",innerxml"`
	}
	if err := xml.Unmarshal(buf.Bytes(), &el); err != nil {
		return err
	}
	if start.Name.Local == "iq" && el.Type == "get" && bytes.Contains(el.Inner, []byte(caps.NSInfo)) {
		var q strings.Builder
		q.WriteString(`<iq xmlns='jabber:client' type='result' id='` + el.ID + `' to='` + el.From + `'><query xmlns='http://jabber.org/protocol/disco#info'>`)
		for _, id := range c.info.Identities {
			fmt.Fprintf(&q, `<identity category='%s' type='%s' name='%s'/>`, id.Category, id.Type, id.Name)
		}
		for _, f := range c.info.Features {
			fmt.Fprintf(&q, `<feature var='%s'/>`, f)
		}
		q.WriteString(`</query></iq>`)
		_, err := xmlstream.Copy(r, xml.NewDecoder(strings.NewReader(q.String())))
		return err
	}
	c.in <- xmpptest.Received{Name: start.Name.Local, From: el.From, To: el.To, Type: el.Type, ID: el.ID, Inner: string(el.Inner)}
	return nil
}

func (c *capsClient) send(x string) {
	c.t.Helper()
	w := c.sess.TokenWriter()
	defer w.Close()
	if _, err := xmlstream.Copy(w, xml.NewDecoder(strings.NewReader(x))); err != nil && err.Error() != "EOF" {
		c.t.Fatalf("send: %v", err)
	}
	if err := w.Flush(); err != nil {
		c.t.Fatalf("flush: %v", err)
	}
}

// waitFor returns the first element match accepts, keeping the others.
func (c *capsClient) waitFor(match func(xmpptest.Received) bool) xmpptest.Received {
	c.t.Helper()
	for i, r := range c.backlog {
		if match(r) {
			c.backlog = append(c.backlog[:i:i], c.backlog[i+1:]...)
			return r
		}
	}
	deadline := time.After(2 * xmpptest.Timeout)
	for {
		select {
		case r := <-c.in:
			if match(r) {
				return r
			}
			c.backlog = append(c.backlog, r)
		case <-deadline:
			c.t.Fatalf("%s: nothing matching arrived", c.JID)
			return xmpptest.Received{}
		}
	}
}

// none fails if an element match accepts arrives within d.
func (c *capsClient) none(d time.Duration, match func(xmpptest.Received) bool) {
	c.t.Helper()
	deadline := time.After(d)
	for {
		for _, r := range c.backlog {
			if match(r) {
				c.t.Fatalf("%s: unexpected %+v", c.JID, r)
			}
		}
		select {
		case r := <-c.in:
			c.backlog = append(c.backlog, r)
		case <-deadline:
			return
		}
	}
}

func (c *capsClient) iq(x, id string) xmpptest.Received {
	c.t.Helper()
	c.send(x)
	return c.waitFor(func(r xmpptest.Received) bool { return r.Name == "iq" && r.ID == id })
}

// online sends presence with the client's caps (none when bare) and
// waits for it to come back.
func (c *capsClient) online(bare bool) *capsClient {
	c.t.Helper()
	capsEl := ""
	if !bare {
		capsEl = `<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://ottr.im/test' ver='` + c.info.Ver() + `'/>`
	}
	c.send(`<presence>` + capsEl + `</presence>`)
	c.waitFor(func(r xmpptest.Received) bool { return r.Name == "presence" && r.From == c.JID.String() })
	// The server reads a session's stanzas in order: once the ping is
	// answered, so is the disco#info query the presence caused.
	c.iq(`<iq type='get' id='online-ping'><ping xmlns='urn:xmpp:ping'/></iq>`, "online-ping")
	return c
}

func isEvent(node string) func(xmpptest.Received) bool {
	return func(r xmpptest.Received) bool {
		return r.Name == "message" && strings.Contains(r.Inner, "pubsub#event") && strings.Contains(r.Inner, `node="`+node+`"`)
	}
}

// subscribe makes contact subscribed to user's presence (and back), with
// xmpptest clients that then leave.
func subscribe(t *testing.T, ts *testServer, user, contact string) {
	t.Helper()
	a := ts.online(t, user, "setup")
	b := ts.online(t, contact, "setup")
	xmpptest.SubscribeBoth(t, a, b)
	a.Close()
	b.Close()
}

func pubXML(id, node, itemID, payload, opts string) string {
	if opts != "" {
		opts = `<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>` + opts + `</x></publish-options>`
	}
	return fmt.Sprintf(`<iq type='set' id='%s'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='%s'><item id='%s'>%s</item></publish>%s</pubsub></iq>`, id, node, itemID, payload, opts)
}

func optField(v, value string) string {
	return fmt.Sprintf(`<field var='%s'><value>%s</value></field>`, v, value)
}

// Publishing with each access model: the owner's other resource and a
// subscribed contact with +notify get the event (not for whitelist); a
// subscribed contact without +notify, one whose presence has no caps and
// one not subscribed do not. Reading follows the access model.
func TestPEPAccessModels(t *testing.T) {
	ts := startServer(t, nil)
	const node = "http://jabber.org/protocol/mood"
	subscribe(t, ts, "alice", "bob")
	subscribe(t, ts, "alice", "carol")
	subscribe(t, ts, "alice", "erin")
	alice := ts.capsLogin(t, "alice", "a", node).online(false)
	alice2 := ts.capsLogin(t, "alice", "b", node).online(false)
	bob := ts.capsLogin(t, "bob", "b", node).online(false)
	carol := ts.capsLogin(t, "carol", "c").online(false)    // caps without +notify
	erin := ts.capsLogin(t, "erin", "e", node).online(true) // no caps in presence
	dave := ts.capsLogin(t, "dave", "d", node).online(false)
	for i, tc := range []struct {
		access    string
		bobGets   bool
		daveReads string
	}{{"open", true, ""}, {"presence", true, "presence-subscription-required"}, {"whitelist", false, "closed-node"}} {
		id := fmt.Sprint("p", i)
		mood := `<mood xmlns='http://jabber.org/protocol/mood'><happy/><text>` + tc.access + `</text></mood>`
		r := alice.iq(pubXML(id, node, id, mood, optField("pubsub#access_model", tc.access)), id)
		if r.Type != "result" {
			// The node exists with another access model: configure it.
			if !strings.Contains(r.Inner, "precondition-not-met") {
				t.Fatalf("%s: publish: %+v", tc.access, r)
			}
			cfg := alice.iq(`<iq type='set' id='cfg`+id+`'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='`+node+`'><x xmlns='jabber:x:data' type='submit'>`+optField("pubsub#access_model", tc.access)+`</x></configure></pubsub></iq>`, "cfg"+id)
			if cfg.Type != "result" {
				t.Fatalf("%s: configure: %+v", tc.access, cfg)
			}
			if r = alice.iq(pubXML(id+"b", node, id, mood, optField("pubsub#access_model", tc.access)), id+"b"); r.Type != "result" {
				t.Fatalf("%s: publish after configure: %+v", tc.access, r)
			}
		}
		mine := func(r xmpptest.Received) bool { return isEvent(node)(r) && strings.Contains(r.Inner, tc.access) }
		alice.waitFor(mine)
		alice2.waitFor(mine)
		if tc.bobGets {
			if ev := bob.waitFor(mine); ev.From != "alice@"+testHost || ev.Type != "headline" {
				t.Fatalf("%s: bob's event %+v", tc.access, ev)
			}
		} else {
			bob.none(time.Second, mine)
		}
		for _, c := range []*capsClient{carol, erin, dave} {
			c.none(300*time.Millisecond, mine)
		}
		get := `<iq type='get' id='g` + id + `' to='alice@` + testHost + `'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='` + node + `'/></pubsub></iq>`
		r = dave.iq(get, "g"+id)
		if tc.daveReads == "" {
			if r.Type != "result" || !strings.Contains(r.Inner, tc.access) {
				t.Fatalf("%s: dave reads %+v", tc.access, r)
			}
		} else if r.Type != "error" || !strings.Contains(r.Inner, tc.daveReads) {
			t.Fatalf("%s: dave reads %+v, want %s", tc.access, r, tc.daveReads)
		}
	}
}

// publish-options that the node does not meet: conflict with
// precondition-not-met, nothing published.
func TestPEPPreconditionNotMet(t *testing.T) {
	ts := startServer(t, nil)
	alice := ts.capsLogin(t, "alice", "a").online(false)
	const node = "eu.siacs.conversations.axolotl.devicelist"
	list := `<list xmlns='eu.siacs.conversations.axolotl'><device id='1'/></list>`
	if r := alice.iq(pubXML("1", node, "current", list, optField("pubsub#access_model", "open")), "1"); r.Type != "result" {
		t.Fatalf("publish: %+v", r)
	}
	r := alice.iq(pubXML("2", node, "current", `<list xmlns='eu.siacs.conversations.axolotl'/>`, optField("pubsub#access_model", "whitelist")), "2")
	if r.Type != "error" || !strings.Contains(r.Inner, "<conflict") || !strings.Contains(r.Inner, "precondition-not-met") {
		t.Fatalf("publish with unmet options: %+v", r)
	}
	items := alice.iq(`<iq type='get' id='3'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='`+node+`'/></pubsub></iq>`, "3")
	if !strings.Contains(items.Inner, `id="1"`) {
		t.Fatalf("the refused publish replaced the item: %+v", items)
	}
}

// The last item reaches a contact coming online once its caps are known,
// with a delay stamp; the account's disco#info has the pep identity.
func TestPEPLastItemOnline(t *testing.T) {
	ts := startServer(t, nil)
	const node = "urn:xmpp:avatar:metadata"
	subscribe(t, ts, "alice", "bob")
	alice := ts.capsLogin(t, "alice", "a").online(false)
	meta := `<metadata xmlns='urn:xmpp:avatar:metadata'><info bytes='5' id='abc' height='1' width='1' type='image/png'/></metadata>`
	if r := alice.iq(pubXML("1", node, "abc", meta, ""), "1"); r.Type != "result" {
		t.Fatalf("publish: %+v", r)
	}
	bob := ts.capsLogin(t, "bob", "b", node).online(false)
	ev := bob.waitFor(isEvent(node))
	if !strings.Contains(ev.Inner, `id="abc"`) || !strings.Contains(ev.Inner, "urn:xmpp:delay") {
		t.Fatalf("last item: %+v", ev)
	}
	info := bob.iq(`<iq type='get' id='d' to='alice@`+testHost+`'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`, "d")
	if !strings.Contains(info.Inner, `category="pubsub"`) || !strings.Contains(info.Inner, `type="pep"`) || !strings.Contains(info.Inner, "pubsub#publish") {
		t.Fatalf("account disco#info: %+v", info)
	}
}

// Bookmarks stored through XEP-0402 read through XEP-0048 and back.
func TestPEPBookmarks(t *testing.T) {
	ts := startServer(t, nil)
	alice := ts.capsLogin(t, "alice", "a", "urn:xmpp:bookmarks:1").online(false)
	opts := optField("pubsub#persist_items", "true") + optField("pubsub#access_model", "whitelist") +
		optField("pubsub#send_last_published_item", "never") + optField("pubsub#max_items", "max")
	conf := `<conference xmlns='urn:xmpp:bookmarks:1' name='Coven' autojoin='true'><nick>alice</nick></conference>`
	if r := alice.iq(pubXML("1", "urn:xmpp:bookmarks:1", "coven@chat.example", conf, opts), "1"); r.Type != "result" {
		t.Fatalf("publish: %+v", r)
	}
	alice.waitFor(isEvent("urn:xmpp:bookmarks:1"))
	r := alice.iq(`<iq type='get' id='2'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query></iq>`, "2")
	if !strings.Contains(r.Inner, `jid="coven@chat.example"`) || !strings.Contains(r.Inner, `autojoin="true"`) || !strings.Contains(r.Inner, "alice</nick>") {
		t.Fatalf("XEP-0048 view: %+v", r)
	}
	set := `<iq type='set' id='3'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'>` +
		`<conference jid='other@chat.example' name='Other'/></storage></query></iq>`
	if r := alice.iq(set, "3"); r.Type != "result" {
		t.Fatalf("XEP-0048 set: %+v", r)
	}
	items := alice.iq(`<iq type='get' id='4'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:bookmarks:1'/></pubsub></iq>`, "4")
	if !strings.Contains(items.Inner, `id="other@chat.example"`) || strings.Contains(items.Inner, "coven@") {
		t.Fatalf("XEP-0402 items after the XEP-0048 set: %+v", items)
	}
	// The retraction was announced to the resource wanting bookmarks.
	alice.waitFor(func(r xmpptest.Received) bool {
		return isEvent("urn:xmpp:bookmarks:1")(r) && strings.Contains(r.Inner, "<retract") && strings.Contains(r.Inner, `id="coven@chat.example"`)
	})
}

// The [limits]: an item too large, one node too many, more bytes than
// the user may keep, max_items above pep_items.
func TestPEPLimits(t *testing.T) {
	ts := startServer(t, func(c *config.Config) {
		c.Limits.PEPNodes = 2
		c.Limits.PEPItemBytes = 1024
		c.Limits.PEPBytes = 2048
		c.Limits.PEPItems = 4
	})
	alice := ts.capsLogin(t, "alice", "a").online(false)
	blob := func(n int) string { return `<data xmlns='urn:xmpp:avatar:data'>` + strings.Repeat("A", n) + `</data>` }
	for _, tc := range []struct {
		id, node, item, payload, opts, want string
	}{
		{"big", "urn:xmpp:avatar:data", "1", blob(1100), "", "payload-too-big"},
		{"ok1", "urn:xmpp:avatar:data", "1", blob(900), optField("pubsub#max_items", "max"), ""},
		{"ok2", "n2", "1", blob(10), "", ""},
		{"nodes", "n3", "1", blob(10), "", "resource-constraint"},
		{"ok3", "urn:xmpp:avatar:data", "2", blob(900), "", ""},
		{"bytes", "urn:xmpp:avatar:data", "3", blob(900), "", "resource-constraint"},
		{"max", "n2", "2", blob(10), optField("pubsub#max_items", "5"), "precondition-not-met"},
	} {
		r := alice.iq(pubXML(tc.id, tc.node, tc.item, tc.payload, tc.opts), tc.id)
		if tc.want == "" && r.Type != "result" || tc.want != "" && (r.Type != "error" || !strings.Contains(r.Inner, tc.want)) {
			t.Fatalf("%s: %+v, want %q", tc.id, r, tc.want)
		}
	}
	r := alice.iq(`<iq type='set' id='cfg'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='n2'><x xmlns='jabber:x:data' type='submit'>`+optField("pubsub#max_items", "5")+`</x></configure></pubsub></iq>`, "cfg")
	if r.Type != "error" || !strings.Contains(r.Inner, "not-acceptable") {
		t.Fatalf("configure past pep_items: %+v", r)
	}
}

// OMEMO as Conversations publishes it: the device list and a bundle with
// publish-options access_model = open (and XEP-0384 v0.8's nodes with
// max_items = max); a contact with the device list's +notify gets the
// list, and a stranger with no subscription reads both, as a client that
// starts an encrypted chat with a new contact does.
func TestPEPOMEMO(t *testing.T) {
	ts := startServer(t, nil)
	const (
		devices  = "eu.siacs.conversations.axolotl.devicelist"
		bundle   = "eu.siacs.conversations.axolotl.bundles:1234"
		devices2 = "urn:xmpp:omemo:2:devices"
		bundles2 = "urn:xmpp:omemo:2:bundles"
	)
	subscribe(t, ts, "alice", "bob")
	alice := ts.capsLogin(t, "alice", "phone", devices).online(false)
	bob := ts.capsLogin(t, "bob", "b", devices).online(false)
	dave := ts.capsLogin(t, "dave", "d").online(false)
	open := optField("pubsub#access_model", "open")
	for _, p := range []struct{ id, node, item, payload, opts string }{
		{"dl", devices, "current", `<list xmlns='eu.siacs.conversations.axolotl'><device id='1234'/></list>`, open},
		{"bu", bundle, "current", `<bundle xmlns='eu.siacs.conversations.axolotl'><signedPreKeyPublic signedPreKeyId='1'>AAAA</signedPreKeyPublic><identityKey>BBBB</identityKey><prekeys><preKeyPublic preKeyId='1'>CCCC</preKeyPublic></prekeys></bundle>`, open},
		{"dl2", devices2, "current", `<devices xmlns='urn:xmpp:omemo:2'><device id='1234'/></devices>`, open},
		{"bu2", bundles2, "1234", `<bundle xmlns='urn:xmpp:omemo:2'><spk id='1'>AAAA</spk><spks>BBBB</spks><ik>CCCC</ik><prekeys><pk id='1'>DDDD</pk></prekeys></bundle>`, open + optField("pubsub#max_items", "max")},
	} {
		if r := alice.iq(pubXML(p.id, p.node, p.item, p.payload, p.opts), p.id); r.Type != "result" {
			t.Fatalf("%s: %+v", p.node, r)
		}
	}
	if ev := bob.waitFor(isEvent(devices)); !strings.Contains(ev.Inner, `id="1234"`) {
		t.Fatalf("bob's device list event: %+v", ev)
	}
	dave.none(300*time.Millisecond, isEvent(devices))
	for i, node := range []string{devices, bundle, devices2, bundles2} {
		id := fmt.Sprint("get", i)
		r := dave.iq(`<iq type='get' id='`+id+`' to='alice@`+testHost+`'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='`+node+`'/></pubsub></iq>`, id)
		if r.Type != "result" || !strings.Contains(r.Inner, "1234") && !strings.Contains(r.Inner, "AAAA") {
			t.Fatalf("dave reads %s: %+v", node, r)
		}
	}
}
