package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"ottr.im/ottr/auth"
	"ottr.im/ottr/internal/testfixture"
)

func TestSecrets(t *testing.T) {
	seen := make(map[string]bool)
	for range 3 {
		r := runOttr(t, t.TempDir(), "", "secrets")
		r.check(t, 0, nil, nil)
		var got struct {
			OTPSeed     string `toml:"otp_seed"`
			TokenSecret string `toml:"token_secret"`
		}
		md, err := toml.Decode(r.stdout, &got)
		if err != nil {
			t.Fatalf("output is not TOML: %v\n%s", err, r.stdout)
		}
		if u := md.Undecoded(); len(u) > 0 {
			t.Errorf("unexpected keys %v in\n%s", u, r.stdout)
		}
		if len(got.OTPSeed) != seedLen || len(got.TokenSecret) != secretLen {
			t.Errorf("otp_seed has %d characters and token_secret %d, want %d and %d", len(got.OTPSeed), len(got.TokenSecret), seedLen, secretLen)
		}
		if _, err := auth.DecodeSeed(got.OTPSeed); err != nil {
			t.Errorf("otp_seed %q: %v", got.OTPSeed, err)
		}
		if seen[got.OTPSeed] || seen[got.TokenSecret] {
			t.Errorf("secrets repeated: %+v", got)
		}
		seen[got.OTPSeed], seen[got.TokenSecret] = true, true
	}
}

// newVerifier returns a verifier for p with a fresh replay cache.
func newVerifier(t *testing.T, p auth.TokenParams) *auth.Verifier {
	t.Helper()
	v, err := auth.NewVerifier(p, auth.NewMemoryReplayCache(1024), nil)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// verifyOnce checks that v accepts tok for user@domain once and refuses it
// as a replay the second time.
func verifyOnce(t *testing.T, v *auth.Verifier, user, domain, tok string) {
	t.Helper()
	if err := v.Verify(user, domain, tok); err != nil {
		t.Fatalf("token %q for %s@%s refused: %v", tok, user, domain, err)
	}
	err := v.Verify(user, domain, tok)
	if !errors.Is(err, &auth.Error{Reason: auth.ReasonReplay}) {
		t.Errorf("token verified a second time: got %v, want a replay error", err)
	}
}

func TestToken(t *testing.T) {
	cfg := writeConfig(t, "127.0.0.1:5222")
	example := auth.TokenParams{OTPSeed: testfixture.Seed, TokenSecret: testfixture.Secret, Digits: 8, Interval: 30 * time.Second, Deviation: 1}
	chat := auth.TokenParams{OTPSeed: testfixture.OtherSeed, TokenSecret: testfixture.OtherSecret, Digits: 10, Interval: time.Minute, Deviation: 2}
	tests := []struct {
		name   string
		args   []string
		params auth.TokenParams
		user   string // as the server passes it: nodeprepped
		domain string // lowercased
		nonce  string // "" means random: 32 digits
	}{
		{"default settings", []string{"alice@example.com"}, example, "alice", "example.com", ""},
		{"username nodeprepped", []string{"Alice@example.com"}, example, "alice", "example.com", ""},
		{"host case-insensitive", []string{"bob@EXAMPLE.COM"}, example, "bob", "example.com", ""},
		{"host overrides", []string{"carol@chat.example.org"}, chat, "carol", "chat.example.org", ""},
		{"given nonce", []string{"-nonce", "01234567890123456789012345678901", "dave@example.com"}, example, "dave", "example.com", "01234567890123456789012345678901"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runOttr(t, "", "", append([]string{"token", "-c", cfg}, tt.args...)...)
			r.check(t, 0, nil, nil)
			if r.stderr != "" {
				t.Errorf("stderr not empty:\n%s", r.stderr)
			}
			tok, ok := strings.CutSuffix(r.stdout, "\n")
			if !ok || strings.Contains(tok, "\n") {
				t.Fatalf("stdout is not one line: %q", r.stdout)
			}
			parsed, err := auth.ParseToken(tok, tt.params.Digits)
			if err != nil {
				t.Fatalf("ParseToken(%q): %v", tok, err)
			}
			switch tt.nonce {
			case "":
				if len(parsed.Nonce) != auth.DefaultNonceDigits {
					t.Errorf("nonce %q has %d digits, want %d", parsed.Nonce, len(parsed.Nonce), auth.DefaultNonceDigits)
				}
			case "-":
				if parsed.Nonce != "" {
					t.Errorf("nonce %q, want none", parsed.Nonce)
				}
			default:
				if parsed.Nonce != tt.nonce {
					t.Errorf("nonce %q, want %q", parsed.Nonce, tt.nonce)
				}
			}
			verifyOnce(t, newVerifier(t, tt.params), tt.user, tt.domain, tok)
		})
	}
}

