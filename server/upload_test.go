package server_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"ottr.im/ottr/config"
	"ottr.im/ottr/internal/xmpptest"
	"ottr.im/ottr/storage/sqlite"
)

// The HTTP upload service (XEP-0363, mod/upload) over real sockets: slots
// asked for over STARTTLS, files PUT and GET over HTTPS with the server's
// certificate, at upload.localhost's URLs.

const uploadNS = "urn:xmpp:http:upload:0"

// slot is an answer to a slot request.
type slot struct {
	Put struct {
		URL string `xml:"url,attr"`
	} `xml:"put"`
	Get struct {
		URL string `xml:"url,attr"`
	} `xml:"get"`
}

// requestSlot asks upload.localhost for a slot and returns the answer:
// the slot, or the error's inner XML.
func requestSlot(t *testing.T, c *xmpptest.Client, name, size, ctype string) (slot, xmpptest.Received) {
	t.Helper()
	id := "slot-" + name + size
	r := c.IQ(`<iq to="upload.localhost" type="get" id="`+id+`"><request xmlns="`+uploadNS+`" filename="`+name+`" size="`+size+`" content-type="`+ctype+`"/></iq>`, id)
	var s slot
	if r.Type == "result" {
		if err := xml.Unmarshal([]byte(r.Inner), &s); err != nil || s.Put.URL == "" || s.Get.URL == "" {
			t.Fatalf("slot answer %s: %v", r.Inner, err)
		}
	}
	return s, r
}

// mustSlot asks for a slot and fails the test without one.
func mustSlot(t *testing.T, c *xmpptest.Client, name, size, ctype string) slot {
	t.Helper()
	s, r := requestSlot(t, c, name, size, ctype)
	if r.Type != "result" {
		t.Fatalf("slot request: %s %s", r.Type, r.Inner)
	}
	return s
}

