package private_test

import (
	"context"
	"encoding/xml"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"ottr.im/ottr/internal/routertest"
	"ottr.im/ottr/mod/private"
	"ottr.im/ottr/storage/sqlite"
)

var _ private.Store = (*sqlite.Store)(nil)

func TestPrivate(t *testing.T) {
	core, store := routertest.New(t)
	if err := private.Register(core, store, private.Options{MaxBytes: 60, MaxDocuments: 2, MaxTotalBytes: 1000}); err != nil {
		t.Fatal(err)
	}
	alice := routertest.Bind(t, core, "alice@localhost/home")
	q := func(inner string) string { return `<query xmlns="jabber:iq:private">` + inner + `</query>` }
	for _, tc := range []struct{ send, want string }{
		{`<iq id="1" type="get">` + q(`<a xmlns="urn:x"/>`) + `</iq>`, `type="result">` + q(`<a xmlns="urn:x"></a>`)},
		{`<iq id="2" type="set">` + q(`<a xmlns="urn:x"><b>1</b></a>`) + `</iq>`, `id="2" type="result"></iq>`},
		{`<iq id="3" type="get">` + q(`<a xmlns="urn:x"/>`) + `</iq>`, `type="result">` + q(`<a xmlns="urn:x"><b xmlns="urn:x">1</b></a>`)},
		// Another element of the same namespace is another document.
		{`<iq id="4" type="get">` + q(`<c xmlns="urn:x"/>`) + `</iq>`, `type="result">` + q(`<c xmlns="urn:x"></c>`)},
		{`<iq id="5" type="set">` + q(`<c xmlns="urn:x"/>`) + `</iq>`, `id="5" type="result"></iq>`},
		{`<iq id="6" type="set">` + q(`<d xmlns="urn:x"/>`) + `</iq>`, `<error type="wait"><resource-constraint `},
		{`<iq id="7" type="set">` + q(`<a xmlns="urn:x">`+strings.Repeat("y", 60)+`</a>`) + `</iq>`, `<error type="modify"><not-acceptable `},
		{`<iq id="8" type="set">` + q(`<a xmlns="jabber:x"/>`) + `</iq>`, `<error type="modify"><not-acceptable `},
		{`<iq id="9" type="set">` + q(`<a xmlns="urn:x"/><c xmlns="urn:x"/>`) + `</iq>`, `<error type="modify"><bad-request `},
		{`<iq id="10" type="get">` + q(``) + `</iq>`, `<error type="modify"><bad-request `},
		{`<iq id="11" type="get">` + q(`<a xmlns=""/>`) + `</iq>`, `<error type="modify"><bad-request `},
		// A child in the query's namespace is in a jabber: one.
		{`<iq id="11" type="get">` + q(`<a/>`) + `</iq>`, `<error type="modify"><not-acceptable `},
		// The user's own only.
		{`<iq to="bob@localhost" id="12" type="get">` + q(`<a xmlns="urn:x"/>`) + `</iq>`, `<service-unavailable `},
	} {
		if got := routertest.Ask(t, core, alice, tc.send); !strings.Contains(got, tc.want) {
			t.Errorf("%s:\n got %s\nwant %s", tc.send, got, tc.want)
		}
	}
	if fs := core.Features(); len(fs) != 1 || fs[0] != "jabber:iq:private" {
		t.Errorf("features %v, want jabber:iq:private", fs)
	}
}

// fakeView keeps one document per user in memory and refuses documents
// holding "refuse".
type fakeView struct{ docs map[string][]byte }

func (v *fakeView) GetPrivate(_ context.Context, user jid.JID) ([]byte, error) {
	if d, ok := v.docs[user.String()]; ok {
		return d, nil
	}
	return []byte(`<storage xmlns="storage:bookmarks"></storage>`), nil
}

func (v *fakeView) SetPrivate(_ context.Context, user jid.JID, doc []byte) error {
	if strings.Contains(string(doc), "refuse") {
		return stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable}
	}
	v.docs[user.String()] = doc
	return nil
}

// A document with a View is read and written through it, not the store;
// the size limit still applies and the view's errors reach the client.
func TestPrivateView(t *testing.T) {
	core, store := routertest.New(t)
	view := &fakeView{docs: map[string][]byte{}}
	if err := private.Register(core, store, private.Options{MaxBytes: 200,
		Views: map[xml.Name]private.View{{Space: "storage:bookmarks", Local: "storage"}: view}}); err != nil {
		t.Fatal(err)
	}
	alice := routertest.Bind(t, core, "alice@localhost/home")
	q := func(inner string) string { return `<query xmlns="jabber:iq:private">` + inner + `</query>` }
	for _, tc := range []struct{ send, want string }{
		{`<iq id="1" type="get">` + q(`<storage xmlns="storage:bookmarks"/>`) + `</iq>`, `<storage xmlns="storage:bookmarks"></storage>`},
		{`<iq id="2" type="set">` + q(`<storage xmlns="storage:bookmarks"><conference jid="r@c.localhost"/></storage>`) + `</iq>`, `id="2" type="result"></iq>`},
		{`<iq id="3" type="get">` + q(`<storage xmlns="storage:bookmarks"/>`) + `</iq>`, `jid="r@c.localhost"`},
		{`<iq id="4" type="set">` + q(`<storage xmlns="storage:bookmarks"><refuse/></storage>`) + `</iq>`, `<not-acceptable `},
		{`<iq id="5" type="set">` + q(`<storage xmlns="storage:bookmarks">`+strings.Repeat("x", 200)+`</storage>`) + `</iq>`, `<not-acceptable `},
	} {
		if got := routertest.Ask(t, core, alice, tc.send); !strings.Contains(got, tc.want) {
			t.Errorf("%s:\n got %s\nwant %s", tc.send, got, tc.want)
		}
	}
	if _, ok, _ := store.GetXML(context.Background(), "localhost", "alice", "private:storage:bookmarks storage"); ok {
		t.Error("the view's document went to the store")
	}
}
