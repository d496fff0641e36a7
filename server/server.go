// Package server runs ottr: it owns the listeners and their lifecycle,
// the router and session registry, and the IM features (as iq handlers
// and delivery rules). It wires auth, storage and c2s together.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp/stream"

	"ottr.im/ottr/auth"
	"ottr.im/ottr/c2s"
	"ottr.im/ottr/certs"
	"ottr.im/ottr/config"
	"ottr.im/ottr/storage/sqlite"
)

// ErrServerClosed is returned by Start after Shutdown.
var ErrServerClosed = errors.New("server: closed")

// Options configure a Server.
type Options struct {
	// Config is the validated configuration.
	Config *config.Config
	// Logger receives the server's logs; nil is slog.Default().
	Logger *slog.Logger
	// Now is the clock for token verification; nil is time.Now.
	Now func() time.Time
}

// Server is one ottr node.
type Server struct {
	cfg    *config.Config
	logger *slog.Logger
	store  *sqlite.Store
	router *Router
	c2s    *c2s.Config
	tls    *tls.Config

	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	closed    bool
	listeners []net.Listener
	conns     map[net.Conn]struct{}
	wg        sync.WaitGroup
}

// New prepares a server: certificate, storage, authentication, router.
// It listens on nothing until Start.
func New(opts Options) (*Server, error) {
	cfg := opts.Config
	if cfg == nil {
		return nil, errors.New("server: no config")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	var names []string
	hosts := make(map[string]auth.TokenParams)
	for _, h := range cfg.Hosts {
		names = append(names, h.Name)
		t := h.EffectiveToken(cfg.Token)
		hosts[h.Name] = auth.TokenParams{
			OTPSeed:     h.OTPSeed,
			TokenSecret: h.TokenSecret,
			Digits:      t.Digits(),
			Interval:    t.Interval(),
			Deviation:   t.Deviation(),
		}
	}
	var cert tls.Certificate
	var err error
	if cfg.TLS.Cert != "" {
		cert, err = certs.Load(cfg.TLS.Cert, cfg.TLS.Key)
	} else {
		cert, err = certs.LoadOrCreate(cfg.TLSDir(), names, logger)
	}
	if err != nil {
		return nil, fmt.Errorf("server: certificate: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	store, err := sqlite.Open(ctx, cfg.DatabasePath())
	if err != nil {
		cancel()
		return nil, fmt.Errorf("server: storage: %w", err)
	}
	authn, err := auth.New(auth.Options{Hosts: hosts, Accounts: store, Now: opts.Now})
	if err != nil {
		cancel()
		store.Close()
		return nil, err
	}
	iq := newIQMux()
	router := NewRouter(names, iq, store, IMLimits{}, logger.With("component", "router"))
	if err := registerCore(iq); err == nil {
		err = router.registerIM(iq, time.Now())
	}
	if err != nil {
		cancel()
		store.Close()
		return nil, err
	}
	tlsCfg := certs.ServerConfig(cert)
	s := &Server{
		cfg:    cfg,
		logger: logger,
		store:  store,
		router: router,
		tls:    tlsCfg,
		ctx:    ctx,
		cancel: cancel,
		conns:  make(map[net.Conn]struct{}),
	}
	s.c2s = &c2s.Config{
		Serves:     router.Serves,
		TLS:        tlsCfg,
		RequireTLS: cfg.C2S.RequireTLSOrDefault(),
		Mechanisms: []sasl.Mechanism{auth.XToken, auth.Plain},
		Auth:       authn,
		Router:     router,
		Logger:     logger.With("component", "c2s"),
	}
	return s, nil
}

// Start opens every configured listener and serves them in the
// background. If any address cannot be bound, nothing is left open and
// the error names the address.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrServerClosed
	}
	type spec struct {
		addr   string
		direct bool
	}
	var specs []spec
	for _, a := range s.cfg.C2S.Listen {
		specs = append(specs, spec{a, false})
	}
	for _, a := range s.cfg.C2S.DirectTLS {
		specs = append(specs, spec{a, true})
	}
	var opened []net.Listener
	for _, sp := range specs {
		var lc net.ListenConfig
		l, err := lc.Listen(ctx, "tcp", sp.addr)
		if err != nil {
			for _, o := range opened {
				o.Close()
			}
			return fmt.Errorf("server: listen on %s: %w", sp.addr, err)
		}
		kind := "starttls"
		if sp.direct {
			direct := s.tls.Clone()
			direct.NextProtos = []string{"xmpp-client"}
			l = tls.NewListener(l, direct)
			kind = "direct-tls"
		}
		s.logger.Info("listening", "addr", l.Addr().String(), "kind", kind)
		opened = append(opened, l)
	}
	s.listeners = opened
	for _, l := range opened {
		s.wg.Add(1)
		go s.acceptLoop(l)
	}
	return nil
}

// Addrs returns the addresses the server listens on, in config order
// (STARTTLS ones first, then direct TLS).
func (s *Server) Addrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []net.Addr
	for _, l := range s.listeners {
		out = append(out, l.Addr())
	}
	return out
}

// Router returns the server's router (for tests and metrics).
func (s *Server) Router() *Router { return s.router }

func (s *Server) acceptLoop(l net.Listener) {
	defer s.wg.Done()
	var backoff time.Duration
	for {
		conn, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Temporary failures (such as running out of file
			// descriptors) must not spin: back off as net/http does.
			if backoff == 0 {
				backoff = 5 * time.Millisecond
			} else if backoff *= 2; backoff > time.Second {
				backoff = time.Second
			}
			s.logger.Warn("accept failed", "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if !s.track(conn) {
			conn.Close()
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.untrack(conn)
			c2s.Serve(s.ctx, conn, s.c2s)
		}()
	}
}

func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// Shutdown stops accepting, ends every session with a system-shutdown
// stream error and waits for them to finish until ctx is done, when the
// remaining connections are closed. It then closes storage.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.closed = true
	started := len(s.listeners) > 0
	for _, l := range s.listeners {
		l.Close()
	}
	s.mu.Unlock()

	if started {
		s.logger.Info("shutting down", "sessions", s.router.Sessions())
	}
	s.router.CloseAll(stream.Error{Err: stream.SystemShutdown.Err})
	// Connections still negotiating have no session to close: cancel
	// their context, which ends negotiation.
	s.cancel()

	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		s.mu.Lock()
		n := len(s.conns)
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.logger.Warn("shutdown deadline passed, closed connections", "open", n)
		<-done
	}
	s.router.Wait()
	if cerr := s.store.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if started {
		s.logger.Info("stopped")
	}
	return err
}

// Serves reports whether host is served here.
func (s *Server) Serves(host string) bool { return s.router.Serves(strings.ToLower(host)) }
