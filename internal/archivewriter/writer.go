// Package archivewriter takes archive writes (XEP-0313) off the stanza
// path, for the user archives (mod/mam) and the room archives (mod/muc):
// a message is queued with its archive id, which the caller chose (the
// stanza-id it is delivered with), and one goroutine writes what is
// queued in batches, one transaction each, so that a burst costs one
// sync to disk and one round of index page writes, not one per message.
// Sync waits for what was queued before it, for a reader who must see
// every message queued (an archive query).
package archivewriter

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"ottr.im/ottr/element"
	"ottr.im/ottr/internal/randid"
	"ottr.im/ottr/storage"
)

const (
	// MaxQueue bounds the messages waiting to be written: a sender that
	// finds it full waits (the disk is slower than the senders).
	MaxQueue = 4096
	// MaxBatch bounds the messages of one transaction, and so how long it
	// holds the store's write lock.
	MaxBatch = 256
	// Linger is how long the writer waits for more messages once it has
	// fewer than MaxBatch, so that messages a few milliseconds apart
	// share a commit; Sync and Close cut it short.
	Linger = 2 * time.Millisecond
)

// Store writes batches of archived messages.
type Store interface {
	// AppendArchives adds each entry's message to the end of its owner's
	// archive, in order and in one transaction, within lim. The error of
	// an entry refused (over the quota alone, an ID the archive holds) is
	// at its index; any other failure stores none and is returned alone.
	AppendArchives(ctx context.Context, entries []storage.ArchiveEntry, lim storage.ArchiveLimits) ([]error, error)
}

// Writer is one archive write queue and the goroutine that empties it,
// started at the first message.
type Writer struct {
	store  Store
	limits func() storage.ArchiveLimits
	logger *slog.Logger

	mu      sync.Mutex
	changed sync.Cond // the queue, written or closed changed
	queue   []storage.ArchiveEntry
	queued  uint64 // entries ever queued
	written uint64 // entries ever taken off the queue and written (or dropped)
	closed  bool
	started bool
	hurry   chan struct{} // cuts the linger short (capacity 1)
	done    chan struct{} // closed when the goroutine returns
}

// New returns a writer to store; limits gives the bounds of each batch
// as it is written (the retention cut-off moves), logger is where
// messages refused or lost are told.
func New(store Store, limits func() storage.ArchiveLimits, logger *slog.Logger) *Writer {
	w := &Writer{store: store, limits: limits, logger: logger, hurry: make(chan struct{}, 1), done: make(chan struct{})}
	w.changed.L = &w.mu
	return w
}

// ID returns a new archive id for a message archived at now: 13 hex
// digits of now's Unix microseconds, then randid.New()'s 64 random bits.
// The ids of one archive then grow nearly in the order of its messages,
// so that the store's index on them takes new ones at its end (a few
// pages written per batch, where random ids dirty a page each); they are
// as hard to guess as randid's, and tell only when the message was
// archived, which whoever sees the id is told anyway.
func ID(now time.Time) string {
	const digits = 13 // 2^52 µs: until 2112
	ts := strconv.FormatUint(uint64(now.UnixMicro())&(1<<(4*digits)-1), 16)
	return strings.Repeat("0", digits-len(ts)) + ts + randid.New()
}

// Encode returns st as an archive stores it: element.AppendXML's bytes,
// the stream's serialization (a few times cheaper than element.Marshal's
// encoding/xml), with jabber:client declared on the root, which
// AppendXML leaves to the stream, so that element.Unmarshal reads the
// same stanza from either.
func Encode(st *element.Stanza) []byte {
	const decl = ` xmlns="jabber:client"`
	b := st.AppendXML(make([]byte, 0, 512))
	return slices.Insert(b, 1+len(st.Name), []byte(decl)...)
}

// Add queues e, waiting while the queue is full, and reports whether it
// did: after Close it drops it.
func (w *Writer) Add(e storage.ArchiveEntry) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(w.queue) >= MaxQueue && !w.closed {
		w.changed.Wait()
	}
	if w.closed {
		w.logger.Warn("archive closed: message not archived", "archive", e.User+"@"+e.Host)
		return false
	}
	w.queue = append(w.queue, e)
	w.queued++
	if !w.started {
		w.started = true
		go w.run()
	}
	if len(w.queue) >= MaxBatch {
		w.hasten()
	}
	w.changed.Broadcast()
	return true
}

// hasten ends the writer's linger.
func (w *Writer) hasten() {
	select {
	case w.hurry <- struct{}{}:
	default:
	}
}

// Sync waits until every entry queued before it was written.
func (w *Writer) Sync() {
	w.mu.Lock()
	defer w.mu.Unlock()
	target := w.queued
	if w.written < target {
		w.hasten()
	}
	for w.written < target {
		w.changed.Wait()
	}
}

// Close writes what is queued and stops the writer; entries added
// afterwards are dropped.
func (w *Writer) Close() {
	w.mu.Lock()
	w.closed = true
	started := w.started
	w.hasten()
	w.changed.Broadcast()
	w.mu.Unlock()
	if started {
		<-w.done
	}
}

// run writes the queue in batches until it is closed and empty.
func (w *Writer) run() {
	defer close(w.done)
	// The writes are the server's own work: they go on until the queue
	// is written, at shutdown too.
	ctx := context.Background()
	linger := time.NewTimer(Linger)
	linger.Stop()
	for {
		w.mu.Lock()
		for len(w.queue) == 0 && !w.closed {
			w.changed.Wait()
		}
		if len(w.queue) == 0 {
			w.mu.Unlock()
			return
		}
		if len(w.queue) < MaxBatch && !w.closed {
			// Wait a little for more, unless someone waits for these.
			w.mu.Unlock()
			linger.Reset(Linger)
			select {
			case <-linger.C:
			case <-w.hurry:
				linger.Stop()
			}
			w.mu.Lock()
		}
		n := min(len(w.queue), MaxBatch)
		batch := w.queue[:n:n]
		w.queue = w.queue[n:]
		if len(w.queue) == 0 {
			w.queue = nil
		}
		w.mu.Unlock()

		w.write(ctx, batch)

		w.mu.Lock()
		w.written += uint64(n)
		w.changed.Broadcast()
		w.mu.Unlock()
	}
}

// write stores one batch; what fails is logged and dropped.
func (w *Writer) write(ctx context.Context, batch []storage.ArchiveEntry) {
	errs, err := w.store.AppendArchives(ctx, batch, w.limits())
	if err != nil {
		w.logger.Error("archiving messages failed", "messages", len(batch), "err", err)
		return
	}
	for i, err := range errs {
		if err != nil {
			w.logger.Info("message not archived", "archive", batch[i].User+"@"+batch[i].Host, "bytes", len(batch[i].Message.Stanza), "err", err)
		}
	}
}
