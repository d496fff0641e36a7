// Package storage holds what every ottr storage backend shares: the sentinel
// errors and the plain data types that cross the boundary between a feature
// and the backend that persists it.
//
// The interfaces themselves live with the features that use them (the server
// declares the account store it needs, the offline queue declares its own, and
// so on), following the Go habit of defining an interface where it is
// consumed. Implementations, such as the embedded SQLite backend in
// [ottr.im/ottr/storage/sqlite] and later a PostgreSQL one, satisfy those
// interfaces; the conformance suites in [ottr.im/ottr/storage/storagetest]
// check that every implementation behaves the same way.
//
// Implementations wrap [ErrNotFound] and [ErrExists] with context, so callers
// test for them with [errors.Is], never by comparing error strings.
package storage

import (
	"errors"
	"fmt"
	"time"
)

// ErrNotFound is wrapped by implementations when the record an operation
// names does not exist.
var ErrNotFound = errors.New("storage: not found")

// ErrExists is wrapped by implementations when an operation would create a
// record that already exists.
var ErrExists = errors.New("storage: already exists")

// ErrDeletionPending is wrapped by implementations when an account would be
// created while a deletion of the same account is recorded and not done
// yet: a running server is still ending the old account's sessions, which
// may write until they are gone. The error is a [*DeletionPendingError].
var ErrDeletionPending = errors.New("storage: account deletion pending")

// DeletionPendingError is the error of creating an account whose
// deletion a running server has not finished acting on. It matches
// [ErrDeletionPending] with [errors.Is].
type DeletionPendingError struct {
	// Deleted is when the account was deleted.
	Deleted time.Time
}

// Error implements error.
func (e *DeletionPendingError) Error() string {
	return fmt.Sprintf("%v (deleted at %s)", ErrDeletionPending, e.Deleted.Format(time.RFC3339))
}

// Is reports whether target is [ErrDeletionPending].
func (e *DeletionPendingError) Is(target error) bool { return target == ErrDeletionPending }

// Account describes one stored account, as listed by an account store.
// It never carries the password hash itself.
type Account struct {
	// Host is the domain the account belongs to, as stored (already prepared
	// by the caller).
	Host string
	// Username is the localpart of the account's JID, as stored.
	Username string
	// HasPassword reports whether the account has a password hash; accounts
	// that only log in with tokens have none.
	HasPassword bool
	// Created is when the account was first stored.
	Created time.Time
}

// AccountDeletion records one account deleted with everything stored for
// it, for a running server (possibly another process than the one that
// deleted it) to end the account's sessions and tell its contacts.
type AccountDeletion struct {
	// Seq orders the deletions of a store; it increases and is never
	// reused.
	Seq int64
	// Host and Username name the deleted account, as stored.
	Host, Username string
	// Deleted is when it was deleted.
	Deleted time.Time
	// Done reports whether a server has acted on it: ended the account's
	// sessions and removed what they wrote meanwhile.
	Done bool
}

// DeletedContact is a user whose roster held a deleted account: their
// entry's subscription state before the deletion, which downgraded the
// entry to no subscription (or removed it when it was not shown in the
// roster), and their roster version after it.
type DeletedContact struct {
	// Host and Username name the user, as stored.
	Host, Username string
	// To, From, PendingOut, PendingIn and InRoster are the entry's flags
	// before the deletion (see RosterItem).
	To, From, PendingOut, PendingIn, InRoster bool
	// Version is the user's roster version after the deletion.
	Version int64
}
