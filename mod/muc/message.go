package muc

import (
	"context"
	"encoding/xml"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"ottr.im/ottr/element"
	"ottr.im/ottr/internal/archivewriter"
	"ottr.im/ottr/router"
)

// Bounds of what an occupant may set.
const (
	maxSubjectBytes = 1024
	maxReasonBytes  = 1024
)

// message handles a message to the service, a room or an occupant.
func (s *service) message(ctx context.Context, from router.Target, st *element.Stanza) {
	to := st.To
	switch {
	case to.Localpart() == "":
		if st.Type != "error" {
			s.bounce(from, st, errUnavailable)
		}
	case to.Resourcepart() != "":
		s.private(ctx, from, st)
	case st.Type == "groupchat":
		s.groupchat(ctx, from, st)
	case st.Type == "error":
		// A bounce of what the room sent: the occupant's client is gone
		// or refuses the room; it leaves (XEP-0045 §17.2, ghosts).
		s.mu.Lock()
		var outs []out
		if r := s.rooms[to.Localpart()]; r != nil {
			if o := r.bySession[from]; o != nil {
				outs = s.leave(ctx, r, o, from, nil, nil)
			}
		}
		s.mu.Unlock()
		s.m.deliver(outs)
	default:
		s.invitation(ctx, from, st)
	}
}

// groupchat broadcasts an occupant's message to the room, from its
// occupant JID, or changes the subject.
func (s *service) groupchat(ctx context.Context, from router.Target, st *element.Stanza) {
	s.mu.Lock()
	r, o, _ := s.lookup(from, st)
	switch {
	case r == nil:
		s.unlockBounce(from, st, errItemNotFound)
		return
	case o == nil:
		s.unlockBounce(from, st, errNotAcceptable)
		return
	case o.role < roleParticipant:
		s.unlockBounce(from, st, errForbidden)
		return
	case !s.allowSized(from, st.Size):
		s.unlockBounce(from, st, errConstraint)
		return
	}
	_, hasSubject := st.Child(element.NSClient, "subject")
	_, hasBody := st.Child(element.NSClient, "body")
	if hasSubject && !hasBody {
		subject := st.ChildText(element.NSClient, "subject")
		switch {
		case o.role < roleModerator && !r.cfg.ChangeSubject:
			s.unlockBounce(from, st, errForbidden)
			return
		case len(subject) > maxSubjectBytes:
			s.unlockBounce(from, st, errNotAcceptable)
			return
		}
		r.cfg.Subject, r.cfg.SubjectNick = subject, o.nick
		if r.cfg.Persistent {
			if err := s.save(ctx, r); err != nil {
				s.m.logger.Error("saving a room failed", "room", r.jid.String(), "err", err)
			}
		}
	}
	base := st.Clone()
	// The room's own stanza-id and occupant id replace any the client
	// set (XEP-0359 §5, XEP-0421 §4).
	removeClaims(base)
	base.From = r.occupantJID(o.nick)
	now := s.m.opts.Now()
	id := archivewriter.ID(now)
	var b builder
	b.leaf(nsOccupantID, "occupant-id", "", "id", r.occupantID(o.real))
	b.leaf(nsSID, "stanza-id", "", "by", r.jid.String(), "id", id)
	if err := base.Append(b.reader()); err != nil {
		s.m.logger.Error("building a message failed", "err", err)
	}
	archive := hasBody && s.m.archives(r)
	if hasBody {
		r.addHistory(base, id, now, s.m.opts.MaxHistory, s.m.opts.MaxHistoryBytes)
	}
	outs := make([]out, 0, len(r.occupants))
	for _, viewer := range r.occupants {
		for _, vj := range viewer.sessions {
			c := base.Clone()
			c.To = vj.t.JID()
			outs = append(outs, out{vj.t, c})
		}
	}
	room := r.jid
	s.mu.Unlock()
	s.m.deliver(outs)
	if archive {
		s.archive(room, id, base, now)
	}
}

