package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"ottr.im/ottr/internal/testfixture"
	"ottr.im/ottr/internal/testtool"
	"ottr.im/ottr/internal/xmpptest"
)

// TestInteropSlixmpp logs in to a running ottr with a client nobody here
// wrote: slixmpp, with a token minted by mod_auth_token's README snippet
// (pyotp), checking that the same token is refused the second time, and
// with PLAIN for a password account (testdata/interop/slixmpp_login.py).
func TestInteropSlixmpp(t *testing.T) {
	requireSlixmpp(t)
	addr := freeAddr(t)
	cfg := writeInteropConfig(t, addr)
	p := startServe(t, cfg, addr)
	_, port, _ := net.SplitHostPort(addr)

	out := runSlixmpp(t, p, "slixmpp_login.py", "--host", "127.0.0.1", "--port", port, "--domain", "localhost",
		"--xtoken", "alice", "--otp-seed", testfixture.Seed, "--token-secret", testfixture.Secret, "--check-replay")
	t.Logf("X-TOKEN: %s", out)

	runOttr(t, "", "correct horse battery\n", "user", "add", "-c", cfg, "bob@localhost").check(t, 0, nil, nil)
	out = runSlixmpp(t, p, "slixmpp_login.py", "--host", "127.0.0.1", "--port", port, "--domain", "localhost",
		"--plain", "bob", "--password", "correct horse battery",
		"--message-to", "alice@localhost", "--body", "hello from slixmpp")
	t.Logf("PLAIN: %s", out)

	// A wrong password must fail: the script exits non-zero.
	bad := exec.Command(python, interopScript("slixmpp_login.py"), "--host", "127.0.0.1", "--port", port, "--domain", "localhost",
		"--plain", "bob", "--password", "wrong", "--timeout", "15")
	if out, err := bad.CombinedOutput(); err == nil {
		t.Fatalf("wrong password logged in:\n%s", out)
	}
	if code := p.stop(t, os.Interrupt); code != 0 {
		t.Errorf("exit code %d", code)
	}
}

// TestInteropSlixmppContacts has two slixmpp clients, logged in at the same
// time (alice with an X-TOKEN minted as mod_auth_token's README does, bob
// with PLAIN), exchange contacts through ottr: roster set, subscription
// request and approval both ways, "both" in pushes and roster gets,
// presence, a chat message each way, and an offline message delivered with
// a delay stamp when bob logs in again (testdata/interop/slixmpp_pair.py).
func TestInteropSlixmppContacts(t *testing.T) {
	requireSlixmpp(t)
	addr := freeAddr(t)
	cfg := writeInteropConfig(t, addr)
	runOttr(t, "", "correct horse battery\n", "user", "add", "-c", cfg, "bob@localhost").check(t, 0, nil, nil)
	p := startServe(t, cfg, addr)
	runSlixmppOn(t, p, addr, nil, "slixmpp_pair.py",
		"--a-xtoken", "alice", "--otp-seed", testfixture.Seed, "--token-secret", testfixture.Secret,
		"--b-plain", "bob", "--b-password", "correct horse battery")
	stopServe(t, p)
}

// waitOutput waits up to 20 s for buf to contain want.
func waitOutput(t *testing.T, buf *xmpptest.LogBuffer, want, what string, p *serveProc) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(buf.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %q within 20s; got:\n%s\nserver stderr:\n%s", what, want, buf.String(), p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestInteropGoSendxmpp logs in to a running ottr with go-sendxmpp, which
// sends whitespace between the elements of negotiation (security review
// #10: that ended its stream). alice listens with -l over direct TLS,
// bob sends her a message over STARTTLS, both with PLAIN and a self-signed
// certificate (-n); a wrong password is refused.
func TestInteropGoSendxmpp(t *testing.T) {
	bin := testtool.Path(t, "go-sendxmpp", "go-sendxmpp")
	addr, tlsAddr := freeAddr(t), freeAddr(t)
	cfg := writeConfigFile(t, func(dataDir string) string {
		return fmt.Sprintf(`data_dir = %q
[log]
level = "debug"
[c2s]
listen = [%q]
direct_tls = [%q]
[[host]]
name = "localhost"
`, dataDir, addr, tlsAddr)
	})
	runOttr(t, "", "alice's password\n", "user", "add", "-c", cfg, "alice@localhost").check(t, 0, nil, nil)
	runOttr(t, "", "bob's password\n", "user", "add", "-c", cfg, "bob@localhost").check(t, 0, nil, nil)
	p := startServe(t, cfg, addr)
	// No configuration file of the user running the test is read.
	env := append(os.Environ(), "HOME="+t.TempDir())

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	listener := exec.CommandContext(ctx, bin, "-u", "alice@localhost", "-p", "alice's password",
		"-j", tlsAddr, "-t", "-n", "--timeout", "20", "-l")
	listener.Env = env
	heard, listenErr := new(xmpptest.LogBuffer), new(xmpptest.LogBuffer)
	listener.Stdout, listener.Stderr = heard, listenErr
	if err := listener.Start(); err != nil {
		t.Fatal(err)
	}
	listenDone := make(chan struct{})
	go func() {
		listener.Wait()
		close(listenDone)
	}()
	stopListener := sync.OnceFunc(func() {
		listener.Process.Kill()
		<-listenDone
	})
	t.Cleanup(stopListener)
	waitOutput(t, p.stderr, "jid=alice@localhost/go-sendxmpp", "alice listening over direct TLS", p)

	const body = "hello from go-sendxmpp over STARTTLS"
	send := exec.CommandContext(ctx, bin, "-u", "bob@localhost", "-p", "bob's password",
		"-j", addr, "-n", "--timeout", "20", "alice@localhost")
	send.Env = env
	send.Stdin = strings.NewReader(body + "\n")
	if out, err := send.CombinedOutput(); err != nil {
		t.Fatalf("go-sendxmpp as bob: %v\n%s\nserver stderr:\n%s", err, out, p.stderr.String())
	}
	waitOutput(t, heard, "bob@localhost: "+body, "alice's go-sendxmpp -l", p)
	t.Logf("go-sendxmpp -l printed: %s", strings.TrimSpace(heard.String()))

	bad := exec.CommandContext(ctx, bin, "-u", "bob@localhost", "-p", "wrong",
		"-j", addr, "-n", "--timeout", "20", "alice@localhost")
	bad.Env = env
	bad.Stdin = strings.NewReader("must not arrive\n")
	if out, err := bad.CombinedOutput(); err == nil {
		t.Fatalf("go-sendxmpp with a wrong password succeeded:\n%s", out)
	}
	if strings.Contains(heard.String(), "must not arrive") {
		t.Fatal("a message sent with a wrong password arrived")
	}

	stopListener()
	if code := p.stop(t, os.Interrupt); code != 0 {
		t.Errorf("exit code %d\nserver stderr:\n%s", code, p.stderr.String())
	}
}
