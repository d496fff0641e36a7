// Package muc is XEP-0045 multi-user chat: one service per host, at a
// domain of its own (conference.<host> by default) handed to it by the
// core (router.AddDomain). Rooms live in memory; persistent ones are also
// stored (Store) and loaded at start. Occupants are local sessions: the
// service delivers to them through the core's queues and never blocks.
//
// Presence to a room is directed presence, but the presence module only
// routes presence to local hosts; this module therefore takes presence to
// its domains in a PresenceOut hook, and makes a session leave its rooms
// when the session broadcasts unavailable presence (PresenceBroadcast) or
// ends (SessionUnbound), as RFC 6121 §4.6.3 asks of directed presence.
//
// Hooks:
//   - PresenceOut (200): presence to a MUC domain; stops the chain.
//   - PresenceBroadcast (0): unavailable presence leaves every room.
//   - SessionUnbound (0): the session leaves every room.
//   - AccountDeleted (0, the event without a contact): the account's
//     affiliations go from every room, stored ones too, as everything
//     else stored for it does; bans stay (they are about the address).
//
// Besides XEP-0045 it implements XEP-0421 occupant ids, XEP-0410 self-ping,
// room vCards and avatars (XEP-0054 and XEP-0153, vcard.go) and mediated
// invitations; XEP-0249 direct invitations are messages from
// user to user and need nothing of the server.
//
// Every store and fan-out is bounded (Options): rooms per service and per
// creator, occupants per room, rooms per session, history per room in
// count and bytes, affiliations per room, a room's vCard in bytes, and a
// stanza rate per session.
package muc

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"ottr.im/ottr/element"
	"ottr.im/ottr/internal/archivewriter"
	"ottr.im/ottr/internal/defaults"
	"ottr.im/ottr/router"
	"ottr.im/ottr/storage"
)

// Namespaces.
const (
	nsMUC        = "http://jabber.org/protocol/muc"
	nsUser       = nsMUC + "#user"
	nsAdmin      = nsMUC + "#admin"
	nsOwner      = nsMUC + "#owner"
	nsRoomConfig = nsMUC + "#roomconfig"
	nsRoomInfo   = nsMUC + "#roominfo"
	nsSelfPing   = nsMUC + "#self-ping-optimization"
	nsDiscoInfo  = "http://jabber.org/protocol/disco#info"
	nsDiscoItems = "http://jabber.org/protocol/disco#items"
	nsData       = "jabber:x:data"
	nsDelay      = "urn:xmpp:delay"
	nsOccupantID = "urn:xmpp:occupant-id:0"
	nsPing       = "urn:xmpp:ping"
	nsConference = "jabber:x:conference"
	nsSID        = "urn:xmpp:sid:0"
	nsModerate0  = "urn:xmpp:message-moderate:0"
	nsModerate1  = "urn:xmpp:message-moderate:1"
	nsRetract0   = "urn:xmpp:message-retract:0"
	nsRetract1   = "urn:xmpp:message-retract:1"
	nsFasten     = "urn:xmpp:fasten:0"
)

// Defaults of the zero Options (config's defaults too).
const (
	DefaultMaxRooms        = 10_000
	DefaultMaxRoomsPerUser = 100
	DefaultMaxOccupants    = 1000
	DefaultMaxHistory      = 50
	DefaultMaxHistoryBytes = 256 << 10
	DefaultRate            = 10 // stanzas per second
	DefaultRoomsPerSession = 200
	DefaultMaxAffiliations = 10_000
	DefaultArchiveBytes    = 64 << 20
	DefaultArchivePage     = 250
	DefaultSendQueueBytes  = 4 << 20
	DefaultMaxVCardBytes   = 64 << 10
	// maxDiscoItems bounds the rooms the service lists in its
	// disco#items.
	maxDiscoItems = 1000
	// maxSessionsPerOccupant bounds the sessions of one user under one
	// nick (with occupants, the fan-out of one message).
	maxSessionsPerOccupant = 8
)