func TestTokenErrors(t *testing.T) {
	cfg := writeConfig(t, "127.0.0.1:5222")
	badSeed, err := filepath.Abs("../../testdata/config/bad_seed.toml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr []string
	}{
		{"unknown host", []string{"-c", cfg, "alice@unknown.example"}, 1, []string{`"unknown.example"`, "not configured", "example.com"}},
		{"unknown host on defaults", []string{"alice@unknown.example"}, 1, []string{`"unknown.example"`, "-c FILE"}},
		{"host without seed", []string{"-c", cfg, "alice@nosecret.example"}, 1, []string{`"nosecret.example"`, "otp_seed"}},
		{"bad config", []string{"-c", badSeed, "alice@example.com"}, 1, []string{"host[0].otp_seed"}},
		{"missing config", []string{"-c", "does-not-exist.toml", "alice@example.com"}, 1, []string{"does-not-exist.toml"}},
		{"no argument", []string{"-c", cfg}, 2, []string{"missing user@host", "usage: ottr token"}},
		{"two arguments", []string{"-c", cfg, "a@example.com", "b@example.com"}, 2, []string{"unexpected arguments"}},
		{"no host", []string{"-c", cfg, "alice"}, 2, []string{`"alice" is not user@host`}},
		{"no user", []string{"-c", cfg, "@example.com"}, 2, []string{"is not user@host"}},
		{"resource", []string{"-c", cfg, "alice@example.com/phone"}, 2, []string{"without a resource"}},
		{"invalid username", []string{"-c", cfg, "al ice@example.com"}, 2, []string{`"al ice" is not a valid username`}},
		{"nonce not digits", []string{"-c", cfg, "-nonce", "12a", "alice@example.com"}, 2, []string{`-nonce "12a"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			r := runOttr(t, dir, "", append([]string{"token"}, tt.args...)...)
			r.check(t, tt.code, nil, tt.stderr)
			if r.stdout != "" {
				t.Errorf("stdout not empty: %q", r.stdout)
			}
			// A failed token command generates nothing, not even on defaults.
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("failed token command wrote into its working directory: %v", entries)
			}
		})
	}
}

// readSecretsFile returns the seed and secret of localhost in the
// secrets file of the data directory under dir.
func readSecretsFile(t *testing.T, dir string) (seed, secret string) {
	t.Helper()
	var doc secretsDoc
	if _, err := toml.DecodeFile(filepath.Join(dir, "ottr-data", secretsFile), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Hosts) != 1 || doc.Hosts[0].Name != "localhost" {
		t.Fatalf("secrets file holds %+v, want localhost alone", doc.Hosts)
	}
	return doc.Hosts[0].OTPSeed, doc.Hosts[0].TokenSecret
}

func TestTokenDefaults(t *testing.T) {
	dir := t.TempDir()
	var seed, secret string
	for i := range 2 {
		r := runOttr(t, dir, "", "token", "Alice@localhost")
		r.check(t, 0, nil, nil)

		dataDir := filepath.Join(dir, "ottr-data")
		for _, c := range []struct {
			path string
			mode os.FileMode
		}{
			{dataDir, 0o700 | os.ModeDir},
			{filepath.Join(dataDir, secretsFile), 0o600},
		} {
			fi, err := os.Stat(c.path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode() != c.mode {
				t.Errorf("%s: mode %v, want %v", c.path, fi.Mode(), c.mode)
			}
		}

		s, sec := readSecretsFile(t, dir)
		if len(s) != seedLen || len(sec) != secretLen {
			t.Errorf("generated otp_seed has %d characters and token_secret %d, want %d and %d", len(s), len(sec), seedLen, secretLen)
		}
		if i == 0 {
			seed, secret = s, sec
		} else if s != seed || sec != secret {
			t.Errorf("second run changed the secrets")
		}
		v := newVerifier(t, auth.TokenParams{OTPSeed: seed, TokenSecret: secret})
		verifyOnce(t, v, "alice", "localhost", strings.TrimSpace(r.stdout))
	}
}

// TestTokenDefaultsConcurrent checks that several first runs at once agree
// on one set of secrets.
func TestTokenDefaultsConcurrent(t *testing.T) {
	dir := t.TempDir()
	const n = 6
	type outcome struct {
		r   result
		err error
	}
	results := make(chan outcome, n)
	for range n {
		go func() {
			r, err := execOttr(dir, "", "token", "alice@localhost")
			results <- outcome{r, err}
		}()
	}
	var toks []string
	for range n {
		o := <-results
		if o.err != nil {
			t.Fatal(o.err)
		}
		r := o.r
		r.check(t, 0, nil, nil)
		toks = append(toks, strings.TrimSpace(r.stdout))
	}
	seed, secret := readSecretsFile(t, dir)
	v := newVerifier(t, auth.TokenParams{OTPSeed: seed, TokenSecret: secret})
	for _, tok := range toks {
		if err := v.Verify("alice", "localhost", tok); err != nil {
			t.Errorf("token %q refused with the secrets on disk: %v", tok, err)
		}
	}
}

func TestTokenWithConfigGeneratesNothing(t *testing.T) {
	cfg := writeConfig(t, "127.0.0.1:5222")
	runOttr(t, "", "", "token", "-c", cfg, "alice@example.com").check(t, 0, nil, nil)
	runOttr(t, "", "", "token", "-c", cfg, "alice@nosecret.example").check(t, 1, nil, nil)
	if _, err := os.Stat(filepath.Join(filepath.Dir(cfg), "data")); !os.IsNotExist(err) {
		t.Errorf("data_dir created with -c: %v", err)
	}
}

// TestTokenNonceDigits: "ottr token" mints nonces of the host's
// token.nonce_digits, refuses a -nonce of another length, and with any
// length refuses usernames that start with a digit (security review #2).
func TestTokenNonceDigits(t *testing.T) {
	cfg := writeConfigFile(t, func(dataDir string) string {
		return fmt.Sprintf(`data_dir = %q

[[host]]
name = "example.com"
otp_seed = %q
token_secret = %q

[[host]]
name = "ten.example"
otp_seed = %q
token_secret = %q
[host.token]
nonce_digits = 10

[[host]]
name = "any.example"
otp_seed = %q
token_secret = %q
[host.token]
nonce_digits = 0
`, dataDir, testfixture.Seed, testfixture.Secret, testfixture.Seed, testfixture.Secret, testfixture.Seed, testfixture.Secret)
	})
	params := func(nonceDigits int) auth.TokenParams {
		p := testfixture.Params()
		p.NonceDigits = nonceDigits
		return p
	}
	ok := []struct {
		name   string
		args   []string
		params auth.TokenParams
		user   string
		domain string
		nonce  int // digits expected
	}{
		{"fixed length, random", []string{"alice@ten.example"}, params(10), "alice", "ten.example", 10},
		{"fixed length, given", []string{"-nonce", "0123456789", "12345@ten.example"}, params(10), "12345", "ten.example", 10},
		{"default, numeric user", []string{"12345@example.com"}, params(0), "12345", "example.com", 32},
		{"any length, random", []string{"alice@any.example"}, params(auth.AnyNonceLength), "alice", "any.example", 32},
		{"any length, short", []string{"-nonce", "77", "alice@any.example"}, params(auth.AnyNonceLength), "alice", "any.example", 2},
		{"any length, empty", []string{"-nonce=", "a1@any.example"}, params(auth.AnyNonceLength), "a1", "any.example", 0},
	}
	for _, tt := range ok {
		t.Run(tt.name, func(t *testing.T) {
			r := runOttr(t, "", "", append([]string{"token", "-c", cfg}, tt.args...)...)
			r.check(t, 0, nil, nil)
			tok := strings.TrimSuffix(r.stdout, "\n")
			parsed, err := auth.ParseToken(tok, auth.DefaultDigits)
			if err != nil {
				t.Fatalf("ParseToken(%q): %v", tok, err)
			}
			if len(parsed.Nonce) != tt.nonce {
				t.Errorf("nonce %q has %d digits, want %d", parsed.Nonce, len(parsed.Nonce), tt.nonce)
			}
			verifyOnce(t, newVerifier(t, tt.params), tt.user, tt.domain, tok)
		})
	}
	bad := []struct {
		name   string
		args   []string
		stderr []string
	}{
		{"default, short nonce", []string{"-nonce", "77", "12345@example.com"}, []string{`-nonce "77"`, "exactly 32", "token.nonce_digits"}},
		{"fixed length, long nonce", []string{"-nonce", "01234567890", "alice@ten.example"}, []string{"11 digits", "exactly 10"}},
		{"any length, numeric user", []string{"-nonce", "77", "12345@any.example"}, []string{`"any.example"`, "nonce_digits = 0", `"12345"`}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			r := runOttr(t, "", "", append([]string{"token", "-c", cfg}, tt.args...)...)
			r.check(t, 1, nil, tt.stderr)
			if r.stdout != "" {
				t.Errorf("stdout not empty: %q", r.stdout)
			}
		})
	}
}
