package server

import (
	"context"
	"encoding/xml"
	"errors"
	"strconv"
	"sync"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"ottr.im/ottr/c2s"
	"ottr.im/ottr/element"
	"ottr.im/ottr/storage"
)

const (
	nsBlocking       = "urn:xmpp:blocking"
	nsBlockingErrors = "urn:xmpp:blocking:errors"
)

// blockCache keeps block lists in memory, so that the check on every
// stanza reads no storage: the list of each user with a bound session
// (loaded at bind, dropped from there when the last session ends), and a
// bounded set of recently looked-up lists of users without one (stanzas
// to offline users and to stale full JIDs). Lists change only through
// the blocking command.
type blockCache struct {
	store  BlockStore
	mu     sync.RWMutex
	online map[string]map[string]bool // bare JID -> blocked JIDs
	recent map[string]map[string]bool // at most maxRecentBlockLists
}

// maxRecentBlockLists bounds the lists kept for users without a session.
const maxRecentBlockLists = 10000

func newBlockCache(store BlockStore) *blockCache {
	return &blockCache{store: store, online: make(map[string]map[string]bool), recent: make(map[string]map[string]bool)}
}

// load pins user's list in memory (at bind).
func (c *blockCache) load(user jid.JID) error {
	l, err := c.get(user)
	if err != nil {
		return err
	}
	key := user.Bare().String()
	c.mu.Lock()
	if _, ok := c.online[key]; !ok {
		c.online[key] = l
	}
	delete(c.recent, key)
	c.mu.Unlock()
	return nil
}

// forget unpins user's list (their last session ended); it stays among
// the recent ones.
func (c *blockCache) forget(user jid.JID) {
	key := user.Bare().String()
	c.mu.Lock()
	if l, ok := c.online[key]; ok {
		delete(c.online, key)
		c.remember(key, l)
	}
	c.mu.Unlock()
}

// drop forgets user's list altogether (the account was deleted): the
// next look-up reads storage.
func (c *blockCache) drop(user jid.JID) {
	key := user.Bare().String()
	c.mu.Lock()
	delete(c.online, key)
	delete(c.recent, key)
	c.mu.Unlock()
}

// remember keeps a list among the recent ones, dropping an arbitrary
// one when full. The caller holds c.mu.
func (c *blockCache) remember(key string, l map[string]bool) {
	if len(c.recent) >= maxRecentBlockLists {
		for k := range c.recent {
			delete(c.recent, k)
			break
		}
	}
	c.recent[key] = l
}