// httpDo sends one request with body (of unknown length when chunked)
// and returns the response and its body.
func (ws *webServer) httpDo(t *testing.T, method, url string, header map[string]string, body string, chunked bool) (*http.Response, string) {
	t.Helper()
	var rd io.Reader = strings.NewReader(body)
	if chunked {
		rd = io.MultiReader(rd) // no length known: Transfer-Encoding chunked
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	if chunked {
		req.ContentLength = -1
	}
	resp, err := ws.client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	return resp, string(b)
}

func (ws *webServer) put(t *testing.T, url, ctype, body string) (*http.Response, string) {
	t.Helper()
	return ws.httpDo(t, "PUT", url, map[string]string{"Content-Type": ctype}, body, false)
}

// uploadFiles lists data_dir/upload/files.
func uploadFiles(t *testing.T, ts *testServer) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(ts.cfg.DataDir, "upload", "files"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestUploadAndDownload: alice finds the service in her host's
// disco#items, reads the maximum size from its disco#info, gets a slot,
// PUTs a photo over HTTPS and sends bob the GET URL; bob downloads it
// with the right headers. The PUT URL works once.
func TestUploadAndDownload(t *testing.T) {
	ws := startWeb(t, nil)
	alice := ws.online(t, "alice", "phone")
	bob := ws.online(t, "bob", "laptop")

	items := alice.IQ(`<iq to="localhost" type="get" id="items"><query xmlns="http://jabber.org/protocol/disco#items"/></iq>`, "items")
	if !strings.Contains(items.Inner, `jid="upload.localhost"`) {
		t.Fatalf("disco#items of localhost: %s", items.Inner)
	}
	info := alice.IQ(`<iq to="upload.localhost" type="get" id="info"><query xmlns="http://jabber.org/protocol/disco#info"/></iq>`, "info")
	for _, want := range []string{`category="store" type="file"`, `var="` + uploadNS + `"`, `var="max-file-size" type="text-single"><value xmlns="jabber:x:data">10485760</value>`} {
		if !strings.Contains(info.Inner, want) {
			t.Errorf("disco#info of upload.localhost lacks %s: %s", want, info.Inner)
		}
	}

	photo := strings.Repeat("\xff\xd8 not really a JPEG ", 1000)
	s := mustSlot(t, alice, "holiday photo.jpg", strconv.Itoa(len(photo)), "image/jpeg")
	if !strings.HasPrefix(s.Get.URL, "https://localhost:") || !strings.Contains(s.Get.URL, "/upload/") {
		t.Errorf("GET URL %s", s.Get.URL)
	}
	if resp, body := ws.put(t, s.Put.URL, "image/jpeg", photo); resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %s %s", resp.Status, body)
	}
	if resp, _ := ws.put(t, s.Put.URL, "image/jpeg", photo); resp.StatusCode != http.StatusConflict {
		t.Errorf("the same PUT again: %s, want 409", resp.Status)
	}

	alice.Send(`<message to="bob@localhost" type="chat" id="m1"><body>` + s.Get.URL + `</body><x xmlns="jabber:x:oob"><url>` + s.Get.URL + `</url></x></message>`)
	msg := bob.WaitFor(func(r xmpptest.Received) bool { return r.Name == "message" && r.ID == "m1" })
	resp, body := ws.httpDo(t, "GET", msg.Body, map[string]string{"Origin": "https://web.example"}, "", false)
	if resp.StatusCode != http.StatusOK || body != photo {
		t.Fatalf("bob's GET: %s, %d bytes", resp.Status, len(body))
	}
	for k, want := range map[string]string{
		"Content-Type":                "image/jpeg",
		"Content-Length":              strconv.Itoa(len(photo)),
		"X-Content-Type-Options":      "nosniff",
		"Content-Disposition":         `inline; filename="holiday photo.jpg"; filename*=UTF-8''holiday%20photo.jpg`,
		"Access-Control-Allow-Origin": "*",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("GET %s = %q, want %q", k, got, want)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	// A range, as a client resuming a download asks.
	resp, body = ws.httpDo(t, "GET", s.Get.URL, map[string]string{"Range": "bytes=10-"}, "", false)
	if resp.StatusCode != http.StatusPartialContent || body != photo[10:] {
		t.Errorf("ranged GET: %s, %d bytes", resp.Status, len(body))
	}
	if files := uploadFiles(t, ws.testServer); len(files) != 1 {
		t.Errorf("files on disk: %v", files)
	}
}

// TestUploadRefused: what does not match the slot is refused and nothing
// of it is kept: a Content-Length over the slot's (413), more bytes than
// the slot's in a chunked body (413), fewer (400), another type (415), the
// GET URL or a forged MAC used to PUT (403), a slot used twice (409).
func TestUploadRefused(t *testing.T) {
	ws := startWeb(t, nil)
	alice := ws.online(t, "alice", "phone")
	s := mustSlot(t, alice, "notes.txt", "10", "text/plain")
	for _, tc := range []struct {
		name    string
		url     string
		ctype   string
		body    string
		chunked bool
		want    int
	}{
		{"longer", s.Put.URL, "text/plain", "0123456789A", false, http.StatusRequestEntityTooLarge},
		{"longer chunked", s.Put.URL, "text/plain", "0123456789" + strings.Repeat("A", 100000), true, http.StatusRequestEntityTooLarge},
		{"shorter", s.Put.URL, "text/plain", "012345678", false, http.StatusBadRequest},
		{"shorter chunked", s.Put.URL, "text/plain", "012345678", true, http.StatusBadRequest},
		{"other type", s.Put.URL, "text/html", "0123456789", false, http.StatusUnsupportedMediaType},
		{"GET URL", s.Get.URL, "text/plain", "0123456789", false, http.StatusForbidden},
		{"forged MAC", s.Put.URL[:len(s.Put.URL)-4] + "0000", "text/plain", "0123456789", false, http.StatusForbidden},
		{"other slot", strings.Replace(s.Put.URL, "/upload/", "/upload/0", 1), "text/plain", "0123456789", false, http.StatusNotFound},
	} {
		resp, body := ws.httpDo(t, "PUT", tc.url, map[string]string{"Content-Type": tc.ctype}, tc.body, tc.chunked)
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %s %s, want %d", tc.name, resp.Status, body, tc.want)
		}
		if files := uploadFiles(t, ws.testServer); len(files) != 0 {
			t.Errorf("%s: files on disk: %v", tc.name, files)
		}
		if resp, _ := ws.httpDo(t, "GET", s.Get.URL, nil, "", false); resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: GET after it: %s", tc.name, resp.Status)
		}
	}
	// The slot is still good for the right PUT, chunked too, once.
	if resp, body := ws.httpDo(t, "PUT", s.Put.URL, map[string]string{"Content-Type": "text/plain; charset=utf-8"}, "0123456789", true); resp.StatusCode != http.StatusCreated {
		t.Fatalf("the right PUT: %s %s", resp.Status, body)
	}
	if resp, _ := ws.put(t, s.Put.URL, "text/plain", "9876543210"); resp.StatusCode != http.StatusConflict {
		t.Errorf("reusing the slot: %s, want 409", resp.Status)
	}
	if resp, body := ws.httpDo(t, "GET", s.Get.URL, nil, "", false); resp.StatusCode != http.StatusOK || body != "0123456789" {
		t.Errorf("GET: %s %q", resp.Status, body)
	}

	// Errors of the slot request itself.
	for _, tc := range []struct{ size, want string }{
		{"10485761", `<file-too-large xmlns="` + uploadNS + `"><max-file-size xmlns="` + uploadNS + `">10485760</max-file-size></file-too-large>`},
		{"ten", `<bad-request xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"></bad-request>`},
	} {
		if _, r := requestSlot(t, alice, "a.bin", tc.size, ""); r.Type != "error" || !strings.Contains(r.Inner, tc.want) {
			t.Errorf("size %s: %s %s", tc.size, r.Type, r.Inner)
		}
	}
}

