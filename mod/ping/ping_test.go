package ping_test

import (
	"testing"

	"ottr.im/ottr/internal/routertest"
	"ottr.im/ottr/mod/ping"
)

func TestPing(t *testing.T) {
	core, _ := routertest.New(t)
	if err := ping.Register(core); err != nil {
		t.Fatal(err)
	}
	alice := routertest.Bind(t, core, "alice@localhost/home")
	for _, tc := range []struct{ send, want string }{
		{`<iq to="localhost" id="1" type="get"><ping xmlns="urn:xmpp:ping"/></iq>`,
			`<iq xmlns="jabber:client" from="localhost" to="alice@localhost/home" id="1" type="result"></iq>`},
		{`<iq id="2" type="get"><ping xmlns="urn:xmpp:ping"/></iq>`,
			`<iq xmlns="jabber:client" from="alice@localhost" to="alice@localhost/home" id="2" type="result"></iq>`},
		{`<iq to="localhost" id="3" type="set"><ping xmlns="urn:xmpp:ping"/></iq>`,
			`<iq xmlns="jabber:client" from="localhost" to="alice@localhost/home" id="3" type="error"><ping xmlns="urn:xmpp:ping"></ping><error type="cancel"><bad-request xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"></bad-request></error></iq>`},
		// Not at another account.
		{`<iq to="bob@localhost" id="4" type="get"><ping xmlns="urn:xmpp:ping"/></iq>`,
			`<iq xmlns="jabber:client" from="bob@localhost" to="alice@localhost/home" id="4" type="error"><ping xmlns="urn:xmpp:ping"></ping><error type="cancel"><service-unavailable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"></service-unavailable></error></iq>`},
	} {
		if got := routertest.Ask(t, core, alice, tc.send); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.send, got, tc.want)
		}
	}
	if fs := core.Features(); len(fs) != 1 || fs[0] != "urn:xmpp:ping" {
		t.Errorf("features %v, want urn:xmpp:ping", fs)
	}
}
