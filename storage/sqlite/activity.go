package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// SetLastActivity records at (kept to the nanosecond) and status as the
// user's last logout, replacing any earlier record.
func (s *Store) SetLastActivity(ctx context.Context, host, user string, at time.Time, status string) error {
	_, err := s.exec(ctx,
		`INSERT INTO last_activity (host, username, at, status) VALUES (?, ?, ?, ?)
		ON CONFLICT (host, username) DO UPDATE SET at = excluded.at, status = excluded.status`,
		host, user, at.UnixNano(), status)
	if err != nil {
		return fmt.Errorf("sqlite: set last activity of %s@%s: %w", user, host, err)
	}
	return nil
}

// LastActivity returns the time, in UTC, and status of the user's last
// logout; ok is false, with a nil error, if none was recorded.
func (s *Store) LastActivity(ctx context.Context, host, user string) (at time.Time, status string, ok bool, err error) {
	var nanos int64
	err = s.db.QueryRowContext(ctx,
		`SELECT at, status FROM last_activity WHERE host = ? AND username = ?`,
		host, user).Scan(&nanos, &status)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, "", false, nil
	}
	if err != nil {
		return time.Time{}, "", false, fmt.Errorf("sqlite: last activity of %s@%s: %w", user, host, err)
	}
	return time.Unix(0, nanos).UTC(), status, true, nil
}
