package server

import (
	"context"
	"encoding/xml"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"

	"ottr.im/ottr/c2s"
	"ottr.im/ottr/element"
	"ottr.im/ottr/storage"
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
	store   Store
	limits  IMLimits
	now     func() time.Time
	locks   userLocks
	blocks  *blockCache

	known sync.Map // bare JID -> struct{}: accounts known to have a row

	// background counts storage work started off the request path, which
	// Wait lets finish before the store closes.
	background sync.WaitGroup

	// offlineTurns holds, per bare JID, the offline delivery under way
	// (see offlineTurn).
	offlineMu    sync.Mutex
	offlineTurns map[string]chan struct{}

	mu    sync.RWMutex
	users map[string]map[string]*resource // bare JID -> resourcepart -> resource
}

// resource is one bound session and its presence state. Its fields are
// guarded by Router.mu.
type resource struct {
	sess      *c2s.Session
	available bool
	priority  int
	// presence is the last available presence broadcast, for probes.
	presence *element.Stanza
	// rosterRequested and blocklistRequested mark interested resources
	// (RFC 6121 §2.1.6, XEP-0191 §3.2): they get pushes.
	rosterRequested    bool
	blocklistRequested bool
	// directed holds the JIDs this resource sent directed presence to,
	// which get its unavailable presence when it goes offline; at most
	// IMLimits.DirectedMax of them.
	directed map[string]jid.JID
}

// IMLimits bound what users may store (config [limits]).
type IMLimits struct {
	// OfflineMax is the per-user offline message quota; 0 turns offline
	// storage off.
	OfflineMax int
	// VCardMax is the largest vCard in bytes.
	VCardMax int
	// PrivateMax is the largest private XML document in bytes.
	PrivateMax int
	// RosterMax is the most roster entries per user.
	RosterMax int
	// Per-user quotas of the stores (security review #6); 0 is the
	// config default: OfflineBytes for offline messages, RosterBytes for
	// roster entries, PrivateDocs and PrivateTotal for private XML,
	// BlockMax for the block list.
	OfflineBytes, RosterBytes, PrivateDocs, PrivateTotal, BlockMax int
	// SendQueue and SendQueueBytes are the sessions' send queue bounds:
	// offline delivery keeps at most half of each in flight. 0 is the
	// config default.
	SendQueue, SendQueueBytes int
	// DirectedMax is the most entities one session may have sent
	// directed presence to and not yet made unavailable; directed
	// presence to one more is refused. 0 is DefaultDirectedMax.
	DirectedMax int
}

// DefaultDirectedMax is the directed presence cap of a router whose
// IMLimits leave it 0 (config's default too).
const DefaultDirectedMax = 200

// NewRouter returns a router for the given local domains that keeps
// user data in store and answers iq requests with iq.
func NewRouter(domains []string, iq *iqMux, store Store, limits IMLimits, logger *slog.Logger) *Router {
	if limits.DirectedMax <= 0 {
		limits.DirectedMax = DefaultDirectedMax
	}
	r := &Router{
		logger:  logger,
		domains: make(map[string]bool),
		iq:      iq,
		store:   store,
		limits:  limits,
		now:     time.Now,
		users:   make(map[string]map[string]*resource),
	}
	r.blocks = newBlockCache(store)
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
	if err := r.ensureAccount(s.JID()); errors.Is(err, storage.ErrDeletionPending) {
		// The account was deleted moments ago and its old sessions are
		// being ended: a new one must not get what they write meanwhile.
		r.logger.Info("bind refused: the account's deletion is pending", "jid", bare, "err", err)
		return stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint, Text: map[string]string{
			"": "this account was deleted moments ago and its sessions are being ended; try again in a few seconds",
		}}
	} else if err != nil {
		r.logger.Error("recording the account failed", "jid", bare, "err", err)
		return stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError}
	}
	if err := r.blocks.load(s.JID().Bare()); err != nil {
		r.logger.Error("loading the block list failed", "jid", bare, "err", err)
		return stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError}
	}
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

// Unbind implements c2s.Router. A session that was available is taken
// offline as if it had sent unavailable presence (RFC 6121 §4.5.1).
func (r *Router) Unbind(s *c2s.Session) {
	bare, res := s.JID().Bare().String(), s.JID().Resourcepart()
	r.mu.Lock()
	rs := r.users[bare]
	cur := rs[res]
	if cur == nil || cur.sess != s {
		r.mu.Unlock()
		return
	}
	wasAvailable := cur.available
	r.mu.Unlock()
	if wasAvailable {
		unavailable := &element.Stanza{Name: "presence", Type: "unavailable", From: s.JID()}
		r.broadcastPresence(s, unavailable)
	}
	r.mu.Lock()
	if cur := rs[res]; cur != nil && cur.sess == s {
		delete(rs, res)
		if len(rs) == 0 {
			delete(r.users, bare)
			// Under r.mu, so that no new session of the user is being
			// added meanwhile.
			r.blocks.forget(s.JID().Bare())
		}
	}
	r.mu.Unlock()
}

// CloseAll ends every session with the given stream error.
func (r *Router) CloseAll(e stream.Error) {
	r.Each(func(s *c2s.Session) { s.Close(e) })
}

// SetOfflineMax changes the per-user offline message quota.
func (r *Router) SetOfflineMax(n int) { r.limits.OfflineMax = n }

// Wait blocks until background storage work has finished.
func (r *Router) Wait() { r.background.Wait() }

