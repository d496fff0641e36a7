// Package claimlog is ottr's durable memory of used X-TOKEN tokens: an
// append-only file, token-claims.log in data_dir, behind an in-memory map.
// A Log implements auth.ClaimStore (it does not import auth: keys are the
// auth package's 16-byte replay keys, a hash of the JID, OTP and nonce, so
// the file holds no credential and no username in clear).
//
// It replaced a table in the SQLite store (security review #8): a claim
// there was a transaction (B-tree pages, WAL checksums, an fsync) per one or
// two logins, about 150 µs of CPU each, where a whole token login costs a
// few hundred. Here a claim is a map lookup and one write(2) of one record.
//
// # File format
//
// The file starts with the header "ottr claims 1\n" (the version is the
// digit) followed by records of RecordSize bytes: the 16-byte key, the
// expiry in Unix seconds (8 bytes, big endian) and the CRC-32C (Castagnoli,
// 4 bytes, big endian) of those 24 bytes. A record whose checksum does not
// match, or a partial record at the end, ends the read: what follows is
// dropped (see [Recovery]), never a failure to start. A file with another
// header is an error.
//
// # What the Log owns
//
// The file, exclusively: Open takes an exclusive flock on it, so a second
// ottr serve on the same data_dir fails to start. Open reads the file, keeps
// the claims not yet expired, and rewrites the file with only those (a
// temporary file, fsync, rename, fsync of the directory). Expired claims
// leave the map as they expire; the file is rewritten from the map again
// when it holds more than twice as many records as live claims plus 64K,
// so a claim costs O(1) amortized and the file stays proportional to the
// live claims. That rewrite runs in the claim that crosses the threshold
// (O(live claims) and an fsync, once per 64K claims at most).
//
// # Failures
//
// Every failure refuses: a claim that cannot be appended returns an error
// and is not remembered (a partial record is cut off again; if it cannot
// be, every later claim fails), a log holding maxEntries live claims
// returns ErrFull, and after a failed background fsync every claim fails
// until a restart, since the kernel may have dropped the unwritten pages.
//
// # Durability contract
//
// ClaimToken returns fresh=true only after its record was written to the
// file with one write(2): from then on a crash of the process (a panic,
// SIGKILL, the OOM killer) loses nothing, since the record is in the
// kernel's page cache. The file is fsynced by a background goroutine once a
// second when something was appended, and by Close, never on a login's
// path: a power loss or kernel crash can lose the claims of the last second
// or so. A token lives about 90 s (three 30 s TOTP steps): one used in that
// last second could log in once more only if the machine were back and
// accepting logins before it expired, and only for whoever holds it (it
// travels over TLS). fsync on every claim would close that gap at the cost
// the SQLite table had.
package claimlog

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// FileName is the claim log's name in data_dir.
const FileName = "token-claims.log"

// header starts every claim log; the digit is the format's version.
const header = "ottr claims 1\n"

// RecordSize is the size of one record: key, expiry, checksum.
const RecordSize = 16 + 8 + 4

// compactSlack is how many records beyond twice the live claims the file
// may hold before it is rewritten: the rewrite, O(live claims) with an
// fsync, then happens at most once per 64K claims.
const compactSlack = 64 << 10

// pruneSlack is how long after its expiry a claim stays in the map. Logins
// run concurrently and each passes its own clock reading: a claim must not
// be forgotten because a login that read a later clock ran first.
const pruneSlack = 10 // seconds

// syncEvery is how often appended records are fsynced.
const syncEvery = time.Second

// ErrFull is returned by ClaimToken when the log holds its maximum number
// of live claims: the token is refused, not accepted unremembered.
var ErrFull = errors.New("claimlog: too many live token claims")

// ErrClosed is returned by ClaimToken after Close.
var ErrClosed = errors.New("claimlog: closed")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Recovery is what Open read from the file, for the caller to log.
type Recovery struct {
	// Records is the number of whole records with a good checksum.
	Records int
	// Live is the number of claims not expired at Open's now, kept.
	Live int
	// Dropped is the number of bytes after the last good record that were
	// not read: a record torn by a crash during a write, or damage.
	Dropped int64
}

