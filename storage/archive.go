package storage

import "time"

// ArchivedMessage is one message of a user's archive (XEP-0313).
type ArchivedMessage struct {
	// ID is the message's archive UID, chosen by the caller: unique within
	// the user's archive (a second message with the same ID is refused
	// with an error wrapping [ErrExists]).
	ID string
	// With is the other party's JID as the message named it (bare or
	// full): its sender for an incoming message, its addressee for an
	// outgoing one.
	With string
	// Stanza is the message as XML.
	Stanza []byte
	// Stored is when the message was archived.
	Stored time.Time
}

// ArchiveEntry is a message for one user's archive, in a batch.
type ArchiveEntry struct {
	// Host and User name the archive's owner.
	Host, User string
	// Message is what is archived.
	Message ArchivedMessage
}

// ArchiveLimits bound one user's archive when a message is added: beyond
// Quota (messages, bytes of their stanzas) the oldest messages are
// deleted until it fits again, and the messages stored before Expire,
// of any user, are deleted a few at a time.
type ArchiveLimits struct {
	// Quota bounds the user's archive. A message larger than Quota.Bytes
	// alone, or a Quota.Count below 1, is refused with an error wrapping
	// [ErrQuota] and deletes nothing.
	Quota Quota
	// Expire is the retention cut-off: messages stored before it are
	// expired. The zero time expires nothing.
	Expire time.Time
}

// ArchiveQuery selects messages of a user's archive, in archive order
// (the order they were added). The filters (With, Start, End, AfterID,
// BeforeID, IDs) make the result set; After, Before, Last and the
// bounds make one page of it (XEP-0059).
type ArchiveQuery struct {
	// With keeps the messages exchanged with one JID: with a bare JID,
	// any of its resources; with a full JID, that one only. Empty: all.
	With string
	// Start and End keep the messages stored at or after Start and at or
	// before End; the zero time is no bound.
	Start, End time.Time
	// AfterID and BeforeID keep the messages added after and before the
	// messages with these IDs; IDs, when not nil, keeps only those
	// messages. An ID that names no message of the archive fails the
	// query with an error wrapping [ErrNotFound].
	AfterID, BeforeID string
	IDs               []string
	// After and Before start the page after or end it before the
	// messages with these IDs (RSM after and before); an unknown ID fails
	// as AfterID does.
	After, Before string
	// Last takes the page from the end of the range (RSM <before/>)
	// instead of its start.
	Last bool
	// Max is the most messages of the page, MaxBytes the most bytes of
	// their stanzas together (but the page holds one message, if there is
	// one, however large). A Max of 0 asks only for Count.
	Max      int
	MaxBytes int64
	// Expire hides the messages stored before it, as if they were gone
	// already; the zero time hides nothing.
	Expire time.Time
}

// ArchivePage is the answer to an ArchiveQuery.
type ArchivePage struct {
	// Messages are the page, in archive order.
	Messages []ArchivedMessage
	// Complete is true when the page reaches the end of the result set in
	// the direction of paging (its end, or its start for Last).
	Complete bool
	// Count is the number of messages of the result set.
	Count int
}

// Archive preference modes (XEP-0441): which messages are archived when
// the JID is in neither list.
const (
	ArchiveAlways = "always"
	ArchiveNever  = "never"
	ArchiveRoster = "roster"
)

// ArchivePrefs are a user's archiving preferences (XEP-0441).
type ArchivePrefs struct {
	// Default is ArchiveAlways, ArchiveNever or ArchiveRoster; empty when
	// the user never set any.
	Default string
	// Always and Never are the JIDs whose messages are always or never
	// archived, in the order given.
	Always, Never []string
}
