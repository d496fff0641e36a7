package upload_test

import (
	"context"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ottr.im/ottr/internal/testclock"

	"ottr.im/ottr/internal/routertest"
	"ottr.im/ottr/mod/upload"
	"ottr.im/ottr/router"
	"ottr.im/ottr/storage/sqlite"
)

var _ upload.Store = (*sqlite.Store)(nil)

// fixture is an upload module for routertest.Host at upload.localhost,
// served by an httptest server, with a clock the test moves.
type fixture struct {
	m     *upload.Module
	core  *router.Router
	store *sqlite.Store
	srv   *httptest.Server
	dir   string
	clock *testclock.Clock
}

func newFixture(t *testing.T, mutate func(*upload.Options)) (*fixture, *routertest.Target, func(string) string) {
	t.Helper()
	core, _ := routertest.New(t)
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "up.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	f := &fixture{core: core, store: store, dir: t.TempDir(), clock: testclock.New(time.Now())}
	f.srv = httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(f.srv.Close)
	opts := upload.Options{
		Services:     map[string]string{"upload.localhost": routertest.Host},
		Dir:          f.dir,
		BaseURL:      func(string) string { return f.srv.URL },
		MaxFileBytes: 1000,
		QuotaBytes:   2000,
		QuotaFiles:   3,
		Now:          f.clock.Now,
	}
	if mutate != nil {
		mutate(&opts)
	}
	f.m, err = upload.Register(core, store, opts)
	if err != nil {
		t.Fatal(err)
	}
	f.srv.Config.Handler = f.m
	alice := routertest.Bind(t, core, "alice@localhost/phone")
	ask := func(s string) string { t.Helper(); return routertest.Ask(t, core, alice, s) }
	return f, alice, ask
}

// slotURLs requests a slot and returns its PUT and GET URLs.
func slotURLs(t *testing.T, ask func(string) string, name, size, ctype string) (put, get string) {
	t.Helper()
	got := ask(`<iq to="upload.localhost" id="s" type="get"><request xmlns="urn:xmpp:http:upload:0" filename="` + name + `" size="` + size + `" content-type="` + ctype + `"/></iq>`)
	var reply struct {
		Slot struct {
			Put struct {
				URL string `xml:"url,attr"`
			} `xml:"put"`
			Get struct {
				URL string `xml:"url,attr"`
			} `xml:"get"`
		} `xml:"urn:xmpp:http:upload:0 slot"`
	}
	if err := xml.Unmarshal([]byte(got), &reply); err != nil || reply.Slot.Put.URL == "" {
		t.Fatalf("slot request: %s (%v)", got, err)
	}
	return reply.Slot.Put.URL, reply.Slot.Get.URL
}

func do(t *testing.T, method, u, ctype, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestDisco(t *testing.T) {
	_, _, ask := newFixture(t, nil)
	const (
		head = `<iq xmlns="jabber:client" from="upload.localhost" to="alice@localhost/phone" id="`
	)
	for _, tc := range []struct{ send, want string }{
		{`<iq to="upload.localhost" id="1" type="get"><query xmlns="http://jabber.org/protocol/disco#info"/></iq>`,
			head + `1" type="result"><query xmlns="http://jabber.org/protocol/disco#info"><identity category="store" type="file" name="HTTP File Upload"></identity>` +
				`<feature var="http://jabber.org/protocol/disco#info"></feature><feature var="http://jabber.org/protocol/disco#items"></feature><feature var="urn:xmpp:http:upload:0"></feature>` +
				`<x xmlns="jabber:x:data" type="result"><field var="FORM_TYPE" type="hidden"><value>urn:xmpp:http:upload:0</value></field>` +
				`<field var="max-file-size" type="text-single"><value>1000</value></field></x></query></iq>`},
		{`<iq to="upload.localhost" id="2" type="get"><query xmlns="http://jabber.org/protocol/disco#items"/></iq>`,
			head + `2" type="result"><query xmlns="http://jabber.org/protocol/disco#items"></query></iq>`},
		{`<iq to="upload.localhost" id="3" type="get"><ping xmlns="urn:xmpp:ping"/></iq>`,
			head + `3" type="error"><ping xmlns="urn:xmpp:ping"></ping><error type="cancel"><service-unavailable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"></service-unavailable></error></iq>`},
		{`<iq to="upload.localhost" id="4" type="get"><request xmlns="urn:xmpp:http:upload:0" filename="a.bin" size="1001"/></iq>`,
			head + `4" type="error"><request xmlns="urn:xmpp:http:upload:0" filename="a.bin" size="1001"></request><error type="modify"><not-acceptable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"></not-acceptable>` +
				`<text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">File too large. The maximum file size is 1000 bytes</text>` +
				`<file-too-large xmlns="urn:xmpp:http:upload:0"><max-file-size>1000</max-file-size></file-too-large></error></iq>`},
		{`<iq to="upload.localhost" id="5" type="get"><request xmlns="urn:xmpp:http:upload:0" filename="a.bin" size="-1"/></iq>`,
			head + `5" type="error"><request xmlns="urn:xmpp:http:upload:0" filename="a.bin" size="-1"></request><error type="modify"><bad-request xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"></bad-request>` +
				`<text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">size must be a non-negative integer</text></error></iq>`},
		{`<iq to="upload.localhost" id="6" type="set"><request xmlns="urn:xmpp:http:upload:0" filename="a.bin" size="1"/></iq>`,
			head + `6" type="error"><request xmlns="urn:xmpp:http:upload:0" filename="a.bin" size="1"></request><error type="modify"><bad-request xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"></bad-request></error></iq>`},
	} {
		if got := ask(tc.send); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.send, got, tc.want)
		}
	}
}

