package server

import (
	"encoding/xml"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"

	"ottr.im/ottr/c2s"
	"ottr.im/ottr/element"
)

// maxResources bounds the sessions one account may have at once.
const maxResources = 64

// Router holds the sessions of this node and applies RFC 6120/6121
// delivery rules to every stanza a session sends. It satisfies
// c2s.Router. It never writes to a session's stream itself: it queues
// with Session.Deliver, which does not block.
type Router struct {
	logger  *slog.Logger
	domains map[string]bool
	iq      *iqMux

	mu    sync.RWMutex
	users map[string]map[string]*resource // bare JID -> resourcepart -> resource
}

// resource is one bound session and its presence.
type resource struct {
	sess      *c2s.Session
	available bool
	priority  int
}

// NewRouter returns a router for the given local domains that answers
// iq requests addressed to the server with iq.
func NewRouter(domains []string, iq *iqMux, logger *slog.Logger) *Router {
	r := &Router{logger: logger, domains: make(map[string]bool), iq: iq, users: make(map[string]map[string]*resource)}
	for _, d := range domains {
		r.domains[strings.ToLower(d)] = true
	}
	return r
}

// Serves reports whether domain is local.
func (r *Router) Serves(domain string) bool { return r.domains[strings.ToLower(domain)] }

// Bind implements c2s.Router. A session already bound to the same full
// JID is replaced and closed with a conflict stream error (RFC 6120
// §7.7.2.2).
func (r *Router) Bind(s *c2s.Session) error {
	bare, res := s.JID().Bare().String(), s.JID().Resourcepart()
	r.mu.Lock()
	rs := r.users[bare]
	if rs == nil {
		rs = make(map[string]*resource)
		r.users[bare] = rs
	}
	old := rs[res]
	if old == nil && len(rs) >= maxResources {
		r.mu.Unlock()
		return stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint}
	}
	rs[res] = &resource{sess: s}
	r.mu.Unlock()
	if old != nil {
		r.logger.Info("resource conflict: replacing the older session", "jid", s.JID().String())
		old.sess.Close(stream.Error{Err: stream.Conflict.Err, Text: []struct {
			Lang  string
			Value string
		}{{Value: "replaced by a new session"}}})
	}
	return nil
}

// Unbind implements c2s.Router.
func (r *Router) Unbind(s *c2s.Session) {
	bare, res := s.JID().Bare().String(), s.JID().Resourcepart()
	r.mu.Lock()
	defer r.mu.Unlock()
	rs := r.users[bare]
	if cur := rs[res]; cur != nil && cur.sess == s {
		delete(rs, res)
		if len(rs) == 0 {
			delete(r.users, bare)
		}
	}
}

// CloseAll ends every session with the given stream error.
func (r *Router) CloseAll(e stream.Error) {
	r.mu.RLock()
	var all []*c2s.Session
	for _, rs := range r.users {
		for _, res := range rs {
			all = append(all, res.sess)
		}
	}
	r.mu.RUnlock()
	for _, s := range all {
		s.Close(e)
	}
}

// Sessions returns the number of bound sessions.
func (r *Router) Sessions() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	n := 0
	for _, rs := range r.users {
		n += len(rs)
	}
	return n
}

// Route implements c2s.Router: st comes from s with its from stamped.
func (r *Router) Route(s *c2s.Session, st *element.Stanza) {
	to := st.To
	switch {
	case to.Equal(jid.JID{}):
		// No to: the stanza is for the user's own account (RFC 6120
		// §10.3), presence without to is a broadcast.
		if st.Name == "presence" {
			r.broadcastPresence(s, st)
			return
		}
		r.toAccount(s, st, s.JID().Bare())
	case !r.Serves(to.Domainpart()):
		// No server-to-server yet.
		r.bounce(s, st, stanza.Error{Type: stanza.Cancel, Condition: stanza.RemoteServerNotFound})
	case to.Localpart() == "":
		if to.Resourcepart() != "" {
			r.bounce(s, st, stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable})
			return
		}
		r.toServer(s, st)
	case to.Resourcepart() == "":
		r.toAccount(s, st, to)
	default:
		r.toFull(s, st)
	}
}

// toServer handles stanzas addressed to the domain itself.
func (r *Router) toServer(s *c2s.Session, st *element.Stanza) {
	if st.Name == "iq" {
		r.handleIQ(s, st, r.iq.server)
	}
	// Messages and presence to the server are not handled.
}

// toAccount applies the bare JID rules (RFC 6121 §8.5.2).
func (r *Router) toAccount(s *c2s.Session, st *element.Stanza, bare jid.JID) {
	switch st.Name {
	case "iq":
		// The server answers for the account.
		if bare.Equal(s.JID().Bare()) {
			r.handleIQ(s, st, r.iq.self)
			return
		}
		r.handleIQ(s, st, r.iq.account)
	case "message":
		st.To = bare
		r.messageToBare(s, st)
	case "presence":
		st.To = bare
		switch st.Type {
		case "", "unavailable", "subscribe", "subscribed", "unsubscribe", "unsubscribed":
			r.deliverAll(st, bare, false)
		}
		// probe and error presence are not delivered to clients.
	}
}

func (r *Router) messageToBare(s *c2s.Session, st *element.Stanza) {
	switch st.Type {
	case "groupchat":
		r.bounce(s, st, stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable})
		return
	case "headline":
		r.deliverAll(st, st.To, true)
		return
	case "error":
		r.deliverBest(st, st.To)
		return
	}
	if !r.deliverBest(st, st.To) {
		// Offline storage comes with the IM core; until then the sender
		// learns that nobody got it.
		r.bounce(s, st, stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable})
	}
}

