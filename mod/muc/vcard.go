package muc

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"ottr.im/ottr/element"
	"ottr.im/ottr/router"
)

// Room vCards and avatars (XEP-0054 on a room's JID, XEP-0153's hash in
// the room's presence), as Prosody's MUC (muc/vcard.lib.lua, formerly
// prosody-modules' mod_vcard_muc) does them:
//
//   - a vcard-temp get to the room answers its vCard (an empty one when it
//     has none) to whoever may see the room (its disco#info);
//   - a set by an owner replaces it, within Options.MaxVCardBytes; anyone
//     else gets forbidden;
//   - the occupants are then told: presence from the room's bare JID with
//     <x xmlns='vcard-temp:x:update'><photo>SHA-1</photo></x> (empty
//     when the photo went) and a groupchat message with status 104;
//   - a session entering a room with a photo gets that presence after its
//     own;
//   - the room's disco#info lists vcard-temp and, with a photo, the hash
//     in muc#roominfo_avatarhash (XEP-0486).
//
// A persistent room's vCard is in the store (muc_vcards), only the hash
// in memory; a temporary room keeps its vCard in memory, and the store
// takes it when the room becomes persistent.

// Namespaces.
const (
	nsVCard       = "vcard-temp"
	nsVCardUpdate = "vcard-temp:x:update"
)

var vcardQuery = xmlName{nsVCard, "vCard"}

// roomVCard is what a room keeps of its vCard.
type roomVCard struct {
	// set: the room has a vCard.
	set bool
	// photo is the SHA-1 (hex) of the photo's bytes, "" without one.
	photo string
	// doc is the vCard of a room that is not stored; nil when stored.
	doc []byte
	// stored: the vCard is in the store.
	stored bool
}

// vcardPhoto is what the server reads of a vCard: its photo.
type vcardPhoto struct {
	XMLName xml.Name `xml:"vcard-temp vCard"`
	Photo   *struct {
		BinVal string `xml:"BINVAL"`
	} `xml:"PHOTO"`
}

// photoHash returns the SHA-1 (hex) of the decoded PHOTO/BINVAL of the
// vCard r reads, "" when it has no inline photo (none, or only EXTVAL).
// A vCard that does not decode, or whose BINVAL is not base64, is an
// error.
func photoHash(r xml.TokenReader) (string, error) {
	var v vcardPhoto
	if err := xml.NewTokenDecoder(r).Decode(&v); err != nil {
		return "", fmt.Errorf("muc: bad vCard: %w", err)
	}
	if v.Photo == nil {
		return "", nil
	}
	// BINVAL is often folded over lines.
	b64 := strings.Join(strings.Fields(v.Photo.BinVal), "")
	if b64 == "" {
		return "", nil
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		if raw, err = base64.RawStdEncoding.DecodeString(b64); err != nil {
			return "", fmt.Errorf("muc: bad vCard photo: %w", err)
		}
	}
	sum := sha1.Sum(raw)
	return hex.EncodeToString(sum[:]), nil
}

// loadVCards reads which stored rooms have a vCard, and their photos'
// hashes. The caller holds s.mu or has not published s yet.
func (s *service) loadVCards(ctx context.Context) error {
	photos, err := s.m.store.MUCVCardPhotos(ctx, s.domain.String())
	if err != nil {
		return fmt.Errorf("muc: loading the room vCards of %s: %w", s.domain, err)
	}
	for name, photo := range photos {
		if r := s.rooms[name]; r != nil {
			r.vcard = roomVCard{set: true, photo: photo, stored: true}
		}
	}
	return nil
}

// vcardIQ answers a vcard-temp get or set to r; it releases s.mu, which
// the caller holds.
func (s *service) vcardIQ(ctx context.Context, r *room, from router.Target, st *element.Stanza) (*builder, error) {
	if st.Type == "get" {
		v, name := r.vcard, r.jid.Localpart()
		s.mu.Unlock()
		return s.getVCard(ctx, v, name)
	}
	outs, err := s.setVCard(ctx, r, from, st)
	s.mu.Unlock()
	s.m.deliver(outs)
	return nil, err
}

