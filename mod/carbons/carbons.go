// Package carbons is XEP-0280, Message Carbons (v2, urn:xmpp:carbons:2):
// a session that enabled carbons gets a copy of every instant message its
// user sends from another resource (<sent/>) and of every one addressed
// to the user that the core delivers to another resource (<received/>),
// each wrapped per XEP-0297 in a message from the user's bare JID.
//
// Which messages are copied (XEP-0280 §6): type chat, and type normal
// with a body; never groupchat, errors (the server does not track what
// they answer), headlines, a carbon itself, a message carrying
// <private xmlns='urn:xmpp:carbons:2'/> (§8; the receiving side strips
// it) or <no-copy xmlns='urn:xmpp:hints'/> (XEP-0334), nor a private
// message from a MUC occupant (one carrying a muc#user <x/>) that the
// user receives.
//
// Copies go to the user's available resources that enabled carbons,
// never to the sending resource nor to those the core delivers the
// message to itself: the best resources for a bare JID (RFC 6121
// §8.5.2.1.1), the addressed one for a full JID. What the server routes
// on its own (no sender session: a message a session never acknowledged,
// routed again) is not copied a second time. A message to a full JID
// that is not bound is left to the bare JID rules, which the core applies
// next, so that it is copied once.
//
// IQ: <enable/> and <disable/> (type set, to the user's own account).
// Disco feature urn:xmpp:carbons:2 on the server.
//
// Hooks (priority -10, low so that what others add on the way, such as
// an archive's stanza-id, is in the copy; none stops):
//   - MessageOut: <sent/> copies.
//   - MessageBare, MessageFull: <received/> copies; <private/> removed.
//   - SessionUnbound (0): the session's flag goes.
//
// It has no store: the flag lives as long as the session.
package carbons

import (
	"context"
	"encoding/xml"
	"fmt"
	"log/slog"
	"sync"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"ottr.im/ottr/element"
	"ottr.im/ottr/router"
)

// Namespaces.
const (
	// NS is XEP-0280 v2's namespace, also its disco feature.
	NS        = "urn:xmpp:carbons:2"
	nsForward = "urn:xmpp:forward:0"
	nsHints   = "urn:xmpp:hints"
	nsMUCUser = "http://jabber.org/protocol/muc#user"
)

// priority of the message hooks: after any hook that changes the
// message, before the core delivers it.
const priority = -10

// Module is the carbons module registered with one core.
type Module struct {
	core   *router.Router
	logger *slog.Logger

	// enabled holds the sessions (router.Target) that enabled carbons.
	enabled sync.Map
}

// Register adds the carbons module to core: its iq handlers and hooks.
func Register(core *router.Router) (*Module, error) {
	m := &Module{core: core, logger: core.Logger().With("module", "carbons")}
	for _, h := range []struct {
		local, feature string
		on             bool
	}{{"enable", NS, true}, {"disable", "", false}} {
		on := h.on
		fn := router.IQHandlerFunc(func(_ context.Context, req router.IQRequest) (xml.TokenReader, error) {
			if req.Stanza.Type != "set" {
				return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
			}
			m.set(req.Session, on)
			return nil, nil
		})
		if err := core.HandleIQ(xml.Name{Space: NS, Local: h.local}, router.AtSelf, h.feature, fn); err != nil {
			return nil, fmt.Errorf("carbons: %w", err)
		}
	}
	if err := core.Hooks("carbons",
		router.HookSpec{Event: router.MessageOut, Priority: priority, Fn: m.messageOut},
		router.HookSpec{Event: router.MessageBare, Priority: priority, Fn: m.messageBare},
		router.HookSpec{Event: router.MessageFull, Priority: priority, Fn: m.messageFull},
		router.HookSpec{Event: router.SessionUnbound, Priority: 0, Fn: m.sessionUnbound},
	); err != nil {
		return nil, err
	}
	return m, nil
}

// Enabled reports whether t enabled carbons.
func (m *Module) Enabled(t router.Target) bool {
	_, ok := m.enabled.Load(t)
	return ok
}

// Enable turns carbons on for t, as its <enable/> iq does: for a session
// bound inline by XEP-0386 Bind2 (<enable xmlns='urn:xmpp:carbons:2'/>
// inside <bind/>), which gets no iq reply.
func (m *Module) Enable(t router.Target) { m.set(t, true) }