// toFull applies the full JID rules (RFC 6121 §8.5.3).
func (r *Router) toFull(s *c2s.Session, st *element.Stanza) {
	r.mu.RLock()
	var target *c2s.Session
	if res := r.users[st.To.Bare().String()][st.To.Resourcepart()]; res != nil {
		target = res.sess
	}
	r.mu.RUnlock()
	if target != nil {
		r.deliver(target, st)
		return
	}
	switch st.Name {
	case "message":
		switch st.Type {
		case "", "normal", "chat", "headline":
			st.To = st.To.Bare()
			r.messageToBare(s, st)
		case "groupchat":
			r.bounce(s, st, stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable})
		}
	case "iq":
		r.bounce(s, st, stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable})
	case "presence":
		switch st.Type {
		case "subscribe", "subscribed", "unsubscribe", "unsubscribed":
			st.To = st.To.Bare()
			r.deliverAll(st, st.To, false)
		}
	}
}

// deliverBest sends st to the available resources of bare with the
// highest non-negative priority, and reports whether any got it.
func (r *Router) deliverBest(st *element.Stanza, bare jid.JID) bool {
	r.mu.RLock()
	best, targets := -1, []*c2s.Session(nil)
	for _, res := range r.users[bare.String()] {
		switch {
		case !res.available || res.priority < 0 || res.priority < best:
		case res.priority > best:
			best, targets = res.priority, append(targets[:0], res.sess)
		default:
			targets = append(targets, res.sess)
		}
	}
	r.mu.RUnlock()
	for _, t := range targets {
		r.deliver(t, st)
	}
	return len(targets) > 0
}

// deliverAll sends st to every available resource of bare (with
// non-negative priority when nonNegative) and reports whether any got it.
func (r *Router) deliverAll(st *element.Stanza, bare jid.JID, nonNegative bool) bool {
	r.mu.RLock()
	var targets []*c2s.Session
	for _, res := range r.users[bare.String()] {
		if res.available && (!nonNegative || res.priority >= 0) {
			targets = append(targets, res.sess)
		}
	}
	r.mu.RUnlock()
	for _, t := range targets {
		r.deliver(t, st)
	}
	return len(targets) > 0
}

// broadcastPresence records the session's availability and priority and
// sends its presence to every available resource of the same account,
// itself included (RFC 6121 §4.2.2, §4.4.2).
func (r *Router) broadcastPresence(s *c2s.Session, st *element.Stanza) {
	switch st.Type {
	case "", "unavailable":
	default:
		r.bounce(s, st, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest})
		return
	}
	prio := 0
	if p := strings.TrimSpace(st.ChildText(element.NSClient, "priority")); p != "" {
		if _, err := fmt.Sscanf(p, "%d", &prio); err != nil || prio < -128 || prio > 127 {
			r.bounce(s, st, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest})
			return
		}
	}
	bare := s.JID().Bare()
	r.mu.Lock()
	if res := r.users[bare.String()][s.JID().Resourcepart()]; res != nil && res.sess == s {
		res.available = st.Type == ""
		res.priority = prio
	}
	var targets []*c2s.Session
	for _, res := range r.users[bare.String()] {
		if res.available || res.sess == s {
			targets = append(targets, res.sess)
		}
	}
	r.mu.Unlock()
	for _, t := range targets {
		out := st.Clone()
		out.To = t.JID()
		r.deliver(t, out)
	}
}

func (r *Router) deliver(to *c2s.Session, st *element.Stanza) {
	if !to.Deliver(st) {
		r.logger.Debug("delivery dropped", "to", to.JID().String())
	}
}

// bounce answers st with a stanza error from its addressee, unless st is
// an error or an iq response (RFC 6120 §8.3.1).
func (r *Router) bounce(s *c2s.Session, st *element.Stanza, e stanza.Error) {
	if st.Type == "error" || (st.Name == "iq" && st.Type == "result") {
		return
	}
	from := st.To
	if from.Equal(jid.JID{}) {
		from = s.JID().Domain()
	}
	reply := st.ErrorReply(from, e)
	reply.To = s.JID()
	r.deliver(s, reply)
}

// handleIQ answers a request addressed to the server or to an account
// with the handlers of table; responses addressed there are dropped.
func (r *Router) handleIQ(s *c2s.Session, st *element.Stanza, table map[xml.Name]IQHandler) {
	if !st.IsIQRequest() {
		return
	}
	payload, ok := st.Payload()
	if !ok {
		r.bounce(s, st, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest})
		return
	}
	h := table[payload.Name]
	if h == nil {
		r.bounce(s, st, stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable})
		return
	}
	from := st.To
	if from.Equal(jid.JID{}) {
		from = s.JID().Bare()
	}
	result, err := h.HandleIQ(IQRequest{From: s.JID(), To: from, Stanza: st, Payload: payload})
	if err != nil {
		se, ok := err.(stanza.Error)
		if !ok {
			r.logger.Error("iq handler failed", "ns", payload.Name.Space, "err", err)
			se = stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError}
		}
		r.bounce(s, st, se)
		return
	}
	reply := st.Reply(from, result)
	reply.To = s.JID()
	r.deliver(s, reply)
}
