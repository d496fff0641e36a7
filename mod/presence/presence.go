// Package presence is the presence module (RFC 6121 §4): a session's
// availability broadcast to the user's own resources and subscribers,
// directed presence (§4.6) with a cap per session, probes (§4.3), and
// presence to full JIDs. Subscription presence is the roster module's.
//
// Hooks:
//   - PresenceOut (0): every presence from a local session that no hook
//     above took; it always stops the chain.
//   - SessionUnbound (100): a session that was available goes unavailable
//     to its user's resources, its subscribers and the entities it sent
//     directed presence to; its directed presence records go.
//   - BlockListChanged (0): the directed presence records of entities the
//     user blocks now go, and those entities join the audience of the
//     user's unavailable presence (XEP-0191 §3.3).
//
// It fires PresenceBroadcast before it sends a broadcast (the session's
// availability is recorded in the core by then) and PresenceInitial after
// an initial presence was broadcast and the contacts' presence probed.
//
// Its Store reads rosters: who is subscribed to whom.
package presence

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"ottr.im/ottr/element"
	"ottr.im/ottr/internal/defaults"
	"ottr.im/ottr/router"
	"ottr.im/ottr/storage"
)

// DefaultDirectedMax is the directed presence cap when
// Options.DirectedMax is 0 (config's default too).
const DefaultDirectedMax = 200

// Store reads rosters. Users are identified by host and nodeprepped
// username, contacts by their bare JID string.
type Store interface {
	// Roster returns the user's entries (all of them, InRoster or not,
	// ordered by contact) and the roster version (0 for a new roster).
	Roster(ctx context.Context, host, user string) ([]storage.RosterItem, int64, error)
	// RosterItem returns one entry; ok is false when there is none.
	RosterItem(ctx context.Context, host, user, contact string) (item storage.RosterItem, ok bool, err error)
}

// Options bound presence (config [limits]).
type Options struct {
	// DirectedMax is the most entities one session may have sent
	// directed presence to and not yet made unavailable
	// (directed_presences); directed presence to one more is refused. 0
	// is DefaultDirectedMax.
	DirectedMax int
}

// Module is the presence module registered with one core.
type Module struct {
	core        *router.Router
	store       Store
	directedMax int
	logger      *slog.Logger

	mu sync.Mutex
	// directed holds, per available session, the entities it sent
	// directed presence to (by full or bare JID string), which get its
	// unavailable presence when it goes offline.
	directed map[router.Target]map[string]jid.JID
}

// Register adds the presence module to core: its hooks.
func Register(core *router.Router, store Store, opts Options) (*Module, error) {
	defaults.Positive(&opts.DirectedMax, DefaultDirectedMax)
	m := &Module{
		core:        core,
		store:       store,
		directedMax: opts.DirectedMax,
		logger:      core.Logger().With("module", "presence"),
		directed:    make(map[router.Target]map[string]jid.JID),
	}
	if err := core.Hooks("presence",
		router.HookSpec{Event: router.PresenceOut, Priority: 0, Fn: m.presenceOut},
		router.HookSpec{Event: router.SessionUnbound, Priority: 100, Fn: m.sessionUnbound},
		router.HookSpec{Event: router.BlockListChanged, Priority: 0, Fn: m.blockListChanged},
	); err != nil {
		return nil, err
	}
	return m, nil
}

// presenceOut handles presence from a local session by its address (RFC
// 6121 §4, §8.5).
func (m *Module) presenceOut(ev *router.EventData) bool {
	ctx, from, st := ev.Ctx, ev.From, ev.Stanza
	to := st.To
	switch {
	case to.Equal(jid.JID{}):
		m.broadcast(ctx, from, st)
	case !m.core.Serves(to.Domainpart()):
		// No server-to-server yet: dropped.
	case to.Localpart() == "":
		// Presence to the server is not handled; to one of its
		// resources, there is no such resource.
		if to.Resourcepart() != "" {
			m.core.Bounce(from, st, stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable})
		}
	case st.IsSubscription():
		// The roster module's; nothing to do without it.
	case st.Type == "" || st.Type == "unavailable":
		m.directedPresence(ctx, from, st)
	case to.Resourcepart() == "":
		if st.Type == "probe" {
			m.probe(ctx, from, to)
		}
		// Error presence to an account is not delivered to clients.
	default:
		// Other presence to a full JID goes to that resource, if bound.
		if t := m.core.Session(to); t != nil && m.core.Admit(ctx, from, st, to) {
			m.core.Deliver(t, st)
		}
	}
	return true
}

