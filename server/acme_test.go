package server_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"ottr.im/ottr/auth"
	"ottr.im/ottr/certs"
	"ottr.im/ottr/config"
	"ottr.im/ottr/internal/testfixture"
	"ottr.im/ottr/internal/testfixture/testserver"
	"ottr.im/ottr/internal/testtool"
	"ottr.im/ottr/internal/xmpptest"
)

// acmeValidity is the lifetime of the certificates the test CA issues:
// short, so that autocert renews one (a third of the lifetime before it
// ends) while the test waits.
const acmeValidity = 45 * time.Second

// TestACME gets certificates for a host and its MUC domain from Debian's
// pebble, a local ACME CA that checks each domain for real over
// TLS-ALPN-01 against the server's direct TLS listener (resolving the
// names through a DNS server of the test's own), sees them served to a
// client that trusts only pebble's root, logs in over STARTTLS with
// them, and waits for a renewal of the short-lived certificate.
func TestACME(t *testing.T) {
	pebbleBin := testtool.Path(t, "pebble", "pebble")
	const host = "chat.ottr.test"
	muc, upload := "conference."+host, "upload."+host
	dns := startDNS(t, net.IPv4(127, 0, 0, 1))
	// pebble's ports and the one it checks the challenges on are in its
	// configuration: take free ones, then give them to pebble and to the
	// server.
	ports := freePorts(t, 3)
	ca := startPebble(t, pebbleBin, pebbleOptions{
		listen:     fmt.Sprintf("127.0.0.1:%d", ports[0]),
		management: fmt.Sprintf("127.0.0.1:%d", ports[1]),
		tlsPort:    ports[2],
		dns:        dns,
		validity:   acmeValidity,
	})

	cfg := testserver.Config(t)
	cfg.Hosts = []config.Host{{Name: host, OTPSeed: testfixture.Seed, TokenSecret: testfixture.Secret}}
	cfg.C2S.DirectTLS = []string{fmt.Sprintf("127.0.0.1:%d", ports[2])}
	cfg.HTTP.TLSListen = []string{"127.0.0.1:0"} // and with [http], upload.<host>
	cfg.TLS.ACME = true
	cfg.TLS.ACMEEmail = "admin@" + host
	cfg.TLS.ACMEDirectory = ca.directory
	cfg.TLS.ACMECAFile = ca.httpsCert
	srv := testserver.Start(t, cfg)

	// Until the certificates are there, the self-signed one is served:
	// a client that trusts only pebble's root fails.
	deadline := time.Now().Add(90 * time.Second)
	first := waitServed(t, srv.DirectTLS, host, ca.roots, deadline, nil)
	t.Logf("%s: serial %x, valid %s to %s, issuer %q", host, first.SerialNumber, first.NotBefore.Format(time.TimeOnly), first.NotAfter.Format(time.TimeOnly), first.Issuer.CommonName)
	if life := first.NotAfter.Sub(first.NotBefore); life > 2*acmeValidity {
		t.Errorf("certificate valid %s, want the CA's short %s", life, acmeValidity)
	}
	for _, name := range []string{muc, upload} {
		c := waitServed(t, srv.DirectTLS, name, ca.roots, deadline, nil)
		if err := c.VerifyHostname(name); err != nil {
			t.Errorf("certificate of %s: %v", name, err)
		}
	}
	for _, name := range []string{host, muc, upload, "acme_account+key"} {
		if _, err := os.Stat(filepath.Join(cfg.ACMEDir(), name)); err != nil {
			t.Errorf("not cached in data_dir: %v", err)
		}
	}

	// The HTTPS listener serves them too.
	_, https := srv.HTTPAddrs()
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.roots, ServerName: host}}}
	resp, err := hc.Get("https://" + https[0].String() + "/.well-known/host-meta")
	if err != nil {
		t.Fatalf("HTTPS with the ACME certificate: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !resp.TLS.PeerCertificates[0].Equal(first) {
		t.Errorf("HTTPS: %s, certificate serial %x, want 200 OK and %x", resp.Status, resp.TLS.PeerCertificates[0].SerialNumber, first.SerialNumber)
	}

	// A client on the STARTTLS port gets it too, and logs in.
	tlsCfg := &tls.Config{RootCAs: ca.roots, ServerName: host, MinVersion: tls.VersionTLS12}
	c, err := xmpptest.Login(t, srv.Addr, tlsCfg, "alice", host, "", auth.XToken, testfixture.Token(t, "alice@"+host))
	if err != nil {
		t.Fatalf("login over STARTTLS with the ACME certificate: %v", err)
	}
	c.Close()

	// Renewal: autocert renews a third of the lifetime before the end;
	// the listener serves the new certificate without a restart.
	renewed := waitServed(t, srv.DirectTLS, host, ca.roots, first.NotAfter.Add(30*time.Second), first)
	t.Logf("renewed: serial %x, valid %s to %s", renewed.SerialNumber, renewed.NotBefore.Format(time.TimeOnly), renewed.NotAfter.Format(time.TimeOnly))
	if !renewed.NotAfter.After(first.NotAfter) {
		t.Errorf("renewed certificate ends %s, not after the first's %s", renewed.NotAfter, first.NotAfter)
	}
	if !first.NotAfter.After(time.Now()) {
		t.Errorf("the first certificate had expired (%s) before the renewal was served", first.NotAfter)
	}
}

