package muc

import (
	"context"
	"encoding/xml"
	"fmt"
	"hash/maphash"
	"strconv"
	"sync"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"ottr.im/ottr/element"
	"ottr.im/ottr/router"
)

// service is one MUC domain: its rooms and the sessions in them, all
// under one mutex. Delivery happens after the mutex is released.
type service struct {
	m      *Module
	domain jid.JID

	mu       sync.Mutex
	rooms    map[string]*room // by localpart
	created  map[string]int   // creator's bare JID → rooms existing
	sessions map[router.Target]*session
	seed     maphash.Seed // of the ids in session.asked
}

// session is what the service keeps of a session in its rooms.
type session struct {
	rooms  map[*room]*occupant
	tokens float64
	last   time.Time
	// asked: the requests it sent occupants, waiting for their answer.
	asked []asked
}

func newService(m *Module, domain string) *service {
	return &service{
		m:        m,
		domain:   jid.MustParse(domain),
		rooms:    make(map[string]*room),
		created:  make(map[string]int),
		sessions: make(map[router.Target]*session),
		seed:     maphash.MakeSeed(),
	}
}

// load reads the persistent rooms.
func (s *service) load(ctx context.Context) error {
	stored, err := s.m.store.MUCRooms(ctx, s.domain.String())
	if err != nil {
		return fmt.Errorf("muc: loading the rooms of %s: %w", s.domain, err)
	}
	for _, sr := range stored {
		r, err := roomFromStorage(s.domain.String(), sr)
		if err != nil {
			s.m.logger.Error("skipping a stored room", "err", err)
			continue
		}
		s.rooms[r.jid.Localpart()] = r
		if r.cfg.Creator != "" {
			s.created[r.cfg.Creator]++
		}
	}
	return s.loadVCards(ctx)
}

// save stores r if it is persistent and forgets it otherwise. The caller
// holds s.mu.
func (s *service) save(ctx context.Context, r *room) error {
	if !r.cfg.Persistent {
		// The vCard goes with the stored room: keep it in memory.
		if err := s.unstoreVCard(ctx, r); err != nil {
			return err
		}
		return s.deleteStored(ctx, r)
	}
	sr, err := r.stored()
	if err != nil {
		return err
	}
	if err := s.m.store.PutMUCRoom(ctx, sr); err != nil {
		return err
	}
	return s.storeVCard(ctx, r)
}

// allow takes one stanza from t's rate bucket and reports whether there
// was one. The caller holds s.mu.
func (s *service) allow(t router.Target) bool { return s.allowCost(t, 1) }

// tokenBytes is how many bytes of a stanza the room sends every occupant
// one rate token pays for: at the default rate, a burst of about 80 KiB
// and 40 KiB a second to each occupant, so that one occupant cannot fill
// everyone's send queue (which ends their sessions).
const tokenBytes = 4 << 10

// allowSized is allow for a stanza of size bytes that the room
// broadcasts: it costs a token and one more per tokenBytes. A stanza
// allowed may run the bucket into debt, so that a large one passes when
// the bucket has a token and the next waits until the debt is paid. The
// caller holds s.mu.
func (s *service) allowSized(t router.Target, size int) bool {
	return s.allowCost(t, 1+float64(max(size, 0)/tokenBytes))
}

// allowCost takes cost tokens from t's bucket when it has one at least
// (running it into debt if need be) and reports whether it had. The
// caller holds s.mu.
func (s *service) allowCost(t router.Target, cost float64) bool {
	ss := s.session(t)
	now := s.m.opts.Now()
	burst := 2 * s.m.opts.Rate
	ss.tokens = min(burst, ss.tokens+now.Sub(ss.last).Seconds()*s.m.opts.Rate)
	ss.last = now
	if ss.tokens < 1 {
		return false
	}
	ss.tokens -= cost
	return true
}

