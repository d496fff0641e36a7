package vcard_test

import (
	"context"
	"strings"
	"testing"

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
