package claimlog

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

var t0 = time.Unix(1764387007, 0)

// key returns a distinct key for i.
func key(i int) [16]byte {
	var k [16]byte
	binary.BigEndian.PutUint64(k[8:], uint64(i))
	k[0] = 0xc1
	return k
}

func mustOpen(t testing.TB, path string, now time.Time, max int) *Log {
	t.Helper()
	l, err := Open(path, now, max)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func claim(t testing.TB, l *Log, k [16]byte, expires, now time.Time) bool {
	t.Helper()
	fresh, err := l.ClaimToken(context.Background(), k, expires, now)
	if err != nil {
		t.Fatalf("claim %x at %v: %v", k[8:], now.Sub(t0), err)
	}
	return fresh
}

func fileSize(t testing.TB, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func TestClaimReplayExpiry(t *testing.T) {
	type step struct {
		key       int
		expires   time.Duration // after t0
		now       time.Duration // after t0
		wantFresh bool
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"first use", []step{{1, 90 * time.Second, 0, true}}},
		{"replay", []step{{1, 90 * time.Second, 0, true}, {1, 90 * time.Second, time.Second, false}}},
		{"replay one second before expiry", []step{{1, 90 * time.Second, 0, true}, {1, 90 * time.Second, 89 * time.Second, false}}},
		{"again at expiry", []step{{1, 90 * time.Second, 0, true}, {1, 90 * time.Second, 90 * time.Second, true}}},
		{"expiry rounded up", []step{{1, 90*time.Second + time.Millisecond, 0, true}, {1, 91 * time.Second, 90*time.Second + 500*time.Millisecond, false}}},
		{"again long after, then refused", []step{{1, 90 * time.Second, 0, true}, {1, 1000 * time.Second, 900 * time.Second, true}, {1, 1000 * time.Second, 901 * time.Second, false}}},
		{"distinct keys", []step{{1, 90 * time.Second, 0, true}, {2, 90 * time.Second, 0, true}, {1, 90 * time.Second, 0, false}, {2, 90 * time.Second, 0, false}}},
		{"an earlier clock after a later one", []step{{1, 30 * time.Second, 0, true}, {2, 90 * time.Second, 35 * time.Second, true}, {1, 30 * time.Second, 29 * time.Second, false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), FileName)
			l := mustOpen(t, path, t0, 100)
			for i, s := range tc.steps {
				if got := claim(t, l, key(s.key), t0.Add(s.expires), t0.Add(s.now)); got != s.wantFresh {
					t.Errorf("step %d (key %d at %v): fresh %v, want %v", i, s.key, s.now, got, s.wantFresh)
				}
			}
		})
	}
}

func TestFileModeAndFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	l := mustOpen(t, path, t0, 10)
	claim(t, l, key(7), t0.Add(90*time.Second), t0)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != len(header)+RecordSize || string(b[:len(header)]) != header {
		t.Fatalf("file %q: want the header and one record", b)
	}
	rec := b[len(header):]
	k := key(7)
	if string(rec[:16]) != string(k[:]) || binary.BigEndian.Uint64(rec[16:24]) != uint64(t0.Unix()+90) {
		t.Errorf("record %x: want key %x, expiry %d", rec, k, t0.Unix()+90)
	}
}

func TestRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	l := mustOpen(t, path, t0, 10)
	claim(t, l, key(1), t0.Add(30*time.Second), t0)
	claim(t, l, key(2), t0.Add(90*time.Second), t0)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.ClaimToken(context.Background(), key(3), t0.Add(time.Minute), t0); !errors.Is(err, ErrClosed) {
		t.Errorf("claim after Close: %v, want ErrClosed", err)
	}
	for _, tc := range []struct {
		name     string
		reopen   time.Duration
		wantLive int
		fresh    map[int]bool // key -> fresh at reopen time
	}{
		{"at once", 0, 2, map[int]bool{1: false, 2: false, 3: true}},
		{"before the first expiry", 29 * time.Second, 2, map[int]bool{1: false, 2: false}},
		{"at the first expiry", 30 * time.Second, 1, map[int]bool{1: true, 2: false}},
		{"after both", 90 * time.Second, 0, map[int]bool{1: true, 2: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A copy of the closed log, reopened later.
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(t.TempDir(), FileName)
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
			now := t0.Add(tc.reopen)
			l := mustOpen(t, p, now, 10)
			if r := l.Recovery(); r.Records != 2 || r.Live != tc.wantLive || r.Dropped != 0 {
				t.Errorf("Recovery %+v, want 2 records, %d live, none dropped", r, tc.wantLive)
			}
			if got, want := fileSize(t, p), int64(len(header)+tc.wantLive*RecordSize); got != want {
				t.Errorf("rewritten file: %d bytes, want %d", got, want)
			}
			for k, want := range tc.fresh {
				if got := claim(t, l, key(k), now.Add(90*time.Second), now); got != want {
					t.Errorf("key %d: fresh %v, want %v", k, got, want)
				}
			}
		})
	}
}

