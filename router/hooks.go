package router

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"mellium.im/xmpp/jid"

	"ottr.im/ottr/element"
)

// Event names a point on the stanza path or in a session's life where
// modules act, as Prosody's module:hook events and CoreDNS's plugin chain
// do. The README's "How a stanza travels" lists them in the order a
// stanza meets them.
type Event int

// The events. Each says who fires it and which fields of Event are set.
const (
	// StanzaOut: a stanza from a local session with a to address, before
	// any routing (From, Stanza). Blocking refuses stanzas to entities
	// the user blocked here.
	StanzaOut Event = iota
	// StanzaIn: a stanza is about to reach a local account or one of its
	// resources (From when a session sent it, Stanza, To: the bare or
	// full JID it reaches). A handler that refuses it stops the chain and
	// answers the sender itself; the core then neither delivers nor
	// stores it. Modules ask the same question with Router.Admit before
	// they deliver on someone's behalf (presence, offline messages).
	StanzaIn
	// MessageBare: a message for a local bare JID, admitted (From,
	// Stanza). Without a handler that stops, RFC 6121 §8.5.2 applies:
	// the available resources of highest priority get it, or
	// MessageOffline is fired.
	MessageBare
	// MessageFull: a message for a local full JID, admitted (From,
	// Stanza). Without a handler that stops, the resource gets it, or the
	// bare JID rules apply when it is not bound (RFC 6121 §8.5.3).
	MessageFull
	// MessageOffline: a chat or normal message for an account with no
	// available resource (From, Stanza). A handler that stores it stops
	// the chain; without one the sender gets service-unavailable.
	MessageOffline
	// MessageDelivered: a routed message was queued to a session (From:
	// its sender's session or nil, Stanza, Target: the session).
	MessageDelivered
	// PresenceOut: presence from a local session, after StanzaOut (From,
	// Stanza, To: its to, the zero JID for a broadcast). Roster handles
	// subscriptions, presence the rest; nothing else is done with it. A
	// handler that does not stop may add children to Stanza for the
	// handlers after it, as Prosody's pre-presence events allow: what the
	// presence module then broadcasts, records for probes (PresenceOf)
	// and directs carries them (PEP's XEP-0398 avatar hash, priority
	// 1000).
	PresenceOut
	// PresenceBroadcast: a session's presence is about to go to its
	// user's resources and contacts (Target, Stanza); fired by the
	// presence module.
	PresenceBroadcast
	// PresenceInitial: a session sent its first available presence and
	// it was broadcast (Target, Stanza); fired by the presence module.
	PresenceInitial
	// SessionBind: a session asks to be bound (Target). A handler may
	// refuse it: it sets Err and stops the chain.
	SessionBind
	// SessionBound: a session was bound (Target).
	SessionBound
	// SessionUnbound: a session was removed (Target; Stanza: its last
	// available presence, nil if it was not available).
	SessionUnbound
	// BlockListChanged: a user's block list grew (To: the user's bare
	// JID; Blocked reports what it blocks now; Audience collects who is
	// to see the user go unavailable); fired by the blocking module so
	// that others drop what they keep for blocked entities.
	BlockListChanged
	// AccountDeleted: a local account was deleted (To: its bare JID;
	// Deleted: what the deletion left to tell one of its contacts). Fired
	// once with Deleted nil, then once for each affected contact.
	AccountDeleted
	// MessageOut: a message from a local session, after StanzaOut and
	// before it is routed (From, Stanza, To: its to, the zero JID for
	// the user's own account). Carbons copy it to the user's other
	// resources, the archive stores it; a handler that stops it has
	// answered the sender.
	MessageOut
	// StanzaDeliver: a stanza is about to be queued to a bound target
	// (Target, Stanza), by Router.Deliver. A handler that stops it has
	// taken it over (client state indication holds it back, to queue it
	// later with Target.Deliver itself).
	StanzaDeliver
	// IQResponse: an iq result or error addressed to a local host or to
	// an account's bare JID, which no handler answers (From: the
	// session that sent it, Stanza, To: where it was addressed). A
	// module that sent an iq request from there (the PEP module's
	// disco#info queries for entity capabilities) takes its answer here;
	// without one it is dropped.
	IQResponse

	numEvents
)

