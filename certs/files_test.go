package certs

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ottr.im/ottr/internal/testclock"
)

// writePair generates a self-signed pair for name and writes it to
// certFile and keyFile with a modification time of mod, returning the
// certificate's serial.
func writePair(t *testing.T, certFile, keyFile, name string, mod time.Time) string {
	t.Helper()
	certPEM, keyPEM, leaf, err := generate([]string{name}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := writeAtomic(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := writeAtomic(certFile, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{certFile, keyFile} {
		if err := os.Chtimes(f, mod, mod); err != nil {
			t.Fatal(err)
		}
	}
	return leaf.SerialNumber.String()
}

func serial(t *testing.T, c *tls.Certificate) string {
	t.Helper()
	if c == nil || c.Leaf == nil {
		t.Fatalf("certificate %v has no leaf", c)
	}
	return c.Leaf.SerialNumber.String()
}

func TestFilesReloadOnChange(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	clock := testclock.New(time.Now())
	first := writePair(t, certFile, keyFile, "one.example", clock.Now().Add(-time.Hour))
	var logs bytes.Buffer
	f, err := NewFiles(certFile, keyFile, FilesOptions{
		CheckInterval: 10 * time.Second,
		Logger:        slog.New(slog.NewTextHandler(&logs, nil)),
		Now:           clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := serial(t, f.Certificate()); got != first {
		t.Fatalf("serving %s, want the first pair %s", got, first)
	}

	// A new pair on disk is not seen before the interval has passed…
	second := writePair(t, certFile, keyFile, "two.example", clock.Now().Add(-time.Minute))
	clock.Add(5 * time.Second)
	if got := serial(t, f.Certificate()); got != first {
		t.Errorf("within the interval serving %s, want still the first %s", got, first)
	}
	// …and is after it.
	clock.Add(6 * time.Second)
	if got := serial(t, f.Certificate()); got != second {
		t.Errorf("after the interval serving %s, want the second %s", got, second)
	}
	if !strings.Contains(logs.String(), "loaded certificate") || !strings.Contains(logs.String(), "two.example") {
		t.Errorf("reload not logged:\n%s", logs.String())
	}

	// A bad file keeps the certificate in use and is logged once.
	logs.Reset()
	if err := os.WriteFile(certFile, []byte("-----BEGIN CERTIFICATE-----\nbroken\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		clock.Add(11 * time.Second)
		if got := serial(t, f.Certificate()); got != second {
			t.Errorf("after a bad file serving %s, want still %s", got, second)
		}
	}
	if n := strings.Count(logs.String(), "did not load"); n != 1 {
		t.Errorf("bad file logged %d times, want once:\n%s", n, logs.String())
	}
	if err := f.Reload(); err == nil {
		t.Error("Reload of a bad file = nil, want an error")
	}

	// A key that does not match the certificate is refused the same way.
	certPEM, _, _, err := generate([]string{"three.example"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := writeAtomic(certFile, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	clock.Add(11 * time.Second)
	if got := serial(t, f.Certificate()); got != second {
		t.Errorf("after a mismatched key serving %s, want still %s", got, second)
	}

	// A good pair again is taken up; Reload takes it at once.
	third := writePair(t, certFile, keyFile, "four.example", clock.Now())
	if err := f.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if got := serial(t, f.Certificate()); got != third {
		t.Errorf("after Reload serving %s, want %s", got, third)
	}
}

func TestFilesConcurrentHandshakes(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	writePair(t, certFile, keyFile, "one.example", time.Now().Add(-time.Hour))
	f, err := NewFiles(certFile, keyFile, FilesOptions{CheckInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 50 {
				if c, _ := f.GetCertificate(nil); c == nil {
					t.Error("nil certificate")
					return
				}
			}
		})
		if i == 4 {
			writePair(t, certFile, keyFile, "two.example", time.Now())
		}
	}
	wg.Wait()
}

func TestManagerFallbackAndNames(t *testing.T) {
	dir := t.TempDir()
	m, err := New(Options{Dir: dir, Names: []string{"chat.example"}, ACME: &ACMEOptions{
		Names:        []string{"chat.example", "Conference.Chat.Example"},
		DirectoryURL: "https://127.0.0.1:1/dir", // never asked in this test
		CacheDir:     filepath.Join(dir, "acme"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if got := m.ACMENames(); len(got) != 2 || got[1] != "conference.chat.example" {
		t.Errorf("ACMENames() = %q", got)
	}
	// Without a server name, and for a name ACME does not cover, the
	// generated certificate.
	self, _ := m.files.GetCertificate(nil)
	for _, name := range []string{"", "other.example"} {
		c, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: name})
		if err != nil || c != self {
			t.Errorf("GetCertificate(%q) = %v, %v; want the files' certificate", name, c, err)
		}
	}
	// A challenge for which no token is pending fails.
	if _, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "chat.example", SupportedProtos: []string{ALPNProto}}); err == nil {
		t.Error("a TLS-ALPN-01 hello without a pending challenge got a certificate")
	}
	cfg := m.ServerConfig("xmpp-client")
	if len(cfg.NextProtos) != 2 || cfg.NextProtos[1] != ALPNProto || cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("ServerConfig(xmpp-client) = protos %q, min %x", cfg.NextProtos, cfg.MinVersion)
	}
	if p := m.ServerConfig().NextProtos; len(p) != 0 {
		t.Errorf("ServerConfig() protos = %q, want none (STARTTLS)", p)
	}

	for _, bad := range []string{"localhost", "192.0.2.1"} {
		if _, err := New(Options{Dir: dir, ACME: &ACMEOptions{Names: []string{bad}, CacheDir: filepath.Join(dir, "acme")}}); err == nil {
			t.Errorf("ACME for %q accepted", bad)
		}
	}
}

// TestManagerAsksCAOnlyFromStart: before Start's loop obtained a name's
// certificate, handshakes for that name get the files' certificate and
// never reach the CA: a stranger's handshakes cannot make ottr ask the CA
// at their rate.
func TestManagerAsksCAOnlyFromStart(t *testing.T) {
	var asked atomic.Int64
	ca := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		http.Error(w, "no", http.StatusServiceUnavailable)
	}))
	defer ca.Close()
	roots := x509.NewCertPool()
	roots.AddCert(ca.Certificate())
	dir := t.TempDir()
	m, err := New(Options{Dir: dir, Names: []string{"chat.example"}, ACME: &ACMEOptions{
		Names:        []string{"chat.example"},
		DirectoryURL: ca.URL + "/dir",
		CacheDir:     filepath.Join(dir, "acme"),
		RootCAs:      roots,
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	self, _ := m.files.GetCertificate(nil)
	for range 20 {
		c, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "chat.example"})
		if err != nil || c != self {
			t.Fatalf("GetCertificate = %v, %v; want the files' certificate", c, err)
		}
	}
	if n := asked.Load(); n != 0 {
		t.Errorf("20 handshakes asked the CA %d times, want 0", n)
	}
}
