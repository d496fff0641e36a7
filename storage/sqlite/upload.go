package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"ottr.im/ottr/storage"
)

// The rows an upload quota counts (see storage.UploadLimits): files, slots
// being written, and pending slots that have not expired.
const uploadCounted = `(state = 1 OR state = 2 OR (state = 0 AND expires > ?))`

// ReserveUpload records slot, pending, for its owner, unless it would
// take the owner past lim.Quota or every user together past lim.Total
// (when set): then it stores nothing and returns an error wrapping
// [storage.ErrQuota]. The count and the insert run in one transaction,
// so concurrent requests never overshoot. An ID in use fails with an
// error wrapping [storage.ErrExists].
func (s *Store) ReserveUpload(ctx context.Context, slot storage.UploadSlot, lim storage.UploadLimits, now time.Time) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		var n int
		var total int64
		err := tx.QueryRowContext(ctx,
			`SELECT count(*), coalesce(sum(size), 0) FROM uploads
			WHERE host = ? AND username = ? AND `+uploadCounted,
			slot.Host, slot.Username, now.Unix()).Scan(&n, &total)
		if err != nil {
			return fmt.Errorf("count: %w", err)
		}
		if err := lim.Quota.Check(n, 1, total, slot.Size); err != nil {
			return err
		}
		if lim.Total > 0 {
			var all int64
			err := tx.QueryRowContext(ctx,
				`SELECT coalesce(sum(size), 0) FROM uploads WHERE `+uploadCounted,
				now.Unix()).Scan(&all)
			if err != nil {
				return fmt.Errorf("total: %w", err)
			}
			if all+slot.Size > lim.Total {
				return fmt.Errorf("%d bytes stored for every user, %d more would pass the limit of %d: %w",
					all, slot.Size, lim.Total, storage.ErrQuota)
			}
		}
		res, err := tx.ExecContext(ctx,
			`INSERT INTO uploads (id, host, username, filename, size, content_type, state, created, expires)
			VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?) ON CONFLICT (id) DO NOTHING`,
			slot.ID, slot.Host, slot.Username, slot.Filename, slot.Size, slot.ContentType,
			slot.Created.Unix(), slot.Expires.Unix())
		if err != nil {
			return fmt.Errorf("insert: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("insert: %w", err)
		} else if n == 0 {
			return fmt.Errorf("slot %s: %w", slot.ID, storage.ErrExists)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: reserve upload for %s@%s: %w", slot.Username, slot.Host, err)
	}
	return nil
}

const uploadColumns = `id, host, username, filename, size, content_type, state, created, expires, uploaded`

// scanUpload reads one row of uploadColumns.
func scanUpload(row interface{ Scan(...any) error }) (storage.UploadSlot, error) {
	var (
		u                          storage.UploadSlot
		created, expires, uploaded int64
	)
	err := row.Scan(&u.ID, &u.Host, &u.Username, &u.Filename, &u.Size, &u.ContentType, &u.State, &created, &expires, &uploaded)
	if err != nil {
		return u, err
	}
	u.Created, u.Expires = time.Unix(created, 0).UTC(), time.Unix(expires, 0).UTC()
	if uploaded != 0 {
		u.Uploaded = time.Unix(uploaded, 0).UTC()
	}
	return u, nil
}

// ClaimUpload moves a pending slot that has not expired at now to
// writing, and returns it: the one PUT that may write its file. A slot
// that is unknown or deleted fails with an error wrapping
// [storage.ErrNotFound], one that expired with [storage.ErrUploadExpired],
// one being written or done with [storage.ErrUploadUsed].
func (s *Store) ClaimUpload(ctx context.Context, id string, now time.Time) (storage.UploadSlot, error) {
	var u storage.UploadSlot
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		u, err = scanUpload(tx.QueryRowContext(ctx,
			`UPDATE uploads SET state = 1 WHERE id = ? AND state = 0 AND expires > ? RETURNING `+uploadColumns,
			id, now.Unix()))
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		var state storage.UploadState
		err = tx.QueryRowContext(ctx, `SELECT state FROM uploads WHERE id = ?`, id).Scan(&state)
		switch {
		case errors.Is(err, sql.ErrNoRows) || (err == nil && state == storage.UploadDeleted):
			return storage.ErrNotFound
		case err != nil:
			return err
		case state == storage.UploadPending:
			return storage.ErrUploadExpired
		default:
			return storage.ErrUploadUsed
		}
	})
	if err != nil {
		return storage.UploadSlot{}, fmt.Errorf("sqlite: claim upload %s: %w", id, err)
	}
	u.State = storage.UploadWriting
	return u, nil
}

