package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"ottr.im/ottr/storage"
)

// MUCRooms returns every persistent room of the MUC service, with its
// affiliations, ordered by name.
func (s *Store) MUCRooms(ctx context.Context, service string) ([]storage.MUCRoom, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT name, config FROM muc_rooms WHERE service = ? ORDER BY name`, service)
	if err != nil {
		return nil, fmt.Errorf("sqlite: rooms of %s: %w", service, err)
	}
	var rooms []storage.MUCRoom
	index := make(map[string]int)
	for rows.Next() {
		r := storage.MUCRoom{Service: service, Affiliations: map[string]string{}}
		if err := rows.Scan(&r.Name, &r.Config); err != nil {
			rows.Close()
			return nil, fmt.Errorf("sqlite: rooms of %s: %w", service, err)
		}
		index[r.Name] = len(rooms)
		rooms = append(rooms, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: rooms of %s: %w", service, err)
	}
	rows, err = s.db.QueryContext(ctx,
		`SELECT name, jid, affiliation FROM muc_affiliations WHERE service = ?`, service)
	if err != nil {
		return nil, fmt.Errorf("sqlite: affiliations of %s: %w", service, err)
	}
	defer rows.Close()
	for rows.Next() {
		var name, j, a string
		if err := rows.Scan(&name, &j, &a); err != nil {
			return nil, fmt.Errorf("sqlite: affiliations of %s: %w", service, err)
		}
		if i, ok := index[name]; ok {
			rooms[i].Affiliations[j] = a
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: affiliations of %s: %w", service, err)
	}
	return rooms, nil
}

// PutMUCRoom stores a room and its affiliations, replacing what was
// stored for it, in one transaction.
func (s *Store) PutMUCRoom(ctx context.Context, room storage.MUCRoom) error {
	if room.Config == nil {
		room.Config = []byte{}
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx,
			`INSERT INTO muc_rooms (service, name, config) VALUES (?, ?, ?)
			ON CONFLICT (service, name) DO UPDATE SET config = excluded.config`,
			room.Service, room.Name, room.Config)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx,
			`DELETE FROM muc_affiliations WHERE service = ? AND name = ?`, room.Service, room.Name); err != nil {
			return err
		}
		if len(room.Affiliations) == 0 {
			return nil
		}
		stmt, err := tx.PrepareContext(ctx,
			`INSERT INTO muc_affiliations (service, name, jid, affiliation) VALUES (?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for j, a := range room.Affiliations {
			if _, err := stmt.ExecContext(ctx, room.Service, room.Name, j, a); err != nil {
				return fmt.Errorf("affiliation %s of %s: %w", a, j, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: store room %s@%s: %w", room.Name, room.Service, err)
	}
	return nil
}

// DeleteMUCRoom removes a room, its affiliations and its archive, in one
// transaction: a room made later with the same name starts empty.
func (s *Store) DeleteMUCRoom(ctx context.Context, service, name string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		for _, q := range []string{
			`DELETE FROM muc_rooms WHERE service = ? AND name = ?`,
			`DELETE FROM archive WHERE host = ? AND username = ?`,
			`DELETE FROM archive_usage WHERE host = ? AND username = ?`,
		} {
			if _, err := tx.ExecContext(ctx, q, service, name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: delete room %s@%s: %w", name, service, err)
	}
	return nil
}

// ReplaceMUCArchived replaces the stanza of the archived message id of a
// room (the archive owned by service and room), keeping the archive's
// byte count right, in one transaction. An unknown id is an error
// wrapping [storage.ErrNotFound].
func (s *Store) ReplaceMUCArchived(ctx context.Context, service, room, id string, stanza []byte) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		var old int64
		err := tx.QueryRowContext(ctx,
			`SELECT length(stanza) FROM archive WHERE host = ? AND username = ? AND id = ?`,
			service, room, id).Scan(&old)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("message %s: %w", id, storage.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx,
			`UPDATE archive SET stanza = ? WHERE host = ? AND username = ? AND id = ?`,
			stanza, service, room, id); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx,
			`UPDATE archive_usage SET bytes = bytes + ? WHERE host = ? AND username = ?`,
			int64(len(stanza))-old, service, room)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: replace archived message of %s@%s: %w", room, service, err)
	}
	return nil
}

// MUCVCard returns the vCard stored for a persistent room; ok is false
// when it has none.
func (s *Store) MUCVCard(ctx context.Context, service, name string) (doc []byte, ok bool, err error) {
	err = s.db.QueryRowContext(ctx,
		`SELECT vcard FROM muc_vcards WHERE service = ? AND name = ?`, service, name).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("sqlite: vCard of room %s@%s: %w", name, service, err)
	}
	return doc, true, nil
}

// PutMUCVCard stores the vCard of a stored room and its photo's hash,
// replacing any; an empty doc deletes it. A room not stored is an error
// wrapping [storage.ErrNotFound]. The vCard goes with its room
// (DeleteMUCRoom).
func (s *Store) PutMUCVCard(ctx context.Context, service, name string, doc []byte, photo string) error {
	if len(doc) == 0 {
		if _, err := s.exec(ctx, `DELETE FROM muc_vcards WHERE service = ? AND name = ?`, service, name); err != nil {
			return fmt.Errorf("sqlite: delete the vCard of room %s@%s: %w", name, service, err)
		}
		return nil
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx,
			`SELECT 1 FROM muc_rooms WHERE service = ? AND name = ?`, service, name).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return storage.ErrNotFound
		}
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx,
			`INSERT INTO muc_vcards (service, name, vcard, photo) VALUES (?, ?, ?, ?)
			ON CONFLICT (service, name) DO UPDATE SET vcard = excluded.vcard, photo = excluded.photo`,
			service, name, doc, photo)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: store the vCard of room %s@%s: %w", name, service, err)
	}
	return nil
}

// MUCVCardPhotos returns, by room name, the photo hash of each room of
// the service that has a stored vCard ("" for a vCard without photo).
func (s *Store) MUCVCardPhotos(ctx context.Context, service string) (map[string]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, photo FROM muc_vcards WHERE service = ?`, service)
	if err != nil {
		return nil, fmt.Errorf("sqlite: room vCards of %s: %w", service, err)
	}
	defer rows.Close()
	photos := make(map[string]string)
	for rows.Next() {
		var name, photo string
		if err := rows.Scan(&name, &photo); err != nil {
			return nil, fmt.Errorf("sqlite: room vCards of %s: %w", service, err)
		}
		photos[name] = photo
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: room vCards of %s: %w", service, err)
	}
	return photos, nil
}
