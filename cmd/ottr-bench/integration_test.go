package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"ottr.im/ottr/auth"
	"ottr.im/ottr/internal/testfixture"
	"ottr.im/ottr/internal/testfixture/testserver"
	"ottr.im/ottr/storage/sqlite"
)

// startOttr starts an in-process ottr on loopback port 0 with password
// accounts user0 and user1 ("pw"), and returns its STARTTLS and direct
// TLS addresses and the certificate file.
func startOttr(t *testing.T) (starttls, direct, cert string) {
	t.Helper()
	cfg := testserver.Config(t)
	// The load comes from one address, faster than a client would.
	testserver.LiftConnectionRate(cfg)

	ctx := context.Background()
	st, err := sqlite.Open(ctx, cfg.DatabasePath())
	if err != nil {
		t.Fatal(err)
	}
	hash, err := auth.HashPassword("pw", 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"user0", "user1"} {
		if err := st.CreateAccount(ctx, testfixture.Host, u, hash); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()

	s := testserver.Start(t, cfg)
	return s.Addr, s.DirectTLS, s.CertFile
}

// bench runs ottr-bench with args and decodes its summary.
func runBench(t *testing.T, args ...string) Summary {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	if code != 0 {
		t.Fatalf("ottr-bench %q: exit %d\nstderr: %s\nstdout: %s", args, code, errb.String(), out.String())
	}
	var s Summary
	if err := json.Unmarshal(out.Bytes(), &s); err != nil {
		t.Fatalf("summary: %v\n%s", err, out.String())
	}
	if len(s.Errors) != 0 {
		t.Errorf("%s: errors %v", s.Scenario, s.Errors)
	}
	return s
}

func TestAgainstOttr(t *testing.T) {
	addr, direct, cert := startOttr(t)
	pid := strconv.Itoa(os.Getpid())
	common := []string{"-addr", addr, "-ca", cert, "-otp-seed", testfixture.Seed, "-token-secret", testfixture.Secret, "-pid", pid, "-progress", "0", "-settle", "50ms"}

	t.Run("login", func(t *testing.T) {
		s := runBench(t, append([]string{"login", "-n", "60", "-workers", "4", "-users", "10"}, common...)...)
		if s.Ops != 60 || s.OpsPerS <= 0 || s.Latency.P50 <= 0 || s.Latency.P99 < s.Latency.P50 {
			t.Errorf("login summary: %+v", s)
		}
		// The test process is the server and the load: its CPU is counted
		// in both, and both are positive.
		if s.ServerCPUPerOp <= 0 || s.OwnCPUPerOp <= 0 {
			t.Errorf("CPU per login: server %v µs, own %v µs", s.ServerCPUPerOp, s.OwnCPUPerOp)
		}
	})
	t.Run("login direct TLS, PLAIN", func(t *testing.T) {
		s := runBench(t, "login", "-addr", direct, "-direct-tls", "-ca", cert, "-mech", "PLAIN", "-password", "pw",
			"-users", "2", "-n", "10", "-workers", "2", "-progress", "0", "-settle", "0s")
		if s.Ops != 10 || s.TLS != "direct" || s.Mech != "PLAIN" {
			t.Errorf("summary: %+v", s)
		}
	})
	t.Run("msg", func(t *testing.T) {
		s := runBench(t, append([]string{"msg", "-pairs", "4", "-m", "2000", "-window", "8", "-limit", "60s"}, common...)...)
		if s.Ops != 2000 || s.Latency.P50 <= 0 || s.Latency.P99 < s.Latency.P50 || s.ServerCPUPerOp <= 0 {
			t.Errorf("msg summary: %+v", s)
		}
	})
	t.Run("msg at a fixed rate", func(t *testing.T) {
		start := time.Now()
		s := runBench(t, append([]string{"msg", "-pairs", "2", "-m", "200", "-rate", "400", "-limit", "60s"}, common...)...)
		if s.Ops != 200 || s.OfferedS != 400 {
			t.Errorf("msg summary: %+v", s)
		}
		// 200 messages at 400/s take half a second.
		if d := time.Since(start); d < 400*time.Millisecond {
			t.Errorf("paced run took %v, want about 500ms", d)
		}
	})
	t.Run("idle", func(t *testing.T) {
		s := runBench(t, append([]string{"idle", "-k", "50", "-workers", "4"}, common...)...)
		if s.Ops != 50 || s.RSSBeforeKiB <= 0 || s.RSSAfterKiB <= 0 || s.ServerCPUPerOp <= 0 {
			t.Errorf("idle summary: %+v", s)
		}
	})
	t.Run("wrong password fails clearly", func(t *testing.T) {
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{"login", "-addr", addr, "-ca", cert, "-mech", "PLAIN", "-password", "nope", "-progress", "0"}, &out, &errb)
		if code != 1 || !bytes.Contains(errb.Bytes(), []byte("not-authorized")) {
			t.Errorf("exit %d, stderr %s", code, errb.String())
		}
	})
	t.Run("wrong certificate fails clearly", func(t *testing.T) {
		other := writeOtherCert(t)
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{"login", "-addr", addr, "-ca", other, "-otp-seed", testfixture.Seed, "-token-secret", testfixture.Secret, "-progress", "0"}, &out, &errb)
		if code != 1 || !bytes.Contains(errb.Bytes(), []byte("tls")) {
			t.Errorf("exit %d, stderr %s", code, errb.String())
		}
	})
}

// writeOtherCert writes a self-signed certificate for localhost that is
// not ottr's.
func writeOtherCert(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "other.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
