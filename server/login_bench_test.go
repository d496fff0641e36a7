package server_test

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"ottr.im/ottr/certs"
	"ottr.im/ottr/internal/testfixture"
)

// The login cost benchmarks (issue 14): a full X-TOKEN login over
// STARTTLS (TCP connect, TLS 1.3 full handshake, SASL, bind) against one
// bare Go TLS 1.3 handshake with the same certificate. The client runs in
// a child process (this test binary again, TestLoginBenchClient), so the
// figure that decides, server-µs/op, is the benchmark process's own CPU
// time (getrusage) per operation: the server's work alone. Pinned, the
// client shares the server's core (OTTR_BENCH_OTHER_CORES=1 moves it to
// the others). Run them in one go for the ratios:
//
//	taskset -c 0 go test ./server -run '^$' -bench 'Login|FAST|BareTLS$' -benchtime 2000x
//
// BenchmarkLoginSASL2 and BenchmarkLoginSASL2Direct (sasl2_test.go and
// below) are the same login as a modern client makes it, and
// BenchmarkFASTResumed(Direct) its reconnections. bench/compare.sh runs
// them and reports the ratios.

// BenchmarkLogin is the server's CPU for one full token login.
func BenchmarkLogin(b *testing.B) {
	ts := startServer(b, liftConnectionRate)
	runBenchClient(b, "login", ts.addr, ts.started.CertFile)
}

// BenchmarkBareTLS is the floor: the CPU of a Go TLS server for one
// TLS 1.3 full handshake, with the certificate BenchmarkLogin's server
// uses (ECDSA P-256, generated) and crypto/tls's defaults, as ottr's
// (certs.ServerConfig).
func BenchmarkBareTLS(b *testing.B) {
	ts := startServer(b, nil)
	dir := filepath.Dir(ts.started.CertFile)
	cert, err := tls.LoadX509KeyPair(ts.started.CertFile, filepath.Join(dir, "key.pem"))
	if err != nil {
		b.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", certs.ServerConfig(cert))
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				c.(*tls.Conn).Handshake()
				var one [1]byte
				c.Read(one[:]) // the client closes
				c.Close()
			}()
		}
	}()
	runBenchClient(b, "tls", l.Addr().String(), ts.started.CertFile)
}

// BenchmarkFASTResumed is a reconnection as a mobile client makes it:
// TLS 1.3 resumed from the session ticket of an earlier connection (no
// certificate, no signature), then SASL2 with the FAST token (XEP-0484,
// HT-SHA-256-NONE) that the earlier login got, Bind2 inline. The client
// checks that every handshake resumed. Compare with BenchmarkBareTLS: a
// reconnection costs less than a full handshake alone.
func BenchmarkFASTResumed(b *testing.B) {
	ts := startServer(b, liftConnectionRate)
	runBenchClient(b, "fast", ts.addr, ts.started.CertFile)
}

// BenchmarkFASTResumedDirect is BenchmarkFASTResumed over direct TLS
// (XEP-0368), as a client that found the host's _xmpps-client SRV record
// connects: no plain stream and no STARTTLS before the resumed handshake.
func BenchmarkFASTResumedDirect(b *testing.B) {
	ts := startServer(b, liftConnectionRate)
	runBenchClient(b, "fast-direct", ts.directTLS, ts.started.CertFile)
}

// BenchmarkLoginSASL2Direct is a full token login as a modern client
// makes it (Conversations with the host's _xmpps-client SRV record, for
// one): direct TLS (XEP-0368) with a full handshake, then SASL2 with
// X-TOKEN and Bind2 inline, one round trip after the stream header.
func BenchmarkLoginSASL2Direct(b *testing.B) {
	ts := startServer(b, liftConnectionRate)
	runBenchClient(b, "sasl2-direct", ts.directTLS, ts.started.CertFile)
}

