package server_test

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"ottr.im/ottr/config"
	"ottr.im/ottr/internal/xmpptest"
	"ottr.im/ottr/server"
)

// roomAvatar waits for presence from the bare JID room carrying the
// XEP-0153 photo hash (empty for none).
func roomAvatar(c *xmpptest.Client, room, hash string) xmpptest.Received {
	return c.WaitFor(func(r xmpptest.Received) bool {
		return r.Name == "presence" && r.From == room && r.Type == "" &&
			strings.Contains(r.Inner, `vcard-temp:x:update`) && strings.Contains(r.Inner, `>`+hash+`</photo>`)
	})
}

// TestRoomAvatar: an owner sets the room's vCard with a photo; an
// occupant gets the room's presence with its hash and status 104, and
// reads the vCard; one who enters later gets the hash too; a non-owner's
// set is forbidden, a vCard over vcard_bytes not-acceptable; after a
// restart the vCard and the hash are still there.
func TestRoomAvatar(t *testing.T) {
	const room = "avatars@" + mucService
	var dataDir string
	ts := startServer(t, func(c *config.Config) {
		dataDir = c.DataDir
		c.Limits.VCardBytes = 4096
	})
	alice := ts.online(t, "alice", "a")
	bob := ts.online(t, "bob", "b")

	alice.Send(`<presence to='` + room + `/alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>`)
	alice.WaitFor(func(r xmpptest.Received) bool { return r.Name == "presence" && r.From == room+"/alice" })
	cfg := alice.IQ(`<iq type='set' id='cfg' to='`+room+`'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>`+
		`<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>`+
		`<field var='muc#roomconfig_persistentroom'><value>1</value></field></x></query></iq>`, "cfg")
	if cfg.Type != "result" {
		t.Fatalf("configuring the room: %+v", cfg)
	}
	bob.Send(`<presence to='` + room + `/bob'><x xmlns='http://jabber.org/protocol/muc'/></presence>`)
	bob.WaitFor(func(r xmpptest.Received) bool {
		return r.Name == "presence" && r.From == room+"/bob" && strings.Contains(r.Inner, `code="110"`)
	})

	image := []byte("\x89PNG\r\n\x1a\n a room's avatar, not really a PNG")
	sum := sha1.Sum(image)
	hash := hex.EncodeToString(sum[:])
	b64 := base64.StdEncoding.EncodeToString(image)
	set := func(c *xmpptest.Client, id, inner string) xmpptest.Received {
		return c.IQ(`<iq type='set' id='`+id+`' to='`+room+`'><vCard xmlns='vcard-temp'>`+inner+`</vCard></iq>`, id)
	}
	photo := `<FN>Avatars</FN><PHOTO><TYPE>image/png</TYPE><BINVAL>` + b64[:30] + "\n" + b64[30:] + `</BINVAL></PHOTO>`

	// Bob is no owner.
	if r := set(bob, "bs", photo); r.Type != "error" || !strings.Contains(r.Inner, "forbidden") {
		t.Fatalf("a participant's set: %+v", r)
	}
	// Alice sets it; bob is told.
	if r := set(alice, "as", photo); r.Type != "result" {
		t.Fatalf("the owner's set: %+v", r)
	}
	roomAvatar(bob, room, hash)
	bob.WaitFor(func(r xmpptest.Received) bool {
		return r.Name == "message" && r.From == room && strings.Contains(r.Inner, `code="104"`)
	})
	get := func(c *xmpptest.Client, id string) xmpptest.Received {
		return c.IQ(`<iq type='get' id='`+id+`' to='`+room+`'><vCard xmlns='vcard-temp'/></iq>`, id)
	}
	if r := get(bob, "bg"); r.Type != "result" || !strings.Contains(r.Inner, ">Avatars</FN>") || !strings.Contains(r.Inner, "BINVAL") {
		t.Fatalf("bob's get: %+v", r)
	}
	info := bob.IQ(`<iq type='get' id='ri' to='`+room+`'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`, "ri")
	if !strings.Contains(info.Inner, `var="vcard-temp"`) || !strings.Contains(info.Inner, hash) {
		t.Errorf("the room's disco#info lacks vcard-temp or the hash: %s", info.Inner)
	}

	// Too large: refused, the vCard unchanged.
	if r := set(alice, "big", `<DESC>`+strings.Repeat("x", 5000)+`</DESC>`); r.Type != "error" || !strings.Contains(r.Inner, "not-acceptable") {
		t.Fatalf("a vCard over vcard_bytes: %+v", r)
	}
	bob.NoneWithin(200*time.Millisecond, func(r xmpptest.Received) bool { return r.Name == "presence" && r.From == room })

	// Carol enters: the room's presence with the hash.
	carol := ts.online(t, "carol", "c")
	carol.Send(`<presence to='` + room + `/carol'><x xmlns='http://jabber.org/protocol/muc'/></presence>`)
	roomAvatar(carol, room, hash)

	// A restart: the vCard is there, and so is the hash.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); err != nil && !errors.Is(err, server.ErrServerClosed) {
		t.Fatalf("shutdown: %v", err)
	}
	ts2 := startServer(t, func(c *config.Config) { c.DataDir = dataDir })
	dave := ts2.online(t, "dave", "d")
	if r := get(dave, "dg"); r.Type != "result" || !strings.Contains(r.Inner, b64[30:]) {
		t.Fatalf("the vCard after a restart: %+v", r)
	}
	dave.Send(`<presence to='` + room + `/dave'><x xmlns='http://jabber.org/protocol/muc'/></presence>`)
	roomAvatar(dave, room, hash)
}
