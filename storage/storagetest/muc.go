package storagetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"ottr.im/ottr/storage"
)

// MUCStore keeps persistent group chat rooms (XEP-0045). Its contract:
//
//   - PutMUCRoom stores a room's configuration and affiliations,
//     replacing everything stored for the same service and name (an
//     affiliation left out is gone).
//   - MUCRooms returns every room of one service with its affiliations,
//     ordered by name; other services' rooms are not among them.
//   - DeleteMUCRoom removes a room, its affiliations and its archive;
//     deleting a room that is not stored is no error.
//   - A room's archive is the archive (ArchiveStore) whose owner is the
//     service and the room's name; ReplaceMUCArchived replaces the stanza
//     of one of its messages (a moderator's tombstone) in place, keeping
//     its id, order and time; an unknown id wraps storage.ErrNotFound.
type MUCStore interface {
	MUCRooms(ctx context.Context, service string) ([]storage.MUCRoom, error)
	PutMUCRoom(ctx context.Context, room storage.MUCRoom) error
	DeleteMUCRoom(ctx context.Context, service, name string) error
	AppendArchive(ctx context.Context, host, user string, msg storage.ArchivedMessage, lim storage.ArchiveLimits) error
	QueryArchive(ctx context.Context, host, user string, q storage.ArchiveQuery) (storage.ArchivePage, error)
	ReplaceMUCArchived(ctx context.Context, service, room, id string, stanza []byte) error
}

