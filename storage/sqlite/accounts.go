package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"ottr.im/ottr/storage"
)

// Hosts and usernames are stored exactly as given and compared byte for byte:
// preparing them (case folding, stringprep/PRECIS) is the caller's job.

// CreateAccount stores a new account with the given password hash (which may
// be empty for a token-only account). It returns an error wrapping
// [storage.ErrExists] if the account is already present, leaving it as it
// was, and a [*storage.DeletionPendingError] if a deletion of the same
// account is pending (see [Store.MarkDeletionDone]).
func (s *Store) CreateAccount(ctx context.Context, host, username, passwordHash string) error {
	created, err := s.createAccount(ctx, host, username, passwordHash)
	if err == nil && !created {
		err = storage.ErrExists
	}
	if err != nil {
		return fmt.Errorf("sqlite: create account %s@%s: %w", username, host, err)
	}
	return nil
}

// createAccount stores the account unless it exists or a deletion of it is
// pending, and reports whether it did.
func (s *Store) createAccount(ctx context.Context, host, username, passwordHash string) (created bool, err error) {
	now := s.now()
	err = s.write(ctx, func(tx *sql.Tx) error {
		var exists bool
		err := tx.QueryRowContext(ctx,
			`SELECT EXISTS (SELECT 1 FROM accounts WHERE host = ? AND username = ?)`, host, username).Scan(&exists)
		if err != nil || exists {
			return err
		}
		if err := pendingDeletion(ctx, tx, host, username, now); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx,
			`INSERT INTO accounts (host, username, password_hash, created_at) VALUES (?, ?, ?, ?)`,
			host, username, passwordHash, now.Unix())
		created = err == nil
		return err
	})
	return created, err
}

// pendingDeletion returns a [*storage.DeletionPendingError] if a deletion
// of the account not done yet was recorded within [deletionPending] of now.
func pendingDeletion(ctx context.Context, tx *sql.Tx, host, username string, now time.Time) error {
	var at sql.NullInt64
	err := tx.QueryRowContext(ctx,
		`SELECT max(deleted_at) FROM account_deletions
		WHERE host = ? AND username = ? AND done = 0 AND deleted_at >= ?`,
		host, username, now.Add(-deletionPending).Unix()).Scan(&at)
	if err != nil {
		return fmt.Errorf("look for a pending deletion: %w", err)
	}
	if at.Valid {
		return &storage.DeletionPendingError{Deleted: time.Unix(at.Int64, 0).UTC()}
	}
	return nil
}

// SetPassword replaces the password hash of an existing account; an empty
// hash removes the password. It returns an error wrapping
// [storage.ErrNotFound] if there is no such account.
func (s *Store) SetPassword(ctx context.Context, host, username, passwordHash string) error {
	// The user's FAST tokens (XEP-0484) go with the old password.
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx,
			`UPDATE accounts SET password_hash = ? WHERE host = ? AND username = ?`,
			passwordHash, host, username)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			return storage.ErrNotFound
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM fast_tokens WHERE host = ? AND username = ?`, host, username)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: set password of %s@%s: %w", username, host, err)
	}
	return nil
}

// EnsureAccount stores the account with no password if it is not present
// yet, as when a token user logs in for the first time, and reports whether
// it did. An existing account is left untouched. It returns a
// [*storage.DeletionPendingError] if the account is not present and a
// deletion of it is pending (see [Store.MarkDeletionDone]).
func (s *Store) EnsureAccount(ctx context.Context, host, username string) (created bool, err error) {
	created, err = s.createAccount(ctx, host, username, "")
	if err != nil {
		return false, fmt.Errorf("sqlite: ensure account %s@%s: %w", username, host, err)
	}
	return created, nil
}

// AccountExists reports whether the account has a row, whether or not it
// has a password.
// Every bind asks it (router.Bind), so its statement is prepared once.
func (s *Store) AccountExists(ctx context.Context, host, username string) (bool, error) {
	var exists bool
	err := s.queryRow(ctx, nil,
		`SELECT EXISTS (SELECT 1 FROM accounts WHERE host = ? AND username = ?)`,
		host, username).Scan(&exists)
	if err != nil {
		return false, fmt.Errorf("sqlite: account exists %s@%s: %w", username, host, err)
	}
	return exists, nil
}

// PasswordHash returns the account's password hash, which is empty for a
// token-only account. It returns an error wrapping [storage.ErrNotFound] if
// there is no such account.
func (s *Store) PasswordHash(ctx context.Context, host, username string) (string, error) {
	var hash string
	err := s.db.QueryRowContext(ctx,
		`SELECT password_hash FROM accounts WHERE host = ? AND username = ?`,
		host, username).Scan(&hash)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("sqlite: password hash of %s@%s: %w", username, host, storage.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("sqlite: password hash of %s@%s: %w", username, host, err)
	}
	return hash, nil
}

// DeleteAccount removes the account and everything stored for it: its
// roster, offline messages, vCard and private XML, block list and last
// activity. Every other user's entry for it, on any host, is downgraded as
// a server-side unsubscribe would leave it: no subscription either way and
// nothing pending, or removed when it was not shown in the roster; their
// roster versions are bumped. The deletion is recorded (see
// [Store.AccountDeletions]) with those users, for a running server to act
// on. All of it is one transaction. It returns an error wrapping
// [storage.ErrNotFound] if there is no such account, changing nothing.
//
// The account's roster version is kept and bumped, so that a client that
// cached the old account's roster never takes a new account's for it.
func (s *Store) DeleteAccount(ctx context.Context, host, username string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx,
			`DELETE FROM accounts WHERE host = ? AND username = ?`, host, username)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			return storage.ErrNotFound
		}
		if err := deleteUserData(ctx, tx, host, username); err != nil {
			return err
		}
		return recordDeletion(ctx, tx, host, username, s.now())
	})
	if err != nil {
		return fmt.Errorf("sqlite: delete account %s@%s: %w", username, host, err)
	}
	return nil
}

// ListAccounts returns the accounts of host, or of every host if host is
// empty, sorted by host and then username in byte order (Go's string order).
// It returns no accounts and a nil error when there are none.
func (s *Store) ListAccounts(ctx context.Context, host string) ([]Account, error) {
	const columns = `SELECT host, username, password_hash <> '', created_at FROM accounts`
	var (
		rows *sql.Rows
		err  error
	)
	if host == "" {
		rows, err = s.db.QueryContext(ctx, columns+` ORDER BY host, username`)
	} else {
		rows, err = s.db.QueryContext(ctx, columns+` WHERE host = ? ORDER BY username`, host)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: list accounts: %w", err)
	}
	defer rows.Close()
	var accounts []Account
	for rows.Next() {
		var (
			a       Account
			created int64
		)
		if err := rows.Scan(&a.Host, &a.Username, &a.HasPassword, &created); err != nil {
			return nil, fmt.Errorf("sqlite: list accounts: %w", err)
		}
		a.Created = time.Unix(created, 0).UTC()
		accounts = append(accounts, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list accounts: %w", err)
	}
	return accounts, nil
}
