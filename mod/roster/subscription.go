package roster

import (
	"context"
	"errors"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"ottr.im/ottr/element"
	"ottr.im/ottr/router"
	"ottr.im/ottr/storage"
)

// maxPendingInStanza bounds the copy of a subscription request kept for
// redelivery: a larger one (a status text of many KiB) is redelivered
// without its children, so that a few requests cannot fill the owner's
// roster_bytes (security review #6). A real request, with a status and a
// nickname, takes a few hundred bytes.
const maxPendingInStanza = 4 << 10

// outboundSubscription handles a subscription presence the user sent
// from the session from (RFC 6121 §3, the user's server's side), then
// hands it to the contact's side. Blocking refused it before (StanzaOut)
// if the user blocks the contact.
func (m *Module) outboundSubscription(ctx context.Context, from router.Target, st *element.Stanza) {
	user, contact := from.JID().Bare(), st.To.Bare()
	if contact.Equal(user) {
		return
	}
	// RFC 6121 §3.1.2: the server stamps the bare JID.
	st.From, st.To = user, contact
	if err := m.subscriptionFromUser(ctx, user, contact, st); err != nil {
		// Logged where it happened; nothing changed or was forwarded.
		cond := stanza.InternalServerError
		if errors.Is(err, storage.ErrQuota) {
			cond = stanza.ResourceConstraint // the user's roster is full
		}
		m.core.Bounce(from, st, stanza.Error{Type: stanza.Wait, Condition: cond})
	}
}

// subscriptionFromUser applies a subscription presence st (from user's
// bare JID to contact's) to the user's roster, then hands it to the
// contact's side. When the user's entry cannot be read or written it
// changes nothing, forwards nothing and returns the error.
func (m *Module) subscriptionFromUser(ctx context.Context, user, contact jid.JID, st *element.Stanza) error {
	var forward, sendPresence, sendUnavailable bool

	unlock := m.locks.lock(user)
	item, _, err := m.loadRosterItem(ctx, user, contact)
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
	err = m.updateItem(ctx, user, before, item)
	unlock()
	if err != nil {
		return err
	}

	if sendUnavailable {
		m.core.SendPresenceFromAll(ctx, user, contact, true)
	}
	if forward && m.core.Serves(contact.Domainpart()) {
		m.inboundSubscription(ctx, st)
	}
	if sendPresence {
		m.core.SendPresenceFromAll(ctx, user, contact, false)
	}
	return nil
}

// inboundSubscription handles a subscription presence arriving for a
// local account (RFC 6121 §3, the contact's server's side). st.From is
// the sender's bare JID, st.To the account.
func (m *Module) inboundSubscription(ctx context.Context, st *element.Stanza) {
	owner, other := st.To, st.From
	if m.refused(ctx, st) {
		return
	}
	if !m.core.AccountExists(ctx, owner) {
		if st.Type == "subscribe" {
			// RFC 6121 §3.1.3: no such user, so no subscription.
			m.inboundSubscription(ctx, &element.Stanza{Name: "presence", Type: "unsubscribed", From: owner, To: other})
		}
		return
	}
	var deliver, autoApprove, sendUnavailable bool

	unlock := m.locks.lock(owner)
	item, _, err := m.loadRosterItem(ctx, owner, other)
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
				m.logger.Error("encoding a subscription request failed", "err", err)
			}
			if len(b) > maxPendingInStanza {
				b = nil // redelivered as a bare request (see redeliverSubscriptionRequests)
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
	err = m.updateItem(ctx, owner, before, item)
	unlock()
	if err != nil {
		if errors.Is(err, storage.ErrQuota) && st.Type == "subscribe" {
			m.refuseSubscription(st) // security review #6
		}
		return
	}

	if deliver {
		m.deliverAll(st, owner)
	}
	if sendUnavailable {
		m.core.SendPresenceFromAll(ctx, owner, other, true)
	}
	if autoApprove {
		m.inboundSubscription(ctx, &element.Stanza{Name: "presence", Type: "subscribed", From: owner, To: other})
		m.core.SendPresenceFromAll(ctx, owner, other, false)
	}
}