// runBenchClient runs b.N operations of mode from a child process and
// reports the server's CPU per operation (this process's). The child
// warms up first (every user logs in: token users get their account row
// at their first login), then runs the measured operations.
func runBenchClient(b *testing.B, mode, addr, certFile string) {
	b.Helper()
	args := []string{os.Args[0], "-test.run=^TestLoginBenchClient$", "-test.count=1"}
	if others := otherCPUs(); others != "" && os.Getenv("OTTR_BENCH_OTHER_CORES") != "" {
		// OTTR_BENCH_OTHER_CORES=1 with the server pinned (taskset -c 0
		// go test ...): the client goes to the other cores, as
		// bench/compare.sh's load does. By default it shares the
		// server's core (it inherits the pinning): the server then never
		// sleeps between a login's round trips waiting for a client that
		// is slower than it (the client verifies the certificate).
		args = append([]string{"taskset", "-c", others}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(),
		"OTTR_BENCH_CLIENT="+mode, "OTTR_BENCH_ADDR="+addr,
		"OTTR_BENCH_N="+strconv.Itoa(b.N), "OTTR_BENCH_CERT="+certFile)
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	var said bytes.Buffer // the client's other lines: its test's failures
	expect := func(want string) {
		for lines.Scan() {
			if lines.Text() == want {
				return
			}
			fmt.Fprintln(&said, lines.Text())
		}
		stdin.Close()
		cmd.Wait()
		b.Fatalf("client never said %q\n%s%s", want, said.Bytes(), errOut.Bytes())
	}
	expect("ready")
	before := cpuTime()
	b.ResetTimer()
	io.WriteString(stdin, "go\n")
	expect("done")
	b.StopTimer()
	used := cpuTime() - before
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		b.Fatalf("client: %v\n%s", err, errOut.Bytes())
	}
	b.ReportMetric(float64(used.Microseconds())/float64(b.N), "server-µs/op")
}

// otherCPUs lists, for taskset, the online CPUs this process may not run
// on; it is empty when the process may run on all of them or taskset is
// missing.
func otherCPUs() string {
	if _, err := exec.LookPath("taskset"); err != nil {
		return ""
	}
	var mine unix.CPUSet
	if err := unix.SchedGetaffinity(0, &mine); err != nil {
		return ""
	}
	var others []string
	for cpu := 0; cpu < 1024; cpu++ {
		if _, err := os.Stat(fmt.Sprintf("/sys/devices/system/cpu/cpu%d", cpu)); err != nil {
			break
		}
		if !mine.IsSet(cpu) {
			others = append(others, strconv.Itoa(cpu))
		}
	}
	return strings.Join(others, ",")
}

// cpuTime is this process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestLoginBenchClient is the benchmarks' client, run in a child process
// (skipped otherwise). It does OTTR_BENCH_N operations, benchWorkers at
// a time: full logins (mode login) or bare TLS handshakes (mode tls),
// reading bytes without parsing XML, as a lean client would.
func TestLoginBenchClient(t *testing.T) {
	mode := os.Getenv("OTTR_BENCH_CLIENT")
	if mode == "" {
		t.Skip("the login benchmarks' client")
	}
	n, _ := strconv.Atoi(os.Getenv("OTTR_BENCH_N"))
	addr := os.Getenv("OTTR_BENCH_ADDR")
	pem, err := os.ReadFile(os.Getenv("OTTR_BENCH_CERT"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := testfixtureTLS(t, pem)
	fast := &fastClients{tokens: make(map[string]string)}
	connect := startTLS
	if m, ok := strings.CutSuffix(mode, "-direct"); ok {
		mode, connect = m, directTLS
	}
	if mode == "fast" {
		// Tickets are kept: every measured handshake resumes one.
		cfg.ClientSessionCache = tls.NewLRUClientSessionCache(0)
	}
	one := func(i int) error {
		if mode == "tls" {
			return bareHandshake(addr, cfg)
		}
		user := fmt.Sprintf("user%d", i%100)
		if mode == "fast" {
			return fast.login(connect, addr, cfg, user, func() string { return testfixture.Token(t, user+"@"+testHost) })
		}
		if mode == "sasl2" {
			return benchSASL2Login(connect, addr, cfg, user, testfixture.Token(t, user+"@"+testHost))
		}
		return benchLogin(addr, cfg, user, testfixture.Token(t, user+"@"+testHost))
	}
	// The warm-up logs every user in once; in FAST mode twice: the
	// X-TOKEN login that gets the token, then the token's first use
	// (which records it, once per rotation), so that the measured
	// reconnections are those of a client whose token is current.
	warmUp := 100
	if mode == "fast" {
		warmUp = 200
	}
	for i := range warmUp {
		if err := one(i); err != nil {
			t.Fatalf("warm-up %d: %v", i, err)
		}
	}
	fmt.Println("ready")
	if line, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil || line != "go\n" {
		t.Fatalf("waiting for go: %q %v", line, err)
	}
	// benchWorkers clients at once, as cmd/ottr-bench's logins run.
	var next atomic.Int64
	errs := make(chan error, benchWorkers)
	for range benchWorkers {
		go func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					errs <- nil
					return
				}
				if err := one(i); err != nil {
					errs <- fmt.Errorf("operation %d: %w", i, err)
					return
				}
			}
		}()
	}
	for range benchWorkers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	fmt.Println("done")
}

