package storagetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"ottr.im/ottr/storage"
)

// UploadStore is the HTTP upload storage (XEP-0363) the suite exercises;
// see the upload module's Store for the contract of each method.
type UploadStore interface {
	ReserveUpload(ctx context.Context, slot storage.UploadSlot, lim storage.UploadLimits, now time.Time) error
	ClaimUpload(ctx context.Context, id string, now time.Time) (storage.UploadSlot, error)
	ReleaseUpload(ctx context.Context, id string) error
	CompleteUpload(ctx context.Context, id string, now time.Time) error
	UploadedFile(ctx context.Context, id string) (storage.UploadSlot, error)
	ExpiredUploads(ctx context.Context, slotsBefore, writingBefore, filesBefore time.Time, max int) ([]string, error)
	DeleteUploads(ctx context.Context, ids []string) error
}

// TestUpload runs the HTTP upload conformance suite; newStore is called
// as by [TestAccounts].
func TestUpload(t *testing.T, newStore func(t *testing.T) UploadStore) {
	t.Helper()
	runSuite(t, newStore, uploadCases)
}

// uploadT0 is the suite's clock origin.
var uploadT0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// uploadRoomy never refuses a slot.
var uploadRoomy = storage.UploadLimits{Quota: roomy}

// slotFor returns slot id of user@example.com for size bytes, issued at
// uploadT0 and expiring 5 minutes later.
func slotFor(user, id string, size int64) storage.UploadSlot {
	return storage.UploadSlot{
		ID: id, Host: "example.com", Username: user,
		Filename: "photo " + id + ".jpg", Size: size, ContentType: "image/jpeg",
		Created: uploadT0, Expires: uploadT0.Add(5 * time.Minute),
	}
}

// mustReserve reserves slot with no quota in the way.
func mustReserve(t *testing.T, ctx context.Context, s UploadStore, slot storage.UploadSlot) {
	t.Helper()
	if err := s.ReserveUpload(ctx, slot, uploadRoomy, uploadT0); err != nil {
		t.Fatalf("ReserveUpload %s: %v", slot.ID, err)
	}
}

// mustUpload reserves, claims and completes slot at done.
func mustUpload(t *testing.T, ctx context.Context, s UploadStore, slot storage.UploadSlot, done time.Time) {
	t.Helper()
	mustReserve(t, ctx, s, slot)
	if _, err := s.ClaimUpload(ctx, slot.ID, uploadT0); err != nil {
		t.Fatalf("ClaimUpload %s: %v", slot.ID, err)
	}
	if err := s.CompleteUpload(ctx, slot.ID, done); err != nil {
		t.Fatalf("CompleteUpload %s: %v", slot.ID, err)
	}
}

