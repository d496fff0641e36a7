package server

import (
	"encoding/xml"
	"errors"
	"io"
	"sync"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"ottr.im/ottr/c2s"
	"ottr.im/ottr/element"
	"ottr.im/ottr/storage"
)

const nsDelay = "urn:xmpp:delay"

var errEOF = io.EOF

// storeOffline keeps a chat or normal message for an account with no
// available resource (XEP-0160). An account that does not exist gets
// service-unavailable, a full store resource-constraint.
func (r *Router) storeOffline(s *c2s.Session, st *element.Stanza) {
	owner := st.To.Bare()
	if r.limits.OfflineMax == 0 || !r.accountExists(owner) {
		r.bounce(s, st, stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable})
		return
	}
	b, err := st.Marshal()
	if err != nil {
		r.logger.Error("encoding an offline message failed", "err", err)
		r.bounce(s, st, stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError})
		return
	}
	ctx, cancel := r.ctx()
	defer cancel()
	err = r.store.StoreOffline(ctx, owner.Domainpart(), owner.Localpart(), b, r.now(), r.limits.OfflineMax)
	switch {
	case errors.Is(err, storage.ErrQuota):
		r.bounce(s, st, stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint})
	case err != nil:
		r.logger.Error("storing an offline message failed", "to", owner.String(), "err", err)
		r.bounce(s, st, stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError})
	}
}

// deliverOffline sends s its user's stored messages, each with an
// XEP-0203 delay stamp, and deletes them once they were written to the
// socket; messages the session could not take stay stored for the next
// login.
func (r *Router) deliverOffline(s *c2s.Session) {
	user := s.JID().Bare()
	ctx, cancel := r.ctx()
	defer cancel()
	msgs, err := r.store.OfflineMessages(ctx, user.Domainpart(), user.Localpart())
	if err != nil {
		r.logger.Error("reading offline messages failed", "jid", user.String(), "err", err)
		return
	}
	// A message another session of the user is delivering (or whose
	// deletion is under way) is not sent twice.
	msgs = r.claimOffline(msgs)
	if len(msgs) == 0 {
		return
	}
	// Written messages are deleted in one batch once the last callback
	// has run, off the session's writer goroutine.
	var mu sync.Mutex
	var written []int64
	pending := len(msgs)
	done := func(id int64, ok bool) {
		mu.Lock()
		defer mu.Unlock()
		if ok {
			written = append(written, id)
		} else {
			r.releaseOffline([]int64{id})
		}
		if pending--; pending == 0 && len(written) > 0 {
			ids := written
			r.background.Add(1)
			go func() {
				defer r.background.Done()
				r.deleteOffline(user, ids)
				r.releaseOffline(ids)
			}()
		}
	}
	for _, m := range msgs {
		st, err := element.Unmarshal(m.Stanza)
		if err != nil {
			r.logger.Error("a stored offline message does not parse; dropping it", "jid", user.String(), "id", m.ID, "err", err)
			done(m.ID, true)
			continue
		}
		st.To = s.JID()
		if err := st.Append(delayStamp(user.Domain(), m.Stored)); err != nil {
			r.logger.Error("stamping an offline message failed", "err", err)
		}
		id := m.ID
		if !s.DeliverThen(st, func(ok bool) { done(id, ok) }) {
			done(id, false)
		}
	}
}

// claimOffline returns the messages no other delivery holds, marking
// them held.
func (r *Router) claimOffline(msgs []OfflineMessage) []OfflineMessage {
	r.inflightMu.Lock()
	defer r.inflightMu.Unlock()
	if r.inflight == nil {
		r.inflight = make(map[int64]struct{})
	}
	out := msgs[:0:0]
	for _, m := range msgs {
		if _, held := r.inflight[m.ID]; !held {
			r.inflight[m.ID] = struct{}{}
			out = append(out, m)
		}
	}
	return out
}

// releaseOffline drops the hold on ids.
func (r *Router) releaseOffline(ids []int64) {
	r.inflightMu.Lock()
	defer r.inflightMu.Unlock()
	for _, id := range ids {
		delete(r.inflight, id)
	}
}

func (r *Router) deleteOffline(user jid.JID, ids []int64) {
	ctx, cancel := r.ctx()
	defer cancel()
	if err := r.store.DeleteOffline(ctx, user.Domainpart(), user.Localpart(), ids); err != nil {
		r.logger.Error("deleting delivered offline messages failed", "jid", user.String(), "ids", len(ids), "err", err)
	}
}

// delayStamp is the XEP-0203 element for a message stored at t.
func delayStamp(from jid.JID, t time.Time) xml.TokenReader {
	return xmlstream.Wrap(xmlstream.Token(xml.CharData("Offline Storage")), xml.StartElement{
		Name: xml.Name{Space: nsDelay, Local: "delay"},
		Attr: []xml.Attr{
			{Name: xml.Name{Local: "from"}, Value: from.String()},
			{Name: xml.Name{Local: "stamp"}, Value: t.UTC().Format("2006-01-02T15:04:05.000Z")},
		},
	})
}

// recordLogout remembers when the user's last available resource went
// away, for XEP-0012.
func (r *Router) recordLogout(s *c2s.Session, st *element.Stanza) {
	user := s.JID().Bare()
	if len(r.available(user, false)) > 0 {
		return
	}
	ctx, cancel := r.ctx()
	defer cancel()
	status := st.ChildText(element.NSClient, "status")
	if err := r.store.SetLastActivity(ctx, user.Domainpart(), user.Localpart(), r.now(), status); err != nil {
		r.logger.Error("recording last activity failed", "jid", user.String(), "err", err)
	}
}
