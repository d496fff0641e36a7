package upload

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"time"
)

// sweepBatch is how many slots one sweep step removes.
const sweepBatch = 500

// Start runs the sweeper until Close: it removes expired files and slots
// and those of deleted accounts, from disk first, then from the store,
// every Options.Sweep and when kicked.
func (m *Module) Start(ctx context.Context) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		t := time.NewTicker(m.opts.Sweep)
		defer t.Stop()
		for {
			m.SweepOnce(ctx)
			select {
			case <-ctx.Done():
				return
			case <-m.stop:
				return
			case <-t.C:
			case <-m.kick:
			}
		}
	}()
}

// Close stops the sweeper and waits for it.
func (m *Module) Close() {
	m.once.Do(func() { close(m.stop) })
	m.wg.Wait()
}

// SweepOnce removes what has expired now, and reports how many slots it
// removed.
func (m *Module) SweepOnce(ctx context.Context) int {
	now := m.opts.Now()
	// A slot being written expired at most SlotLifetime after it was
	// claimed (its PUT's deadline): a minute more, and its PUT is over.
	writing := now.Add(-m.opts.SlotLifetime - time.Minute)
	removed := 0
	for {
		ids, err := m.store.ExpiredUploads(ctx, now, writing, now.Add(-m.opts.FileLifetime), sweepBatch)
		if err != nil {
			if ctx.Err() == nil {
				m.logger.Error("listing expired uploads failed", "err", err)
			}
			return removed
		}
		gone := ids[:0]
		for _, id := range ids {
			if !isSlotID(id) {
				continue // never a path from the store that is not a slot's
			}
			ok := true
			for _, p := range []string{m.path(id), m.partPath(id)} {
				if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
					m.logger.Error("removing an expired upload failed", "err", err)
					ok = false
				}
			}
			if ok {
				gone = append(gone, id)
			}
		}
		if err := m.store.DeleteUploads(ctx, gone); err != nil {
			if ctx.Err() == nil {
				m.logger.Error("deleting expired uploads failed", "err", err)
			}
			return removed
		}
		removed += len(gone)
		if len(ids) < sweepBatch || len(gone) == 0 {
			if removed > 0 {
				m.logger.Info("expired uploads removed", "count", removed)
			}
			return removed
		}
	}
}
