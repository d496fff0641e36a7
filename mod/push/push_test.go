package push_test

import (
	"context"
	"encoding/xml"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/stanza"

	"ottr.im/ottr/element"
	"ottr.im/ottr/internal/routertest"
	"ottr.im/ottr/mod/push"
	"ottr.im/ottr/router"
	"ottr.im/ottr/storage/sqlite"
)

var _ push.Store = (*sqlite.Store)(nil)

// appServer is the push.example domain: it records what it gets and
// answers each iq with answer (nil: no answer).
type appServer struct {
	core   *router.Router
	mu     sync.Mutex
	got    []*element.Stanza
	answer *stanza.Error
}

func (a *appServer) HandleStanza(_ context.Context, from router.Target, st *element.Stanza) {
	a.mu.Lock()
	a.got = append(a.got, st)
	answer := a.answer
	a.mu.Unlock()
	if answer != nil {
		a.core.Bounce(from, st, *answer)
	}
}

func (a *appServer) take() []*element.Stanza {
	a.mu.Lock()
	defer a.mu.Unlock()
	got := a.got
	a.got = nil
	return got
}

// published is what a publish says: its addressing, node, the summary
// form's fields and the publish-options' fields.
type published struct {
	from, to, typ string
	node          string
	summary       map[string]string
	options       map[string]string
}

type dataForm struct {
	Type   string `xml:"type,attr"`
	Fields []struct {
		Var   string `xml:"var,attr"`
		Value string `xml:"value"`
	} `xml:"jabber:x:data field"`
}

func (f *dataForm) values() map[string]string {
	if f == nil {
		return nil
	}
	m := map[string]string{"type": f.Type}
	for _, fl := range f.Fields {
		m[fl.Var] = fl.Value
	}
	return m
}

func decode(t *testing.T, st *element.Stanza) published {
	t.Helper()
	var ps struct {
		XMLName xml.Name `xml:"http://jabber.org/protocol/pubsub pubsub"`
		Publish struct {
			Node string    `xml:"node,attr"`
			Form *dataForm `xml:"item>notification>x"`
		} `xml:"publish"`
		Options *dataForm `xml:"publish-options>x"`
	}
	if err := st.DecodePayload(&ps); err != nil {
		t.Fatalf("decoding a publish: %v", err)
	}
	return published{from: st.From.String(), to: st.To.String(), typ: st.Type, node: ps.Publish.Node,
		summary: ps.Publish.Form.values(), options: ps.Options.values()}
}

// waiting is a session waiting for resumption.
type waiting struct{ *routertest.Target }

func (waiting) Waiting() bool { return true }

type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

func setup(t *testing.T) (*router.Router, *sqlite.Store, *appServer, *clock) {
	t.Helper()
	core, store := routertest.New(t)
	app := &appServer{core: core}
	if err := core.AddDomain("push.example", app); err != nil {
		t.Fatal(err)
	}
	clk := &clock{now: time.Unix(1e9, 0)}
	if _, err := push.Register(core, store, push.Options{MaxRegistrations: 2, Now: clk.Now}); err != nil {
		t.Fatal(err)
	}
	// The offline module's place: store every chat message.
	if err := core.Hook(router.MessageOffline, 0, "offline", func(*router.EventData) bool { return true }); err != nil {
		t.Fatal(err)
	}
	return core, store, app, clk
}

func TestEnableDisable(t *testing.T) {
	core, store, _, _ := setup(t)
	alice := routertest.Bind(t, core, "alice@localhost/phone")
	if fs := core.AccountFeatures(); len(fs) != 1 || fs[0] != push.NS {
		t.Errorf("account features %v", fs)
	}
	tests := []struct {
		name, iq, want string
		regs           int
	}{
		{"enable", `<iq type='set' id='1'><enable xmlns='urn:xmpp:push:0' jid='push.example' node='n1'/></iq>`, "result", 1},
		{"enable with options", `<iq type='set' id='2'><enable xmlns='urn:xmpp:push:0' jid='push.example' node='n2'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='secret'><value>s3</value></field></x></enable></iq>`, "result", 2},
		{"past the limit", `<iq type='set' id='3'><enable xmlns='urn:xmpp:push:0' jid='other.example' node='n'/></iq>`, "resource-constraint", 2},
		{"no node", `<iq type='set' id='4'><enable xmlns='urn:xmpp:push:0' jid='push.example'/></iq>`, "bad-request", 2},
		{"bad jid", `<iq type='set' id='5'><enable xmlns='urn:xmpp:push:0' jid='a@@b' node='n'/></iq>`, "bad-request", 2},
		{"get", `<iq type='get' id='6'><enable xmlns='urn:xmpp:push:0' jid='push.example' node='n'/></iq>`, "bad-request", 2},
		{"node and options too large", `<iq type='set' id='7'><enable xmlns='urn:xmpp:push:0' jid='push.example' node='n1'><x xmlns='jabber:x:data' type='submit'><field var='secret'><value>` + strings.Repeat("s", push.MaxRegistrationBytes) + `</value></field></x></enable></iq>`, "not-acceptable", 2},
		{"disable one node", `<iq type='set' id='7'><disable xmlns='urn:xmpp:push:0' jid='push.example' node='n1'/></iq>`, "result", 1},
		{"disable the service", `<iq type='set' id='8'><disable xmlns='urn:xmpp:push:0' jid='push.example'/></iq>`, "result", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := routertest.Ask(t, core, alice, tc.iq)
			if !strings.Contains(got, `type="`+tc.want+`"`) && !strings.Contains(got, "<"+tc.want) {
				t.Errorf("answer %s, want %s", got, tc.want)
			}
			regs, err := store.PushRegistrations(context.Background(), "localhost", "alice")
			if err != nil || len(regs) != tc.regs {
				t.Errorf("%d registrations (%v), want %d", len(regs), err, tc.regs)
			}
		})
	}
}