// Log is the claim log of one data_dir. It is safe for concurrent use.
type Log struct {
	path     string
	max      int
	recovery Recovery

	mu      sync.Mutex
	f       *os.File
	live    map[[16]byte]int64 // key -> expiry, Unix seconds
	byTime  expiryHeap         // may hold stale entries of replaced keys
	records int                // records in the file
	size    int64              // bytes in the file
	retryAt int                // no rewrite before this many records
	dirty   bool               // appended since the last fsync
	err     error              // set when the file can no longer be trusted
	closed  bool
	buf     [RecordSize]byte

	// compactSlack is the package's compactSlack; tests lower it.
	compactSlack int
	// fsync is false only in FuzzOpen.
	fsync bool

	stop chan struct{}
	done chan struct{}
}

// Open opens the claim log at path (creating it, mode 0600, if absent),
// keeps the claims not expired at now and rewrites the file with only
// those. The log holds at most maxEntries live claims (more read from the
// file are kept, and new claims refused until they expire). It fails when
// another process (or another Log) has the file open, and when the file
// does not start with the claim log's header.
func Open(path string, now time.Time, maxEntries int) (*Log, error) {
	return open(path, now, maxEntries, true)
}

// open is Open; without fsync, nothing is made durable (for FuzzOpen,
// which opens a file per input).
func open(path string, now time.Time, maxEntries int, fsync bool) (*Log, error) {
	if maxEntries < 1 {
		return nil, fmt.Errorf("claimlog: maxEntries %d, want at least 1", maxEntries)
	}
	f, err := openLocked(path)
	if err != nil {
		return nil, err
	}
	l := &Log{
		path:         path,
		max:          maxEntries,
		live:         make(map[[16]byte]int64),
		compactSlack: compactSlack,
		fsync:        fsync,
		stop:         make(chan struct{}),
		done:         make(chan struct{}),
	}
	l.recovery, err = read(f, path, now.Unix(), l.live)
	if err != nil {
		f.Close()
		return nil, err
	}
	l.recovery.Live = len(l.live)
	l.f = f
	if err := l.rewrite(); err != nil {
		l.f.Close()
		return nil, err
	}
	go l.syncLoop()
	return l, nil
}

// openLocked opens path for appending and takes an exclusive flock on it.
// The file is replaced by rename when it is rewritten, so the lock taken
// must be on the file path names now: a lock won on a file just renamed
// over is released and taken again.
func openLocked(path string) (*os.File, error) {
	for range 10 {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return nil, fmt.Errorf("claimlog: %w", err)
		}
		if err := lockFile(f); err != nil {
			f.Close()
			if errors.Is(err, errLocked) {
				return nil, fmt.Errorf("claimlog: %s is used by another ottr serve (or another process): %w", path, err)
			}
			return nil, fmt.Errorf("claimlog: lock %s: %w", path, err)
		}
		same, err := samePath(f, path)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("claimlog: %w", err)
		}
		if same {
			return f, nil
		}
		f.Close()
	}
	return nil, fmt.Errorf("claimlog: %s keeps being replaced: is another ottr serve using it?", path)
}

// samePath reports whether path still names the file f.
func samePath(f *os.File, path string) (bool, error) {
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	pi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return os.SameFile(fi, pi), nil
}

// read parses the claim log in f into live (the claims expiring after now)
// and reports what it read. Only a wrong header is an error.
func read(f *os.File, path string, now int64, live map[[16]byte]int64) (Recovery, error) {
	var rec Recovery
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return rec, fmt.Errorf("claimlog: read %s: %w", path, err)
	}
	r := bufio.NewReaderSize(f, 64<<10)
	var h [len(header)]byte
	n, err := io.ReadFull(r, h[:])
	switch {
	case n == 0 && err == io.EOF:
		return rec, nil // a new file
	case err == io.ErrUnexpectedEOF || (err == nil && string(h[:]) != header):
		return rec, fmt.Errorf("claimlog: %s is not a token claim log (header %q, want %q)", path, h[:n], header)
	case err != nil:
		return rec, fmt.Errorf("claimlog: read %s: %w", path, err)
	}
	var b [RecordSize]byte
	for {
		n, err := io.ReadFull(r, b[:])
		if err == io.EOF {
			return rec, nil
		}
		if err == io.ErrUnexpectedEOF {
			rec.Dropped = int64(n)
			return rec, nil
		}
		if err != nil {
			return rec, fmt.Errorf("claimlog: read %s: %w", path, err)
		}
		key, exp, ok := decode(&b)
		if !ok {
			rest, err := io.Copy(io.Discard, r)
			if err != nil {
				return rec, fmt.Errorf("claimlog: read %s: %w", path, err)
			}
			rec.Dropped = RecordSize + rest
			return rec, nil
		}
		rec.Records++
		if exp > now && exp > live[key] {
			live[key] = exp
		}
	}
}

