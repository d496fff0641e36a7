// Package router is ottr's routing core. It knows addresses, not
// connections: the local hosts and the domains handed to handlers, the
// resources bound on this node (each a Target: a client session today; a
// room, a component, an s2s link or another node later), and the rules of
// RFC 6120 §10 and RFC 6121 §8 for where a stanza goes. Features are
// modules (see ottr.im/ottr/mod/...) that register iq handlers and hook
// named events on the stanza path; the core applies its default rule when
// no hook stopped the chain.
//
// Delivery only queues (Target.Deliver never blocks): a handler never
// writes to another session's stream.
package router

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"

	"ottr.im/ottr/element"
	"ottr.im/ottr/internal/defaults"
	"ottr.im/ottr/storage"
)

// Target is an address the core delivers to: a bound resource.
type Target interface {
	// JID is the target's full JID.
	JID() jid.JID
	// Deliver queues st without blocking and reports whether it was
	// queued.
	Deliver(st *element.Stanza) bool
	// Close ends the target with a stream error (the zero Error for a
	// plain close). It does not wait.
	Close(e stream.Error)
}

// DomainHandler serves every stanza addressed to one domain that is not a
// local host, such as conference.example.org or a component's domain.
type DomainHandler interface {
	// HandleStanza takes st from the session from, after StanzaOut. It
	// runs on the sender's read goroutine and must not block.
	HandleStanza(ctx context.Context, from Target, st *element.Stanza)
}

// DomainHandlerFunc adapts a function to a DomainHandler.
type DomainHandlerFunc func(ctx context.Context, from Target, st *element.Stanza)

// HandleStanza calls f.
func (f DomainHandlerFunc) HandleStanza(ctx context.Context, from Target, st *element.Stanza) {
	f(ctx, from, st)
}

// AccountStore is what the core asks of accounts: token users get their
// row at first bind, and routing asks whether an account exists.
type AccountStore interface {
	// EnsureAccount creates the account's row if it has none; while the
	// account's deletion is pending it fails with
	// storage.ErrDeletionPending.
	EnsureAccount(ctx context.Context, host, username string) (created bool, err error)
	// AccountExists reports whether the account has a row.
	AccountExists(ctx context.Context, host, username string) (bool, error)
}

// DeletedContact is what AccountDeleted tells a hook about one contact of
// a deleted account.
type DeletedContact struct {
	// Contact is the contact's bare JID.
	Contact jid.JID
	// Available are the deleted account's resources that were available.
	Available []jid.JID
	// Entry is the contact's roster entry for the account as the
	// deletion left it, and what it was before.
	Entry storage.DeletedContact
}

// DefaultMaxResources bounds the resources one account may bind at once
// when Options.MaxResources is 0.
const DefaultMaxResources = 64

// Options configure a Router.
type Options struct {
	// Hosts are the local domains.
	Hosts []string
	// Accounts is the account store.
	Accounts AccountStore
	// MaxResources bounds one account's bound resources; 0 is
	// DefaultMaxResources.
	MaxResources int
	// Logger receives the core's logs; nil is slog.Default().
	Logger *slog.Logger
}

// Router is the routing core of one node.
type Router struct {
	logger   *slog.Logger
	hosts    map[string]bool
	domains  map[string]DomainHandler
	accounts AccountStore
	maxRes   int
	hooks    hooks
	iq       iqMux
	// started is set at the first bind: registrations end there.
	started atomic.Bool

	known sync.Map // bare JID -> struct{}: accounts known to have a row

	mu    sync.RWMutex
	users map[string]map[string]*resource // bare JID -> resourcepart -> resource
}

// resource is one bound target and its presence state, guarded by
// Router.mu.
type resource struct {
	target    Target
	available bool
	priority  int
	// presence is the last available presence broadcast, for probes.
	presence *element.Stanza
}

// New returns a routing core with no modules.
func New(opts Options) *Router {
	r := &Router{
		logger:   opts.Logger,
		hosts:    make(map[string]bool),
		domains:  make(map[string]DomainHandler),
		accounts: opts.Accounts,
		maxRes:   opts.MaxResources,
		iq:       newIQMux(),
		users:    make(map[string]map[string]*resource),
	}
	if r.logger == nil {
		r.logger = slog.Default()
	}
	defaults.Positive(&r.maxRes, DefaultMaxResources)
	for _, h := range opts.Hosts {
		r.hosts[strings.ToLower(h)] = true
	}
	return r
}

