// Package blocking is XEP-0191, the blocking command: a user's block list
// (the urn:xmpp:blocking iq payloads on the user's own account, with
// pushes to the resources that asked for the list), and the refusals it
// implies on the stanza path.
//
// Hooks:
//   - StanzaOut (100): a stanza to an entity the user blocked is refused
//     with not-acceptable and the <blocked xmlns='urn:xmpp:blocking:errors'/>
//     application condition (XEP-0191 §3.6); presence is dropped silently.
//   - StanzaIn (100): a stanza reaching an account that blocked its sender
//     is refused (XEP-0191 §3.5): a message or iq with service-unavailable,
//     presence silently; available, unavailable and probe presence also
//     when its sender blocked the addressee (a subscription change is
//     the addressee's alone to refuse).
//   - SessionBind (100): the user's list is loaded and kept in memory while
//     the user has a session; a storage failure refuses the bind with
//     internal-server-error.
//   - SessionUnbound (0): the session's interest in pushes is dropped; the
//     list is unpinned when the user's last session ended.
//   - AccountDeleted (0, the event without a contact): the list is
//     forgotten.
//
// After a block it fires BlockListChanged, so that the modules that keep
// what a user sent to others (directed presence) drop it and add those
// entities to who sees the user go unavailable (XEP-0191 §3.3).
//
// Store: BlockList, Block, Unblock, and Roster for the contacts who see
// the user's presence.
package blocking

import (
	"context"
	"encoding/xml"
	"fmt"
	"log/slog"
	"sync"

	"mellium.im/xmpp/stanza"

	"ottr.im/ottr/element"
	"ottr.im/ottr/internal/defaults"
	"ottr.im/ottr/router"
	"ottr.im/ottr/storage"
)

const (
	ns       = "urn:xmpp:blocking"
	nsErrors = "urn:xmpp:blocking:errors"
)

// Store holds block lists, and reads rosters.
type Store interface {
	// BlockList returns the blocked JIDs, sorted.
	BlockList(ctx context.Context, host, user string) ([]string, error)
	// Block adds JIDs (already present ones are ignored), all or none:
	// if the list would then hold more than max it stores nothing and
	// returns an error wrapping storage.ErrQuota.
	Block(ctx context.Context, host, user string, jids []string, max int) error
	// Unblock removes JIDs; no JIDs means all.
	Unblock(ctx context.Context, host, user string, jids []string) error
	// Roster returns the user's entries (all of them, InRoster or not,
	// ordered by contact) and the roster version (0 for a new roster).
	Roster(ctx context.Context, host, user string) ([]storage.RosterItem, int64, error)
}

// DefaultMaxItems is the most JIDs on one block list when
// Options.MaxItems is 0 (config's blocked_items default).
const DefaultMaxItems = 1000

// Options are the module's limits.
type Options struct {
	// MaxItems is the most JIDs on one block list (blocked_items); 0 is
	// DefaultMaxItems.
	MaxItems int
}

// Module is the blocking command of one routing core.
type Module struct {
	core     *router.Router
	store    Store
	maxItems int
	logger   *slog.Logger
	cache    *cache

	mu sync.Mutex
	// requested holds the sessions that asked for the block list: they
	// get pushes (XEP-0191 §3.2).
	requested map[router.Target]bool
}

// Register adds the blocking command to core: its iq handlers and hooks.
func Register(core *router.Router, store Store, opts Options) (*Module, error) {
	m := &Module{
		core:      core,
		store:     store,
		maxItems:  opts.MaxItems,
		logger:    core.Logger().With("module", "blocking"),
		cache:     newCache(store),
		requested: make(map[router.Target]bool),
	}
	defaults.Positive(&m.maxItems, DefaultMaxItems)
	h := router.IQHandlerFunc(m.handleIQ)
	for _, reg := range []struct {
		local, feature string
	}{{"blocklist", ns}, {"block", ""}, {"unblock", ""}} {
		if err := core.HandleIQ(xml.Name{Space: ns, Local: reg.local}, router.AtSelf, reg.feature, h); err != nil {
			return nil, fmt.Errorf("blocking: %w", err)
		}
	}
	if err := core.Hooks("blocking",
		router.HookSpec{Event: router.StanzaOut, Priority: 100, Fn: m.stanzaOut},
		router.HookSpec{Event: router.StanzaIn, Priority: 100, Fn: m.stanzaIn},
		router.HookSpec{Event: router.SessionBind, Priority: 100, Fn: m.sessionBind},
		router.HookSpec{Event: router.SessionUnbound, Priority: 0, Fn: m.sessionUnbound},
		router.HookSpec{Event: router.AccountDeleted, Priority: 0, Fn: m.accountDeleted},
	); err != nil {
		return nil, err
	}
	return m, nil
}