func TestNotAllowed(t *testing.T) {
	f, _, _ := newFixture(t, nil)
	// A user of another domain (a component's, say) reaching the service.
	for _, from := range []string{"eve@elsewhere.example/x", "localhost/x"} {
		got := routertest.Ask(t, f.core, routertest.NewTarget(t, from),
			`<iq to="upload.localhost" id="n" type="get"><request xmlns="urn:xmpp:http:upload:0" filename="a" size="1"/></iq>`)
		if !strings.Contains(got, `<error type="cancel"><not-allowed `) {
			t.Errorf("from %s: %s", from, got)
		}
	}
}

func TestUploadAndDownload(t *testing.T) {
	f, _, ask := newFixture(t, nil)
	put, get := slotURLs(t, ask, "my photo &amp; &lt;b&gt;.jpg", "5", "image/JPEG")
	if !strings.HasPrefix(get, f.srv.URL+"/upload/") || !strings.HasSuffix(get, "/my%20photo%20&%20%3Cb%3E.jpg") {
		t.Errorf("GET URL %s", get)
	}
	if !strings.HasPrefix(put, get+"?") {
		t.Errorf("PUT URL %s is not the GET URL %s with a query", put, get)
	}
	// The GET URL does not upload, nor a forged MAC.
	if resp, _ := do(t, "PUT", get, "image/jpeg", "hello"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("PUT to the GET URL: %s", resp.Status)
	}
	forged := strings.Replace(put, "v=", "v=00", 1)
	if resp, _ := do(t, "PUT", forged, "image/jpeg", "hello"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("PUT with a forged MAC: %s", resp.Status)
	}
	if resp, _ := do(t, "GET", get, "", ""); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET before the upload: %s", resp.Status)
	}
	for _, tc := range []struct {
		ctype, body string
		want        int
	}{
		{"image/jpeg", "hello!", http.StatusRequestEntityTooLarge},
		{"image/jpeg", "hell", http.StatusBadRequest},
		{"image/png", "hello", http.StatusUnsupportedMediaType},
		{"", "hello", http.StatusUnsupportedMediaType},
	} {
		if resp, body := do(t, "PUT", put, tc.ctype, tc.body); resp.StatusCode != tc.want {
			t.Errorf("PUT %q as %q: %s %s, want %d", tc.body, tc.ctype, resp.Status, body, tc.want)
		}
	}
	if resp, body := do(t, "PUT", put, "image/jpeg", "hello"); resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %s %s", resp.Status, body)
	}
	if resp, _ := do(t, "PUT", put, "image/jpeg", "hello"); resp.StatusCode != http.StatusConflict {
		t.Errorf("PUT again: %s", resp.Status)
	}
	resp, body := do(t, "GET", get, "", "")
	if resp.StatusCode != http.StatusOK || body != "hello" {
		t.Fatalf("GET: %s %q", resp.Status, body)
	}
	for k, want := range map[string]string{
		"Content-Type":                "image/jpeg",
		"Content-Length":              "5",
		"X-Content-Type-Options":      "nosniff",
		"Content-Disposition":         `inline; filename="my photo & <b>.jpg"; filename*=UTF-8''my%20photo%20&%20%3Cb%3E.jpg`,
		"Access-Control-Allow-Origin": "*",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("GET %s: %q, want %q", k, got, want)
		}
	}
	// Another name under the same slot is not the file.
	if resp, _ := do(t, "GET", strings.Replace(get, "my%20photo", "other", 1), "", ""); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET under another name: %s", resp.Status)
	}
	files, _ := os.ReadDir(filepath.Join(f.dir, "files"))
	if len(files) != 1 {
		t.Errorf("files on disk: %v", files)
	}
	// Expiry: the file goes from disk and from the store.
	f.clock.Add(upload.DefaultFileLifetime + time.Minute)
	if n := f.m.SweepOnce(context.Background()); n != 1 {
		t.Errorf("swept %d", n)
	}
	if resp, _ := do(t, "GET", get, "", ""); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET after expiry: %s", resp.Status)
	}
	if files, _ := os.ReadDir(filepath.Join(f.dir, "files")); len(files) != 0 {
		t.Errorf("files on disk after expiry: %v", files)
	}
}

