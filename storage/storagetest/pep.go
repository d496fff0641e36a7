package storagetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"ottr.im/ottr/storage"
)

// PEPStore is the personal eventing storage (XEP-0163) the suite
// exercises: nodes with their configuration and the items published to
// them, within per-user limits checked in the write's transaction.
type PEPStore interface {
	// PEPNode returns one node; ok is false when there is none.
	PEPNode(ctx context.Context, host, user, node string) (storage.PEPNode, bool, error)
	// PEPNodes returns the user's nodes by name.
	PEPNodes(ctx context.Context, host, user string) ([]storage.PEPNode, error)
	// CreatePEPNode creates a node: ErrExists for one that exists,
	// ErrQuota for one more than lim.Nodes.
	CreatePEPNode(ctx context.Context, host, user string, n storage.PEPNode, lim storage.PEPLimits) error
	// ConfigurePEPNode replaces a node's configuration (ErrNotFound
	// without the node) and trims its items to what it keeps.
	ConfigurePEPNode(ctx context.Context, host, user string, n storage.PEPNode) error
	// DeletePEPNode deletes a node and its items.
	DeletePEPNode(ctx context.Context, host, user, node string) (bool, error)
	// PurgePEPNode deletes a node's items (ErrNotFound without the node).
	PurgePEPNode(ctx context.Context, host, user, node string) error
	// PublishPEPItem creates the node if needed, replaces an item of the
	// same id, trims the node, within lim (ErrQuota).
	PublishPEPItem(ctx context.Context, host, user string, n storage.PEPNode, it storage.PEPItem, lim storage.PEPLimits) (storage.PEPNode, bool, error)
	// RetractPEPItem deletes one item (ErrNotFound without the node).
	RetractPEPItem(ctx context.Context, host, user, node, id string) (bool, error)
	// PEPItems returns items newest first: those of ids, or all (at
	// most max when max > 0).
	PEPItems(ctx context.Context, host, user, node string, ids []string, max int) ([]storage.PEPItem, error)
}

// TestPEP runs the PEP conformance suite; newStore is called as by
// [TestAccounts].
func TestPEP(t *testing.T, newStore func(t *testing.T) PEPStore) {
	t.Helper()
	runSuite(t, newStore, pepCases)
}

var pepRoomy = storage.PEPLimits{Nodes: 1000, Bytes: 1 << 30}

func pepNode(name string, max int) storage.PEPNode {
	return storage.PEPNode{Node: name, Access: "presence", MaxItems: max, PersistItems: true, SendLast: "on_sub_and_presence"}
}

func pepItem(id, text string) storage.PEPItem {
	return storage.PEPItem{ID: id, Payload: []byte(`<x xmlns="urn:example">` + text + `</x>`), Published: time.Unix(1700000000, 0).UTC()}
}

// itemIDs returns the ids of items, in order.
func itemIDs(items []storage.PEPItem) string {
	s := ""
	for i, it := range items {
		if i > 0 {
			s += ","
		}
		s += it.ID
	}
	return s
}

func mustItems(t *testing.T, ctx context.Context, s PEPStore, user, node string, ids []string, max int) string {
	t.Helper()
	items, err := s.PEPItems(ctx, "example.com", user, node, ids, max)
	if err != nil {
		t.Fatalf("items of %s: %v", node, err)
	}
	return itemIDs(items)
}

