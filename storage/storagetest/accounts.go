// Package storagetest holds conformance suites that every ottr storage
// backend runs against itself, so that the SQLite backend and any later one
// (PostgreSQL) behave the same way for the features built on them.
//
// A backend's test calls a suite with a constructor for empty stores:
//
//	func TestAccounts(t *testing.T) {
//		storagetest.TestAccounts(t, func(t *testing.T) storagetest.AccountStore {
//			s, err := Open(t.Context(), filepath.Join(t.TempDir(), "ottr.db"))
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
package storagetest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"ottr.im/ottr/storage"
)

// AccountStore is the account storage the suite exercises: the methods every
// backend provides for accounts. Features declare the subset they use; this
// interface is the full contract.
//
// Hosts and usernames are stored exactly as given and compared byte for byte
// (no case folding or Unicode normalisation: preparing JID parts is the
// caller's job). Password hashes are opaque strings, stored verbatim; the
// empty string means the account has no password.
type AccountStore interface {
	// CreateAccount stores a new account, or returns an error wrapping
	// storage.ErrExists (changing nothing) if it is already present. A
	// store that records deletions (DeletionStore) refuses, for a bounded
	// while, an account whose deletion is not done yet, with an error
	// wrapping storage.ErrDeletionPending; EnsureAccount too.
	CreateAccount(ctx context.Context, host, username, passwordHash string) error
	// SetPassword replaces an existing account's hash, or returns an error
	// wrapping storage.ErrNotFound (creating nothing).
	SetPassword(ctx context.Context, host, username, passwordHash string) error
	// EnsureAccount stores the account with an empty hash if it is absent,
	// reporting whether it did; an existing account is left untouched.
	EnsureAccount(ctx context.Context, host, username string) (created bool, err error)
	// PasswordHash returns the account's hash, or an error wrapping
	// storage.ErrNotFound.
	PasswordHash(ctx context.Context, host, username string) (string, error)
	// DeleteAccount removes the account, or returns an error wrapping
	// storage.ErrNotFound.
	DeleteAccount(ctx context.Context, host, username string) error
	// ListAccounts lists the accounts of host, or of all hosts if host is
	// empty, sorted by host then username in byte order (Go's string order,
	// COLLATE "C" in PostgreSQL).
	ListAccounts(ctx context.Context, host string) ([]storage.Account, error)
}

// createdSlack is how far an account's Created time may lie outside the
// interval around the call that created it, allowing for backends that
// store whole seconds or take the time from a database server's clock.
const createdSlack = 2 * time.Second

// concurrency is how many goroutines race in the concurrent cases.
const concurrency = 8

// accountCase is one case of the account suite; run gets a fresh, empty
// store.
type accountCase struct {
	name string
	run  func(t *testing.T, ctx context.Context, s AccountStore)
}

// TestAccounts runs the account conformance suite. newStore is called once
// per subtest, from that subtest's goroutine, and must return an empty store
// that it closes with t.Cleanup. Subtests run one after another.
func TestAccounts(t *testing.T, newStore func(t *testing.T) AccountStore) {
	t.Helper()
	for _, tc := range accountCases {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, t.Context(), newStore(t))
		})
	}
}

