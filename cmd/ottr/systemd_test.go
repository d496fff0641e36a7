package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"ottr.im/ottr/internal/testtool"
)

// unitFile is the systemd unit shipped for deployments.
const unitFile = "../../dist/ottr.service"

// TestSystemdUnit checks dist/ottr.service with systemd-analyze verify
// (its ExecStart pointed at the binary the tests built, which verify
// wants to exist) and that it keeps the sandboxing the README promises.
func TestSystemdUnit(t *testing.T) {
	unit, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	const execStart = "ExecStart=/usr/local/bin/ottr serve -c /etc/ottr/config.toml"
	directives := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(string(unit)))
	for sc.Scan() {
		directives[strings.TrimSpace(sc.Text())] = true
	}
	for _, want := range []string{
		execStart,
		"DynamicUser=yes",
		"StateDirectory=ottr",
		"WorkingDirectory=/var/lib/ottr",
		"ProtectSystem=strict",
		"NoNewPrivileges=yes",
		"ProtectHome=yes",
		"PrivateTmp=yes",
		"CapabilityBoundingSet=",
		"#AmbientCapabilities=CAP_NET_BIND_SERVICE", // only for ports below 1024
	} {
		if !directives[want] {
			t.Errorf("%s has no line %q", unitFile, want)
		}
	}
	if directives["AmbientCapabilities=CAP_NET_BIND_SERVICE"] {
		t.Errorf("%s grants CAP_NET_BIND_SERVICE by default", unitFile)
	}

	analyze := testtool.Path(t, "systemd-analyze", "systemd")
	dir := t.TempDir()
	path := filepath.Join(dir, "ottr.service")
	local := strings.Replace(string(unit), "ExecStart=/usr/local/bin/ottr ", "ExecStart="+ottrBin+" ", 1)
	if err := os.WriteFile(path, []byte(local), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(analyze, "verify", path)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}

	// verify fails on a directive it does not know: the check can fail.
	bad := filepath.Join(dir, "bad.service")
	if err := os.WriteFile(bad, []byte(strings.Replace(local, "ProtectSystem=strict", "ProtectSystem=very", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(analyze, "verify", bad).CombinedOutput(); err == nil && len(out) == 0 {
		t.Error("systemd-analyze verify accepted ProtectSystem=very silently")
	}
}

// TestServeJSONLog runs the binary with log.format = "json": every line
// it writes to stderr is a JSON object with time, level and msg.
func TestServeJSONLog(t *testing.T) {
	addr := freeAddr(t)
	cfg := writeConfigFile(t, func(dataDir string) string {
		return strings.Replace(serveTOML(dataDir, addr, "example.com"), "[log]\n", "[log]\nformat = \"json\"\n", 1)
	})
	p := startServe(t, cfg, addr)
	p.kill(t, syscall.SIGTERM)
	out := strings.TrimSpace(p.stderr.String())
	lines := strings.Split(out, "\n")
	if len(lines) < 2 {
		t.Fatalf("stderr has %d lines:\n%s", len(lines), out)
	}
	listening := false
	for _, l := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("a line is not JSON: %q: %v", l, err)
		}
		for _, k := range []string{"time", "level", "msg"} {
			if _, ok := rec[k]; !ok {
				t.Errorf("line %q has no %q", l, k)
			}
		}
		if rec["msg"] == "listening" && rec["addr"] == addr {
			listening = true
		}
	}
	if !listening {
		t.Errorf("no JSON line says it listens on %s:\n%s", addr, out)
	}
}