// private relays a message from one occupant to another (XEP-0045 §7.5)
// from the sender's occupant JID.
func (s *service) private(ctx context.Context, from router.Target, st *element.Stanza) {
	if st.Type == "groupchat" {
		s.bounce(from, st, errBadRequest)
		return
	}
	s.mu.Lock()
	r, o, to := s.lookup(from, st)
	switch {
	case o == nil:
		// Bounce ignores errors.
		s.unlockBounce(from, st, errNotAcceptable)
		return
	case to == nil:
		s.unlockBounce(from, st, errItemNotFound)
		return
	case !s.allow(from):
		s.unlockBounce(from, st, errConstraint)
		return
	}
	base := st.Clone()
	removeClaims(base)
	base.From = r.occupantJID(o.nick)
	if st.Type != "error" && !hasChild(st, nsUser, "x") {
		var b builder
		b.leaf(nsUser, "x", "")
		_ = base.Append(b.reader())
	}
	var outs []out
	for _, j := range to.sessions {
		c := base.Clone()
		c.To = j.t.JID()
		outs = append(outs, out{j.t, c})
	}
	s.mu.Unlock()
	// What the addressee blocks (the occupant JID, or the room) is
	// refused as any stanza to it is (StanzaIn).
	for _, o := range outs {
		if s.m.core.Admit(ctx, from, o.st, o.t.JID()) {
			s.m.core.Deliver(o.t, o.st)
		}
	}
}

// removeClaims removes from a client's message what only the room or
// the addressee's server may say: stanza-ids (XEP-0359 §5; one by the
// addressee's account would pass for an id of its archive) and occupant
// ids (XEP-0421 §4; one would pass for another occupant's).
func removeClaims(st *element.Stanza) {
	st.RemoveChildren(func(e xml.StartElement) bool {
		return e.Name.Space == nsOccupantID || e.Name.Space == nsSID && e.Name.Local == "stanza-id"
	})
}

// invite is the muc#user payload of an invitation or a decline.
type invite struct {
	Invites []struct {
		To     string `xml:"to,attr"`
		Reason string `xml:"reason"`
	} `xml:"invite"`
	Decline *struct {
		To     string `xml:"to,attr"`
		Reason string `xml:"reason"`
	} `xml:"decline"`
}

// maxInvites bounds the invitations of one message.
const maxInvites = 16

