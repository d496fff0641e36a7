package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"mellium.im/xmpp/stream"

	"ottr.im/ottr/auth"
	"ottr.im/ottr/internal/testfixture"
	"ottr.im/ottr/internal/xmpptest"
)

// "ottr ctl" against a running "ottr serve": sessions lists a client's
// session; SIGHUP after the file changed takes the new token secret with
// the session still open; a broken file is refused by "ctl reload" with
// the reason, and the server goes on; "ottr user kick" ends the session
// with a stream error; with the server stopped, ctl says so and "user
// kick" still works.
func TestCtl(t *testing.T) {
	addr := freeAddr(t)
	var dataDir string
	cfg := writeConfigFile(t, func(dir string) string {
		dataDir = dir
		return serveTOML(dir, addr, "localhost")
	})
	p := startServe(t, cfg, addr)
	tlsCfg := dataDirTLS(t, dataDir)
	login := func(user, seed, secret string) (*xmpptest.Client, error) {
		t.Helper()
		params := testfixture.Params()
		params.OTPSeed, params.TokenSecret = seed, secret
		tok, err := auth.Mint(params, user+"@localhost", time.Now(), auth.NewNonce(auth.DefaultNonceDigits))
		if err != nil {
			t.Fatal(err)
		}
		return xmpptest.Login(t, addr, tlsCfg, user, "localhost", "phone", auth.XToken, tok)
	}
	alice, err := login("alice", testfixture.Seed, testfixture.Secret)
	if err != nil {
		t.Fatalf("login: %v\nserver:\n%s", err, p.stderr.String())
	}
	local := alice.Sess.Conn().LocalAddr().String()
	runOttr(t, "", "", "ctl", "-c", cfg, "sessions").check(t, 0,
		[]string{"JID", "TRANSPORT", "alice@localhost/phone", "tcp", local}, nil)
	runOttr(t, "", "", "ctl", "-c", cfg, "stats").check(t, 0, []string{"sessions", "tcp 1", "logins", "success 1"}, nil)

	// SIGHUP with a new pair in the file.
	text, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rotated := strings.Replace(strings.Replace(string(text), testfixture.Seed, testfixture.OtherSeed, 1),
		testfixture.Secret, testfixture.OtherSecret, 1)
	if err := os.WriteFile(cfg, []byte(rotated), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(p.stderr.String(), "configuration reloaded") {
		if time.Now().After(deadline) {
			t.Fatalf("no reload logged after SIGHUP:\n%s", p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if r := alice.IQ(`<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`, "p1"); r.Type != "result" {
		t.Fatalf("ping after SIGHUP: %+v", r)
	}
	if _, err := login("bob", testfixture.Seed, testfixture.Secret); err == nil {
		t.Error("the replaced pair logged in after SIGHUP (no previous pair configured)")
	}
	bob, err := login("bob", testfixture.OtherSeed, testfixture.OtherSecret)
	if err != nil {
		t.Fatalf("the new pair after SIGHUP: %v", err)
	}
	bob.Close()

	// A broken file: refused with the reason, the server goes on.
	if err := os.WriteFile(cfg, []byte(rotated+"\n[limits]\nsend_queue = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	runOttr(t, "", "", "ctl", "-c", cfg, "reload").check(t, 1, nil, []string{"send_queue"})
	if r := alice.IQ(`<iq type='get' id='p2' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`, "p2"); r.Type != "result" {
		t.Fatalf("ping after a failed reload: %+v", r)
	}
	if err := os.WriteFile(cfg, []byte(rotated), 0o600); err != nil {
		t.Fatal(err)
	}
	runOttr(t, "", "", "ctl", "-c", cfg, "reload").check(t, 0, []string{"reloaded: hosts' token secrets"}, nil)

	runOttr(t, "", "", "user", "kick", "-c", cfg, "alice@localhost").check(t, 0, []string{"alice@localhost: 1 session(s) ended"}, nil)
	if err := alice.Ended(); !errors.Is(err, stream.NotAuthorized) {
		t.Fatalf("kicked session ended with %v, want not-authorized", err)
	}
	runOttr(t, "", "", "ctl", "-c", cfg, "kick", "alice@localhost").check(t, 1, nil, []string{"no session"})

	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("serve exited %d", code)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "ottr.sock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("admin socket left after shutdown: %v", err)
	}
	runOttr(t, "", "", "ctl", "-c", cfg, "sessions").check(t, 1, nil, []string{"no server is running"})
	runOttr(t, "", "", "user", "kick", "-c", cfg, "alice@localhost").check(t, 0, []string{"no server running"}, nil)
	runOttr(t, "", "", "ctl", "-c", cfg, "frobnicate").check(t, 2, nil, []string{"unknown ctl command"})
}

// "ottr secrets -rotate HOST" prints a rotation's lines: pasted into the
// host's table in place of its pair, the file validates with a previous
// pair; -rotate needs a file and a configured host.
func TestSecretsRotate(t *testing.T) {
	cfg := writeConfigFile(t, func(dir string) string { return serveTOML(dir, "127.0.0.1:0", "localhost") })
	r := runOttr(t, "", "", "secrets", "-rotate", "localhost", "-c", cfg, "-keep", "48h")
	r.check(t, 0, []string{"previous_otp_seed = \"" + testfixture.Seed + "\"", "previous_until = "}, nil)
	text, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, line := range strings.Split(string(text), "\n") {
		if !strings.HasPrefix(line, "otp_seed") && !strings.HasPrefix(line, "token_secret") {
			kept = append(kept, line)
		}
	}
	rotated := filepath.Join(t.TempDir(), "rotated.toml")
	if err := os.WriteFile(rotated, []byte(strings.Join(kept, "\n")+"\n"+r.stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	runOttr(t, "", "", "check-config", "-c", rotated).check(t, 0, []string{"previous_otp_seed = <set>"}, nil)
	runOttr(t, "", "", "secrets", "-rotate", "localhost").check(t, 2, nil, []string{"-c FILE"})
	runOttr(t, "", "", "secrets", "-rotate", "nohost.example", "-c", cfg).check(t, 1, nil, []string{"nohost.example"})
}
