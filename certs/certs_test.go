package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// generateIn runs LoadOrCreate in a fresh directory under a temporary one and
// returns the certificate and that directory.
func generateIn(t *testing.T, names []string) (tls.Certificate, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	cert, err := LoadOrCreate(dir, names, nil)
	if err != nil {
		t.Fatalf("LoadOrCreate(%s): %v", dir, err)
	}
	return cert, dir
}

func TestLoadOrCreate(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	dir := filepath.Join(t.TempDir(), "data")

	cert, err := LoadOrCreate(dir, []string{"example.com", "bücher.example", "192.0.2.1"}, logger)
	if err != nil {
		t.Fatalf("LoadOrCreate: %v", err)
	}
	if n := strings.Count(logs.String(), "generated self-signed certificate"); n != 1 {
		t.Errorf("generation logged %d times, want once:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), filepath.Join(dir, CertFile)) {
		t.Errorf("log does not say where the certificate is:\n%s", logs.String())
	}

	modes := []struct {
		path string
		want os.FileMode
	}{
		{dir, 0o700 | os.ModeDir},
		{filepath.Join(dir, KeyFile), 0o600},
		{filepath.Join(dir, CertFile), 0o644},
	}
	for _, m := range modes {
		fi, err := os.Stat(m.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != m.want {
			t.Errorf("mode of %s = %v, want %v", m.path, fi.Mode(), m.want)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(left) > 0 {
		t.Errorf("temporary files left behind: %v", left)
	}

	leaf := cert.Leaf
	if leaf == nil {
		t.Fatal("certificate has no parsed leaf")
	}
	if _, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok {
		t.Errorf("public key is %T, want ECDSA", leaf.PublicKey)
	}
	if got := leaf.SerialNumber.BitLen(); got > 128 || got < 64 {
		t.Errorf("serial has %d bits, want a random 128-bit number", got)
	}
	if d := time.Until(leaf.NotAfter); d < 9*365*24*time.Hour || d > 11*365*24*time.Hour {
		t.Errorf("NotAfter = %v, want about ten years from now", leaf.NotAfter)
	}
	if leaf.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("KeyUsage = %v, want DigitalSignature", leaf.KeyUsage)
	}
	if len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
		t.Errorf("ExtKeyUsage = %v, want [ServerAuth]", leaf.ExtKeyUsage)
	}

	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	for _, name := range []string{"localhost", "example.com", "xn--bcher-kva.example", "127.0.0.1", "::1", "192.0.2.1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: pool}); err != nil {
			t.Errorf("Verify(%s): %v", name, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "other.example", Roots: pool}); err == nil {
		t.Error("Verify(other.example) succeeded, want a name mismatch")
	}

	// A second call loads the same files instead of generating.
	logs.Reset()
	again, err := LoadOrCreate(dir, []string{"different.example"}, logger)
	if err != nil {
		t.Fatalf("second LoadOrCreate: %v", err)
	}
	if !bytes.Equal(again.Certificate[0], cert.Certificate[0]) {
		t.Error("reloaded certificate differs from the generated one")
	}
	if logs.Len() != 0 {
		t.Errorf("loading logged:\n%s", logs.String())
	}
}

func TestLoadOrCreateHalfPair(t *testing.T) {
	for _, missing := range []string{CertFile, KeyFile} {
		t.Run(missing, func(t *testing.T) {
			_, dir := generateIn(t, nil)
			path := filepath.Join(dir, missing)
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			_, err := LoadOrCreate(dir, nil, nil)
			if err == nil || !strings.Contains(err.Error(), path) {
				t.Errorf("LoadOrCreate with %s missing = %v, want an error naming it", missing, err)
			}
			if _, err := os.Stat(path); err == nil {
				t.Errorf("%s was recreated", missing)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	_, dir := generateIn(t, nil)
	certPath := filepath.Join(dir, CertFile)
	keyPath := filepath.Join(dir, KeyFile)
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, otherDir := generateIn(t, nil)
	otherKey := filepath.Join(otherDir, KeyFile)

	tests := []struct {
		name      string
		cert, key string
		want      string
	}{
		{"missing cert", filepath.Join(dir, "none.pem"), keyPath, filepath.Join(dir, "none.pem")},
		{"missing key", certPath, filepath.Join(dir, "none.pem"), filepath.Join(dir, "none.pem")},
		{"bad cert", garbage, keyPath, garbage},
		{"mismatched key", certPath, otherKey, otherKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.cert, tt.key)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Load(%s, %s) = %v, want an error naming %s", tt.cert, tt.key, err, tt.want)
			}
		})
	}
	if _, err := Load(certPath, keyPath); err != nil {
		t.Errorf("Load of the generated pair: %v", err)
	}
}

func TestServerConfig(t *testing.T) {
	cert, _ := generateIn(t, nil)
	cfg := ServerConfig(cert)
	if cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion = %x, want TLS 1.2", cfg.MinVersion)
	}
	if cfg.SessionTicketsDisabled {
		t.Error("session tickets are disabled")
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)

	tests := []struct {
		name        string
		maxVersion  uint16
		wantErr     bool
		wantVersion uint16
	}{
		{"default client", 0, false, tls.VersionTLS13},
		{"TLS 1.2 client", tls.VersionTLS12, false, tls.VersionTLS12},
		{"TLS 1.1 client", tls.VersionTLS11, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, s := net.Pipe()
			server := tls.Server(s, cfg)
			client := tls.Client(c, &tls.Config{
				ServerName: "localhost",
				RootCAs:    pool,
				MinVersion: tls.VersionTLS10,
				MaxVersion: tt.maxVersion,
			})
			serverErr := make(chan error, 1)
			go func() {
				err := server.Handshake()
				s.Close() // unblock the client if the server failed
				serverErr <- err
			}()
			err := client.Handshake()
			c.Close()
			sErr := <-serverErr
			if tt.wantErr {
				if err == nil || sErr == nil {
					t.Errorf("handshake: client %v, server %v; want both to fail", err, sErr)
				}
				return
			}
			if err != nil || sErr != nil {
				t.Fatalf("handshake: client %v, server %v", err, sErr)
			}
			if v := client.ConnectionState().Version; v != tt.wantVersion {
				t.Errorf("negotiated %s, want %s", tls.VersionName(v), tls.VersionName(tt.wantVersion))
			}
		})
	}
}