// TestUploadSlotExpires: a slot's PUT after slot_lifetime is refused.
func TestUploadSlotExpires(t *testing.T) {
	ws := startWeb(t, func(c *config.Config) { c.Upload.SlotLifetime = config.Duration{Duration: 10 * time.Second} })
	alice := ws.online(t, "alice", "phone")
	s := mustSlot(t, alice, "late.txt", "4", "text/plain")
	time.Sleep(11 * time.Second) // the slot's lifetime: what is tested
	if resp, body := ws.put(t, s.Put.URL, "text/plain", "late"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("PUT after the slot expired: %s %s, want 403", resp.Status, body)
	}
	if files := uploadFiles(t, ws.testServer); len(files) != 0 {
		t.Errorf("files on disk: %v", files)
	}
}

// TestUploadQuota: slots count against the user's quota from when they
// are given; past it, resource-constraint. Another user has a quota of
// their own.
func TestUploadQuota(t *testing.T) {
	ws := startWeb(t, func(c *config.Config) {
		c.Upload.QuotaFiles = 2
		c.Upload.QuotaBytes = 2500
		c.Upload.MaxFileBytes = 2000
	})
	alice := ws.online(t, "alice", "phone")
	s := mustSlot(t, alice, "one.txt", "1000", "text/plain")
	if resp, body := ws.put(t, s.Put.URL, "text/plain", strings.Repeat("1", 1000)); resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %s %s", resp.Status, body)
	}
	if _, r := requestSlot(t, alice, "two.txt", "2001", ""); !strings.Contains(r.Inner, "file-too-large") {
		t.Errorf("over max_file_bytes: %s", r.Inner)
	}
	if _, r := requestSlot(t, alice, "two.txt", "2001", ""); !strings.Contains(r.Inner, ">2000</max-file-size>") {
		t.Errorf("over max_file_bytes: %s", r.Inner)
	}
	if _, r := requestSlot(t, alice, "two.txt", "2000", ""); r.Type != "error" || !strings.Contains(r.Inner, `type="wait"><resource-constraint`) {
		t.Errorf("past quota_bytes: %s %s", r.Type, r.Inner)
	}
	mustSlot(t, alice, "two.txt", "1000", "")
	if _, r := requestSlot(t, alice, "three.txt", "1", ""); r.Type != "error" || !strings.Contains(r.Inner, "resource-constraint") {
		t.Errorf("past quota_files: %s %s", r.Type, r.Inner)
	}
	bob := ws.online(t, "bob", "laptop")
	mustSlot(t, bob, "bob.txt", "2000", "")
}

