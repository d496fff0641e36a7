package xmpptest

import (
	"crypto/tls"
	"net"
	"testing"
	"time"
)

// DialRawTLS connects to a direct TLS (XEP-0368) address and completes
// the handshake; the connection closes when the test ends.
func DialRawTLS(t testing.TB, addr string, cfg *tls.Config) *Raw {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return NewRaw(t, conn)
}
