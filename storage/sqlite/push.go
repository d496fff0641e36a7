package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"ottr.im/ottr/storage"
)

// PushRegistrations returns the user's push registrations, in the order
// they were made.
func (s *Store) PushRegistrations(ctx context.Context, host, user string) ([]storage.PushRegistration, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT service, node, options FROM push_registrations WHERE host = ? AND username = ?
		ORDER BY created, service, node`, host, user)
	if err != nil {
		return nil, fmt.Errorf("sqlite: push registrations of %s@%s: %w", user, host, err)
	}
	defer rows.Close()
	var regs []storage.PushRegistration
	for rows.Next() {
		var r storage.PushRegistration
		if err := rows.Scan(&r.Service, &r.Node, &r.Options); err != nil {
			return nil, fmt.Errorf("sqlite: push registrations of %s@%s: %w", user, host, err)
		}
		regs = append(regs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: push registrations of %s@%s: %w", user, host, err)
	}
	return regs, nil
}

// EnablePush stores a push registration for the user, replacing the
// options of one with the same service and node. A new one that would
// take the user past max registrations stores nothing and returns an
// error wrapping [storage.ErrQuota]. The count and the write run in one
// transaction.
func (s *Store) EnablePush(ctx context.Context, host, user string, reg storage.PushRegistration, max int) error {
	if reg.Options == nil {
		reg.Options = []byte{}
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		var n, same int
		err := tx.QueryRowContext(ctx,
			`SELECT count(*), count(*) FILTER (WHERE service = ? AND node = ?)
			FROM push_registrations WHERE host = ? AND username = ?`,
			reg.Service, reg.Node, host, user).Scan(&n, &same)
		if err != nil {
			return fmt.Errorf("count: %w", err)
		}
		if same == 0 && n >= max {
			return fmt.Errorf("%d registrations, the most is %d: %w", n, max, storage.ErrQuota)
		}
		_, err = tx.ExecContext(ctx,
			`INSERT INTO push_registrations (host, username, service, node, options, created)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (host, username, service, node) DO UPDATE SET options = excluded.options`,
			host, user, reg.Service, reg.Node, reg.Options, time.Now().Unix())
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: enable push for %s@%s: %w", user, host, err)
	}
	return nil
}

// DisablePush removes the user's registrations with service, only the
// one with node when node is not empty, and returns how many it removed.
func (s *Store) DisablePush(ctx context.Context, host, user, service, node string) (int, error) {
	res, err := s.exec(ctx,
		`DELETE FROM push_registrations WHERE host = ? AND username = ? AND service = ? AND (? = '' OR node = ?)`,
		host, user, service, node, node)
	if err != nil {
		return 0, fmt.Errorf("sqlite: disable push for %s@%s: %w", user, host, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("sqlite: disable push for %s@%s: %w", user, host, err)
	}
	return int(n), nil
}
