package muc

import (
	"context"
	"time"

	"mellium.im/xmpp/jid"

	"ottr.im/ottr/element"
	"ottr.im/ottr/internal/randid"
	"ottr.im/ottr/router"
)

// moderation is a moderator's retraction request (XEP-0425), in its
// current form (<moderate id=”/>, urn:xmpp:message-moderate:1) or the
// earlier one within a fastening (<apply-to id=”><moderate/></apply-to>,
// urn:xmpp:message-moderate:0, which slixmpp 1.8 sends).
type moderation struct {
	id      string
	reason  string
	retract bool
}

type moderate1 struct {
	ID      string    `xml:"id,attr"`
	Retract *struct{} `xml:"urn:xmpp:message-retract:1 retract"`
	Reason  string    `xml:"reason"`
}

type applyTo0 struct {
	ID       string `xml:"id,attr"`
	Moderate *struct {
		Retract *struct{} `xml:"urn:xmpp:message-retract:0 retract"`
		Reason  string    `xml:"reason"`
	} `xml:"urn:xmpp:message-moderate:0 moderate"`
}

// parseModeration reads either form of the request.
func parseModeration(st *element.Stanza, name xmlName) (moderation, error) {
	switch name {
	case xmlName{nsModerate1, "moderate"}:
		var m moderate1
		if err := st.DecodePayload(&m); err != nil {
			return moderation{}, errBadRequest
		}
		return moderation{id: m.ID, reason: m.Reason, retract: m.Retract != nil}, nil
	default:
		var a applyTo0
		if err := st.DecodePayload(&a); err != nil || a.Moderate == nil {
			return moderation{}, errBadRequest
		}
		return moderation{id: a.ID, reason: a.Moderate.Reason, retract: a.Moderate.Retract != nil}, nil
	}
}

// moderate retracts an occupant's message for everyone (XEP-0425): a
// moderator names it by its stanza-id; the room tells every occupant, in
// both forms of the protocol, and keeps a tombstone in its place in the
// history and the archive. The caller holds s.mu.
func (s *service) moderate(ctx context.Context, r *room, from router.Target, st *element.Stanza, name xmlName) ([]out, error) {
	if st.Type != "set" {
		return nil, errBadRequest
	}
	req, err := parseModeration(st, name)
	switch {
	case err != nil:
		return nil, err
	case req.id == "":
		return nil, errBadRequest
	case !req.retract:
		return nil, errNotImplemented
	}
	mod := r.bySession[from]
	if mod == nil || mod.role < roleModerator {
		return nil, errForbidden
	}
	reason := trim(req.reason, maxReasonBytes)
	by := r.occupantJID(mod.nick)
	modID := r.occupantID(mod.real)
	now := s.m.opts.Now()

	// The tombstone keeps who wrote the message (its from, occupant id
	// and stanza-id), not what.
	tomb := func(orig *element.Stanza) *element.Stanza {
		var b builder
		b.open(nsRetract1, "retracted", "stamp", now.UTC().Format(time.RFC3339))
		b.open(nsModerate1, "moderated", "by", by.String())
		b.leaf(nsOccupantID, "occupant-id", "", "id", modID)
		b.close()
		b.leaf(nsRetract1, "reason", reason)
		b.close()
		if occ, ok := orig.Child(nsOccupantID, "occupant-id"); ok {
			b.leaf(nsOccupantID, "occupant-id", "", "id", element.Attr(occ, "id"))
		}
		b.leaf(nsSID, "stanza-id", "", "by", r.jid.String(), "id", req.id)
		return newStanza("message", "groupchat", orig.From, jid.JID{}, orig.ID, &b)
	}
	found := false
	for i, h := range r.history {
		if h.id == req.id {
			t := tomb(h.st)
			size := len(t.AppendXML(nil))
			r.history[i].st, r.history[i].size = t, size
			r.historyBytes += size - h.size
			found = true
		}
	}
	if s.m.archives(r) {
		ok, err := s.tombstone(ctx, r, req.id, tomb)
		if err != nil {
			return nil, err
		}
		found = found || ok
	}
	if !found {
		return nil, errItemNotFound
	}

	var b builder
	b.open(nsRetract1, "retract", "id", req.id)
	b.open(nsModerate1, "moderated", "by", by.String())
	b.leaf(nsOccupantID, "occupant-id", "", "id", modID)
	b.close()
	b.leaf(nsRetract1, "reason", reason)
	b.close()
	b.open(nsFasten, "apply-to", "id", req.id)
	b.open(nsModerate0, "moderated", "by", by.String())
	b.leaf(nsRetract0, "retract", "")
	b.leaf(nsModerate0, "reason", reason)
	b.close().close()
	note := newStanza("message", "groupchat", r.jid, jid.JID{}, randid.New(), &b)
	var outs []out
	for _, o := range r.occupants {
		for _, j := range o.sessions {
			c := note.Clone()
			c.To = j.t.JID()
			outs = append(outs, out{j.t, c})
		}
	}
	return outs, nil
}
