package pep_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"ottr.im/ottr/internal/caps"
	"ottr.im/ottr/internal/routertest"
	"ottr.im/ottr/mod/pep"
	"ottr.im/ottr/router"
)

// XEP-0398: available presence from a user with an XEP-0084 avatar gets
// the avatar's hash as XEP-0153's photo, on its way out (PresenceOut),
// before the presence module sees it.
func TestVCardConversion(t *testing.T) {
	const (
		hash  = "0123456789abcdef0123456789abcdef01234567"
		info  = `<metadata xmlns='urn:xmpp:avatar:metadata'><info id='` + hash + `' bytes='10' type='image/png'/></metadata>`
		photo = `<photo xmlns="vcard-temp:x:update">` + hash + `</photo>`
	)
	f := newFixture(t, pep.Options{})
	if !slices.Contains(f.core.AccountFeatures(), "urn:xmpp:pep-vcard-conversion:0") {
		t.Errorf("account features %v lack urn:xmpp:pep-vcard-conversion:0", f.core.AccountFeatures())
	}
	alice, _ := f.online("alice@localhost/a", "", caps.Info{})
	// out fires PresenceOut for presence s from alice and returns the
	// presence as the handlers after PEP's see it.
	out := func(s string) string {
		t.Helper()
		st := routertest.Stanza(t, s)
		st.From = alice.JID()
		f.core.Fire(router.PresenceOut, &router.EventData{Ctx: context.Background(), From: alice, Stanza: st, To: st.To})
		return routertest.XML(t, st)
	}

	// No avatar: left as it is.
	if got := out(`<presence><show>away</show></presence>`); strings.Contains(got, "vcard-temp:x:update") {
		t.Fatalf("presence without an avatar got a hash: %s", got)
	}
	mustContain(t, "publish", f.ask(alice, publishXML("urn:xmpp:avatar:metadata", hash, info, "")), `type="result"`)

	for _, c := range []struct {
		name, in string
		want     []string
		not      string
	}{
		{"broadcast", `<presence><show>away</show></presence>`, []string{`>away</show>`, photo}, ""},
		{"directed", `<presence to='room@conference.localhost/al'/>`, []string{photo}, ""},
		{"client not ready", `<presence><x xmlns='vcard-temp:x:update'/></presence>`, []string{photo}, ""},
		{"client's own", `<presence><x xmlns='vcard-temp:x:update'><photo>aaaa</photo></x></presence>`, []string{`>aaaa</photo>`}, hash},
		{"unavailable", `<presence type='unavailable'/>`, nil, "vcard-temp"},
		{"subscription", `<presence type='subscribed' to='bob@localhost'/>`, nil, "vcard-temp"},
	} {
		got := out(c.in)
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: %s lacks %s", c.name, got, w)
			}
		}
		if c.not != "" && strings.Contains(got, c.not) {
			t.Errorf("%s: %s has %s", c.name, got, c.not)
		}
		if n := strings.Count(got, "vcard-temp:x:update\""); n > 2 {
			t.Errorf("%s: more than one update element: %s", c.name, got)
		}
	}

	// Avatar disabled (metadata without info): an empty photo.
	f.ask(alice, publishXML("urn:xmpp:avatar:metadata", "off", `<metadata xmlns='urn:xmpp:avatar:metadata'/>`, ""))
	if got := out(`<presence/>`); !strings.Contains(got, `<photo xmlns="vcard-temp:x:update"></photo>`) {
		t.Errorf("disabled avatar: %s", got)
	}
	// An id that is not a SHA-1: nothing said.
	f.ask(alice, publishXML("urn:xmpp:avatar:metadata", "not-a-hash", info, ""))
	if got := out(`<presence/>`); strings.Contains(got, "vcard-temp") {
		t.Errorf("an item id that is no hash went into presence: %s", got)
	}
	// A whitelist node: only its owner may know it.
	cfg := `<iq type='set' id='c'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='urn:xmpp:avatar:metadata'><x xmlns='jabber:x:data' type='submit'>` +
		field("FORM_TYPE", "http://jabber.org/protocol/pubsub#node_config") + field("pubsub#access_model", "whitelist") + `</x></configure></pubsub></iq>`
	mustContain(t, "configure", f.ask(alice, cfg), `type="result"`)
	f.ask(alice, publishXML("urn:xmpp:avatar:metadata", hash, info, ""))
	if got := out(`<presence/>`); strings.Contains(got, "vcard-temp") {
		t.Errorf("a whitelist avatar went into presence: %s", got)
	}
}
