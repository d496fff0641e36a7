package version_test

import (
	"testing"

	"ottr.im/ottr/internal/routertest"
	"ottr.im/ottr/mod/version"
)

func TestVersion(t *testing.T) {
	core, _ := routertest.New(t)
	if err := version.Register(core, version.Options{Name: "ottr", Version: "1.2.3"}); err != nil {
		t.Fatal(err)
	}
	alice := routertest.Bind(t, core, "alice@localhost/home")
	for _, tc := range []struct{ send, want string }{
		{`<iq to="localhost" id="1" type="get"><query xmlns="jabber:iq:version"/></iq>`,
			`<iq xmlns="jabber:client" from="localhost" to="alice@localhost/home" id="1" type="result"><query xmlns="jabber:iq:version"><name>ottr</name><version>1.2.3</version></query></iq>`},
		{`<iq to="localhost" id="2" type="set"><query xmlns="jabber:iq:version"/></iq>`,
			`<iq xmlns="jabber:client" from="localhost" to="alice@localhost/home" id="2" type="error"><query xmlns="jabber:iq:version"></query><error type="cancel"><bad-request xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"></bad-request></error></iq>`},
		// The server's only.
		{`<iq id="3" type="get"><query xmlns="jabber:iq:version"/></iq>`,
			`<iq xmlns="jabber:client" from="localhost" to="alice@localhost/home" id="3" type="error"><query xmlns="jabber:iq:version"></query><error type="cancel"><service-unavailable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"></service-unavailable></error></iq>`},
	} {
		if got := routertest.Ask(t, core, alice, tc.send); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.send, got, tc.want)
		}
	}
	if fs := core.Features(); len(fs) != 1 || fs[0] != "jabber:iq:version" {
		t.Errorf("features %v, want jabber:iq:version", fs)
	}
}