// TestMUC runs the MUCStore conformance suite; newStore returns a fresh,
// empty store.
func TestMUC(t *testing.T, newStore func(t *testing.T) MUCStore) {
	ctx := context.Background()
	const svc, other = "conference.example.org", "chat.example.net"
	room := func(service, name, cfg string, affs map[string]string) storage.MUCRoom {
		return storage.MUCRoom{Service: service, Name: name, Config: []byte(cfg), Affiliations: affs}
	}
	check := func(t *testing.T, s MUCStore, service string, want ...storage.MUCRoom) {
		t.Helper()
		got, err := s.MUCRooms(ctx, service)
		if err != nil {
			t.Fatalf("MUCRooms(%s): %v", service, err)
		}
		if len(got) != len(want) {
			t.Fatalf("MUCRooms(%s) = %d rooms %v, want %d", service, len(got), got, len(want))
		}
		for i := range want {
			g, w := got[i], want[i]
			if g.Service != w.Service || g.Name != w.Name || string(g.Config) != string(w.Config) {
				t.Errorf("room %d = %s@%s %q, want %s@%s %q", i, g.Name, g.Service, g.Config, w.Name, w.Service, w.Config)
			}
			if !maps.Equal(g.Affiliations, w.Affiliations) {
				t.Errorf("room %s affiliations = %v, want %v", g.Name, g.Affiliations, w.Affiliations)
			}
		}
	}

	t.Run("put, list, replace, delete", func(t *testing.T) {
		s := newStore(t)
		check(t, s, svc)
		b := room(svc, "b", `{"name":"B"}`, map[string]string{"alice@example.org": "owner", "eve@example.org": "outcast"})
		a := room(svc, "a", `{}`, nil)
		o := room(other, "b", `{"other":true}`, map[string]string{"bob@example.net": "owner"})
		for _, r := range []storage.MUCRoom{b, a, o} {
			if err := s.PutMUCRoom(ctx, r); err != nil {
				t.Fatalf("PutMUCRoom(%s@%s): %v", r.Name, r.Service, err)
			}
		}
		check(t, s, svc, a, b)
		check(t, s, other, o)

		b2 := room(svc, "b", `{"name":"B2"}`, map[string]string{"alice@example.org": "owner", "bob@example.org": "member"})
		if err := s.PutMUCRoom(ctx, b2); err != nil {
			t.Fatalf("PutMUCRoom again: %v", err)
		}
		check(t, s, svc, a, b2)

		if err := s.DeleteMUCRoom(ctx, svc, "b"); err != nil {
			t.Fatalf("DeleteMUCRoom: %v", err)
		}
		if err := s.DeleteMUCRoom(ctx, svc, "nothing"); err != nil {
			t.Fatalf("DeleteMUCRoom of a room not stored: %v", err)
		}
		check(t, s, svc, a)
		check(t, s, other, o)
		// A room stored again after its deletion has only its new
		// affiliations.
		if err := s.PutMUCRoom(ctx, room(svc, "b", `{}`, map[string]string{"carol@example.org": "admin"})); err != nil {
			t.Fatalf("PutMUCRoom after delete: %v", err)
		}
		check(t, s, svc, a, room(svc, "b", `{}`, map[string]string{"carol@example.org": "admin"}))
	})

	t.Run("tombstone in the room archive", func(t *testing.T) {
		s := newStore(t)
		at := time.Unix(1_800_000_000, 0)
		lim := storage.ArchiveLimits{Quota: storage.Quota{Count: 10, Bytes: 100}}
		for i, body := range []string{"first", "second", "third"} {
			msg := storage.ArchivedMessage{ID: fmt.Sprintf("m%d", i), With: "room@" + svc + "/nick",
				Stanza: []byte("<message>" + body + "</message>"), Stored: at.Add(time.Duration(i) * time.Second)}
			if err := s.AppendArchive(ctx, svc, "room", msg, lim); err != nil {
				t.Fatalf("AppendArchive: %v", err)
			}
		}
		if err := s.ReplaceMUCArchived(ctx, svc, "room", "m1", []byte("<message>gone</message>")); err != nil {
			t.Fatalf("ReplaceMUCArchived: %v", err)
		}
		if err := s.ReplaceMUCArchived(ctx, svc, "room", "nothing", []byte("<x/>")); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("ReplaceMUCArchived of an unknown id = %v, want ErrNotFound", err)
		}
		if err := s.ReplaceMUCArchived(ctx, svc, "other", "m1", []byte("<x/>")); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("ReplaceMUCArchived in another room's archive = %v, want ErrNotFound", err)
		}
		page, err := s.QueryArchive(ctx, svc, "room", storage.ArchiveQuery{Max: 10, MaxBytes: 1 << 20})
		if err != nil {
			t.Fatalf("QueryArchive: %v", err)
		}
		var got []string
		for _, m := range page.Messages {
			got = append(got, m.ID+" "+string(m.Stanza))
		}
		want := []string{"m0 <message>first</message>", "m1 <message>gone</message>", "m2 <message>third</message>"}
		if strings.Join(got, "|") != strings.Join(want, "|") || !page.Messages[1].Stored.Equal(at.Add(time.Second)) {
			t.Errorf("archive after the tombstone = %q, want %q at the same place and time", got, want)
		}
		// The byte count followed: 24 + 23 + 24 = 71 bytes now, 73 before
		// the tombstone; a message of 29 bytes fits within 100 only if the
		// tombstone's size was counted, else the oldest is pushed out.
		big := storage.ArchivedMessage{ID: "m3", With: "x", Stanza: []byte("<message>" + strings.Repeat("x", 10) + "</message>"), Stored: at.Add(3 * time.Second)}
		if err := s.AppendArchive(ctx, svc, "room", big, lim); err != nil {
			t.Fatalf("AppendArchive: %v", err)
		}
		page, err = s.QueryArchive(ctx, svc, "room", storage.ArchiveQuery{Max: 10, MaxBytes: 1 << 20})
		if err != nil {
			t.Fatalf("QueryArchive: %v", err)
		}
		if page.Count != 4 {
			t.Errorf("archive holds %d messages after a tombstone and one more, want 4 (the byte count kept the original's size?)", page.Count)
		}

		// Deleting the room deletes its archive: a new room of the same
		// name starts empty, and its quota from nothing.
		if err := s.PutMUCRoom(ctx, room(svc, "room", `{}`, nil)); err != nil {
			t.Fatalf("PutMUCRoom: %v", err)
		}
		if err := s.DeleteMUCRoom(ctx, svc, "room"); err != nil {
			t.Fatalf("DeleteMUCRoom: %v", err)
		}
		page, err = s.QueryArchive(ctx, svc, "room", storage.ArchiveQuery{Max: 10, MaxBytes: 1 << 20})
		if err != nil || page.Count != 0 {
			t.Errorf("archive after the room's deletion: %d messages, %v; want none", page.Count, err)
		}
		lim.Quota.Count = 1
		if err := s.AppendArchive(ctx, svc, "room", big, lim); err != nil {
			t.Fatalf("AppendArchive after deletion: %v", err)
		}
	})

	t.Run("concurrent writers", func(t *testing.T) {
		s := newStore(t)
		var wg sync.WaitGroup
		errs := make(chan error, 40)
		for i := range 20 {
			wg.Add(2)
			go func() {
				defer wg.Done()
				affs := map[string]string{fmt.Sprintf("u%d@example.org", i): "member", "owner@example.org": "owner"}
				errs <- s.PutMUCRoom(ctx, room(svc, "shared", fmt.Sprintf(`{"n":%d}`, i), affs))
			}()
			go func() {
				defer wg.Done()
				errs <- s.PutMUCRoom(ctx, room(svc, fmt.Sprintf("r%02d", i), `{}`, nil))
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("PutMUCRoom: %v", err)
			}
		}
		got, err := s.MUCRooms(ctx, svc)
		if err != nil {
			t.Fatalf("MUCRooms: %v", err)
		}
		if len(got) != 21 {
			t.Fatalf("MUCRooms = %d rooms, want 21", len(got))
		}
		for _, r := range got {
			if r.Name == "shared" && len(r.Affiliations) != 2 {
				// The last writer's affiliations, whole: never a mix.
				t.Errorf("shared room affiliations = %v, want one writer's two", r.Affiliations)
			}
		}
	})
}