func TestActiveContent(t *testing.T) {
	_, _, ask := newFixture(t, nil)
	put, get := slotURLs(t, ask, "x.html", "13", "text/html")
	if resp, body := do(t, "PUT", put, "text/html; charset=utf-8", "<script>1</script>"[:13]); resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %s %s", resp.Status, body)
	}
	resp, _ := do(t, "GET", get, "", "")
	if cd := resp.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment;") {
		t.Errorf("Content-Disposition %q", cd)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "sandbox") || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
}

func TestSlotExpires(t *testing.T) {
	f, _, ask := newFixture(t, nil)
	put, _ := slotURLs(t, ask, "a.txt", "1", "text/plain")
	f.clock.Add(upload.DefaultSlotLifetime + time.Second)
	if resp, _ := do(t, "PUT", put, "text/plain", "a"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("PUT after expiry: %s", resp.Status)
	}
	// The expired slot no longer counts against the quota, and the
	// sweeper drops it.
	if n := f.m.SweepOnce(context.Background()); n != 1 {
		t.Errorf("swept %d", n)
	}
}

func TestQuota(t *testing.T) {
	_, _, ask := newFixture(t, nil)
	for i := 0; i < 3; i++ {
		slotURLs(t, ask, "a.txt", "600", "text/plain")
	}
	got := ask(`<iq to="upload.localhost" id="q" type="get"><request xmlns="urn:xmpp:http:upload:0" filename="a.txt" size="1"/></iq>`)
	if !strings.Contains(got, `<error type="wait"><resource-constraint `) {
		t.Errorf("past the quota: %s", got)
	}
}

func TestPreflight(t *testing.T) {
	f, _, _ := newFixture(t, nil)
	req, _ := http.NewRequest("OPTIONS", f.srv.URL+"/upload/x/y", nil)
	req.Header.Set("Origin", "https://web.example")
	req.Header.Set("Access-Control-Request-Method", "PUT")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "PUT") ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Content-Type") {
		t.Errorf("preflight: %s %v", resp.Status, resp.Header)
	}
}

// TestSweepLeftovers: a slot left writing by a crash (its .part file on
// disk) is removed with its file once its PUT's time is over for sure.
func TestSweepLeftovers(t *testing.T) {
	f, _, ask := newFixture(t, nil)
	put, _ := slotURLs(t, ask, "crash.bin", "3", "")
	u, err := url.Parse(put)
	if err != nil {
		t.Fatal(err)
	}
	id, _, ok := upload.ParsePath(u.EscapedPath())
	if !ok {
		t.Fatalf("ParsePath(%s)", u.EscapedPath())
	}
	if _, err := f.store.ClaimUpload(context.Background(), id, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	part := filepath.Join(f.dir, "files", id+".part")
	if err := os.WriteFile(part, []byte("cr"), 0o600); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(upload.DefaultSlotLifetime + time.Second)
	if n := f.m.SweepOnce(context.Background()); n != 0 {
		t.Errorf("swept %d while the PUT may still run", n)
	}
	f.clock.Add(upload.DefaultSlotLifetime + time.Minute)
	if n := f.m.SweepOnce(context.Background()); n != 1 {
		t.Errorf("swept %d", n)
	}
	if _, err := os.Stat(part); !os.IsNotExist(err) {
		t.Errorf("the partial file after the sweep: %v", err)
	}
}
