package main

import (
	"net"
	"os"
	"strings"
	"testing"
)

// TestInteropSlixmppSCRAM logs in to a running ottr with slixmpp's SCRAM
// (testdata/interop/slixmpp_scram.py): SCRAM-SHA-256 and SCRAM-SHA-1 for
// an account made with `ottr user add` (which stores both), a wrong
// password refused with each, and slixmpp's own "y" gs2 flag (it claims
// tls-unique, which TLS 1.3 has not) refused as a downgrade since ottr
// offers -PLUS; `ottr user list -l` names the mechanisms.
func TestInteropSlixmppSCRAM(t *testing.T) {
	requireSlixmpp(t)
	addr := freeAddr(t)
	cfg := writeInteropConfig(t, addr)
	p := startServe(t, cfg, addr)
	_, port, _ := net.SplitHostPort(addr)

	runOttr(t, "", "pencil, paper = scram\n", "user", "add", "-c", cfg, "carol@localhost").check(t, 0, nil, nil)
	runOttr(t, "", "", "user", "list", "-c", cfg, "-l", "localhost").check(t, 0,
		[]string{"carol@localhost: PLAIN SCRAM-SHA-256 SCRAM-SHA-256-PLUS SCRAM-SHA-1 SCRAM-SHA-1-PLUS\n"}, nil)

	out := runSlixmpp(t, p, "slixmpp_scram.py", "--host", "127.0.0.1", "--port", port, "--domain", "localhost",
		"--user", "carol", "--password", "pencil, paper = scram",
		"--mech", "SCRAM-SHA-256", "--mech", "SCRAM-SHA-1", "--wrong-password", "--check-downgrade", "--timeout", "75")
	t.Logf("slixmpp:\n%s", out)
	for _, want := range []string{"SCRAM-SHA-256 login: OK", "SCRAM-SHA-1 login: OK",
		"SCRAM-SHA-256 with a wrong password: OK, refused", "SCRAM-SHA-1 with a wrong password: OK, refused",
		`SCRAM-SHA-256 with slixmpp's "y" flag: OK, refused as a downgrade`} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in the script's output", want)
		}
	}
	// The server logged the mechanism of each login.
	for _, mech := range []string{"SCRAM-SHA-256", "SCRAM-SHA-1"} {
		if !strings.Contains(p.stderr.String(), "mechanism="+mech+" ") {
			t.Errorf("the server logged no %s login:\n%s", mech, p.stderr.String())
		}
	}
	if code := p.stop(t, os.Interrupt); code != 0 {
		t.Errorf("exit code %d", code)
	}
}