func TestPublish(t *testing.T) {
	core, store, app, clk := setup(t)
	alice := routertest.Bind(t, core, "alice@localhost/phone")
	routertest.Ask(t, core, alice, `<iq type='set' id='1'><enable xmlns='urn:xmpp:push:0' jid='push.example' node='n1'><x xmlns='jabber:x:data'><field var='include-body'><value>true</value></field></x></enable></iq>`)
	bob := routertest.Bind(t, core, "bob@localhost/pc")
	send := func(body string) {
		t.Helper()
		routertest.Send(t, core, bob, `<message to='alice@localhost' type='chat'>`+body+`</message>`)
	}

	// Alice is bound but not waiting: no push.
	send(`<body>1</body>`)
	if got := app.take(); len(got) != 0 {
		t.Fatalf("%d publishes while alice is bound", len(got))
	}
	core.Unbind(context.Background(), alice)
	send(`<body>hello</body>`)
	got := app.take()
	if len(got) != 1 {
		t.Fatalf("%d publishes, want 1", len(got))
	}
	p := decode(t, got[0])
	if p.from != "alice@localhost" || p.to != "push.example" || p.typ != "set" || p.node != "n1" {
		t.Errorf("publish %+v", p)
	}
	for k, v := range map[string]string{"type": "form", "FORM_TYPE": "urn:xmpp:push:summary", "message-count": "1",
		"last-message-sender": "bob@localhost/pc", "last-message-body": "hello"} {
		if p.summary[k] != v {
			t.Errorf("summary %s = %q, want %q", k, p.summary[k], v)
		}
	}
	if p.options["type"] != "submit" || p.options["include-body"] != "true" {
		t.Errorf("publish-options %v", p.options)
	}
	// Within the interval: counted, not published; a message without a
	// body is not counted.
	send(`<active xmlns='http://jabber.org/protocol/chatstates'/>`)
	send(`<body>2</body>`)
	if got := app.take(); len(got) != 0 {
		t.Fatalf("%d publishes within the interval", len(got))
	}
	clk.now = clk.now.Add(push.DefaultInterval)
	send(`<body>3</body>`)
	if got := app.take(); len(got) != 1 || decode(t, got[0]).summary["message-count"] != "3" {
		t.Fatalf("after the interval: %d publishes, want one with count 3", len(got))
	}

	// A waiting session with presence gets the message and a push goes.
	w := waiting{routertest.NewTarget(t, "alice@localhost/tablet")}
	if err := core.Bind(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	core.SetPresence(w, &element.Stanza{Name: "presence"}, 0)
	clk.now = clk.now.Add(push.DefaultInterval)
	send(`<body>4</body>`)
	if got := w.Take(); len(got) != 1 {
		t.Fatalf("the waiting session got %d messages", len(got))
	}
	if got := app.take(); len(got) != 1 || decode(t, got[0]).summary["message-count"] != "1" {
		t.Fatalf("waiting session: %d publishes, want one with count 1 (bound again)", len(got))
	}

	// An app server's wait error keeps the registration, another disables it.
	for _, tc := range []struct {
		answer stanza.Error
		regs   int
	}{
		{stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint}, 1},
		{stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}, 0},
	} {
		app.mu.Lock()
		app.answer = &tc.answer
		app.mu.Unlock()
		clk.now = clk.now.Add(push.DefaultInterval)
		send(`<body>5</body>`)
		if got := app.take(); len(got) != 1 {
			t.Fatalf("%d publishes", len(got))
		}
		regs, _ := store.PushRegistrations(context.Background(), "localhost", "alice")
		if len(regs) != tc.regs {
			t.Errorf("after %s: %d registrations, want %d", tc.answer.Condition, len(regs), tc.regs)
		}
	}
}
