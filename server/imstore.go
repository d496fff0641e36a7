package server

import (
	"context"
	"time"

	"ottr.im/ottr/config"
	"ottr.im/ottr/storage"
)

// The storage the IM features consume. Each interface belongs to the
// feature named in its comment; storage/sqlite satisfies them all, and a
// PostgreSQL store can follow without touching feature code. Users are
// identified by host and nodeprepped username; contacts by their bare JID
// string. Every method that writes returns only after the change is
// durable.

// RosterItem is one roster entry and its subscription state (RFC 6121
// Appendix A); see storage.RosterItem.
type RosterItem = storage.RosterItem

// RosterStore holds rosters (roster and presence subscriptions feature).
type RosterStore interface {
	// Roster returns the user's entries (all of them, InRoster or not,
	// ordered by contact) and the roster version (0 for a new roster).
	Roster(ctx context.Context, host, user string) ([]RosterItem, int64, error)
	// RosterItem returns one entry; ok is false when there is none.
	RosterItem(ctx context.Context, host, user, contact string) (item RosterItem, ok bool, err error)
	// PutRosterItem creates or replaces the entry for item.Contact and
	// returns the new roster version (previous + 1), unless that breaks q
	// (storage.Quota, each entry counting as its Size): then it changes
	// nothing and returns an error wrapping storage.ErrQuota.
	PutRosterItem(ctx context.Context, host, user string, item RosterItem, q storage.Quota) (ver int64, err error)
	// DeleteRosterItem removes the entry (no error if absent) and returns
	// the new roster version.
	DeleteRosterItem(ctx context.Context, host, user, contact string) (ver int64, err error)
}

// OfflineMessage is one stored message (XEP-0160); see
// storage.OfflineMessage.
type OfflineMessage = storage.OfflineMessage

// OfflineStore holds messages for users with no available resource
// (offline messages feature).
type OfflineStore interface {
	// StoreOffline appends a message unless that breaks q (count of
	// messages, bytes of their stanzas), in which case it stores nothing
	// and returns an error wrapping storage.ErrQuota. The check is part
	// of the insert's transaction.
	StoreOffline(ctx context.Context, host, user string, stanza []byte, stored time.Time, q storage.Quota) error
	// OfflinePage returns the user's oldest messages with an ID above
	// after, at most maxCount of them and maxBytes of stanzas together
	// (but at least one, if there is one).
	OfflinePage(ctx context.Context, host, user string, after int64, maxCount int, maxBytes int64) ([]OfflineMessage, error)
	// DeleteOffline removes messages by id (after they were delivered).
	DeleteOffline(ctx context.Context, host, user string, ids []int64) error
	// CountOffline returns how many messages the user has stored.
	CountOffline(ctx context.Context, host, user string) (int, error)
}

// XMLStore holds small per-user XML documents by key: the vCard
// (XEP-0054, key "vcard") and private XML (XEP-0049, key "private:" +
// namespace).
type XMLStore interface {
	// GetXML returns the stored document; ok is false when there is none.
	GetXML(ctx context.Context, host, user, key string) (doc []byte, ok bool, err error)
	// PutXML stores doc under key, replacing any previous one; an empty
	// doc deletes it. q bounds the documents of key's scope (the keys
	// sharing its text up to the first ':', such as every "private:" key);
	// beyond it PutXML stores nothing and returns an error wrapping
	// storage.ErrQuota.
	PutXML(ctx context.Context, host, user, key string, doc []byte, q storage.Quota) error
}

// BlockStore holds block lists (XEP-0191 blocking command).
type BlockStore interface {
	// BlockList returns the blocked JIDs, sorted.
	BlockList(ctx context.Context, host, user string) ([]string, error)
	// Block adds JIDs (already present ones are ignored), all or none:
	// if the list would then hold more than max it stores nothing and
	// returns an error wrapping storage.ErrQuota.
	Block(ctx context.Context, host, user string, jids []string, max int) error
	// Unblock removes JIDs; no JIDs means all.
	Unblock(ctx context.Context, host, user string, jids []string) error
}

// ActivityStore remembers when each user was last seen (XEP-0012).
type ActivityStore interface {
	// SetLastActivity records the time and status text of the user's last
	// logout.
	SetLastActivity(ctx context.Context, host, user string, at time.Time, status string) error
	// LastActivity returns it; ok is false when the user never logged out.
	LastActivity(ctx context.Context, host, user string) (at time.Time, status string, ok bool, err error)
}

// AccountStore is what the server needs of accounts: token users get
// their row at first login, and the IM features ask whether a user
// exists.
type AccountStore interface {
	EnsureAccount(ctx context.Context, host, username string) (created bool, err error)
	// AccountExists reports whether the account has a row.
	AccountExists(ctx context.Context, host, username string) (bool, error)
}

// Store is everything the server keeps.
type Store interface {
	RosterStore
	OfflineStore
	XMLStore
	BlockStore
	ActivityStore
	AccountStore
	Close() error
}

// The per-user quotas in force: the router's limits, or the config
// defaults where they are 0 (security review #6).

// rosterQuota bounds one user's roster entries, hidden ones included.
func (r *Router) rosterQuota() storage.Quota {
	def := config.DefaultLimits()
	return storage.Quota{Count: orDefault(r.limits.RosterMax, def.RosterItems), Bytes: int64(orDefault(r.limits.RosterBytes, def.RosterBytes))}
}

// offlineQuota bounds one user's offline messages.
func (r *Router) offlineQuota() storage.Quota {
	return storage.Quota{Count: r.limits.OfflineMax, Bytes: int64(orDefault(r.limits.OfflineBytes, config.DefaultLimits().OfflineBytes))}
}

// privateQuota bounds one user's private XML documents (XEP-0049).
func (r *Router) privateQuota() storage.Quota {
	def := config.DefaultLimits()
	return storage.Quota{Count: orDefault(r.limits.PrivateDocs, def.PrivateDocuments), Bytes: int64(orDefault(r.limits.PrivateTotal, def.PrivateTotalBytes))}
}

// blockMax is the most JIDs on one block list.
func (r *Router) blockMax() int {
	return orDefault(r.limits.BlockMax, config.DefaultLimits().BlockedItems)
}

func orDefault(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}