// set records whether t wants carbons. A session replaced or unbound
// meanwhile is not recorded: its SessionUnbound ran before the check or
// runs after the record.
func (m *Module) set(t router.Target, on bool) {
	if !on {
		m.enabled.Delete(t)
		return
	}
	m.enabled.Store(t, struct{}{})
	if m.core.Session(t.JID()) != t {
		m.enabled.Delete(t)
	}
}

func (m *Module) sessionUnbound(ev *router.EventData) bool {
	m.enabled.Delete(ev.Target)
	return false
}

// messageOut sends <sent/> copies of a message from a local session to
// its user's other resources. A message to the user's own account is
// left to the <received/> rules.
func (m *Module) messageOut(ev *router.EventData) bool {
	st, from := ev.Stanza, ev.From
	if from == nil || ev.To.Equal(jid.JID{}) || ev.To.Bare().Equal(from.JID().Bare()) || !eligible(st, false) {
		return false
	}
	m.copyTo("sent", st, from.JID().Bare(), from)
	return false
}

// messageBare sends <received/> copies of a message to a local bare JID
// to the resources the core does not deliver it to.
func (m *Module) messageBare(ev *router.EventData) bool {
	m.received(ev, m.core.Best(ev.Stanza.To.Bare())...)
	return false
}

// messageFull sends <received/> copies of a message to a bound full JID
// to the user's other resources; one to a full JID that is not bound is
// left to the bare JID rules (and messageBare).
func (m *Module) messageFull(ev *router.EventData) bool {
	to := m.core.Session(ev.Stanza.To)
	if to == nil {
		return false
	}
	m.received(ev, to)
	return false
}

// received strips <private/> and, when the message is eligible, sends
// <received/> copies to the recipient's resources but the sender and
// those listed in skip. A message the server routes itself (no sender
// session, such as one a session never acknowledged, XEP-0198, routed
// again to the bare JID) was copied and stripped when it first came: it
// is left as it is, untouched (other sessions' writers may be reading
// it).
func (m *Module) received(ev *router.EventData, skip ...router.Target) {
	st := ev.Stanza
	if ev.From == nil || st.RemoveChildren(isPrivate) || !eligible(st, true) {
		return
	}
	m.copyTo("received", st, st.To.Bare(), append(skip, ev.From)...)
}

// copyTo wraps st in <wrapper xmlns=NS><forwarded/></wrapper> and
// delivers it to every available carbons-enabled resource of user but
// those in skip.
func (m *Module) copyTo(wrapper string, st *element.Stanza, user jid.JID, skip ...router.Target) {
	var targets []router.Target
	for _, t := range m.core.Available(user, false) {
		if m.Enabled(t) && !contains(skip, t) {
			targets = append(targets, t)
		}
	}
	if len(targets) == 0 {
		return
	}
	payload := xmlstream.Wrap(
		xmlstream.Wrap(st.TokenReader(), xml.StartElement{Name: xml.Name{Space: nsForward, Local: "forwarded"}}),
		xml.StartElement{Name: xml.Name{Space: NS, Local: wrapper}},
	)
	tmpl, err := element.New("message", st.Type, user, jid.JID{}, "", payload)
	if err != nil {
		m.logger.Error("building a carbon copy failed", "err", err)
		return
	}
	for _, t := range targets {
		c := tmpl.Clone()
		c.To = t.JID()
		m.core.Deliver(t, c)
	}
}

func contains(ts []router.Target, t router.Target) bool {
	for _, s := range ts {
		if s == t {
			return true
		}
	}
	return false
}

// eligible reports whether a message is copied (XEP-0280 §6); received
// says it is on its way in, where private messages from MUC occupants are
// not copied.
func eligible(st *element.Stanza, received bool) bool {
	if st.Name != "message" {
		return false
	}
	switch st.Type {
	case "chat":
	case "", "normal":
		if !hasChild(st, element.NSClient, "body") && !hasChild(st, "", "body") {
			return false
		}
	default:
		// groupchat, headline, error.
		return false
	}
	switch {
	case hasChild(st, NS, "private"), hasChild(st, nsHints, "no-copy"),
		hasChild(st, NS, "sent"), hasChild(st, NS, "received"):
		return false
	case received && hasChild(st, nsMUCUser, "x"):
		return false
	}
	return true
}

// isPrivate matches <private xmlns='urn:xmpp:carbons:2'/>.
func isPrivate(start xml.StartElement) bool {
	return start.Name == xml.Name{Space: NS, Local: "private"}
}

func hasChild(st *element.Stanza, space, local string) bool {
	_, ok := st.Child(space, local)
	return ok
}
