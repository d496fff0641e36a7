package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"syscall"
	"time"

	"ottr.im/ottr/config"
	"ottr.im/ottr/server"
)

// shutdownTimeout bounds the graceful shutdown after SIGINT or SIGTERM.
const shutdownTimeout = 10 * time.Second

// runServe implements "ottr serve": it runs the server until SIGINT or
// SIGTERM, then shuts it down gracefully.
func runServe(ctx context.Context, e *env, args []string) error {
	f := newFlagSet("serve", "[-c FILE] [-pprof ADDR]")
	cfgPath := f.configFlag()
	pprofAddr := f.String("pprof", "", "serve Go's profiles (net/http/pprof) on this loopback `address`, for diagnosis")
	if err := f.parse(e, args); err != nil {
		return err
	}
	if err := f.nArgs(0, ""); err != nil {
		return err
	}
	cfg, onDefaults, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if onDefaults {
		if err := fillSecrets(cfg); err != nil {
			return err
		}
	}
	logger, err := newLogger(e.stderr, cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		return err
	}
	srv, err := server.New(server.Options{Config: cfg, Logger: logger, Reload: configReloader(*cfgPath)})
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := srv.Start(ctx); err != nil {
		// Start leaves nothing listening, but New opened the database.
		sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		_ = srv.Shutdown(sctx)
		return err
	}
	if onDefaults {
		printDefaultsNotice(e.stderr, cfg)
	}
	go trimMemory(ctx)
	go reloadOnHangup(ctx, srv, logger)
	if *pprofAddr != "" {
		if err := servePprof(*pprofAddr, logger); err != nil {
			return err
		}
	}
	<-ctx.Done()
	stop() // a second signal now kills the process at once
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// printDefaultsNotice tells someone who started ottr without a
// configuration file where its data lives and how to log in.
func printDefaultsNotice(w io.Writer, cfg *config.Config) {
	abs := func(path string) string {
		if a, err := filepath.Abs(path); err == nil {
			return a
		}
		return path
	}
	addr := "127.0.0.1:5222"
	if len(cfg.C2S.Listen) > 0 {
		addr = cfg.C2S.Listen[0]
	}
	host := cfg.Hosts[0].Name
	jid := "alice@" + host
	var b strings.Builder
	fmt.Fprintf(&b, `
ottr is running on its built-in defaults (no -c FILE).
  data:        %s (accounts in %s, token secrets in %s)
  certificate: self-signed, generated in %s: clients must accept it
  listening:   %s, STARTTLS, host %q

To log in, either
  - run "ottr token %s": it prints a token, valid for about a minute and
    only once; connect any XMPP client to %s as %s with the
    SASL mechanism X-TOKEN and the token as the password; or
  - run "ottr user add %s" to set a password, then log in with PLAIN.

For a real deployment, write a configuration (see config.toml.example,
"ottr secrets" makes token secrets) and run "ottr serve -c FILE".

`, abs(cfg.DataDir), config.DatabaseFile, secretsFile, abs(cfg.TLSDir()),
		addr, host, jid, addr, jid, jid)
	io.WriteString(w, b.String())
}

// servePprof serves net/http/pprof's handlers on a loopback address.
func servePprof(addr string, logger *slog.Logger) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-pprof: %w", err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("-pprof: %s is not a loopback address: profiles are not for the network", addr)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("-pprof: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	logger.Info("serving profiles", "addr", l.Addr().String())
	go http.Serve(l, mux)
	return nil
}

// trimMemory returns memory the heap no longer uses to the operating
// system soon after a burst (a login storm leaves megabytes of handshake
// garbage behind) instead of at the runtime's slow background pace, so
// that the resident set follows the sessions actually open. It reads
// runtime/metrics, which does not stop the world, every second. It is
// the binary's policy for its process, not the server package's: a
// program that embeds a server keeps its own.
func trimMemory(ctx context.Context) {
	const every = time.Second
	samples := []metrics.Sample{
		{Name: "/memory/classes/heap/free:bytes"},    // free, not yet returned
		{Name: "/memory/classes/heap/objects:bytes"}, // live and dead objects
		{Name: "/gc/heap/allocs:bytes"},              // allocated since start
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var lastAllocs uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			metrics.Read(samples)
			free, objects := samples[0].Value.Uint64(), samples[1].Value.Uint64()
			allocs := samples[2].Value.Uint64()
			busy := allocs-lastAllocs > 8<<20
			lastAllocs = allocs
			// Not during a burst (more than 8 MiB allocated in the last
			// second): forced collections would add to its cost. After
			// it, worth a forced collection (a few ms) only when much is
			// waiting: more than 4 MiB and more than an eighth of the heap.
			if !busy && free > 4<<20 && free > objects/8 {
				debug.FreeOSMemory()
			}
		}
	}
}
