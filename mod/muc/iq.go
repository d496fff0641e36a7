package muc

import (
	"context"
	"errors"
	"hash/maphash"
	"slices"
	"strconv"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"ottr.im/ottr/element"
	"ottr.im/ottr/router"
)

// iq handles an iq to the service, a room or an occupant: every request
// gets one answer.
func (s *service) iq(ctx context.Context, from router.Target, st *element.Stanza) {
	to := st.To
	if !st.IsIQRequest() {
		if to.Resourcepart() != "" && (st.Type == "result" || st.Type == "error") {
			s.occupantIQ(from, st, xmlName{})
		}
		return
	}
	payload, ok := st.Payload()
	if !ok {
		s.bounce(from, st, errBadRequest)
		return
	}
	name := xmlName{payload.Name.Space, payload.Name.Local}
	var b *builder
	var err error
	switch {
	case to.Localpart() == "":
		b, err = s.serviceIQ(st, name)
	case to.Resourcepart() == "":
		b, err = s.roomIQ(ctx, from, st, name)
	default:
		s.occupantIQ(from, st, name)
		return
	}
	var se stanza.Error
	switch {
	case errors.As(err, &se):
		s.bounce(from, st, se)
	case err != nil:
		s.m.logger.Error("iq failed", "to", to.String(), "err", err)
		s.bounce(from, st, errInternal)
	default:
		var r *tokReader
		if b != nil {
			r = &tokReader{toks: b.toks}
			s.m.core.Deliver(from, st.Reply(to, r))
			return
		}
		s.m.core.Deliver(from, st.Reply(to, nil))
	}
}

// xmlName is an iq payload's name.
type xmlName struct{ space, local string }

var (
	discoInfo  = xmlName{nsDiscoInfo, "query"}
	discoItems = xmlName{nsDiscoItems, "query"}
	ping       = xmlName{nsPing, "ping"}
	adminQuery = xmlName{nsAdmin, "query"}
	ownerQuery = xmlName{nsOwner, "query"}
)

// serviceIQ answers requests to the service itself.
func (s *service) serviceIQ(st *element.Stanza, name xmlName) (*builder, error) {
	if st.Type != "get" {
		return nil, errUnavailable
	}
	var b builder
	switch name {
	case discoInfo:
		b.open(nsDiscoInfo, "query")
		b.leaf(nsDiscoInfo, "identity", "", "category", "conference", "type", "text", "name", "Chatrooms")
		for _, f := range []string{nsMUC, nsDiscoInfo, nsDiscoItems, nsOccupantID, nsSelfPing, nsPing} {
			b.leaf(nsDiscoInfo, "feature", "", "var", f)
		}
		b.close()
	case discoItems:
		b.open(nsDiscoItems, "query")
		s.mu.Lock()
		n := 0
		for _, r := range s.rooms {
			if !r.cfg.Public || r.locked {
				continue
			}
			if n++; n > maxDiscoItems {
				break
			}
			b.leaf(nsDiscoItems, "item", "", "jid", r.jid.String(), "name", r.cfg.Name)
		}
		s.mu.Unlock()
		b.close()
	case ping:
		return nil, nil
	default:
		return nil, errUnavailable
	}
	return &b, nil
}