// ReleaseUpload moves a slot being written back to pending, after a PUT
// that failed: another may start until the slot expires.
func (s *Store) ReleaseUpload(ctx context.Context, id string) error {
	if _, err := s.exec(ctx, `UPDATE uploads SET state = 0 WHERE id = ? AND state = 1`, id); err != nil {
		return fmt.Errorf("sqlite: release upload %s: %w", id, err)
	}
	return nil
}

// CompleteUpload marks a slot being written as done at now: its file is
// served from then on. A slot not being written (its owner's account was
// deleted meanwhile) fails with an error wrapping [storage.ErrNotFound].
func (s *Store) CompleteUpload(ctx context.Context, id string, now time.Time) error {
	res, err := s.exec(ctx, `UPDATE uploads SET state = 2, uploaded = ? WHERE id = ? AND state = 1`, now.Unix(), id)
	if err != nil {
		return fmt.Errorf("sqlite: complete upload %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: complete upload %s: %w", id, err)
	} else if n == 0 {
		return fmt.Errorf("sqlite: complete upload %s: not being written: %w", id, storage.ErrNotFound)
	}
	return nil
}

// UploadedFile returns the slot of a file that is done; any other slot
// fails with an error wrapping [storage.ErrNotFound].
func (s *Store) UploadedFile(ctx context.Context, id string) (storage.UploadSlot, error) {
	u, err := scanUpload(s.db.QueryRowContext(ctx,
		`SELECT `+uploadColumns+` FROM uploads WHERE id = ? AND state = 2`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return u, fmt.Errorf("sqlite: uploaded file %s: %w", id, storage.ErrNotFound)
	} else if err != nil {
		return u, fmt.Errorf("sqlite: uploaded file %s: %w", id, err)
	}
	return u, nil
}

// ExpiredUploads returns the ids of at most max slots whose files are to
// go: pending slots that expired before slotsBefore, slots being written
// that expired before writingBefore (their PUT is over: it had a
// deadline), files uploaded before filesBefore, and every slot of a
// deleted account.
func (s *Store) ExpiredUploads(ctx context.Context, slotsBefore, writingBefore, filesBefore time.Time, max int) ([]string, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT id FROM uploads WHERE state = 3
		OR (state = 0 AND expires < ?)
		OR (state = 1 AND expires < ?)
		OR (state = 2 AND uploaded < ?)
		LIMIT ?`,
		slotsBefore.Unix(), writingBefore.Unix(), filesBefore.Unix(), max)
	if err != nil {
		return nil, fmt.Errorf("sqlite: expired uploads: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("sqlite: expired uploads: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: expired uploads: %w", err)
	}
	return ids, nil
}

// DeleteUploads removes the slots with the given ids, in any state.
func (s *Store) DeleteUploads(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, `DELETE FROM uploads WHERE id = ?`, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: delete uploads: %w", err)
	}
	return nil
}

// markUploadsDeleted marks every slot of a deleted account, in the
// deletion's transaction: none is served or written from then on, and
// the upload module removes their files, then the rows.
func markUploadsDeleted(ctx context.Context, tx *sql.Tx, host, username string) error {
	if _, err := tx.ExecContext(ctx, `UPDATE uploads SET state = 3 WHERE host = ? AND username = ?`, host, username); err != nil {
		return fmt.Errorf("mark uploads deleted: %w", err)
	}
	return nil
}