// encode writes the record of key and exp into b.
func encode(b *[RecordSize]byte, key [16]byte, exp int64) {
	copy(b[:16], key[:])
	binary.BigEndian.PutUint64(b[16:24], uint64(exp))
	binary.BigEndian.PutUint32(b[24:], crc32.Checksum(b[:24], castagnoli))
}

// decode reads the record in b; ok is false when its checksum is wrong.
func decode(b *[RecordSize]byte) (key [16]byte, exp int64, ok bool) {
	if crc32.Checksum(b[:24], castagnoli) != binary.BigEndian.Uint32(b[24:]) {
		return key, 0, false
	}
	copy(key[:], b[:16])
	return key, int64(binary.BigEndian.Uint64(b[16:24])), true
}

// Recovery returns what Open read from the file.
func (l *Log) Recovery() Recovery { return l.recovery }

// ClaimToken implements auth.ClaimStore: it records key as used until
// expires and reports whether it was unused at now (absent, or recorded
// with an expiry at or before now). fresh=true is returned once the record
// is written to the file (see the package's durability contract). On error
// the claim is not recorded and the token must be refused.
func (l *Log) ClaimToken(ctx context.Context, key [16]byte, expires, now time.Time) (fresh bool, err error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("claimlog: claim token: %w", err)
	}
	exp := ceilUnix(expires)
	nowS := now.Unix()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false, ErrClosed
	}
	if l.err != nil {
		return false, l.err
	}
	l.prune(nowS - pruneSlack)
	old, had := l.live[key]
	if had && old > nowS {
		return false, nil
	}
	if !had && len(l.live) >= l.max {
		return false, ErrFull
	}
	encode(&l.buf, key, exp)
	if n, err := l.f.Write(l.buf[:]); err != nil {
		if n > 0 {
			// A partial record would misalign every later one: cut it
			// off, or stop trusting the file.
			if terr := l.f.Truncate(l.size); terr != nil {
				l.err = fmt.Errorf("claimlog: %s has a partial record (%w) that could not be cut off (%v): restart ottr", l.path, err, terr)
			}
		}
		return false, fmt.Errorf("claimlog: append to %s: %w", l.path, err)
	}
	l.live[key] = exp
	l.byTime.push(expiryEntry{at: exp, key: key})
	l.records++
	l.size += RecordSize
	l.dirty = true
	if l.records > 2*len(l.live)+l.compactSlack && l.records >= l.retryAt {
		// The claim is in the file already; a failed rewrite leaves the
		// old file, to be tried again after compactSlack more claims.
		if err := l.rewrite(); err != nil {
			l.retryAt = l.records + l.compactSlack
		}
	}
	return true, nil
}

// Len returns the number of claims not expired at now.
func (l *Log) Len(now time.Time) int {
	nowS := now.Unix()
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, exp := range l.live {
		if exp > nowS {
			n++
		}
	}
	return n
}

// prune drops the claims that expired at or before cutoff.
func (l *Log) prune(cutoff int64) {
	for len(l.byTime) > 0 && l.byTime[0].at <= cutoff {
		e := l.byTime.pop()
		if at, ok := l.live[e.key]; ok && at <= cutoff {
			delete(l.live, e.key)
		}
	}
}