// roomIQ answers requests to a room.
func (s *service) roomIQ(ctx context.Context, from router.Target, st *element.Stanza, name xmlName) (*builder, error) {
	s.mu.Lock()
	r := s.rooms[st.To.Localpart()]
	if r == nil || r.locked && r.affiliation(from.JID().Bare()) != affOwner {
		s.mu.Unlock()
		return nil, errItemNotFound
	}
	// A change (configuration, affiliations, roles, moderation, the
	// vCard) costs a token as a message does: it is written under the
	// service's lock. An archive query and a vCard take their own.
	if st.Type == "set" && name != mamQuery && name != vcardQuery && !s.allow(from) {
		s.mu.Unlock()
		return nil, errConstraint
	}
	switch name {
	case adminQuery:
		outs, b, err := s.admin(ctx, r, from, st)
		s.mu.Unlock()
		s.m.deliver(outs)
		return b, err
	case ownerQuery:
		outs, b, err := s.owner(ctx, r, from, st)
		s.mu.Unlock()
		s.m.deliver(outs)
		return b, err
	case xmlName{nsModerate1, "moderate"}, xmlName{nsFasten, "apply-to"}:
		outs, err := s.moderate(ctx, r, from, st, name)
		s.mu.Unlock()
		s.m.deliver(outs)
		return nil, err
	case mamQuery:
		s.mu.Unlock()
		return s.queryArchive(ctx, from, st)
	case vcardQuery:
		return s.vcardIQ(ctx, r, from, st)
	}
	defer s.mu.Unlock()
	if st.Type != "get" {
		return nil, errUnavailable
	}
	var b builder
	switch name {
	case discoInfo:
		switch node := payloadAttr(st, "node"); node {
		case "":
			s.roomInfo(&b, r)
		case "x-roomuser-item":
			// The user's reserved nick (XEP-0045 §7.11): ottr reserves
			// none, so no identity.
			b.leaf(nsDiscoInfo, "query", "", "node", node)
		default:
			return nil, errItemNotFound
		}
	case discoItems:
		// Occupants are not listed: their nicks are for those inside.
		b.leaf(nsDiscoItems, "query", "")
	case ping:
		return nil, nil
	default:
		return nil, errUnavailable
	}
	return &b, nil
}

// payloadAttr returns the attribute local of st's payload, "" if none.
func payloadAttr(st *element.Stanza, local string) string {
	p, _ := st.Payload()
	return element.Attr(p, local)
}

// roomInfo writes a room's disco#info (XEP-0045 §6.4).
func (s *service) roomInfo(b *builder, r *room) {
	c := r.cfg
	pick := func(on bool, yes, no string) string {
		if on {
			return yes
		}
		return no
	}
	b.open(nsDiscoInfo, "query")
	name := c.Name
	if name == "" {
		name = r.jid.Localpart()
	}
	b.leaf(nsDiscoInfo, "identity", "", "category", "conference", "type", "text", "name", name)
	for _, f := range []string{
		nsMUC, nsDiscoInfo, nsOccupantID, nsSelfPing, nsPing, nsSID, nsModerate0, nsModerate1, nsVCard,
		pick(c.Persistent, "muc_persistent", "muc_temporary"),
		pick(c.Public, "muc_public", "muc_hidden"),
		pick(c.MembersOnly, "muc_membersonly", "muc_open"),
		pick(c.Moderated, "muc_moderated", "muc_unmoderated"),
		pick(c.Password != "", "muc_passwordprotected", "muc_unsecured"),
		pick(c.NonAnonymous, "muc_nonanonymous", "muc_semianonymous"),
	} {
		b.leaf(nsDiscoInfo, "feature", "", "var", f)
	}
	if s.m.archives(r) {
		b.leaf(nsDiscoInfo, "feature", "", "var", nsMAM)
	}
	b.open(nsData, "x", "type", "result")
	b.open(nsData, "field", "var", "FORM_TYPE", "type", "hidden").leaf(nsData, "value", nsRoomInfo).close()
	b.open(nsData, "field", "var", "muc#roominfo_description", "label", "Description").leaf(nsData, "value", c.Description).close()
	b.open(nsData, "field", "var", "muc#roominfo_occupants", "label", "Occupants").leaf(nsData, "value", strconv.Itoa(len(r.occupants))).close()
	b.open(nsData, "field", "var", "muc#roominfo_subject", "label", "Subject").leaf(nsData, "value", c.Subject).close()
	vcardInfo(b, r)
	b.close()
	b.close()
}