// Each calls f for every bound session, outside the router's lock.
func (r *Router) Each(f func(*c2s.Session)) {
	r.mu.RLock()
	all := make([]*c2s.Session, 0, 64)
	for _, rs := range r.users {
		for _, res := range rs {
			all = append(all, res.sess)
		}
	}
	r.mu.RUnlock()
	for _, s := range all {
		f(s)
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
	if st.Name == "iq" && st.IsIQRequest() && !to.Equal(jid.JID{}) && r.blocks.blocks(s.JID().Bare(), to) {
		r.bounceBlocked(s, st)
		return
	}
	switch {
	case to.Equal(jid.JID{}):
		// No to: the stanza is for the user's own account (RFC 6120
		// §10.3); presence without to is a broadcast.
		if st.Name == "presence" {
			r.presenceBroadcast(s, st)
			return
		}
		r.toAccount(s, st, s.JID().Bare())
	case !r.Serves(to.Domainpart()):
		// No server-to-server yet.
		if st.Name == "presence" {
			if isSubscription(st.Type) {
				r.outboundSubscription(s, st)
			}
			return
		}
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
	self := bare.Equal(s.JID().Bare())
	switch st.Name {
	case "iq":
		// The server answers for the account.
		if self {
			r.handleIQ(s, st, r.iq.self)
			return
		}
		if st.IsIQRequest() && r.blocks.blocks(bare, s.JID()) {
			// Nothing the account holds (vCard, last activity, disco)
			// is answered to an entity it blocked (XEP-0191 §3.5).
			r.bounce(s, st, stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable})
			return
		}
		r.handleIQ(s, st, r.iq.account)
	case "message":
		st.To = bare
		if r.blockedOutbound(s, st) {
			return
		}
		r.messageToBare(s, st)
	case "presence":
		st.To = bare
		switch {
		case isSubscription(st.Type):
			r.outboundSubscription(s, st)
		case st.Type == "" || st.Type == "unavailable":
			r.directedPresence(s, st)
		case st.Type == "probe":
			r.probe(s, bare)
		}
		// error presence is not delivered to clients.
	}
}

// messageToBare delivers a message to an account, storing it offline when
// nobody can take it (RFC 6121 §8.5.2, XEP-0160).
func (r *Router) messageToBare(s *c2s.Session, st *element.Stanza) {
	if r.blocks.blocks(st.To, st.From) {
		r.bounce(s, st, stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable})
		return
	}
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
	if r.deliverBest(st, st.To) {
		return
	}
	r.storeOffline(s, st)
}

// toFull applies the full JID rules (RFC 6121 §8.5.3).
func (r *Router) toFull(s *c2s.Session, st *element.Stanza) {
	if st.Name == "presence" && isSubscription(st.Type) {
		st.To = st.To.Bare()
		r.outboundSubscription(s, st)
		return
	}
	if st.Name == "presence" && (st.Type == "" || st.Type == "unavailable") {
		r.directedPresence(s, st)
		return
	}
	if r.blockedOutbound(s, st) {
		return
	}
	if r.blocks.blocks(st.To.Bare(), st.From) {
		if st.Name != "presence" {
			r.bounce(s, st, stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable})
		}
		return
	}
	if target := r.session(st.To); target != nil {
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
	}
	// Other presence to a resource that is not there is dropped.
}

// session returns the session bound to a full JID, or nil.
func (r *Router) session(full jid.JID) *c2s.Session {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if res := r.users[full.Bare().String()][full.Resourcepart()]; res != nil {
		return res.sess
	}
	return nil
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
	targets := r.available(bare, nonNegative)
	for _, t := range targets {
		r.deliver(t, st)
	}
	return len(targets) > 0
}

// available returns the available sessions of bare.
func (r *Router) available(bare jid.JID, nonNegative bool) []*c2s.Session {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []*c2s.Session
	for _, res := range r.users[bare.String()] {
		if res.available && (!nonNegative || res.priority >= 0) {
			out = append(out, res.sess)
		}
	}
	return out
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
	ctx, cancel := r.ctx()
	defer cancel()
	result, err := h.HandleIQ(ctx, IQRequest{From: s.JID(), To: from, Stanza: st, Payload: payload, Session: s})
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

// ctx bounds one storage operation.
func (r *Router) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

// ensureAccount gives a user their account row at first login (token
// users have none until then). It asks the store, not the known cache:
// the account may have been deleted by another process a moment ago, and
// while that deletion is pending the store refuses to create it again
// (storage.ErrDeletionPending).
func (r *Router) ensureAccount(j jid.JID) error {
	bare := j.Bare().String()
	ctx, cancel := r.ctx()
	defer cancel()
	exists, err := r.store.AccountExists(ctx, j.Domainpart(), j.Localpart())
	if err != nil {
		return err
	}
	if !exists {
		if _, err := r.store.EnsureAccount(ctx, j.Domainpart(), j.Localpart()); err != nil {
			return err
		}
	}
	r.known.Store(bare, struct{}{})
	return nil
}

// accountExists reports whether a local account has a row.
func (r *Router) accountExists(bare jid.JID) bool {
	if _, ok := r.known.Load(bare.String()); ok {
		return true
	}
	ctx, cancel := r.ctx()
	defer cancel()
	ok, err := r.store.AccountExists(ctx, bare.Domainpart(), bare.Localpart())
	if err != nil {
		r.logger.Error("account lookup failed", "jid", bare.String(), "err", err)
		return false
	}
	if ok {
		r.known.Store(bare.String(), struct{}{})
	}
	return ok
}

// userLocks serializes read-modify-write of one user's roster.
type userLocks struct {
	shards [64]sync.Mutex
}

func (l *userLocks) lock(bare jid.JID) func() {
	h := uint32(2166136261)
	for _, c := range []byte(bare.String()) {
		h = (h ^ uint32(c)) * 16777619
	}
	m := &l.shards[h%uint32(len(l.shards))]
	m.Lock()
	return m.Unlock
}
