package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"time"

	"ottr.im/ottr/storage"
)

// StoreOffline appends a message to the user's offline queue, with stored as
// its time (kept to the nanosecond), unless that would take the user past q:
// more than q.Count messages, or more than q.Bytes bytes of stanzas
// together. Then it stores nothing and returns an error wrapping
// [storage.ErrQuota]. A q.Count below 1 refuses every message.
//
// The count, the sum and the insert run in one IMMEDIATE transaction, so
// stores that race, from any number of goroutines or processes, never take
// the queue past q.
func (s *Store) StoreOffline(ctx context.Context, host, user string, stanza []byte, stored time.Time, q storage.Quota) error {
	if stanza == nil {
		stanza = []byte{} // the column is NOT NULL
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		n, total, err := measureOffline(ctx, tx, host, user)
		if err != nil {
			return err
		}
		if err := q.Check(n, 1, total, int64(len(stanza))); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx,
			`INSERT INTO offline_messages (host, username, stanza, stored) VALUES (?, ?, ?, ?)`,
			host, user, stanza, stored.UnixNano())
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: store offline message for %s@%s: %w", user, host, err)
	}
	return nil
}

// OfflineMessages returns the user's offline messages, oldest (lowest ID)
// first, or nil if there are none. Stored times are in UTC.
func (s *Store) OfflineMessages(ctx context.Context, host, user string) ([]storage.OfflineMessage, error) {
	msgs, err := s.offlineMessages(ctx, s.db, host, user, 0, math.MaxInt64)
	if err != nil {
		return nil, fmt.Errorf("sqlite: offline messages of %s@%s: %w", user, host, err)
	}
	return msgs, nil
}

// OfflinePage returns the user's oldest offline messages with an ID above
// after, at most maxCount of them and at most maxBytes of stanzas together,
// but always the first one if there is any, however large; nil if there are
// none. A delivery reads the queue page by page, each from the last ID of
// the one before, so that it holds one page in memory at a time.
func (s *Store) OfflinePage(ctx context.Context, host, user string, after int64, maxCount int, maxBytes int64) ([]storage.OfflineMessage, error) {
	var msgs []storage.OfflineMessage
	err := s.read(ctx, func(tx *sql.Tx) error {
		// Find the last ID that fits from the sizes alone (length() of a
		// blob reads no content), then read the stanzas up to it.
		rows, err := tx.QueryContext(ctx,
			`SELECT id, length(stanza) FROM offline_messages
			WHERE host = ? AND username = ? AND id > ? ORDER BY id LIMIT ?`,
			host, user, after, maxCount)
		if err != nil {
			return err
		}
		defer rows.Close()
		last, total := int64(-1), int64(0)
		for rows.Next() {
			var (
				id   int64
				size int64
			)
			if err := rows.Scan(&id, &size); err != nil {
				return err
			}
			if last >= 0 && total+size > maxBytes {
				break
			}
			last, total = id, total+size
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if last < 0 {
			return nil
		}
		msgs, err = s.offlineMessages(ctx, tx, host, user, after, last)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: offline messages of %s@%s after %d: %w", user, host, after, err)
	}
	return msgs, nil
}

// offlineMessages returns the user's messages with after < ID <= upTo,
// oldest first.
func (s *Store) offlineMessages(ctx context.Context, q interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}, host, user string, after, upTo int64) ([]storage.OfflineMessage, error) {
	rows, err := q.QueryContext(ctx,
		`SELECT id, stanza, stored FROM offline_messages
		WHERE host = ? AND username = ? AND id > ? AND id <= ? ORDER BY id`,
		host, user, after, upTo)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var msgs []storage.OfflineMessage
	for rows.Next() {
		var (
			m      storage.OfflineMessage
			stored int64
		)
		if err := rows.Scan(&m.ID, &m.Stanza, &stored); err != nil {
			return nil, err
		}
		m.Stored = time.Unix(0, stored).UTC()
		msgs = append(msgs, m)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return msgs, nil
}

// DeleteOffline removes the user's messages with the given IDs, all or none.
// IDs that name no message of this user, including another user's messages,
// are ignored.
func (s *Store) DeleteOffline(ctx context.Context, host, user string, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx,
			`DELETE FROM offline_messages WHERE id = ? AND host = ? AND username = ?`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, id := range ids {
			if _, err := stmt.ExecContext(ctx, id, host, user); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: delete offline messages of %s@%s: %w", user, host, err)
	}
	return nil
}

// CountOffline returns how many offline messages the user has stored.
func (s *Store) CountOffline(ctx context.Context, host, user string) (int, error) {
	n, _, err := measureOffline(ctx, s.db, host, user)
	if err != nil {
		return 0, fmt.Errorf("sqlite: count offline messages of %s@%s: %w", user, host, err)
	}
	return n, nil
}

// queryer is what *sql.DB and *sql.Tx share for reading one row.
type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// measureOffline returns the number of the user's offline messages and the
// bytes of their stanzas. length() of a blob reads no content, only the
// record header.
func measureOffline(ctx context.Context, q queryer, host, user string) (n int, total int64, err error) {
	err = q.QueryRowContext(ctx,
		`SELECT count(*), coalesce(sum(length(stanza)), 0) FROM offline_messages WHERE host = ? AND username = ?`,
		host, user).Scan(&n, &total)
	return n, total, err
}