// session returns what the service keeps of t, made on first use with a
// full bucket; it goes when t leaves every room of the service for good
// (leaveAll, when the session ends). The caller holds s.mu.
func (s *service) session(t router.Target) *session {
	ss := s.sessions[t]
	if ss == nil {
		ss = &session{rooms: make(map[*room]*occupant), tokens: 2 * s.m.opts.Rate, last: s.m.opts.Now()}
		s.sessions[t] = ss
	}
	return ss
}

// HandleStanza implements router.DomainHandler: messages and iqs to the
// service and its rooms (presence comes through the PresenceOut hook).
func (s *service) HandleStanza(ctx context.Context, from router.Target, st *element.Stanza) {
	switch st.Name {
	case "presence":
		s.presence(ctx, from, st)
	case "message":
		s.message(ctx, from, st)
	case "iq":
		s.iq(ctx, from, st)
	}
}

// bounce answers st with e, from its to address.
func (s *service) bounce(from router.Target, st *element.Stanza, e stanza.Error) {
	s.m.core.Bounce(from, st, e)
}

// unlockBounce releases s.mu and answers st with e.
func (s *service) unlockBounce(from router.Target, st *element.Stanza, e stanza.Error) {
	s.mu.Unlock()
	s.bounce(from, st, e)
}

// lookup returns the room st is addressed to, the sender's occupant in it
// and the occupant st is addressed to (each nil when there is none). The
// caller holds s.mu.
func (s *service) lookup(from router.Target, st *element.Stanza) (r *room, sender, to *occupant) {
	r = s.rooms[st.To.Localpart()]
	if r == nil {
		return nil, nil, nil
	}
	return r, r.bySession[from], r.occupants[nickKey(st.To.Resourcepart())]
}

// presence handles presence to the service or a room.
func (s *service) presence(ctx context.Context, from router.Target, st *element.Stanza) {
	to := st.To
	if to.Localpart() == "" {
		return // presence to the service itself: nothing to do
	}
	switch st.Type {
	case "", "unavailable", "error":
	default:
		return // subscriptions and probes: rooms keep no roster
	}
	if st.Type != "" {
		s.mu.Lock()
		var outs []out
		if r := s.rooms[to.Localpart()]; r != nil {
			if o := r.bySession[from]; o != nil {
				outs = s.leave(ctx, r, o, from, st, nil)
			}
		}
		s.mu.Unlock()
		s.m.deliver(outs)
		return
	}
	nick := to.Resourcepart()
	if nickKey(nick) == "" {
		// Empty, or not a nickname (RFC 8266).
		s.bounce(from, st, errJIDMalformed)
		return
	}
	s.mu.Lock()
	outs, e := s.available(ctx, from, st, to.Localpart(), nick)
	s.mu.Unlock()
	if e != nil {
		s.bounce(from, st, *e)
		return
	}
	s.m.deliver(outs)
	// The session may have ended while it joined: its unbound hook may
	// have run before it was an occupant.
	if s.m.core.Session(from.JID()) != from {
		s.leaveAll(ctx, from, true)
	}
}

// mucChildren removes the MUC elements a client may not set from a copy
// of st: the join element, muc#user (status codes are the service's) and
// occupant ids.
func mucChildren(st *element.Stanza) *element.Stanza {
	c := st.Clone()
	c.RemoveChildren(func(s xml.StartElement) bool {
		return (s.Name.Space == nsMUC || s.Name.Space == nsUser) && s.Name.Local == "x" ||
			s.Name.Space == nsOccupantID
	})
	return c
}

// available handles available presence to room/nick: a join, a nick
// change or a presence update. The caller holds s.mu.
func (s *service) available(ctx context.Context, t router.Target, st *element.Stanza, name, nick string) ([]out, *stanza.Error) {
	r := s.rooms[name]
	if r != nil {
		if o := r.bySession[t]; o != nil {
			if !s.allowSized(t, st.Size) {
				return nil, &errConstraint
			}
			if o.nick == nick && hasChild(st, nsMUC, "x") {
				return s.rejoin(r, o, t, st)
			}
			if o.nick == nick {
				return s.update(r, o, t, st), nil
			}
			return s.changeNick(r, o, t, st, nick)
		}
	}
	return s.join(ctx, t, st, name, nick)
}