// waitServed connects to addr (direct TLS) as name until the server's
// certificate verifies against roots and, if not is not nil, is another
// one than not, and returns it; it fails the test at deadline.
func waitServed(t *testing.T, addr, name string, roots *x509.CertPool, deadline time.Time, not *x509.Certificate) *x509.Certificate {
	t.Helper()
	cfg := &tls.Config{RootCAs: roots, ServerName: name, NextProtos: []string{"xmpp-client"}, MinVersion: tls.VersionTLS12}
	var last error
	for time.Now().Before(deadline) {
		d := &net.Dialer{Timeout: 5 * time.Second}
		conn, err := tls.DialWithDialer(d, "tcp", addr, cfg)
		if err == nil {
			leaf := conn.ConnectionState().PeerCertificates[0]
			conn.Close()
			if not == nil || !leaf.Equal(not) {
				return leaf
			}
			err = errors.New("still the previous certificate")
		}
		last = err
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: no certificate from the test CA served by %s in time: %v", name, addr, last)
	return nil
}

// freePorts returns n TCP ports that were free a moment ago, for
// programs that take their ports from a configuration file.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// startDNS answers A queries for any name with ip, and every other query
// with no records, on a loopback UDP port, until the test ends; it
// returns the port's address.
func startDNS(t *testing.T, ip net.IP) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		pc.Close()
		wg.Wait()
	})
	var a [4]byte
	copy(a[:], ip.To4())
	wg.Go(func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp, err := dnsAnswer(buf[:n], a); err == nil {
				pc.WriteTo(resp, from)
			}
		}
	})
	return pc.LocalAddr().String()
}

// dnsAnswer builds the answer to the query q: A records with a.
func dnsAnswer(q []byte, a [4]byte) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil {
		return nil, err
	}
	qs, err := p.AllQuestions()
	if err != nil {
		return nil, err
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired})
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	for _, q := range qs {
		if err := b.Question(q); err != nil {
			return nil, err
		}
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	for _, q := range qs {
		if q.Type != dnsmessage.TypeA {
			continue
		}
		rh := dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 1}
		if err := b.AResource(rh, dnsmessage.AResource{A: a}); err != nil {
			return nil, err
		}
	}
	return b.Finish()
}

// pebbleOptions are the settings of a test CA.
type pebbleOptions struct {
	listen, management string // ACME and management addresses
	tlsPort            int    // where TLS-ALPN-01 challenges are checked
	dns                string // the DNS server pebble resolves names with
	validity           time.Duration
}

// testCA is a running pebble.
type testCA struct {
	directory string         // the ACME directory URL
	httpsCert string         // PEM file of the directory's HTTPS certificate
	roots     *x509.CertPool // pebble's root for the certificates it issues
}

