package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"ottr.im/ottr/storage"
)

// expireBatch is how many expired messages, of any user, one
// AppendArchives deletes at most besides two per message it adds: expiry
// follows the writes (faster than messages come, at the same traffic a
// retention period ago), a few rows at a time, and never holds the write
// lock for long.
const expireBatch = 16

// AppendArchive adds msg to the end of the user's archive (XEP-0313),
// then deletes the user's oldest messages until the archive is within
// lim.Quota again, and up to a few messages of any user stored before
// lim.Expire. A message larger than lim.Quota.Bytes alone, or a
// lim.Quota.Count below 1, is refused with an error wrapping
// [storage.ErrQuota]; an ID the archive holds already, with one wrapping
// [storage.ErrExists]. All of it is one IMMEDIATE transaction.
func (s *Store) AppendArchive(ctx context.Context, host, user string, msg storage.ArchivedMessage, lim storage.ArchiveLimits) error {
	errs, err := s.AppendArchives(ctx, []storage.ArchiveEntry{{Host: host, User: user, Message: msg}}, lim)
	if err == nil {
		err = errs[0]
	}
	return err
}

// AppendArchives appends entries in order, each as AppendArchive does,
// in one transaction (one sync to disk for all). The error of each entry
// refused (ErrQuota, ErrExists) is at its index, the others' nil; any
// other failure stores none of them and is returned alone.
func (s *Store) AppendArchives(ctx context.Context, entries []storage.ArchiveEntry, lim storage.ArchiveLimits) ([]error, error) {
	errs := make([]error, len(entries))
	err := s.write(ctx, func(tx *sql.Tx) error {
		a, err := newArchiveAppender(ctx, tx)
		if err != nil {
			return err
		}
		defer a.close()
		for i, e := range entries {
			refused, err := a.append(ctx, e.Host, e.User, e.Message, lim.Quota)
			if err != nil {
				return err
			}
			if refused != nil {
				errs[i] = fmt.Errorf("sqlite: archive a message for %s@%s: %w", e.User, e.Host, refused)
			}
		}
		if lim.Expire.IsZero() {
			return nil
		}
		return expireArchive(ctx, tx, lim.Expire, expireBatch+2*len(entries))
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: archive %d messages: %w", len(entries), err)
	}
	return errs, nil
}

// archiveAppender adds messages to archives in one transaction, with the
// two statements each costs prepared once.
type archiveAppender struct {
	tx            *sql.Tx
	insert, usage *sql.Stmt
}

func newArchiveAppender(ctx context.Context, tx *sql.Tx) (*archiveAppender, error) {
	insert, err := tx.PrepareContext(ctx,
		`INSERT INTO archive (host, username, id, with_jid, with_bare, stored, stanza) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (host, username, id) DO NOTHING`)
	if err != nil {
		return nil, err
	}
	usage, err := tx.PrepareContext(ctx,
		`INSERT INTO archive_usage (host, username, messages, bytes) VALUES (?, ?, 1, ?)
		ON CONFLICT (host, username) DO UPDATE SET messages = messages + 1, bytes = bytes + excluded.bytes
		RETURNING messages, bytes`)
	if err != nil {
		insert.Close()
		return nil, err
	}
	return &archiveAppender{tx: tx, insert: insert, usage: usage}, nil
}

func (a *archiveAppender) close() {
	a.insert.Close()
	a.usage.Close()
}

// append adds one message to the user's archive and trims it to q. A
// message refused for the quota or its ID is reported in refused, having
// changed nothing.
func (a *archiveAppender) append(ctx context.Context, host, user string, msg storage.ArchivedMessage, q storage.Quota) (refused, err error) {
	size := int64(len(msg.Stanza))
	if msg.Stanza == nil {
		msg.Stanza = []byte{} // the column is NOT NULL
	}
	if q.Count < 1 || size > q.Bytes {
		return fmt.Errorf("a message of %d bytes in an archive of at most %d messages and %d bytes: %w",
			size, q.Count, q.Bytes, storage.ErrQuota), nil
	}
	bare, _, _ := strings.Cut(msg.With, "/")
	res, err := a.insert.ExecContext(ctx, host, user, msg.ID, msg.With, bare, msg.Stored.UnixNano(), msg.Stanza)
	if err != nil {
		return nil, err
	}
	if n, err := res.RowsAffected(); err != nil {
		return nil, err
	} else if n == 0 {
		return fmt.Errorf("archive id %q: %w", msg.ID, storage.ErrExists), nil
	}
	var count, total int64
	if err := a.usage.QueryRowContext(ctx, host, user, size).Scan(&count, &total); err != nil {
		return nil, fmt.Errorf("archive usage: %w", err)
	}
	return nil, trimArchive(ctx, a.tx, host, user, count, total, q)
}

// addUsage adds n messages and size bytes to the user's archive usage.
func addUsage(ctx context.Context, tx *sql.Tx, host, user string, n, size int64) error {
	_, err := tx.ExecContext(ctx,
		`INSERT INTO archive_usage (host, username, messages, bytes) VALUES (?, ?, ?, ?)
		ON CONFLICT (host, username) DO UPDATE SET messages = messages + excluded.messages, bytes = bytes + excluded.bytes`,
		host, user, n, size)
	if err != nil {
		return fmt.Errorf("archive usage: %w", err)
	}
	return nil
}

// trimArchive deletes the user's oldest messages until the archive,
// which holds n messages of total bytes, is within q.
func trimArchive(ctx context.Context, tx *sql.Tx, host, user string, n, total int64, q storage.Quota) error {
	for n > int64(q.Count) || total > q.Bytes {
		// At least the messages beyond the count; more while the bytes
		// are over.
		batch := max(n-int64(q.Count), 1)
		rows, err := tx.QueryContext(ctx,
			`DELETE FROM archive WHERE seq IN (
				SELECT seq FROM archive WHERE host = ? AND username = ? ORDER BY seq LIMIT ?)
			RETURNING length(stanza)`, host, user, batch)
		if err != nil {
			return fmt.Errorf("trim archive: %w", err)
		}
		var gone, freed int64
		for rows.Next() {
			var size int64
			if err := rows.Scan(&size); err != nil {
				rows.Close()
				return fmt.Errorf("trim archive: %w", err)
			}
			gone, freed = gone+1, freed+size
		}
		if err := rows.Close(); err != nil {
			return fmt.Errorf("trim archive: %w", err)
		}
		if gone == 0 {
			break // the usage row counts messages that are gone
		}
		if err := addUsage(ctx, tx, host, user, -gone, -freed); err != nil {
			return err
		}
		n, total = n-gone, total-freed
	}
	return nil
}

// expireArchive deletes up to limit messages, of any user, stored before
// cutoff, oldest first.
func expireArchive(ctx context.Context, tx *sql.Tx, cutoff time.Time, limit int) error {
	rows, err := tx.QueryContext(ctx,
		`DELETE FROM archive WHERE seq IN (
			SELECT seq FROM archive WHERE stored < ? ORDER BY stored LIMIT ?)
		RETURNING host, username, length(stanza)`, cutoff.UnixNano(), limit)
	if err != nil {
		return fmt.Errorf("expire archive: %w", err)
	}
	type user struct{ host, name string }
	type usage struct{ n, size int64 }
	freed := make(map[user]usage)
	for rows.Next() {
		var (
			u    user
			size int64
		)
		if err := rows.Scan(&u.host, &u.name, &size); err != nil {
			rows.Close()
			return fmt.Errorf("expire archive: %w", err)
		}
		f := freed[u]
		freed[u] = usage{f.n + 1, f.size + size}
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("expire archive: %w", err)
	}
	for u, f := range freed {
		if err := addUsage(ctx, tx, u.host, u.name, -f.n, -f.size); err != nil {
			return err
		}
	}
	return nil
}

// QueryArchive returns one page of the user's archive (see
// [storage.ArchiveQuery]) in one read transaction.
func (s *Store) QueryArchive(ctx context.Context, host, user string, q storage.ArchiveQuery) (storage.ArchivePage, error) {
	var page storage.ArchivePage
	err := s.read(ctx, func(tx *sql.Tx) error {
		var err error
		page, err = queryArchive(ctx, tx, host, user, q)
		return err
	})
	if err != nil {
		return storage.ArchivePage{}, fmt.Errorf("sqlite: query the archive of %s@%s: %w", user, host, err)
	}
	return page, nil
}

// archiveFilter is the WHERE clause of a query's result set and its
// arguments.
type archiveFilter struct {
	where []string
	args  []any
}

func (f *archiveFilter) add(cond string, args ...any) {
	f.where = append(f.where, cond)
	f.args = append(f.args, args...)
}

func (f *archiveFilter) clause() string { return strings.Join(f.where, " AND ") }

func queryArchive(ctx context.Context, tx *sql.Tx, host, user string, q storage.ArchiveQuery) (storage.ArchivePage, error) {
	var page storage.ArchivePage
	// seqOf finds the seq of a visible message of the archive.
	seqOf := func(id string) (int64, error) {
		var seq int64
		err := tx.QueryRowContext(ctx,
			`SELECT seq FROM archive WHERE host = ? AND username = ? AND id = ? AND stored >= ?`,
			host, user, id, expireNanos(q.Expire)).Scan(&seq)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, fmt.Errorf("archive id %q: %w", id, storage.ErrNotFound)
		}
		return seq, err
	}
	f := &archiveFilter{}
	f.add("host = ? AND username = ? AND stored >= ?", host, user, expireNanos(q.Expire))
	switch bare, _, full := strings.Cut(q.With, "/"); {
	case q.With == "":
	case full:
		f.add("with_bare = ? AND with_jid = ?", bare, q.With)
	default:
		f.add("with_bare = ?", q.With)
	}
	if !q.Start.IsZero() {
		f.add("stored >= ?", q.Start.UnixNano())
	}
	if !q.End.IsZero() {
		f.add("stored <= ?", q.End.UnixNano())
	}
	for _, b := range []struct {
		id, op string
	}{{q.AfterID, ">"}, {q.BeforeID, "<"}} {
		if b.id == "" {
			continue
		}
		seq, err := seqOf(b.id)
		if err != nil {
			return page, err
		}
		f.add("seq "+b.op+" ?", seq)
	}
	if q.IDs != nil {
		seqs := make([]string, 0, len(q.IDs))
		for _, id := range q.IDs {
			seq, err := seqOf(id)
			if err != nil {
				return page, err
			}
			seqs = append(seqs, fmt.Sprint(seq))
		}
		// The seqs are integers read from the table.
		f.add("seq IN (" + strings.Join(append(seqs, "-1"), ",") + ")")
	}
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM archive WHERE `+f.clause(), f.args...).Scan(&page.Count); err != nil {
		return page, fmt.Errorf("count: %w", err)
	}
	// The page: the result set after After and before Before.
	p := &archiveFilter{where: slices.Clone(f.where), args: slices.Clone(f.args)}
	for _, b := range []struct {
		id, op string
	}{{q.After, ">"}, {q.Before, "<"}} {
		if b.id == "" {
			continue
		}
		seq, err := seqOf(b.id)
		if err != nil {
			return page, err
		}
		p.add("seq "+b.op+" ?", seq)
	}
	if q.Max <= 0 {
		page.Complete = page.Count == 0
		return page, nil
	}
	order := "ASC"
	if q.Last {
		order = "DESC"
	}
	// The sizes first (length() of a blob reads no content), to find
	// where MaxBytes ends the page; then the stanzas.
	rows, err := tx.QueryContext(ctx,
		`SELECT seq, length(stanza) FROM archive WHERE `+p.clause()+` ORDER BY seq `+order+` LIMIT ?`,
		append(p.args, q.Max+1)...)
	if err != nil {
		return page, fmt.Errorf("page: %w", err)
	}
	var (
		seqs  []int64
		total int64
		more  bool
	)
	for rows.Next() {
		var seq, size int64
		if err := rows.Scan(&seq, &size); err != nil {
			rows.Close()
			return page, fmt.Errorf("page: %w", err)
		}
		if len(seqs) == q.Max || (len(seqs) > 0 && total+size > q.MaxBytes) {
			more = true
			break
		}
		seqs, total = append(seqs, seq), total+size
	}
	if err := rows.Close(); err != nil {
		return page, fmt.Errorf("page: %w", err)
	}
	page.Complete = !more
	if len(seqs) == 0 {
		return page, nil
	}
	lo, hi := seqs[0], seqs[len(seqs)-1]
	if q.Last {
		lo, hi = hi, lo
	}
	p.add("seq BETWEEN ? AND ?", lo, hi)
	rows, err = tx.QueryContext(ctx,
		`SELECT id, with_jid, stanza, stored FROM archive WHERE `+p.clause()+` ORDER BY seq`, p.args...)
	if err != nil {
		return page, fmt.Errorf("page: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			m      storage.ArchivedMessage
			stored int64
		)
		if err := rows.Scan(&m.ID, &m.With, &m.Stanza, &stored); err != nil {
			return page, fmt.Errorf("page: %w", err)
		}
		m.Stored = time.Unix(0, stored).UTC()
		page.Messages = append(page.Messages, m)
	}
	if err := rows.Err(); err != nil {
		return page, fmt.Errorf("page: %w", err)
	}
	return page, nil
}

// expireNanos is the stored time below which messages are expired: the
// zero time is none.
func expireNanos(t time.Time) int64 {
	if t.IsZero() {
		return -1 << 63
	}
	return t.UnixNano()
}

// ArchivePrefs returns the user's archiving preferences (XEP-0441); the
// zero value when the user never set any.
func (s *Store) ArchivePrefs(ctx context.Context, host, user string) (storage.ArchivePrefs, error) {
	var (
		p             storage.ArchivePrefs
		always, never string
	)
	err := s.db.QueryRowContext(ctx,
		`SELECT default_mode, always, never FROM archive_prefs WHERE host = ? AND username = ?`,
		host, user).Scan(&p.Default, &always, &never)
	if errors.Is(err, sql.ErrNoRows) {
		return storage.ArchivePrefs{}, nil
	}
	if err == nil {
		p.Always, err = decodeGroups(always)
	}
	if err == nil {
		p.Never, err = decodeGroups(never)
	}
	if err != nil {
		return storage.ArchivePrefs{}, fmt.Errorf("sqlite: archive preferences of %s@%s: %w", user, host, err)
	}
	return p, nil
}

// SetArchivePrefs replaces the user's archiving preferences.
func (s *Store) SetArchivePrefs(ctx context.Context, host, user string, p storage.ArchivePrefs) error {
	always, err := encodeGroups(p.Always)
	if err == nil {
		var never string
		never, err = encodeGroups(p.Never)
		if err == nil {
			_, err = s.exec(ctx,
				`INSERT INTO archive_prefs (host, username, default_mode, always, never) VALUES (?, ?, ?, ?, ?)
				ON CONFLICT (host, username) DO UPDATE SET
					default_mode = excluded.default_mode, always = excluded.always, never = excluded.never`,
				host, user, p.Default, always, never)
		}
	}
	if err != nil {
		return fmt.Errorf("sqlite: set archive preferences of %s@%s: %w", user, host, err)
	}
	return nil
}