// occupantIQ handles an iq to room/nick: a self-ping (XEP-0410) is
// answered by the service; any other request between occupants is
// relayed with the sender's occupant JID, and so is the answer to it
// (see answerIQ).
func (s *service) occupantIQ(from router.Target, st *element.Stanza, name xmlName) {
	s.mu.Lock()
	r, o, to := s.lookup(from, st)
	if !st.IsIQRequest() {
		s.answerIQ(from, st, r, o, to)
		return
	}
	switch {
	case o == nil:
		// Not in the room: a self-ping learns it must join again.
		s.unlockBounce(from, st, errNotAcceptable)
		return
	case to == nil:
		s.unlockBounce(from, st, errItemNotFound)
		return
	case to == o && name == ping && st.Type == "get":
		s.mu.Unlock()
		s.m.core.Deliver(from, st.Reply(st.To, nil))
		return
	case !s.allow(from):
		s.unlockBounce(from, st, errConstraint)
		return
	}
	target := to.sessions[len(to.sessions)-1].t
	if !s.ask(from, r, target, st.ID) {
		s.unlockBounce(from, st, errConstraint)
		return
	}
	c := st.Clone()
	c.From, c.To = r.occupantJID(o.nick), target.JID()
	s.mu.Unlock()
	s.m.core.Deliver(target, c)
}

// maxAsked bounds the requests one session relayed to occupants of a
// service and has no answer for yet; askedLife is how long one waits for
// its answer.
const (
	maxAsked  = 16
	askedLife = time.Minute
)

// asked is a request a session sent an occupant through a room: the one
// answer relayed back is the responder's, to the asker's occupant JID,
// with the same id (kept as a seeded hash: an id may be long).
type asked struct {
	room      *room
	responder router.Target
	id        uint64
	expires   time.Time
}

// ask records that from relays a request with id to responder in r, and
// reports false when from already waits for maxAsked answers. The caller
// holds s.mu.
func (s *service) ask(from router.Target, r *room, responder router.Target, id string) bool {
	ss := s.session(from)
	now := s.m.opts.Now()
	h := maphash.String(s.seed, id)
	ss.asked = slices.DeleteFunc(ss.asked, func(a asked) bool {
		return !now.Before(a.expires) || (a.room == r && a.responder == responder && a.id == h)
	})
	if len(ss.asked) >= maxAsked {
		return false
	}
	ss.asked = append(ss.asked, asked{room: r, responder: responder, id: h, expires: now.Add(askedLife)})
	return true
}

// answerIQ relays an occupant's result or error to the session that sent
// it the request (see ask), once. Any other is dropped: relayed freely,
// results would let one occupant send another stanzas that no rate
// limits, from behind its nick. The caller holds s.mu; answerIQ
// releases it.
func (s *service) answerIQ(from router.Target, st *element.Stanza, r *room, o, to *occupant) {
	var asker router.Target
	if o != nil && to != nil {
		asker = s.answered(from, r, to, st.ID)
	}
	if asker == nil {
		s.mu.Unlock()
		s.m.logger.Debug("dropped an iq answer to no request", "from", from.JID().String(), "to", st.To.String(), "type", st.Type)
		return
	}
	c := st.Clone()
	c.From, c.To = r.occupantJID(o.nick), asker.JID()
	s.mu.Unlock()
	s.m.core.Deliver(asker, c)
}

// answered finds and forgets the request with id that one of to's
// sessions asked responder in r, and returns that session (nil: none).
// The caller holds s.mu.
func (s *service) answered(responder router.Target, r *room, to *occupant, id string) router.Target {
	now := s.m.opts.Now()
	h := maphash.String(s.seed, id)
	for _, sess := range to.sessions {
		ss := s.sessions[sess.t]
		if ss == nil {
			continue
		}
		for i, a := range ss.asked {
			if a.room == r && a.responder == responder && a.id == h && now.Before(a.expires) {
				ss.asked = slices.Delete(ss.asked, i, i+1)
				return sess.t
			}
		}
	}
	return nil
}

// adminItem is one <item/> of a muc#admin request.
type adminItem struct {
	Affiliation string `xml:"affiliation,attr"`
	Role        string `xml:"role,attr"`
	JID         string `xml:"jid,attr"`
	Nick        string `xml:"nick,attr"`
	Reason      string `xml:"reason"`
}

