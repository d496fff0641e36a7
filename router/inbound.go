package router

import (
	"context"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"ottr.im/ottr/element"
)

// RouteInbound routes a stanza from a trusted entity that is not a local
// client, such as a component (XEP-0114), to its addressee. from is that
// entity as the sender of st: its JID is st.From (replies and bounces go
// there, through from.Deliver). The sender's transport has checked that
// st.From is an address it may use. No StanzaOut, MessageOut or
// PresenceOut is fired: those are for local users' stanzas.
//
//   - To a local account's bare JID: a message takes the bare JID rules
//     (MessageToBare: StanzaIn, MessageBare, the resources of highest
//     priority, MessageOffline); an iq request is admitted (StanzaIn) and
//     answered by the account's handlers (AtAccount); presence goes to
//     the account's available resources that admit it.
//   - To a local full JID: StanzaIn, MessageFull for a message, then the
//     bound resource, as Route does (RFC 6121 §8.5.3); an iq response
//     reaches the resource that asked.
//   - To a local host: an iq request is answered by the server's handlers
//     (AtServer); anything else is dropped.
//   - To a domain handed to a handler (another component): that handler.
//   - Elsewhere: remote-server-not-found.
//
// Subscription presence (RFC 6121 §3) and probes from such an entity are
// dropped: the roster module keeps subscriptions with local and remote
// users only, and a component that wants presence asks the user to send
// it directed presence.
func (r *Router) RouteInbound(ctx context.Context, from Target, st *element.Stanza) {
	to := st.To
	switch {
	case to.Equal(jid.JID{}):
		r.Bounce(from, st, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest})
	case !r.Serves(to.Domainpart()):
		if h := r.domains[to.Domainpart()]; h != nil {
			h.HandleStanza(ctx, from, st)
			return
		}
		r.Bounce(from, st, stanza.Error{Type: stanza.Cancel, Condition: stanza.RemoteServerNotFound})
	case to.Localpart() == "":
		if to.Resourcepart() == "" && st.Name == "iq" {
			r.handleIQ(ctx, from, st, r.iq.server)
			return
		}
		r.Bounce(from, st, stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable})
	case st.Name == "presence" && (st.IsSubscription() || st.Type == "probe"):
		r.logger.Debug("subscription presence from a component dropped", "from", st.From.String(), "to", to.String(), "type", st.Type)
	case to.Resourcepart() != "":
		r.toFull(ctx, from, st)
	case st.Name == "presence":
		r.DeliverAvailable(ctx, from, st, to)
	case st.Name == "message":
		r.MessageToBare(ctx, from, st)
	case st.Name == "iq":
		if st.IsIQRequest() && !r.Admit(ctx, from, st, to) {
			return
		}
		r.handleIQ(ctx, from, st, r.iq.account)
	}
}
