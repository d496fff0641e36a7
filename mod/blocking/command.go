package blocking

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"ottr.im/ottr/element"
	"ottr.im/ottr/internal/randid"
	"ottr.im/ottr/router"
	"ottr.im/ottr/storage"
)

// items decodes <block/> or <unblock/> items.
type items struct {
	XMLName xml.Name
	Items   []struct {
		JID string `xml:"jid,attr"`
	} `xml:"item"`
}

// handleIQ answers XEP-0191 requests on the user's own account.
func (m *Module) handleIQ(ctx context.Context, req router.IQRequest) (xml.TokenReader, error) {
	user := req.From.Bare()
	var q items
	if err := req.Stanza.DecodePayload(&q); err != nil {
		return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
	}
	host, name := user.Domainpart(), user.Localpart()
	switch {
	case req.Stanza.Type == "get" && q.XMLName.Local == "blocklist":
		m.markRequested(req)
		jids, err := m.store.BlockList(ctx, host, name)
		if err != nil {
			return nil, fmt.Errorf("blocking: reading the block list of %s: %w", user, err)
		}
		return payload("blocklist", jids), nil
	case req.Stanza.Type == "set" && (q.XMLName.Local == "block" || q.XMLName.Local == "unblock"):
	default:
		return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
	}
	if len(q.Items) > m.maxItems {
		// More than a list may hold (blocked_items): refused whole.
		return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable,
			Text: map[string]string{"": "more than " + strconv.Itoa(m.maxItems) + " items"}}
	}
	var jids []string
	for _, it := range q.Items {
		j, err := jid.Parse(it.JID)
		if err != nil || it.JID == "" {
			return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.JIDMalformed}
		}
		jids = append(jids, j.String())
	}
	if q.XMLName.Local == "block" {
		if len(jids) == 0 {
			return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
		}
		err := m.store.Block(ctx, host, name, jids, m.maxItems)
		if errors.Is(err, storage.ErrQuota) {
			// The list would pass blocked_items: nothing was added.
			return nil, stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint}
		}
		if err != nil {
			return nil, fmt.Errorf("blocking: storing a block of %s: %w", user, err)
		}
		m.cache.update(user, jids, nil, false)
		// Blocked contacts stop seeing the user online (XEP-0191 §3.3).
		m.presenceAfterBlock(ctx, user)
	} else {
		wasBlocked := m.blockedContacts(ctx, user)
		if err := m.store.Unblock(ctx, host, name, jids); err != nil {
			return nil, fmt.Errorf("blocking: storing an unblock of %s: %w", user, err)
		}
		m.cache.update(user, nil, jids, len(jids) == 0)
		m.presenceAfterUnblock(ctx, user, wasBlocked)
	}
	m.push(user, q.XMLName.Local, jids)
	return nil, nil
}

// markRequested records that the requesting session asked for the list,
// if it is still bound: it gets pushes from now on.
func (m *Module) markRequested(req router.IQRequest) {
	m.mu.Lock()
	defer m.mu.Unlock()
	// Under m.mu: an unbind that removes the session after this check
	// drops the mark in sessionUnbound.
	if m.core.Session(req.From) == req.Session {
		m.requested[req.Session] = true
	}
}

// rosterItems returns the user's roster entries; a storage failure is
// logged and reads as none.
func (m *Module) rosterItems(ctx context.Context, user jid.JID) []storage.RosterItem {
	items, _, err := m.store.Roster(ctx, user.Domainpart(), user.Localpart())
	if err != nil {
		m.logger.Error("reading a roster failed", "jid", user.String(), "err", err)
	}
	return items
}

// presenceAfterBlock makes the user unavailable to the entities its
// block list now matches (XEP-0191 §3.3): every available resource of a
// contact subscribed to the user's presence, or sent directed presence by
// one of its resources (BlockListChanged collects those), that is now
// blocked gets unavailable presence from each available resource of the
// user.
func (m *Module) presenceAfterBlock(ctx context.Context, user jid.JID) {
	audience := map[string]jid.JID{}
	for _, item := range m.rosterItems(ctx, user) {
		if c, err := jid.Parse(item.Contact); err == nil && item.From {
			audience[c.String()] = c
		}
	}
	blocked := func(other jid.JID) bool { return m.cache.blocks(ctx, user, other) }
	m.core.Fire(router.BlockListChanged, &router.EventData{Ctx: ctx, To: user, Blocked: blocked, Audience: audience})
	var from []jid.JID
	for _, t := range m.core.Available(user, false) {
		from = append(from, t.JID())
	}
	if len(from) == 0 {
		return
	}
	for _, contact := range audience {
		if !m.core.Serves(contact.Domainpart()) {
			continue
		}
		for _, t := range m.core.Available(contact, false) {
			if !blocked(t.JID()) {
				continue
			}
			for _, f := range from {
				m.core.Deliver(t, &element.Stanza{Name: "presence", Type: "unavailable", From: f, To: t.JID()})
			}
		}
	}
}

// blockedContacts returns the roster entries of user whose contact the
// user's block list matches, by bare JID.
func (m *Module) blockedContacts(ctx context.Context, user jid.JID) map[string]storage.RosterItem {
	out := map[string]storage.RosterItem{}
	for _, item := range m.rosterItems(ctx, user) {
		if c, err := jid.Parse(item.Contact); err == nil && (item.To || item.From) && m.cache.blocks(ctx, user, c) {
			out[c.String()] = item
		}
	}
	return out
}

// presenceAfterUnblock restores presence between the user and the
// contacts an unblock freed (XEP-0191 §3.4): a contact subscribed to the
// user gets the user's current presence, and the user's available
// resources get the presence of a contact the user is subscribed to.
func (m *Module) presenceAfterUnblock(ctx context.Context, user jid.JID, wasBlocked map[string]storage.RosterItem) {
	for _, item := range wasBlocked {
		contact, err := jid.Parse(item.Contact)
		if err != nil || m.cache.blocks(ctx, user, contact) {
			continue
		}
		if item.From {
			m.core.SendPresenceFromAll(ctx, user, contact, false)
		}
		if item.To && m.core.Serves(contact.Domainpart()) {
			for _, t := range m.core.Available(user, false) {
				m.core.SendPresenceOf(ctx, contact, t)
			}
		}
	}
}

// push tells the user's sessions that asked for the list about a change
// (XEP-0191 §3.3, §3.4).
func (m *Module) push(user jid.JID, local string, jids []string) {
	var targets []router.Target
	m.mu.Lock()
	for _, t := range m.core.Resources(user) {
		if m.requested[t] {
			targets = append(targets, t)
		}
	}
	m.mu.Unlock()
	for _, t := range targets {
		st, err := element.New("iq", "set", user, t.JID(), "push"+randid.New(), payload(local, jids))
		if err == nil {
			m.core.Deliver(t, st)
		}
	}
}

// payload is <local xmlns='urn:xmpp:blocking'/> with an item for each
// JID.
func payload(local string, jids []string) xml.TokenReader {
	var items []xml.TokenReader
	for _, j := range jids {
		items = append(items, xmlstream.Wrap(nil, xml.StartElement{
			Name: xml.Name{Local: "item"},
			Attr: []xml.Attr{{Name: xml.Name{Local: "jid"}, Value: j}},
		}))
	}
	return xmlstream.Wrap(xmlstream.MultiReader(items...), xml.StartElement{Name: xml.Name{Space: ns, Local: local}})
}