// adminRequest is a muc#admin query.
type adminRequest struct {
	Items []adminItem `xml:"item"`
}

// maxAdminItems bounds the items of one muc#admin request.
const maxAdminItems = 100

// admin handles muc#admin (XEP-0045 §8, §9): lists of affiliations and
// roles, and changes of them (kick, ban, voice, membership). The caller
// holds s.mu.
func (s *service) admin(ctx context.Context, r *room, from router.Target, st *element.Stanza) ([]out, *builder, error) {
	var req adminRequest
	if err := st.DecodePayload(&req); err != nil || len(req.Items) == 0 || len(req.Items) > maxAdminItems {
		return nil, nil, errBadRequest
	}
	actor := r.bySession[from]
	actorRole := roleNone
	if actor != nil {
		actorRole = actor.role
	}
	actorAff := r.affiliation(from.JID().Bare())
	if st.Type == "get" {
		b, err := s.adminList(r, req.Items[0], actorRole, actorAff)
		return nil, b, err
	}
	actorNick := ""
	if actor != nil {
		actorNick = actor.nick
	}
	var outs []out
	changed := false
	for _, it := range req.Items {
		reason := trim(it.Reason, maxReasonBytes)
		switch {
		case it.Role != "" && it.Affiliation == "":
			o, err := s.roleChange(r, it, actorRole, actorAff)
			if err != nil {
				return outs, nil, err
			}
			nr, _ := parseRole(it.Role)
			x := itemExtra{actor: actorNick, reason: reason}
			if nr == roleNone {
				x.codes = []int{307}
				for len(o.sessions) > 0 {
					outs = append(outs, s.leave(ctx, r, o, o.sessions[0].t, nil, &x)...)
				}
				continue
			}
			o.role = nr
			outs = append(outs, s.broadcastPresence(r, o, x)...)
		case it.Affiliation != "":
			o, err := s.affiliationChange(r, it, actorAff)
			if err != nil {
				return outs, nil, err
			}
			changed = true
			outs = append(outs, s.affected(ctx, r, o, itemExtra{actor: actorNick, reason: reason})...)
		default:
			return outs, nil, errBadRequest
		}
	}
	if changed && r.cfg.Persistent {
		if err := s.save(ctx, r); err != nil {
			return outs, nil, err
		}
	}
	return outs, nil, nil
}

// adminList answers a muc#admin get: the JIDs with an affiliation (admins
// and owners may ask), or the occupants with a role (moderators may).
func (s *service) adminList(r *room, it adminItem, actorRole role, actorAff affiliation) (*builder, error) {
	var b builder
	b.open(nsAdmin, "query")
	switch {
	case it.Affiliation != "":
		a, ok := parseAffiliation(it.Affiliation)
		if !ok || a == affNone {
			return nil, errBadRequest
		}
		if actorAff < affAdmin && !(a == affMember && actorRole == roleModerator) {
			return nil, errForbidden
		}
		for j, ja := range r.affiliations {
			if ja == a {
				b.leaf(nsAdmin, "item", "", "affiliation", a.String(), "jid", j)
			}
		}
	case it.Role != "":
		rl, ok := parseRole(it.Role)
		if !ok || rl == roleNone {
			return nil, errBadRequest
		}
		if actorRole < roleModerator {
			return nil, errForbidden
		}
		for _, o := range r.occupants {
			if o.role == rl {
				b.leaf(nsAdmin, "item", "", "affiliation", r.affiliation(o.real).String(), "role", rl.String(),
					"nick", o.nick, "jid", o.real.String())
			}
		}
	default:
		return nil, errBadRequest
	}
	b.close()
	return &b, nil
}

