// Package mam is XEP-0313, Message Archive Management (urn:xmpp:mam:2,
// with urn:xmpp:mam:2#extended): each local user's archive of the
// messages they send and receive, queried by the user with XEP-0059
// result set management, with XEP-0441 preferences and XEP-0359 stanza
// ids.
//
// What is archived (XEP-0313 §7.1.1, XEP-0334): messages of type chat or
// normal with a <body/>, unless they carry <no-store/> or
// <no-permanent-store/>; any message but an error or a groupchat that
// carries <store/>. Incoming ones go to the addressee's archive, before
// they are delivered or stored offline (so that offline messages are in
// the archive too); outgoing ones to the sender's; a message between two
// local users is in both archives, one to the user's own account only
// once. The user's preferences decide per contact (default always).
//
// Each message archived on its way in gets <stanza-id
// xmlns='urn:xmpp:sid:0' by='user@host' id='…'/> with its archive id
// (XEP-0359 §5); any stanza-id the sender put there with the same 'by' is
// removed first, unless it names the same message in the archive (a
// message routed again, as stream management does with unacknowledged
// ones), which is then neither stamped nor archived again. Outgoing
// messages get no stanza-id: their addressee has no access to the
// sender's archive (XEP-0313 §3.5).
//
// Limits: a retention period (older messages are deleted a few per write
// and never served), a per-user quota in messages and bytes (when full,
// the oldest messages go first: XEP-0313 §3.2 allows no holes), a page
// size cap, and a page byte cap (half the send queue bytes).
//
// IQ (to the user's own account; another user's archive is forbidden):
// <query/> get (the form) and set (a query), <prefs/> get and set,
// <metadata/> get. Disco features on the accounts: urn:xmpp:mam:2,
// urn:xmpp:mam:2#extended, urn:xmpp:sid:0.
//
// Hooks:
//   - MessageBare, MessageFull (100, before carbons copy it): incoming;
//     a message to a full JID that is not bound is left to MessageBare,
//     which the core fires next. None stops.
//   - MessageOut (-100, after the hooks that may stop it): outgoing.
//   - AccountDeleted (0): the account's cached preferences go.
//
// Writes are off the stanza path (internal/archivewriter): a message is
// queued with its archive id (time-ordered, see archivewriter.ID), and
// one goroutine (started at the first message) writes the queue in
// batches of one transaction each; a query first waits for what was
// queued before it. Close writes the queue and stops it. The users'
// preferences, read for every message, are cached (10,000 users at most).
//
// Store: AppendArchives, QueryArchive, ArchivePrefs, SetArchivePrefs,
// RosterItem.
package mam

import (
	"context"
	"encoding/xml"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"

	"ottr.im/ottr/element"
	"ottr.im/ottr/internal/archivewriter"
	"ottr.im/ottr/internal/defaults"
	"ottr.im/ottr/router"
	"ottr.im/ottr/storage"
)

// Namespaces.
const (
	// NS is XEP-0313's namespace and disco feature; NSExtended the
	// feature of before-id, after-id, ids, flipped pages and metadata.
	NS         = "urn:xmpp:mam:2"
	NSExtended = "urn:xmpp:mam:2#extended"
	// NSSID is XEP-0359's namespace.
	NSSID     = "urn:xmpp:sid:0"
	nsForward = "urn:xmpp:forward:0"
	nsDelay   = "urn:xmpp:delay"
	nsRSM     = "http://jabber.org/protocol/rsm"
	nsData    = "jabber:x:data"
	nsHints   = "urn:xmpp:hints"
)

// Store holds the archives.
type Store interface {
	// AppendArchives adds each entry's message to the end of its user's
	// archive, in order and in one transaction, deleting the user's
	// oldest messages until the archive is within lim.Quota, and a few
	// messages of any user stored before lim.Expire. The error of an
	// entry refused (larger than lim.Quota.Bytes alone: storage.ErrQuota;
	// an ID the archive holds: storage.ErrExists) is at its index; any
	// other failure stores none and is returned alone.
	AppendArchives(ctx context.Context, entries []storage.ArchiveEntry, lim storage.ArchiveLimits) ([]error, error)
	// QueryArchive returns one page of the user's archive (see
	// storage.ArchiveQuery); an unknown ID fails with an error wrapping
	// storage.ErrNotFound.
	QueryArchive(ctx context.Context, host, user string, q storage.ArchiveQuery) (storage.ArchivePage, error)
	// ArchivePrefs returns the user's archiving preferences, the zero
	// value when none were set.
	ArchivePrefs(ctx context.Context, host, user string) (storage.ArchivePrefs, error)
	// SetArchivePrefs replaces them.
	SetArchivePrefs(ctx context.Context, host, user string, p storage.ArchivePrefs) error
	// RosterItem returns one entry of the user's roster; ok is false when
	// there is none.
	RosterItem(ctx context.Context, host, user, contact string) (item storage.RosterItem, ok bool, err error)
}

