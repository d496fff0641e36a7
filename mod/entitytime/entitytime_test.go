package entitytime_test

import (
	"testing"
	"time"

	"ottr.im/ottr/internal/routertest"
	"ottr.im/ottr/mod/entitytime"
)

func TestTime(t *testing.T) {
	core, _ := routertest.New(t)
	now := time.Date(2026, 11, 30, 12, 34, 56, 789, time.FixedZone("CET", 3600))
	if err := entitytime.Register(core, entitytime.Options{Now: func() time.Time { return now }}); err != nil {
		t.Fatal(err)
	}
	alice := routertest.Bind(t, core, "alice@localhost/home")
	for _, tc := range []struct{ send, want string }{
		{`<iq to="localhost" id="1" type="get"><time xmlns="urn:xmpp:time"/></iq>`,
			`<iq xmlns="jabber:client" from="localhost" to="alice@localhost/home" id="1" type="result"><time xmlns="urn:xmpp:time"><tzo>+00:00</tzo><utc>2026-11-30T11:34:56Z</utc></time></iq>`},
		{`<iq to="localhost" id="2" type="set"><time xmlns="urn:xmpp:time"/></iq>`,
			`<iq xmlns="jabber:client" from="localhost" to="alice@localhost/home" id="2" type="error"><time xmlns="urn:xmpp:time"></time><error type="cancel"><bad-request xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"></bad-request></error></iq>`},
		{`<iq to="bob@localhost" id="3" type="get"><time xmlns="urn:xmpp:time"/></iq>`,
			`<iq xmlns="jabber:client" from="bob@localhost" to="alice@localhost/home" id="3" type="error"><time xmlns="urn:xmpp:time"></time><error type="cancel"><service-unavailable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"></service-unavailable></error></iq>`},
	} {
		if got := routertest.Ask(t, core, alice, tc.send); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.send, got, tc.want)
		}
	}
	if fs := core.Features(); len(fs) != 1 || fs[0] != "urn:xmpp:time" {
		t.Errorf("features %v, want urn:xmpp:time", fs)
	}
}
