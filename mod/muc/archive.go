package muc

import (
	"context"
	"encoding/xml"
	"errors"
	"strconv"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"ottr.im/ottr/element"
	"ottr.im/ottr/internal/archivewriter"
	"ottr.im/ottr/internal/randid"
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

// mamRequest is a MAM <query/> to a room.
type mamRequest struct {
	QueryID string    `xml:"queryid,attr"`
	Form    *dataForm `xml:"jabber:x:data x"`
	Set     *struct {
		Max    *string `xml:"max"`
		After  *string `xml:"after"`
		Before *string `xml:"before"`
	} `xml:"http://jabber.org/protocol/rsm set"`
}

// maxQueryIDBytes bounds the queryid echoed in every result.
const maxQueryIDBytes = 256

// parseMAM turns a MAM query into an archive query (XEP-0313 §4:
// start, end, with, before-id, after-id; RSM max, after, before).
func parseMAM(st *element.Stanza, maxPage int) (storage.ArchiveQuery, string, error) {
	var req mamRequest
	if err := st.DecodePayload(&req); err != nil || len(req.QueryID) > maxQueryIDBytes {
		return storage.ArchiveQuery{}, "", errBadRequest
	}
	q := storage.ArchiveQuery{Max: maxPage}
	if req.Form != nil {
		for _, f := range req.Form.Fields {
			v := ""
			if len(f.Values) > 0 {
				v = f.Values[0]
			}
			var err error
			switch f.Var {
			case "FORM_TYPE":
				if v != nsMAM {
					err = errBadRequest
				}
			case "start", "end":
				t, e := time.Parse(time.RFC3339, v)
				if e != nil {
					err = errBadRequest
				} else if f.Var == "start" {
					q.Start = t
				} else {
					q.End = t
				}
			case "with":
				if _, e := jid.Parse(v); e != nil {
					err = errBadRequest
				}
				q.With = v
			case "after-id":
				q.AfterID = v
			case "before-id":
				q.BeforeID = v
			default:
				err = stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest, Text: map[string]string{"": "unknown field " + f.Var}}
			}
			if err != nil {
				return q, "", err
			}
		}
	}
	if set := req.Set; set != nil {
		if set.Max != nil {
			n, err := strconv.Atoi(*set.Max)
			if err != nil || n < 0 {
				return q, "", errBadRequest
			}
			q.Max = min(n, maxPage)
		}
		if set.After != nil {
			q.After = *set.After
		}
		if set.Before != nil {
			q.Before, q.Last = *set.Before, true
		}
	}
	return q, req.QueryID, nil
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
	q, qid, err := parseMAM(st, s.m.opts.ArchivePage)
	if err != nil {
		return nil, err
	}
	q.MaxBytes = int64(s.m.opts.SendQueueBytes / 2)
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
	for _, am := range page.Messages {
		orig, err := element.Unmarshal(am.Stanza)
		if err != nil {
			s.m.logger.Error("a stored room message does not parse", "room", room.String(), "id", am.ID, "err", err)
			continue
		}
		var b builder
		b.open(nsMAM, "result", "queryid", qid, "id", am.ID)
		b.open(nsForward, "forwarded")
		b.leaf(nsDelay, "delay", "", "stamp", am.Stored.UTC().Format(time.RFC3339Nano))
		start := orig.Start()
		b.toks = append(b.toks, start)
		b.toks = append(b.toks, orig.Tokens()...)
		b.toks = append(b.toks, xml.EndElement{Name: start.Name})
		b.close().close()
		s.m.core.Deliver(from, newStanza("message", "", room, from.JID(), randid.New(), &b))
	}
	var b builder
	complete := ""
	if page.Complete {
		complete = "true"
	}
	b.open(nsMAM, "fin", "complete", complete)
	b.open(nsRSM, "set")
	if n := len(page.Messages); n > 0 {
		b.leaf(nsRSM, "first", page.Messages[0].ID)
		b.leaf(nsRSM, "last", page.Messages[n-1].ID)
	}
	b.leaf(nsRSM, "count", strconv.Itoa(page.Count))
	b.close().close()
	return &b, nil
}