// get returns user's list from memory or, failing that, storage.
func (c *blockCache) get(user jid.JID) (map[string]bool, error) {
	key := user.Bare().String()
	c.mu.RLock()
	l, ok := c.online[key]
	if !ok {
		l, ok = c.recent[key]
	}
	c.mu.RUnlock()
	if ok {
		return l, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	jids, err := c.store.BlockList(ctx, user.Domainpart(), user.Localpart())
	if err != nil {
		return nil, err
	}
	// A user who blocks nobody (most) costs no map.
	if len(jids) > 0 {
		l = make(map[string]bool, len(jids))
		for _, j := range jids {
			l[j] = true
		}
	}
	c.mu.Lock()
	if existing, ok := c.online[key]; ok {
		l = existing
	} else if existing, ok := c.recent[key]; ok {
		l = existing
	} else {
		c.remember(key, l)
	}
	c.mu.Unlock()
	return l, nil
}

// blocks reports whether user has blocked other: its full JID, bare JID,
// domain or domain/resource (XEP-0191 §3.5, XEP-0016 matching). A user
// with no session is looked up in storage; a storage failure counts as
// not blocked.
func (c *blockCache) blocks(user, other jid.JID) bool {
	if user.Localpart() == "" {
		return false
	}
	l, err := c.get(user)
	if err != nil || l == nil {
		return false
	}
	// update changes lists in place under c.mu.
	c.mu.RLock()
	defer c.mu.RUnlock()
	return l[other.String()] || l[other.Bare().String()] || l[other.Domainpart()] ||
		(other.Resourcepart() != "" && l[other.Domainpart()+"/"+other.Resourcepart()])
}

// update changes user's in-memory list after a change was stored.
func (c *blockCache) update(user jid.JID, add []string, remove []string, all bool) {
	key := user.Bare().String()
	c.mu.Lock()
	defer c.mu.Unlock()
	table := c.online
	l, cached := table[key]
	if !cached {
		table = c.recent
		if l, cached = table[key]; !cached {
			// Not in memory: storage has the change.
			return
		}
	}
	// Changed in place, under c.mu like every read of a list: a change
	// costs what it adds or removes, not a copy of the list (security
	// review #6).
	if all {
		l = nil
	}
	if l == nil && len(add) > 0 {
		l = make(map[string]bool, len(add))
	}
	for _, j := range add {
		l[j] = true
	}
	for _, j := range remove {
		delete(l, j)
	}
	table[key] = l
}

// blockedOutbound refuses a stanza from s to an entity its user blocked
// (XEP-0191 §3.6) and reports whether it did.
func (r *Router) blockedOutbound(s *c2s.Session, st *element.Stanza) bool {
	if !r.blocks.blocks(s.JID().Bare(), st.To) {
		return false
	}
	r.bounceBlocked(s, st)
	return true
}

func (r *Router) bounceBlocked(s *c2s.Session, st *element.Stanza) {
	if st.Name == "presence" {
		return
	}
	e := stanza.Error{Type: stanza.Cancel, Condition: stanza.NotAcceptable}
	reply := st.ErrorReply(st.To, e)
	reply.To = s.JID()
	// The application condition sits inside <error/>, after the defined one.
	toks := reply.Tokens()
	if n := len(toks); n > 0 {
		if end, ok := toks[n-1].(xml.EndElement); ok && end.Name.Local == "error" {
			app, _ := collectTokens(xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Space: nsBlockingErrors, Local: "blocked"}}))
			reply.SetTokens(append(append(toks[:n-1:n-1], app...), end))
		}
	}
	r.deliver(s, reply)
}

// blockItems decodes <block/> or <unblock/> items.
type blockItems struct {
	XMLName xml.Name
	Items   []struct {
		JID string `xml:"jid,attr"`
	} `xml:"item"`
}

// handleBlocking answers XEP-0191 requests on the user's own account.
func (r *Router) handleBlocking(ctx context.Context, req IQRequest) (xml.TokenReader, error) {
	user := req.From.Bare()
	var q blockItems
	if err := decodePayload(req, &q); err != nil {
		return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
	}
	host, name := user.Domainpart(), user.Localpart()
	switch {
	case req.Stanza.Type == "get" && q.XMLName.Local == "blocklist":
		r.mu.Lock()
		if res := r.users[user.String()][req.From.Resourcepart()]; res != nil && res.sess == req.Session {
			res.blocklistRequested = true
		}
		r.mu.Unlock()
		jids, err := r.store.BlockList(ctx, host, name)
		if err != nil {
			return nil, err
		}
		return blockPayload("blocklist", jids), nil
	case req.Stanza.Type == "set" && (q.XMLName.Local == "block" || q.XMLName.Local == "unblock"):
	default:
		return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
	}
	if len(q.Items) > r.blockMax() {
		// More than a list may hold (blocked_items): refused whole.
		return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable,
			Text: map[string]string{"": "more than " + strconv.Itoa(r.blockMax()) + " items"}}
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
		err := r.store.Block(ctx, host, name, jids, r.blockMax())
		if errors.Is(err, storage.ErrQuota) {
			// The list would pass blocked_items: nothing was added.
			return nil, stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint}
		}
		if err != nil {
			return nil, err
		}
		r.blocks.update(user, jids, nil, false)
		// Blocked contacts stop seeing the user online (XEP-0191 §3.3).
		r.presenceAfterBlock(user)
	} else {
		wasBlocked := r.blockedContacts(user)
		if err := r.store.Unblock(ctx, host, name, jids); err != nil {
			return nil, err
		}
		r.blocks.update(user, nil, jids, len(jids) == 0)
		r.presenceAfterUnblock(user, wasBlocked)
	}
	r.blockPush(user, q.XMLName.Local, jids)
	return nil, nil
}

