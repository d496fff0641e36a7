package sqlite

import (
	"testing"
	"time"

	"ottr.im/ottr/storage"
	"ottr.im/ottr/storage/storagetest"
)

func TestPEP(t *testing.T) {
	storagetest.TestPEP(t, func(t *testing.T) storagetest.PEPStore { return newTestStore(t) })
}

// Deleting an account deletes its PEP nodes and items, not another's.
func TestPEPAccountDeletion(t *testing.T) {
	s := newTestStore(t)
	ctx := t.Context()
	lim := storage.PEPLimits{Nodes: 10, Bytes: 1 << 20}
	for _, user := range []string{"alice", "bob"} {
		if err := s.CreateAccount(ctx, "example.com", user, ""); err != nil {
			t.Fatal(err)
		}
		n := storage.PEPNode{Node: "n", Access: "open", MaxItems: 1, PersistItems: true, SendLast: "never"}
		it := storage.PEPItem{ID: "1", Payload: []byte(`<x xmlns="urn:example"/>`), Published: time.Now()}
		if _, _, err := s.PublishPEPItem(ctx, "example.com", user, n, it, lim); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteAccount(ctx, "example.com", "alice"); err != nil {
		t.Fatal(err)
	}
	if nodes, _ := s.PEPNodes(ctx, "example.com", "alice"); len(nodes) != 0 {
		t.Fatalf("alice's nodes left: %+v", nodes)
	}
	if items, _ := s.PEPItems(ctx, "example.com", "alice", "n", nil, 0); len(items) != 0 {
		t.Fatalf("alice's items left: %+v", items)
	}
	if items, _ := s.PEPItems(ctx, "example.com", "bob", "n", nil, 0); len(items) != 1 {
		t.Fatalf("bob's items: %+v", items)
	}
}