// broadcast handles presence without to: the session's availability (RFC
// 6121 §4.2, §4.4, §4.5). Available presence goes to the user's
// subscribers and own available resources; the first one (initial
// presence) also probes the user's contacts and fires PresenceInitial.
func (m *Module) broadcast(ctx context.Context, t router.Target, st *element.Stanza) {
	switch st.Type {
	case "", "unavailable":
	default:
		m.core.Bounce(t, st, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest})
		return
	}
	prio := 0
	if p := strings.TrimSpace(st.ChildText(element.NSClient, "priority")); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < -128 || n > 127 {
			m.core.Bounce(t, st, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest})
			return
		}
		prio = n
	}
	bound, initial := m.core.SetPresence(t, st, prio)
	if !bound {
		return
	}
	var directed []jid.JID
	if st.Type == "unavailable" {
		directed = m.takeDirected(t)
	}
	m.send(ctx, t, st, directed, true)
	if st.Type == "unavailable" || !initial {
		return
	}
	m.probeContacts(ctx, t)
	m.core.Fire(router.PresenceInitial, &router.EventData{Ctx: ctx, Target: t, Stanza: st})
}

// sessionUnbound takes a session that was available offline as if it had
// sent unavailable presence (RFC 6121 §4.5.1), and forgets its directed
// presence.
func (m *Module) sessionUnbound(ev *router.EventData) bool {
	t := ev.Target
	directed := m.takeDirected(t)
	if ev.Stanza != nil {
		unavailable := &element.Stanza{Name: "presence", Type: "unavailable", From: t.JID()}
		m.send(ev.Ctx, t, unavailable, directed, false)
	}
	return false
}

// send fires PresenceBroadcast, then sends st, the presence of session t
// whose availability the core has recorded, to the user's own available
// resources (t too while it is bound), to every contact subscribed to the
// user, and to directed, the entities t sent directed presence to that
// are to learn it went unavailable.
func (m *Module) send(ctx context.Context, t router.Target, st *element.Stanza, directed []jid.JID, bound bool) {
	user := t.JID().Bare()
	m.core.Fire(router.PresenceBroadcast, &router.EventData{Ctx: ctx, Target: t, Stanza: st})
	var sender router.Target
	own := m.core.Available(user, false)
	if bound {
		// A stanza of the session's, not one the server made for it.
		sender = t
		if st.Type != "" {
			own = append(own, t)
		}
	}
	st.From = t.JID()
	for _, o := range own {
		out := st.Clone()
		out.To = o.JID()
		m.core.Deliver(o, out)
	}
	sent := map[string]bool{}
	for _, item := range m.rosterItems(ctx, user) {
		if !item.From {
			continue
		}
		contact, err := jid.Parse(item.Contact)
		if err != nil {
			continue
		}
		// Those the user blocks, or who block the user, are refused by
		// StanzaIn here and below.
		sent[contact.String()] = true
		m.core.DeliverAvailable(ctx, sender, st, contact)
	}
	for _, j := range directed {
		if !sent[j.Bare().String()] {
			out := st.Clone()
			out.To = j
			m.route(ctx, sender, out)
		}
	}
}

// route delivers presence addressed to a local full or bare JID, unless
// StanzaIn refuses it.
func (m *Module) route(ctx context.Context, from router.Target, st *element.Stanza) {
	if !m.core.Serves(st.To.Domainpart()) {
		return
	}
	if st.To.Resourcepart() != "" {
		if t := m.core.Session(st.To); t != nil && m.core.Admit(ctx, from, st, st.To) {
			m.core.Deliver(t, st)
		}
		return
	}
	m.core.DeliverAvailable(ctx, from, st, st.To)
}

// probe answers a probe from t for a local account: the account's current
// presence if t's user is subscribed to it (RFC 6121 §4.3).
func (m *Module) probe(ctx context.Context, t router.Target, contact jid.JID) {
	user := t.JID().Bare()
	item, ok, err := m.store.RosterItem(ctx, user.Domainpart(), user.Localpart(), contact.Bare().String())
	if err != nil {
		m.logger.Error("reading a roster item failed", "jid", user.String(), "contact", contact.Bare().String(), "err", err)
		return
	}
	if !ok || !item.To {
		return
	}
	m.core.SendPresenceOf(ctx, contact, t)
}

// probeContacts sends t the presence of every local contact its user is
// subscribed to.
func (m *Module) probeContacts(ctx context.Context, t router.Target) {
	for _, item := range m.rosterItems(ctx, t.JID().Bare()) {
		if !item.To {
			continue
		}
		if contact, err := jid.Parse(item.Contact); err == nil && m.core.Serves(contact.Domainpart()) {
			m.core.SendPresenceOf(ctx, contact, t)
		}
	}
}

// rosterItems returns the user's entries; a storage failure is logged and
// gives none.
func (m *Module) rosterItems(ctx context.Context, user jid.JID) []storage.RosterItem {
	items, _, err := m.store.Roster(ctx, user.Domainpart(), user.Localpart())
	if err != nil {
		m.logger.Error("reading a roster failed", "jid", user.String(), "err", err)
	}
	return items
}
