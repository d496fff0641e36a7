// Command ottr-bench is a load tool for XMPP servers (ottr, Prosody,
// ejabberd…) on loopback. It measures full logins, message delivery and
// the memory of idle sessions, and reports the server's CPU time per
// operation from /proc, the figure that decides when the load generator
// shares the machine:
//
//	ottr-bench login    [flags]   C workers repeat connect → STARTTLS → SASL → bind → close, N times
//	ottr-bench msg      [flags]   P pairs, M messages, W in flight per pair; delivered/s, e2e latency
//	ottr-bench idle     [flags]   K sessions with initial presence; the server's RSS per session
//	ottr-bench register [flags]   create accounts by in-band registration (XEP-0077), for PLAIN peers
//
// A progress line goes to stderr every second and a JSON summary to
// stdout. The client is hand-written over crypto/tls with fixed byte
// templates and marker scanning, so that it costs little per operation;
// every TLS handshake is a full TLS 1.3 one (no session resumption).
//
// Exit status: 0, 1 when the run could not start (unreachable server,
// refused login, bad setup), 2 for bad flags, 3 when the summary counts
// failed operations.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"ottr.im/ottr/auth"
)

func main() {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	cancel()
	os.Exit(code)
}

const usage = `usage: ottr-bench login|msg|idle|register [flags]
Run "ottr-bench SCENARIO -h" for the flags.`

// errUsage marks a bad flag value (exit status 2).
type errUsage struct{ error }

// run is main without the process: it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	scenario := args[0]
	switch scenario {
	case "login", "msg", "idle", "register":
	default:
		fmt.Fprintf(stderr, "ottr-bench: unknown scenario %q\n%s\n", scenario, usage)
		return 2
	}
	s, err := runScenario(ctx, scenario, args[1:], stdout, stderr)
	var ue errUsage
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "ottr-bench %s: %v\n", scenario, err)
		return 2
	case err != nil:
		fmt.Fprintf(stderr, "ottr-bench %s: %v\n", scenario, err)
		return 1
	}
	var failed int64
	for _, n := range s.Errors {
		failed += n
	}
	if failed > 0 {
		fmt.Fprintf(stderr, "ottr-bench %s: %d operations failed\n", scenario, failed)
		return 3
	}
	return 0
}