// benchWorkers is how many clients log in at once in the login
// benchmarks, as cmd/ottr-bench's 16 workers do on a larger machine.
const benchWorkers = 8

// testfixtureTLS trusts the PEM certificate for the test host, without a
// session cache: every handshake is a full one, offering X25519 alone as
// cmd/ottr-bench does.
func testfixtureTLS(t *testing.T, pem []byte) *tls.Config {
	cfg := &tls.Config{ServerName: testHost, MinVersion: tls.VersionTLS13, CurvePreferences: []tls.CurveID{tls.X25519}}
	pool, err := certPool(pem)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RootCAs = pool
	return cfg
}

// certPool trusts the PEM certificates.
func certPool(pem []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("no certificate in the PEM file")
	}
	return pool, nil
}

func bareHandshake(addr string, cfg *tls.Config) error {
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return err
	}
	return c.Close()
}

// fastClients are the FAST benchmark's clients, one per user: the token
// each holds, the last one the server issued it.
type fastClients struct {
	mu     sync.Mutex
	tokens map[string]string
}

// fastAgent is the benchmark clients' XEP-0388 user agent: a FAST token
// belongs to a user and an agent.
const fastAgent = "<user-agent id='9d6c0f3e-5b1a-4c8e-9f7d-2a4b6c8e0f13'><software>ottr-bench</software></user-agent>"

// tokenAttr finds the new FAST token in a SASL2 success.
var tokenAttr = regexp.MustCompile(`<token [^>]*token=["']([^"']+)["']`)

// login reconnects user: with the user's FAST token when it has one (over
// a resumed TLS session, checked), else with X-TOKEN asking for a FAST
// token; it keeps the token the success carries.
func (f *fastClients) login(connect connectFunc, addr string, cfg *tls.Config, user string, xtoken func() string) error {
	f.mu.Lock()
	token := f.tokens[user]
	f.mu.Unlock()
	raw, tc, err := connect(addr, cfg)
	if err != nil {
		return err
	}
	defer raw.Close()
	if token != "" && !tc.ConnectionState().DidResume {
		return errors.New("the TLS session did not resume")
	}
	r := bufio.NewReader(tc)
	var authenticate string
	if token == "" {
		authenticate = "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='X-TOKEN'><initial-response>" +
			base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+xtoken())) + "</initial-response>" +
			fastAgent + "<bind xmlns='urn:xmpp:bind:0'/><request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-NONE'/></authenticate>"
	} else {
		m := hmac.New(sha256.New, []byte(token))
		m.Write([]byte("Initiator"))
		authenticate = "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='HT-SHA-256-NONE'><initial-response>" +
			base64.StdEncoding.EncodeToString(append([]byte(user+"\x00"), m.Sum(nil)...)) + "</initial-response>" +
			fastAgent + "<bind xmlns='urn:xmpp:bind:0'/><fast xmlns='urn:xmpp:fast:0'/></authenticate>"
	}
	if err := sendUntil(tc, r, benchHeader, "</stream:features>"); err != nil {
		return err
	}
	success, err := readUntil(tc, r, authenticate, "<stream:features/>")
	if err != nil {
		return err
	}
	if m := tokenAttr.FindSubmatch(success); m != nil {
		f.mu.Lock()
		f.tokens[user] = string(m[1])
		f.mu.Unlock()
	} else if token == "" {
		return fmt.Errorf("no FAST token in %q", success)
	}
	return sendUntil(tc, r, "</stream:stream>", "</stream:stream>")
}

