// Package roster is the roster and presence subscriptions module (RFC
// 6121 §2 and §3): the jabber:iq:roster get and set of a user's own
// account, roster pushes to the resources that asked for the roster,
// and the subscription state machine on both sides of a subscription
// presence (the user's server and the contact's server, both local: there
// is no server-to-server yet).
//
// It registers the jabber:iq:roster iq handler (AtSelf, no disco
// feature) and hooks:
//   - PresenceOut (100): subscription presence with a to (not to a local
//     domain itself): the outbound subscription; it stops the chain.
//   - PresenceInitial (100): the pending subscription requests are
//     redelivered to the session that became available.
//   - SessionUnbound (0): the session's "requested the roster" flag goes.
//   - AccountDeleted (0): a contact of a deleted account is told, as a
//     server-side unsubscribe would (unavailable presence,
//     unsubscribe/unsubscribed, a roster push of its entry).
//
// Its Store holds rosters; every write goes through one function that
// checks the roster quota (Options) in the store's transaction.
package roster

import (
	"context"
	"encoding/xml"
	"fmt"
	"log/slog"
	"sync"

	"mellium.im/xmpp/jid"

	"ottr.im/ottr/internal/defaults"
	"ottr.im/ottr/router"
	"ottr.im/ottr/storage"
)

// nsRoster is the roster namespace (RFC 6121 §2).
const nsRoster = "jabber:iq:roster"

// Defaults of Options, those of config.DefaultLimits.
const (
	// DefaultMaxItems is the most roster entries per user when
	// Options.MaxItems is 0.
	DefaultMaxItems = 2000
	// DefaultMaxBytes is the most bytes of one user's roster entries when
	// Options.MaxBytes is 0.
	DefaultMaxBytes = 1 << 20
)

// RosterItem is one roster entry and its subscription state; see
// storage.RosterItem.
type RosterItem = storage.RosterItem

// Store holds rosters. Users are identified by host and nodeprepped
// username, contacts by their bare JID string. Every method that writes
// returns only after the change is durable.
type Store interface {
	// Roster returns the user's entries (all of them, InRoster or not,
	// ordered by contact) and the roster version (0 for a new roster).
	Roster(ctx context.Context, host, user string) ([]RosterItem, int64, error)
	// RosterItem returns one entry; ok is false when there is none.
	RosterItem(ctx context.Context, host, user, contact string) (item RosterItem, ok bool, err error)
	// PutRosterItem creates or replaces the entry for item.Contact and
	// returns the new roster version (previous + 1), unless that breaks q
	// (storage.Quota, each entry counting as its Size): then it changes
	// nothing and returns an error wrapping storage.ErrQuota.
	PutRosterItem(ctx context.Context, host, user string, item RosterItem, q storage.Quota) (ver int64, err error)
	// DeleteRosterItem removes the entry (no error if absent) and returns
	// the new roster version.
	DeleteRosterItem(ctx context.Context, host, user, contact string) (ver int64, err error)
}

// Options bound the rosters (config [limits]).
type Options struct {
	// MaxItems is the most entries of one user's roster, hidden ones
	// (pending requests, pre-approvals) included (roster_items); 0 is
	// DefaultMaxItems.
	MaxItems int
	// MaxBytes is the most bytes of one user's entries together
	// (roster_bytes, see storage.RosterItem.Size); 0 is DefaultMaxBytes.
	MaxBytes int
}

// Module is the roster module registered with one core.
type Module struct {
	core   *router.Router
	store  Store
	quota  storage.Quota
	logger *slog.Logger
	locks  userLocks

	mu sync.Mutex
	// requested holds the sessions that asked for the roster: the
	// interested resources that get pushes (RFC 6121 §2.1.6).
	requested map[router.Target]bool
}

// Register adds the roster module to core: its iq handler and hooks.
func Register(core *router.Router, store Store, opts Options) (*Module, error) {
	defaults.Positive(&opts.MaxItems, DefaultMaxItems)
	defaults.Positive(&opts.MaxBytes, DefaultMaxBytes)
	m := &Module{
		core:      core,
		store:     store,
		quota:     storage.Quota{Count: opts.MaxItems, Bytes: int64(opts.MaxBytes)},
		logger:    core.Logger().With("module", "roster"),
		requested: make(map[router.Target]bool),
	}
	if err := core.HandleIQ(xml.Name{Space: nsRoster, Local: "query"}, router.AtSelf, "", router.IQHandlerFunc(m.handleRoster)); err != nil {
		return nil, fmt.Errorf("roster: %w", err)
	}
	if err := core.Hooks("roster",
		router.HookSpec{Event: router.PresenceOut, Priority: 100, Fn: m.presenceOut},
		router.HookSpec{Event: router.PresenceInitial, Priority: 100, Fn: m.presenceInitial},
		router.HookSpec{Event: router.SessionUnbound, Priority: 0, Fn: m.sessionUnbound},
		router.HookSpec{Event: router.AccountDeleted, Priority: 0, Fn: m.accountDeleted},
	); err != nil {
		return nil, err
	}
	return m, nil
}

// presenceOut takes subscription presence with a to: the outbound side of
// a subscription (RFC 6121 §3). Presence to a local domain itself is left
// to the presence module, as routing did before.
func (m *Module) presenceOut(ev *router.EventData) bool {
	st := ev.Stanza
	if !st.IsSubscription() || st.To.Equal(jid.JID{}) ||
		(st.To.Localpart() == "" && m.core.Serves(st.To.Domainpart())) {
		return false
	}
	m.outboundSubscription(ev.Ctx, ev.From, st)
	return true
}

// presenceInitial redelivers the pending subscription requests to a
// session that sent its initial presence (RFC 6121 §3.1.3).
func (m *Module) presenceInitial(ev *router.EventData) bool {
	m.redeliverSubscriptionRequests(ev.Ctx, ev.Target)
	return false
}

// sessionUnbound forgets that the session asked for the roster.
func (m *Module) sessionUnbound(ev *router.EventData) bool {
	m.mu.Lock()
	delete(m.requested, ev.Target)
	m.mu.Unlock()
	return false
}

// accountDeleted tells one contact of a deleted account.
func (m *Module) accountDeleted(ev *router.EventData) bool {
	if ev.Deleted != nil {
		m.unsubscribeDeleted(ev.Ctx, ev.To, ev.Deleted)
	}
	return false
}

// setRequested marks t as interested in pushes while it is bound.
func (m *Module) setRequested(t router.Target) {
	m.mu.Lock()
	m.requested[t] = true
	m.mu.Unlock()
	// Unbound meanwhile: sessionUnbound may have run before the mark.
	if m.core.Session(t.JID()) != t {
		m.mu.Lock()
		delete(m.requested, t)
		m.mu.Unlock()
	}
}

// interested returns the resources of user that asked for the roster.
func (m *Module) interested(user jid.JID) []router.Target {
	all := m.core.Resources(user)
	out := all[:0]
	m.mu.Lock()
	for _, t := range all {
		if m.requested[t] {
			out = append(out, t)
		}
	}
	m.mu.Unlock()
	return out
}

// userLocks serializes read-modify-write of one user's roster.
type userLocks struct {
	shards [64]sync.Mutex
}

// lock locks bare's shard and returns its unlock.
func (l *userLocks) lock(bare jid.JID) func() {
	h := uint32(2166136261)
	for _, c := range []byte(bare.String()) {
		h = (h ^ uint32(c)) * 16777619
	}
	m := &l.shards[h%uint32(len(l.shards))]
	m.Lock()
	return m.Unlock
}
