package blocking

import (
	"context"
	"sync"

	"mellium.im/xmpp/jid"
)

// cache keeps block lists in memory, so that the check on every stanza
// reads no storage: the list of each user with a bound session (loaded
// at bind, dropped from there when the last session ends), and a bounded
// set of recently looked-up lists of users without one (stanzas to
// offline users and to stale full JIDs). Lists change only through the
// blocking command.
type cache struct {
	store  Store
	mu     sync.RWMutex
	online map[string]map[string]bool // bare JID -> blocked JIDs
	recent map[string]map[string]bool // at most maxRecent
}

// maxRecent bounds the lists kept for users without a session.
const maxRecent = 10000

func newCache(store Store) *cache {
	return &cache{store: store, online: make(map[string]map[string]bool), recent: make(map[string]map[string]bool)}
}

// load pins user's list in memory (at bind).
func (c *cache) load(ctx context.Context, user jid.JID) error {
	l, err := c.get(ctx, user)
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
func (c *cache) forget(user jid.JID) {
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
func (c *cache) drop(user jid.JID) {
	key := user.Bare().String()
	c.mu.Lock()
	delete(c.online, key)
	delete(c.recent, key)
	c.mu.Unlock()
}

// remember keeps a list among the recent ones, dropping an arbitrary
// one when full. The caller holds c.mu.
func (c *cache) remember(key string, l map[string]bool) {
	if len(c.recent) >= maxRecent {
		for k := range c.recent {
			delete(c.recent, k)
			break
		}
	}
	c.recent[key] = l
}

// get returns user's list from memory or, failing that, storage.
func (c *cache) get(ctx context.Context, user jid.JID) (map[string]bool, error) {
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
func (c *cache) blocks(ctx context.Context, user, other jid.JID) bool {
	if user.Localpart() == "" {
		return false
	}
	l, err := c.get(ctx, user)
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
func (c *cache) update(user jid.JID, add []string, remove []string, all bool) {
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
