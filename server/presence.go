package server

import (
	"strconv"
	"strings"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"ottr.im/ottr/c2s"
	"ottr.im/ottr/element"
)

// isSubscription reports whether a presence type manages subscriptions.
func isSubscription(typ string) bool {
	switch typ {
	case "subscribe", "subscribed", "unsubscribe", "unsubscribed":
		return true
	}
	return false
}

// presenceBroadcast handles presence without to: the session's
// availability (RFC 6121 §4.2, §4.4, §4.5). Available presence goes to the
// user's subscribers and own available resources; the first one (initial
// presence) also probes the user's contacts, redelivers pending
// subscription requests and delivers offline messages.
func (r *Router) presenceBroadcast(s *c2s.Session, st *element.Stanza) {
	switch st.Type {
	case "", "unavailable":
	default:
		r.bounce(s, st, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest})
		return
	}
	prio := 0
	if p := strings.TrimSpace(st.ChildText(element.NSClient, "priority")); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < -128 || n > 127 {
			r.bounce(s, st, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest})
			return
		}
		prio = n
	}
	initial := r.broadcastPresence(s, st)
	if st.Type == "unavailable" {
		return
	}
	if initial {
		r.probeContacts(s)
		r.redeliverSubscriptionRequests(s)
		if prio >= 0 {
			r.deliverOffline(s)
		}
	}
}

// broadcastPresence records the session's presence and sends it to the
// user's own available resources (the session included), to every
// contact subscribed to the user, and, when it is unavailable, to those
// the session sent directed presence to. It reports whether this was the
// session's initial presence.
func (r *Router) broadcastPresence(s *c2s.Session, st *element.Stanza) (initial bool) {
	user := s.JID().Bare()
	available := st.Type == ""
	prio := 0
	if p, err := strconv.Atoi(strings.TrimSpace(st.ChildText(element.NSClient, "priority"))); err == nil {
		prio = p
	}
	var directed []jid.JID
	r.mu.Lock()
	res := r.users[user.String()][s.JID().Resourcepart()]
	if res == nil || res.sess != s {
		r.mu.Unlock()
		return false
	}
	initial = available && !res.available
	res.available, res.priority = available, prio
	if available {
		res.presence = st.Clone()
	} else {
		res.presence = nil
		for _, j := range res.directed {
			directed = append(directed, j)
		}
		res.directed = nil
	}
	own := make([]*c2s.Session, 0, 4)
	for _, o := range r.users[user.String()] {
		if o.available || o.sess == s {
			own = append(own, o.sess)
		}
	}
	r.mu.Unlock()

	if !available {
		// Before anyone learns the user is gone, so that they can ask.
		r.recordLogout(s, st)
	}
	st.From = s.JID()
	for _, t := range own {
		out := st.Clone()
		out.To = t.JID()
		r.deliver(t, out)
	}
	sent := map[string]bool{}
	for _, item := range r.rosterItems(user) {
		if !item.From {
			continue
		}
		contact, err := jid.Parse(item.Contact)
		if err != nil || r.blocks.blocks(user, contact) {
			continue
		}
		sent[contact.String()] = true
		r.presenceTo(st, contact)
	}
	for _, j := range directed {
		if !sent[j.Bare().String()] {
			out := st.Clone()
			out.To = j
			r.routePresence(out)
		}
	}
	return initial
}

// presenceBlocked reports whether presence from one entity must not reach
// another: the addressee blocked the sender (XEP-0191 §3.5: nothing from
// a blocked entity is delivered), or the sender blocked the addressee.
func (r *Router) presenceBlocked(from, to jid.JID) bool {
	return r.blocks.blocks(to.Bare(), from) || r.blocks.blocks(from.Bare(), to)
}

// presenceTo sends a copy of st to every available resource of a local
// contact (remote contacts need s2s) that neither blocked st's sender nor
// is blocked by it.
func (r *Router) presenceTo(st *element.Stanza, contact jid.JID) {
	if !r.Serves(contact.Domainpart()) {
		return
	}
	for _, t := range r.available(contact, false) {
		if r.presenceBlocked(st.From, t.JID()) {
			continue
		}
		out := st.Clone()
		out.To = t.JID()
		r.deliver(t, out)
	}
}

