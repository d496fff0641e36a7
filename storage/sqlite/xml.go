package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"ottr.im/ottr/storage"
)

// GetXML returns the user's document stored under key; ok is false, with a
// nil error, when there is none. The document is returned byte for byte as
// stored; this package does not parse it.
func (s *Store) GetXML(ctx context.Context, host, user, key string) (doc []byte, ok bool, err error) {
	err = s.db.QueryRowContext(ctx,
		`SELECT doc FROM user_xml WHERE host = ? AND username = ? AND key = ?`,
		host, user, key).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("sqlite: get xml %q of %s@%s: %w", key, user, host, err)
	}
	if doc == nil {
		doc = []byte{}
	}
	return doc, true, nil
}

// PutXML stores doc under key for the user, replacing any previous document;
// an empty (or nil) doc deletes it, and deleting a document that is not
// there is no error.
//
// q bounds the user's documents in key's scope: the keys that start with
// the same text up to and including the first ':' ("private:…"), or only key
// itself when it has no ':' ("vcard"). Each document counts as its length. A
// new document beyond q.Count, or a replacement that grows the scope past
// q.Bytes, stores nothing and returns an error wrapping [storage.ErrQuota];
// a delete always succeeds. The check runs in the transaction of the write.
func (s *Store) PutXML(ctx context.Context, host, user, key string, doc []byte, q storage.Quota) error {
	var err error
	if len(doc) == 0 {
		_, err = s.exec(ctx,
			`DELETE FROM user_xml WHERE host = ? AND username = ? AND key = ?`,
			host, user, key)
	} else {
		err = s.write(ctx, func(tx *sql.Tx) error {
			lo, hi := xmlScope(key)
			var (
				n             int
				total, before int64
				exists        bool
			)
			err := tx.QueryRowContext(ctx,
				`SELECT count(*), coalesce(sum(length(doc)), 0), coalesce(max(key = ?1), 0),
					coalesce(sum(CASE WHEN key = ?1 THEN length(doc) END), 0)
				FROM user_xml WHERE host = ?2 AND username = ?3 AND key >= ?4 AND key < ?5`,
				key, host, user, lo, hi).Scan(&n, &total, &exists, &before)
			if err != nil {
				return fmt.Errorf("measure documents: %w", err)
			}
			added := 1
			if exists {
				added = 0
			}
			if err := q.Check(n, added, total, int64(len(doc))-before); err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx,
				`INSERT INTO user_xml (host, username, key, doc) VALUES (?, ?, ?, ?)
				ON CONFLICT (host, username, key) DO UPDATE SET doc = excluded.doc`,
				host, user, key, doc)
			return err
		})
	}
	if err != nil {
		return fmt.Errorf("sqlite: put xml %q of %s@%s: %w", key, user, host, err)
	}
	return nil
}

// xmlScope returns the range [lo, hi) of the keys in key's quota scope: those
// that start with key up to its first ':', or key alone.
func xmlScope(key string) (lo, hi string) {
	i := strings.IndexByte(key, ':')
	if i < 0 {
		return key, key + "\x00"
	}
	// ';' is the byte after ':'.
	return key[:i+1], key[:i] + ";"
}
