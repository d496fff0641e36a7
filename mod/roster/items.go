package roster

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"ottr.im/ottr/element"
	"ottr.im/ottr/internal/randid"
	"ottr.im/ottr/router"
	"ottr.im/ottr/storage"
)

// rosterItems returns the user's entries; a storage failure is logged and
// gives none.
func (m *Module) rosterItems(ctx context.Context, user jid.JID) []RosterItem {
	items, _, err := m.store.Roster(ctx, user.Domainpart(), user.Localpart())
	if err != nil {
		m.logger.Error("reading a roster failed", "jid", user.String(), "err", err)
	}
	return items
}

// loadRosterItem returns the user's entry for contact; a storage failure
// is logged and returned, so that a read-modify-write stops instead of
// writing a zero entry over the stored one (security review #11).
func (m *Module) loadRosterItem(ctx context.Context, user, contact jid.JID) (RosterItem, bool, error) {
	item, ok, err := m.store.RosterItem(ctx, user.Domainpart(), user.Localpart(), contact.Bare().String())
	if err != nil {
		m.logger.Error("reading a roster item failed", "jid", user.String(), "contact", contact.Bare().String(), "err", err)
		return RosterItem{}, false, fmt.Errorf("reading the roster item of %s for %s: %w", user, contact.Bare(), err)
	}
	return item, ok, nil
}

// itemsEqual reports whether two entries are the same in every field.
func itemsEqual(a, b RosterItem) bool {
	return a.Contact == b.Contact && a.Name == b.Name && slices.Equal(a.Groups, b.Groups) &&
		a.To == b.To && a.From == b.From && a.PendingOut == b.PendingOut &&
		a.PendingIn == b.PendingIn && bytes.Equal(a.PendingInStanza, b.PendingInStanza) &&
		a.Approved == b.Approved && a.InRoster == b.InRoster
}

// updateItem stores a changed entry (or deletes one that no longer means
// anything) and pushes it to the user's interested resources when it is
// or was in the roster. The caller holds the user's lock. A storage
// failure is logged and returned. Every roster write goes through here,
// so the roster quota (Options) is checked, by the store in the write's
// transaction, on every path: a change beyond it returns an error
// wrapping storage.ErrQuota and stores nothing.
func (m *Module) updateItem(ctx context.Context, user jid.JID, before, after RosterItem) error {
	if itemsEqual(before, after) {
		return nil
	}
	host, name := user.Domainpart(), user.Localpart()
	var ver int64
	var err error
	if !after.InRoster && !after.PendingIn && !after.Approved && !after.To && !after.From && !after.PendingOut {
		ver, err = m.store.DeleteRosterItem(ctx, host, name, after.Contact)
	} else {
		ver, err = m.store.PutRosterItem(ctx, host, name, after, m.quota)
	}
	if errors.Is(err, storage.ErrQuota) {
		// The user gets an error; a contact's refused request is logged
		// by refuseSubscription.
		m.logger.Debug("roster quota reached: change refused", "jid", user.String(), "contact", after.Contact, "err", err)
		return fmt.Errorf("storing the roster item of %s for %s: %w", user, after.Contact, err)
	}
	if err != nil {
		m.logger.Error("storing a roster item failed", "jid", user.String(), "err", err)
		return fmt.Errorf("storing the roster item of %s for %s: %w", user, after.Contact, err)
	}
	if (before.InRoster || after.InRoster) && !sameVisible(before, after) {
		m.rosterPush(user, after, !after.InRoster, ver)
	}
	return nil
}

// sameVisible reports whether a client would see no difference between
// the two entries: pending-in requests are not shown in the roster.
func sameVisible(a, b RosterItem) bool {
	return a.InRoster == b.InRoster && a.Name == b.Name && slices.Equal(a.Groups, b.Groups) &&
		subscriptionAttr(a) == subscriptionAttr(b) && a.PendingOut == b.PendingOut && a.Approved == b.Approved
}

// rosterPush sends one changed item to every interested resource of
// user (RFC 6121 §2.1.6).
func (m *Module) rosterPush(user jid.JID, item RosterItem, removed bool, ver int64) {
	for _, t := range m.interested(user) {
		push, err := element.New("iq", "set", user, t.JID(), "push"+randid.New(), rosterQuery(ver, []RosterItem{item}, removed))
		if err != nil {
			m.logger.Error("building a roster push failed", "err", err)
			return
		}
		m.core.Deliver(t, push)
	}
}

// subscriptionAttr is the item's subscription attribute value.
func subscriptionAttr(item RosterItem) string {
	switch {
	case item.To && item.From:
		return "both"
	case item.To:
		return "to"
	case item.From:
		return "from"
	}
	return "none"
}

