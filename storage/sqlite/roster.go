package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"ottr.im/ottr/storage"
)

// rosterColumns are the columns of roster_items that make a
// [storage.RosterItem], in the order scanRosterItem reads them.
const rosterColumns = `contact, name, groups, sub_to, sub_from, pending_out, pending_in, pending_in_stanza, approved, in_roster`

// Roster returns the user's roster entries, those shown in the roster and
// those that are not (InRoster false), ordered by contact in byte order, and
// the roster version, which is 0 for a user whose roster never changed. The
// entries and the version are read from one snapshot.
func (s *Store) Roster(ctx context.Context, host, user string) ([]storage.RosterItem, int64, error) {
	var (
		items []storage.RosterItem
		ver   int64
	)
	err := s.read(ctx, func(tx *sql.Tx) error {
		var err error
		if ver, err = rosterVersion(ctx, tx, host, user); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx,
			`SELECT `+rosterColumns+` FROM roster_items WHERE host = ? AND username = ? ORDER BY contact`,
			host, user)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			item, err := scanRosterItem(rows)
			if err != nil {
				return err
			}
			items = append(items, item)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, 0, fmt.Errorf("sqlite: roster of %s@%s: %w", user, host, err)
	}
	return items, ver, nil
}

// RosterItem returns the user's entry for contact; ok is false, with a nil
// error, when there is none.
func (s *Store) RosterItem(ctx context.Context, host, user, contact string) (item storage.RosterItem, ok bool, err error) {
	row := s.db.QueryRowContext(ctx,
		`SELECT `+rosterColumns+` FROM roster_items WHERE host = ? AND username = ? AND contact = ?`,
		host, user, contact)
	item, err = scanRosterItem(row)
	if errors.Is(err, sql.ErrNoRows) {
		return storage.RosterItem{}, false, nil
	}
	if err != nil {
		return storage.RosterItem{}, false, fmt.Errorf("sqlite: roster item %s of %s@%s: %w", contact, user, host, err)
	}
	return item, true, nil
}

// rosterItemSize is the SQL for [storage.RosterItem.Size] of a row: the
// bytes of contact, name, each group and the pending-in stanza.
const rosterItemSize = `length(CAST(contact AS BLOB)) + length(CAST(name AS BLOB))
	+ coalesce((SELECT sum(length(CAST(value AS BLOB))) FROM json_each(groups)), 0)
	+ coalesce(length(pending_in_stanza), 0)`

