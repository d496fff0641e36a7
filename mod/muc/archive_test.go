package muc_test

import (
	"fmt"
	"testing"

	"ottr.im/ottr/internal/routertest"
	"ottr.im/ottr/mod/muc"
	"ottr.im/ottr/storage"
)

// TestArchiveQueueAndDestroy: the room's messages are written off the
// sender's path, but a query right after them finds them all, and a room
// destroyed with messages still queued leaves no archive behind for a
// room made again under its name.
func TestArchiveQueueAndDestroy(t *testing.T) {
	f := newFixture(t, muc.Options{ArchiveMessages: 100, Rate: 1000})
	alice := routertest.Bind(t, f.core, "alice@localhost/a")
	create(t, f, alice, field("muc#roomconfig_persistentroom", "1"))
	const n = 20
	for i := range n {
		routertest.Send(t, f.core, alice, fmt.Sprintf(`<message type='groupchat' to='%s'><body>%d</body></message>`, room, i))
	}
	xmls(t, alice)
	routertest.Send(t, f.core, alice, `<iq type='set' id='q' to='`+room+`'><query xmlns='urn:xmpp:mam:2'/></iq>`)
	must(t, xmls(t, alice), `type="result"`, fmt.Sprintf(`<count>%d</count>`, n))

	for i := range n {
		routertest.Send(t, f.core, alice, fmt.Sprintf(`<message type='groupchat' to='%s'><body>more %d</body></message>`, room, i))
	}
	routertest.Send(t, f.core, alice, `<iq type='set' id='d' to='`+room+`'><query xmlns='http://jabber.org/protocol/muc#owner'><destroy/></query></iq>`)
	must(t, xmls(t, alice), `type="result"`, `id="d"`)
	f.mod.Flush()
	page, err := f.store.QueryArchive(t.Context(), "conference.localhost", "room", storage.ArchiveQuery{})
	if err != nil || page.Count != 0 {
		t.Errorf("the destroyed room's archive: %d messages, %v; want none", page.Count, err)
	}
}
