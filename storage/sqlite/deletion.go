package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"ottr.im/ottr/storage"
)

// deletionKept is how long a deletion stays recorded for a running server
// to act on; a server polls every second or so.
const deletionKept = 24 * time.Hour

// deletionPending bounds how long a deletion not marked done refuses the
// account's creation (see [storage.ErrDeletionPending]): a running server
// marks it done within seconds, and a server that is stuck, or that was
// stopped before it did, must not block the name for longer.
const deletionPending = 60 * time.Second

// userTables are the tables whose rows belong to one user by (host,
// username) and go with the account. roster_versions is not among them:
// the version goes on increasing (deleteUserData bumps it).
var userTables = []string{"roster_items", "offline_messages", "user_xml", "block_list", "last_activity",
	"archive", "archive_usage", "archive_prefs", "push_registrations", "pep_nodes", "pep_items",
	"fast_tokens"}

// deleteUserData removes every row stored for the user in tx and bumps
// the user's roster version if they had one.
func deleteUserData(ctx context.Context, tx *sql.Tx, host, username string) error {
	for _, table := range userTables {
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE host = ? AND username = ?`, host, username); err != nil {
			return fmt.Errorf("delete from %s: %w", table, err)
		}
	}
	// Uploaded files are removed from disk by the upload module.
	if err := markUploadsDeleted(ctx, tx, host, username); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx,
		`UPDATE roster_versions SET version = version + 1 WHERE host = ? AND username = ?`, host, username); err != nil {
		return fmt.Errorf("bump roster version: %w", err)
	}
	return nil
}

// recordDeletion downgrades every other user's entry for the deleted
// account, records the deletion with those users, and prunes old records.
func recordDeletion(ctx context.Context, tx *sql.Tx, host, username string, now time.Time) error {
	bare := username + "@" + host
	var seq int64
	err := tx.QueryRowContext(ctx,
		`INSERT INTO account_deletions (host, username, deleted_at) VALUES (?, ?, ?) RETURNING seq`,
		host, username, now.Unix()).Scan(&seq)
	if err != nil {
		return fmt.Errorf("record deletion: %w", err)
	}
	// The users whose roster holds the account, before the change.
	_, err = tx.ExecContext(ctx,
		`INSERT INTO account_deletion_contacts
			(seq, host, username, sub_to, sub_from, pending_out, pending_in, in_roster, version)
		SELECT ?, host, username, sub_to, sub_from, pending_out, pending_in, in_roster, 0
		FROM roster_items WHERE contact = ?`,
		seq, bare)
	if err != nil {
		return fmt.Errorf("record contacts: %w", err)
	}
	if err := downgradeEntries(ctx, tx, bare); err != nil {
		return err
	}
	// The new versions, for the pushes.
	_, err = tx.ExecContext(ctx,
		`UPDATE account_deletion_contacts SET version = (
			SELECT v.version FROM roster_versions v
			WHERE v.host = account_deletion_contacts.host AND v.username = account_deletion_contacts.username)
		WHERE seq = ?`, seq)
	if err != nil {
		return fmt.Errorf("record contacts' roster versions: %w", err)
	}
	_, err = tx.ExecContext(ctx,
		`DELETE FROM account_deletions WHERE deleted_at < ?`, now.Add(-deletionKept).Unix())
	if err != nil {
		return fmt.Errorf("prune old deletions: %w", err)
	}
	return nil
}

// downgradeEntries applies a server-side unsubscribe to every other
// user's entry for the account bare: an entry not shown in the roster is
// removed, the others keep their name and groups and lose every
// subscription, pending request and pre-approval. The roster version of
// each user whose entry changed is bumped.
func downgradeEntries(ctx context.Context, tx *sql.Tx, bare string) error {
	_, err := tx.ExecContext(ctx,
		`INSERT INTO roster_versions (host, username, version)
		SELECT DISTINCT host, username, 1 FROM roster_items
		WHERE contact = ? AND (in_roster = 0 OR sub_to OR sub_from OR pending_out OR pending_in OR approved)
		ON CONFLICT (host, username) DO UPDATE SET version = version + 1`, bare)
	if err != nil {
		return fmt.Errorf("bump contacts' roster versions: %w", err)
	}
	_, err = tx.ExecContext(ctx,
		`DELETE FROM roster_items WHERE contact = ? AND in_roster = 0`, bare)
	if err != nil {
		return fmt.Errorf("remove hidden entries: %w", err)
	}
	_, err = tx.ExecContext(ctx,
		`UPDATE roster_items SET sub_to = 0, sub_from = 0, pending_out = 0, pending_in = 0,
			pending_in_stanza = NULL, approved = 0
		WHERE contact = ? AND (sub_to OR sub_from OR pending_out OR pending_in OR approved)`, bare)
	if err != nil {
		return fmt.Errorf("downgrade entries: %w", err)
	}
	return nil
}

// LastAccountDeletion returns the Seq of the latest deletion recorded, or
// 0 when there is none: a server starting reads it to act only on the
// deletions made after.
func (s *Store) LastAccountDeletion(ctx context.Context) (int64, error) {
	var seq int64
	err := s.db.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM account_deletions`).Scan(&seq)
	if err != nil {
		return 0, fmt.Errorf("sqlite: last account deletion: %w", err)
	}
	return seq, nil
}