// roleChange checks a role change by an actor (XEP-0045 §8.2–8.6, §9.6)
// and returns the occupant concerned.
func (s *service) roleChange(r *room, it adminItem, actorRole role, actorAff affiliation) (*occupant, error) {
	nr, ok := parseRole(it.Role)
	if !ok || it.Nick == "" {
		return nil, errBadRequest
	}
	o := r.occupants[nickKey(it.Nick)]
	if o == nil {
		return nil, errItemNotFound
	}
	targetAff := r.affiliation(o.real)
	switch {
	case actorRole < roleModerator && actorAff < affAdmin:
		return nil, errForbidden
	case nr == roleModerator || o.role == roleModerator && nr < roleModerator:
		// Granting or revoking moderation is an admin's.
		if actorAff < affAdmin || targetAff >= actorAff && targetAff >= affAdmin {
			return nil, errNotAllowed
		}
	case targetAff >= affAdmin:
		// Admins and owners are never kicked nor silenced.
		return nil, errNotAllowed
	}
	return o, nil
}

// affiliationChange checks and applies an affiliation change by an actor
// (XEP-0045 §9, §10.3–10.8) and returns the occupant with that JID, nil
// when none is in the room.
func (s *service) affiliationChange(r *room, it adminItem, actorAff affiliation) (*occupant, error) {
	na, ok := parseAffiliation(it.Affiliation)
	if !ok {
		return nil, errBadRequest
	}
	var target jid.JID
	switch {
	case it.JID != "":
		j, err := jid.Parse(it.JID)
		if err != nil {
			return nil, errJIDMalformed
		}
		target = j.Bare()
	case it.Nick != "":
		o := r.occupants[nickKey(it.Nick)]
		if o == nil {
			return nil, errItemNotFound
		}
		target = o.real
	default:
		return nil, errBadRequest
	}
	cur := r.affiliation(target)
	switch {
	case actorAff < affAdmin:
		return nil, errForbidden
	case (na >= affAdmin || cur >= affAdmin) && actorAff < affOwner:
		return nil, errNotAllowed
	case cur == affOwner && na != affOwner && r.owners() <= 1:
		// The last owner stays (XEP-0045 §10.5).
		return nil, errConflict
	case cur == affNone && na != affNone && len(r.affiliations) >= s.m.opts.MaxAffiliations:
		return nil, errConstraint
	}
	if na == affNone {
		delete(r.affiliations, target.String())
	} else {
		r.affiliations[target.String()] = na
	}
	return r.occupantOf(target), nil
}

// affected tells the room that occupant o's affiliation changed: banned
// (301) or no longer a member of a members-only room (321), it leaves;
// else its role follows its affiliation. The caller holds s.mu.
func (s *service) affected(ctx context.Context, r *room, o *occupant, x itemExtra) []out {
	if o == nil {
		return nil
	}
	a := r.affiliation(o.real)
	var outs []out
	switch {
	case a == affOutcast:
		x.codes = []int{301}
	case r.cfg.MembersOnly && a < affMember:
		x.codes = []int{321}
	default:
		o.role = r.defaultRole(a)
		return s.broadcastPresence(r, o, x)
	}
	for len(o.sessions) > 0 {
		outs = append(outs, s.leave(ctx, r, o, o.sessions[0].t, nil, &x)...)
	}
	return outs
}

// ownerRequest is a muc#owner query.
type ownerRequest struct {
	Form    *dataForm `xml:"jabber:x:data x"`
	Destroy *struct {
		JID      string `xml:"jid,attr"`
		Reason   string `xml:"reason"`
		Password string `xml:"password"`
	} `xml:"destroy"`
}