// TestKilledProcessKeepsClaims claims in a child process that is then
// SIGKILLed without Close: its claims are in the file (one write each), so
// they are refused after it.
func TestKilledProcessKeepsClaims(t *testing.T) {
	if path := os.Getenv("CLAIMLOG_CHILD"); path != "" {
		l, err := Open(path, time.Now(), 100)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		for i := range 5 {
			if _, err := l.ClaimToken(context.Background(), key(i), time.Now().Add(time.Hour), time.Now()); err != nil {
				fmt.Println("error:", err)
				os.Exit(1)
			}
		}
		fmt.Println("claimed")
		select {}
	}
	path := filepath.Join(t.TempDir(), FileName)
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledProcessKeepsClaims$")
	cmd.Env = append(os.Environ(), "CLAIMLOG_CHILD="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if line != "claimed\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child: %q, %v", line, err)
	}
	if _, err := Open(path, time.Now(), 100); err == nil || !strings.Contains(err.Error(), "used by another ottr serve") {
		t.Errorf("Open while the child holds the log: %v, want used by another ottr serve", err)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	l := mustOpen(t, path, time.Now(), 100)
	if r := l.Recovery(); r.Live != 5 {
		t.Errorf("after SIGKILL: Recovery %+v, want 5 live", r)
	}
	for i := range 6 {
		got := claim(t, l, key(i), time.Now().Add(time.Minute), time.Now())
		if want := i == 5; got != want {
			t.Errorf("key %d after SIGKILL: fresh %v, want %v", i, got, want)
		}
	}
}

// writeLog writes a claim log of n records, key(i) expiring at t0+1h.
func writeLog(t testing.TB, path string, n int) []byte {
	t.Helper()
	b := []byte(header)
	var r [RecordSize]byte
	for i := range n {
		encode(&r, key(i), t0.Unix()+3600)
		b = append(b, r[:]...)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTornTail(t *testing.T) {
	for _, tc := range []struct {
		name        string
		edit        func([]byte) []byte // of a log of 4 records
		wantRecords int
		wantDropped int64
	}{
		{"intact", func(b []byte) []byte { return b }, 4, 0},
		{"last record short by 1 byte", func(b []byte) []byte { return b[:len(b)-1] }, 3, RecordSize - 1},
		{"last record short by 5 bytes", func(b []byte) []byte { return b[:len(b)-5] }, 3, RecordSize - 5},
		{"only 1 byte of the last record", func(b []byte) []byte { return b[:len(b)-RecordSize+1] }, 3, 1},
		{"garbage appended", func(b []byte) []byte { return append(b, "not a record"...) }, 4, 12},
		{"a record's worth of garbage appended", func(b []byte) []byte { return append(b, strings.Repeat("x", RecordSize)...) }, 4, RecordSize},
		{"zeros appended", func(b []byte) []byte { return append(b, make([]byte, 3*RecordSize)...) }, 4, 3 * RecordSize},
		{"the third record damaged", func(b []byte) []byte { b[len(header)+2*RecordSize+20] ^= 1; return b }, 2, 2 * RecordSize},
		{"the last checksum damaged", func(b []byte) []byte { b[len(b)-1] ^= 0x80; return b }, 3, RecordSize},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), FileName)
			b := tc.edit(writeLog(t, path, 4))
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			l := mustOpen(t, path, t0, 100)
			r := l.Recovery()
			if r.Records != tc.wantRecords || r.Live != tc.wantRecords || r.Dropped != tc.wantDropped {
				t.Errorf("Recovery %+v, want %d records, %d live, %d dropped", r, tc.wantRecords, tc.wantRecords, tc.wantDropped)
			}
			for i := range 4 {
				if got, want := claim(t, l, key(i), t0.Add(time.Minute), t0), i >= tc.wantRecords; got != want {
					t.Errorf("key %d: fresh %v, want %v", i, got, want)
				}
			}
			// The rewrite dropped the damage: the claims just made follow
			// the kept ones and all read back.
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = mustOpen(t, path, t0, 100)
			if r := l.Recovery(); r.Records != 4 || r.Dropped != 0 {
				t.Errorf("reopened: Recovery %+v, want 4 records, none dropped", r)
			}
		})
	}
}

