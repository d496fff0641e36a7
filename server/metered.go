package server

import (
	"context"
	"errors"
	"time"

	"ottr.im/ottr/metrics"
	"ottr.im/ottr/storage"
	"ottr.im/ottr/storage/sqlite"
)

// meteredStore is the store as the modules and the authenticator see it:
// the operations on the login and message paths are timed
// (ottr_storage_duration_seconds), and the offline and archive writes
// counted by result.
type meteredStore struct {
	*sqlite.Store
	m *metrics.Metrics
}

// PasswordHash times the password lookup of a login.
func (s meteredStore) PasswordHash(ctx context.Context, host, username string) (string, error) {
	defer s.timed("password_hash", time.Now())
	return s.Store.PasswordHash(ctx, host, username)
}

// StoreOffline times and counts an offline write.
func (s meteredStore) StoreOffline(ctx context.Context, host, user string, stanza []byte, stored time.Time, q storage.Quota) error {
	defer s.timed("store_offline", time.Now())
	err := s.Store.StoreOffline(ctx, host, user, stanza, stored, q)
	s.m.OfflineWrite(writeResult(err))
	return err
}

// OfflinePage times the read of stored messages at login.
func (s meteredStore) OfflinePage(ctx context.Context, host, user string, after int64, maxCount int, maxBytes int64) ([]storage.OfflineMessage, error) {
	defer s.timed("offline_page", time.Now())
	return s.Store.OfflinePage(ctx, host, user, after, maxCount, maxBytes)
}

// AppendArchives times and counts a batch of archive writes.
func (s meteredStore) AppendArchives(ctx context.Context, entries []storage.ArchiveEntry, lim storage.ArchiveLimits) ([]error, error) {
	defer s.timed("append_archives", time.Now())
	errs, err := s.Store.AppendArchives(ctx, entries, lim)
	if err != nil {
		s.m.ArchiveWrites(metrics.WriteError, len(entries))
		return errs, err
	}
	stored := len(entries)
	for _, e := range errs {
		if e != nil {
			stored--
			s.m.ArchiveWrites(writeResult(e), 1)
		}
	}
	s.m.ArchiveWrites(metrics.WriteStored, stored)
	return errs, err
}

// Roster times the roster read of a login.
func (s meteredStore) Roster(ctx context.Context, host, user string) ([]storage.RosterItem, int64, error) {
	defer s.timed("roster", time.Now())
	return s.Store.Roster(ctx, host, user)
}

func (s meteredStore) timed(op string, start time.Time) { s.m.Storage(op, time.Since(start)) }

// writeResult is the result label of a store write that returned err.
func writeResult(err error) string {
	switch {
	case err == nil:
		return metrics.WriteStored
	case errors.Is(err, storage.ErrQuota):
		return metrics.WriteRefused
	}
	return metrics.WriteError
}