// getVCard returns the room's vCard as an iq result's payload.
func (s *service) getVCard(ctx context.Context, v roomVCard, name string) (*builder, error) {
	doc := v.doc
	if v.stored {
		d, ok, err := s.m.store.MUCVCard(ctx, s.domain.String(), name)
		if err != nil {
			return nil, err
		}
		if ok {
			doc = d
		}
	}
	if len(doc) == 0 {
		var b builder
		b.leaf(nsVCard, "vCard", "")
		return &b, nil
	}
	d := xml.NewDecoder(bytes.NewReader(doc))
	var b builder
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("muc: stored vCard of %s: %w", name, err)
		}
		b.toks = append(b.toks, xml.CopyToken(tok))
	}
	return &b, nil
}

// setVCard replaces r's vCard with st's (an owner's) and tells the
// occupants. The caller holds s.mu.
func (s *service) setVCard(ctx context.Context, r *room, from router.Target, st *element.Stanza) ([]out, error) {
	if r.affiliation(from.JID().Bare()) != affOwner {
		return nil, errForbidden
	}
	if !s.allow(from) {
		return nil, errConstraint
	}
	toks := st.PayloadTokens()
	doc, err := element.EncodeTokens(toks)
	if err != nil {
		return nil, errBadRequest
	}
	if max := s.m.opts.MaxVCardBytes; len(doc) > max {
		return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable, Text: map[string]string{"": "vCard larger than " + strconv.Itoa(max) + " bytes"}}
	}
	photo, err := photoHash(&tokReader{toks: toks})
	if err != nil {
		return nil, errBadRequest
	}
	v := roomVCard{set: true, photo: photo, doc: doc}
	if r.cfg.Persistent {
		if err := s.m.store.PutMUCVCard(ctx, s.domain.String(), r.jid.Localpart(), doc, photo); err != nil {
			return nil, err
		}
		v.doc, v.stored = nil, true
	}
	r.vcard = v
	return s.announceVCard(r), nil
}

// storeVCard moves the vCard of r, which was just stored, to the store.
// The caller holds s.mu.
func (s *service) storeVCard(ctx context.Context, r *room) error {
	if r.vcard.doc == nil {
		return nil
	}
	if err := s.m.store.PutMUCVCard(ctx, s.domain.String(), r.jid.Localpart(), r.vcard.doc, r.vcard.photo); err != nil {
		return err
	}
	r.vcard.doc, r.vcard.stored = nil, true
	return nil
}

// unstoreVCard takes the vCard of r, which is about to leave the store,
// back into memory. The caller holds s.mu.
func (s *service) unstoreVCard(ctx context.Context, r *room) error {
	if !r.vcard.stored {
		return nil
	}
	doc, ok, err := s.m.store.MUCVCard(ctx, s.domain.String(), r.jid.Localpart())
	if err != nil {
		return err
	}
	if !ok {
		r.vcard = roomVCard{}
		return nil
	}
	r.vcard.doc, r.vcard.stored = doc, false
	return nil
}

// avatarPresence is the room's presence with its photo's hash (empty for
// none), to.
func avatarPresence(r *room, to jid.JID) *element.Stanza {
	var b builder
	b.open(nsVCardUpdate, "x").leaf(nsVCardUpdate, "photo", r.vcard.photo).close()
	return newStanza("presence", "", r.jid, to, "", &b)
}

// announceVCard tells every occupant that the room's vCard changed: its
// presence with the new hash, and status 104. The caller holds s.mu.
func (s *service) announceVCard(r *room) []out {
	var b builder
	b.open(nsUser, "x").leaf(nsUser, "status", "", "code", "104").close()
	note := newStanza("message", "groupchat", r.jid, jid.JID{}, "", &b)
	var outs []out
	for _, o := range r.occupants {
		for _, j := range o.sessions {
			c := note.Clone()
			c.To = j.t.JID()
			outs = append(outs, out{j.t, avatarPresence(r, j.t.JID())}, out{j.t, c})
		}
	}
	return outs
}

// joinAvatar is what a session entering r gets of its avatar: the room's
// presence with the hash, when it has a photo. The caller holds s.mu.
func joinAvatar(r *room, t router.Target) []out {
	if r.vcard.photo == "" {
		return nil
	}
	return []out{{t, avatarPresence(r, t.JID())}}
}

// vcardInfo adds the hash of the room's photo, when it has one, to its
// disco#info: XEP-0486's muc#roominfo_avatarhash, inside the open
// muc#roominfo form.
func vcardInfo(b *builder, r *room) {
	if r.vcard.photo != "" {
		b.open(nsData, "field", "var", "muc#roominfo_avatarhash", "type", "text-multi").leaf(nsData, "value", r.vcard.photo).close()
	}
}
