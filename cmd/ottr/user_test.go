package main

import (
	"context"
	"path/filepath"
	"testing"

	"ottr.im/ottr/auth"
	"ottr.im/ottr/config"
	"ottr.im/ottr/storage/sqlite"
)

// checkPassword reports a failure unless user@host is stored in the
// database of the configuration at cfgPath with password pw.
func checkPassword(t *testing.T, cfgPath, host, user, pw string) {
	t.Helper()
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	checkPasswordIn(t, cfg.DatabasePath(), host, user, pw)
}

// checkPasswordIn is checkPassword for the database at dbPath.
func checkPasswordIn(t *testing.T, dbPath, host, user, pw string) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	stored, err := st.PasswordHash(context.Background(), host, user)
	if err != nil {
		t.Fatal(err)
	}
	h, err := auth.ParsePasswordHash(stored)
	if err != nil {
		t.Fatal(err)
	}
	if !h.Check(pw) {
		t.Errorf("%s@%s: stored password is not %q", user, host, pw)
	}
}

func TestUser(t *testing.T) {
	cfg := writeConfig(t, "127.0.0.1:5222")
	dbPath := filepath.Join(filepath.Dir(cfg), "data", config.DatabaseFile)

	// The steps run in order on one database.
	steps := []struct {
		name   string
		args   []string
		stdin  string
		code   int
		stdout string   // exact, for list
		stderr []string // substrings
		after  func(t *testing.T)
	}{
		{name: "list empty", args: []string{"list", "-c", cfg}, stdout: ""},
		{name: "add", args: []string{"add", "-c", cfg, "Alice@Example.com"}, stdin: "s3cret pass\n",
			stderr: []string{"created alice@example.com"},
			after:  func(t *testing.T) { checkPassword(t, cfg, "example.com", "alice", "s3cret pass") }},
		{name: "list", args: []string{"list", "-c", cfg}, stdout: "alice@example.com\n"},
		{name: "add duplicate", args: []string{"add", "-c", cfg, "alice@example.com"}, stdin: "other\n", code: 1,
			stderr: []string{"alice@example.com already exists (use `ottr user passwd`)"},
			after:  func(t *testing.T) { checkPassword(t, cfg, "example.com", "alice", "s3cret pass") }},
		{name: "add empty stdin", args: []string{"add", "-c", cfg, "bob@example.com"}, code: 1,
			stderr: []string{"empty password"}},
		{name: "add empty line", args: []string{"add", "-c", cfg, "bob@example.com"}, stdin: "\n", code: 1,
			stderr: []string{"empty password"}},
		{name: "add CRLF, no seed needed", args: []string{"add", "-c", cfg, "bob@nosecret.example"}, stdin: "pw\r\nignored\n",
			after: func(t *testing.T) { checkPassword(t, cfg, "nosecret.example", "bob", "pw") }},
		{name: "add last line without newline", args: []string{"add", "-c", cfg, "carol@chat.example.org"}, stdin: "pw2",
			after: func(t *testing.T) { checkPassword(t, cfg, "chat.example.org", "carol", "pw2") }},
		{name: "add unknown host", args: []string{"add", "-c", cfg, "dave@unknown.example"}, stdin: "pw\n", code: 1,
			stderr: []string{`"unknown.example"`}},
		{name: "token-only account", after: func(t *testing.T) {
			st, err := sqlite.Open(context.Background(), dbPath)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if _, err := st.EnsureAccount(context.Background(), "example.com", "erin"); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "list all", args: []string{"list", "-c", cfg},
			stdout: "carol@chat.example.org\nalice@example.com\nerin@example.com (token only)\nbob@nosecret.example\n"},
		{name: "list host", args: []string{"list", "-c", cfg, "EXAMPLE.com"},
			stdout: "alice@example.com\nerin@example.com (token only)\n"},
		{name: "list unknown host", args: []string{"list", "-c", cfg, "unknown.example"}, code: 1,
			stderr: []string{`"unknown.example"`}},
		{name: "passwd", args: []string{"passwd", "-c", cfg, "alice@example.com"}, stdin: "new\n",
			after: func(t *testing.T) { checkPassword(t, cfg, "example.com", "alice", "new") }},
		{name: "passwd of a token-only account", args: []string{"passwd", "-c", cfg, "erin@example.com"}, stdin: "pw\n",
			after: func(t *testing.T) { checkPassword(t, cfg, "example.com", "erin", "pw") }},
		{name: "passwd missing", args: []string{"passwd", "-c", cfg, "zed@example.com"}, stdin: "pw\n", code: 1,
			stderr: []string{"zed@example.com does not exist"}},
		{name: "del", args: []string{"del", "-c", cfg, "ALICE@example.com"}, stderr: []string{"deleted alice@example.com"}},
		{name: "list after del", args: []string{"list", "-c", cfg, "example.com"}, stdout: "erin@example.com\n"},
		{name: "del again", args: []string{"del", "-c", cfg, "alice@example.com"}, code: 1,
			stderr: []string{"alice@example.com does not exist"}},
		{name: "del without argument", args: []string{"del", "-c", cfg}, code: 2, stderr: []string{"missing user@host"}},
		{name: "add bad JID", args: []string{"add", "-c", cfg, "example.com"}, stdin: "pw\n", code: 2,
			stderr: []string{"is not user@host"}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if s.args != nil {
				r := runOttr(t, "", s.stdin, append([]string{"user"}, s.args...)...)
				r.check(t, s.code, nil, s.stderr)
				if r.stdout != s.stdout {
					t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, s.stdout)
				}
			}
			if s.after != nil {
				s.after(t)
			}
		})
	}
}

func TestUserDefaults(t *testing.T) {
	dir := t.TempDir()
	runOttr(t, dir, "pw\n", "user", "add", "alice@localhost").check(t, 0, nil, nil)
	r := runOttr(t, dir, "", "user", "list")
	r.check(t, 0, nil, nil)
	if r.stdout != "alice@localhost\n" {
		t.Errorf("list: %q, want alice@localhost", r.stdout)
	}
	checkPasswordIn(t, filepath.Join(dir, "ottr-data", config.DatabaseFile), "localhost", "alice", "pw")
}