// Store keeps persistent rooms.
type Store interface {
	// MUCRooms returns every room stored for the service.
	MUCRooms(ctx context.Context, service string) ([]storage.MUCRoom, error)
	// PutMUCRoom stores a room, replacing what was stored for it, its
	// affiliations included.
	PutMUCRoom(ctx context.Context, room storage.MUCRoom) error
	// DeleteMUCRoom removes a room, its affiliations and its archive; a
	// room not stored is no error.
	DeleteMUCRoom(ctx context.Context, service, name string) error

	// MUCVCard returns the vCard of a stored room; ok is false when it
	// has none.
	MUCVCard(ctx context.Context, service, name string) (doc []byte, ok bool, err error)
	// PutMUCVCard stores the vCard of a stored room and the hash of its
	// photo, replacing any (storage.ErrNotFound for a room not stored);
	// an empty doc deletes it. DeleteMUCRoom deletes it too.
	PutMUCVCard(ctx context.Context, service, name string, doc []byte, photo string) error
	// MUCVCardPhotos returns the photo hash of each stored room with a
	// vCard, by name.
	MUCVCardPhotos(ctx context.Context, service string) (map[string]string, error)

	// The room archive is an archive of the store's (XEP-0313) whose
	// owner is the service's domain and the room's name.

	// AppendArchives adds each entry's message to the end of its
	// archive, in order and in one transaction, deleting the archive's
	// oldest messages until it is within lim.Quota, and a few messages
	// stored before lim.Expire. The error of an entry refused (larger
	// than lim.Quota.Bytes alone: storage.ErrQuota; an ID the archive
	// holds: storage.ErrExists) is at its index; any other failure stores
	// none and is returned alone.
	AppendArchives(ctx context.Context, entries []storage.ArchiveEntry, lim storage.ArchiveLimits) ([]error, error)
	// QueryArchive returns one page of the archive's messages that q
	// selects; an ID of q that names no message fails with an error
	// wrapping storage.ErrNotFound.
	QueryArchive(ctx context.Context, host, user string, q storage.ArchiveQuery) (storage.ArchivePage, error)
	// ReplaceMUCArchived replaces the stanza of the archived message id
	// of a room (a moderator's tombstone, XEP-0425); an unknown id is an
	// error wrapping storage.ErrNotFound.
	ReplaceMUCArchived(ctx context.Context, service, room, id string, stanza []byte) error
}

// Options configure the module; zero fields take the defaults above.
type Options struct {
	// Services are the MUC domains served (conference.example.org).
	Services []string
	// MaxRooms bounds the rooms of one service (limits.muc_rooms).
	MaxRooms int
	// MaxRoomsPerUser bounds the rooms of one service a user created
	// that exist at once (limits.muc_rooms_per_user).
	MaxRoomsPerUser int
	// MaxOccupants bounds the occupants of one room, whatever its own
	// max users (limits.muc_occupants).
	MaxOccupants int
	// MaxHistory bounds the messages a room keeps for the history sent
	// on join (limits.muc_history_messages); negative means 0.
	MaxHistory int
	// MaxHistoryBytes bounds those messages' bytes
	// (limits.muc_history_bytes).
	MaxHistoryBytes int
	// Rate is the stanzas per second one session may send to a service's
	// rooms, with a burst of twice as many (limits.muc_stanza_rate).
	Rate float64
	// RoomsPerSession bounds the rooms one session is in at once
	// (limits.directed_presences).
	RoomsPerSession int
	// MaxAffiliations bounds the affiliations of one room.
	MaxAffiliations int
	// ArchiveMessages bounds the messages of one room's archive
	// (limits.archive_messages); 0 keeps no room archive.
	ArchiveMessages int
	// ArchiveBytes bounds the bytes of one room's archive
	// (limits.archive_bytes); 0 is DefaultArchiveBytes.
	ArchiveBytes int64
	// ArchiveRetention is how long an archived message is kept
	// (limits.archive_retention); 0 keeps them until the quota pushes
	// them out.
	ArchiveRetention time.Duration
	// ArchivePage bounds the messages of one archive query's page
	// (limits.archive_page_size); 0 is DefaultArchivePage.
	ArchivePage int
	// SendQueueBytes is the sessions' send queue in bytes
	// (limits.send_queue_bytes): a page holds at most half; 0 is
	// DefaultSendQueueBytes.
	SendQueueBytes int
	// MaxVCardBytes bounds a room's vCard (limits.vcard_bytes); 0 is
	// DefaultMaxVCardBytes.
	MaxVCardBytes int
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// Module is the MUC module registered with one core.
type Module struct {
	core     *router.Router
	store    Store
	opts     Options
	logger   *slog.Logger
	services map[string]*service
	// w writes the room archives' messages (archive.go).
	w *archivewriter.Writer
}

// Register adds the MUC services to core: a domain handler each, its
// hooks, and the persistent rooms loaded from store.
func Register(ctx context.Context, core *router.Router, store Store, opts Options) (*Module, error) {
	defaults.Positive(&opts.MaxRooms, DefaultMaxRooms)
	defaults.Positive(&opts.MaxRoomsPerUser, DefaultMaxRoomsPerUser)
	defaults.Positive(&opts.MaxOccupants, DefaultMaxOccupants)
	defaults.Positive(&opts.MaxHistoryBytes, DefaultMaxHistoryBytes)
	defaults.Positive(&opts.RoomsPerSession, DefaultRoomsPerSession)
	defaults.Positive(&opts.MaxAffiliations, DefaultMaxAffiliations)
	defaults.Positive(&opts.ArchivePage, DefaultArchivePage)
	defaults.Positive(&opts.SendQueueBytes, DefaultSendQueueBytes)
	defaults.Positive(&opts.MaxVCardBytes, DefaultMaxVCardBytes)
	defaults.Positive(&opts.ArchiveBytes, DefaultArchiveBytes)
	if opts.MaxHistory == 0 {
		opts.MaxHistory = DefaultMaxHistory
	} else if opts.MaxHistory < 0 {
		opts.MaxHistory = 0
	}
	defaults.Positive(&opts.Rate, DefaultRate)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m := &Module{
		core:     core,
		store:    store,
		opts:     opts,
		logger:   core.Logger().With("module", "muc"),
		services: make(map[string]*service),
	}
	m.w = archivewriter.New(store, m.archiveLimits, m.logger)
	for _, d := range opts.Services {
		d = strings.ToLower(d)
		s := newService(m, d)
		if err := s.load(ctx); err != nil {
			return nil, err
		}
		if err := core.AddDomain(d, s); err != nil {
			return nil, err
		}
		m.services[d] = s
	}
	if err := core.Hooks("muc",
		router.HookSpec{Event: router.PresenceOut, Priority: 200, Fn: m.presenceOut},
		router.HookSpec{Event: router.PresenceBroadcast, Priority: 0, Fn: m.presenceBroadcast},
		router.HookSpec{Event: router.SessionUnbound, Priority: 0, Fn: m.sessionUnbound},
		router.HookSpec{Event: router.AccountDeleted, Priority: 0, Fn: m.accountDeleted},
	); err != nil {
		return nil, err
	}
	return m, nil
}

// presenceOut takes presence addressed to a MUC service.
func (m *Module) presenceOut(ev *router.EventData) bool {
	s := m.services[strings.ToLower(ev.Stanza.To.Domainpart())]
	if s == nil || ev.Stanza.To.Equal(jid.JID{}) {
		return false
	}
	s.presence(ev.Ctx, ev.From, ev.Stanza)
	return true
}

// presenceBroadcast makes a session that goes unavailable leave its
// rooms.
func (m *Module) presenceBroadcast(ev *router.EventData) bool {
	if ev.Stanza != nil && ev.Stanza.Type == "unavailable" {
		m.leaveAll(ev.Ctx, ev.Target, false)
	}
	return false
}

// sessionUnbound makes a session that ended leave its rooms.
func (m *Module) sessionUnbound(ev *router.EventData) bool {
	m.leaveAll(ev.Ctx, ev.Target, true)
	return false
}

// accountDeleted drops a deleted account's affiliations.
func (m *Module) accountDeleted(ev *router.EventData) bool {
	if ev.Deleted == nil {
		for _, s := range m.services {
			s.forget(ev.Ctx, ev.To.Bare())
		}
	}
	return false
}

func (m *Module) leaveAll(ctx context.Context, t router.Target, ended bool) {
	for _, s := range m.services {
		s.leaveAll(ctx, t, ended)
	}
}

// Rooms returns the number of rooms of the service at domain (for tests
// and metrics).
func (m *Module) Rooms(domain string) int {
	s := m.services[strings.ToLower(domain)]
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.rooms)
}