var accountCases = []accountCase{
	{"create then get", func(t *testing.T, ctx context.Context, s AccountStore) {
		mustCreate(t, ctx, s, "example.com", "alice", "hash-1")
		wantHash(t, ctx, s, "example.com", "alice", "hash-1")
	}},
	{"create with empty hash", func(t *testing.T, ctx context.Context, s AccountStore) {
		mustCreate(t, ctx, s, "example.com", "alice", "")
		wantHash(t, ctx, s, "example.com", "alice", "")
		wantList(t, ctx, s, "", []storage.Account{{Host: "example.com", Username: "alice"}})
	}},
	{"create duplicate", func(t *testing.T, ctx context.Context, s AccountStore) {
		mustCreate(t, ctx, s, "example.com", "alice", "hash-1")
		err := s.CreateAccount(ctx, "example.com", "alice", "hash-2")
		wantErr(t, "CreateAccount of a duplicate", err, storage.ErrExists)
		wantHash(t, ctx, s, "example.com", "alice", "hash-1")
	}},
	{"create over ensured account", func(t *testing.T, ctx context.Context, s AccountStore) {
		mustEnsure(t, ctx, s, "example.com", "alice", true)
		err := s.CreateAccount(ctx, "example.com", "alice", "hash-1")
		wantErr(t, "CreateAccount of an ensured account", err, storage.ErrExists)
		wantHash(t, ctx, s, "example.com", "alice", "")
	}},
	{"same username on two hosts", func(t *testing.T, ctx context.Context, s AccountStore) {
		mustCreate(t, ctx, s, "a.example", "alice", "hash-a")
		mustCreate(t, ctx, s, "b.example", "alice", "hash-b")
		wantHash(t, ctx, s, "a.example", "alice", "hash-a")
		wantHash(t, ctx, s, "b.example", "alice", "hash-b")
		mustDelete(t, ctx, s, "a.example", "alice")
		wantHashErr(t, ctx, s, "a.example", "alice", storage.ErrNotFound)
		wantHash(t, ctx, s, "b.example", "alice", "hash-b")
	}},
	{"case is significant", func(t *testing.T, ctx context.Context, s AccountStore) {
		mustCreate(t, ctx, s, "example.com", "alice", "hash-lower")
		mustCreate(t, ctx, s, "example.com", "Alice", "hash-upper")
		mustCreate(t, ctx, s, "EXAMPLE.com", "alice", "hash-host")
		wantHash(t, ctx, s, "example.com", "alice", "hash-lower")
		wantHash(t, ctx, s, "example.com", "Alice", "hash-upper")
		wantHash(t, ctx, s, "EXAMPLE.com", "alice", "hash-host")
		wantHashErr(t, ctx, s, "example.com", "ALICE", storage.ErrNotFound)
	}},
	{"get missing", func(t *testing.T, ctx context.Context, s AccountStore) {
		wantHashErr(t, ctx, s, "example.com", "nobody", storage.ErrNotFound)
		mustCreate(t, ctx, s, "example.com", "alice", "hash-1")
		wantHashErr(t, ctx, s, "other.example", "alice", storage.ErrNotFound)
		wantHashErr(t, ctx, s, "example.com", "alic", storage.ErrNotFound)
	}},
	{"set password", func(t *testing.T, ctx context.Context, s AccountStore) {
		mustCreate(t, ctx, s, "example.com", "alice", "hash-1")
		mustSetPassword(t, ctx, s, "example.com", "alice", "hash-2")
		wantHash(t, ctx, s, "example.com", "alice", "hash-2")
	}},
	{"set password of ensured account", func(t *testing.T, ctx context.Context, s AccountStore) {
		mustEnsure(t, ctx, s, "example.com", "alice", true)
		mustSetPassword(t, ctx, s, "example.com", "alice", "hash-1")
		wantHash(t, ctx, s, "example.com", "alice", "hash-1")
		wantList(t, ctx, s, "example.com", []storage.Account{{Host: "example.com", Username: "alice", HasPassword: true}})
	}},
	{"set empty password", func(t *testing.T, ctx context.Context, s AccountStore) {
		mustCreate(t, ctx, s, "example.com", "alice", "hash-1")
		mustSetPassword(t, ctx, s, "example.com", "alice", "")
		wantHash(t, ctx, s, "example.com", "alice", "")
		wantList(t, ctx, s, "example.com", []storage.Account{{Host: "example.com", Username: "alice"}})
	}},
	{"set password of missing", func(t *testing.T, ctx context.Context, s AccountStore) {
		err := s.SetPassword(ctx, "example.com", "nobody", "hash-1")
		wantErr(t, "SetPassword of a missing account", err, storage.ErrNotFound)
		wantHashErr(t, ctx, s, "example.com", "nobody", storage.ErrNotFound)
	}},
	{"delete", func(t *testing.T, ctx context.Context, s AccountStore) {
		mustCreate(t, ctx, s, "example.com", "alice", "hash-1")
		mustCreate(t, ctx, s, "example.com", "bob", "hash-2")
		mustDelete(t, ctx, s, "example.com", "alice")
		wantHashErr(t, ctx, s, "example.com", "alice", storage.ErrNotFound)
		err := s.DeleteAccount(ctx, "example.com", "alice")
		wantErr(t, "DeleteAccount twice", err, storage.ErrNotFound)
		wantList(t, ctx, s, "", []storage.Account{{Host: "example.com", Username: "bob", HasPassword: true}})
	}},
	{"delete missing", func(t *testing.T, ctx context.Context, s AccountStore) {
		err := s.DeleteAccount(ctx, "example.com", "nobody")
		wantErr(t, "DeleteAccount of a missing account", err, storage.ErrNotFound)
	}},
	{"recreate after delete", func(t *testing.T, ctx context.Context, s AccountStore) {
		mustCreate(t, ctx, s, "example.com", "alice", "hash-1")
		mustDelete(t, ctx, s, "example.com", "alice")
		settleIfRecorded(t, ctx, s)
		mustCreate(t, ctx, s, "example.com", "alice", "hash-2")
		wantHash(t, ctx, s, "example.com", "alice", "hash-2")
	}},
	{"list empty", func(t *testing.T, ctx context.Context, s AccountStore) {
		wantList(t, ctx, s, "", nil)
		wantList(t, ctx, s, "example.com", nil)
	}},
	{"list ordering", func(t *testing.T, ctx context.Context, s AccountStore) {
		// Inserted out of order; byte order puts upper case before lower
		// case and ASCII before other scripts.
		all := []storage.Account{
			{Host: "b.example", Username: "carol", HasPassword: true},
			{Host: "a.example", Username: "zoë"},
			{Host: "b.example", Username: "alice"},
			{Host: "a.example", Username: "bob", HasPassword: true},
			{Host: "a.example", Username: "Zed", HasPassword: true},
			{Host: "a.example", Username: "alice"},
			{Host: "a.example", Username: "zoe", HasPassword: true},
			{Host: "a.example", Username: "alice.b"},
			{Host: "c.example", Username: "dave"},
		}
		for _, a := range all {
			if a.HasPassword {
				mustCreate(t, ctx, s, a.Host, a.Username, "hash-"+a.Username)
			} else {
				mustEnsure(t, ctx, s, a.Host, a.Username, true)
			}
		}
		slices.SortFunc(all, func(a, b storage.Account) int {
			return cmp.Or(strings.Compare(a.Host, b.Host), strings.Compare(a.Username, b.Username))
		})
		wantList(t, ctx, s, "", all)
		var onA []storage.Account
		for _, a := range all {
			if a.Host == "a.example" {
				onA = append(onA, a)
			}
		}
		wantList(t, ctx, s, "a.example", onA)
		wantList(t, ctx, s, "nothing.example", nil)
	}},
	{"created time", func(t *testing.T, ctx context.Context, s AccountStore) {
		before := time.Now()
		mustCreate(t, ctx, s, "example.com", "alice", "hash-1")
		mustEnsure(t, ctx, s, "example.com", "bob", true)
		after := time.Now()
		got, err := s.ListAccounts(ctx, "example.com")
		if err != nil {
			t.Fatalf("ListAccounts: %v", err)
		}
		if len(got) != 2 {
			t.Fatalf("ListAccounts: got %d accounts, want 2", len(got))
		}
		for _, a := range got {
			if a.Created.Before(before.Add(-createdSlack)) || a.Created.After(after.Add(createdSlack)) {
				t.Errorf("%s@%s created %v, want between %v and %v", a.Username, a.Host, a.Created, before, after)
			}
		}
	}},
	{"ensure twice", func(t *testing.T, ctx context.Context, s AccountStore) {
		mustEnsure(t, ctx, s, "example.com", "alice", true)
		mustEnsure(t, ctx, s, "example.com", "alice", false)
		wantHash(t, ctx, s, "example.com", "alice", "")
		wantList(t, ctx, s, "", []storage.Account{{Host: "example.com", Username: "alice"}})
	}},
	{"ensure keeps password", func(t *testing.T, ctx context.Context, s AccountStore) {
		mustCreate(t, ctx, s, "example.com", "alice", "hash-1")
		mustEnsure(t, ctx, s, "example.com", "alice", false)
		wantHash(t, ctx, s, "example.com", "alice", "hash-1")
	}},
	{"unicode", func(t *testing.T, ctx context.Context, s AccountStore) {
		// The two spellings of "á" (precomposed, and a + combining acute)
		// are different byte strings and so different accounts.
		names := []struct{ host, user string }{
			{"example.com", "ünïcødé"},
			{"example.com", "用户"},
			{"example.com", "😀"},
			{"example.com", "\u00e1"},
			{"example.com", "a\u0301"},
			{"bücher.example", "ǆ"},
		}
		for i, n := range names {
			mustCreate(t, ctx, s, n.host, n.user, fmt.Sprintf("hash-%d", i))
		}
		var want []storage.Account
		for i, n := range names {
			wantHash(t, ctx, s, n.host, n.user, fmt.Sprintf("hash-%d", i))
			want = append(want, storage.Account{Host: n.host, Username: n.user, HasPassword: true})
		}
		slices.SortFunc(want, func(a, b storage.Account) int {
			return cmp.Or(strings.Compare(a.Host, b.Host), strings.Compare(a.Username, b.Username))
		})
		wantList(t, ctx, s, "", want)
		mustDelete(t, ctx, s, "example.com", "a\u0301")
		wantHash(t, ctx, s, "example.com", "\u00e1", "hash-3")
	}},
	{"hash stored verbatim", func(t *testing.T, ctx context.Context, s AccountStore) {
		hashes := []string{
			"$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
			"$pbkdf2-sha256$i=600000$c2FsdA$" + strings.Repeat("A", 1000),
			" leading and trailing spaces ",
			"quote ' and \" and \\ and ; -- and % and _",
		}
		for i, h := range hashes {
			user := fmt.Sprintf("user%d", i)
			mustCreate(t, ctx, s, "example.com", user, h)
			wantHash(t, ctx, s, "example.com", user, h)
			mustSetPassword(t, ctx, s, "example.com", user, h+"x")
			wantHash(t, ctx, s, "example.com", user, h+"x")
		}
	}},
	{"concurrent create", func(t *testing.T, ctx context.Context, s AccountStore) {
		errs := raceN(concurrency, func(i int) error {
			return s.CreateAccount(ctx, "example.com", "alice", fmt.Sprintf("hash-%d", i))
		})
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil:
				if winner >= 0 {
					t.Errorf("CreateAccount succeeded in goroutines %d and %d", winner, i)
				}
				winner = i
			case !errors.Is(err, storage.ErrExists):
				t.Errorf("CreateAccount in goroutine %d: %v, want nil or storage.ErrExists", i, err)
			}
		}
		if winner < 0 {
			t.Fatal("CreateAccount succeeded in no goroutine")
		}
		wantHash(t, ctx, s, "example.com", "alice", fmt.Sprintf("hash-%d", winner))
	}},
	{"concurrent ensure", func(t *testing.T, ctx context.Context, s AccountStore) {
		created := make([]bool, concurrency)
		errs := raceN(concurrency, func(i int) error {
			var err error
			created[i], err = s.EnsureAccount(ctx, "example.com", "alice")
			return err
		})
		n := 0
		for i, err := range errs {
			if err != nil {
				t.Errorf("EnsureAccount in goroutine %d: %v", i, err)
			}
			if created[i] {
				n++
			}
		}
		if n != 1 {
			t.Errorf("EnsureAccount created the account %d times, want 1", n)
		}
		wantList(t, ctx, s, "", []storage.Account{{Host: "example.com", Username: "alice"}})
	}},
	{"concurrent distinct creates", func(t *testing.T, ctx context.Context, s AccountStore) {
		errs := raceN(concurrency, func(i int) error {
			return s.CreateAccount(ctx, "example.com", fmt.Sprintf("user%d", i), "hash")
		})
		for i, err := range errs {
			if err != nil {
				t.Errorf("CreateAccount in goroutine %d: %v", i, err)
			}
		}
		got, err := s.ListAccounts(ctx, "example.com")
		if err != nil {
			t.Fatalf("ListAccounts: %v", err)
		}
		if len(got) != concurrency {
			t.Errorf("ListAccounts: got %d accounts, want %d", len(got), concurrency)
		}
	}},
	{"cancelled context", func(t *testing.T, ctx context.Context, s AccountStore) {
		mustCreate(t, ctx, s, "example.com", "alice", "hash-1")
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		calls := []struct {
			name string
			call func() error
		}{
			{"CreateAccount", func() error { return s.CreateAccount(cctx, "example.com", "bob", "hash") }},
			{"SetPassword", func() error { return s.SetPassword(cctx, "example.com", "alice", "hash-2") }},
			{"EnsureAccount", func() error { _, err := s.EnsureAccount(cctx, "example.com", "carol"); return err }},
			{"PasswordHash", func() error { _, err := s.PasswordHash(cctx, "example.com", "alice"); return err }},
			{"DeleteAccount", func() error { return s.DeleteAccount(cctx, "example.com", "alice") }},
			{"ListAccounts", func() error { _, err := s.ListAccounts(cctx, ""); return err }},
		}
		for _, c := range calls {
			wantErr(t, c.name+" with a cancelled context", c.call(), context.Canceled)
		}
		// Nothing changed.
		wantHash(t, ctx, s, "example.com", "alice", "hash-1")
		wantList(t, ctx, s, "", []storage.Account{{Host: "example.com", Username: "alice", HasPassword: true}})
	}},
}