// joinRequest is the <x xmlns='http://jabber.org/protocol/muc'/> of a
// join.
type joinRequest struct {
	Password string   `xml:"password"`
	History  *history `xml:"history"`
}

// join lets session t enter the room name as nick, creating the room
// when it does not exist. The caller holds s.mu.
func (s *service) join(ctx context.Context, t router.Target, st *element.Stanza, name, nick string) ([]out, *stanza.Error) {
	var req joinRequest
	hasX, err := decodeChild(st, nsMUC, "x", &req)
	if err != nil {
		return nil, &errBadRequest
	}
	real := t.JID().Bare()
	// Every attempt costs a token, failed ones too: a stranger's joins
	// and creations are paced like messages.
	if !s.allowSized(t, st.Size) {
		return nil, &errConstraint
	}
	ss := s.session(t)
	if len(ss.rooms) >= s.m.opts.RoomsPerSession {
		return nil, &errConstraint
	}
	r := s.rooms[name]
	created := false
	if r == nil {
		if len(s.rooms) >= s.m.opts.MaxRooms || s.created[real.String()] >= s.m.opts.MaxRoomsPerUser {
			return nil, &errConstraint
		}
		j, err := jid.New(name, s.domain.String(), "")
		if err != nil {
			return nil, &errJIDMalformed
		}
		r = newRoom(j, real.String(), s.m.opts.MaxHistory)
		r.affiliations[real.String()] = affOwner
		// A client that speaks MUC configures the room, or asks for an
		// instant one, before others may enter (XEP-0045 §10.1.1); one
		// that does not gets an instant room at once.
		r.locked = hasX
		s.rooms[name] = r
		s.created[real.String()]++
		created = true
	}
	aff := r.affiliation(real)
	same := r.occupants[nickKey(nick)]
	switch {
	case r.locked && aff != affOwner:
		return nil, &errItemNotFound
	case aff == affOutcast:
		return nil, &errForbidden
	case r.cfg.MembersOnly && aff < affMember:
		return nil, &errRegistration
	case r.cfg.Password != "" && aff < affAdmin && req.Password != r.cfg.Password:
		return nil, &errNotAuthorized
	case same != nil && !same.real.Equal(real):
		return nil, &errConflict
	case same != nil && len(same.sessions) >= maxSessionsPerOccupant:
		return nil, &errConstraint
	case same == nil && r.occupantOf(real) != nil:
		// One nick per user: a second session joins with the same one.
		return nil, &errNotAcceptable
	case same == nil && len(r.occupants) >= s.m.opts.MaxOccupants:
		return nil, &errFullRoom
	case same == nil && r.cfg.MaxUsers > 0 && len(r.occupants) >= r.cfg.MaxUsers && aff < affAdmin:
		return nil, &errFullRoom
	}
	o := same
	if o == nil {
		o = &occupant{nick: nick, real: real, role: r.defaultRole(aff)}
		r.occupants[nickKey(nick)] = o
	}
	j := &joined{t: t, presence: mucChildren(st)}
	o.sessions = append(o.sessions, j)
	r.bySession[t] = o
	ss.rooms[r] = o

	return s.welcome(r, o, t, req.History, same == nil, created), nil
}