// The defaults of Options' zero values (config's defaults too).
const (
	// DefaultMaxMessages and DefaultMaxBytes are the per-user quota.
	DefaultMaxMessages = 100_000
	DefaultMaxBytes    = 64 << 20
	// DefaultRetention is how long a message is kept.
	DefaultRetention = 365 * 24 * time.Hour
	// DefaultMaxPage is the most results of one query page.
	DefaultMaxPage = 250
	// DefaultSendQueue and DefaultSendQueueBytes are the sessions' send
	// queue bounds.
	DefaultSendQueue      = 1024
	DefaultSendQueueBytes = 4 << 20
	// DefaultMaxPrefsJIDs bounds the JIDs of one user's preferences.
	DefaultMaxPrefsJIDs = 1000
)

// Options are the module's limits.
type Options struct {
	// MaxMessages and MaxBytes are one user's quota (archive_messages,
	// archive_bytes): past either, the oldest messages are deleted. 0 is
	// DefaultMaxMessages, DefaultMaxBytes.
	MaxMessages int
	MaxBytes    int64
	// Retention is how long a message is kept (archive_retention); 0 is
	// DefaultRetention.
	Retention time.Duration
	// MaxPage is the most results of one page (archive_page_size): a
	// larger RSM <max/> is capped, and a query without one gets that
	// many. 0 is DefaultMaxPage.
	MaxPage int
	// SendQueue and SendQueueBytes are the sessions' send queue bounds: a
	// page holds at most half of each. 0 is DefaultSendQueue,
	// DefaultSendQueueBytes.
	SendQueue, SendQueueBytes int
	// MaxPrefsJIDs bounds the JIDs of one user's preferences; 0 is
	// DefaultMaxPrefsJIDs.
	MaxPrefsJIDs int
	// Now is the clock of the archive's stamps; nil is time.Now.
	Now func() time.Time
}

// Module is the archive of one routing core.
type Module struct {
	core   *router.Router
	store  Store
	opts   Options
	logger *slog.Logger
	w      *archivewriter.Writer

	// prefs caches users' preferences by bare JID, read on every
	// message: at most maxCachedPrefs, all dropped when full.
	prefsMu sync.Mutex
	prefs   map[string]storage.ArchivePrefs
	// prefsGen counts the changes of preferences: a read from the store
	// that a change overtook is not cached.
	prefsGen uint64
}

// maxCachedPrefs bounds Module.prefs.
const maxCachedPrefs = 10_000

// Register adds the archive to core.
func Register(core *router.Router, store Store, opts Options) (*Module, error) {
	defaults.Positive(&opts.MaxMessages, DefaultMaxMessages)
	defaults.Positive(&opts.MaxBytes, DefaultMaxBytes)
	defaults.Positive(&opts.Retention, DefaultRetention)
	defaults.Positive(&opts.MaxPage, DefaultMaxPage)
	defaults.Positive(&opts.SendQueue, DefaultSendQueue)
	defaults.Positive(&opts.SendQueueBytes, DefaultSendQueueBytes)
	defaults.Positive(&opts.MaxPrefsJIDs, DefaultMaxPrefsJIDs)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m := &Module{
		core: core, store: store, opts: opts, logger: core.Logger().With("module", "mam"),
		prefs: make(map[string]storage.ArchivePrefs),
	}
	if err := m.registerIQ(); err != nil {
		return nil, fmt.Errorf("mam: %w", err)
	}
	for _, f := range []string{NS, NSExtended, NSSID} {
		if err := core.AddAccountFeature(f); err != nil {
			return nil, fmt.Errorf("mam: %w", err)
		}
	}
	if err := core.Hooks("mam",
		router.HookSpec{Event: router.MessageBare, Priority: 100, Fn: m.messageBare},
		router.HookSpec{Event: router.MessageFull, Priority: 100, Fn: m.messageFull},
		router.HookSpec{Event: router.MessageOut, Priority: -100, Fn: m.messageOut},
		router.HookSpec{Event: router.AccountDeleted, Priority: 0, Fn: m.accountDeleted},
	); err != nil {
		return nil, err
	}
	m.w = archivewriter.New(store, m.limits, m.logger)
	return m, nil
}