// PutRosterItem creates or replaces, every field of it, the user's entry for
// item.Contact, and returns the new roster version: the previous one plus
// one, bumped in the same transaction.
//
// q bounds the user's entries, shown in the roster or not, each counting as
// its [storage.RosterItem.Size]: a new entry beyond q.Count, or a change that
// grows the roster past q.Bytes, stores nothing and returns an error wrapping
// [storage.ErrQuota]. The check runs in the transaction of the write.
func (s *Store) PutRosterItem(ctx context.Context, host, user string, item storage.RosterItem, q storage.Quota) (ver int64, err error) {
	groups, err := encodeGroups(item.Groups)
	if err != nil {
		return 0, fmt.Errorf("sqlite: put roster item %s of %s@%s: %w", item.Contact, user, host, err)
	}
	var stanza []byte // NULL when empty
	if len(item.PendingInStanza) > 0 {
		stanza = item.PendingInStanza
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		var (
			n             int
			total, before int64
			exists        bool
		)
		err := tx.QueryRowContext(ctx,
			`SELECT count(*), coalesce(sum(size), 0), coalesce(max(contact = ?1), 0),
				coalesce(sum(CASE WHEN contact = ?1 THEN size END), 0)
			FROM (SELECT contact, `+rosterItemSize+` AS size
				FROM roster_items WHERE host = ?2 AND username = ?3)`,
			item.Contact, host, user).Scan(&n, &total, &exists, &before)
		if err != nil {
			return fmt.Errorf("measure roster: %w", err)
		}
		added := 1
		if exists {
			added = 0
		}
		if err := q.Check(n, added, total, item.Size()-before); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx,
			`INSERT INTO roster_items (host, username, `+rosterColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (host, username, contact) DO UPDATE SET
				name = excluded.name,
				groups = excluded.groups,
				sub_to = excluded.sub_to,
				sub_from = excluded.sub_from,
				pending_out = excluded.pending_out,
				pending_in = excluded.pending_in,
				pending_in_stanza = excluded.pending_in_stanza,
				approved = excluded.approved,
				in_roster = excluded.in_roster`,
			host, user, item.Contact, item.Name, groups,
			item.To, item.From, item.PendingOut, item.PendingIn, stanza, item.Approved, item.InRoster)
		if err != nil {
			return err
		}
		ver, err = bumpRosterVersion(ctx, tx, host, user)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: put roster item %s of %s@%s: %w", item.Contact, user, host, err)
	}
	return ver, nil
}

// DeleteRosterItem removes the user's entry for contact and returns the new
// roster version. Deleting an entry that does not exist is no error and
// still bumps the version: the caller asked for a change, and a client that
// is told of a new version merely fetches a roster it already has, while one
// that is not told of a real change misses it.
func (s *Store) DeleteRosterItem(ctx context.Context, host, user, contact string) (ver int64, err error) {
	err = s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx,
			`DELETE FROM roster_items WHERE host = ? AND username = ? AND contact = ?`,
			host, user, contact)
		if err != nil {
			return err
		}
		ver, err = bumpRosterVersion(ctx, tx, host, user)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete roster item %s of %s@%s: %w", contact, user, host, err)
	}
	return ver, nil
}

// rosterVersion returns the user's roster version, 0 if it has none.
func rosterVersion(ctx context.Context, tx *sql.Tx, host, user string) (int64, error) {
	var ver int64
	err := tx.QueryRowContext(ctx,
		`SELECT version FROM roster_versions WHERE host = ? AND username = ?`,
		host, user).Scan(&ver)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return ver, err
}

// bumpRosterVersion adds one to the user's roster version, starting from 0,
// and returns the result. It must run in a write transaction with the change
// it counts.
func bumpRosterVersion(ctx context.Context, tx *sql.Tx, host, user string) (int64, error) {
	var ver int64
	err := tx.QueryRowContext(ctx,
		`INSERT INTO roster_versions (host, username, version) VALUES (?, ?, 1)
		ON CONFLICT (host, username) DO UPDATE SET version = version + 1
		RETURNING version`,
		host, user).Scan(&ver)
	if err != nil {
		return 0, fmt.Errorf("bump roster version: %w", err)
	}
	return ver, nil
}

// scanRosterItem reads one row of rosterColumns.
func scanRosterItem(row interface{ Scan(...any) error }) (storage.RosterItem, error) {
	var (
		item   storage.RosterItem
		groups string
	)
	err := row.Scan(&item.Contact, &item.Name, &groups,
		&item.To, &item.From, &item.PendingOut, &item.PendingIn, &item.PendingInStanza,
		&item.Approved, &item.InRoster)
	if err != nil {
		return storage.RosterItem{}, err
	}
	if item.Groups, err = decodeGroups(groups); err != nil {
		return storage.RosterItem{}, fmt.Errorf("roster item %s: %w", item.Contact, err)
	}
	if len(item.PendingInStanza) == 0 {
		item.PendingInStanza = nil
	}
	return item, nil
}

// encodeGroups returns groups as a JSON array, in the order given; nil and
// empty both become "[]".
func encodeGroups(groups []string) (string, error) {
	if len(groups) == 0 {
		return "[]", nil
	}
	b, err := json.Marshal(groups)
	if err != nil {
		return "", fmt.Errorf("encode groups: %w", err)
	}
	return string(b), nil
}

// decodeGroups reverses encodeGroups; an empty array becomes nil.
func decodeGroups(s string) ([]string, error) {
	var groups []string
	if err := json.Unmarshal([]byte(s), &groups); err != nil {
		return nil, fmt.Errorf("decode groups: %w", err)
	}
	if len(groups) == 0 {
		return nil, nil
	}
	return groups, nil
}