// presenceAfterBlock makes the user unavailable to the entities its
// block list now matches (XEP-0191 §3.3): every available resource of a
// contact subscribed to the user's presence, or sent directed presence by
// one of its resources, that is now blocked gets unavailable presence from
// each available resource of the user. The block check stops everything
// after that, so the directed presence records go too.
func (r *Router) presenceAfterBlock(user jid.JID) {
	audience := map[string]jid.JID{}
	for _, item := range r.rosterItems(user) {
		if c, err := jid.Parse(item.Contact); err == nil && item.From {
			audience[c.String()] = c
		}
	}
	// The block check may read storage: not under r.mu.
	type record struct {
		res *resource
		key string
		to  jid.JID
	}
	var records []record
	var from []jid.JID
	r.mu.RLock()
	for _, res := range r.users[user.String()] {
		for k, j := range res.directed {
			records = append(records, record{res, k, j})
		}
		if res.available {
			from = append(from, res.sess.JID())
		}
	}
	r.mu.RUnlock()
	var blocked []record
	for _, rec := range records {
		if r.blocks.blocks(user, rec.to) {
			blocked = append(blocked, rec)
			audience[rec.to.Bare().String()] = rec.to.Bare()
		}
	}
	r.mu.Lock()
	for _, rec := range blocked {
		delete(rec.res.directed, rec.key)
	}
	r.mu.Unlock()
	if len(from) == 0 {
		return
	}
	for _, contact := range audience {
		if !r.Serves(contact.Domainpart()) {
			continue
		}
		for _, t := range r.available(contact, false) {
			if !r.blocks.blocks(user, t.JID()) {
				continue
			}
			for _, f := range from {
				r.deliver(t, &element.Stanza{Name: "presence", Type: "unavailable", From: f, To: t.JID()})
			}
		}
	}
}

// blockedContacts returns the roster entries of user whose contact the
// user's block list matches, by bare JID.
func (r *Router) blockedContacts(user jid.JID) map[string]RosterItem {
	out := map[string]RosterItem{}
	for _, item := range r.rosterItems(user) {
		if c, err := jid.Parse(item.Contact); err == nil && (item.To || item.From) && r.blocks.blocks(user, c) {
			out[c.String()] = item
		}
	}
	return out
}

// presenceAfterUnblock restores presence between the user and the
// contacts an unblock freed (XEP-0191 §3.4): a contact subscribed to the
// user gets the user's current presence, and the user's available
// resources get the presence of a contact the user is subscribed to.
func (r *Router) presenceAfterUnblock(user jid.JID, wasBlocked map[string]RosterItem) {
	for _, item := range wasBlocked {
		contact, err := jid.Parse(item.Contact)
		if err != nil || r.blocks.blocks(user, contact) {
			continue
		}
		if item.From {
			r.sendPresenceFromAll(user, contact, false)
		}
		if item.To && r.Serves(contact.Domainpart()) {
			for _, s := range r.available(user, false) {
				r.sendPresenceOf(contact, s)
			}
		}
	}
}

// blockPush tells the user's interested resources about a change.
func (r *Router) blockPush(user jid.JID, local string, jids []string) {
	r.mu.RLock()
	var targets []*c2s.Session
	for _, res := range r.users[user.String()] {
		if res.blocklistRequested {
			targets = append(targets, res.sess)
		}
	}
	r.mu.RUnlock()
	for _, t := range targets {
		push, err := element.New("iq", "set", user, t.JID(), "push"+randomID(), blockPayload(local, jids))
		if err == nil {
			r.deliver(t, push)
		}
	}
}

func blockPayload(local string, jids []string) xml.TokenReader {
	var items []xml.TokenReader
	for _, j := range jids {
		items = append(items, xmlstream.Wrap(nil, xml.StartElement{
			Name: xml.Name{Local: "item"},
			Attr: []xml.Attr{{Name: xml.Name{Local: "jid"}, Value: j}},
		}))
	}
	return xmlstream.Wrap(xmlstream.MultiReader(items...), xml.StartElement{Name: xml.Name{Space: nsBlocking, Local: local}})
}
