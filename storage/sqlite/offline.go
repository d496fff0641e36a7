package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"ottr.im/ottr/storage"
)

// StoreOffline appends a message to the user's offline queue, with stored as
// its time (kept to the nanosecond), unless the user already has max
// messages stored: then it stores nothing and returns an error wrapping
// [storage.ErrQuota]. A max below 1 refuses every message.
//
// The count and the insert run in one IMMEDIATE transaction, so stores that
// race, from any number of goroutines or processes, never take the queue
// past max.
func (s *Store) StoreOffline(ctx context.Context, host, user string, stanza []byte, stored time.Time, max int) error {
	if stanza == nil {
		stanza = []byte{} // the column is NOT NULL
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		n, err := countOffline(ctx, tx, host, user)
		if err != nil {
			return err
		}
		if n >= max {
			return fmt.Errorf("%d messages stored, at most %d allowed: %w", n, max, storage.ErrQuota)
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
	rows, err := s.db.QueryContext(ctx,
		`SELECT id, stanza, stored FROM offline_messages WHERE host = ? AND username = ? ORDER BY id`,
		host, user)
	if err != nil {
		return nil, fmt.Errorf("sqlite: offline messages of %s@%s: %w", user, host, err)
	}
	defer rows.Close()
	var msgs []storage.OfflineMessage
	for rows.Next() {
		var (
			m      storage.OfflineMessage
			stored int64
		)
		if err := rows.Scan(&m.ID, &m.Stanza, &stored); err != nil {
			return nil, fmt.Errorf("sqlite: offline messages of %s@%s: %w", user, host, err)
		}
		m.Stored = time.Unix(0, stored).UTC()
		msgs = append(msgs, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: offline messages of %s@%s: %w", user, host, err)
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
	n, err := countOffline(ctx, s.db, host, user)
	if err != nil {
		return 0, fmt.Errorf("sqlite: count offline messages of %s@%s: %w", user, host, err)
	}
	return n, nil
}

// queryer is what *sql.DB and *sql.Tx share for reading one row.
type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func countOffline(ctx context.Context, q queryer, host, user string) (int, error) {
	var n int
	err := q.QueryRowContext(ctx,
		`SELECT count(*) FROM offline_messages WHERE host = ? AND username = ?`,
		host, user).Scan(&n)
	return n, err
}
