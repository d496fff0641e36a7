package server_test

import (
	"strings"
	"testing"

	"ottr.im/ottr/internal/xmpptest"
)

// TestPEPVCardConversion (XEP-0398): alice publishes an XEP-0084 avatar
// and sends presence; her contact bob, her own other resource and bob's
// probe answer when he comes online all carry the avatar's hash as
// XEP-0153's photo; her account's disco#info says so.
func TestPEPVCardConversion(t *testing.T) {
	const hash = "89abcdef0123456789abcdef0123456789abcdef"
	ts := startServer(t, nil)
	subscribe(t, ts, "alice", "bob")
	alice := ts.online(t, "alice", "a")

	info := alice.IQ(`<iq type='get' id='ai'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`, "ai")
	if !strings.Contains(info.Inner, `var="urn:xmpp:pep-vcard-conversion:0"`) {
		t.Errorf("the account's disco#info lacks urn:xmpp:pep-vcard-conversion:0: %s", info.Inner)
	}

	// withHash matches alice's available presence carrying the hash.
	withHash := func(from string) func(xmpptest.Received) bool {
		return func(r xmpptest.Received) bool {
			return r.Name == "presence" && r.From == from && r.Type == "" &&
				strings.Contains(r.Inner, `vcard-temp:x:update`) && strings.Contains(r.Inner, `>`+hash+`</photo>`)
		}
	}
	bob := ts.online(t, "bob", "b")
	alice2 := ts.online(t, "alice", "a2")
	meta := `<metadata xmlns='urn:xmpp:avatar:metadata'><info id='` + hash + `' bytes='100' type='image/png' width='10' height='10'/></metadata>`
	if r := alice.IQ(pubXML("pub", "urn:xmpp:avatar:metadata", hash, meta, ""), "pub"); r.Type != "result" {
		t.Fatalf("publishing the avatar metadata: %+v", r)
	}
	alice.Send(`<presence><show>chat</show></presence>`)
	bob.WaitFor(withHash(alice.JID.String()))
	alice2.WaitFor(withHash(alice.JID.String()))

	// Bob comes online again: the probe's answer (the presence the
	// server recorded) carries it too.
	bob.Close()
	bob2 := ts.online(t, "bob", "b2")
	bob2.WaitFor(withHash(alice.JID.String()))

	// A client's own photo is left alone.
	alice.Send(`<presence><x xmlns='vcard-temp:x:update'><photo>0000000000000000000000000000000000000000</photo></x></presence>`)
	r := bob2.WaitFor(func(r xmpptest.Received) bool {
		return r.Name == "presence" && r.From == alice.JID.String() && strings.Contains(r.Inner, "vcard-temp:x:update")
	})
	if strings.Contains(r.Inner, hash) || !strings.Contains(r.Inner, ">0000000000000000000000000000000000000000</photo>") {
		t.Errorf("the client's own photo: %s", r.Inner)
	}
}

// TestPEPAvatarAsVCard: a user's XEP-0084 avatar is the PHOTO of the
// vCard others get (XEP-0398 §3.1) when its metadata node is open.
func TestPEPAvatarAsVCard(t *testing.T) {
	const hash = "89abcdef0123456789abcdef0123456789abcdef"
	ts := startServer(t, nil)
	alice := ts.online(t, "alice", "a")
	bob := ts.online(t, "bob", "b")
	alice.IQ(`<iq type='set' id='v'><vCard xmlns='vcard-temp'><FN>Alice</FN></vCard></iq>`, "v")
	open := optField("pubsub#access_model", "open")
	if r := alice.IQ(pubXML("d", "urn:xmpp:avatar:data", hash, `<data xmlns='urn:xmpp:avatar:data'>iVBORw0KGgo=</data>`, open), "d"); r.Type != "result" {
		t.Fatalf("publishing the avatar data: %+v", r)
	}
	meta := `<metadata xmlns='urn:xmpp:avatar:metadata'><info id='` + hash + `' bytes='8' type='image/png' width='1' height='1'/></metadata>`
	if r := alice.IQ(pubXML("m", "urn:xmpp:avatar:metadata", hash, meta, open), "m"); r.Type != "result" {
		t.Fatalf("publishing the avatar metadata: %+v", r)
	}
	r := bob.IQ(`<iq to='alice@localhost' type='get' id='g'><vCard xmlns='vcard-temp'/></iq>`, "g")
	got := strings.ReplaceAll(r.Inner, ` xmlns="vcard-temp"`, "")
	if !strings.Contains(got, `<FN>Alice</FN>`) || !strings.Contains(got, `<PHOTO><TYPE>image/png</TYPE><BINVAL>iVBORw0KGgo=</BINVAL></PHOTO>`) {
		t.Errorf("alice's vCard as bob gets it: %s", r.Inner)
	}
}
