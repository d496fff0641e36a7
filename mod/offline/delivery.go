package offline

import (
	"context"
	"sync"

	"mellium.im/xmpp/jid"

	"ottr.im/ottr/element"
	"ottr.im/ottr/router"
	"ottr.im/ottr/storage"
)

// Delivery reads the queue in pages of at most pageCount messages and
// pageBytes bytes, so that a login holds one page in memory however much
// is stored.
const (
	pageCount = 64
	pageBytes = 256 << 10
)

// pacedTarget is a target that says when a stanza was written (a c2s
// session): delivery waits for that before it queues more, and deletes
// only what was written.
type pacedTarget interface {
	// DeliverThen queues st like Deliver; written is called once, from
	// the target's writer, with true once st was written or false if it
	// never will be, unless DeliverThen returns false.
	DeliverThen(st *element.Stanza, written func(ok bool)) bool
}

// deliver sends t its user's stored messages, oldest first, each with an
// XEP-0203 delay stamp, and deletes them once they were written to the
// socket; messages the session could not take stay stored for the next
// login. It returns at once: the delivery runs in its own goroutine,
// under ctx (the session's), paced by the session's writer, so that a
// backlog never overflows the send queue, however slowly the client reads
// (security review #6).
func (m *Module) deliver(ctx context.Context, t router.Target) {
	m.background.Add(1)
	go func() {
		defer m.background.Done()
		m.delivery(ctx, t)
	}()
}

// window bounds the offline messages queued to a session and not yet
// written: at most half of its send queue, in count and in bytes, so
// that the rest of its traffic keeps room. One message is always let
// through when none is in flight, however large.
type window struct {
	mu       sync.Mutex
	cond     sync.Cond
	n, bytes int
	maxN     int
	maxBytes int
	stopped  bool    // a message was not written: the session is going
	written  []int64 // ids written and not yet deleted
}

func newWindow(queue, queueBytes int) *window {
	w := &window{maxN: max(1, queue/2), maxBytes: max(1, queueBytes/2)}
	w.cond.L = &w.mu
	return w
}

// acquire waits until a message of size bytes may be queued and counts
// it; it reports false, counting nothing, once the delivery stopped.
func (w *window) acquire(size int) bool {
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
func (w *window) done(id int64, size int, ok bool) {
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
func (w *window) discard(id int64) {
	w.mu.Lock()
	w.written = append(w.written, id)
	w.mu.Unlock()
}

// takeWritten returns the ids written since the last call; with wait, it
// first waits for every queued message to be written or dropped.
func (w *window) takeWritten(wait bool) []int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	for wait && w.n > 0 {
		w.cond.Wait()
	}
	ids := w.written
	w.written = nil
	return ids
}

// delivery is deliver's goroutine. It waits for its turn (one delivery
// per user at a time), then reads a page, queues its messages one by one
// as the window allows, and deletes what was written after each page. A
// message that was not written (the session closed) stays stored, so
// none is lost; the next delivery of the user starts only after this one
// deleted what it wrote, so none is sent twice.
func (m *Module) delivery(ctx context.Context, t router.Target) {
	user := t.JID().Bare()
	host, name := user.Domainpart(), user.Localpart()
	done := m.turn(user.String())
	defer done()
	// What was written is deleted even once the session has ended, or
	// it would come again at the next login.
	deleteCtx := context.WithoutCancel(ctx)
	w := newWindow(m.opts.SendQueue, m.opts.SendQueueBytes)
	var after int64
	for {
		page, err := m.store.OfflinePage(ctx, host, name, after, pageCount, pageBytes)
		if err != nil {
			if ctx.Err() == nil {
				m.logger.Error("reading offline messages failed", "jid", user.String(), "err", err)
			}
			break
		}
		if len(page) == 0 {
			break
		}
		after = page[len(page)-1].ID
		if !m.queue(ctx, t, w, page) {
			break
		}
		m.delete(deleteCtx, user, w.takeWritten(false))
	}
	m.delete(deleteCtx, user, w.takeWritten(true))
}

// queue queues page to t, each message with a delay stamp, as the window
// lets it; it reports false once the session stopped taking them.
func (m *Module) queue(ctx context.Context, t router.Target, w *window, page []storage.OfflineMessage) bool {
	user := t.JID().Bare()
	for _, msg := range page {
		st, err := element.Unmarshal(msg.Stanza)
		if err != nil {
			m.logger.Error("a stored offline message does not parse; dropping it", "jid", user.String(), "id", msg.ID, "err", err)
			w.discard(msg.ID)
			continue
		}
		if !m.core.Admit(ctx, nil, st, user) {
			// Stored before the user blocked its sender: dropped as it
			// would be now (XEP-0191 §3.5).
			w.discard(msg.ID)
			continue
		}
		st.To = t.JID()
		if err := st.Append(delayStamp(user.Domain(), msg.Stored)); err != nil {
			m.logger.Error("stamping an offline message failed", "err", err)
		}
		size := len(msg.Stanza)
		if !w.acquire(size) {
			return false
		}
		id := msg.ID
		if !deliverThen(t, st, func(ok bool) { w.done(id, size, ok) }) {
			w.done(id, size, false)
			return false
		}
	}
	return true
}

// deliverThen queues st to t and has written called once it was written
// (or will never be); a target that does not say when it wrote counts a
// queued stanza as written.
func deliverThen(t router.Target, st *element.Stanza, written func(ok bool)) bool {
	if p, ok := t.(pacedTarget); ok {
		return p.DeliverThen(st, written)
	}
	if !t.Deliver(st) {
		return false
	}
	written(true)
	return true
}

// turn waits until no other delivery of user's offline messages runs and
// returns the function that ends this one's turn. A second session that
// logs in during a delivery gets what is left after it.
func (m *Module) turn(user string) (done func()) {
	for {
		m.turnsMu.Lock()
		busy, ok := m.turns[user]
		if !ok {
			mine := make(chan struct{})
			m.turns[user] = mine
			m.turnsMu.Unlock()
			return func() {
				m.turnsMu.Lock()
				delete(m.turns, user)
				m.turnsMu.Unlock()
				close(mine)
			}
		}
		m.turnsMu.Unlock()
		<-busy
	}
}

// delete deletes the user's messages that were written; left stored,
// they would come again at the next login.
func (m *Module) delete(ctx context.Context, user jid.JID, ids []int64) {
	if len(ids) == 0 {
		return
	}
	if err := m.store.DeleteOffline(ctx, user.Domainpart(), user.Localpart(), ids); err != nil {
		m.logger.Error("deleting delivered offline messages failed", "jid", user.String(), "ids", len(ids), "err", err)
	}
}
