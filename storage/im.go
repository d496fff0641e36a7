package storage

import (
	"errors"
	"fmt"
	"time"
)

// ErrQuota is wrapped by implementations when a write would take a user past
// a limit the caller set, such as the number of offline messages.
var ErrQuota = errors.New("storage: quota exceeded")

// Quota bounds what one user keeps in one store: at most Count entries (roster
// items, offline messages, documents) of at most Bytes bytes together, each
// entry counting as its Size (see the store's documentation).
//
// A write that would add an entry while Count or more are stored, or that
// would make the total larger than it was and larger than Bytes, stores
// nothing and returns an error wrapping [ErrQuota]. A write that adds no entry
// and does not grow the total always succeeds, so that a user over a quota
// lowered since can still shrink what they keep. The check and the write run
// in one transaction: writers that race never take a user past the quota.
// A Count or Bytes below 1 refuses every new entry.
type Quota struct {
	// Count is the most entries.
	Count int
	// Bytes is the most bytes of all the entries together.
	Bytes int64
}

// Check returns an error wrapping [ErrQuota] if a write that takes a user from
// n entries of total bytes to n+added entries of total+grow bytes (grow may
// be negative) breaks q. Backends call it inside the transaction of the
// write, after counting.
func (q Quota) Check(n, added int, total, grow int64) error {
	if added > 0 && n+added > q.Count {
		return fmt.Errorf("%d stored, %d more would pass the limit of %d: %w", n, added, q.Count, ErrQuota)
	}
	if grow > 0 && total+grow > q.Bytes {
		return fmt.Errorf("%d bytes stored, %d more would pass the limit of %d: %w", total, grow, q.Bytes, ErrQuota)
	}
	return nil
}

// RosterItem is one roster entry and its subscription state (RFC 6121
// Appendix A), with the pending-in request that has not been answered.
type RosterItem struct {
	// Contact is the contact's bare JID.
	Contact string
	// Name and Groups are the user's labels. Groups keep the order they were
	// stored in; an empty list reads back as nil.
	Name   string
	Groups []string
	// To: the user receives the contact's presence. From: the contact
	// receives the user's presence.
	To, From bool
	// PendingOut: the user asked to subscribe and awaits an answer
	// (ask='subscribe').
	PendingOut bool
	// PendingIn: the contact asked to subscribe and the user has not
	// answered; PendingInStanza is that request as XML, for redelivery.
	PendingIn       bool
	PendingInStanza []byte
	// Approved: the user pre-approved the contact's future request.
	Approved bool
	// InRoster is false for an entry that exists only to remember a
	// pending-in request or a pre-approval: it is not shown in the roster.
	InRoster bool
}

// Size is what the entry counts against a roster [Quota]: the bytes of its
// contact, name, groups and pending-in stanza.
func (it RosterItem) Size() int64 {
	n := len(it.Contact) + len(it.Name) + len(it.PendingInStanza)
	for _, g := range it.Groups {
		n += len(g)
	}
	return int64(n)
}

// OfflineMessage is one stored message (XEP-0160).
type OfflineMessage struct {
	// ID identifies the message among all stored messages; IDs increase in
	// the order messages were stored and are never reused.
	ID int64
	// Stanza is the message as XML, from and to set.
	Stanza []byte
	// Stored is when the message was stored, as the caller gave it.
	Stored time.Time
}
