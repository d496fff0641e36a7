package muc

import (
	"context"
	"errors"
	"slices"
	"time"

	"mellium.im/xmpp/jid"

	"ottr.im/ottr/element"
	"ottr.im/ottr/internal/archivewriter"
	"ottr.im/ottr/internal/mamquery"
	"ottr.im/ottr/router"
	"ottr.im/ottr/storage"
)

// The room archive (XEP-0313 on a room, §6.1.2 of XEP-0045's logging):
// the messages of a persistent room are kept in the archive store under
// the service's domain and the room's name, as a user's are under their
// host and username, within the same bounds. The writes are off the
// sender's path (internal/archivewriter, as mod/mam's): a message is
// queued with its stanza-id, chosen before it is delivered, and written
// in a batch with the others of the next few milliseconds; whatever reads
// or deletes a room's archive first waits for what was queued.

const (
	nsMAM     = "urn:xmpp:mam:2"
	nsRSM     = "http://jabber.org/protocol/rsm"
	nsForward = "urn:xmpp:forward:0"
)

var mamQuery = xmlName{nsMAM, "query"}

// archives reports whether r's messages are archived: persistent rooms
// whose owners did not turn it off, when the service keeps archives at
// all.
func (m *Module) archives(r *room) bool {
	return m.opts.ArchiveMessages > 0 && r.cfg.Persistent && !r.cfg.NoArchive
}

// archiveLimits are the bounds of one room's archive, now.
func (m *Module) archiveLimits() storage.ArchiveLimits {
	lim := storage.ArchiveLimits{Quota: storage.Quota{Count: m.opts.ArchiveMessages, Bytes: m.opts.ArchiveBytes}}
	if m.opts.ArchiveRetention > 0 {
		lim.Expire = m.opts.Now().Add(-m.opts.ArchiveRetention)
	}
	return lim
}

// archive queues a message the room broadcast for its archive; it runs
// after the service's lock is released.
func (s *service) archive(room jid.JID, id string, st *element.Stanza, at time.Time) {
	b := archivewriter.Encode(st)
	if int64(len(b)) > s.m.opts.ArchiveBytes {
		return // larger than the whole archive may hold: not archived
	}
	s.m.w.Add(storage.ArchiveEntry{Host: room.Domainpart(), User: room.Localpart(),
		Message: storage.ArchivedMessage{ID: id, With: st.From.String(), Stanza: b, Stored: at}})
}

// deleteStored deletes a stored room, its archive with it, once the
// messages queued for the archive are written. The caller holds s.mu.
func (s *service) deleteStored(ctx context.Context, r *room) error {
	s.m.w.Sync()
	return s.m.store.DeleteMUCRoom(ctx, s.domain.String(), r.jid.Localpart())
}

// Close writes the room messages queued for the archives and stops the
// writer: the server calls it at shutdown, after the sessions ended and
// before it closes the store. Messages archived afterwards are dropped.
func (m *Module) Close() { m.w.Close() }

// Flush waits until the room messages queued for the archives are
// written.
func (m *Module) Flush() { m.w.Sync() }

// tombstone replaces the archived message id of r with tomb(message) and
// reports whether the archive had it. The caller holds s.mu.
func (s *service) tombstone(ctx context.Context, r *room, id string, tomb func(*element.Stanza) *element.Stanza) (bool, error) {
	s.m.w.Sync()
	page, err := s.m.store.QueryArchive(ctx, r.jid.Domainpart(), r.jid.Localpart(),
		storage.ArchiveQuery{IDs: []string{id}, Max: 1, MaxBytes: 1 << 30})
	if errors.Is(err, storage.ErrNotFound) || err == nil && len(page.Messages) == 0 {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	orig, err := element.Unmarshal(page.Messages[0].Stanza)
	if err != nil {
		return false, err
	}
	b, err := tomb(orig).Marshal()
	if err != nil {
		return false, err
	}
	return true, s.m.store.ReplaceMUCArchived(ctx, r.jid.Domainpart(), r.jid.Localpart(), id, b)
}

// queryArchive answers a MAM query to a room (XEP-0313 §5.1.2): results
// as messages from the room, then the <fin/> of the iq result. Who may
// not enter the room may not read it: outcasts, non-members of a
// members-only room, non-occupants of a password-protected one.
func (s *service) queryArchive(ctx context.Context, from router.Target, st *element.Stanza) (*builder, error) {
	s.mu.Lock()
	r := s.rooms[st.To.Localpart()]
	var e error
	switch {
	case r == nil:
		e = errItemNotFound
	case !s.m.archives(r):
		e = errUnavailable
	default:
		aff := r.affiliation(from.JID().Bare())
		inside := r.bySession[from] != nil
		switch {
		case aff == affOutcast, r.cfg.MembersOnly && aff < affMember && !inside,
			r.cfg.Password != "" && aff < affAdmin && !inside:
			e = errForbidden
		case !s.allow(from):
			// A query costs a token, as a message does: pages of the
			// store are not read faster than the room is written.
			e = errConstraint
		}
	}
	s.mu.Unlock()
	if e != nil {
		return nil, e
	}
	if st.Type != "set" {
		return nil, errBadRequest
	}
	req, err := mamquery.Parse(st, mamquery.Limits{MaxPage: s.m.opts.ArchivePage, MaxBytes: int64(s.m.opts.SendQueueBytes / 2)})
	if err != nil {
		return nil, err
	}
	q := req.Query
	q.Expire = s.m.archiveLimits().Expire
	room := st.To.Bare()
	s.m.w.Sync()
	page, err := s.m.store.QueryArchive(ctx, room.Domainpart(), room.Localpart(), q)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, errItemNotFound
	}
	if err != nil {
		return nil, err
	}
	msgs := page.Messages
	if req.Flip {
		msgs = slices.Clone(msgs)
		slices.Reverse(msgs)
	}
	for _, am := range msgs {
		res, err := mamquery.Result(room, from.JID(), req.QueryID, am)
		if err != nil {
			s.m.logger.Error("a stored room message does not encode", "room", room.String(), "id", am.ID, "err", err)
			continue
		}
		s.m.core.Deliver(from, res)
	}
	return readBuilder(mamquery.Fin(req.QueryID, page))
}