// welcome is what a session entering r as o gets (XEP-0045 §7.2.3): the
// others' presence, then, when announce, o's presence to the others,
// then its own with 110 (100 in a non-anonymous room, 170 when it is
// archived, 201 when created), the history asked for and the subject.
// The caller holds s.mu.
func (s *service) welcome(r *room, o *occupant, t router.Target, h *history, announce, created bool) []out {
	var outs []out
	for _, other := range r.occupants {
		if other != o {
			outs = append(outs, out{t, s.presenceOf(r, other, o, t, "", itemExtra{})})
		}
	}
	if announce {
		for _, other := range r.occupants {
			if other == o {
				continue
			}
			for _, oj := range other.sessions {
				outs = append(outs, out{oj.t, s.presenceOf(r, o, other, oj.t, "", itemExtra{})})
			}
		}
	}
	codes := []int{110}
	if r.cfg.NonAnonymous {
		codes = append(codes, 100)
	}
	if s.m.archives(r) {
		codes = append(codes, 170)
	}
	if created {
		codes = append(codes, 201)
	}
	outs = append(outs, out{t, s.presenceOf(r, o, o, t, "", itemExtra{codes: codes})})
	// The room's avatar (XEP-0153), as Prosody sends it.
	outs = append(outs, joinAvatar(r, t)...)
	// History and subject even for the creator of a locked room: clients
	// (slixmpp's join_muc_wait) wait for the subject to know they joined.
	outs = append(outs, s.historyFor(r, t, h)...)
	return append(outs, out{t, s.subjectMessage(r, t.JID())})
}

// rejoin answers a join from a session that is in the room already (a
// client that lost track of it, as after a failed XEP-0410 self-ping)
// the way a join is answered: the others' presence, its own with 110,
// the history it asks for and the subject; the others see a presence
// update at most. The caller holds s.mu.
func (s *service) rejoin(r *room, o *occupant, t router.Target, st *element.Stanza) ([]out, *stanza.Error) {
	var req joinRequest
	if _, err := decodeChild(st, nsMUC, "x", &req); err != nil {
		return nil, &errBadRequest
	}
	o.setPresence(t, st)
	return s.welcome(r, o, t, req.History, true, false), nil
}

// update broadcasts a presence change of an occupant's session. The
// caller holds s.mu.
func (s *service) update(r *room, o *occupant, t router.Target, st *element.Stanza) []out {
	o.setPresence(t, st)
	return s.broadcastPresence(r, o, itemExtra{})
}

// setPresence records st as the presence of o's session t, and makes t
// the last of o's sessions: the one its occupant shows.
func (o *occupant) setPresence(t router.Target, st *element.Stanza) {
	for i, j := range o.sessions {
		if j.t == t {
			j.presence = mucChildren(st)
			o.sessions = append(append(o.sessions[:i:i], o.sessions[i+1:]...), j)
			return
		}
	}
}

// changeNick renames an occupant (XEP-0045 §7.6): unavailable with 303
// from the old nick, then available from the new one. The caller holds
// s.mu.
func (s *service) changeNick(r *room, o *occupant, t router.Target, st *element.Stanza, nick string) ([]out, *stanza.Error) {
	if other := r.occupants[nickKey(nick)]; other != nil && other != o {
		return nil, &errConflict
	}
	if len(o.sessions) > 1 {
		// A nick shared by several sessions changes for all or none;
		// ottr keeps it simple: leave and join again.
		return nil, &errNotAcceptable
	}
	var outs []out
	for _, viewer := range r.occupants {
		for _, vj := range viewer.sessions {
			codes := []int{303}
			if viewer == o {
				codes = append(codes, 110)
			}
			outs = append(outs, out{vj.t, s.presenceOf(r, o, viewer, vj.t, "unavailable", itemExtra{nick: nick, codes: codes})})
		}
	}
	delete(r.occupants, nickKey(o.nick))
	o.nick = nick
	r.occupants[nickKey(nick)] = o
	o.sessions[0].presence = mucChildren(st)
	for _, viewer := range r.occupants {
		for _, vj := range viewer.sessions {
			var codes []int
			if viewer == o {
				codes = []int{110}
			}
			outs = append(outs, out{vj.t, s.presenceOf(r, o, viewer, vj.t, "", itemExtra{codes: codes})})
		}
	}
	return outs, nil
}

