package pep

import (
	"context"
	"encoding/xml"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"

	"ottr.im/ottr/element"
	"ottr.im/ottr/internal/randid"
	"ottr.im/ottr/router"
	"ottr.im/ottr/storage"
)

// Who is told what a node got (XEP-0163 §4.3): the owner's available
// resources, and unless the node is whitelist the available resources of
// the contacts subscribed to the owner's presence; each only if its
// capabilities hold the node's +notify.

// recipients returns the sessions to notify of node n of owner.
func (m *Module) recipients(ctx context.Context, owner jid.JID, n storage.PEPNode) []router.Target {
	var out []router.Target
	add := func(bare jid.JID) {
		for _, t := range m.core.Available(bare, false) {
			if m.caps.wants(t, n.Node) {
				out = append(out, t)
			}
		}
	}
	add(owner)
	if n.Access == "whitelist" {
		return out
	}
	items, _, err := m.store.Roster(ctx, owner.Domainpart(), owner.Localpart())
	if err != nil {
		m.logger.Error("reading a roster failed", "owner", owner.String(), "err", err)
		return out
	}
	for _, it := range items {
		if !it.From {
			continue
		}
		if c, err := jid.Parse(it.Contact); err == nil && m.core.Serves(c.Domainpart()) {
			add(c)
		}
	}
	return out
}

// event returns the notification of node from owner to t: <event/> with
// <items node=…> holding inner, and a delay stamp when stamp is set.
func event(owner, to jid.JID, node string, stamp time.Time, inner ...xml.TokenReader) (*element.Stanza, error) {
	ev := build(xml.Name{Space: nsEvent, Local: "event"}, nil, build(xml.Name{Local: "items"}, attrs("node", node), inner...))
	payload := []xml.TokenReader{ev}
	if !stamp.IsZero() {
		payload = append(payload, build(xml.Name{Space: nsDelay, Local: "delay"},
			attrs("from", owner.String(), "stamp", stamp.UTC().Format("2006-01-02T15:04:05.000Z"))))
	}
	return element.New("message", "headline", owner, to, randid.New(), xmlstream.MultiReader(payload...))
}

// deliver sends st to t unless t's user refuses the owner (StanzaIn).
func (m *Module) deliver(ctx context.Context, t router.Target, st *element.Stanza) {
	if m.core.Admit(ctx, nil, st, t.JID()) {
		m.core.Deliver(t, st)
	}
}

// notify sends every recipient of node n an event whose <items/> holds
// what inner returns (an item or a retract); inner is called once.
func (m *Module) notify(ctx context.Context, owner jid.JID, n storage.PEPNode, inner xml.TokenReader) {
	targets := m.recipients(ctx, owner, n)
	if len(targets) == 0 {
		return
	}
	tmpl, err := event(owner, owner, n.Node, time.Time{}, inner)
	if err != nil {
		m.logger.Error("building a notification failed", "owner", owner.String(), "node", n.Node, "err", err)
		return
	}
	for _, t := range targets {
		st := tmpl.Clone()
		st.To, st.ID = t.JID(), randid.New()
		m.deliver(ctx, t, st)
	}
}

// notifyNode tells the recipients of n that it was deleted or purged
// (what is "delete" or "purge", XEP-0060 §8.4.2, §8.5.2).
func (m *Module) notifyNode(ctx context.Context, owner jid.JID, n storage.PEPNode, what string) {
	for _, t := range m.recipients(ctx, owner, n) {
		st, err := element.New("message", "headline", owner, t.JID(), randid.New(),
			build(xml.Name{Space: nsEvent, Local: "event"}, nil, build(xml.Name{Local: what}, attrs("node", n.Node))))
		if err != nil {
			m.logger.Error("building a notification failed", "owner", owner.String(), "err", err)
			return
		}
		m.deliver(ctx, t, st)
	}
}

// sendLast sends t the last item of each node of owner's that t wants
// (nodes, by name), that t's user may see, and whose send_last option
// allows it now (onSub: at a new subscription, else at presence), with
// a delay stamp (XEP-0060 §6.1.7, XEP-0163 §4.3.4).
func (m *Module) sendLast(ctx context.Context, t router.Target, owner jid.JID, nodes map[string]bool, onSub bool) {
	if len(nodes) == 0 {
		return
	}
	own := owner.Equal(t.JID().Bare())
	all, err := m.store.PEPNodes(ctx, owner.Domainpart(), owner.Localpart())
	if err != nil {
		m.logger.Error("reading nodes failed", "owner", owner.String(), "err", err)
		return
	}
	for _, n := range all {
		switch {
		case !nodes[n.Node], n.SendLast == "never", !own && n.Access == "whitelist", !onSub && n.SendLast == "on_sub":
			continue
		}
		items, err := m.store.PEPItems(ctx, owner.Domainpart(), owner.Localpart(), n.Node, nil, 1)
		if err != nil {
			m.logger.Error("reading items failed", "owner", owner.String(), "node", n.Node, "err", err)
			continue
		}
		if len(items) == 0 {
			continue
		}
		it := items[0]
		st, err := event(owner, t.JID(), n.Node, it.Published,
			build(xml.Name{Local: "item"}, attrs("id", it.ID), element.Stored(it.Payload)))
		if err != nil {
			m.logger.Error("building a notification failed", "owner", owner.String(), "err", err)
			continue
		}
		m.deliver(ctx, t, st)
	}
}

// sendAllLast sends t, whose user is now known to want nodes, the last
// items of its own account's nodes and of every local account its user
// is subscribed to.
func (m *Module) sendAllLast(ctx context.Context, t router.Target, nodes map[string]bool) {
	if len(nodes) == 0 {
		return
	}
	user := t.JID().Bare()
	m.sendLast(ctx, t, user, nodes, false)
	items, _, err := m.store.Roster(ctx, user.Domainpart(), user.Localpart())
	if err != nil {
		m.logger.Error("reading a roster failed", "user", user.String(), "err", err)
		return
	}
	for _, it := range items {
		if !it.To {
			continue
		}
		if c, err := jid.Parse(it.Contact); err == nil && m.core.Serves(c.Domainpart()) {
			m.sendLast(ctx, t, c, nodes, false)
		}
	}
}

// presenceOut sees the user approve a contact's subscription request
// (RFC 6121 §3.1.4): the contact's available resources get the user's
// last items (XEP-0163 §4.3.4). The roster module, below, makes the
// subscription; the request being stored means it will.
func (m *Module) presenceOut(ev *router.EventData) bool {
	st := ev.Stanza
	if st.Type != "subscribed" || ev.From == nil || !m.core.Serves(ev.To.Domainpart()) || ev.To.Localpart() == "" {
		return false
	}
	user, contact := ev.From.JID().Bare(), ev.To.Bare()
	item, ok, err := m.store.RosterItem(ev.Ctx, user.Domainpart(), user.Localpart(), contact.String())
	if err != nil || !ok || !item.PendingIn || item.From {
		return false
	}
	for _, t := range m.core.Available(contact, false) {
		m.sendLast(ev.Ctx, t, user, m.caps.notifyNodes(t), true)
	}
	return false
}