// AccountDeletions returns at most max deletions recorded after the one
// numbered after, oldest first. Records are kept for a day.
func (s *Store) AccountDeletions(ctx context.Context, after int64, max int) ([]storage.AccountDeletion, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT seq, host, username, deleted_at, done FROM account_deletions WHERE seq > ? ORDER BY seq LIMIT ?`,
		after, max)
	if err != nil {
		return nil, fmt.Errorf("sqlite: account deletions: %w", err)
	}
	defer rows.Close()
	var out []storage.AccountDeletion
	for rows.Next() {
		var (
			d  storage.AccountDeletion
			at int64
		)
		if err := rows.Scan(&d.Seq, &d.Host, &d.Username, &at, &d.Done); err != nil {
			return nil, fmt.Errorf("sqlite: account deletions: %w", err)
		}
		d.Deleted = time.Unix(at, 0).UTC()
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: account deletions: %w", err)
	}
	return out, nil
}

// DeletedContacts returns at most max of the users whose roster held the
// account of deletion seq, ordered by host then username, starting after
// the user named by afterHost and afterUser (both empty: from the first).
func (s *Store) DeletedContacts(ctx context.Context, seq int64, afterHost, afterUser string, max int) ([]storage.DeletedContact, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT host, username, sub_to, sub_from, pending_out, pending_in, in_roster, version
		FROM account_deletion_contacts
		WHERE seq = ? AND (host, username) > (?, ?)
		ORDER BY host, username LIMIT ?`,
		seq, afterHost, afterUser, max)
	if err != nil {
		return nil, fmt.Errorf("sqlite: contacts of deletion %d: %w", seq, err)
	}
	defer rows.Close()
	var out []storage.DeletedContact
	for rows.Next() {
		var c storage.DeletedContact
		if err := rows.Scan(&c.Host, &c.Username, &c.To, &c.From, &c.PendingOut, &c.PendingIn, &c.InRoster, &c.Version); err != nil {
			return nil, fmt.Errorf("sqlite: contacts of deletion %d: %w", seq, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: contacts of deletion %d: %w", seq, err)
	}
	return out, nil
}

// PurgeDeleted removes what is stored for an account that has no row
// (what the sessions of a deleted account wrote while they were being
// ended) and downgrades others' entries for it again, as DeleteAccount
// does but without recording anything, and reports whether it did: an
// account that exists (created again since) is left alone.
func (s *Store) PurgeDeleted(ctx context.Context, host, username string) (bool, error) {
	errExists := errors.New("account exists")
	err := s.write(ctx, func(tx *sql.Tx) error {
		var exists bool
		err := tx.QueryRowContext(ctx,
			`SELECT EXISTS (SELECT 1 FROM accounts WHERE host = ? AND username = ?)`, host, username).Scan(&exists)
		if err != nil {
			return err
		}
		if exists {
			return errExists
		}
		if err := deleteUserData(ctx, tx, host, username); err != nil {
			return err
		}
		return downgradeEntries(ctx, tx, username+"@"+host)
	})
	if errors.Is(err, errExists) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("sqlite: purge deleted account %s@%s: %w", username, host, err)
	}
	return true, nil
}

// MarkDeletionDone records that deletion seq was acted on: the account's
// sessions are gone and what they wrote meanwhile was removed. From then
// on the account can be created again (while the deletion is pending,
// CreateAccount and EnsureAccount refuse it for up to a minute). Marking
// a deletion that is done or pruned already changes nothing.
func (s *Store) MarkDeletionDone(ctx context.Context, seq int64) error {
	if _, err := s.exec(ctx, `UPDATE account_deletions SET done = 1 WHERE seq = ?`, seq); err != nil {
		return fmt.Errorf("sqlite: mark deletion %d done: %w", seq, err)
	}
	return nil
}

// SettleDeletions acts on the deletions up to Seq through that are not done
// when no server has sessions of the deleted accounts (one starting, or
// `ottr user add` when no server runs): what is stored for each deleted
// account without a row is removed as [Store.PurgeDeleted] does, and the
// deletions are marked done, in one transaction. It returns how many it
// marked.
func (s *Store) SettleDeletions(ctx context.Context, through int64) (int, error) {
	var n int
	err := s.write(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx,
			`SELECT DISTINCT d.host, d.username FROM account_deletions d
			WHERE d.seq <= ? AND d.done = 0
			AND NOT EXISTS (SELECT 1 FROM accounts a WHERE a.host = d.host AND a.username = d.username)`, through)
		if err != nil {
			return err
		}
		var gone [][2]string
		for rows.Next() {
			var host, username string
			if err := rows.Scan(&host, &username); err != nil {
				rows.Close()
				return err
			}
			gone = append(gone, [2]string{host, username})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, a := range gone {
			if err := deleteUserData(ctx, tx, a[0], a[1]); err != nil {
				return err
			}
			if err := downgradeEntries(ctx, tx, a[1]+"@"+a[0]); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, `UPDATE account_deletions SET done = 1 WHERE seq <= ? AND done = 0`, through)
		if err != nil {
			return err
		}
		m, err := res.RowsAffected()
		n = int(m)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: settle deletions: %w", err)
	}
	return n, nil
}
