package storage

import (
	"errors"
	"time"
)

// ErrQuota is wrapped by implementations when a write would take a user past
// a limit the caller set, such as the number of offline messages.
var ErrQuota = errors.New("storage: quota exceeded")

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
