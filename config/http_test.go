package config

import (
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestHTTPDefaults(t *testing.T) {
	h := Default().HTTP
	want := HTTP{BOSHMaxWait: Duration{time.Minute}, BOSHInactivity: Duration{time.Minute}}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("Default().HTTP = %+v, want %+v", h, want)
	}
	if h.Enabled() {
		t.Error("HTTP is enabled by default")
	}
}

func TestParseOrigin(t *testing.T) {
	good := map[string]string{
		"https://app.example":        "https://app.example",
		"https://App.Example/":       "https://app.example",
		"HTTP://localhost:8080":      "http://localhost:8080",
		"http://localhost:80":        "http://localhost",
		"https://app.example:443":    "https://app.example",
		"https://app.example:8443":   "https://app.example:8443",
		"http://[::1]:3000":          "http://[::1]:3000",
		"https://xn--bcher-kva.test": "https://xn--bcher-kva.test",
	}
	for in, want := range good {
		got, err := ParseOrigin(in)
		if err != nil || got != want {
			t.Errorf("ParseOrigin(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{
		"", "app.example", "//app.example", "ftp://app.example", "https://", "https://app.example/chat",
		"https://app.example?x=1", "https://app.example#top", "https://u:p@app.example", "null", "*",
	} {
		if got, err := ParseOrigin(in); err == nil {
			t.Errorf("ParseOrigin(%q) = %q, want an error", in, got)
		}
	}
}

func TestParsePrefix(t *testing.T) {
	good := map[string]netip.Prefix{
		"127.0.0.1":        netip.MustParsePrefix("127.0.0.1/32"),
		"::1":              netip.MustParsePrefix("::1/128"),
		"::ffff:10.0.0.1":  netip.MustParsePrefix("10.0.0.1/32"),
		"10.1.2.3/8":       netip.MustParsePrefix("10.0.0.0/8"),
		"2001:db8::/32":    netip.MustParsePrefix("2001:db8::/32"),
		"fd00::1234/8":     netip.MustParsePrefix("fd00::/8"),
		"2001:db8::7/128":  netip.MustParsePrefix("2001:db8::7/128"),
		"10.255.255.255/8": netip.MustParsePrefix("10.0.0.0/8"),
	}
	for in, want := range good {
		got, err := ParsePrefix(in)
		if err != nil || got != want {
			t.Errorf("ParsePrefix(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "localhost", "10.0.0.0/33", "10.0.0/8", "1.2.3.4:80"} {
		if got, err := ParsePrefix(in); err == nil {
			t.Errorf("ParsePrefix(%q) = %v, want an error", in, got)
		}
	}
}

func TestSummaryHTTP(t *testing.T) {
	s := Default().Summary()
	for _, want := range []string{
		"\n[http]\n",
		"listen = []\n",
		"tls_listen = []\n",
		"origins = []  # same-origin pages only\n",
		`bosh_max_wait = "1m0s"`,
		"# no HTTP listener: WebSocket and BOSH are off\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("Default().Summary() lacks %q:\n%s", want, s)
		}
	}
	c, err := Load(filepath.Join(fixtures, "good.toml"))
	if err != nil {
		t.Fatal(err)
	}
	s = c.Summary()
	_, h, _ := strings.Cut(s, "[http]\n")
	for _, want := range []string{
		`listen = ["127.0.0.1:5280"]`,
		`tls_listen = ["[::]:5281"]`,
		`origins = ["https://app.example", "HTTP://Localhost:8080/"]`,
		`trusted_proxies = ["127.0.0.1", "10.0.0.0/8"]`,
		`public_url = "https://chat.example/xmpp"`,
		`bosh_max_wait = "30s"`,
		`bosh_inactivity = "2m0s"`,
	} {
		if !strings.Contains(h, want) {
			t.Errorf("Summary [http] of good.toml lacks %q:\n%s", want, h)
		}
	}
	if strings.Contains(h, "are off") {
		t.Errorf("Summary says HTTP is off with listeners configured:\n%s", h)
	}
}

// TestHTTPDocumented checks that config.toml.example shows every [http]
// key and that the README's configuration table has a row for each.
func TestHTTPDocumented(t *testing.T) {
	d := readDocs(t)
	typ := reflect.TypeFor[HTTP]()
	for i := range typ.NumField() {
		key := typ.Field(i).Tag.Get("toml")
		// A key may be shown commented out when its default cannot be
		// written (public_url's is "from the request").
		if !d.md.IsDefined("http", key) && !strings.Contains(d.example, "# "+key+" = ") {
			t.Errorf("%s does not show http.%s", examplePath, key)
		}
		if !strings.Contains(d.readme, "| `http."+key+"` |") {
			t.Errorf("README.md has no row for http.%s", key)
		}
	}
}
