package server

import (
	"errors"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"ottr.im/ottr/c2s"
	"ottr.im/ottr/element"
	"ottr.im/ottr/storage"
)

// outboundSubscription handles a subscription presence the user sent
// (RFC 6121 §3, the user's server's side), then hands it to the
// contact's side.
func (r *Router) outboundSubscription(s *c2s.Session, st *element.Stanza) {
	user, contact := s.JID().Bare(), st.To.Bare()
	if contact.Equal(user) || r.blockedOutbound(s, st) {
		return
	}
	// RFC 6121 §3.1.2: the server stamps the bare JID.
	st.From, st.To = user, contact
	if err := r.subscriptionFromUser(user, contact, st); err != nil {
		// Logged where it happened; nothing changed or was forwarded.
		cond := stanza.InternalServerError
		if errors.Is(err, storage.ErrQuota) {
			cond = stanza.ResourceConstraint // the user's roster is full
		}
		r.bounce(s, st, stanza.Error{Type: stanza.Wait, Condition: cond})
	}
}

// subscriptionFromUser applies a subscription presence st (from user's
// bare JID to contact's) to the user's roster, then hands it to the
// contact's side. When the user's entry cannot be read or written it
// changes nothing, forwards nothing and returns the error.
func (r *Router) subscriptionFromUser(user, contact jid.JID, st *element.Stanza) error {
	var forward, sendPresence, sendUnavailable bool

	unlock := r.locks.lock(user)
	item, _, err := r.loadRosterItem(user, contact)
	if err != nil {
		unlock()
		return err
	}
	item.Contact = contact.String()
	before := item
	switch st.Type {
	case "subscribe":
		if !item.To {
			item.PendingOut = true
		}
		item.InRoster = true
		forward = true
	case "subscribed":
		switch {
		case item.PendingIn:
			item.From, item.PendingIn, item.PendingInStanza = true, false, nil
			item.InRoster = true
			forward, sendPresence = true, true
		case !item.From:
			// Pre-approval (RFC 6121 §3.4).
			item.Approved = true
			item.InRoster = true
		}
	case "unsubscribe":
		if item.To || item.PendingOut {
			item.To, item.PendingOut = false, false
			forward = true
		}
	case "unsubscribed":
		if item.From || item.PendingIn || item.Approved {
			forward = item.From || item.PendingIn
			sendUnavailable = item.From
			item.From, item.PendingIn, item.PendingInStanza, item.Approved = false, false, nil, false
		}
	}
	err = r.updateItem(user, before, item)
	unlock()
	if err != nil {
		return err
	}

	if sendUnavailable {
		r.sendPresenceFromAll(user, contact, true)
	}
	if forward && r.Serves(contact.Domainpart()) {
		r.inboundSubscription(st)
	}
	if sendPresence {
		r.sendPresenceFromAll(user, contact, false)
	}
	return nil
}

// inboundSubscription handles a subscription presence arriving for a
// local account (RFC 6121 §3, the contact's server's side). st.From is
// the sender's bare JID, st.To the account.
func (r *Router) inboundSubscription(st *element.Stanza) {
	owner, other := st.To, st.From
	if r.blocks.blocks(owner, other) {
		return
	}
	if !r.accountExists(owner) {
		if st.Type == "subscribe" {
			// RFC 6121 §3.1.3: no such user, so no subscription.
			r.inboundSubscription(&element.Stanza{Name: "presence", Type: "unsubscribed", From: owner, To: other})
		}
		return
	}
	var deliver, autoApprove, sendUnavailable bool

	unlock := r.locks.lock(owner)
	item, _, err := r.loadRosterItem(owner, other)
	if err != nil {
		// Logged; the stored entry stays as it was (security review #11).
		unlock()
		return
	}
	item.Contact = other.String()
	before := item
	switch st.Type {
	case "subscribe":
		switch {
		case item.From:
			autoApprove = true
		case item.Approved:
			item.From, item.Approved = true, false
			autoApprove = true
		default:
			b, err := st.Marshal()
			if err != nil {
				r.logger.Error("encoding a subscription request failed", "err", err)
			}
			if len(b) > maxPendingInStanza {
				b = nil // redelivered as a bare request (see roster.go)
			}
			item.PendingIn, item.PendingInStanza = true, b
			deliver = true
		}
	case "subscribed":
		if item.PendingOut {
			item.To, item.PendingOut = true, false
			deliver = true
		}
	case "unsubscribe":
		if item.From || item.PendingIn {
			sendUnavailable = item.From
			item.From, item.PendingIn, item.PendingInStanza = false, false, nil
			deliver = true
		}
	case "unsubscribed":
		if item.To || item.PendingOut {
			item.To, item.PendingOut = false, false
			deliver = true
		}
	}
	err = r.updateItem(owner, before, item)
	unlock()
	if err != nil {
		if errors.Is(err, storage.ErrQuota) && st.Type == "subscribe" {
			r.refuseSubscription(st) // security review #6
		}
		return
	}

	if deliver {
		r.deliverAll(st, owner, false)
	}
	if sendUnavailable {
		r.sendPresenceFromAll(owner, other, true)
	}
	if autoApprove {
		r.inboundSubscription(&element.Stanza{Name: "presence", Type: "subscribed", From: owner, To: other})
		r.sendPresenceFromAll(owner, other, false)
	}
}

// redeliverSubscriptionRequests sends s every subscription request its
// user has not answered yet (RFC 6121 §3.1.3), except those of entities
// the user blocked since (XEP-0191 §3.5).
func (r *Router) redeliverSubscriptionRequests(s *c2s.Session) {
	user := s.JID().Bare()
	for _, item := range r.rosterItems(user) {
		if !item.PendingIn {
			continue
		}
		if contact, err := jid.Parse(item.Contact); err == nil && r.blocks.blocks(user, contact) {
			continue
		}
		st, err := element.Unmarshal(item.PendingInStanza)
		if err != nil || len(item.PendingInStanza) == 0 {
			contact, perr := jid.Parse(item.Contact)
			if perr != nil {
				continue
			}
			st = &element.Stanza{Name: "presence", Type: "subscribe", From: contact}
		}
		st.To = s.JID().Bare()
		r.deliver(s, st)
	}
}