var pepCases = []suiteCase[PEPStore]{
	{"publish creates, replaces and trims", func(t *testing.T, ctx context.Context, s PEPStore) {
		n, created, err := s.PublishPEPItem(ctx, "example.com", "alice", pepNode("n", 2), pepItem("a", "1"), pepRoomy)
		if err != nil || !created || n.MaxItems != 2 {
			t.Fatalf("first publish: %+v %v %v", n, created, err)
		}
		// The stored configuration wins over the one given.
		for _, id := range []string{"b", "a", "c"} {
			n, created, err = s.PublishPEPItem(ctx, "example.com", "alice", pepNode("n", 50), pepItem(id, id), pepRoomy)
			if err != nil || created || n.MaxItems != 2 {
				t.Fatalf("publish %s: %+v %v %v", id, n, created, err)
			}
		}
		if got := mustItems(t, ctx, s, "alice", "n", nil, 0); got != "c,a" {
			t.Fatalf("items %q, want c,a (newest first, b trimmed)", got)
		}
		items, _ := s.PEPItems(ctx, "example.com", "alice", "n", []string{"a", "zz"}, 0)
		if len(items) != 1 || string(items[0].Payload) != `<x xmlns="urn:example">a</x>` || !items[0].Published.Equal(time.Unix(1700000000, 0)) {
			t.Fatalf("item a: %+v", items)
		}
		if got := mustItems(t, ctx, s, "alice", "n", nil, 1); got != "c" {
			t.Fatalf("last item %q", got)
		}
		if got := mustItems(t, ctx, s, "bob", "n", nil, 0); got != "" {
			t.Fatalf("bob's items %q", got)
		}
	}},
	{"configure trims, persist_items false keeps one", func(t *testing.T, ctx context.Context, s PEPStore) {
		for i := range 5 {
			if _, _, err := s.PublishPEPItem(ctx, "example.com", "alice", pepNode("n", 10), pepItem(fmt.Sprint(i), "x"), pepRoomy); err != nil {
				t.Fatal(err)
			}
		}
		cfg := pepNode("n", 3)
		cfg.Access = "open"
		if err := s.ConfigurePEPNode(ctx, "example.com", "alice", cfg); err != nil {
			t.Fatal(err)
		}
		if got := mustItems(t, ctx, s, "alice", "n", nil, 0); got != "4,3,2" {
			t.Fatalf("after max_items 3: %q", got)
		}
		cfg.PersistItems = false
		if err := s.ConfigurePEPNode(ctx, "example.com", "alice", cfg); err != nil {
			t.Fatal(err)
		}
		if got := mustItems(t, ctx, s, "alice", "n", nil, 0); got != "4" {
			t.Fatalf("without persistence: %q", got)
		}
		if n, ok, err := s.PEPNode(ctx, "example.com", "alice", "n"); !ok || err != nil || n != cfg {
			t.Fatalf("node %+v %v %v, want %+v", n, ok, err, cfg)
		}
		if err := s.ConfigurePEPNode(ctx, "example.com", "alice", pepNode("none", 1)); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("configure a missing node: %v", err)
		}
	}},
	{"create, delete, purge, retract", func(t *testing.T, ctx context.Context, s PEPStore) {
		if err := s.CreatePEPNode(ctx, "example.com", "alice", pepNode("n", 5), pepRoomy); err != nil {
			t.Fatal(err)
		}
		if err := s.CreatePEPNode(ctx, "example.com", "alice", pepNode("n", 5), pepRoomy); !errors.Is(err, storage.ErrExists) {
			t.Fatalf("second create: %v", err)
		}
		if err := s.PurgePEPNode(ctx, "example.com", "alice", "other"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("purge a missing node: %v", err)
		}
		if _, err := s.RetractPEPItem(ctx, "example.com", "alice", "other", "a"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("retract from a missing node: %v", err)
		}
		for _, id := range []string{"a", "b", "c"} {
			if _, _, err := s.PublishPEPItem(ctx, "example.com", "alice", pepNode("n", 5), pepItem(id, id), pepRoomy); err != nil {
				t.Fatal(err)
			}
		}
		if ok, err := s.RetractPEPItem(ctx, "example.com", "alice", "n", "b"); !ok || err != nil {
			t.Fatalf("retract b: %v %v", ok, err)
		}
		if ok, err := s.RetractPEPItem(ctx, "example.com", "alice", "n", "b"); ok || err != nil {
			t.Fatalf("retract b again: %v %v", ok, err)
		}
		if got := mustItems(t, ctx, s, "alice", "n", nil, 0); got != "c,a" {
			t.Fatalf("after retract: %q", got)
		}
		if err := s.PurgePEPNode(ctx, "example.com", "alice", "n"); err != nil {
			t.Fatal(err)
		}
		if got := mustItems(t, ctx, s, "alice", "n", nil, 0); got != "" {
			t.Fatalf("after purge: %q", got)
		}
		if _, _, err := s.PublishPEPItem(ctx, "example.com", "alice", pepNode("n", 5), pepItem("d", "d"), pepRoomy); err != nil {
			t.Fatal(err)
		}
		if ok, err := s.DeletePEPNode(ctx, "example.com", "alice", "n"); !ok || err != nil {
			t.Fatalf("delete: %v %v", ok, err)
		}
		if ok, err := s.DeletePEPNode(ctx, "example.com", "alice", "n"); ok || err != nil {
			t.Fatalf("delete again: %v %v", ok, err)
		}
		if nodes, err := s.PEPNodes(ctx, "example.com", "alice"); len(nodes) != 0 || err != nil {
			t.Fatalf("nodes left: %+v %v", nodes, err)
		}
		// A node created again starts empty.
		if got := mustItems(t, ctx, s, "alice", "n", nil, 0); got != "" {
			t.Fatalf("items of a deleted node: %q", got)
		}
	}},
	{"limits", func(t *testing.T, ctx context.Context, s PEPStore) {
		lim := storage.PEPLimits{Nodes: 2, Bytes: 100}
		for _, name := range []string{"a", "b"} {
			if _, _, err := s.PublishPEPItem(ctx, "example.com", "alice", pepNode(name, 5), pepItem("1", "x"), lim); err != nil {
				t.Fatal(err)
			}
		}
		if _, _, err := s.PublishPEPItem(ctx, "example.com", "alice", pepNode("c", 5), pepItem("1", "x"), lim); !errors.Is(err, storage.ErrQuota) {
			t.Fatalf("a third node by publish: %v", err)
		}
		if err := s.CreatePEPNode(ctx, "example.com", "alice", pepNode("c", 5), lim); !errors.Is(err, storage.ErrQuota) {
			t.Fatalf("a third node by create: %v", err)
		}
		if _, ok, _ := s.PEPNode(ctx, "example.com", "alice", "c"); ok {
			t.Fatal("the refused node exists")
		}
		// Two items of 28 bytes; 100 bytes hold one more.
		if _, _, err := s.PublishPEPItem(ctx, "example.com", "alice", pepNode("a", 5), pepItem("2", "x"), lim); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.PublishPEPItem(ctx, "example.com", "alice", pepNode("a", 5), pepItem("3", "x"), lim); !errors.Is(err, storage.ErrQuota) {
			t.Fatalf("past the bytes: %v", err)
		}
		if got := mustItems(t, ctx, s, "alice", "a", nil, 0); got != "2,1" {
			t.Fatalf("after the refused publish: %q", got)
		}
		// Replacing an item with one no larger always passes.
		if _, _, err := s.PublishPEPItem(ctx, "example.com", "alice", pepNode("a", 5), pepItem("2", "y"), storage.PEPLimits{Nodes: 2, Bytes: 10}); err != nil {
			t.Fatalf("replacing within a lowered limit: %v", err)
		}
		// Other users are not counted.
		if _, _, err := s.PublishPEPItem(ctx, "example.com", "bob", pepNode("c", 5), pepItem("1", "x"), lim); err != nil {
			t.Fatal(err)
		}
	}},
	{"concurrent publishes stay within the limits", func(t *testing.T, ctx context.Context, s PEPStore) {
		lim := storage.PEPLimits{Nodes: 3, Bytes: 1 << 20}
		var wg sync.WaitGroup
		for i := range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _, _ = s.PublishPEPItem(ctx, "example.com", "alice", pepNode(fmt.Sprint("n", i), 5), pepItem("1", "x"), lim)
			}()
		}
		wg.Wait()
		if nodes, err := s.PEPNodes(ctx, "example.com", "alice"); len(nodes) != 3 || err != nil {
			t.Fatalf("%d nodes, %v; want 3", len(nodes), err)
		}
	}},
}