func runScenario(ctx context.Context, scenario string, args []string, stdout, stderr io.Writer) (*Summary, error) {
	fs := flag.NewFlagSet("ottr-bench "+scenario, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		addr     = fs.String("addr", "127.0.0.1:5222", "the server's c2s `host:port`, on loopback")
		host     = fs.String("host", "localhost", "the XMPP domain (and TLS server name)")
		direct   = fs.Bool("direct-tls", false, "direct TLS (XEP-0368) instead of STARTTLS")
		caFile   = fs.String("ca", "", "PEM `file` of the certificate authority (or the self-signed certificate) to trust")
		insecure = fs.Bool("insecure", false, "accept any server certificate")
		curves   = fs.String("curves", "x25519", "TLS key exchange groups offered, comma-separated: x25519, p256, x25519mlkem768")
		mech     = fs.String("mech", "X-TOKEN", "SASL mechanism: X-TOKEN or PLAIN")
		seed     = fs.String("otp-seed", "", "the host's otp_seed (X-TOKEN)")
		secret   = fs.String("token-secret", "", "the host's token_secret (X-TOKEN)")
		digits   = fs.Int("otp-digits", auth.DefaultDigits, "TOTP digits (X-TOKEN)")
		interval = fs.Duration("otp-interval", auth.DefaultInterval, "TOTP step (X-TOKEN)")
		password = fs.String("password", "", "the accounts' password (PLAIN, register)")
		prefix   = fs.String("user-prefix", "user", "account names are PREFIX0, PREFIX1, …")
		pidList  = fs.String("pid", "", "the server's process `ids`, comma-separated, for its CPU time and RSS from /proc")
		label    = fs.String("label", "", "free text copied into the summary")
		workers  = fs.Int("workers", 16, "concurrent connections being set up (C)")
		opTO     = fs.Duration("op-timeout", 10*time.Second, "time allowed for one login")
		prog     = fs.Duration("progress", time.Second, "progress line interval on stderr; 0: none")
		settle   = fs.Duration("settle", 300*time.Millisecond, "wait after the measured phase before the server's CPU (and RSS) is read")
		trace    = fs.Bool("trace", false, "print the first connection's plain text on stderr")
		maxErrs  = fs.Int("max-errors", 100, "stop starting operations after this many failed")
	)
	var (
		n       = fs.Int("n", 2000, "login, register: operations (N)")
		users   = fs.Int("users", 100, "login: distinct accounts used in turn")
		warmup  = fs.Int("warmup", -1, "login: unmeasured logins first; -1: as many as -users")
		pairs   = fs.Int("pairs", 50, "msg: sender/receiver pairs (P); accounts PREFIX0…PREFIX(2P-1)")
		msgs    = fs.Int("m", 100000, "msg: messages in total (M)")
		window  = fs.Int("window", 32, "msg: messages in flight per pair (W)")
		rate    = fs.Float64("rate", 0, "msg: offered load in messages/s in total, paced per pair; 0: as fast as the windows allow")
		limit   = fs.Duration("limit", 2*time.Minute, "msg: the measured phase ends by then, delivered or not")
		k       = fs.Int("k", 1000, "idle: sessions (K)")
		holdFor = fs.Duration("hold", 0, "idle: keep the sessions open this long after the summary")
		keep    = fs.Duration("keepalive", 30*time.Second, "idle: whitespace keepalive interval while holding")
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, errUsage{err}
	}
	if fs.NArg() > 0 {
		return nil, errUsage{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	bad := func(format string, a ...any) (*Summary, error) { return nil, errUsage{fmt.Errorf(format, a...)} }

	if err := checkLoopback(*addr); err != nil {
		return bad("%v", err)
	}
	if !regexp.MustCompile(`^[a-z0-9_.-]{1,64}$`).MatchString(*prefix) {
		return bad("-user-prefix %q: want 1 to 64 of a-z 0-9 _ . -", *prefix)
	}
	if !regexp.MustCompile(`^[a-z0-9.-]{1,253}$`).MatchString(*host) {
		return bad("-host %q: want a lower-case domain name", *host)
	}
	pids, err := parsePIDs(*pidList)
	if err != nil {
		return bad("-pid: %v", err)
	}
	for name, v := range map[string]struct{ v, lo, hi int }{
		"-workers": {*workers, 1, 10000},
		"-n":       {*n, 1, 10_000_000},
		"-users":   {*users, 1, 10_000_000},
		"-pairs":   {*pairs, 1, 10000},
		"-m":       {*msgs, 1, 100_000_000},
		"-window":  {*window, 1, 100000},
		"-k":       {*k, 1, 200000},
	} {
		if v.v < v.lo || v.v > v.hi {
			return bad("%s %d: want %d to %d", name, v.v, v.lo, v.hi)
		}
	}
	for name, v := range map[string]struct{ v, lo, hi time.Duration }{
		"-op-timeout": {*opTO, 100 * time.Millisecond, time.Hour},
		"-settle":     {*settle, 0, 10 * time.Minute},
		"-limit":      {*limit, time.Second, 24 * time.Hour},
		"-hold":       {*holdFor, 0, 24 * time.Hour},
		"-keepalive":  {*keep, time.Second, time.Hour},
		"-progress":   {*prog, 0, time.Hour},
	} {
		if v.v < v.lo || v.v > v.hi {
			return bad("%s %v: want %v to %v", name, v.v, v.lo, v.hi)
		}
	}
	if *rate < 0 || *rate > 10_000_000 {
		return bad("-rate %v: want 0 to 10000000", *rate)
	}
	if *warmup < -1 || *warmup > 10_000_000 {
		return bad("-warmup %d: want -1 to 10000000", *warmup)
	}
	if *warmup == -1 {
		*warmup = *users
	}

	t := &target{addr: *addr, host: *host, direct: *direct, prefix: *prefix, opTimeout: *opTO, trace: *trace}
	if scenario == "register" {
		*mech = "PLAIN" // registers password accounts
	}
	switch strings.ToUpper(*mech) {
	case "X-TOKEN":
		t.mech = "X-TOKEN"
		if *seed == "" || *secret == "" {
			return bad("X-TOKEN needs -otp-seed and -token-secret (the host's)")
		}
		t.token = auth.TokenParams{OTPSeed: *seed, TokenSecret: *secret, Digits: *digits, Interval: *interval}
		if _, err := auth.Mint(t.token, "a@b", time.Now(), auth.NewNonce(auth.DefaultNonceDigits)); err != nil {
			return bad("X-TOKEN parameters: %v", err)
		}
	case "PLAIN":
		t.mech = "PLAIN"
	default:
		return bad("-mech %q: want X-TOKEN or PLAIN", *mech)
	}
	if (t.mech == "PLAIN" || scenario == "register") && *password == "" {
		return bad("PLAIN and register need -password")
	}
	t.password = *password
	t.tls, err = tlsConfig(*host, *caFile, *insecure, *curves, *direct)
	if err != nil {
		return bad("%v", err)
	}

	if *maxErrs < 0 {
		return bad("-max-errors %d: want 0 or more", *maxErrs)
	}
	b := &bench{t: t, pids: pids, progress: *prog, log: stderr, settle: *settle, ctx: ctx, maxErrors: int64(*maxErrs)}
	if len(pids) > 0 {
		if _, err := procCPU(pids); err != nil {
			return nil, fmt.Errorf("-pid: %w", err)
		}
	}
	var s *Summary
	switch scenario {
	case "login":
		s, err = b.login(loginOpts{n: *n, workers: *workers, users: *users, warmup: *warmup})
	case "msg":
		if _, err := raiseFDLimit(uint64(2**pairs + 64)); err != nil {
			return nil, fmt.Errorf("raising the open file limit: %w", err)
		}
		s, err = b.msg(msgOpts{pairs: *pairs, m: *msgs, window: *window, workers: *workers, rate: *rate, limit: *limit})
	case "idle":
		got, err := raiseFDLimit(uint64(*k + 64))
		if err != nil {
			return nil, fmt.Errorf("raising the open file limit: %w", err)
		}
		if got < uint64(*k+16) {
			return nil, fmt.Errorf("-k %d: the open file limit is %d (raise the hard limit: ulimit -Hn)", *k, got)
		}
		s, err = b.idle(idleOpts{k: *k, workers: *workers, hold: *holdFor, keepalive: *keep}, stdout)
		if err == nil {
			s.Label = *label
		}
		return s, err
	case "register":
		s, err = b.register(registerOpts{n: *n, workers: *workers})
	}
	if err != nil {
		return nil, err
	}
	s.Label = *label
	return s, s.write(stdout)
}

// checkLoopback refuses any address but a loopback one: this tool sends
// load to servers on this machine only.
func checkLoopback(addr string) error {
	h, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-addr %q: %v", addr, err)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("-addr %q: bad port", addr)
	}
	if h == "localhost" {
		return nil
	}
	ip := net.ParseIP(h)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-addr %q: loopback addresses only (127.0.0.0/8, ::1, localhost)", addr)
	}
	return nil
}