func mustCreate(t *testing.T, ctx context.Context, s AccountStore, host, username, hash string) {
	t.Helper()
	if err := s.CreateAccount(ctx, host, username, hash); err != nil {
		t.Fatalf("CreateAccount(%q, %q): %v", host, username, err)
	}
}

func mustSetPassword(t *testing.T, ctx context.Context, s AccountStore, host, username, hash string) {
	t.Helper()
	if err := s.SetPassword(ctx, host, username, hash); err != nil {
		t.Fatalf("SetPassword(%q, %q): %v", host, username, err)
	}
}

func mustDelete(t *testing.T, ctx context.Context, s AccountStore, host, username string) {
	t.Helper()
	if err := s.DeleteAccount(ctx, host, username); err != nil {
		t.Fatalf("DeleteAccount(%q, %q): %v", host, username, err)
	}
}

func mustEnsure(t *testing.T, ctx context.Context, s AccountStore, host, username string, wantCreated bool) {
	t.Helper()
	created, err := s.EnsureAccount(ctx, host, username)
	if err != nil {
		t.Fatalf("EnsureAccount(%q, %q): %v", host, username, err)
	}
	if created != wantCreated {
		t.Fatalf("EnsureAccount(%q, %q) created = %v, want %v", host, username, created, wantCreated)
	}
}