// owner handles muc#owner (XEP-0045 §10): the configuration form, its
// submission (an instant room is an empty one) and destruction. Only
// owners may. The caller holds s.mu.
func (s *service) owner(ctx context.Context, r *room, from router.Target, st *element.Stanza) ([]out, *builder, error) {
	if r.affiliation(from.JID().Bare()) != affOwner {
		return nil, nil, errForbidden
	}
	if st.Type == "get" {
		var b builder
		b.open(nsOwner, "query")
		configForm(&b, r.cfg, s.m.opts.MaxOccupants, s.m.opts.MaxHistory, s.m.opts.ArchiveMessages > 0)
		b.close()
		return nil, &b, nil
	}
	var req ownerRequest
	if err := st.DecodePayload(&req); err != nil {
		return nil, nil, errBadRequest
	}
	switch {
	case req.Destroy != nil:
		return s.destroy(ctx, r, req.Destroy.JID, trim(req.Destroy.Reason, maxReasonBytes)), nil, nil
	case req.Form == nil:
		return nil, nil, errBadRequest
	case req.Form.Type == "cancel":
		if r.locked {
			// Cancelling the initial configuration destroys the room
			// (XEP-0045 §10.1.3).
			return s.destroy(ctx, r, "", ""), nil, nil
		}
		return nil, nil, nil
	case req.Form.Type != "submit":
		return nil, nil, errBadRequest
	}
	cfg, err := applyForm(r.cfg, *req.Form, s.m.opts.MaxOccupants, s.m.opts.MaxHistory)
	if err != nil {
		return nil, nil, stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable, Text: map[string]string{"": err.Error()}}
	}
	wasPersistent, wasLocked, wasNonAnon := r.cfg.Persistent, r.locked, r.cfg.NonAnonymous
	r.cfg = cfg
	if r.cfg.Persistent || wasPersistent {
		if err := s.save(ctx, r); err != nil {
			return nil, nil, err
		}
	}
	r.locked = false
	if len(r.history) > r.cfg.HistoryLength {
		r.history = append(r.history[:0:0], r.history[len(r.history)-r.cfg.HistoryLength:]...)
		r.historyBytes = 0
		for _, h := range r.history {
			r.historyBytes += h.size
		}
	}
	if wasLocked {
		return nil, nil, nil
	}
	var outs []out
	// Occupants learn that the configuration changed (104), and whether
	// real JIDs became visible (172) or hidden (173).
	codes := []int{104}
	switch {
	case r.cfg.NonAnonymous && !wasNonAnon:
		codes = append(codes, 172)
	case !r.cfg.NonAnonymous && wasNonAnon:
		codes = append(codes, 173)
	}
	var b builder
	b.open(nsUser, "x")
	for _, c := range codes {
		b.leaf(nsUser, "status", "", "code", strconv.Itoa(c))
	}
	b.close()
	note := newStanza("message", "groupchat", r.jid, jid.JID{}, "", &b)
	for _, o := range r.occupants {
		for _, j := range o.sessions {
			c := note.Clone()
			c.To = j.t.JID()
			outs = append(outs, out{j.t, c})
		}
	}
	if r.cfg.MembersOnly {
		// Those no longer allowed leave (322).
		for _, o := range r.occupants {
			if r.affiliation(o.real) < affMember {
				x := itemExtra{codes: []int{322}}
				for len(o.sessions) > 0 {
					outs = append(outs, s.leave(ctx, r, o, o.sessions[0].t, nil, &x)...)
				}
			}
		}
	}
	return outs, nil, nil
}

// destroy ends a room (XEP-0045 §10.9): every occupant gets unavailable
// presence with <destroy/> (and the alternate venue, if any), and the
// room is forgotten, in the store too. The caller holds s.mu.
func (s *service) destroy(ctx context.Context, r *room, alt, reason string) []out {
	if _, err := jid.Parse(alt); err != nil {
		alt = ""
	}
	var outs []out
	for _, o := range r.occupants {
		for _, j := range o.sessions {
			var b builder
			b.open(nsUser, "x")
			b.leaf(nsUser, "item", "", "affiliation", "none", "role", "none")
			b.open(nsUser, "destroy", "jid", alt).leaf(nsUser, "reason", reason).close()
			b.leaf(nsUser, "status", "", "code", "110")
			b.close()
			outs = append(outs, out{j.t, newStanza("presence", "unavailable", r.occupantJID(o.nick), j.t.JID(), "", &b)})
			if ss := s.sessions[j.t]; ss != nil {
				delete(ss.rooms, r)
			}
		}
	}
	r.occupants = map[string]*occupant{}
	r.bySession = map[router.Target]*occupant{}
	s.remove(ctx, r)
	return outs
}
