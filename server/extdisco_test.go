package server_test

import (
	"context"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"ottr.im/ottr/config"
	"ottr.im/ottr/internal/testtool"
)

const (
	turnSecret = "ottr-test-turn-secret-0123456789"
	turnRealm  = "ottr.test"
)

// freeUDPPort returns a port free on loopback just now, picked by
// listening on port 0 and closing (turnserver takes no port 0).
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// startCoturn runs Debian's coturn on loopback with the TURN REST API's
// shared secret (use-auth-secret), in the foreground, until the test
// ends; it returns its port once it accepts TCP connections.
func startCoturn(t *testing.T) int {
	t.Helper()
	turnserver := testtool.Path(t, "turnserver", "coturn")
	port := freeUDPPort(t)
	dir := t.TempDir()
	startProcess(t, "turnserver", nil, turnserver, "-n",
		"--use-auth-secret", "--static-auth-secret="+turnSecret, "--realm="+turnRealm,
		"--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", "--listening-port="+strconv.Itoa(port),
		"--allow-loopback-peers", "--no-tls", "--no-dtls", "--no-cli",
		"--pidfile="+filepath.Join(dir, "turnserver.pid"), "--db="+filepath.Join(dir, "turndb"),
		"--log-file=stdout", "--simple-log", "--verbose")
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
		if err == nil {
			c.Close()
			return port
		}
		if time.Now().After(deadline) {
			t.Fatalf("turnserver does not listen on %d: %v", port, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// allocate runs coturn's test client, which allocates two relays with
// the credentials and sends between them; it returns its output and
// whether it succeeded.
func allocate(t *testing.T, port int, username, password string) (string, bool) {
	t.Helper()
	uclient := testtool.Path(t, "turnutils_uclient", "coturn")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, uclient, "-u", username, "-w", password, "-r", turnRealm,
		"-p", strconv.Itoa(port), "-y", "-n", "1", "-m", "1", "-l", "100", "127.0.0.1").CombinedOutput()
	return string(out), err == nil
}

// TestExternalServicesCoturn gets TURN credentials from ottr (XEP-0215)
// and allocates relays on coturn with them.
func TestExternalServicesCoturn(t *testing.T) {
	port := startCoturn(t)
	ts := startServer(t, func(cfg *config.Config) {
		cfg.ExternalServices = []config.ExternalService{
			{Type: "stun", Host: "127.0.0.1", Port: port, Transport: "udp", TTL: config.Duration{Duration: time.Hour}},
			{Type: "turn", Host: "127.0.0.1", Port: port, Transport: "udp", Secret: turnSecret, TTL: config.Duration{Duration: time.Hour}},
		}
	})
	alice := ts.online(t, "alice", "a")
	if info := alice.IQ(`<iq type='get' id='info' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`, "info"); !strings.Contains(info.Inner, "urn:xmpp:extdisco:2") {
		t.Fatalf("the server's disco#info lacks urn:xmpp:extdisco:2: %s", info.Inner)
	}
	r := alice.IQ(`<iq type='get' id='ext' to='localhost'><services xmlns='urn:xmpp:extdisco:2'/></iq>`, "ext")
	if r.Type != "result" || strings.Count(r.Inner, "<service ") != 2 {
		t.Fatalf("services answer: %+v", r)
	}
	m := regexp.MustCompile(`type="turn"[^>]* username="([^"]+)" password="([^"]+)" expires="([^"]+)"`).FindStringSubmatch(r.Inner)
	if m == nil {
		t.Fatalf("no TURN credentials in %s", r.Inner)
	}
	username, password := m[1], m[2]
	expires, err := time.Parse(time.RFC3339, m[3])
	if err != nil || expires.Before(time.Now().Add(50*time.Minute)) || expires.After(time.Now().Add(61*time.Minute)) {
		t.Fatalf("expires %q (%v), want about an hour from now", m[3], err)
	}
	if want := strconv.FormatInt(expires.Unix(), 10) + ":alice@localhost"; username != want {
		t.Fatalf("username %q, want %q", username, want)
	}
	out, ok := allocate(t, port, username, password)
	if !ok || strings.Contains(out, "ERROR") || !regexp.MustCompile(`tot_recv_msgs=[1-9]`).MatchString(out) {
		t.Fatalf("allocation with ottr's credentials failed:\n%s", out)
	}
	// The same client with a password that is not the secret's HMAC
	// is refused: the check above could fail.
	if out, ok := allocate(t, port, username, "AAAA"+password[4:]); ok || !strings.Contains(out, "Cannot complete Allocation") {
		t.Fatalf("allocation with a wrong password succeeded:\n%s", out)
	}
	// A credentials request (XEP-0215 §3.3) gets credentials too.
	c := alice.IQ(`<iq type='get' id='cred' to='localhost'><credentials xmlns='urn:xmpp:extdisco:2'><service host='127.0.0.1' type='turn'/></credentials></iq>`, "cred")
	if c.Type != "result" || !strings.Contains(c.Inner, `:alice@localhost"`) || !strings.Contains(c.Inner, `password="`) {
		t.Fatalf("credentials answer: %+v", c)
	}
}
