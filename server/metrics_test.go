package server_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"ottr.im/ottr/auth"
	"ottr.im/ottr/config"
	"ottr.im/ottr/internal/testfixture"
)

// scrape reads the server's /metrics: each sample by its name and labels
// as the exposition writes them, such as
// ottr_sessions{transport="tcp"}; and the raw text.
func scrape(t *testing.T, base string) (map[string]float64, []byte) {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d, %v", resp.StatusCode, err)
	}
	out := make(map[string]float64)
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out, body
}

// A scrape during logins (TCP, WebSocket, BOSH, one failed) and messages
// (delivered, stored offline, archived) shows the counters move; the
// exposition passes promtool's checks; /healthz and /readyz answer.
func TestMetrics(t *testing.T) {
	ws := startWeb(t, func(c *config.Config) { c.Admin.Listen = "127.0.0.1:0" })
	base := "http://" + ws.srv.AdminAddr().String()
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", path, resp.StatusCode)
		}
	}
	before, _ := scrape(t, base)
	for _, k := range []string{`ottr_sessions{transport="tcp"}`, `go_goroutines`, `process_resident_memory_bytes`, `ottr_connections`} {
		if _, ok := before[k]; !ok {
			t.Errorf("no %s before any login", k)
		}
	}

	erin := ws.online(t, "erin", "phone") // then offline: messages to her are stored
	erin.Close()
	alice := ws.online(t, "alice", "a")
	bob := ws.online(t, "bob", "b")
	forged := testfixture.Params()
	forged.TokenSecret = "not the host's token secret"
	tok, err := auth.Mint(forged, "mallory@"+testHost, time.Now(), auth.NewNonce(auth.DefaultNonceDigits))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ws.login(t, "mallory", "", auth.XToken, tok); err == nil {
		t.Fatal("a forged token logged in")
	}
	if _, err := ws.wsLogin(t, "carol", "web", auth.XToken, ws.token(t, "carol")); err != nil {
		t.Fatal(err)
	}
	ws.bosh(t, ws.https).login("dave", "bosh", 30)
	alice.Send(`<message to='bob@` + testHost + `' type='chat' id='m1'><body>hi</body></message>`)
	bob.NextNamed("message", "chat")
	alice.Send(`<message to='erin@` + testHost + `' type='chat' id='m2'><body>later</body></message>`)
	// SASL2: an X-TOKEN login asking for a FAST token, then one FAST
	// login with it and one with a wrong token: each counted once.
	const agent = "0f6b3b34-1d1e-4d2a-9b7e-5b8f0e4c2a11"
	c := dialSASL2(t, ws.testServer)
	fast := fastToken(t, c.authenticate(auth.XToken, "frank", ws.token(t, "frank"),
		userAgent(agent)+`<request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-NONE'/>`), 14*24*time.Hour)
	c.Close()
	for _, tok := range []string{fast, "not the token"} {
		c := dialSASL2(t, ws.testServer)
		c.fastLogin(auth.FastNone, "frank", tok, nil, agent, "")
		c.Close()
	}

	var after map[string]float64
	var text []byte
	delta := func(k string) float64 { return after[k] - before[k] }
	deadline := time.Now().Add(20 * time.Second)
	for {
		after, text = scrape(t, base)
		// The archive writes in batches, after delivery.
		if delta(`ottr_archive_writes_total{result="stored"}`) >= 4 && delta(`ottr_offline_writes_total{result="stored"}`) >= 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, c := range []struct {
		key      string
		min, max float64
	}{
		{`ottr_logins_total{mechanism="X-TOKEN",result="success"}`, 6, 6},
		{`ottr_logins_total{mechanism="HT-SHA-256-NONE",result="success"}`, 1, 1},
		{`ottr_logins_total{mechanism="HT-SHA-256-NONE",result="not-authorized"}`, 1, 1},
		{`ottr_logins_total{mechanism="X-TOKEN",result="not-authorized"}`, 1, 1},
		{`ottr_sessions{transport="tcp"}`, 2, 2},
		{`ottr_sessions{transport="websocket"}`, 1, 1},
		{`ottr_sessions{transport="bosh"}`, 1, 1},
		{`ottr_stanzas_routed_total{kind="message"}`, 2, 2},
		{`ottr_stanzas_routed_total{kind="presence"}`, 3, 100},
		{`ottr_stanzas_routed_total{kind="iq"}`, 3, 100},
		{`ottr_offline_writes_total{result="stored"}`, 1, 1},
		// m1 in alice's and bob's archives, m2 in alice's and erin's.
		{`ottr_archive_writes_total{result="stored"}`, 4, 4},
		{`ottr_storage_duration_seconds_count{op="store_offline"}`, 1, 1},
		{`ottr_storage_duration_seconds_count{op="append_archives"}`, 1, 4},
		{`ottr_storage_duration_seconds_count{op="roster"}`, 3, 100},
	} {
		if d := delta(c.key); d < c.min || d > c.max {
			t.Errorf("%s moved by %v, want %v to %v", c.key, d, c.min, c.max)
		}
	}
	if after[`ottr_connections`] < 4 {
		t.Errorf("ottr_connections = %v with 4 sessions open", after[`ottr_connections`])
	}
	promtoolCheck(t, text)
	dashboardMetrics(t, after)
}

// dashboardMetrics checks that every metric the Grafana dashboard
// (dist/grafana-ottr.json) queries is in the exposition.
func dashboardMetrics(t *testing.T, samples map[string]float64) {
	t.Helper()
	b, err := os.ReadFile("../dist/grafana-ottr.json")
	if err != nil {
		t.Fatal(err)
	}
	names := make(map[string]bool)
	for k := range samples {
		name, _, _ := strings.Cut(k, "{")
		names[name] = true
	}
	used := regexp.MustCompile(`\b(?:ottr|go|process)_[a-z_]+`).FindAllString(string(b), -1)
	if len(used) < 10 {
		t.Fatalf("the dashboard queries %d metrics: %v", len(used), used)
	}
	for _, m := range used {
		if !names[m] {
			t.Errorf("the dashboard queries %s, which the server does not expose", m)
		}
	}
}

// promtoolCheck runs "promtool check metrics" (Debian's prometheus
// package) on an exposition: its linter's complaints fail the test. Where
// promtool is missing the check is skipped, except in CI (.ci/run
// installs it).
func promtoolCheck(t *testing.T, exposition []byte) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool is not installed (apt-get install prometheus); CI needs it")
		}
		t.Log("promtool not installed: apt-get install prometheus to check the exposition")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "check", "metrics")
	cmd.Stdin = bytes.NewReader(exposition)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	t.Logf("promtool check metrics: passed (%d bytes checked)%s", len(exposition), strings.TrimSpace(" "+string(out)))
}
