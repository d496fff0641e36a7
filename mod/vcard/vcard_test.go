package vcard_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"ottr.im/ottr/storage"

	"ottr.im/ottr/internal/routertest"
	"ottr.im/ottr/mod/vcard"
	"ottr.im/ottr/storage/sqlite"
)

var _ vcard.Store = (*sqlite.Store)(nil)

func TestVCard(t *testing.T) {
	core, store := routertest.New(t)
	if err := vcard.Register(core, store, vcard.Options{MaxBytes: 100}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.EnsureAccount(context.Background(), routertest.Host, "carol"); err != nil {
		t.Fatal(err)
	}
	alice := routertest.Bind(t, core, "alice@localhost/home")
	bob := routertest.Bind(t, core, "bob@localhost/phone")
	for _, tc := range []struct {
		from *routertest.Target
		send string
		want string
	}{
		{alice, `<iq id="1" type="get"><vCard xmlns="vcard-temp"/></iq>`, `type="result"><vCard xmlns="vcard-temp"></vCard></iq>`},
		{alice, `<iq id="2" type="set"><vCard xmlns="vcard-temp"><FN xmlns="vcard-temp">Alice</FN></vCard></iq>`, `id="2" type="result"></iq>`},
		{alice, `<iq id="3" type="get"><vCard xmlns="vcard-temp"/></iq>`, `type="result"><vCard xmlns="vcard-temp"><FN xmlns="vcard-temp">Alice</FN></vCard></iq>`},
		{bob, `<iq to="alice@localhost" id="4" type="get"><vCard xmlns="vcard-temp"/></iq>`, `from="alice@localhost" to="bob@localhost/phone" id="4" type="result"><vCard xmlns="vcard-temp"><FN xmlns="vcard-temp">Alice</FN></vCard></iq>`},
		{bob, `<iq to="alice@localhost" id="5" type="set"><vCard xmlns="vcard-temp"><FN>Mallory</FN></vCard></iq>`, `<error type="auth"><forbidden `},
		{bob, `<iq to="nobody@localhost" id="6" type="get"><vCard xmlns="vcard-temp"/></iq>`, `<error type="cancel"><item-not-found `},
		{bob, `<iq to="carol@localhost" id="7" type="get"><vCard xmlns="vcard-temp"/></iq>`, `type="result"><vCard xmlns="vcard-temp"></vCard></iq>`},
		{alice, `<iq id="8" type="set"><vCard xmlns="vcard-temp"><DESC>` + strings.Repeat("x", 100) + `</DESC></vCard></iq>`, `<not-acceptable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"></not-acceptable><text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">vCard larger than 100 bytes</text>`},
		{alice, `<iq id="9" type="get"><vCard xmlns="vcard-temp"/></iq>`, `<FN xmlns="vcard-temp">Alice</FN>`},
		{alice, `<iq id="10" type="set"><vCard xmlns="vcard-temp"/></iq>`, `id="10" type="result"></iq>`},
		{alice, `<iq id="11" type="get"><vCard xmlns="vcard-temp"/></iq>`, `type="result"><vCard xmlns="vcard-temp"></vCard></iq>`},
	} {
		if got := routertest.Ask(t, core, tc.from, tc.send); !strings.Contains(got, tc.want) {
			t.Errorf("%s:\n got %s\nwant %s", tc.send, got, tc.want)
		}
	}
	if fs := core.Features(); len(fs) != 1 || fs[0] != "vcard-temp" {
		t.Errorf("features %v, want vcard-temp", fs)
	}
}

var _ vcard.AvatarStore = (*sqlite.Store)(nil)

// TestPEPAvatar: with Options.Avatars, the vCard answered has the user's
// XEP-0084 avatar as its PHOTO (XEP-0398 §3.1) in place of a stored one;
// a presence-access avatar only for the user, none for a disabled one.
func TestPEPAvatar(t *testing.T) {
	core, store := routertest.New(t)
	if err := vcard.Register(core, store, vcard.Options{Avatars: store}); err != nil {
		t.Fatal(err)
	}
	alice := routertest.Bind(t, core, "alice@localhost/home")
	bob := routertest.Bind(t, core, "bob@localhost/phone")
	ctx := context.Background()
	publish := func(access, node, id, payload string) {
		t.Helper()
		_, _, err := store.PublishPEPItem(ctx, routertest.Host, "alice", storage.PEPNode{Node: node, Access: access, MaxItems: 1, PersistItems: true, SendLast: "on_sub_and_presence"},
			storage.PEPItem{ID: id, Payload: []byte(payload), Published: time.Now()}, storage.PEPLimits{Nodes: 10, Bytes: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
	}
	const id = "111f4b3c50d7b0df729d299bc6f8e9ef9066971f"
	routertest.Ask(t, core, alice, `<iq id="0" type="set"><vCard xmlns="vcard-temp"><FN>Alice</FN><PHOTO><TYPE>image/gif</TYPE><BINVAL>old</BINVAL></PHOTO><NICKNAME>al</NICKNAME></vCard></iq>`)
	publish("presence", "urn:xmpp:avatar:data", id, `<data xmlns="urn:xmpp:avatar:data">iVBOR
w0KGgo=</data>`)
	publish("presence", "urn:xmpp:avatar:metadata", id, `<metadata xmlns="urn:xmpp:avatar:metadata"><info url="https://example.org/a.png" id="`+id+`" type="image/jpeg"/><info bytes="8" id="`+id+`" type="image/png" height="1" width="1"/></metadata>`)
	const photo = `<PHOTO><TYPE>image/png</TYPE><BINVAL>iVBORw0KGgo=</BINVAL></PHOTO>`
	get := func(from *routertest.Target, to string) string {
		got := routertest.Ask(t, core, from, `<iq to="`+to+`" id="g" type="get"><vCard xmlns="vcard-temp"/></iq>`)
		return strings.ReplaceAll(got, ` xmlns="vcard-temp"`, "")
	}
	if got := get(alice, "alice@localhost"); !strings.Contains(got, photo) || strings.Contains(got, "old") || !strings.Contains(got, "NICKNAME") {
		t.Errorf("alice's own vCard: %s", got)
	}
	if got := get(bob, "alice@localhost"); !strings.Contains(got, "<BINVAL>old</BINVAL>") {
		t.Errorf("a presence-access avatar shown to bob: %s", got)
	}
	publish("open", "urn:xmpp:avatar:metadata", id, `<metadata xmlns="urn:xmpp:avatar:metadata"><info bytes="8" id="`+id+`" type="image/png"/></metadata>`)
	if err := store.ConfigurePEPNode(ctx, routertest.Host, "alice", storage.PEPNode{Node: "urn:xmpp:avatar:metadata", Access: "open", MaxItems: 1, PersistItems: true, SendLast: "on_sub_and_presence"}); err != nil {
		t.Fatal(err)
	}
	if got := get(bob, "alice@localhost"); !strings.Contains(got, photo) || strings.Count(got, "<PHOTO>") != 1 {
		t.Errorf("an open avatar to bob: %s", got)
	}
	// Disabled: metadata without info; the stored photo is back.
	publish("open", "urn:xmpp:avatar:metadata", "current", `<metadata xmlns="urn:xmpp:avatar:metadata"/>`)
	if got := get(bob, "alice@localhost"); !strings.Contains(got, "<BINVAL>old</BINVAL>") {
		t.Errorf("a disabled avatar: %s", got)
	}
	// No vCard stored: one made of the photo.
	routertest.Ask(t, core, alice, `<iq id="c" type="set"><vCard xmlns="vcard-temp"/></iq>`)
	publish("open", "urn:xmpp:avatar:metadata", id, `<metadata xmlns="urn:xmpp:avatar:metadata"><info bytes="8" id="`+id+`" type="image/png"/></metadata>`)
	if got := get(bob, "alice@localhost"); !strings.Contains(got, `<vCard>`+photo+`</vCard>`) {
		t.Errorf("no stored vCard: %s", got)
	}
}
