package sqlite

import (
	"context"
	"errors"
	"testing"
	"time"

	"ottr.im/ottr/storage"
	"ottr.im/ottr/storage/storagetest"
)

func TestUpload(t *testing.T) {
	storagetest.TestUpload(t, func(t *testing.T) storagetest.UploadStore { return newTestStore(t) })
}

// TestUploadsGoWithAccount: deleting an account marks its slots and
// files deleted in the deletion's transaction: none is served or claimed
// from then on, each is listed for removal at once, and another user's
// are untouched.
func TestUploadsGoWithAccount(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	now := time.Now()
	slot := func(user, id string) storage.UploadSlot {
		return storage.UploadSlot{ID: id, Host: "example.com", Username: user, Filename: "f", Size: 1,
			ContentType: "text/plain", Created: now, Expires: now.Add(time.Hour)}
	}
	for _, sl := range []storage.UploadSlot{slot("alice", "a-file"), slot("alice", "a-slot"), slot("bob", "b-file")} {
		if err := s.ReserveUpload(ctx, sl, storage.UploadLimits{Quota: storage.Quota{Count: 10, Bytes: 10}}, now); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"a-file", "b-file"} {
		if _, err := s.ClaimUpload(ctx, id, now); err != nil {
			t.Fatal(err)
		}
		if err := s.CompleteUpload(ctx, id, now); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateAccount(ctx, "example.com", "alice", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAccount(ctx, "example.com", "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UploadedFile(ctx, "a-file"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("a deleted account's file: %v, want ErrNotFound", err)
	}
	if _, err := s.ClaimUpload(ctx, "a-slot", now); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("a deleted account's slot: %v, want ErrNotFound", err)
	}
	if _, err := s.UploadedFile(ctx, "b-file"); err != nil {
		t.Errorf("bob's file: %v", err)
	}
	ids, err := s.ExpiredUploads(ctx, now, now, now.Add(-time.Hour), 10)
	if err != nil || len(ids) != 2 || ids[0] == "b-file" || ids[1] == "b-file" {
		t.Errorf("to remove: %v, %v; want alice's two", ids, err)
	}
}