// rosterQuery renders items as a roster <query/> with a version.
func rosterQuery(ver int64, items []RosterItem, removed bool) xml.TokenReader {
	var inner []xml.TokenReader
	for _, it := range items {
		attrs := []xml.Attr{{Name: xml.Name{Local: "jid"}, Value: it.Contact}}
		if removed {
			attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "subscription"}, Value: "remove"})
		} else {
			if it.Name != "" {
				attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "name"}, Value: it.Name})
			}
			attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "subscription"}, Value: subscriptionAttr(it)})
			if it.PendingOut {
				attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "ask"}, Value: "subscribe"})
			}
			if it.Approved {
				attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "approved"}, Value: "true"})
			}
		}
		var groups []xml.TokenReader
		if !removed {
			for _, g := range it.Groups {
				groups = append(groups, element.Text("group", g))
			}
		}
		inner = append(inner, xmlstream.Wrap(xmlstream.MultiReader(groups...), xml.StartElement{Name: xml.Name{Local: "item"}, Attr: attrs}))
	}
	return xmlstream.Wrap(xmlstream.MultiReader(inner...), xml.StartElement{
		Name: xml.Name{Space: nsRoster, Local: "query"},
		Attr: []xml.Attr{{Name: xml.Name{Local: "ver"}, Value: strconv.FormatInt(ver, 10)}},
	})
}

// rosterRequest is a roster get or set as a client sends it.
type rosterRequest struct {
	Ver   *string `xml:"ver,attr"`
	Items []struct {
		JID          string   `xml:"jid,attr"`
		Name         string   `xml:"name,attr"`
		Subscription string   `xml:"subscription,attr"`
		Groups       []string `xml:"group"`
	} `xml:"item"`
}

// handleRoster answers roster gets and sets for the user's own account
// (RFC 6121 §2).
func (m *Module) handleRoster(ctx context.Context, req router.IQRequest) (xml.TokenReader, error) {
	user := req.From.Bare()
	var q rosterRequest
	if err := req.Stanza.DecodePayload(&q); err != nil {
		return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
	}
	host, name := user.Domainpart(), user.Localpart()
	if req.Stanza.Type == "get" {
		if len(q.Items) > 0 {
			return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
		}
		if req.Session != nil {
			m.setRequested(req.Session)
		}
		items, ver, err := m.store.Roster(ctx, host, name)
		if err != nil {
			return nil, fmt.Errorf("reading the roster of %s: %w", user, err)
		}
		if q.Ver != nil && *q.Ver == strconv.FormatInt(ver, 10) {
			// RFC 6121 §2.6.3: up to date, changes come as pushes.
			return nil, nil
		}
		visible := items[:0:0]
		for _, it := range items {
			if it.InRoster {
				visible = append(visible, it)
			}
		}
		return rosterQuery(ver, visible, false), nil
	}

	// A set carries exactly one item (RFC 6121 §2.3.3).
	if len(q.Items) != 1 {
		return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
	}
	in := q.Items[0]
	contact, err := jid.Parse(in.JID)
	if err != nil || in.JID == "" {
		return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.JIDMalformed}
	}
	contact = contact.Bare()
	if in.Subscription == "remove" {
		found, err := m.removeContact(ctx, user, contact)
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}
		}
		return nil, nil
	}
	if len(in.Name) > 1023 {
		return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable}
	}
	seen := map[string]bool{}
	var groups []string
	for _, g := range in.Groups {
		g = strings.TrimSpace(g)
		if g == "" || len(g) > 1023 {
			return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable}
		}
		if seen[g] {
			return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
		}
		seen[g] = true
		groups = append(groups, g)
	}
	unlock := m.locks.lock(user)
	defer unlock()
	item, _, err := m.loadRosterItem(ctx, user, contact)
	if err != nil {
		return nil, err
	}
	before := item
	item.Contact, item.Name, item.Groups, item.InRoster = contact.String(), in.Name, groups, true
	if err := m.updateItem(ctx, user, before, item); errors.Is(err, storage.ErrQuota) {
		// RFC 6121 §2.3.3: the roster is full (roster_items, or
		// roster_bytes with this entry).
		return nil, stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint}
	} else if err != nil {
		return nil, err
	}
	return nil, nil
}

// removeContact removes a contact from the roster, cancelling the
// subscriptions both ways (RFC 6121 §2.5.2). It reports false when the
// roster had no such entry, and changes nothing when it could not be read.
func (m *Module) removeContact(ctx context.Context, user, contact jid.JID) (bool, error) {
	unlock := m.locks.lock(user)
	item, ok, err := m.loadRosterItem(ctx, user, contact)
	if err != nil || !ok {
		unlock()
		return false, err
	}
	before := item
	wasTo, wasFrom := item.To || item.PendingOut, item.From || item.PendingIn
	err = m.updateItem(ctx, user, before, RosterItem{Contact: contact.String()})
	unlock()
	if err != nil {
		return false, err
	}
	if wasFrom {
		m.core.SendPresenceFromAll(ctx, user, contact, true)
	}
	if !m.core.Serves(contact.Domainpart()) {
		return true, nil
	}
	if wasTo {
		m.inboundSubscription(ctx, &element.Stanza{Name: "presence", Type: "unsubscribe", From: user, To: contact})
	}
	if wasFrom {
		m.inboundSubscription(ctx, &element.Stanza{Name: "presence", Type: "unsubscribed", From: user, To: contact})
	}
	return true, nil
}
