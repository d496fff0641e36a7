package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"ottr.im/ottr/storage"
)

// BlockList returns the JIDs the user blocked, sorted in byte order, or nil
// if there are none.
func (s *Store) BlockList(ctx context.Context, host, user string) ([]string, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT jid FROM block_list WHERE host = ? AND username = ? ORDER BY jid`,
		host, user)
	if err != nil {
		return nil, fmt.Errorf("sqlite: block list of %s@%s: %w", user, host, err)
	}
	defer rows.Close()
	var jids []string
	for rows.Next() {
		var j string
		if err := rows.Scan(&j); err != nil {
			return nil, fmt.Errorf("sqlite: block list of %s@%s: %w", user, host, err)
		}
		jids = append(jids, j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: block list of %s@%s: %w", user, host, err)
	}
	return jids, nil
}

// Block adds jids to the user's block list, all or none; JIDs already on it,
// or repeated in jids, are ignored. If the list would then hold more than
// max JIDs it stores nothing and returns an error wrapping
// [storage.ErrQuota]; a call that adds nothing new always succeeds. The
// count and the inserts run in one transaction.
func (s *Store) Block(ctx context.Context, host, user string, jids []string, max int) error {
	if len(jids) == 0 {
		return nil
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		var before int
		err := tx.QueryRowContext(ctx,
			`SELECT count(*) FROM block_list WHERE host = ? AND username = ?`,
			host, user).Scan(&before)
		if err != nil {
			return fmt.Errorf("count: %w", err)
		}
		stmt, err := tx.PrepareContext(ctx,
			`INSERT INTO block_list (host, username, jid) VALUES (?, ?, ?)
			ON CONFLICT (host, username, jid) DO NOTHING`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		added := 0
		for _, j := range jids {
			res, err := stmt.ExecContext(ctx, host, user, j)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			added += int(n)
			if added > 0 && before+added > max {
				// The transaction rolls back what was inserted.
				return fmt.Errorf("%d JIDs blocked, adding %d or more would pass the limit of %d: %w", before, added, max, storage.ErrQuota)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: block for %s@%s: %w", user, host, err)
	}
	return nil
}

// Unblock removes jids from the user's block list, all or none; JIDs not on
// it are ignored. No jids (nil or empty) clears the whole list, as an
// <unblock/> without items does in XEP-0191.
func (s *Store) Unblock(ctx context.Context, host, user string, jids []string) error {
	var err error
	if len(jids) == 0 {
		_, err = s.exec(ctx,
			`DELETE FROM block_list WHERE host = ? AND username = ?`, host, user)
	} else {
		err = s.write(ctx, func(tx *sql.Tx) error {
			stmt, err := tx.PrepareContext(ctx,
				`DELETE FROM block_list WHERE host = ? AND username = ? AND jid = ?`)
			if err != nil {
				return err
			}
			defer stmt.Close()
			for _, j := range jids {
				if _, err := stmt.ExecContext(ctx, host, user, j); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err != nil {
		return fmt.Errorf("sqlite: unblock for %s@%s: %w", user, host, err)
	}
	return nil
}