// Logger returns the core's logger, for modules to derive theirs from.
func (r *Router) Logger() *slog.Logger { return r.logger }

// Started reports whether a session bound: from then on no handler,
// feature or hook may be registered, and what they make is final.
func (r *Router) Started() bool { return r.started.Load() }

// Serves reports whether domain is a local host.
func (r *Router) Serves(domain string) bool { return r.hosts[strings.ToLower(domain)] }

// AddDomain hands every stanza addressed to domain (and its JIDs) to h. A
// local host, a domain handled already or a registration after start is
// an error.
func (r *Router) AddDomain(domain string, h DomainHandler) error {
	domain = strings.ToLower(domain)
	switch {
	case h == nil:
		return errors.New("router: nil handler for domain " + domain)
	case r.hosts[domain]:
		return errors.New("router: " + domain + " is a local host")
	case r.domains[domain] != nil:
		return errors.New("router: two handlers for domain " + domain)
	case r.started.Load():
		return errors.New("router: domain " + domain + " added after start")
	}
	r.domains[domain] = h
	return nil
}

// Subdomains returns, sorted, the domains handed to handlers that are
// subdomains of host (conference.example.org for example.org): the
// services the host lists in its disco#items (XEP-0030), as Prosody
// lists its components.
func (r *Router) Subdomains(host string) []string {
	suffix := "." + strings.ToLower(host)
	var out []string
	for d := range r.domains {
		if strings.HasSuffix(d, suffix) {
			out = append(out, d)
		}
	}
	slices.Sort(out)
	return out
}

// Bind makes t reachable at its full JID. The account gets its row if it
// has none; SessionBind hooks may refuse; a target bound to the same full
// JID already is replaced and closed with a conflict stream error (RFC
// 6120 §7.7.2.2). The error is a stanza.Error for the client.
func (r *Router) Bind(ctx context.Context, t Target) error {
	r.started.Store(true)
	full := t.JID()
	bare, res := full.Bare().String(), full.Resourcepart()
	if err := r.ensureAccount(ctx, full, false); err != nil {
		return err
	}
	ev := &EventData{Ctx: ctx, Target: t, To: full}
	if r.Fire(SessionBind, ev) {
		err := ev.Err
		if err == nil {
			err = errRefused
		}
		var se stanza.Error
		if !errors.As(err, &se) {
			r.logger.Error("bind refused", "jid", full.String(), "err", err)
			se = stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError}
		}
		return se
	}
	r.mu.Lock()
	for {
		if _, ok := r.known.Load(bare); ok {
			break
		}
		// ForgetAccount ran since ensureAccount: the account was
		// deleted meanwhile. Checked under mu, where ForgetAccount
		// forgets: a session registered before it is among those the
		// deletion ends; after it, the store decides (it refuses while
		// the deletion is pending).
		r.mu.Unlock()
		if err := r.ensureAccount(ctx, full, true); err != nil {
			return err
		}
		r.mu.Lock()
	}
	rs := r.users[bare]
	if rs == nil {
		rs = make(map[string]*resource)
		r.users[bare] = rs
	}
	old := rs[res]
	if old == nil && len(rs) >= r.maxRes {
		r.mu.Unlock()
		return stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint}
	}
	rs[res] = &resource{target: t}
	r.mu.Unlock()
	if old != nil {
		r.logger.Info("resource conflict: replacing the older session", "jid", full.String())
		// The new session takes the full JID over: contacts learn its
		// presence when it sends one, so no unavailable presence is sent
		// for the old one; modules drop what they kept for it.
		r.Fire(SessionUnbound, &EventData{Ctx: ctx, Target: old.target, To: full})
		old.target.Close(stream.Error{Err: stream.Conflict.Err, Text: []struct {
			Lang  string
			Value string
		}{{Value: "replaced by a new session"}}})
	}
	r.Fire(SessionBound, &EventData{Ctx: ctx, Target: t, To: full})
	return nil
}

// lastPresence is the resource's available presence, nil when it is not
// available. The caller holds Router.mu or owns res.
func (res *resource) lastPresence() *element.Stanza {
	if !res.available {
		return nil
	}
	if res.presence != nil {
		return res.presence
	}
	return &element.Stanza{Name: "presence"}
}