// rewrite replaces the file with one holding only the claims in the map,
// made durable (temporary file, fsync, rename, fsync of the directory),
// and appends to it from then on. The caller holds mu (or is Open).
func (l *Log) rewrite() error {
	tmpPath := l.path + ".tmp"
	tmp, err := os.OpenFile(tmpPath, os.O_RDWR|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("claimlog: rewrite %s: %w", l.path, err)
	}
	fail := func(err error) error {
		tmp.Close()
		os.Remove(tmpPath)
		return fmt.Errorf("claimlog: rewrite %s: %w", l.path, err)
	}
	// Locked before it is renamed into place, so that no other Open can
	// take the new file between the rename and the old file's close.
	if err := lockFile(tmp); err != nil {
		return fail(err)
	}
	w := bufio.NewWriterSize(tmp, 64<<10)
	w.WriteString(header)
	var b [RecordSize]byte
	heap := make(expiryHeap, 0, len(l.live))
	for key, exp := range l.live {
		encode(&b, key, exp)
		w.Write(b[:])
		heap = append(heap, expiryEntry{at: exp, key: key})
	}
	if err := w.Flush(); err != nil {
		return fail(err)
	}
	if l.fsync {
		if err := tmp.Sync(); err != nil {
			return fail(err)
		}
	}
	if err := os.Rename(tmpPath, l.path); err != nil {
		return fail(err)
	}
	if !l.fsync {
		l.swap(tmp, heap)
		return nil
	}
	if err := syncDir(filepath.Dir(l.path)); err != nil {
		// The rename may not be durable yet, but the new file is complete
		// and holds every live claim: go on with it.
		err = fmt.Errorf("claimlog: rewrite %s: %w", l.path, err)
		l.swap(tmp, heap)
		return err
	}
	l.swap(tmp, heap)
	return nil
}

// swap makes f, just renamed into place and holding exactly the map's
// claims, the file appended to.
func (l *Log) swap(f *os.File, heap expiryHeap) {
	l.f.Close()
	l.f = f
	heap.init()
	l.byTime = heap
	l.records = len(l.live)
	l.size = int64(len(header)) + int64(len(l.live))*RecordSize
}

// syncDir fsyncs the directory dir, making a rename in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncLoop fsyncs the file once per syncEvery when something was appended,
// until Close.
func (l *Log) syncLoop() {
	defer close(l.done)
	t := time.NewTicker(syncEvery)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		l.mu.Lock()
		f, dirty := l.f, l.dirty && l.err == nil
		l.dirty = false
		l.mu.Unlock()
		if !dirty {
			continue
		}
		// Outside mu: logins go on appending meanwhile. A rewrite may
		// close f; it fsynced the new file, which holds f's claims.
		if err := f.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
			l.mu.Lock()
			if l.err == nil {
				// After a failed fsync the kernel may have dropped the
				// pages: the appended claims are not known to be on disk.
				l.err = fmt.Errorf("claimlog: fsync %s: %w: restart ottr", l.path, err)
			}
			l.mu.Unlock()
		}
	}
}

// Close stops the background fsync, fsyncs the file and closes it,
// releasing its lock. Claims after Close fail with ErrClosed.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	close(l.stop)
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	var err error
	if l.fsync {
		err = l.f.Sync()
	}
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("claimlog: close %s: %w", l.path, err)
	}
	return nil
}

// ceilUnix returns t in Unix seconds, rounded up: a claim is never
// forgotten before its expiry.
func ceilUnix(t time.Time) int64 {
	s := t.Unix()
	if t.Nanosecond() > 0 {
		s++
	}
	return s
}

// expiryEntry is one claim's expiry in the heap.
type expiryEntry struct {
	at  int64
	key [16]byte
}

// expiryHeap is a min-heap of claims by expiry (without container/heap,
// whose interface boxes every entry pushed).
type expiryHeap []expiryEntry

func (h *expiryHeap) push(e expiryEntry) {
	*h = append(*h, e)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if s[p].at <= s[i].at {
			break
		}
		s[p], s[i] = s[i], s[p]
		i = p
	}
}

func (h *expiryHeap) pop() expiryEntry {
	s := *h
	top := s[0]
	n := len(s) - 1
	s[0] = s[n]
	*h = s[:n]
	h.down(0)
	return top
}

func (h expiryHeap) down(i int) {
	for {
		c := 2*i + 1
		if c >= len(h) {
			return
		}
		if r := c + 1; r < len(h) && h[r].at < h[c].at {
			c = r
		}
		if h[i].at <= h[c].at {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}

func (h expiryHeap) init() {
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}