// Flush waits until the messages archived so far are written.
func (m *Module) Flush() { m.w.Sync() }

// Close writes the messages archived so far and stops the writer: the
// server calls it at shutdown, after the sessions ended and before it
// closes the store. Messages archived afterwards are dropped.
func (m *Module) Close() { m.w.Close() }

// now is the module's clock to the microsecond: the precision of the
// stamps it writes, so that a stamp read from a result finds that result
// again as a query's start or end.
func (m *Module) now() time.Time { return m.opts.Now().UTC().Truncate(time.Microsecond) }

// limits are the bounds of the archives now, for a batch of writes.
func (m *Module) limits() storage.ArchiveLimits {
	return storage.ArchiveLimits{
		Quota:  storage.Quota{Count: m.opts.MaxMessages, Bytes: m.opts.MaxBytes},
		Expire: m.expire(m.now()),
	}
}

// expire is the retention cut-off at now.
func (m *Module) expire(now time.Time) time.Time { return now.Add(-m.opts.Retention) }

// messageBare archives a message to a local bare JID.
func (m *Module) messageBare(ev *router.EventData) bool {
	m.incoming(ev.Ctx, ev.Stanza)
	return false
}

// messageFull archives a message to a bound full JID; one to a full JID
// that is not bound goes on to the bare JID rules, and messageBare.
func (m *Module) messageFull(ev *router.EventData) bool {
	if m.core.Session(ev.Stanza.To) != nil {
		m.incoming(ev.Ctx, ev.Stanza)
	}
	return false
}

// incoming archives a message in its addressee's archive and stamps it
// with its archive id.
func (m *Module) incoming(ctx context.Context, st *element.Stanza) {
	owner := st.To.Bare()
	if m.routedAgain(ctx, st, owner) {
		return
	}
	removeStanzaIDs(st, owner)
	if !archivable(st) || !m.core.AccountExists(ctx, owner) {
		return
	}
	id, ok := m.archive(ctx, owner, st.From, st)
	if !ok {
		return
	}
	sid := xmlstream.Wrap(nil, xml.StartElement{
		Name: xml.Name{Space: NSSID, Local: "stanza-id"},
		Attr: []xml.Attr{{Name: xml.Name{Local: "by"}, Value: owner.String()}, {Name: xml.Name{Local: "id"}, Value: id}},
	})
	if err := st.Append(sid); err != nil {
		m.logger.Error("adding a stanza-id failed", "err", err)
	}
}

// routedAgain reports whether st carries the stanza-id of a message of
// owner's archive from the same sender: it was archived and stamped
// already, and is routed again.
func (m *Module) routedAgain(ctx context.Context, st *element.Stanza, owner jid.JID) bool {
	ids := stanzaIDs(st, owner)
	if len(ids) != 1 {
		return false
	}
	m.w.Sync()
	page, err := m.store.QueryArchive(ctx, owner.Domainpart(), owner.Localpart(), storage.ArchiveQuery{
		IDs: ids, Max: 1, MaxBytes: 1, Expire: m.expire(m.now()),
	})
	if err != nil || len(page.Messages) != 1 {
		return false
	}
	with, err := jid.Parse(page.Messages[0].With)
	return err == nil && with.Bare().Equal(st.From.Bare())
}

// messageOut archives a message from a local session in its sender's
// archive. One to the user's own account is archived on its way in.
func (m *Module) messageOut(ev *router.EventData) bool {
	st := ev.Stanza
	if ev.From == nil {
		return false
	}
	owner := ev.From.JID().Bare()
	if ev.To.Equal(jid.JID{}) || ev.To.Bare().Equal(owner) {
		return false
	}
	removeStanzaIDs(st, owner)
	if archivable(st) {
		m.archive(ev.Ctx, owner, ev.To, st)
	}
	return false
}

// archive stores st in owner's archive, exchanged with with, if owner's
// preferences let it, and returns its archive id.
func (m *Module) archive(ctx context.Context, owner, with jid.JID, st *element.Stanza) (string, bool) {
	host, user := owner.Domainpart(), owner.Localpart()
	if ok, err := m.wanted(ctx, owner, with); err != nil {
		m.logger.Error("reading archive preferences failed", "user", owner.String(), "err", err)
		return "", false
	} else if !ok {
		return "", false
	}
	b := archivewriter.Encode(st)
	if int64(len(b)) > m.opts.MaxBytes {
		m.logger.Info("message larger than the archive quota not archived", "user", owner.String(), "bytes", len(b))
		return "", false
	}
	now := m.now()
	id := archivewriter.ID(now)
	ok := m.w.Add(storage.ArchiveEntry{Host: host, User: user, Message: storage.ArchivedMessage{
		ID: id, With: with.String(), Stanza: b, Stored: now,
	}})
	return id, ok
}