var uploadCases = []suiteCase[UploadStore]{
	{"LifeOfASlot", func(t *testing.T, ctx context.Context, s UploadStore) {
		slot := slotFor("alice", "a1", 1000)
		mustReserve(t, ctx, s, slot)
		if err := s.ReserveUpload(ctx, slot, uploadRoomy, uploadT0); !errors.Is(err, storage.ErrExists) {
			t.Errorf("the same id again: %v, want ErrExists", err)
		}
		if _, err := s.UploadedFile(ctx, "a1"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("UploadedFile of a pending slot: %v, want ErrNotFound", err)
		}
		got, err := s.ClaimUpload(ctx, "a1", uploadT0.Add(time.Minute))
		if err != nil {
			t.Fatalf("ClaimUpload: %v", err)
		}
		want := slot
		want.State = storage.UploadWriting
		if got != want {
			t.Errorf("ClaimUpload = %+v, want %+v", got, want)
		}
		// One PUT at a time.
		if _, err := s.ClaimUpload(ctx, "a1", uploadT0.Add(time.Minute)); !errors.Is(err, storage.ErrUploadUsed) {
			t.Errorf("claiming twice: %v, want ErrUploadUsed", err)
		}
		// A failed PUT gives it back; another may claim it.
		if err := s.ReleaseUpload(ctx, "a1"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ClaimUpload(ctx, "a1", uploadT0.Add(2*time.Minute)); err != nil {
			t.Fatalf("claiming after a release: %v", err)
		}
		done := uploadT0.Add(3 * time.Minute)
		if err := s.CompleteUpload(ctx, "a1", done); err != nil {
			t.Fatal(err)
		}
		if err := s.CompleteUpload(ctx, "a1", done); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("completing twice: %v, want ErrNotFound", err)
		}
		// Single use: once done, never claimed again, not even released.
		if err := s.ReleaseUpload(ctx, "a1"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ClaimUpload(ctx, "a1", uploadT0.Add(4*time.Minute)); !errors.Is(err, storage.ErrUploadUsed) {
			t.Errorf("claiming a done slot: %v, want ErrUploadUsed", err)
		}
		file, err := s.UploadedFile(ctx, "a1")
		want.State, want.Uploaded = storage.UploadDone, done
		if err != nil || file != want {
			t.Errorf("UploadedFile = %+v, %v; want %+v", file, err, want)
		}
	}},
	{"UnknownAndExpired", func(t *testing.T, ctx context.Context, s UploadStore) {
		if _, err := s.ClaimUpload(ctx, "nope", uploadT0); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("claiming an unknown slot: %v, want ErrNotFound", err)
		}
		if _, err := s.UploadedFile(ctx, "nope"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("UploadedFile of an unknown slot: %v, want ErrNotFound", err)
		}
		if err := s.CompleteUpload(ctx, "nope", uploadT0); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("completing an unknown slot: %v, want ErrNotFound", err)
		}
		slot := slotFor("alice", "e1", 10)
		mustReserve(t, ctx, s, slot)
		if _, err := s.ClaimUpload(ctx, "e1", slot.Expires); !errors.Is(err, storage.ErrUploadExpired) {
			t.Errorf("claiming at the expiry: %v, want ErrUploadExpired", err)
		}
		if err := s.CompleteUpload(ctx, "e1", uploadT0); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("completing a slot not claimed: %v, want ErrNotFound", err)
		}
	}},
	{"Quota", func(t *testing.T, ctx context.Context, s UploadStore) {
		lim := storage.UploadLimits{Quota: storage.Quota{Count: 3, Bytes: 1000}}
		reserve := func(user, id string, size int64, now time.Time) error {
			slot := slotFor(user, id, size)
			slot.Created, slot.Expires = now, now.Add(5*time.Minute)
			return s.ReserveUpload(ctx, slot, lim, now)
		}
		for i, size := range []int64{400, 400} {
			if err := reserve("alice", fmt.Sprint("q", i), size, uploadT0); err != nil {
				t.Fatalf("slot %d: %v", i, err)
			}
		}
		if err := reserve("alice", "big", 201, uploadT0); !errors.Is(err, storage.ErrQuota) {
			t.Errorf("past the bytes: %v, want ErrQuota", err)
		}
		if err := reserve("bob", "bob1", 1000, uploadT0); err != nil {
			t.Errorf("bob's quota is his own: %v", err)
		}
		if err := reserve("alice", "q2", 200, uploadT0); err != nil {
			t.Fatalf("up to the bytes: %v", err)
		}
		if err := reserve("alice", "q3", 0, uploadT0); !errors.Is(err, storage.ErrQuota) {
			t.Errorf("past the count: %v, want ErrQuota", err)
		}
		// Pending slots that expired no longer count; files do.
		if _, err := s.ClaimUpload(ctx, "q0", uploadT0); err != nil {
			t.Fatal(err)
		}
		if err := s.CompleteUpload(ctx, "q0", uploadT0); err != nil {
			t.Fatal(err)
		}
		later := uploadT0.Add(5 * time.Minute)
		if err := reserve("alice", "q4", 600, later); err != nil {
			t.Errorf("after the pending slots expired: %v", err)
		}
		if err := reserve("alice", "q5", 1, later); !errors.Is(err, storage.ErrQuota) {
			t.Errorf("the file and the new slot fill the quota: %v, want ErrQuota", err)
		}
		// A slot being written counts even past its expiry.
		if _, err := s.ClaimUpload(ctx, "q4", later.Add(-time.Second)); err != nil {
			t.Fatal(err)
		}
		if err := reserve("alice", "q6", 1, later.Add(10*time.Minute)); !errors.Is(err, storage.ErrQuota) {
			t.Errorf("with a slot being written past its expiry: %v, want ErrQuota", err)
		}
	}},
	{"Total", func(t *testing.T, ctx context.Context, s UploadStore) {
		lim := storage.UploadLimits{Quota: roomy, Total: 1000}
		for i, user := range []string{"alice", "bob"} {
			if err := s.ReserveUpload(ctx, slotFor(user, user, 500), lim, uploadT0); err != nil {
				t.Fatalf("slot %d: %v", i, err)
			}
		}
		if err := s.ReserveUpload(ctx, slotFor("carol", "carol", 1), lim, uploadT0); !errors.Is(err, storage.ErrQuota) {
			t.Errorf("past the total: %v, want ErrQuota", err)
		}
	}},
	{"ConcurrentReserves", func(t *testing.T, ctx context.Context, s UploadStore) {
		lim := storage.UploadLimits{Quota: storage.Quota{Count: 5, Bytes: 1 << 20}}
		var wg sync.WaitGroup
		errs := make([]error, 20)
		for i := range errs {
			wg.Go(func() { errs[i] = s.ReserveUpload(ctx, slotFor("alice", fmt.Sprint("c", i), 1), lim, uploadT0) })
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, storage.ErrQuota):
				t.Errorf("ReserveUpload: %v", err)
			}
		}
		if ok != 5 {
			t.Errorf("%d slots reserved at once under a quota of 5", ok)
		}
	}},
	{"ConcurrentClaims", func(t *testing.T, ctx context.Context, s UploadStore) {
		mustReserve(t, ctx, s, slotFor("alice", "race", 1))
		var wg sync.WaitGroup
		errs := make([]error, 10)
		for i := range errs {
			wg.Go(func() { _, errs[i] = s.ClaimUpload(ctx, "race", uploadT0) })
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			if err == nil {
				ok++
			} else if !errors.Is(err, storage.ErrUploadUsed) {
				t.Errorf("ClaimUpload: %v", err)
			}
		}
		if ok != 1 {
			t.Errorf("%d PUTs claimed one slot", ok)
		}
	}},
	{"Expired", func(t *testing.T, ctx context.Context, s UploadStore) {
		mustReserve(t, ctx, s, slotFor("alice", "pending", 1))
		writing := slotFor("alice", "writing", 1)
		mustReserve(t, ctx, s, writing)
		if _, err := s.ClaimUpload(ctx, "writing", uploadT0); err != nil {
			t.Fatal(err)
		}
		mustUpload(t, ctx, s, slotFor("alice", "old", 1), uploadT0)
		mustUpload(t, ctx, s, slotFor("alice", "new", 1), uploadT0.Add(time.Hour))
		expired := func(slots, writingBefore, files time.Time) []string {
			t.Helper()
			ids, err := s.ExpiredUploads(ctx, slots, writingBefore, files, 100)
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(ids)
			return ids
		}
		exp := uploadT0.Add(5 * time.Minute)
		if got := expired(uploadT0, uploadT0, uploadT0); len(got) != 0 {
			t.Errorf("expired at the start: %v", got)
		}
		if got := expired(exp.Add(time.Second), exp, uploadT0.Add(time.Minute)); !slices.Equal(got, []string{"old", "pending"}) {
			t.Errorf("expired = %v, want old and pending", got)
		}
		if got := expired(exp.Add(time.Second), exp.Add(time.Second), uploadT0.Add(2*time.Hour)); !slices.Equal(got, []string{"new", "old", "pending", "writing"}) {
			t.Errorf("expired = %v, want all four", got)
		}
		if ids, err := s.ExpiredUploads(ctx, exp.Add(time.Second), exp.Add(time.Second), uploadT0.Add(2*time.Hour), 2); err != nil || len(ids) != 2 {
			t.Errorf("at most 2: %v, %v", ids, err)
		}
		if err := s.DeleteUploads(ctx, []string{"old", "pending"}); err != nil {
			t.Fatal(err)
		}
		if got := expired(exp.Add(time.Second), exp.Add(time.Second), uploadT0.Add(2*time.Hour)); !slices.Equal(got, []string{"new", "writing"}) {
			t.Errorf("after deleting two: %v", got)
		}
		if _, err := s.UploadedFile(ctx, "old"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("a deleted file: %v, want ErrNotFound", err)
		}
		if err := s.DeleteUploads(ctx, nil); err != nil {
			t.Errorf("deleting nothing: %v", err)
		}
	}},
}
