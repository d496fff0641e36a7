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

// expireScan is how many of the oldest rows by seq, beyond the number it
// may delete, one expiry looks at: stored grows with seq nearly always
// (it is set when a message is queued, and the writers' batches may
// interleave), so a row stored a little later than one after it delays
// that one's expiry until it expires itself, and no more.
const expireScan = 64

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
//
// The result is that of adding the entries one by one, each followed by
// its user's trim, but the bookkeeping is per user and batch: expiry
// first, then each user's usage read once, the rows inserted
// insertChunk at a time, the user's oldest rows beyond the quota deleted
// in one statement, and the usage written once.
func (s *Store) AppendArchives(ctx context.Context, entries []storage.ArchiveEntry, lim storage.ArchiveLimits) ([]error, error) {
	errs := make([]error, len(entries))
	err := s.write(ctx, func(tx *sql.Tx) error {
		if !lim.Expire.IsZero() {
			if err := expireArchive(ctx, tx, lim.Expire, expireBatch+2*len(entries)); err != nil {
				return err
			}
		}
		a, err := newArchiveAppender(ctx, tx, lim.Quota, errs)
		if err != nil {
			return err
		}
		defer a.close()
		for i, e := range entries {
			if err := a.add(ctx, i, e); err != nil {
				return err
			}
		}
		if err := a.flush(ctx); err != nil {
			return err
		}
		return a.finish(ctx)
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: archive %d messages: %w", len(entries), err)
	}
	return errs, nil
}

// archiveOwner is the usage of one archive during a batch: read once,
// kept as rows are added and deleted, written once.
type archiveOwner struct {
	host, user string
	// messages and bytes are what the archive holds now, counting this
	// batch's rows; changed is set once it changed.
	messages, bytes int64
	changed         bool
}

// insertChunk is how many rows one INSERT adds: a statement per row
// costs as much again as the rows' b-tree writes.
const insertChunk = 32

// insertArchive is the INSERT of one row, and the start of one of many.
const (
	insertArchive = `INSERT INTO archive (host, username, id, with_jid, with_bare, stored, stanza) VALUES (?, ?, ?, ?, ?, ?, ?)`
	archiveValues = `, (?, ?, ?, ?, ?, ?, ?)`
)

// archiveAppender adds messages to archives in one transaction, with its
// statements prepared once.
type archiveAppender struct {
	tx     *sql.Tx
	q      storage.Quota
	errs   []error // the entries refused, by index
	insert *sql.Stmt
	chunks map[int]*sql.Stmt // INSERTs of n rows
	rows   []archiveRow      // added, not inserted yet
	owners map[[2]string]*archiveOwner
	order  []*archiveOwner // in the order of their first message
}

// archiveRow is an entry waiting for its INSERT.
type archiveRow struct {
	i    int // its index in the batch
	o    *archiveOwner
	msg  storage.ArchivedMessage
	bare string
}

func newArchiveAppender(ctx context.Context, tx *sql.Tx, q storage.Quota, errs []error) (*archiveAppender, error) {
	insert, err := tx.PrepareContext(ctx, insertArchive+` ON CONFLICT (host, username, id) DO NOTHING`)
	if err != nil {
		return nil, err
	}
	return &archiveAppender{tx: tx, q: q, errs: errs, insert: insert,
		chunks: make(map[int]*sql.Stmt), owners: make(map[[2]string]*archiveOwner)}, nil
}

func (a *archiveAppender) close() {
	a.insert.Close()
	for _, st := range a.chunks {
		st.Close()
	}
}

// owner returns the usage of host and user's archive, read from the
// store the first time.
func (a *archiveAppender) owner(ctx context.Context, host, user string) (*archiveOwner, error) {
	key := [2]string{host, user}
	if o := a.owners[key]; o != nil {
		return o, nil
	}
	o := &archiveOwner{host: host, user: user}
	err := a.tx.QueryRowContext(ctx,
		`SELECT messages, bytes FROM archive_usage WHERE host = ? AND username = ?`, host, user).Scan(&o.messages, &o.bytes)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("archive usage: %w", err)
	}
	a.owners[key] = o
	a.order = append(a.order, o)
	return o, nil
}

// add adds entry i of the batch, counted in its archive's usage, to the
// rows of the next INSERT; one refused for the quota is recorded in
// a.errs, having changed nothing.
func (a *archiveAppender) add(ctx context.Context, i int, e storage.ArchiveEntry) error {
	msg := e.Message
	size := int64(len(msg.Stanza))
	if msg.Stanza == nil {
		msg.Stanza = []byte{} // the column is NOT NULL
	}
	if a.q.Count < 1 || size > a.q.Bytes {
		a.refuse(i, e.Host, e.User, fmt.Errorf("a message of %d bytes in an archive of at most %d messages and %d bytes: %w",
			size, a.q.Count, a.q.Bytes, storage.ErrQuota))
		return nil
	}
	o, err := a.owner(ctx, e.Host, e.User)
	if err != nil {
		return err
	}
	bare, _, _ := strings.Cut(msg.With, "/")
	a.rows = append(a.rows, archiveRow{i: i, o: o, msg: msg, bare: bare})
	o.messages, o.bytes, o.changed = o.messages+1, o.bytes+size, true
	if len(a.rows) == insertChunk {
		return a.flush(ctx)
	}
	return nil
}

func (a *archiveAppender) refuse(i int, host, user string, err error) {
	a.errs[i] = fmt.Errorf("sqlite: archive a message for %s@%s: %w", user, host, err)
}