func TestBadHeader(t *testing.T) {
	for _, tc := range []struct {
		name    string
		content string
		wantErr bool
	}{
		{"empty file", "", false},
		{"header only", header, false},
		{"another file", "SQLite format 3\x00 and so on and so forth", true},
		{"a partial header", header[:5], true},
		{"another version", "ottr claims 2\n" + strings.Repeat("\x00", RecordSize), true},
		{"one byte", "o", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), FileName)
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			l, err := Open(path, t0, 10)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Open: %v, want error %v", err, tc.wantErr)
			}
			if err != nil {
				if !strings.Contains(err.Error(), path) {
					t.Errorf("error %q does not name the file", err)
				}
				if b, _ := os.ReadFile(path); string(b) != tc.content {
					t.Errorf("the file was changed to %q", b)
				}
				return
			}
			defer l.Close()
			if b, _ := os.ReadFile(path); string(b) != header {
				t.Errorf("file %q after Open, want the header", b)
			}
		})
	}
}

func TestFull(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	l := mustOpen(t, path, t0, 3)
	exp := t0.Add(90 * time.Second)
	for i := range 3 {
		if !claim(t, l, key(i), exp, t0) {
			t.Fatalf("key %d not fresh", i)
		}
	}
	size := fileSize(t, path)
	if _, err := l.ClaimToken(context.Background(), key(3), exp, t0); !errors.Is(err, ErrFull) {
		t.Fatalf("fourth claim: %v, want ErrFull", err)
	}
	if got := fileSize(t, path); got != size {
		t.Errorf("a refused claim grew the file from %d to %d bytes", size, got)
	}
	if claim(t, l, key(1), exp, t0) {
		t.Error("a replay while full was fresh")
	}
	// Once the claims expired (and pruneSlack passed), there is room.
	later := exp.Add((pruneSlack + 1) * time.Second)
	for i := 3; i < 6; i++ {
		if !claim(t, l, key(i), later.Add(time.Minute), later) {
			t.Errorf("key %d after expiry: not fresh", i)
		}
	}
	// An expired claim of a full log is claimed again in its place.
	l2 := mustOpen(t, filepath.Join(t.TempDir(), FileName), t0, 1)
	claim(t, l2, key(1), t0.Add(time.Second), t0)
	if !claim(t, l2, key(1), t0.Add(time.Minute), t0.Add(2*time.Second)) {
		t.Error("an expired claim in a full log: not fresh")
	}
	if _, err := Open(path+"x", t0, 0); err == nil {
		t.Error("Open with maxEntries 0: no error")
	}
}

