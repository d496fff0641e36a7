package storagetest

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"testing"

	"ottr.im/ottr/storage"
)

// MUCStore keeps persistent group chat rooms (XEP-0045). Its contract:
//
//   - PutMUCRoom stores a room's configuration and affiliations,
//     replacing everything stored for the same service and name (an
//     affiliation left out is gone).
//   - MUCRooms returns every room of one service with its affiliations,
//     ordered by name; other services' rooms are not among them.
//   - DeleteMUCRoom removes a room and its affiliations; deleting a room
//     that is not stored is no error.
type MUCStore interface {
	MUCRooms(ctx context.Context, service string) ([]storage.MUCRoom, error)
	PutMUCRoom(ctx context.Context, room storage.MUCRoom) error
	DeleteMUCRoom(ctx context.Context, service, name string) error
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
