package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var d []time.Duration
		for _, x := range v {
			d = append(d, time.Duration(x)*time.Millisecond)
		}
		return d
	}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	for _, tc := range []struct {
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{nil, 50, 0},
		{ms(7), 50, 7 * time.Millisecond},
		{ms(7), 99, 7 * time.Millisecond},
		{ms(1, 2), 50, 1 * time.Millisecond},
		{ms(1, 2, 3), 50, 2 * time.Millisecond},
		{ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{hundred, 50, 50 * time.Millisecond},
		{hundred, 99, 99 * time.Millisecond},
		{hundred, 100, 100 * time.Millisecond},
		{hundred, 0.001, 1 * time.Millisecond},
	} {
		if got := percentile(tc.in, tc.p); got != tc.want {
			t.Errorf("percentile(%d values, %v) = %v, want %v", len(tc.in), tc.p, got, tc.want)
		}
	}
}

func TestLatencies(t *testing.T) {
	ds := []time.Duration{3 * time.Microsecond, 1 * time.Microsecond, 2 * time.Microsecond}
	l := latencies(ds)
	if l != (Latency{P50: 2, P99: 3, Max: 3}) {
		t.Errorf("latencies = %+v", l)
	}
	if !slices.IsSorted(ds) {
		t.Error("latencies did not sort in place")
	}
	if l := latencies(nil); l != (Latency{}) {
		t.Errorf("latencies(nil) = %+v", l)
	}
}