// stanzaOut refuses a stanza from a local session to an entity its user
// blocked (XEP-0191 §3.6): the stanzas that reach the blocked entity or
// ask something of it, as ottr always refused them; presence silently.
func (m *Module) stanzaOut(ev *router.EventData) bool {
	st := ev.Stanza
	to := st.To
	if !m.refusedOut(st) {
		return false
	}
	if st.IsSubscription() && m.core.Serves(to.Domainpart()) {
		// A subscription goes to the contact's bare JID (RFC 6121
		// §3.1.2): that is what the list is matched against.
		to = to.Bare()
	}
	if !m.cache.blocks(ev.Ctx, ev.From.JID().Bare(), to) {
		return false
	}
	m.bounceBlocked(ev.From, st)
	return true
}

// refusedOut reports whether st is refused when its addressee is
// blocked: presence, anything to a local full JID, a message to a local
// account, and an iq request to any address. Other stanzas (an iq
// response to an account, a domain or a remote entity; a message to a
// domain or a remote entity) go their way, which drops or bounces them,
// as before the blocking command was a module.
func (m *Module) refusedOut(st *element.Stanza) bool {
	to := st.To
	local := m.core.Serves(to.Domainpart()) && to.Localpart() != ""
	switch {
	case st.Name == "presence", st.IsIQRequest():
		return true
	case local && to.Resourcepart() != "":
		return true
	case local:
		return st.Name == "message"
	}
	return false
}

// bounceBlocked answers st, sent by from to an entity its user blocked,
// with not-acceptable and XEP-0191's <blocked/> application condition;
// presence is dropped silently.
func (m *Module) bounceBlocked(from router.Target, st *element.Stanza) {
	if st.Name == "presence" {
		return
	}
	reply := st.ErrorReply(st.To, stanza.Error{Type: stanza.Cancel, Condition: stanza.NotAcceptable})
	reply.To = from.JID()
	// The application condition sits inside <error/>, after the defined one.
	toks := reply.Tokens()
	if n := len(toks); n > 0 {
		if end, ok := toks[n-1].(xml.EndElement); ok && end.Name.Local == "error" {
			app := xml.StartElement{Name: xml.Name{Space: nsErrors, Local: "blocked"}, Attr: []xml.Attr{}}
			reply.SetTokens(append(toks[:n-1:n-1], app, app.End(), end))
		}
	}
	m.core.Deliver(from, reply)
}

// stanzaIn refuses a stanza to a local account that blocked its sender
// (XEP-0191 §3.5), and presence between two entities when either blocked
// the other.
func (m *Module) stanzaIn(ev *router.EventData) bool {
	st := ev.Stanza
	refused := m.cache.blocks(ev.Ctx, ev.To.Bare(), st.From)
	if !refused && st.Name == "presence" && !st.IsSubscription() {
		// Nobody's availability reaches whom they blocked either; a
		// subscription change is the addressee's to refuse: a user who
		// removes a contact they block still ends the subscriptions
		// (RFC 6121 §2.5.2).
		refused = m.cache.blocks(ev.Ctx, st.From.Bare(), ev.To)
	}
	if !refused {
		return false
	}
	if st.Name != "presence" {
		m.core.Bounce(ev.From, st, stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable})
	}
	return true
}

// sessionBind pins the user's list in memory; a storage failure refuses
// the bind.
func (m *Module) sessionBind(ev *router.EventData) bool {
	user := ev.Target.JID().Bare()
	if err := m.cache.load(ev.Ctx, user); err != nil {
		m.logger.Error("loading the block list failed", "jid", user.String(), "err", err)
		ev.Err = stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError}
		return true
	}
	return false
}

// sessionUnbound forgets the session's interest in pushes, and unpins the
// list when it was the user's last session.
func (m *Module) sessionUnbound(ev *router.EventData) bool {
	m.mu.Lock()
	delete(m.requested, ev.Target)
	m.mu.Unlock()
	user := ev.Target.JID().Bare()
	if len(m.core.Resources(user)) == 0 {
		m.cache.forget(user)
	}
	return false
}

// accountDeleted forgets a deleted account's list: the next look-up
// reads storage.
func (m *Module) accountDeleted(ev *router.EventData) bool {
	if ev.Deleted == nil {
		m.cache.drop(ev.To)
	}
	return false
}