// broadcastPresence sends o's current presence to every occupant. The
// caller holds s.mu.
func (s *service) broadcastPresence(r *room, o *occupant, x itemExtra) []out {
	var outs []out
	for _, viewer := range r.occupants {
		for _, vj := range viewer.sessions {
			xx := x
			if viewer == o {
				xx.codes = append([]int{110}, x.codes...)
			}
			outs = append(outs, out{vj.t, s.presenceOf(r, o, viewer, vj.t, "", xx)})
		}
	}
	return outs
}

// leave takes session t of occupant o out of r, telling everyone (st:
// the session's unavailable presence, nil when the server ends it). x
// says why, for kicks and bans. An empty room that is not persistent
// goes. The caller holds s.mu.
func (s *service) leave(ctx context.Context, r *room, o *occupant, t router.Target, st *element.Stanza, x *itemExtra) []out {
	var outs []out
	last := len(o.sessions) == 1
	var leaving *joined
	for i, j := range o.sessions {
		if j.t == t {
			leaving = j
			o.sessions = append(o.sessions[:i:i], o.sessions[i+1:]...)
			break
		}
	}
	if leaving == nil {
		return nil // not one of o's sessions: nothing to leave
	}
	delete(r.bySession, t)
	if ss := s.sessions[t]; ss != nil {
		delete(ss.rooms, r)
	}
	ex := itemExtra{}
	if x != nil {
		ex = *x
	}
	if st != nil && st.Type == "unavailable" {
		leaving.presence = mucChildren(st)
	} else {
		leaving.presence = nil
	}
	self := ex
	self.codes = append(append([]int(nil), ex.codes...), 110)
	// The leaving session gets its own unavailable presence, with 110.
	outs = append(outs, out{t, s.unavailableOf(r, o, o, t, leaving, self)})
	if !last {
		return outs
	}
	if x != nil {
		o.role = roleNone
	}
	delete(r.occupants, o.nick)
	for _, viewer := range r.occupants {
		for _, vj := range viewer.sessions {
			outs = append(outs, out{vj.t, s.unavailableOf(r, o, viewer, vj.t, leaving, ex)})
		}
	}
	if len(r.occupants) == 0 && (!r.cfg.Persistent || r.locked) {
		s.remove(ctx, r)
	}
	return outs
}

// remove forgets a room (and deletes it from the store when it was
// persistent). The caller holds s.mu.
func (s *service) remove(ctx context.Context, r *room) {
	delete(s.rooms, r.jid.Localpart())
	if r.cfg.Creator != "" {
		if s.created[r.cfg.Creator]--; s.created[r.cfg.Creator] <= 0 {
			delete(s.created, r.cfg.Creator)
		}
	}
	if r.cfg.Persistent {
		if err := s.deleteStored(ctx, r); err != nil {
			s.m.logger.Error("deleting a room failed", "room", r.jid.String(), "err", err)
		}
	}
}

// forget removes user's affiliations from every room of the service
// (the rooms it created no longer count against it), and stores the
// persistent rooms it was in. A ban stays: it is about the address, which
// a new account may take.
func (s *service) forget(ctx context.Context, user jid.JID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := user.String()
	delete(s.created, key)
	for _, r := range s.rooms {
		if r.cfg.Creator == key {
			r.cfg.Creator = ""
		}
		if a, ok := r.affiliations[key]; !ok || a == affOutcast {
			continue
		}
		delete(r.affiliations, key)
		if r.cfg.Persistent {
			if err := s.save(ctx, r); err != nil {
				s.m.logger.Error("saving a room failed", "room", r.jid.String(), "err", err)
			}
		}
	}
}

