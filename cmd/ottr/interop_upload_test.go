package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// requireAiohttp skips the test when python3-aiohttp (slixmpp's upload
// plugin's HTTP client) is missing, except in CI, where .ci/run installs
// it and its absence is a failure.
func requireAiohttp(t *testing.T) {
	t.Helper()
	if err := exec.Command(python, "-c", "import aiohttp").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("python3-aiohttp is required in CI: %v", err)
		}
		t.Skipf("python3-aiohttp not installed (apt-get install python3-aiohttp): %v", err)
	}
}

// TestInteropSlixmppUpload has slixmpp's XEP-0363 plugin (xep_0363, with
// aiohttp) find ottr's upload service by disco, read its max-file-size,
// be refused a file over it, upload a file over HTTPS to the slot it got;
// bob downloads it from the URL alice sent him and has the same bytes;
// the slot's second PUT is refused (testdata/interop/slixmpp_upload.py).
func TestInteropSlixmppUpload(t *testing.T) {
	requireSlixmpp(t)
	requireAiohttp(t)
	addr, https := freeAddr(t), freeAddr(t)
	var dataDir string
	cfg := writeConfigFile(t, func(dir string) string {
		dataDir = dir
		return serveTOML(dir, addr, "localhost") + fmt.Sprintf("[http]\ntls_listen = [%q]\n[upload]\nmax_file_bytes = 1000000\n", https)
	})
	users := addPasswordUsers(t, cfg, "alice", "bob")
	p := startServe(t, cfg, addr)
	_, port, _ := net.SplitHostPort(addr)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	script := filepath.Join("..", "..", "testdata", "interop", "slixmpp_upload.py")
	argv := append([]string{script, "-v", "--timeout", "60", "--host", "127.0.0.1", "--port", port,
		"--domain", "localhost", "--max-size", "1000000", "--size", "300000"}, users...)
	cmd := exec.CommandContext(ctx, python, argv...)
	// aiohttp trusts the server's generated certificate through the
	// default context, which reads SSL_CERT_FILE.
	cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+filepath.Join(dataDir, "tls", "cert.pem"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("slixmpp_upload.py: %v\n%s\nstdout:\n%s\nslixmpp debug log (stderr):\n%s\nserver stderr:\n%s",
			err, failLines(stderr.String()), stdout.String(), stderr.String(), p.stderr.String())
	}
	if !strings.Contains(stdout.String(), "all steps OK") {
		t.Fatalf("slixmpp_upload.py exited 0 without \"all steps OK\":\n%s", stdout.String())
	}
	t.Logf("%s", strings.TrimRight(stdout.String(), "\n"))
	files, err := os.ReadDir(filepath.Join(dataDir, "upload", "files"))
	if err != nil || len(files) != 2 {
		t.Errorf("files on disk: %v, %v; want the upload and the single-use check's", files, err)
	}
	stopServe(t, p)
}