func wantHash(t *testing.T, ctx context.Context, s AccountStore, host, username, want string) {
	t.Helper()
	got, err := s.PasswordHash(ctx, host, username)
	if err != nil {
		t.Fatalf("PasswordHash(%q, %q): %v", host, username, err)
	}
	if got != want {
		t.Fatalf("PasswordHash(%q, %q) = %q, want %q", host, username, got, want)
	}
}

func wantHashErr(t *testing.T, ctx context.Context, s AccountStore, host, username string, want error) {
	t.Helper()
	got, err := s.PasswordHash(ctx, host, username)
	wantErr(t, fmt.Sprintf("PasswordHash(%q, %q)", host, username), err, want)
	if got != "" {
		t.Errorf("PasswordHash(%q, %q) returned %q with its error, want \"\"", host, username, got)
	}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: error %v, want one wrapping %v", what, err, want)
	}
}

// wantList checks ListAccounts(host) against want, ignoring Created.
func wantList(t *testing.T, ctx context.Context, s AccountStore, host string, want []storage.Account) {
	t.Helper()
	got, err := s.ListAccounts(ctx, host)
	if err != nil {
		t.Fatalf("ListAccounts(%q): %v", host, err)
	}
	for i := range got {
		if got[i].Created.IsZero() {
			t.Errorf("ListAccounts(%q)[%d] (%s@%s): zero Created time", host, i, got[i].Username, got[i].Host)
		}
		got[i].Created = time.Time{}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("ListAccounts(%q):\n got %+v\nwant %+v", host, got, want)
	}
}
