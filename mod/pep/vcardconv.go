package pep

import (
	"bytes"
	"context"
	"encoding/xml"

	"ottr.im/ottr/router"
)

// XEP-0398, user avatar to vCard-based avatars conversion: a user who
// published an XEP-0084 avatar has its hash (the metadata item's id, the
// SHA-1 of the image) put in the available presence they send, as
// XEP-0153's <x xmlns='vcard-temp:x:update'><photo>hash</photo></x>, so
// that clients that only know vCard avatars see it. Like Prosody's
// mod_vcard_legacy it works on presence as it leaves the user, before
// anything else sees it (PresenceOut at priority 1000): the broadcast to
// contacts and the user's resources, the presence the core records for
// probes, and directed presence (rooms) all carry it. A <photo/> the
// client put there is left alone; an avatar disabled (metadata without
// <info/>) gives an empty <photo/>; without an avatar node, or with a
// whitelist one, the presence is left as it is.

// Namespaces.
const (
	nsAvatarMetadata   = "urn:xmpp:avatar:metadata"
	nsVCardUpdate      = "vcard-temp:x:update"
	nsVCardConversion  = "urn:xmpp:pep-vcard-conversion:0"
	avatarHashHexChars = 40
)

// vcardUpdate adds the user's avatar hash to available presence from one
// of their sessions (PresenceOut); it never stops the chain.
func (m *Module) vcardUpdate(ev *router.EventData) bool {
	st := ev.Stanza
	if ev.From == nil || st.Type != "" {
		return false
	}
	hasX, inX := false, false
	depth := 0
	for _, tok := range st.Tokens() {
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 && t.Name.Space == nsVCardUpdate && t.Name.Local == "x" {
				hasX, inX = true, true
			} else if depth == 1 && inX && t.Name.Local == "photo" {
				return false // the client's own hash, left alone as Prosody does
			}
			depth++
		case xml.EndElement:
			if depth--; depth == 0 {
				inX = false
			}
		}
	}
	hash, ok := m.avatarHash(ev.Ctx, ev.From.JID().Domainpart(), ev.From.JID().Localpart())
	if !ok {
		return false
	}
	if hasX {
		st.RemoveChildren(func(s xml.StartElement) bool { return s.Name.Space == nsVCardUpdate && s.Name.Local == "x" })
	}
	x := xml.StartElement{Name: xml.Name{Space: nsVCardUpdate, Local: "x"}}
	photo := xml.StartElement{Name: xml.Name{Space: nsVCardUpdate, Local: "photo"}}
	add := []xml.Token{x, photo}
	if hash != "" {
		add = append(add, xml.CharData(hash))
	}
	add = append(add, photo.End(), x.End())
	cur := st.Tokens()
	st.SetTokens(append(cur[:len(cur):len(cur)], add...))
	return false
}

// avatarHash returns the hash of the user's XEP-0084 avatar: the id of
// the last item of their metadata node, "" when that item says the
// avatar is disabled (no <info/>). ok is false when there is nothing to
// say: no node or item, a whitelist node (only its owner may know), an
// id that is not a SHA-1, or a storage failure (logged).
func (m *Module) avatarHash(ctx context.Context, host, user string) (hash string, ok bool) {
	n, ok, err := m.store.PEPNode(ctx, host, user, nsAvatarMetadata)
	if err != nil {
		m.logger.Error("reading the avatar node failed", "host", host, "user", user, "err", err)
		return "", false
	}
	if !ok || n.Access == "whitelist" {
		return "", false
	}
	items, err := m.store.PEPItems(ctx, host, user, nsAvatarMetadata, nil, 1)
	if err != nil {
		m.logger.Error("reading the avatar metadata failed", "host", host, "user", user, "err", err)
		return "", false
	}
	if len(items) == 0 {
		return "", false
	}
	if !hasAvatarInfo(items[0].Payload) {
		return "", true
	}
	id := items[0].ID
	if !isSHA1Hex(id) {
		return "", false
	}
	return id, true
}

// hasAvatarInfo reports whether a metadata payload has an <info/>: an
// avatar, not the empty metadata that disables it (XEP-0084 §4.5).
func hasAvatarInfo(payload []byte) bool {
	d := xml.NewDecoder(bytes.NewReader(payload))
	depth := 0
	for {
		tok, err := d.Token()
		if err != nil {
			return false
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 1 && t.Name.Space == nsAvatarMetadata && t.Name.Local == "info" {
				return true
			}
			depth++
		case xml.EndElement:
			depth--
		}
	}
}

// isSHA1Hex reports whether s is a SHA-1 in hex, as XEP-0084 item ids
// are.
func isSHA1Hex(s string) bool {
	if len(s) != avatarHashHexChars {
		return false
	}
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
