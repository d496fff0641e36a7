package mam

import (
	"context"
	"sync"

	"ottr.im/ottr/storage"
)

// Archive writes are taken off the stanza path: a message is queued
// with its archive id (the stanza-id it is delivered with) and one
// goroutine writes what is queued in batches, one transaction each, so
// that a burst costs one sync to disk, not one per message. Queries wait
// for what was queued before them (a user sees every message they got).
const (
	// maxQueue bounds the messages waiting to be written: a sender that
	// finds it full waits (the disk is slower than the senders).
	maxQueue = 4096
	// maxBatch bounds the messages of one transaction.
	maxBatch = 256
)

// writer is the archive's write queue.
type writer struct {
	m *Module

	mu      sync.Mutex
	changed sync.Cond // the queue, written or closed changed
	queue   []storage.ArchiveEntry
	queued  uint64 // entries ever queued
	written uint64 // entries ever taken off the queue and written (or dropped)
	closed  bool
	started bool          // the goroutine runs from the first entry on
	done    chan struct{} // closed when it returns
}

func newWriter(m *Module) *writer {
	w := &writer{m: m, done: make(chan struct{})}
	w.changed.L = &w.mu
	return w
}

// add queues e, waiting while the queue is full, and reports whether it
// did: after Close it drops it.
func (w *writer) add(e storage.ArchiveEntry) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(w.queue) >= maxQueue && !w.closed {
		w.changed.Wait()
	}
	if w.closed {
		w.m.logger.Warn("archive closed: message not archived", "user", e.User+"@"+e.Host)
		return false
	}
	w.queue = append(w.queue, e)
	w.queued++
	if !w.started {
		w.started = true
		go w.run()
	}
	w.changed.Broadcast()
	return true
}

// sync waits until every entry queued before it was written.
func (w *writer) sync() {
	w.mu.Lock()
	defer w.mu.Unlock()
	target := w.queued
	for w.written < target {
		w.changed.Wait()
	}
}

// close writes what is queued and stops the writer.
func (w *writer) close() {
	w.mu.Lock()
	w.closed = true
	started := w.started
	w.changed.Broadcast()
	w.mu.Unlock()
	if started {
		<-w.done
	}
}

// run writes the queue in batches until it is closed and empty.
func (w *writer) run() {
	defer close(w.done)
	// The writes are the server's own work: they go on until the queue
	// is written, at shutdown too.
	ctx := context.Background()
	for {
		w.mu.Lock()
		for len(w.queue) == 0 && !w.closed {
			w.changed.Wait()
		}
		if len(w.queue) == 0 {
			w.mu.Unlock()
			return
		}
		n := min(len(w.queue), maxBatch)
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
func (w *writer) write(ctx context.Context, batch []storage.ArchiveEntry) {
	m := w.m
	now := m.now()
	lim := storage.ArchiveLimits{
		Quota:  storage.Quota{Count: m.opts.MaxMessages, Bytes: m.opts.MaxBytes},
		Expire: m.expire(now),
	}
	errs, err := m.store.AppendArchives(ctx, batch, lim)
	if err != nil {
		m.logger.Error("archiving messages failed", "messages", len(batch), "err", err)
		return
	}
	for i, err := range errs {
		if err != nil {
			m.logger.Info("message not archived", "user", batch[i].User+"@"+batch[i].Host, "bytes", len(batch[i].Message.Stanza), "err", err)
		}
	}
}
