package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestInteropSlixmppUpload has slixmpp's XEP-0363 plugin (xep_0363, with
// aiohttp) find ottr's upload service by disco, read its max-file-size,
// be refused a file over it, upload a file over HTTPS to the slot it got;
// bob downloads it from the URL alice sent him and has the same bytes;
// the slot's second PUT is refused (testdata/interop/slixmpp_upload.py).
func TestInteropSlixmppUpload(t *testing.T) {
	requireSlixmpp(t)
	requirePython(t, "aiohttp", "python3-aiohttp") // slixmpp's upload plugin's HTTP client
	addr, https := freeAddr(t), freeAddr(t)
	var dataDir string
	cfg := writeConfigFile(t, func(dir string) string {
		dataDir = dir
		return serveTOML(dir, addr, "localhost") + fmt.Sprintf("[http]\ntls_listen = [%q]\n[upload]\nmax_file_bytes = 1000000\n", https)
	})
	users := addPasswordUsers(t, cfg, "alice", "bob")
	p := startServe(t, cfg, addr)
	// aiohttp trusts the server's generated certificate through the
	// default context, which reads SSL_CERT_FILE.
	runSlixmppOn(t, p, addr, []string{"SSL_CERT_FILE=" + filepath.Join(dataDir, "tls", "cert.pem")}, "slixmpp_upload.py",
		append([]string{"--max-size", "1000000", "--size", "300000"}, users...)...)
	files, err := os.ReadDir(filepath.Join(dataDir, "upload", "files"))
	if err != nil || len(files) != 2 {
		t.Errorf("files on disk: %v, %v; want the upload and the single-use check's", files, err)
	}
	stopServe(t, p)
}