// TestUploadCORS: a page of any origin may PUT and GET: the preflight is
// answered, and the answers carry Access-Control-Allow-Origin.
func TestUploadCORS(t *testing.T) {
	ws := startWeb(t, nil)
	alice := ws.online(t, "alice", "web")
	s := mustSlot(t, alice, "page.txt", "2", "text/plain")
	resp, _ := ws.httpDo(t, "OPTIONS", s.Put.URL, map[string]string{
		"Origin":                         "https://web.example",
		"Access-Control-Request-Method":  "PUT",
		"Access-Control-Request-Headers": "content-type",
	}, "", false)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("preflight: %s", resp.Status)
	}
	for k, want := range map[string]string{
		"Access-Control-Allow-Origin":  "*",
		"Access-Control-Allow-Methods": "GET, HEAD, PUT, OPTIONS",
		"Access-Control-Allow-Headers": "Content-Type",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("preflight %s = %q, want %q", k, got, want)
		}
	}
	resp, _ = ws.httpDo(t, "PUT", s.Put.URL, map[string]string{"Origin": "https://web.example", "Content-Type": "text/plain"}, "hi", false)
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("PUT from a page: %s %v", resp.Status, resp.Header)
	}
}

// TestUploadAccountDeleted: deleting an account removes its files from
// disk; its URLs answer 404 at once.
func TestUploadAccountDeleted(t *testing.T) {
	ws := startWeb(t, nil)
	alice := ws.online(t, "alice", "phone")
	s := mustSlot(t, alice, "mine.txt", "4", "text/plain")
	if resp, body := ws.put(t, s.Put.URL, "text/plain", "mine"); resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %s %s", resp.Status, body)
	}
	st, err := sqlite.Open(context.Background(), ws.cfg.DatabasePath())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.DeleteAccount(context.Background(), testHost, "alice"); err != nil {
		t.Fatal(err)
	}
	if resp, _ := ws.httpDo(t, "GET", s.Get.URL, nil, "", false); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET after the deletion: %s", resp.Status)
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(uploadFiles(t, ws.testServer)) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("files on disk 20 s after the deletion: %v", uploadFiles(t, ws.testServer))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestUploadSlowPUT: a PUT that stops sending its body is answered 400
// once it was idle for limits.write_timeout, not held open; nothing of it
// is kept and the slot may be used again.
func TestUploadSlowPUT(t *testing.T) {
	ws := startWeb(t, func(c *config.Config) { c.Limits.WriteTimeout = config.Duration{Duration: time.Second} })
	alice := ws.online(t, "alice", "phone")
	s := mustSlot(t, alice, "slow.txt", "10", "text/plain")
	u, err := url.Parse(s.Put.URL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", "127.0.0.1:"+u.Port(), ws.tlsConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PUT %s HTTP/1.1\r\nHost: %s\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\n0", u.RequestURI(), u.Host)
	start := time.Now()
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled PUT after %v: %v", time.Since(start), err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a stalled PUT: %s, want 400", resp.Status)
	}
	if files := uploadFiles(t, ws.testServer); len(files) != 0 {
		t.Errorf("files on disk: %v", files)
	}
	if resp, body := ws.put(t, s.Put.URL, "text/plain", "0123456789"); resp.StatusCode != http.StatusCreated {
		t.Errorf("the slot after the stalled PUT: %s %s", resp.Status, body)
	}
}