func parsePIDs(s string) ([]int, error) {
	if s == "" {
		return nil, nil
	}
	var pids []int
	for _, f := range strings.Split(s, ",") {
		p, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || p < 1 {
			return nil, fmt.Errorf("bad process id %q", f)
		}
		pids = append(pids, p)
	}
	return pids, nil
}

// tlsConfig is the client's TLS: 1.3 only, no session cache (every
// handshake is a full one), the given groups.
func tlsConfig(host, caFile string, insecure bool, curves string, direct bool) (*tls.Config, error) {
	cfg := &tls.Config{
		ServerName: host,
		MinVersion: tls.VersionTLS13,
		MaxVersion: tls.VersionTLS13,
		// ClientSessionCache stays nil: no resumption.
	}
	switch {
	case caFile != "" && insecure:
		return nil, errors.New("give -ca or -insecure, not both")
	case caFile != "":
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("-ca: %v", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-ca %s: no PEM certificate", caFile)
		}
	case insecure:
		cfg.InsecureSkipVerify = true
	default:
		return nil, errors.New("give -ca FILE (the server's certificate or its CA) or -insecure")
	}
	for _, c := range strings.Split(curves, ",") {
		switch strings.ToLower(strings.TrimSpace(c)) {
		case "x25519":
			cfg.CurvePreferences = append(cfg.CurvePreferences, tls.X25519)
		case "p256":
			cfg.CurvePreferences = append(cfg.CurvePreferences, tls.CurveP256)
		case "x25519mlkem768":
			cfg.CurvePreferences = append(cfg.CurvePreferences, tls.X25519MLKEM768)
		default:
			return nil, fmt.Errorf("-curves: unknown group %q", c)
		}
	}
	if direct {
		cfg.NextProtos = []string{"xmpp-client"}
	}
	return cfg, nil
}
