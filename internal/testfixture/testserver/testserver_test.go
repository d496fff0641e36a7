package testserver_test

import (
	"crypto/tls"
	"testing"

	"ottr.im/ottr/internal/testfixture/testserver"
)

// TestConfigValid: the test configuration passes the checks ottr runs on
// a file.
func TestConfigValid(t *testing.T) {
	if err := testserver.Config(t).Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestStart: both c2s addresses are set and distinct, and the direct TLS
// one completes a handshake that TLSConfig verifies.
func TestStart(t *testing.T) {
	s := testserver.Start(t, testserver.Config(t))
	if s.Addr == "" || s.DirectTLS == "" || s.Addr == s.DirectTLS {
		t.Fatalf("addresses %q and %q", s.Addr, s.DirectTLS)
	}
	conn, err := tls.Dial("tcp", s.DirectTLS, s.TLSConfig())
	if err != nil {
		t.Fatalf("direct TLS: %v", err)
	}
	conn.Close()
}
