package router_test

import (
	"context"
	"encoding/xml"
	"testing"

	"mellium.im/xmpp/jid"

	"ottr.im/ottr/element"
	"ottr.im/ottr/internal/routertest"
	"ottr.im/ottr/router"
)

// TestRouteInbound checks where a stanza from a component goes: the rules
// of RouteInbound's doc comment, one row each.
func TestRouteInbound(t *testing.T) {
	core, _ := newCore(t)
	var other []*element.Stanza
	if err := core.AddDomain("other.localhost", domainFunc(func(_ context.Context, _ router.Target, st *element.Stanza) {
		other = append(other, st)
	})); err != nil {
		t.Fatal(err)
	}
	var offline int
	if err := core.Hook(router.MessageOffline, 0, "test", func(*router.EventData) bool { offline++; return true }); err != nil {
		t.Fatal(err)
	}
	vcard := xml.Name{Space: "vcard-temp", Local: "vCard"}
	if err := core.HandleIQ(vcard, router.AtAccount|router.AtServer, "", router.IQHandlerFunc(
		func(_ context.Context, req router.IQRequest) (xml.TokenReader, error) {
			return element.Empty(vcard.Space, vcard.Local), nil
		})); err != nil {
		t.Fatal(err)
	}
	refused := false
	if err := core.Hook(router.StanzaIn, 100, "test", func(e *router.EventData) bool { return refused }); err != nil {
		t.Fatal(err)
	}
	bob := bind(t, core, "bob@localhost/phone")
	if bound, _ := core.SetPresence(bob, &element.Stanza{Name: "presence"}, 0); !bound {
		t.Fatal("bob not bound")
	}
	bot := routertest.NewTarget(t, "bot@push.example/x")

	tests := []struct {
		name    string
		refused bool
		st      string
		toBob   string // the type of what bob gets ("-" nothing, "" a stanza without type)
		toBot   string // the error condition bot gets back, "result" for a result, "" nothing
		offline int
		other   int
	}{
		{name: "message to bare", st: `<message to='bob@localhost' type='chat'><body>hi</body></message>`, toBob: "chat"},
		{name: "message to full", st: `<message to='bob@localhost/phone' type='chat'><body>hi</body></message>`, toBob: "chat"},
		{name: "message to unbound full falls back", st: `<message to='bob@localhost/tablet' type='chat'><body>hi</body></message>`, toBob: "chat"},
		{name: "message to offline account", st: `<message to='carol@localhost' type='chat'><body>hi</body></message>`, toBob: "-", offline: 1},
		{name: "message refused by StanzaIn", refused: true, st: `<message to='bob@localhost' type='chat'><body>hi</body></message>`, toBob: "-"},
		{name: "iq request to an account", st: `<iq to='bob@localhost' type='get' id='v'><vCard xmlns='vcard-temp'/></iq>`, toBob: "-", toBot: "result"},
		{name: "iq request to the server", st: `<iq to='localhost' type='get' id='v'><vCard xmlns='vcard-temp'/></iq>`, toBob: "-", toBot: "result"},
		{name: "iq request without handler", st: `<iq to='bob@localhost' type='get' id='q'><query xmlns='urn:x'/></iq>`, toBob: "-", toBot: "service-unavailable"},
		{name: "iq request to full JID", st: `<iq to='bob@localhost/phone' type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>`, toBob: "get"},
		{name: "iq result to full JID", st: `<iq to='bob@localhost/phone' type='result' id='p'/>`, toBob: "result"},
		{name: "iq result to bare JID dropped", st: `<iq to='bob@localhost' type='result' id='p'/>`, toBob: "-"},
		{name: "presence to bare", st: `<presence to='bob@localhost'/>`, toBob: ""},
		{name: "subscription presence dropped", st: `<presence to='bob@localhost' type='subscribe'/>`, toBob: "-"},
		{name: "another component", st: `<message to='x@other.localhost'/>`, toBob: "-", other: 1},
		{name: "remote", st: `<message to='x@example.net' type='chat'/>`, toBob: "-", toBot: "remote-server-not-found"},
		{name: "no to", st: `<message type='chat'/>`, toBob: "-", toBot: "bad-request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			refused, offline, other = tc.refused, 0, nil
			st := routertest.Stanza(t, tc.st)
			st.From = bot.JID()
			core.RouteInbound(context.Background(), bot, st)
			got := bob.Take()
			switch {
			case tc.toBob == "-" && len(got) != 0:
				t.Errorf("bob got %s", routertest.XML(t, got[0]))
			case tc.toBob != "-" && (len(got) != 1 || got[0].Type != tc.toBob || !got[0].From.Equal(bot.JID())):
				t.Errorf("bob got %d stanzas, want one of type %q from the bot", len(got), tc.toBob)
			}
			back := bot.Take()
			switch {
			case tc.toBot == "" && len(back) != 0:
				t.Errorf("the bot got %s", routertest.XML(t, back[0]))
			case tc.toBot == "result" && (len(back) != 1 || back[0].Type != "result" || !back[0].To.Equal(jid.MustParse("bot@push.example/x"))):
				t.Errorf("the bot got %d stanzas, want a result to its full JID", len(back))
			case tc.toBot != "" && tc.toBot != "result" && (len(back) != 1 || errorCondition(back[0]) != tc.toBot):
				t.Errorf("the bot got %d stanzas, want a %s error", len(back), tc.toBot)
			}
			if offline != tc.offline || len(other) != tc.other {
				t.Errorf("offline %d, other component %d; want %d, %d", offline, len(other), tc.offline, tc.other)
			}
		})
	}
}