// routePresence delivers presence addressed to a full or bare JID, unless
// a block between the two sides stops it.
func (r *Router) routePresence(st *element.Stanza) {
	if !r.Serves(st.To.Domainpart()) {
		return
	}
	if st.To.Resourcepart() != "" {
		if t := r.session(st.To); t != nil && !r.presenceBlocked(st.From, st.To) {
			r.deliver(t, st)
		}
		return
	}
	r.presenceTo(st, st.To)
}

// directedPresence sends available or unavailable presence to one entity
// and remembers it, so that the entity learns when the session goes
// offline (RFC 6121 §4.6). A session remembers at most
// IMLimits.DirectedMax entities: available presence to one more is
// refused with <resource-constraint/> and not sent, so that nobody is
// left seeing the session online after it left (security review #3).
// Unavailable presence to an entity frees its place.
func (r *Router) directedPresence(s *c2s.Session, st *element.Stanza) {
	if r.blockedOutbound(s, st) || r.blocks.blocks(st.To.Bare(), s.JID()) {
		return
	}
	full := false
	r.mu.Lock()
	if res := r.users[s.JID().Bare().String()][s.JID().Resourcepart()]; res != nil && res.sess == s {
		key := st.To.String()
		if st.Type == "" && res.available {
			_, known := res.directed[key]
			switch {
			case known:
			case len(res.directed) >= r.limits.DirectedMax:
				full = true
			default:
				if res.directed == nil {
					res.directed = make(map[string]jid.JID)
				}
				res.directed[key] = st.To
			}
		} else if st.Type == "unavailable" {
			delete(res.directed, key)
		}
	}
	r.mu.Unlock()
	if full {
		r.bounce(s, st, stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint})
		return
	}
	r.routePresence(st)
}

// DirectedPresences returns how many entities the session bound to full
// remembers having sent directed presence to (for tests and metrics).
func (r *Router) DirectedPresences(full jid.JID) int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if res := r.users[full.Bare().String()][full.Resourcepart()]; res != nil {
		return len(res.directed)
	}
	return 0
}

// probe answers a probe from s for a local account: the account's current
// presence if s's user is subscribed to it (RFC 6121 §4.3).
func (r *Router) probe(s *c2s.Session, contact jid.JID) {
	item, ok := r.rosterItem(s.JID().Bare(), contact)
	if !ok || !item.To {
		return
	}
	r.sendPresenceOf(contact, s)
}

// probeContacts sends s the presence of every contact its user is
// subscribed to.
func (r *Router) probeContacts(s *c2s.Session) {
	for _, item := range r.rosterItems(s.JID().Bare()) {
		if !item.To {
			continue
		}
		if contact, err := jid.Parse(item.Contact); err == nil && r.Serves(contact.Domainpart()) {
			r.sendPresenceOf(contact, s)
		}
	}
}

// sendPresenceOf delivers to s the last presence of each available
// resource of contact.
func (r *Router) sendPresenceOf(contact jid.JID, s *c2s.Session) {
	if r.blocks.blocks(s.JID().Bare(), contact) || r.blocks.blocks(contact, s.JID()) {
		return
	}
	r.mu.RLock()
	var out []*element.Stanza
	for _, res := range r.users[contact.String()] {
		if res.available && res.presence != nil {
			p := res.presence.Clone()
			p.From = res.sess.JID()
			p.To = s.JID()
			out = append(out, p)
		}
	}
	r.mu.RUnlock()
	for _, p := range out {
		r.deliver(s, p)
	}
}

// sendPresenceFromAll sends the current presence (or, when unavailable is
// set, unavailable presence) of every available resource of user to
// every available resource of contact.
func (r *Router) sendPresenceFromAll(user, contact jid.JID, unavailable bool) {
	if !r.Serves(contact.Domainpart()) {
		return
	}
	r.mu.RLock()
	var from []*element.Stanza
	for _, res := range r.users[user.String()] {
		if !res.available || res.presence == nil {
			continue
		}
		p := res.presence.Clone()
		if unavailable {
			p = &element.Stanza{Name: "presence", Type: "unavailable"}
		}
		p.From = res.sess.JID()
		from = append(from, p)
	}
	r.mu.RUnlock()
	for _, p := range from {
		r.presenceTo(p, contact)
	}
}
