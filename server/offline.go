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
	"ottr.im/ottr/config"
	"ottr.im/ottr/element"
	"ottr.im/ottr/storage"
)

const nsDelay = "urn:xmpp:delay"

var errEOF = io.EOF

// storeOffline keeps a chat or normal message for an account with no
// available resource (XEP-0160). An account that does not exist gets
// service-unavailable; a message that would take the account past its
// quota (offline_messages, offline_bytes: checked by the store in the
// insert's transaction) resource-constraint.
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
	err = r.store.StoreOffline(ctx, owner.Domainpart(), owner.Localpart(), b, r.now(), r.offlineQuota())
	switch {
	case errors.Is(err, storage.ErrQuota):
		r.bounce(s, st, stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint})
	case err != nil:
		r.logger.Error("storing an offline message failed", "to", owner.String(), "err", err)
		r.bounce(s, st, stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError})
	}
}

// Offline delivery reads the queue in pages of at most offlinePageCount
// messages and offlinePageBytes bytes, so that a login holds one page in
// memory however much is stored.
const (
	offlinePageCount = 64
	offlinePageBytes = 256 << 10
)

// deliverOffline sends s its user's stored messages, oldest first, each
// with an XEP-0203 delay stamp, and deletes them once they were written to
// the socket; messages the session could not take stay stored for the
// next login. It returns at once: the delivery runs in its own goroutine,
// paced by the session's writer, so that a backlog never overflows the
// send queue, however slowly the client reads (security review #6).
func (r *Router) deliverOffline(s *c2s.Session) {
	r.background.Add(1)
	go func() {
		defer r.background.Done()
		r.offlineDelivery(s)
	}()
}

// offlineWindow bounds the offline messages queued to a session and not
// yet written: at most half of its send queue, in count and in bytes, so
// that the rest of its traffic keeps room. One message is always let
// through when none is in flight, however large.
type offlineWindow struct {
	mu       sync.Mutex
	cond     sync.Cond
	n, bytes int
	maxN     int
	maxBytes int
	stopped  bool    // a message was not written: the session is going
	written  []int64 // ids written and not yet deleted
}

func newOfflineWindow(queue, queueBytes int) *offlineWindow {
	w := &offlineWindow{maxN: max(1, queue/2), maxBytes: max(1, queueBytes/2)}
	w.cond.L = &w.mu
	return w
}

// acquire waits until a message of size bytes may be queued and counts
// it; it reports false, counting nothing, once the delivery stopped.
func (w *offlineWindow) acquire(size int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for !w.stopped && w.n > 0 && (w.n >= w.maxN || w.bytes+size > w.maxBytes) {
		w.cond.Wait()
	}
	if w.stopped {
		return false
	}
	w.n++
	w.bytes += size
	return true
}

// done is the written callback of one message: it frees its room and
// records the outcome. It runs on the session's writer and never blocks
// for long.
func (w *offlineWindow) done(id int64, size int, ok bool) {
	w.mu.Lock()
	w.n--
	w.bytes -= size
	if ok {
		w.written = append(w.written, id)
	} else {
		w.stopped = true
	}
	w.mu.Unlock()
	w.cond.Broadcast()
}

// discard records a message that is deleted without being sent.
func (w *offlineWindow) discard(id int64) {
	w.mu.Lock()
	w.written = append(w.written, id)
	w.mu.Unlock()
}

// takeWritten returns the ids written since the last call; with wait, it
// first waits for every queued message to be written or dropped.
func (w *offlineWindow) takeWritten(wait bool) []int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	for wait && w.n > 0 {
		w.cond.Wait()
	}
	ids := w.written
	w.written = nil
	return ids
}

// offlineDelivery is deliverOffline's goroutine. It waits for its turn
// (one delivery per user at a time), then reads a page, queues its
// messages one by one as the window allows, and deletes what was written
// after each page. A message that was not written (the session closed)
// stays stored, so none is lost; the next delivery of the user starts
// only after this one deleted what it wrote, so none is sent twice.
func (r *Router) offlineDelivery(s *c2s.Session) {
	user := s.JID().Bare()
	host, name := user.Domainpart(), user.Localpart()
	done := r.offlineTurn(user.String())
	defer done()
	def := config.DefaultLimits()
	w := newOfflineWindow(orDefault(r.limits.SendQueue, def.SendQueue), orDefault(r.limits.SendQueueBytes, def.SendQueueBytes))
	var after int64
	for {
		ctx, cancel := r.ctx()
		page, err := r.store.OfflinePage(ctx, host, name, after, offlinePageCount, offlinePageBytes)
		cancel()
		if err != nil {
			r.logger.Error("reading offline messages failed", "jid", user.String(), "err", err)
			break
		}
		if len(page) == 0 {
			break
		}
		after = page[len(page)-1].ID
		if !r.queueOffline(s, w, page) {
			break
		}
		r.deleteOffline(user, w.takeWritten(false))
	}
	r.deleteOffline(user, w.takeWritten(true))
}

// queueOffline queues page to s, each message with a delay stamp, as the
// window lets it; it reports false once the session stopped taking them.
func (r *Router) queueOffline(s *c2s.Session, w *offlineWindow, page []OfflineMessage) bool {
	user := s.JID().Bare()
	for _, m := range page {
		st, err := element.Unmarshal(m.Stanza)
		if err != nil {
			r.logger.Error("a stored offline message does not parse; dropping it", "jid", user.String(), "id", m.ID, "err", err)
			w.discard(m.ID)
			continue
		}
		if r.blocks.blocks(user, st.From) {
			// Stored before the user blocked its sender: dropped as it
			// would be now (XEP-0191 §3.5).
			w.discard(m.ID)
			continue
		}
		st.To = s.JID()
		if err := st.Append(delayStamp(user.Domain(), m.Stored)); err != nil {
			r.logger.Error("stamping an offline message failed", "err", err)
		}
		size := len(m.Stanza)
		if !w.acquire(size) {
			return false
		}
		id := m.ID
		if !s.DeliverThen(st, func(ok bool) { w.done(id, size, ok) }) {
			w.done(id, size, false)
			return false
		}
	}
	return true
}

// offlineTurn waits until no other delivery of user's offline messages
// runs and returns the function that ends this one's turn. A second
// session that logs in during a delivery gets what is left after it.
func (r *Router) offlineTurn(user string) (done func()) {
	for {
		r.offlineMu.Lock()
		if r.offlineTurns == nil {
			r.offlineTurns = make(map[string]chan struct{})
		}
		busy, ok := r.offlineTurns[user]
		if !ok {
			mine := make(chan struct{})
			r.offlineTurns[user] = mine
			r.offlineMu.Unlock()
			return func() {
				r.offlineMu.Lock()
				delete(r.offlineTurns, user)
				r.offlineMu.Unlock()
				close(mine)
			}
		}
		r.offlineMu.Unlock()
		<-busy
	}
}

// deleteOffline deletes the user's messages that were written; left
// stored, they would come again at the next login.
func (r *Router) deleteOffline(user jid.JID, ids []int64) {
	if len(ids) == 0 {
		return
	}
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