// benchLogin logs in over STARTTLS with X-TOKEN and binds.
func benchLogin(addr string, cfg *tls.Config, user, token string) error {
	raw, tc, err := startTLS(addr, cfg)
	if err != nil {
		return err
	}
	defer raw.Close()
	r := bufio.NewReader(tc)
	auth := "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='X-TOKEN'>" +
		base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+token)) + "</auth>"
	for _, s := range []struct{ send, until string }{
		{benchHeader, "</stream:features>"},
		{auth, "<success"},
		{benchHeader, "</stream:features>"},
		{"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>", "</iq>"},
		{"</stream:stream>", "</stream:stream>"},
	} {
		if err := sendUntil(tc, r, s.send, s.until); err != nil {
			return err
		}
	}
	return nil
}

// benchHeader opens a client stream to the test host.
const benchHeader = "<?xml version='1.0'?><stream:stream to='" + testHost + "' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"

// connectFunc opens a TLS connection to addr with cfg: startTLS or
// directTLS. The caller closes raw.
type connectFunc func(addr string, cfg *tls.Config) (raw net.Conn, tc *tls.Conn, err error)

// directTLS dials addr with a 30 s deadline and completes the TLS
// handshake at once, as XEP-0368 direct TLS does.
func directTLS(addr string, cfg *tls.Config) (raw net.Conn, tc *tls.Conn, err error) {
	if raw, err = net.Dial("tcp", addr); err != nil {
		return nil, nil, err
	}
	raw.SetDeadline(time.Now().Add(30 * time.Second))
	tc = tls.Client(raw, cfg)
	if err := tc.Handshake(); err != nil {
		raw.Close()
		return nil, nil, err
	}
	return raw, tc, nil
}

// startTLS dials addr with a 30 s deadline, negotiates STARTTLS and
// completes the TLS handshake with cfg. The caller closes raw (not tc: no
// close_notify, as a client that drops the connection).
func startTLS(addr string, cfg *tls.Config) (raw net.Conn, tc *tls.Conn, err error) {
	if raw, err = net.Dial("tcp", addr); err != nil {
		return nil, nil, err
	}
	raw.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(raw)
	for _, s := range []struct{ send, until string }{
		{benchHeader, "</stream:features>"},
		{"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", "<proceed"},
	} {
		if err := sendUntil(raw, r, s.send, s.until); err != nil {
			raw.Close()
			return nil, nil, err
		}
	}
	tc = tls.Client(raw, cfg)
	if err := tc.Handshake(); err != nil {
		raw.Close()
		return nil, nil, err
	}
	return raw, tc, nil
}

// sendUntil writes send and reads until the marker until.
func sendUntil(w net.Conn, r *bufio.Reader, send, until string) error {
	_, err := readUntil(w, r, send, until)
	return err
}

// readUntil writes send and returns what it read up to the marker until.
func readUntil(w net.Conn, r *bufio.Reader, send, until string) ([]byte, error) {
	if _, err := w.Write([]byte(send)); err != nil {
		return nil, err
	}
	var seen []byte
	for !bytes.Contains(seen, []byte(until)) {
		b, err := r.ReadByte()
		if err != nil {
			return nil, fmt.Errorf("waiting for %s: %w (read %q)", until, err, seen)
		}
		seen = append(seen, b)
		if bytes.Contains(seen, []byte("<failure")) && bytes.HasSuffix(seen, []byte("</failure>")) {
			return nil, errors.New("refused: " + string(seen))
		}
	}
	return seen, nil
}
