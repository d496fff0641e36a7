package router

import (
	"context"

	"mellium.im/xmpp/jid"

	"ottr.im/ottr/element"
)

// The presence the server sends on a user's behalf, shared by the
// modules that change who may see whom (presence, roster, blocking).

// SendPresenceOf queues to t the last presence of each available
// resource of the local account contact that t admits (StanzaIn): the
// answer to a probe (RFC 6121 §4.3).
func (r *Router) SendPresenceOf(ctx context.Context, contact jid.JID, t Target) {
	for _, p := range r.PresenceOf(contact) {
		p.To = t.JID()
		if r.Admit(ctx, nil, p, t.JID()) {
			r.Deliver(t, p)
		}
	}
}

// SendPresenceFromAll sends the current presence (or, when unavailable
// is set, unavailable presence) of every available resource of user to
// every available resource of the local account contact that admits it.
func (r *Router) SendPresenceFromAll(ctx context.Context, user, contact jid.JID, unavailable bool) {
	if !r.Serves(contact.Domainpart()) {
		return
	}
	for _, p := range r.PresenceOf(user) {
		if unavailable {
			p = &element.Stanza{Name: "presence", Type: "unavailable", From: p.From}
		}
		r.DeliverAvailable(ctx, nil, p, contact)
	}
}