// wanted reports whether owner's preferences archive messages exchanged
// with with (XEP-0441): a JID listed in never or always decides (a bare
// JID for all its resources); otherwise the default, where roster means
// the contacts in the user's roster.
func (m *Module) wanted(ctx context.Context, owner, with jid.JID) (bool, error) {
	p, err := m.userPrefs(ctx, owner)
	if err != nil {
		return false, err
	}
	switch {
	case listed(p.Never, with):
		return false, nil
	case listed(p.Always, with):
		return true, nil
	}
	switch p.Default {
	case storage.ArchiveNever:
		return false, nil
	case storage.ArchiveRoster:
		item, ok, err := m.store.RosterItem(ctx, owner.Domainpart(), owner.Localpart(), with.Bare().String())
		return ok && item.InRoster, err
	}
	return true, nil
}

// userPrefs returns owner's preferences, from the cache when it has them.
func (m *Module) userPrefs(ctx context.Context, owner jid.JID) (storage.ArchivePrefs, error) {
	key := owner.String()
	m.prefsMu.Lock()
	p, ok := m.prefs[key]
	gen := m.prefsGen
	m.prefsMu.Unlock()
	if ok {
		return p, nil
	}
	p, err := m.store.ArchivePrefs(ctx, owner.Domainpart(), owner.Localpart())
	if err != nil {
		return p, err
	}
	m.prefsMu.Lock()
	defer m.prefsMu.Unlock()
	if gen == m.prefsGen {
		if len(m.prefs) >= maxCachedPrefs {
			clear(m.prefs)
		}
		m.prefs[key] = p
	}
	return p, nil
}

// forgetPrefs drops owner's cached preferences, which are changing.
func (m *Module) forgetPrefs(owner jid.JID) {
	m.prefsMu.Lock()
	delete(m.prefs, owner.String())
	m.prefsGen++
	m.prefsMu.Unlock()
}

// accountDeleted forgets a deleted account's cached preferences.
func (m *Module) accountDeleted(ev *router.EventData) bool {
	if ev.Deleted == nil {
		m.forgetPrefs(ev.To.Bare())
	}
	return false
}

// listed reports whether with is in jids: as it is, or by its bare JID.
func listed(jids []string, with jid.JID) bool {
	full, bare := with.String(), with.Bare().String()
	for _, j := range jids {
		if j == full || j == bare {
			return true
		}
	}
	return false
}

// archivable reports whether a message is archived (XEP-0313 §7.1.1,
// XEP-0334 §4): chat or normal with a body, unless a hint says not to
// store it; anything but an error or a groupchat message with <store/>.
func archivable(st *element.Stanza) bool {
	if st.Name != "message" {
		return false
	}
	switch st.Type {
	case "error", "groupchat":
		return false
	}
	if hasChild(st, nsHints, "store") {
		return true
	}
	switch st.Type {
	case "", "normal", "chat":
	default:
		return false
	}
	if !hasChild(st, element.NSClient, "body") && !hasChild(st, "", "body") {
		return false
	}
	return !hasChild(st, nsHints, "no-store") && !hasChild(st, nsHints, "no-permanent-store")
}

func hasChild(st *element.Stanza, space, local string) bool {
	_, ok := st.Child(space, local)
	return ok
}

// stanzaIDs returns the ids of st's stanza-id children by owner.
func stanzaIDs(st *element.Stanza, owner jid.JID) []string {
	var ids []string
	depth := 0
	for _, tok := range st.Tokens() {
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 && isStanzaIDBy(t, owner) {
				ids = append(ids, element.Attr(t, "id"))
			}
			depth++
		case xml.EndElement:
			depth--
		}
	}
	return ids
}

// removeStanzaIDs removes st's stanza-id children by owner (XEP-0359
// §5: only the entity named in 'by' may set them).
func removeStanzaIDs(st *element.Stanza, owner jid.JID) {
	st.RemoveChildren(func(start xml.StartElement) bool { return isStanzaIDBy(start, owner) })
}

// isStanzaIDBy reports whether start is a stanza-id by owner.
func isStanzaIDBy(start xml.StartElement, owner jid.JID) bool {
	if start.Name.Space != NSSID || start.Name.Local != "stanza-id" {
		return false
	}
	by, err := jid.Parse(element.Attr(start, "by"))
	return err == nil && by.Equal(owner)
}