// Unbind removes t and fires SessionUnbound (with t's last available
// presence: the presence module makes it unavailable to those who saw
// it, RFC 6121 §4.5.1). It is called once when a bound target ends; t is
// never delivered to afterwards. A target that was replaced is not
// unbound again.
func (r *Router) Unbind(ctx context.Context, t Target) {
	full := t.JID()
	bare, res := full.Bare().String(), full.Resourcepart()
	r.mu.Lock()
	rs := r.users[bare]
	cur := rs[res]
	if cur == nil || cur.target != t {
		r.mu.Unlock()
		return
	}
	delete(rs, res)
	if len(rs) == 0 {
		delete(r.users, bare)
	}
	last := cur.lastPresence()
	r.mu.Unlock()
	r.Fire(SessionUnbound, &EventData{Ctx: ctx, Target: t, To: full, Stanza: last})
}

// CloseAll ends every bound target with the given stream error.
func (r *Router) CloseAll(e stream.Error) {
	r.Each(func(t Target) { t.Close(e) })
}

// Each calls f for every bound target, outside the core's lock.
func (r *Router) Each(f func(Target)) {
	r.mu.RLock()
	all := make([]Target, 0, 64)
	for _, rs := range r.users {
		for _, res := range rs {
			all = append(all, res.target)
		}
	}
	r.mu.RUnlock()
	for _, t := range all {
		f(t)
	}
}

// Sessions returns the number of bound targets.
func (r *Router) Sessions() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	n := 0
	for _, rs := range r.users {
		n += len(rs)
	}
	return n
}

// Session returns the target bound to a full JID, or nil.
func (r *Router) Session(full jid.JID) Target {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if res := r.users[full.Bare().String()][full.Resourcepart()]; res != nil {
		return res.target
	}
	return nil
}

// Resources returns every target bound for bare, available or not.
func (r *Router) Resources(bare jid.JID) []Target {
	r.mu.RLock()
	defer r.mu.RUnlock()
	rs := r.users[bare.String()]
	out := make([]Target, 0, len(rs))
	for _, res := range rs {
		out = append(out, res.target)
	}
	return out
}

// Available returns the available targets of bare (with non-negative
// priority only, when nonNegative).
func (r *Router) Available(bare jid.JID, nonNegative bool) []Target {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []Target
	for _, res := range r.users[bare.String()] {
		if res.available && (!nonNegative || res.priority >= 0) {
			out = append(out, res.target)
		}
	}
	return out
}

// SetPresence records t's availability from a presence broadcast st
// (available when st has no type): its priority, and a copy of st for
// probes. It reports whether t is bound, and whether this made it
// available (initial presence).
func (r *Router) SetPresence(t Target, st *element.Stanza, priority int) (bound, initial bool) {
	available := st.Type == ""
	r.mu.Lock()
	defer r.mu.Unlock()
	res := r.users[t.JID().Bare().String()][t.JID().Resourcepart()]
	if res == nil || res.target != t {
		return false, false
	}
	initial = available && !res.available
	res.available, res.priority = available, priority
	res.presence = nil
	if available {
		res.presence = st.Clone()
	}
	return true, initial
}

// Best returns the available targets of bare with the highest
// non-negative priority: those a message to the bare JID goes to (RFC
// 6121 §8.5.2.1.1).
func (r *Router) Best(bare jid.JID) []Target {
	r.mu.RLock()
	defer r.mu.RUnlock()
	best, targets := -1, []Target(nil)
	for _, res := range r.users[bare.String()] {
		switch {
		case !res.available || res.priority < 0 || res.priority < best:
		case res.priority > best:
			best, targets = res.priority, append(targets[:0], res.target)
		default:
			targets = append(targets, res.target)
		}
	}
	return targets
}

// PresenceOf returns a copy of the last presence of each available
// resource of bare, from that resource's full JID.
func (r *Router) PresenceOf(bare jid.JID) []*element.Stanza {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []*element.Stanza
	for _, res := range r.users[bare.String()] {
		if res.available && res.presence != nil {
			p := res.presence.Clone()
			p.From = res.target.JID()
			out = append(out, p)
		}
	}
	return out
}

// Deliver queues st to t after the StanzaDeliver hooks (no other
// checks): for replies and pushes from the server, and for stanzas
// already admitted.
func (r *Router) Deliver(t Target, st *element.Stanza) {
	if len(r.hooks[StanzaDeliver]) > 0 && r.Fire(StanzaDeliver, &EventData{Target: t, Stanza: st, To: t.JID()}) {
		return
	}
	if !t.Deliver(st) {
		r.logger.Debug("delivery dropped", "to", t.JID().String())
	}
}

