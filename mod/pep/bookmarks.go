package pep

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"ottr.im/ottr/element"
	"ottr.im/ottr/storage"
)

// XEP-0402 bookmarks, and XEP-0048's storage:bookmarks private XML as a
// view of them (XEP-0411): one list, kept in the PEP node, read and
// written through either.

const (
	// NodeBookmarks is the XEP-0402 node: one item per room, its id the
	// room's JID.
	NodeBookmarks = "urn:xmpp:bookmarks:1"
	nsBookmarks48 = "storage:bookmarks"
)

// bookmarksNode is the configuration XEP-0402 §5 asks for.
func (m *Module) bookmarksNode() storage.PEPNode {
	return storage.PEPNode{Node: NodeBookmarks, Access: "whitelist", MaxItems: m.opts.MaxItems, PersistItems: true, SendLast: "never"}
}

// conference48 is a room in XEP-0048's storage.
type conference48 struct {
	JID      string `xml:"jid,attr"`
	Name     string `xml:"name,attr,omitempty"`
	Autojoin string `xml:"autojoin,attr,omitempty"`
	Nick     string `xml:"nick,omitempty"`
	Password string `xml:"password,omitempty"`
}

type storage48 struct {
	XMLName     xml.Name       `xml:"storage:bookmarks storage"`
	Conferences []conference48 `xml:"conference"`
}

// conference402 is a room's item payload in XEP-0402.
type conference402 struct {
	XMLName  xml.Name `xml:"urn:xmpp:bookmarks:1 conference"`
	Name     string   `xml:"name,attr,omitempty"`
	Autojoin string   `xml:"autojoin,attr,omitempty"`
	Nick     string   `xml:"nick,omitempty"`
	Password string   `xml:"password,omitempty"`
}

func autojoin(s string) string {
	if b, _ := parseBool(s); b {
		return "true"
	}
	return ""
}

// Bookmarks serves XEP-0048's storage:bookmarks for the private XML
// module (XEP-0049) from the XEP-0402 node.
type Bookmarks struct{ m *Module }

// Bookmarks returns the XEP-0048 view of the module's bookmarks.
func (m *Module) Bookmarks() *Bookmarks { return &Bookmarks{m: m} }

// GetPrivate returns the user's bookmarks as <storage
// xmlns='storage:bookmarks'/>.
func (b *Bookmarks) GetPrivate(ctx context.Context, user jid.JID) ([]byte, error) {
	items, err := b.m.store.PEPItems(ctx, user.Domainpart(), user.Localpart(), NodeBookmarks, nil, 0)
	if err != nil {
		return nil, fmt.Errorf("pep: bookmarks of %s: %w", user, err)
	}
	var doc storage48
	for i := len(items) - 1; i >= 0; i-- {
		var c conference402
		if xml.Unmarshal(items[i].Payload, &c) != nil {
			continue // not a bookmark: not shown
		}
		doc.Conferences = append(doc.Conferences, conference48{
			JID: items[i].ID, Name: c.Name, Autojoin: autojoin(c.Autojoin), Nick: c.Nick, Password: c.Password,
		})
	}
	return xml.Marshal(doc)
}

// SetPrivate makes the rooms of doc, a <storage
// xmlns='storage:bookmarks'/>, the user's bookmarks: each is published
// to the XEP-0402 node and the items of rooms it does not hold are
// retracted, the user's resources notified. The limits of the node
// apply: a stanza.Error says which was hit.
func (b *Bookmarks) SetPrivate(ctx context.Context, user jid.JID, doc []byte) error {
	m := b.m
	var s storage48
	if err := xml.Unmarshal(doc, &s); err != nil {
		return stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
	}
	if len(s.Conferences) > m.opts.MaxItems {
		return errNotAcceptable
	}
	keep := map[string]bool{}
	for _, c := range s.Conferences {
		room, err := jid.Parse(c.JID)
		if err != nil || room.Localpart() == "" {
			continue
		}
		id := room.Bare().String()
		payload, err := xml.Marshal(conference402{Name: c.Name, Autojoin: autojoin(c.Autojoin), Nick: c.Nick, Password: c.Password})
		if err != nil {
			return fmt.Errorf("pep: encoding a bookmark: %w", err)
		}
		if len(payload) > m.opts.MaxItemBytes {
			return errNotAcceptable
		}
		keep[id] = true
		it := storage.PEPItem{ID: id, Payload: payload, Published: m.opts.Now()}
		n, _, err := m.store.PublishPEPItem(ctx, user.Domainpart(), user.Localpart(), m.bookmarksNode(), it, m.limits())
		if errors.Is(err, storage.ErrQuota) {
			return errConstraint
		}
		if err != nil {
			return fmt.Errorf("pep: storing bookmarks of %s: %w", user, err)
		}
		m.notify(ctx, user, n, build(xml.Name{Local: "item"}, attrs("id", id), element.Stored(payload)))
	}
	items, err := m.store.PEPItems(ctx, user.Domainpart(), user.Localpart(), NodeBookmarks, nil, 0)
	if err != nil {
		return fmt.Errorf("pep: bookmarks of %s: %w", user, err)
	}
	for _, it := range items {
		if keep[it.ID] {
			continue
		}
		if _, err := m.store.RetractPEPItem(ctx, user.Domainpart(), user.Localpart(), NodeBookmarks, it.ID); err != nil {
			return fmt.Errorf("pep: removing a bookmark of %s: %w", user, err)
		}
		m.notify(ctx, user, m.bookmarksNode(), build(xml.Name{Local: "retract"}, attrs("id", it.ID)))
	}
	return nil
}