// leaveAll takes session t out of every room of the service. With
// ended (the session is gone) what the service keeps of it goes too;
// otherwise (it went unavailable) its rate bucket stays, so that going
// unavailable and joining again does not refill it.
func (s *service) leaveAll(ctx context.Context, t router.Target, ended bool) {
	s.mu.Lock()
	var outs []out
	if ss := s.sessions[t]; ss != nil {
		for r, o := range ss.rooms {
			outs = append(outs, s.leave(ctx, r, o, t, nil, nil)...)
		}
		if ended {
			delete(s.sessions, t)
		}
	}
	s.mu.Unlock()
	// The session itself is gone or going: what is addressed to it is
	// dropped by its queue.
	s.m.deliver(outs)
}

// itemExtra is what a presence's muc#user item says besides affiliation
// and role.
type itemExtra struct {
	codes  []int
	nick   string // the new nick (303)
	actor  string // the moderator's nick (kick, ban)
	reason string
}

// presenceOf returns o's presence as viewer's session vt sees it: type
// typ ("" or "unavailable"), with its muc#user item and occupant id.
func (s *service) presenceOf(r *room, o, viewer *occupant, vt router.Target, typ string, x itemExtra) *element.Stanza {
	var base *element.Stanza
	var shown jid.JID
	if n := len(o.sessions); n > 0 {
		j := o.sessions[n-1]
		shown = j.t.JID()
		if typ == "" && j.presence != nil {
			base = j.presence.Clone()
			base.ID = ""
		}
	}
	if base == nil {
		base = newStanza("presence", typ, jid.JID{}, jid.JID{}, "", nil)
	}
	base.Type = typ
	return s.finish(r, o, viewer, vt, base, shown, x)
}

// unavailableOf is presenceOf for the session j of o that leaves.
func (s *service) unavailableOf(r *room, o, viewer *occupant, vt router.Target, j *joined, x itemExtra) *element.Stanza {
	base := newStanza("presence", "unavailable", jid.JID{}, jid.JID{}, "", nil)
	if j.presence != nil {
		base = j.presence.Clone()
		base.ID, base.Type = "", "unavailable"
	}
	return s.finish(r, o, viewer, vt, base, j.t.JID(), x)
}

// finish addresses base and adds the muc#user element and occupant id.
func (s *service) finish(r *room, o, viewer *occupant, vt router.Target, base *element.Stanza, shown jid.JID, x itemExtra) *element.Stanza {
	base.From = r.occupantJID(o.nick)
	base.To = vt.JID()
	var b builder
	b.open(nsUser, "x")
	showJID := ""
	if viewer == o || r.seesJIDs(viewer) {
		showJID = shown.String()
	}
	rl := o.role
	if base.Type == "unavailable" {
		rl = roleNone
	}
	b.open(nsUser, "item", "affiliation", r.affiliation(o.real).String(), "role", rl.String(), "jid", showJID, "nick", x.nick)
	if x.actor != "" {
		b.leaf(nsUser, "actor", "", "nick", x.actor)
	}
	if x.reason != "" {
		b.leaf(nsUser, "reason", x.reason)
	}
	b.close()
	for _, c := range x.codes {
		b.leaf(nsUser, "status", "", "code", strconv.Itoa(c))
	}
	b.close()
	b.leaf(nsOccupantID, "occupant-id", "", "id", r.occupantID(o.real))
	if err := base.Append(b.reader()); err != nil {
		s.m.logger.Error("building presence failed", "err", err)
	}
	return base
}

// subjectMessage is the subject sent last on join (XEP-0045 §7.2.15):
// always, empty when there is none.
func (s *service) subjectMessage(r *room, to jid.JID) *element.Stanza {
	from := r.jid
	if r.cfg.SubjectNick != "" {
		from = r.occupantJID(r.cfg.SubjectNick)
	}
	var b builder
	b.leaf("", "subject", r.cfg.Subject)
	return newStanza("message", "groupchat", from, to, "", &b)
}