// startPebble starts pebble with o, stopped when the test ends, and waits
// until its directory answers.
func startPebble(t *testing.T, bin string, o pebbleOptions) *testCA {
	t.Helper()
	dir := t.TempDir()
	// pebble's own HTTPS certificate: one ottr generates, for 127.0.0.1.
	if _, err := certs.LoadOrCreate(dir, []string{"localhost"}, nil); err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := certs.Paths(dir)
	conf, err := json.Marshal(map[string]any{"pebble": map[string]any{
		"listenAddress":             o.listen,
		"managementListenAddress":   o.management,
		"certificate":               certFile,
		"privateKey":                keyFile,
		"httpPort":                  o.tlsPort, // http-01 is not used
		"tlsPort":                   o.tlsPort,
		"ocspResponderURL":          "",
		"certificateValidityPeriod": int(o.validity.Seconds()),
	}})
	if err != nil {
		t.Fatal(err)
	}
	confFile := filepath.Join(dir, "pebble-config.json")
	if err := os.WriteFile(confFile, conf, 0o600); err != nil {
		t.Fatal(err)
	}
	out := startProcess(t, "pebble", []string{
		"PEBBLE_VA_NOSLEEP=1",      // check a challenge at once, not after up to 5 s
		"PEBBLE_AUTHZREUSE=0",      // a renewal is checked again
		"PEBBLE_WFE_NONCEREJECT=0", // no random badNonce errors
	}, bin, "-config", confFile, "-dnsserver", o.dns)

	pem, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	ca := &testCA{directory: "https://" + o.listen + "/dir", httpsCert: certFile}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := hc.Get(ca.directory)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
			err = errors.New(resp.Status)
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble's directory %s: %v\n%s", ca.directory, err, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	resp, err := hc.Get("https://" + o.management + "/roots/0")
	if err != nil {
		t.Fatalf("pebble's root: %v", err)
	}
	defer resp.Body.Close()
	root, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	ca.roots = x509.NewCertPool()
	if !ca.roots.AppendCertsFromPEM(root) {
		t.Fatalf("pebble's root is not PEM: %q", root)
	}
	return ca
}

// TestCertificateFilesReload replaces the files of [tls] cert and key
// under a running server: a reload serves the new pair at once, a bad
// pair keeps the one in use, and without a reload the next handshakes
// after the check interval (10 s) pick up a change by themselves; a
// session opened before stays up throughout.
func TestCertificateFilesReload(t *testing.T) {
	dir := t.TempDir()
	pairs := make([]string, 3) // directories of three generated pairs
	pool := x509.NewCertPool()
	for i := range pairs {
		pairs[i] = filepath.Join(dir, fmt.Sprint("gen", i))
		if _, err := certs.LoadOrCreate(pairs[i], []string{testHost}, nil); err != nil {
			t.Fatal(err)
		}
		certFile, _ := certs.Paths(pairs[i])
		pem, err := os.ReadFile(certFile)
		if err != nil {
			t.Fatal(err)
		}
		pool.AppendCertsFromPEM(pem)
	}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	install := func(i int) {
		t.Helper()
		c, k := certs.Paths(pairs[i])
		for _, f := range [][2]string{{k, keyFile}, {c, certFile}} {
			b, err := os.ReadFile(f[0])
			if err != nil {
				t.Fatal(err)
			}
			tmp := f[1] + ".tmp"
			if err := os.WriteFile(tmp, b, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, f[1]); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := func(i int) *x509.Certificate {
		c, _ := certs.Paths(pairs[i])
		got, err := certs.Load(c, filepath.Join(pairs[i], certs.KeyFile))
		if err != nil {
			t.Fatal(err)
		}
		return got.Leaf
	}
	install(0)
	ts := startServer(t, func(c *config.Config) {
		c.TLS.Cert, c.TLS.Key = certFile, keyFile
	})
	served := func() *x509.Certificate {
		t.Helper()
		conn, err := tls.Dial("tcp", ts.directTLS, &tls.Config{RootCAs: pool, ServerName: testHost, NextProtos: []string{"xmpp-client"}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0]
	}
	if !served().Equal(want(0)) {
		t.Fatal("the configured certificate is not served")
	}
	tlsCfg := &tls.Config{RootCAs: pool, ServerName: testHost}
	alice, err := xmpptest.Login(t, ts.addr, tlsCfg, "alice", testHost, "", auth.XToken, ts.token(t, "alice"))
	if err != nil {
		t.Fatal(err)
	}

	install(1)
	if err := ts.srv.ReloadCertificates(); err != nil {
		t.Fatalf("ReloadCertificates: %v", err)
	}
	if !served().Equal(want(1)) {
		t.Error("after a reload the new certificate is not served")
	}

	if err := os.WriteFile(certFile, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ts.srv.ReloadCertificates(); err == nil {
		t.Error("ReloadCertificates of a bad file = nil")
	}
	if !served().Equal(want(1)) {
		t.Error("after a bad file the certificate in use is not served")
	}

	// No reload: a handshake after the check interval sees the change.
	install(2)
	deadline := time.Now().Add(certs.DefaultCheckInterval + 20*time.Second)
	for !served().Equal(want(2)) {
		if time.Now().After(deadline) {
			t.Fatal("the changed files were not picked up by the handshakes")
		}
		time.Sleep(200 * time.Millisecond)
	}

	// The session from before is still there.
	alice.Send(`<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>`)
	if r := alice.NextNamed("iq", "result"); r.ID != "p1" {
		t.Errorf("ping after the certificate changes: %+v", r)
	}
}