// invitation relays a mediated invitation (XEP-0045 §7.8.2) or a decline.
func (s *service) invitation(ctx context.Context, from router.Target, st *element.Stanza) {
	var inv invite
	ok, err := decodeChild(st, nsUser, "x", &inv)
	if !ok || err != nil || (len(inv.Invites) == 0 && inv.Decline == nil) || len(inv.Invites) > maxInvites {
		s.bounce(from, st, errBadRequest)
		return
	}
	s.mu.Lock()
	r := s.rooms[st.To.Localpart()]
	if r == nil {
		s.unlockBounce(from, st, errItemNotFound)
		return
	}
	// Each invitee costs a token, as a message to them would.
	if !s.allowCost(from, float64(max(len(inv.Invites), 1))) {
		s.unlockBounce(from, st, errConstraint)
		return
	}
	if inv.Decline != nil {
		// A decline goes to the inviter, from the room, without the
		// decliner's resource.
		to, err := jid.Parse(inv.Decline.To)
		s.mu.Unlock()
		if err != nil {
			s.bounce(from, st, errJIDMalformed)
			return
		}
		var b builder
		b.open(nsUser, "x").open(nsUser, "decline", "from", from.JID().Bare().String())
		b.leaf(nsUser, "reason", trim(inv.Decline.Reason, maxReasonBytes)).close().close()
		s.sendToUser(ctx, newStanza("message", "", r.jid, to, st.ID, &b))
		return
	}
	o := r.bySession[from]
	aff := r.affiliation(from.JID().Bare())
	switch {
	case o == nil:
		s.unlockBounce(from, st, errNotAcceptable)
		return
	case r.cfg.MembersOnly && aff < affAdmin && !r.cfg.AllowInvites:
		s.unlockBounce(from, st, errForbidden)
		return
	}
	var msgs []*element.Stanza
	changed := false
	for _, i := range inv.Invites {
		to, err := jid.Parse(i.To)
		if err != nil {
			continue
		}
		to = to.Bare()
		if r.cfg.MembersOnly && r.affiliation(to) == affNone && len(r.affiliations) < s.m.opts.MaxAffiliations {
			// An invitation to a members-only room makes the invitee a
			// member (XEP-0045 §7.8.2).
			r.affiliations[to.String()] = affMember
			changed = true
		}
		var b builder
		b.open(nsUser, "x").open(nsUser, "invite", "from", from.JID().Bare().String())
		b.leaf(nsUser, "reason", trim(i.Reason, maxReasonBytes)).close()
		if r.cfg.Password != "" {
			b.leaf(nsUser, "password", r.cfg.Password)
		}
		b.close()
		// XEP-0249's element too, for clients that only read that one.
		b.leaf(nsConference, "x", "", "jid", r.jid.String(), "reason", trim(i.Reason, maxReasonBytes), "password", r.cfg.Password)
		msgs = append(msgs, newStanza("message", "", r.jid, to, st.ID, &b))
	}
	if changed && r.cfg.Persistent {
		if err := s.save(ctx, r); err != nil {
			s.m.logger.Error("saving a room failed", "room", r.jid.String(), "err", err)
		}
	}
	s.mu.Unlock()
	for _, msg := range msgs {
		s.sendToUser(ctx, msg)
	}
}

// sendToUser routes a message from the room to a local user's bare JID
// (with offline storage); no server-to-server yet.
func (s *service) sendToUser(ctx context.Context, st *element.Stanza) {
	if !s.m.core.Serves(st.To.Domainpart()) {
		return
	}
	st.To = st.To.Bare()
	s.m.core.MessageToBare(ctx, nil, st)
}

// history is the <history/> of a join.
type history = struct {
	MaxStanzas *int   `xml:"maxstanzas,attr"`
	MaxChars   *int   `xml:"maxchars,attr"`
	Seconds    *int   `xml:"seconds,attr"`
	Since      string `xml:"since,attr"`
}

// historyFor returns the history a newcomer asked for (XEP-0045
// §7.2.13), oldest first, each with its delay. The caller holds s.mu.
func (s *service) historyFor(r *room, t router.Target, h *history) []out {
	entries := r.history
	if h != nil {
		if h.MaxStanzas != nil {
			n := max(*h.MaxStanzas, 0)
			if n < len(entries) {
				entries = entries[len(entries)-n:]
			}
		}
		var since time.Time
		if h.Seconds != nil {
			since = s.m.opts.Now().Add(-time.Duration(max(*h.Seconds, 0)) * time.Second)
		}
		if h.Since != "" {
			if ts, err := time.Parse(time.RFC3339, h.Since); err == nil && ts.After(since) {
				since = ts
			}
		}
		if !since.IsZero() {
			i := 0
			for i < len(entries) && entries[i].at.Before(since) {
				i++
			}
			entries = entries[i:]
		}
		if h.MaxChars != nil {
			total, i := 0, len(entries)
			for i > 0 && total+entries[i-1].size <= *h.MaxChars {
				total += entries[i-1].size
				i--
			}
			entries = entries[i:]
		}
	}
	outs := make([]out, 0, len(entries))
	for _, e := range entries {
		c := e.st.Clone()
		c.To = t.JID()
		var b builder
		b.leaf(nsDelay, "delay", "", "from", r.jid.String(), "stamp", e.at.UTC().Format(time.RFC3339Nano))
		_ = c.Append(b.reader())
		outs = append(outs, out{t, c})
	}
	return outs
}

// trim cuts s to at most n bytes, on a rune boundary.
func trim(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}