// TestAppendFailure: a claim whose record cannot be written fails and is
// not remembered.
func TestAppendFailure(t *testing.T) {
	l := mustOpen(t, filepath.Join(t.TempDir(), FileName), t0, 10)
	l.mu.Lock()
	l.f.Close() // every write now fails
	l.mu.Unlock()
	if fresh, err := l.ClaimToken(context.Background(), key(1), t0.Add(time.Minute), t0); err == nil || fresh {
		t.Fatalf("claim with a failing file: %v, %v; want an error", fresh, err)
	}
	if n := l.Len(t0); n != 0 {
		t.Errorf("%d claims remembered after a failed append", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.ClaimToken(ctx, key(2), t0.Add(time.Minute), t0); !errors.Is(err, context.Canceled) {
		t.Errorf("claim with a canceled context: %v", err)
	}
}

func TestCompaction(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	l := mustOpen(t, path, t0, 1000)
	l.compactSlack = 16
	// 40 short-lived claims, then 10 long-lived ones.
	for i := range 40 {
		claim(t, l, key(i), t0.Add(10*time.Second), t0)
	}
	for i := 100; i < 110; i++ {
		claim(t, l, key(i), t0.Add(time.Hour), t0)
	}
	full := fileSize(t, path)
	if want := int64(len(header) + 50*RecordSize); full != want {
		t.Fatalf("before expiry: %d bytes, want %d (no rewrite while everything is live)", full, want)
	}
	// After the short-lived ones expired, new claims make the file hold
	// more than 2×live+16 records: it is rewritten with the live ones.
	now := t0.Add(time.Minute)
	rewritten := false
	for i := 200; i < 210; i++ {
		claim(t, l, key(i), now.Add(time.Minute), now)
		if fileSize(t, path) < full {
			rewritten = true
			break
		}
	}
	if !rewritten {
		t.Fatalf("file never shrank from %d bytes", full)
	}
	l.mu.Lock()
	records, live := l.records, len(l.live)
	l.mu.Unlock()
	if records != live || fileSize(t, path) != int64(len(header)+live*RecordSize) {
		t.Errorf("after the rewrite: %d records, %d live, %d bytes", records, live, fileSize(t, path))
	}
	// And on with appending, then reopen: long-lived claims still refused,
	// expired ones fresh.
	claim(t, l, key(300), now.Add(time.Minute), now)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, path, now, 1000)
	if r := l.Recovery(); r.Dropped != 0 || r.Records != r.Live {
		t.Errorf("reopened: Recovery %+v", r)
	}
	for _, k := range []int{100, 109, 200, 300} {
		if claim(t, l, key(k), now.Add(time.Minute), now) {
			t.Errorf("live key %d fresh after compaction", k)
		}
	}
	for _, k := range []int{0, 39} {
		if !claim(t, l, key(k), now.Add(time.Minute), now) {
			t.Errorf("expired key %d not fresh after compaction", k)
		}
	}
}

func TestSecondOpenLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	l, err := Open(path, t0, 10)
	if err != nil {
		t.Fatal(err)
	}
	claim(t, l, key(1), t0.Add(time.Minute), t0)
	l2, err := Open(path, t0, 10)
	if err == nil {
		l2.Close()
		t.Fatal("a second Open of a log in use succeeded")
	}
	if !strings.Contains(err.Error(), "used by another ottr serve") || !strings.Contains(err.Error(), path) {
		t.Errorf("second Open: %q, want the file and \"used by another ottr serve\"", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2 = mustOpen(t, path, t0, 10)
	if claim(t, l2, key(1), t0.Add(time.Minute), t0) {
		t.Error("claim of the first Log forgotten")
	}
}

// TestConcurrentClaims: goroutines claiming the same keys and distinct
// ones at once, with rewrites under way: exactly one claim of each key is
// fresh, and every claim reads back.
func TestConcurrentClaims(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	l := mustOpen(t, path, t0, 100000)
	l.compactSlack = 32
	const goroutines, shared, own = 8, 200, 200
	var fresh [shared]atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			for i := range shared + own {
				var k [16]byte
				if i < shared {
					k = key(i)
				} else {
					k = key(1000*(g+1) + i)
				}
				// Some short-lived claims, so that rewrites happen.
				exp := t0.Add(time.Hour)
				now := t0
				if i%4 != 0 && i >= shared {
					exp = t0.Add(time.Second)
				}
				if i > shared+own/2 {
					now = t0.Add(time.Minute)
				}
				f, err := l.ClaimToken(context.Background(), k, exp, now)
				if err != nil {
					errs <- err
					return
				}
				if i < shared && f {
					fresh[i].Add(1)
				}
				if i >= shared && !f {
					errs <- fmt.Errorf("goroutine %d: own key %d not fresh", g, i)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i := range fresh {
		if n := fresh[i].Load(); n != 1 {
			t.Errorf("shared key %d: %d fresh claims, want 1", i, n)
		}
	}
	l.mu.Lock()
	records := l.records
	l.mu.Unlock()
	if records >= shared+goroutines*own {
		t.Errorf("%d records in the file: no rewrite happened", records)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, path, t0, 100000)
	for i := range shared {
		if claim(t, l, key(i), t0.Add(time.Hour), t0) {
			t.Errorf("shared key %d fresh after reopening", i)
		}
	}
}

func FuzzOpen(f *testing.F) {
	var r [RecordSize]byte
	encode(&r, key(1), t0.Unix()+60)
	f.Add(r[:])
	f.Add(append(r[:], r[:10]...))
	f.Add(append(append([]byte{}, r[:]...), make([]byte, RecordSize)...))
	encode(&r, key(2), t0.Unix()-60) // expired
	f.Add(r[:])
	f.Add([]byte{})
	f.Add([]byte("garbage"))
	// One file, rewritten for each input (a directory per input would
	// halve the rate).
	path := filepath.Join(f.TempDir(), FileName)
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, append([]byte(header), data...), 0o600); err != nil {
			t.Fatal(err)
		}
		// As Open, without the fsyncs that would make this 400 inputs/s.
		l, err := open(path, t0, 1<<20, false)
		if err != nil {
			t.Fatalf("Open with a good header: %v", err)
		}
		defer l.Close()
		rec := l.Recovery()
		whole := len(data) / RecordSize
		if rec.Records > whole || rec.Live > rec.Records || l.Len(t0) != rec.Live {
			t.Fatalf("Recovery %+v, Len %d from %d whole records", rec, l.Len(t0), whole)
		}
		if int64(rec.Records)*RecordSize+rec.Dropped != int64(len(data)) {
			t.Fatalf("Recovery %+v does not account for %d bytes", rec, len(data))
		}
		if got, want := fileSize(t, path), int64(len(header)+rec.Live*RecordSize); got != want {
			t.Fatalf("rewritten file: %d bytes, want %d", got, want)
		}
	})
}

// BenchmarkClaimToken is one fresh claim: a map insert and one record
// appended with one write(2).
func BenchmarkClaimToken(b *testing.B) {
	l := mustOpen(b, filepath.Join(b.TempDir(), FileName), t0, 1<<24)
	exp := t0.Add(time.Minute)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := l.ClaimToken(context.Background(), key(i), exp, t0); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