var eventNames = [numEvents]string{
	"stanza/out", "stanza/in", "message/bare", "message/full", "message/offline",
	"message/delivered", "presence/out", "presence/broadcast", "presence/initial",
	"session/bind", "session/bound", "session/unbound", "blocklist/changed", "account/deleted",
	"message/out", "stanza/deliver", "iq/response",
}

// String returns the event's name, such as "message/bare".
func (e Event) String() string {
	if e < 0 || e >= numEvents {
		return fmt.Sprintf("event(%d)", int(e))
	}
	return eventNames[e]
}

// EventData is what a hook handler gets. Which fields are set depends on
// the event (see its doc comment). Handlers may change Stanza only where
// the event says so.
type EventData struct {
	// Ctx is the context of the work: the sending session's, or the
	// server's for work it started itself.
	Ctx context.Context
	// From is the session the stanza came from, nil when the server made
	// it.
	From Target
	// Stanza is the stanza on its way.
	Stanza *element.Stanza
	// To is the local address concerned.
	To jid.JID
	// Target is the session concerned.
	Target Target
	// Err is set by a SessionBind handler that refuses the bind.
	Err error
	// Blocked is set for BlockListChanged: whether the user blocks
	// other now.
	Blocked func(other jid.JID) bool
	// Audience is set for BlockListChanged: the entities, by bare JID,
	// that are to see the user go unavailable; handlers add those they
	// know of.
	Audience map[string]jid.JID
	// Deleted is set for AccountDeleted, per contact.
	Deleted *DeletedContact
}

// HookFunc handles one event. It reports whether the chain stops: no
// handler of lower priority runs and the core's default for the event is
// skipped. It runs on the goroutine that fired the event (usually the
// sender's read loop) and must not block on other sessions.
type HookFunc func(e *EventData) (stop bool)

type hook struct {
	priority int
	name     string
	fn       HookFunc
}

// hooks holds the handlers of each event, highest priority first. It is
// filled at start-up and read-only afterwards.
type hooks [numEvents][]hook

// Hook adds fn to event with a priority: higher runs first, equal ones
// in the order they were added. name says who added it, for errors and
// logs. Hooks are added at start-up, before the first session binds.
func (r *Router) Hook(event Event, priority int, name string, fn HookFunc) error {
	if event < 0 || event >= numEvents {
		return fmt.Errorf("router: hook %q on unknown %v", name, event)
	}
	if fn == nil {
		return fmt.Errorf("router: nil hook %q on %v", name, event)
	}
	if r.started.Load() {
		return fmt.Errorf("router: hook %q on %v after start", name, event)
	}
	hs := append(r.hooks[event], hook{priority: priority, name: name, fn: fn})
	sort.SliceStable(hs, func(i, j int) bool { return hs[i].priority > hs[j].priority })
	r.hooks[event] = hs
	return nil
}

// HookSpec is one of a module's hooks, for Hooks.
type HookSpec struct {
	Event    Event
	Priority int
	Fn       HookFunc
}

// Hooks adds a module's hooks in order (see Hook), stopping at the first
// error, which names the module.
func (r *Router) Hooks(module string, hs ...HookSpec) error {
	for _, h := range hs {
		if err := r.Hook(h.Event, h.Priority, module, h.Fn); err != nil {
			return fmt.Errorf("%s: %w", module, err)
		}
	}
	return nil
}

// Fire runs event's handlers in order and reports whether one stopped the
// chain. Modules fire the events they own (presence, blocking) with it.
func (r *Router) Fire(event Event, e *EventData) (stopped bool) {
	for _, h := range r.hooks[event] {
		if h.fn(e) {
			return true
		}
	}
	return false
}

// errRefused is a SessionBind refusal that did not say why.
var errRefused = errors.New("router: bind refused")
