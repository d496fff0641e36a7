package muc_test

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"strings"
	"testing"

	"ottr.im/ottr/internal/routertest"
	"ottr.im/ottr/mod/muc"
	"ottr.im/ottr/router"
)

// photoVCard is a vCard set iq with an inline photo of the given bytes
// (folded over lines as clients send it) and its SHA-1.
func photoVCard(id string, photo []byte) (iq, hash string) {
	sum := sha1.Sum(photo)
	b64 := base64.StdEncoding.EncodeToString(photo)
	folded := ""
	for len(b64) > 20 {
		folded += b64[:20] + "\n"
		b64 = b64[20:]
	}
	folded += b64
	return `<iq type='set' id='` + id + `' to='` + room + `'><vCard xmlns='vcard-temp'><FN>Room</FN><PHOTO><TYPE>image/png</TYPE><BINVAL>` + folded + `</BINVAL></PHOTO></vCard></iq>`, hex.EncodeToString(sum[:])
}

func TestRoomVCard(t *testing.T) {
	core, store := routertest.New(t)
	f := register(t, core, store, muc.Options{MaxVCardBytes: 2048})
	alice := routertest.Bind(t, f.core, "alice@localhost/a")
	create(t, f, alice, field("muc#roomconfig_persistentroom", "1"))
	bob := routertest.Bind(t, f.core, "bob@localhost/b")
	got := join(t, f, bob, "bob", "")
	mustNot(t, got, `vcard-temp:x:update`) // no photo yet: no avatar presence
	xmls(t, alice)

	// No vCard yet: an empty one.
	must(t, []string{routertest.Ask(t, f.core, bob, `<iq type='get' id='g0' to='`+room+`'><vCard xmlns='vcard-temp'/></iq>`)}, `type="result"`, `<vCard xmlns="vcard-temp"></vCard>`)

	// A member that is not the owner may not set it.
	set, hash := photoVCard("s1", []byte("\x89PNG a picture"))
	must(t, []string{routertest.Ask(t, f.core, bob, strings.Replace(set, "s1", "nb", 1))}, `type="error"`, `<forbidden`)

	// The owner sets it: a result, and every occupant gets the room's
	// presence with the hash, and status 104.
	routertest.Send(t, f.core, alice, set)
	got = xmls(t, alice)
	must(t, got, `id="s1"`, `type="result"`)
	for _, g := range [][]string{got, xmls(t, bob)} {
		must(t, g, `<presence`, `from="`+room+`"`, `<x xmlns="vcard-temp:x:update">`, `>`+hash+`</photo>`)
		must(t, g, `<message`, `type="groupchat"`, `code="104"`)
	}

	// Anyone gets it, the photo as set.
	carol := routertest.Bind(t, f.core, "carol@localhost/c")
	v := routertest.Ask(t, f.core, carol, `<iq type='get' id='g1' to='`+room+`'><vCard xmlns='vcard-temp'/></iq>`)
	must(t, []string{v}, `type="result"`, `>Room</FN>`, `</BINVAL>`)

	// disco#info lists vcard-temp and the hash.
	info := routertest.Ask(t, f.core, carol, `<iq type='get' id='d' to='`+room+`'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	must(t, []string{info}, `var="vcard-temp"`, `var="muc#roominfo_avatarhash"`, `>`+hash+`</value>`)

	// One who enters gets the room's presence with the hash.
	must(t, join(t, f, carol, "carol", ""), `from="`+room+`"`, `vcard-temp:x:update`, `>`+hash+`</photo>`)

	// Too large: not-acceptable, nothing changes; bad base64: bad-request.
	xmls(t, alice)
	big := `<iq type='set' id='big' to='` + room + `'><vCard xmlns='vcard-temp'><DESC>` + strings.Repeat("x", 3000) + `</DESC></vCard></iq>`
	must(t, []string{routertest.Ask(t, f.core, alice, big)}, `type="error"`, `<not-acceptable`)
	bad := `<iq type='set' id='bad' to='` + room + `'><vCard xmlns='vcard-temp'><PHOTO><BINVAL>!!not base64!!</BINVAL></PHOTO></vCard></iq>`
	must(t, []string{routertest.Ask(t, f.core, alice, bad)}, `type="error"`, `<bad-request`)
	xmls(t, bob)
	must(t, []string{routertest.Ask(t, f.core, bob, `<iq type='get' id='g2' to='`+room+`'><vCard xmlns='vcard-temp'/></iq>`)}, `>Room</FN>`)

	// A restart: the vCard and the hash are there.
	core2 := router.New(router.Options{Hosts: []string{routertest.Host}, Accounts: store})
	f2 := register(t, core2, store, muc.Options{})
	dave := routertest.Bind(t, f2.core, "dave@localhost/d")
	must(t, join(t, f2, dave, "dave", ""), `from="`+room+`"`, `vcard-temp:x:update`, `>`+hash+`</photo>`)
	must(t, []string{routertest.Ask(t, f2.core, dave, `<iq type='get' id='g3' to='`+room+`'><vCard xmlns='vcard-temp'/></iq>`)}, `>Room</FN>`, `</BINVAL>`)

	// Removing the photo: occupants get an empty <photo/>.
	alice2 := routertest.Bind(t, f2.core, "alice@localhost/a")
	join(t, f2, alice2, "alice", "")
	xmls(t, dave)
	routertest.Send(t, f2.core, alice2, `<iq type='set' id='s2' to='`+room+`'><vCard xmlns='vcard-temp'><FN>Room</FN></vCard></iq>`)
	must(t, xmls(t, dave), `from="`+room+`"`, `vcard-temp:x:update"></photo>`)
}

// A temporary room keeps its vCard in memory; it goes to the store when
// the room becomes persistent, and back when it stops being so.
func TestRoomVCardTemporaryThenPersistent(t *testing.T) {
	f := newFixture(t, muc.Options{})
	alice := routertest.Bind(t, f.core, "alice@localhost/a")
	create(t, f, alice, "")
	set, hash := photoVCard("s", []byte("picture"))
	routertest.Send(t, f.core, alice, set)
	must(t, xmls(t, alice), `id="s"`, `type="result"`)
	ctx := context.Background()
	if _, ok, err := f.store.MUCVCard(ctx, svc, "room"); ok || err != nil {
		t.Fatalf("a temporary room's vCard is stored: %v, %v", ok, err)
	}
	cfg := func(on string) {
		routertest.Send(t, f.core, alice, `<iq type='set' id='cfg' to='`+room+`'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>`+field("muc#roomconfig_persistentroom", on)+`</x></query></iq>`)
		must(t, xmls(t, alice), `id="cfg"`, `type="result"`)
	}
	cfg("1")
	photos, err := f.store.MUCVCardPhotos(ctx, svc)
	if err != nil || photos["room"] != hash {
		t.Fatalf("stored photos = %v, %v; want room: %s", photos, err, hash)
	}
	cfg("0")
	if _, ok, err := f.store.MUCVCard(ctx, svc, "room"); ok || err != nil {
		t.Fatalf("a room no longer persistent still has a stored vCard: %v, %v", ok, err)
	}
	must(t, []string{routertest.Ask(t, f.core, alice, `<iq type='get' id='g' to='`+room+`'><vCard xmlns='vcard-temp'/></iq>`)}, `>Room</FN>`, `</BINVAL>`)
}

// A stored room's vCard goes with the room.
func TestRoomVCardStore(t *testing.T) {
	_, store := routertest.New(t)
	ctx := context.Background()
	if err := store.PutMUCVCard(ctx, svc, "nope", []byte(`<vCard xmlns="vcard-temp"/>`), ""); err == nil {
		t.Fatal("PutMUCVCard of a room not stored: no error")
	}
	f := register(t, router.New(router.Options{Hosts: []string{routertest.Host}, Accounts: store}), store, muc.Options{})
	alice := routertest.Bind(t, f.core, "alice@localhost/a")
	create(t, f, alice, field("muc#roomconfig_persistentroom", "1"))
	set, _ := photoVCard("s", []byte("picture"))
	routertest.Send(t, f.core, alice, set)
	must(t, xmls(t, alice), `id="s"`, `type="result"`)
	routertest.Send(t, f.core, alice, `<iq type='set' id='x' to='`+room+`'><query xmlns='http://jabber.org/protocol/muc#owner'><destroy/></query></iq>`)
	if photos, err := store.MUCVCardPhotos(ctx, svc); err != nil || len(photos) != 0 {
		t.Fatalf("photos after the room was destroyed = %v, %v", photos, err)
	}
}

// FuzzPhotoHash: whatever vCard an owner sets, the photo hash is "" or a
// SHA-1 in hex, or the vCard is refused; never a panic.
func FuzzPhotoHash(f *testing.F) {
	f.Add([]byte(`<vCard xmlns='vcard-temp'><PHOTO><BINVAL>cA==</BINVAL></PHOTO></vCard>`))
	f.Add([]byte(`<vCard xmlns='vcard-temp'><PHOTO><EXTVAL>http://x</EXTVAL></PHOTO><PHOTO><BINVAL>cA</BINVAL></PHOTO></vCard>`))
	f.Add([]byte(`<vCard xmlns='vcard-temp'/>`))
	f.Add([]byte(`<vCard xmlns='other'><PHOTO><BINVAL>%%%</BINVAL></PHOTO></vCard>`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		h, err := muc.PhotoHash(xml.NewDecoder(bytes.NewReader(doc)))
		if err != nil {
			return
		}
		if h != "" {
			if b, err := hex.DecodeString(h); err != nil || len(b) != sha1.Size {
				t.Fatalf("hash %q of %q", h, doc)
			}
		}
	})
}
