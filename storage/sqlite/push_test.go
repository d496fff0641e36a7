package sqlite

import (
	"context"
	"errors"
	"testing"

	"ottr.im/ottr/storage"
)

func TestPushRegistrations(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	reg := func(service, node, opts string) storage.PushRegistration {
		return storage.PushRegistration{Service: service, Node: node, Options: []byte(opts)}
	}
	for _, r := range []storage.PushRegistration{reg("push.example", "n1", ""), reg("push.example", "n2", "<x/>")} {
		if err := s.EnablePush(ctx, "localhost", "alice", r, 2); err != nil {
			t.Fatalf("enable %v: %v", r, err)
		}
	}
	if err := s.EnablePush(ctx, "localhost", "alice", reg("other.example", "n", ""), 2); !errors.Is(err, storage.ErrQuota) {
		t.Fatalf("a third registration: %v, want ErrQuota", err)
	}
	// The same service and node again replaces the options, within the quota.
	if err := s.EnablePush(ctx, "localhost", "alice", reg("push.example", "n1", "<y/>"), 2); err != nil {
		t.Fatalf("enabling again: %v", err)
	}
	got, err := s.PushRegistrations(ctx, "localhost", "alice")
	if err != nil || len(got) != 2 || string(got[0].Options) != "<y/>" || got[1].Node != "n2" {
		t.Fatalf("registrations %+v, %v", got, err)
	}
	if other, _ := s.PushRegistrations(ctx, "localhost", "bob"); len(other) != 0 {
		t.Fatalf("bob has %+v", other)
	}
	if n, err := s.DisablePush(ctx, "localhost", "alice", "push.example", "n2"); n != 1 || err != nil {
		t.Fatalf("disable one node: %d, %v", n, err)
	}
	if err := s.EnablePush(ctx, "localhost", "alice", reg("push.example", "n3", ""), 2); err != nil {
		t.Fatalf("enable after disable: %v", err)
	}
	if n, err := s.DisablePush(ctx, "localhost", "alice", "push.example", ""); n != 2 || err != nil {
		t.Fatalf("disable every node: %d, %v", n, err)
	}
	if got, _ := s.PushRegistrations(ctx, "localhost", "alice"); len(got) != 0 {
		t.Fatalf("left %+v", got)
	}
}