// refuseSubscription answers a subscription request that the owner's
// roster has no room for (roster_items or roster_bytes) with an error
// presence, as Prosody answers a full roster: the request is neither
// stored nor shown to the owner, and the sender learns why instead of
// waiting for an answer that cannot come. st is the request, from the
// sender's bare JID to the owner's.
func (m *Module) refuseSubscription(st *element.Stanza) {
	sender := st.From.Bare()
	m.logger.Debug("roster full: subscription request refused", "jid", st.To.Bare().String(), "from", sender.String())
	if !m.core.Serves(sender.Domainpart()) {
		return
	}
	e := stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint}
	reply, err := element.New("presence", "error", st.To.Bare(), sender, st.ID, e.TokenReader())
	if err != nil {
		m.logger.Error("building a subscription error failed", "err", err)
		return
	}
	m.deliverAll(reply, sender)
}

// refused reports whether the local account st is addressed to refuses
// the subscription presence st (XEP-0191 §3.5, the StanzaIn hooks). Only
// the addressee's refusal counts for a subscription: a user who removes
// a contact they blocked still cancels the contact's subscription (RFC
// 6121 §2.5.2), and a request stays pending for its owner when its
// sender blocks them later. With no sending session, nobody is answered.
func (m *Module) refused(ctx context.Context, st *element.Stanza) bool {
	return !m.core.Admit(ctx, nil, st, st.To)
}

// deliverAll queues st as it is, addressed to the bare JID, to every
// available resource of bare: subscription presence, which the caller
// admitted already.
func (m *Module) deliverAll(st *element.Stanza, bare jid.JID) {
	for _, t := range m.core.Available(bare, false) {
		m.core.Deliver(t, st)
	}
}

// redeliverSubscriptionRequests sends t every subscription request its
// user has not answered yet (RFC 6121 §3.1.3), except those of entities
// the user blocked since (XEP-0191 §3.5).
func (m *Module) redeliverSubscriptionRequests(ctx context.Context, t router.Target) {
	user := t.JID().Bare()
	for _, item := range m.rosterItems(ctx, user) {
		if !item.PendingIn {
			continue
		}
		contact, cerr := jid.Parse(item.Contact)
		st, err := element.Unmarshal(item.PendingInStanza)
		if err != nil || len(item.PendingInStanza) == 0 {
			if cerr != nil {
				continue
			}
			st = &element.Stanza{Name: "presence", Type: "subscribe", From: contact}
		}
		st.To = user
		if cerr == nil && m.refused(ctx, &element.Stanza{Name: "presence", Type: "subscribe", From: contact, To: user}) {
			continue
		}
		m.core.Deliver(t, st)
	}
}

// unsubscribeDeleted tells a local contact, if online, that the deleted
// account user is gone, as a server-side unsubscribe would: unavailable
// presence from the account's resources that were available (to a
// contact that saw them), unsubscribed/unsubscribe presence, and a roster
// push of the contact's entry for the account.
func (m *Module) unsubscribeDeleted(ctx context.Context, user jid.JID, d *router.DeletedContact) {
	contact, c := d.Contact, d.Entry
	if !m.core.Serves(contact.Domainpart()) {
		return
	}
	if c.To {
		for _, f := range d.Available {
			m.core.DeliverAvailable(ctx, nil, &element.Stanza{Name: "presence", Type: "unavailable", From: f}, contact)
		}
	}
	if c.To || c.PendingOut {
		m.deliverAll(&element.Stanza{Name: "presence", Type: "unsubscribed", From: user, To: contact}, contact)
	}
	if c.From || c.PendingIn {
		m.deliverAll(&element.Stanza{Name: "presence", Type: "unsubscribe", From: user, To: contact}, contact)
	}
	if !c.InRoster {
		return
	}
	item, ok, err := m.loadRosterItem(ctx, contact, user)
	if err != nil {
		return
	}
	if ok && item.InRoster {
		m.rosterPush(contact, item, false, c.Version)
	} else {
		m.rosterPush(contact, RosterItem{Contact: user.String()}, true, c.Version)
	}
}