// flush inserts the rows added since the last, in one statement. When
// that fails (an ID an archive holds already: nothing of the statement
// stays), they are inserted one by one, as append does.
func (a *archiveAppender) flush(ctx context.Context) error {
	rows := a.rows
	a.rows = a.rows[:0]
	if len(rows) == 0 {
		return nil
	}
	st := a.chunks[len(rows)]
	if st == nil {
		var err error
		st, err = a.tx.PrepareContext(ctx, insertArchive+strings.Repeat(archiveValues, len(rows)-1))
		if err != nil {
			return err
		}
		a.chunks[len(rows)] = st
	}
	args := make([]any, 0, 7*len(rows))
	for _, r := range rows {
		args = append(args, r.o.host, r.o.user, r.msg.ID, r.msg.With, r.bare, r.msg.Stored.UnixNano(), r.msg.Stanza)
	}
	if _, err := st.ExecContext(ctx, args...); err == nil {
		return nil
	}
	for _, r := range rows {
		r.o.messages, r.o.bytes = r.o.messages-1, r.o.bytes-int64(len(r.msg.Stanza))
	}
	for _, r := range rows {
		refused, err := a.append(ctx, r)
		if err != nil {
			return err
		}
		if refused != nil {
			a.refuse(r.i, r.o.host, r.o.user, refused)
		}
	}
	return nil
}

// append inserts one row and counts it in its archive's usage. A row
// refused for its ID is reported in refused, having changed nothing.
func (a *archiveAppender) append(ctx context.Context, r archiveRow) (refused, err error) {
	o, msg := r.o, r.msg
	for trimmed := false; ; trimmed = true {
		res, err := a.insert.ExecContext(ctx, o.host, o.user, msg.ID, msg.With, r.bare, msg.Stored.UnixNano(), msg.Stanza)
		if err != nil {
			return nil, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return nil, err
		}
		if n == 1 {
			break
		}
		// The ID is there: unless it is among the messages that adding
		// one by one would have trimmed already, it is refused.
		if trimmed || !o.over(a.q) {
			return fmt.Errorf("archive id %q: %w", msg.ID, storage.ErrExists), nil
		}
		if err := trimArchive(ctx, a.tx, o, a.q); err != nil {
			return nil, err
		}
	}
	o.messages, o.bytes, o.changed = o.messages+1, o.bytes+int64(len(msg.Stanza)), true
	return nil, nil
}

// finish trims every archive the batch added to and writes its usage.
func (a *archiveAppender) finish(ctx context.Context) error {
	for _, o := range a.order {
		if err := trimArchive(ctx, a.tx, o, a.q); err != nil {
			return err
		}
		if !o.changed {
			continue
		}
		_, err := a.tx.ExecContext(ctx,
			`INSERT INTO archive_usage (host, username, messages, bytes) VALUES (?, ?, ?, ?)
			ON CONFLICT (host, username) DO UPDATE SET messages = excluded.messages, bytes = excluded.bytes`,
			o.host, o.user, o.messages, o.bytes)
		if err != nil {
			return fmt.Errorf("archive usage: %w", err)
		}
	}
	return nil
}

// over reports whether the archive holds more than q.
func (o *archiveOwner) over(q storage.Quota) bool {
	return o.messages > int64(q.Count) || o.bytes > q.Bytes
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

// trimArchive deletes the oldest messages of o's archive until it is
// within q: one scan of the oldest rows' sizes, to the last that goes,
// and one DELETE of them all.
func trimArchive(ctx context.Context, tx *sql.Tx, o *archiveOwner, q storage.Quota) error {
	if !o.over(q) {
		return nil
	}
	rows, err := tx.QueryContext(ctx,
		`SELECT seq, length(stanza) FROM archive WHERE host = ? AND username = ? ORDER BY seq`, o.host, o.user)
	if err != nil {
		return fmt.Errorf("trim archive: %w", err)
	}
	var (
		last, gone, freed int64
		found             bool
	)
	for o.messages-gone > int64(q.Count) || o.bytes-freed > q.Bytes {
		if !rows.Next() {
			// The usage counted messages that are gone: the archive is
			// empty now.
			gone, freed = o.messages, o.bytes
			break
		}
		var size int64
		if err := rows.Scan(&last, &size); err != nil {
			rows.Close()
			return fmt.Errorf("trim archive: %w", err)
		}
		gone, freed, found = gone+1, freed+size, true
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("trim archive: %w", err)
	}
	if found {
		if _, err := tx.ExecContext(ctx,
			`DELETE FROM archive WHERE host = ? AND username = ? AND seq <= ?`, o.host, o.user, last); err != nil {
			return fmt.Errorf("trim archive: %w", err)
		}
	}
	o.messages, o.bytes, o.changed = o.messages-gone, o.bytes-freed, true
	return nil
}

// expireArchive deletes up to limit messages, of any user, stored before
// cutoff: the oldest rows by seq (there is no index on stored), looking
// at limit+expireScan of them at most, and none while the oldest row is
// not expired (the usual case, which costs one row read). A row is never
// deleted before it expires; one that expired while a row before it did
// not goes later, and is hidden from queries meanwhile.
func expireArchive(ctx context.Context, tx *sql.Tx, cutoff time.Time, limit int) error {
	var oldest int64
	err := tx.QueryRowContext(ctx, `SELECT stored FROM archive ORDER BY seq LIMIT 1`).Scan(&oldest)
	if errors.Is(err, sql.ErrNoRows) || err == nil && oldest >= cutoff.UnixNano() {
		return nil
	}
	if err != nil {
		return fmt.Errorf("expire archive: %w", err)
	}
	rows, err := tx.QueryContext(ctx,
		`DELETE FROM archive WHERE seq IN (
			SELECT seq FROM (SELECT seq, stored FROM archive ORDER BY seq LIMIT ?)
			WHERE stored < ? LIMIT ?)
		RETURNING host, username, length(stanza)`, limit+expireScan, cutoff.UnixNano(), limit)
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