// Occupants returns the number of occupants of the room at the bare JID
// room (for tests and metrics).
func (m *Module) Occupants(room jid.JID) int {
	s := m.services[strings.ToLower(room.Domainpart())]
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.rooms[room.Localpart()]; r != nil {
		return len(r.occupants)
	}
	return 0
}

// out is one stanza to queue to one session, collected under the
// service's lock and delivered after it.
type out struct {
	t  router.Target
	st *element.Stanza
}

// deliver queues what was collected.
func (m *Module) deliver(outs []out) {
	for _, o := range outs {
		m.core.Deliver(o.t, o.st)
	}
}

// Errors the service answers with.
var (
	errBadRequest     = stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
	errNotAcceptable  = stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable}
	errForbidden      = stanza.Error{Type: stanza.Auth, Condition: stanza.Forbidden}
	errNotAllowed     = stanza.Error{Type: stanza.Cancel, Condition: stanza.NotAllowed}
	errItemNotFound   = stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}
	errConflict       = stanza.Error{Type: stanza.Cancel, Condition: stanza.Conflict}
	errUnavailable    = stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}
	errConstraint     = stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint}
	errInternal       = stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError}
	errJIDMalformed   = stanza.Error{Type: stanza.Modify, Condition: stanza.JIDMalformed}
	errNotAuthorized  = stanza.Error{Type: stanza.Auth, Condition: stanza.NotAuthorized}
	errRegistration   = stanza.Error{Type: stanza.Auth, Condition: stanza.RegistrationRequired}
	errFullRoom       = stanza.Error{Type: stanza.Wait, Condition: stanza.ServiceUnavailable}
	errNotImplemented = stanza.Error{Type: stanza.Cancel, Condition: stanza.FeatureNotImplemented}
)
