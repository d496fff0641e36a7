package router

import (
	"context"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"ottr.im/ottr/element"
)

// Route handles one stanza from a bound target, its from already stamped
// with the target's full JID (RFC 6120 §8.1.2.1): StanzaOut, then the
// rules for its address (RFC 6120 §10, RFC 6121 §8), with the events of
// each step.
func (r *Router) Route(ctx context.Context, from Target, st *element.Stanza) {
	to := st.To
	hasTo := !to.Equal(jid.JID{})
	if hasTo && len(r.hooks[StanzaOut]) > 0 && r.Fire(StanzaOut, &EventData{Ctx: ctx, From: from, Stanza: st, To: to}) {
		return
	}
	switch st.Name {
	case "presence":
		r.Fire(PresenceOut, &EventData{Ctx: ctx, From: from, Stanza: st, To: to})
		return
	case "message":
		if len(r.hooks[MessageOut]) > 0 && r.Fire(MessageOut, &EventData{Ctx: ctx, From: from, Stanza: st, To: to}) {
			return
		}
	}
	switch {
	case !hasTo:
		// No to: the stanza is for the user's own account (RFC 6120
		// §10.3).
		r.toAccount(ctx, from, st, from.JID().Bare())
	case !r.Serves(to.Domainpart()):
		if h := r.domains[to.Domainpart()]; h != nil {
			h.HandleStanza(ctx, from, st)
			return
		}
		// No server-to-server yet.
		r.Bounce(from, st, stanza.Error{Type: stanza.Cancel, Condition: stanza.RemoteServerNotFound})
	case to.Localpart() == "":
		if to.Resourcepart() != "" {
			r.Bounce(from, st, stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable})
			return
		}
		if st.Name == "iq" {
			r.handleIQ(ctx, from, st, r.iq.server)
		}
		// Messages to the server are not handled.
	case to.Resourcepart() == "":
		r.toAccount(ctx, from, st, to)
	default:
		r.toFull(ctx, from, st)
	}
}

// toAccount applies the bare JID rules to a message or iq (RFC 6121
// §8.5.2).
func (r *Router) toAccount(ctx context.Context, from Target, st *element.Stanza, bare jid.JID) {
	self := bare.Equal(from.JID().Bare())
	switch st.Name {
	case "iq":
		// The server answers for the account.
		if self {
			r.handleIQ(ctx, from, st, r.iq.self)
			return
		}
		// Nothing the account holds (vCard, last activity, disco) is
		// answered to an entity it refuses (XEP-0191 §3.5).
		if st.IsIQRequest() && !r.Admit(ctx, from, st, bare) {
			return
		}
		r.handleIQ(ctx, from, st, r.iq.account)
	case "message":
		st.To = bare
		r.MessageToBare(ctx, from, st)
	}
}

// MessageToBare delivers a message to a local account (RFC 6121 §8.5.2):
// StanzaIn, MessageBare, then the available resources of highest
// priority, or MessageOffline when nobody can take it. from is the
// sender's session, nil when the server sends it.
func (r *Router) MessageToBare(ctx context.Context, from Target, st *element.Stanza) {
	if !r.Admit(ctx, from, st, st.To) {
		return
	}
	if len(r.hooks[MessageBare]) > 0 && r.Fire(MessageBare, &EventData{Ctx: ctx, From: from, Stanza: st, To: st.To}) {
		return
	}
	switch st.Type {
	case "groupchat":
		r.Bounce(from, st, stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable})
		return
	case "headline":
		r.deliverAll(ctx, from, st, st.To)
		return
	case "error":
		r.deliverBest(ctx, from, st, st.To)
		return
	}
	if r.deliverBest(ctx, from, st, st.To) {
		return
	}
	if !r.Fire(MessageOffline, &EventData{Ctx: ctx, From: from, Stanza: st, To: st.To}) {
		r.Bounce(from, st, stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable})
	}
}

// toFull applies the full JID rules to a message or iq (RFC 6121
// §8.5.3).
func (r *Router) toFull(ctx context.Context, from Target, st *element.Stanza) {
	if !r.Admit(ctx, from, st, st.To) {
		return
	}
	if st.Name == "message" && len(r.hooks[MessageFull]) > 0 &&
		r.Fire(MessageFull, &EventData{Ctx: ctx, From: from, Stanza: st, To: st.To}) {
		return
	}
	if target := r.Session(st.To); target != nil {
		r.deliverRouted(ctx, from, target, st)
		return
	}
	switch st.Name {
	case "message":
		switch st.Type {
		case "", "normal", "chat", "headline":
			st.To = st.To.Bare()
			r.MessageToBare(ctx, from, st)
		case "groupchat":
			r.Bounce(from, st, stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable})
		}
	case "iq":
		r.Bounce(from, st, stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable})
	}
}

// deliverBest sends st to the available resources of bare with the
// highest non-negative priority, and reports whether any got it.
func (r *Router) deliverBest(ctx context.Context, from Target, st *element.Stanza, bare jid.JID) bool {
	targets := r.Best(bare)
	for _, t := range targets {
		r.deliverRouted(ctx, from, t, st)
	}
	return len(targets) > 0
}

// deliverAll sends st to every available resource of bare with
// non-negative priority.
func (r *Router) deliverAll(ctx context.Context, from Target, st *element.Stanza, bare jid.JID) {
	for _, t := range r.Available(bare, true) {
		r.deliverRouted(ctx, from, t, st)
	}
}

// deliverRouted queues a routed stanza to t and fires MessageDelivered
// for a message.
func (r *Router) deliverRouted(ctx context.Context, from, t Target, st *element.Stanza) {
	r.Deliver(t, st)
	if st.Name == "message" && len(r.hooks[MessageDelivered]) > 0 {
		r.Fire(MessageDelivered, &EventData{Ctx: ctx, From: from, Stanza: st, To: t.JID(), Target: t})
	}
}
