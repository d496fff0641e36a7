package auth

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"ottr.im/ottr/storage"
)

func TestPasswordHash(t *testing.T) {
	h, err := HashPassword("correct horse", 1000)
	if err != nil {
		t.Fatal(err)
	}
	h2, _ := HashPassword("correct horse", 1000)
	if h == h2 {
		t.Fatal("two hashes of one password are equal: no salt")
	}
	p, err := ParsePasswordHash(h)
	if err != nil {
		t.Fatal(err)
	}
	if p.Iterations != 1000 || len(p.Salt) != saltLen {
		t.Fatalf("parsed %+v", p)
	}
	if !p.Check("correct horse") {
		t.Fatal("right password refused")
	}
	for _, wrong := range []string{"", "correct hors", "Correct horse", "correct horse "} {
		if p.Check(wrong) {
			t.Fatalf("wrong password %q accepted", wrong)
		}
	}
	for _, bad := range []string{"", "md5$1$a$b", "pbkdf2-sha256$x$AAAA$AAAA", "pbkdf2-sha256$10$!!$AAAA", "pbkdf2-sha256$10$AAAA$AAAA"} {
		if _, err := ParsePasswordHash(bad); err == nil {
			t.Errorf("ParsePasswordHash(%q) accepted", bad)
		}
	}
}

type mapAccounts map[string]string

func (m mapAccounts) PasswordHash(_ context.Context, host, user string) (string, error) {
	h, ok := m[user+"@"+host]
	if !ok {
		return "", storage.ErrNotFound
	}
	return h, nil
}

func TestAuthenticatePlain(t *testing.T) {
	h, _ := HashPassword("s3cret", 1000)
	a, err := New(Options{
		Hosts:    map[string]TokenParams{"example.org": {}},
		Accounts: mapAccounts{"alice@example.org": h, "tokenonly@example.org": ""},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name, mech, host, authzid, user, secret string
		want                                    Reason
	}{
		{"ok", "PLAIN", "example.org", "", "alice", "s3cret", ""},
		{"authzid self", "PLAIN", "example.org", "alice@example.org", "alice", "s3cret", ""},
		{"host case", "PLAIN", "EXAMPLE.org", "", "alice", "s3cret", ""},
		{"wrong password", "PLAIN", "example.org", "", "alice", "nope", ReasonBadCredentials},
		{"unknown user", "PLAIN", "example.org", "", "bob", "s3cret", ReasonBadCredentials},
		{"no password set", "PLAIN", "example.org", "", "tokenonly", "", ReasonBadCredentials},
		{"other host", "PLAIN", "example.net", "", "alice", "s3cret", ReasonBadCredentials},
		{"authzid other", "PLAIN", "example.org", "bob@example.org", "alice", "s3cret", ReasonAuthz},
		{"tokens disabled", "X-TOKEN", "example.org", "", "alice", "12345678 AAAA", ReasonNoTokens},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := a.Authenticate(ctx, Attempt{Mechanism: tc.mech, Host: tc.host, Authzid: tc.authzid, Username: tc.user, Secret: tc.secret})
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, &Error{Reason: tc.want}) {
				t.Fatalf("err = %v, want %s", err, tc.want)
			}
		})
	}
}

func TestSplitPlain(t *testing.T) {
	for _, tc := range []struct {
		in                  string
		authz, user, secret string
		ok                  bool
	}{
		{"\x00alice\x00pw", "", "alice", "pw", true},
		{"a@b\x00Alice\x00pw", "a@b", "alice", "pw", true},
		{"\x00Dave\x00t o k", "", "dave", "t o k", true},
		{"alice\x00pw", "", "", "", false},
		{"\x00\x00pw", "", "", "", false},
		{"\x00alice\x00", "", "", "", false},
		{"\x00al ice\x00pw", "", "", "", false},
		{"\x00al@ice\x00pw", "", "", "", false},
		{"\x00alice\x00pw\x00x", "", "", "", false},
		{"\x00\xff\x00pw", "", "", "", false},
	} {
		authz, user, secret, err := SplitPlain([]byte(tc.in))
		if (err == nil) != tc.ok {
			t.Errorf("%q: err %v, ok want %v", tc.in, err, tc.ok)
			continue
		}
		if tc.ok && (authz != tc.authz || user != tc.user || secret != tc.secret) {
			t.Errorf("%q: got %q %q %q", tc.in, authz, user, secret)
		}
		if !tc.ok && !errors.Is(err, &Error{Reason: ReasonMalformed}) {
			t.Errorf("%q: err %v is not malformed", tc.in, err)
		}
	}
}

// TestUnknownUserCostsTheSame checks that a login for an unknown user does
// the same password hashing as a wrong password for a known one: the two
// take about the same time (within a factor of two, medians of 15).
func TestUnknownUserCostsTheSame(t *testing.T) {
	h, _ := HashPassword("right", DefaultPasswordIterations)
	a, err := New(Options{Hosts: map[string]TokenParams{"example.org": {}}, Accounts: mapAccounts{"alice@example.org": h}})
	if err != nil {
		t.Fatal(err)
	}
	median := func(user string) time.Duration {
		var ds []time.Duration
		for i := 0; i < 15; i++ {
			start := time.Now()
			err := a.Authenticate(context.Background(), Attempt{Mechanism: "PLAIN", Host: "example.org", Username: user, Secret: "wrong"})
			ds = append(ds, time.Since(start))
			if !errors.Is(err, &Error{Reason: ReasonBadCredentials}) {
				t.Fatalf("%s: %v", user, err)
			}
		}
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	known, unknown := median("alice"), median("nobody")
	if ratio := float64(unknown) / float64(known); ratio < 0.5 || ratio > 2 {
		t.Fatalf("unknown user %v, known user %v: ratio %.2f", unknown, known, ratio)
	}
}
