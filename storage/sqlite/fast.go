package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"ottr.im/ottr/storage"
)

// PutFastToken stores a FAST token issued at t.Created. The client's
// tokens not used yet go (a newer one replaces them, XEP-0484 §3.5), as do
// the user's expired ones; past maxAgents clients for the user, the tokens
// of those that were issued one least recently go too.
func (s *Store) PutFastToken(ctx context.Context, t storage.FastToken, maxAgents int) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		if _, err := s.txExec(ctx, tx,
			`DELETE FROM fast_tokens WHERE host = ? AND username = ? AND ((agent = ? AND used = 0) OR expires <= ?)`,
			t.Host, t.Username, t.Agent, t.Created.Unix()); err != nil {
			return err
		}
		if _, err := s.txExec(ctx, tx,
			`INSERT INTO fast_tokens (host, username, agent, id, mechanism, responder, expires, used, count, created)
			VALUES (?, ?, ?, ?, ?, ?, ?, 0, 0, ?)`,
			t.Host, t.Username, t.Agent, t.ID, t.Mechanism, t.Responder, t.Expires.Unix(), t.Created.UnixNano()); err != nil {
			return err
		}
		_, err := s.txExec(ctx, tx,
			`DELETE FROM fast_tokens WHERE host = ?1 AND username = ?2 AND agent IN (
				SELECT agent FROM fast_tokens WHERE host = ?1 AND username = ?2
				GROUP BY agent ORDER BY max(created) DESC, agent LIMIT -1 OFFSET ?3)`,
			t.Host, t.Username, maxAgents)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: put FAST token of %s@%s: %w", t.Username, t.Host, err)
	}
	return nil
}

// FastTokens returns the FAST tokens stored for a user's client, expired
// ones included, the latest to expire first.
func (s *Store) FastTokens(ctx context.Context, host, user, agent string) ([]storage.FastToken, error) {
	rows, err := s.query(ctx, nil,
		`SELECT id, mechanism, responder, expires, used, count, created FROM fast_tokens
		WHERE host = ? AND username = ? AND agent = ? ORDER BY expires DESC, id`, host, user, agent)
	if err != nil {
		return nil, fmt.Errorf("sqlite: FAST tokens of %s@%s: %w", user, host, err)
	}
	defer rows.Close()
	var out []storage.FastToken
	for rows.Next() {
		t := storage.FastToken{Host: host, Username: user, Agent: agent}
		var expires, created int64
		var count int64
		if err := rows.Scan(&t.ID, &t.Mechanism, &t.Responder, &expires, &t.Used, &count, &created); err != nil {
			return nil, fmt.Errorf("sqlite: FAST tokens of %s@%s: %w", user, host, err)
		}
		t.Expires, t.Created, t.Count = time.Unix(expires, 0), time.Unix(0, created), uint64(count)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: FAST tokens of %s@%s: %w", user, host, err)
	}
	return out, nil
}

// UseFastToken records a login with the token id of a user's client: it
// is used, its count becomes count when that is not 0, and the client's
// tokens issued before it go (XEP-0484 §3.5: with one lifetime for all,
// those that expire before it). A count not above the
// token's last one is refused with an error wrapping
// storage.ErrFastReplay; an unknown token wraps storage.ErrNotFound.
func (s *Store) UseFastToken(ctx context.Context, host, user, agent string, id []byte, count uint64) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		var last, created int64
		err := s.queryRow(ctx, tx,
			`SELECT count, created FROM fast_tokens WHERE host = ? AND username = ? AND agent = ? AND id = ?`,
			host, user, agent, id).Scan(&last, &created)
		if errors.Is(err, sql.ErrNoRows) {
			return storage.ErrNotFound
		}
		if err != nil {
			return err
		}
		if count != 0 && count <= uint64(last) {
			return storage.ErrFastReplay
		}
		stored := max(uint64(last), count)
		if stored > 1<<63-1 {
			return storage.ErrFastReplay
		}
		if _, err := s.txExec(ctx, tx,
			`UPDATE fast_tokens SET used = 1, count = ? WHERE host = ? AND username = ? AND agent = ? AND id = ?`,
			int64(stored), host, user, agent, id); err != nil {
			return err
		}
		_, err = s.txExec(ctx, tx,
			`DELETE FROM fast_tokens WHERE host = ? AND username = ? AND agent = ? AND created < ?`,
			host, user, agent, created)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: use FAST token of %s@%s: %w", user, host, err)
	}
	return nil
}

// DeleteFastToken removes one token of a user's client (XEP-0484
// invalidation); it is no error if there is none.
func (s *Store) DeleteFastToken(ctx context.Context, host, user, agent string, id []byte) error {
	if _, err := s.exec(ctx, `DELETE FROM fast_tokens WHERE host = ? AND username = ? AND agent = ? AND id = ?`,
		host, user, agent, id); err != nil {
		return fmt.Errorf("sqlite: delete FAST token of %s@%s: %w", user, host, err)
	}
	return nil
}

// DeleteFastTokens removes every FAST token of a user, of every client,
// and returns how many there were: what revoking the user's logins
// (`ottr user kick`, an admin) calls. A password change and the account's
// deletion do it themselves.
func (s *Store) DeleteFastTokens(ctx context.Context, host, user string) (int, error) {
	res, err := s.exec(ctx, `DELETE FROM fast_tokens WHERE host = ? AND username = ?`, host, user)
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete FAST tokens of %s@%s: %w", user, host, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete FAST tokens of %s@%s: %w", user, host, err)
	}
	return int(n), nil
}
