package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
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
func (s *Store) PutXML(ctx context.Context, host, user, key string, doc []byte) error {
	var err error
	if len(doc) == 0 {
		_, err = s.db.ExecContext(ctx,
			`DELETE FROM user_xml WHERE host = ? AND username = ? AND key = ?`,
			host, user, key)
	} else {
		_, err = s.db.ExecContext(ctx,
			`INSERT INTO user_xml (host, username, key, doc) VALUES (?, ?, ?, ?)
			ON CONFLICT (host, username, key) DO UPDATE SET doc = excluded.doc`,
			host, user, key, doc)
	}
	if err != nil {
		return fmt.Errorf("sqlite: put xml %q of %s@%s: %w", key, user, host, err)
	}
	return nil
}