func TestParseStatCPU(t *testing.T) {
	// A real line, with a command name holding a space and a parenthesis.
	line := "4242 (my (odd) srv) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 50 0 0 20 0 12 0 2633 1451266048 12000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
	d, err := parseStatCPU([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if want := 3 * time.Second; d != want { // (250+50) ticks at 100 Hz
		t.Errorf("parseStatCPU = %v, want %v", d, want)
	}
	for _, bad := range []string{"", "1 (x) S 1 2 3", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 x 1 0 0", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 -5 1 0 0"} {
		if _, err := parseStatCPU([]byte(bad)); err == nil {
			t.Errorf("parseStatCPU(%q): no error", bad)
		}
	}
}

func TestParseVmRSS(t *testing.T) {
	status := "Name:\tottr\nVmPeak:\t  200000 kB\nVmRSS:\t   12345 kB\nRssAnon:\t    9000 kB\n"
	kib, err := parseVmRSS([]byte(status))
	if err != nil || kib != 12345 {
		t.Errorf("parseVmRSS = %d, %v; want 12345", kib, err)
	}
	for _, bad := range []string{"Name:\tkthreadd\n", "VmRSS:\t12 MB\n", "VmRSS:\tlots kB\n"} {
		if _, err := parseVmRSS([]byte(bad)); err == nil {
			t.Errorf("parseVmRSS(%q): no error", bad)
		}
	}
}

func TestOwnProc(t *testing.T) {
	// This process's own /proc entries parse, and its CPU is counted.
	pid := []int{os.Getpid()}
	if _, err := procCPU(pid); err != nil {
		t.Fatal(err)
	}
	if kib, err := procRSS(pid); err != nil || kib <= 0 {
		t.Fatalf("procRSS = %d, %v", kib, err)
	}
	start, wall := ownCPU(), time.Now()
	for ownCPU()-start < 5*time.Millisecond {
		if time.Since(wall) > 5*time.Second {
			t.Fatal("ownCPU does not advance")
		}
	}
}

// chunked returns its data a few bytes per Read, to split markers.
type chunked struct {
	data []byte
	n    int
}

func (c *chunked) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(c.n, len(p), len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// Real server output, as ottr, Prosody and ejabberd write it.
const (
	ottrFeatures    = `<?xml version="1.0" encoding="UTF-8"?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' id='a' from='localhost'><stream:features><starttls xmlns="urn:ietf:params:xml:ns:xmpp-tls"><required></required></starttls></stream:features>`
	prosodyFeatures = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xml:lang='en' id='b' version='1.0' from='localhost' xmlns:stream='http://etherx.jabber.org/streams'><stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><required/></bind><session xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session></stream:features>`
	emptyFeatures   = `<stream:stream xmlns:stream='http://etherx.jabber.org/streams'><stream:features/>`
)

func TestScannerMarkers(t *testing.T) {
	for _, chunk := range []int{1, 2, 3, 7, 4096} {
		for _, in := range []string{ottrFeatures, prosodyFeatures, emptyFeatures} {
			sc := newScanner(&chunked{data: []byte(in + "<proceed/>"), n: chunk}, 16)
			if err := sc.featuresEnd(); err != nil {
				t.Fatalf("chunk %d: featuresEnd(%.40q): %v", chunk, in, err)
			}
			if w, err := sc.until([]byte("<proceed"), []byte("<failure")); w != 0 || err != nil {
				t.Fatalf("chunk %d: after features of %.40q: until = %d, %v", chunk, in, w, err)
			}
		}

		sc := newScanner(&chunked{data: []byte(`<success xmlns="urn:ietf:params:xml:ns:xmpp-sasl"></success>`), n: chunk}, 16)
		if err := sc.saslOutcome(); err != nil {
			t.Errorf("chunk %d: success: %v", chunk, err)
		}
		sc = newScanner(&chunked{data: []byte(`<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><text>no</text><not-authorized/></failure>`), n: chunk}, 16)
		var ae *authError
		if err := sc.saslOutcome(); !errors.As(err, &ae) || ae.Condition != "not-authorized" {
			t.Errorf("chunk %d: failure: %v", chunk, err)
		}

		sc = newScanner(&chunked{data: []byte(`<iq type="result" id="bind1"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"><jid>user0@localhost/r</jid></bind></iq>`), n: chunk}, 16)
		if _, err := sc.until([]byte("<jid>")); err != nil {
			t.Fatal(err)
		}
		if j, err := sc.capture([]byte("</jid>")); err != nil || string(j) != "user0@localhost/r" {
			t.Errorf("chunk %d: jid = %q, %v", chunk, j, err)
		}

		sc = newScanner(&chunked{data: []byte(`<presence/><iq type='result' id='x'/><iq from='localhost' id='sync1' type='result'/>`), n: chunk}, 64)
		if err := sc.iqResult("sync1"); err != nil {
			t.Errorf("chunk %d: iqResult: %v", chunk, err)
		}
		sc = newScanner(&chunked{data: []byte(`<iq type="error" id="reg1"><error type="cancel"><conflict xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></iq>`), n: chunk}, 64)
		if err := sc.iqResult("reg1"); err == nil || !strings.HasSuffix(err.Error(), ": conflict") {
			t.Errorf("chunk %d: iqResult of an error: %v", chunk, err)
		}
	}
}

func TestScannerStreamEnd(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
	}{
		{`<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>`, "stream error: host-unknown"},
		{`<stream:error><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>bye</text><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>`, "stream error: policy-violation"},
		{`<presence/></stream:stream>`, errStreamClosed.Error()},
		{`<presence/>`, errStreamClosed.Error()}, // EOF
	} {
		for _, chunk := range []int{1, 5, 4096} {
			sc := newScanner(&chunked{data: []byte(tc.in), n: chunk}, 16)
			_, err := sc.until([]byte("<success"))
			if err == nil || err.Error() != tc.want {
				t.Errorf("chunk %d: until over %.50q = %v, want %s", chunk, tc.in, err, tc.want)
			}
		}
	}
}

func TestMessageBody(t *testing.T) {
	b := appendMessage(nil, "user1@localhost/r", 42, 123456789)
	want := `<message type='chat' to='user1@localhost/r' id='m42'><body>42 123456789</body></message>`
	if string(b) != want {
		t.Fatalf("appendMessage = %s", b)
	}
	// As ottr echoes it, with a namespace on the body.
	in := `<message xmlns="jabber:client" from="user0@localhost/s" to="user1@localhost/r" id="m42" type="chat"><body xmlns="jabber:client">42 123456789</body></message>`
	sc := newScanner(&chunked{data: []byte(in), n: 3}, 16)
	if _, err := sc.until(mBody); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.capture(mTagEnd); err != nil {
		t.Fatal(err)
	}
	body, err := sc.capture(mBodyEnd)
	if err != nil {
		t.Fatal(err)
	}
	if ts, ok := bodyTime(body); !ok || ts != 123456789 {
		t.Errorf("bodyTime(%q) = %d, %v", body, ts, ok)
	}
	if _, ok := bodyTime([]byte("garbage")); ok {
		t.Error("bodyTime(garbage) ok")
	}
}

func TestSummaryShape(t *testing.T) {
	s := &Summary{Scenario: "login", Addr: "127.0.0.1:5222", Host: "localhost", Mech: "X-TOKEN", TLS: "starttls",
		Params: map[string]any{"n": 10}, Errors: map[string]int64{}, Ops: 10}
	s.fillCPU(2*time.Millisecond, time.Millisecond)
	var buf bytes.Buffer
	if err := s.write(&buf); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	// The keys bench/compare.sh reads.
	for _, k := range []string{"scenario", "ops", "errors", "ops_per_s", "latency", "server_cpu_us_per_op", "own_cpu_us_per_op", "params"} {
		if _, ok := m[k]; !ok {
			t.Errorf("summary has no %q: %s", k, buf.String())
		}
	}
	if m["server_cpu_us_per_op"] != 200.0 || m["own_cpu_us_per_op"] != 100.0 {
		t.Errorf("per-op CPU: %v %v", m["server_cpu_us_per_op"], m["own_cpu_us_per_op"])
	}
	lat := m["latency"].(map[string]any)
	for _, k := range []string{"p50_us", "p99_us", "max_us"} {
		if _, ok := lat[k]; !ok {
			t.Errorf("latency has no %q", k)
		}
	}
}

func TestFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{nil, 2, "usage"},
		{[]string{"bogus"}, 2, "unknown scenario"},
		{[]string{"login", "-addr", "10.0.0.1:5222", "-insecure", "-mech", "PLAIN", "-password", "x"}, 2, "loopback addresses only"},
		{[]string{"login", "-addr", "example.com:5222", "-insecure", "-mech", "PLAIN", "-password", "x"}, 2, "loopback addresses only"},
		{[]string{"login", "-insecure"}, 2, "X-TOKEN needs -otp-seed"},
		{[]string{"login", "-mech", "PLAIN", "-password", "x"}, 2, "give -ca"},
		{[]string{"login", "-mech", "PLAIN", "-insecure"}, 2, "need -password"},
		{[]string{"login", "-mech", "PLAIN", "-password", "x", "-insecure", "-n", "0"}, 2, "-n 0"},
		{[]string{"msg", "-mech", "PLAIN", "-password", "x", "-insecure", "-window", "0"}, 2, "-window 0"},
		{[]string{"login", "-mech", "SCRAM", "-insecure"}, 2, "want X-TOKEN or PLAIN"},
		{[]string{"login", "-otp-seed", "!!", "-token-secret", "s", "-insecure"}, 2, "X-TOKEN parameters"},
		{[]string{"login", "-mech", "PLAIN", "-password", "x", "-insecure", "-pid", "abc"}, 2, "bad process id"},
		{[]string{"login", "-mech", "PLAIN", "-password", "x", "-insecure", "-user-prefix", "A B"}, 2, "-user-prefix"},
		{[]string{"login", "-nope"}, 2, "flag provided but not defined"},
		// Unreachable: a port nothing listens on.
		{[]string{"login", "-addr", "127.0.0.1:1", "-mech", "PLAIN", "-password", "x", "-insecure", "-op-timeout", "2s"}, 1, "cannot log in"},
	} {
		var out, errb bytes.Buffer
		code := run(context.Background(), tc.args, &out, &errb)
		if code != tc.code || !strings.Contains(errb.String(), tc.msg) {
			t.Errorf("run %q = %d, stderr %q; want %d and %q", tc.args, code, errb.String(), tc.code, tc.msg)
		}
		if out.Len() != 0 {
			t.Errorf("run %q wrote on stdout: %q", tc.args, out.String())
		}
	}
}

func TestParallelStops(t *testing.T) {
	var ran atomic.Int64
	if n := parallel(context.Background(), 4, 100, nil, func(int) { ran.Add(1) }); n != 0 || ran.Load() != 100 {
		t.Errorf("parallel ran %d, skipped %d; want 100, 0", ran.Load(), n)
	}
	// Past the bound, no operation starts: at most one per worker runs
	// after the failure that passed it.
	b := &bench{maxErrors: 5}
	errs := newErrCounts()
	ran.Store(0)
	n := parallel(context.Background(), 4, 1000, b.tooMany(errs), func(int) {
		ran.Add(1)
		errs.add(errors.New("refused"))
	})
	if ran.Load() > 6+4 || int64(n)+ran.Load() != 1000 {
		t.Errorf("with failures: ran %d, skipped %d", ran.Load(), n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if n := parallel(ctx, 4, 10, nil, func(int) { t.Error("ran after cancel") }); n != 10 {
		t.Errorf("after cancel: skipped %d, want 10", n)
	}
}