// Admit fires StanzaIn for st on its way to the local address to and
// reports whether it may go on; when refused, a hook answered the sender.
func (r *Router) Admit(ctx context.Context, from Target, st *element.Stanza, to jid.JID) bool {
	if len(r.hooks[StanzaIn]) == 0 {
		return true
	}
	return !r.Fire(StanzaIn, &EventData{Ctx: ctx, From: from, Stanza: st, To: to})
}

// DeliverAvailable queues a copy of st, addressed to each, to every
// available resource of the local bare JID that admits it (StanzaIn),
// and reports whether any took it; for presence and subscription
// stanzas the server sends on someone's behalf.
func (r *Router) DeliverAvailable(ctx context.Context, from Target, st *element.Stanza, bare jid.JID) bool {
	if !r.Serves(bare.Domainpart()) {
		return false
	}
	any := false
	for _, t := range r.Available(bare, false) {
		out := st.Clone()
		out.To = t.JID()
		if !r.Admit(ctx, from, out, t.JID()) {
			continue
		}
		r.Deliver(t, out)
		any = true
	}
	return any
}

// Bounce answers st with a stanza error from its addressee (the server
// when it had none), to from, unless st is an error or an iq response
// (RFC 6120 §8.3.1) or there is no session to answer.
func (r *Router) Bounce(from Target, st *element.Stanza, e stanza.Error) {
	if from == nil || st.Type == "error" || (st.Name == "iq" && st.Type == "result") {
		return
	}
	addr := st.To
	if addr.Equal(jid.JID{}) {
		addr = from.JID().Domain()
	}
	reply := st.ErrorReply(addr, e)
	reply.To = from.JID()
	r.Deliver(from, reply)
}

// AccountExists reports whether a local account has a row; a storage
// failure is logged and counts as no.
func (r *Router) AccountExists(ctx context.Context, bare jid.JID) bool {
	if _, ok := r.known.Load(bare.String()); ok {
		return true
	}
	ok, err := r.accounts.AccountExists(ctx, bare.Domainpart(), bare.Localpart())
	if err != nil {
		r.logger.Error("account lookup failed", "jid", bare.String(), "err", err)
		return false
	}
	if ok {
		r.known.Store(bare.String(), struct{}{})
	}
	return ok
}

// ForgetAccount drops what the core remembers of a deleted account and
// fires AccountDeleted for it (To: bare, Deleted nil).
func (r *Router) ForgetAccount(ctx context.Context, bare jid.JID) {
	// Under mu, where Bind registers a session of a known account (see
	// there).
	r.mu.Lock()
	r.known.Delete(bare.String())
	r.mu.Unlock()
	r.Fire(AccountDeleted, &EventData{Ctx: ctx, To: bare})
}

// ensureAccount gives a user their account row at first bind (token
// users have none until then). An account known to have a row is not
// asked about again unless fromStore: an account deleted by another
// process (`ottr user del`) is forgotten when the deletion loop acts on
// it, and Bind checks again under mu that it was not (a session bound
// before that is ended with the account's others). The store refuses to
// create an account whose deletion is pending. The error is the stanza
// error for the bind.
func (r *Router) ensureAccount(ctx context.Context, j jid.JID, fromStore bool) error {
	bare := j.Bare().String()
	if _, ok := r.known.Load(bare); ok && !fromStore {
		return nil
	}
	exists, err := r.accounts.AccountExists(ctx, j.Domainpart(), j.Localpart())
	if err == nil && !exists {
		_, err = r.accounts.EnsureAccount(ctx, j.Domainpart(), j.Localpart())
	}
	switch {
	case errors.Is(err, storage.ErrDeletionPending):
		// The account was deleted moments ago and its old sessions are
		// being ended: a new one must not get what they write meanwhile.
		r.logger.Info("bind refused: the account's deletion is pending", "jid", bare, "err", err)
		return stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint, Text: map[string]string{
			"": "this account was deleted moments ago and its sessions are being ended; try again in a few seconds",
		}}
	case err != nil:
		r.logger.Error("recording the account failed", "jid", bare, "err", err)
		return stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError}
	}
	r.known.Store(bare, struct{}{})
	return nil
}
