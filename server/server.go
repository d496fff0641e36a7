// Package server runs ottr: it owns the listeners and their lifecycle,
// and wires configuration, storage, authentication, the routing core
// (package router), the feature modules (modules.go) and the transports
// (c2s, web) together.
package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp/stream"

	"ottr.im/ottr/auth"
	"ottr.im/ottr/c2s"
	"ottr.im/ottr/certs"
	"ottr.im/ottr/component"
	"ottr.im/ottr/config"
	"ottr.im/ottr/element"
	"ottr.im/ottr/limit"
	"ottr.im/ottr/metrics"
	"ottr.im/ottr/mod/carbons"
	"ottr.im/ottr/mod/csi"
	"ottr.im/ottr/router"
	"ottr.im/ottr/storage/claimlog"
	"ottr.im/ottr/storage/sqlite"
	"ottr.im/ottr/web"
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
	// Reload reads the configuration again for Server.Reload (SIGHUP,
	// "ottr ctl reload"); nil: the server cannot reload.
	Reload func() (*config.Config, error)
}

// Server is one ottr node.
type Server struct {
	cfg    *config.Config
	logger *slog.Logger
	store  *sqlite.Store
	claims *claimlog.Log // used tokens, in data_dir
	router *router.Router
	mods   *loader // the loaded modules the server talks to
	c2s    *c2s.Config
	certs  *certs.Manager // the certificates of every TLS listener

	// The web transports, when [http] has a listener: their sessions
	// run c2s with webC2S (the stream counts as encrypted).
	web     *web.Handler
	webC2S  *c2s.Config
	httpSrv *http.Server
	proxies []netip.Prefix // http.trusted_proxies

	ctx    context.Context
	cancel context.CancelFunc

	perIP          *limit.Keyed // new connections per source address
	lastRefusedLog atomic.Int64

	mu        sync.Mutex
	closed    bool
	listeners []net.Listener // c2s
	httpLns   []net.Listener // http.listen, then http.tls_listen
	compLns   []net.Listener // components.listen

	// components serves [components] (XEP-0114); nil without services.
	components *component.Server
	// conns holds the c2s connections and web sessions open, each with
	// its key in perAddr ("" when not counted per address).
	conns map[net.Conn]string
	// httpOpen counts the HTTP connections open (not hijacked for a
	// WebSocket, whose session is in conns): with conns, what
	// limits.max_connections caps (security review #5).
	httpOpen int
	// perAddr counts what conns and httpOpen count by source address
	// (limit.AddressKey), but not the connections of a trusted proxy:
	// what limits.connections_per_address caps, at perAddrMax. An entry
	// exists only while its count is above zero, so there are at most
	// max_connections.
	perAddr    map[string]int
	perAddrMax int
	wg         sync.WaitGroup

	// For the operator (admin.go, admin_socket.go, reload.go): metrics
	// and the bound sessions, the admin endpoint and socket, and what a
	// reload changes.
	ops       *ops
	started   time.Time
	adminLn   net.Listener // [admin] listen
	adminHTTP *http.Server
	adminSock net.Listener // data_dir/ottr.sock
	// pollNow asks deletionLoop to act on the deletions recorded now,
	// and closes the channel it gets when it did ("ottr user del").
	pollNow chan chan struct{}
	// stuckWait: how long Shutdown waits for the server's goroutines
	// once it closed their connections (defaultStuckWait).
	stuckWait    time.Duration
	authn        *auth.Authenticator
	reloadConfig func() (*config.Config, error)
	reloadMu     sync.Mutex     // one reload at a time
	live         *config.Config // the configuration in force, with what reloads applied
	maxConns     atomic.Int64   // limits.max_connections, reloadable
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
		hosts[h.Name] = h.TokenParams(cfg.Token)
	}
	cm, err := newCerts(cfg, logger.With("component", "certs"))
	if err != nil {
		return nil, fmt.Errorf("server: certificate: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	store, err := sqlite.Open(ctx, cfg.DatabasePath())
	if err != nil {
		cancel()
		return nil, fmt.Errorf("server: storage: %w", err)
	}
	// Used tokens stay refused after a restart (security review #8). The
	// memory cache in front holds at most DefaultReplayEntries, so the log
	// refuses only while it still holds that many claims from before a
	// restart.
	clock := time.Now
	if opts.Now != nil {
		clock = opts.Now
	}
	claims, err := claimlog.Open(filepath.Join(cfg.DataDir, claimlog.FileName), clock(), auth.DefaultReplayEntries)
	if err != nil {
		cancel()
		store.Close()
		return nil, fmt.Errorf("server: %w", err)
	}
	if r := claims.Recovery(); r.Dropped > 0 {
		logger.Warn("token claim log: dropped a damaged or partly written end", "file", claimlog.FileName, "records", r.Records, "dropped_bytes", r.Dropped)
	}
	lim := cfg.Limits
	m := metrics.New(metrics.Options{Version: Version})
	authn, err := auth.New(auth.Options{
		Hosts:    hosts,
		Accounts: meteredStore{Store: store, m: m},
		Claims:   claims,
		Now:      opts.Now,
		Failures: authFailureLimits(lim, m),
	})
	if err != nil {
		cancel()
		claims.Close()
		store.Close()
		return nil, err
	}
	core := router.New(router.Options{Hosts: names, Accounts: store, Logger: logger.With("component", "router")})
	// Options.Now is the token clock only: the modules keep real time.
	mods := &loader{core: core, store: store, limits: lim, now: time.Now, proxy65Opts: proxy65Options(cfg), extdiscoOpts: extdiscoOptions(cfg), contact: cfg.Contact.Addresses()}
	mods.mucDomains = mucDomains(cfg)
	mods.uploadOpts = uploadOptions(cfg)
	mods.metered = meteredStore{Store: store, m: m}
	if err := mods.load(); err != nil {
		cancel()
		claims.Close()
		store.Close()
		return nil, err
	}
	tlsCfg := cm.ServerConfig()
	s := &Server{
		cfg:       cfg,
		logger:    logger,
		store:     store,
		claims:    claims,
		router:    core,
		mods:      mods,
		certs:     cm,
		ctx:       ctx,
		cancel:    cancel,
		conns:     make(map[net.Conn]string),
		pollNow:   make(chan chan struct{}),
		stuckWait: defaultStuckWait,
		perIP:     limit.NewKeyed(lim.ConnectionRate.PerSecond(), lim.ConnectionBurst, 200000),

		perAddr:    make(map[string]int),
		perAddrMax: min(lim.ConnectionsPerAddress, lim.MaxConnections),

		ops:          newOps(m),
		started:      time.Now(),
		authn:        authn,
		reloadConfig: opts.Reload,
		live:         cfg,
	}
	s.maxConns.Store(int64(lim.MaxConnections))
	m.CountConnections(s.OpenConnections)
	s.perIP.OnRefuse(func() { m.Refused("connection_rate") })
	mods.uploadBase = s.uploadBaseURL
	s.c2s = &c2s.Config{
		Serves:     core.Serves,
		TLS:        tlsCfg,
		RequireTLS: cfg.C2S.RequireTLSOrDefault(),
		Mechanisms: []sasl.Mechanism{sasl.ScramSha256Plus, sasl.ScramSha1Plus, auth.XToken, sasl.ScramSha256, sasl.ScramSha1, auth.Plain},
		Announce: []xml.StartElement{
			{Name: xml.Name{Space: "urn:xmpp:features:rosterver", Local: "ver"}},
			{Name: xml.Name{Space: csi.NS, Local: "csi"}},
		},
		Caps:     mods.disco.Caps,
		Elements: csiElements(mods.csi),
		Bind2:    bind2Features(mods),
		Fast: fastAdapter{auth.NewFast(auth.FastOptions{
			Store: store, Lifetime: lim.FastTokenLifetime.Duration, Rotation: lim.FastTokenRotation.Duration,
		})},
		Auth:     authAdapter{authn},
		Router:   c2sRouter{core: core, csi: mods.csi, ops: s.ops},
		Observer: loginObserver{m},
		Logger:   logger.With("component", "c2s"),

		NegotiateTimeout: lim.AuthTimeout.Duration,
		MaxAuthAttempts:  lim.MaxAuthAttempts,
		QueueLen:         lim.SendQueue,
		QueueBytes:       lim.SendQueueBytes,
		Guard: c2s.GuardLimits{
			MaxElement:    lim.MaxStanzaBytes,
			MaxDepth:      lim.MaxDepth,
			MaxAttributes: lim.MaxAttributes,
			MaxPrebind:    lim.MaxPrebindBytes,
		},
		Keepalive:    lim.Keepalive.Duration,
		IdleTimeout:  lim.IdleTimeout.Duration,
		WriteTimeout: lim.WriteTimeout.Duration,
		// XEP-0198: one table of resumable sessions for every listener,
		// as the web transports' Config is a copy of this one.
		ResumeTimeout: lim.ResumptionTimeout.Duration,
	}
	s.c2s = s.c2s.WithDefaults()
	if err := s.newComponents(); err != nil {
		cancel()
		claims.Close()
		store.Close()
		return nil, err
	}
	if cfg.HTTP.Enabled() {
		if err := s.newWeb(); err != nil {
			cancel()
			claims.Close()
			store.Close()
			return nil, err
		}
	}
	return s, nil
}

// newWeb prepares the web transports: WebSocket and BOSH sessions run the
// same c2s, with the same limits, over a virtual connection each.
func (s *Server) newWeb() error {
	h := s.cfg.HTTP
	webC2S := *s.c2s
	webC2S.Secure = true
	webC2S.Logger = s.logger.With("component", "c2s", "transport", "web")
	s.webC2S = &webC2S
	var proxies []netip.Prefix
	for _, p := range h.TrustedProxies {
		pr, err := config.ParsePrefix(p)
		if err != nil {
			return fmt.Errorf("server: http.trusted_proxies: %w", err)
		}
		proxies = append(proxies, pr)
	}
	wh, err := web.New(web.Options{
		Origins:        h.Origins,
		TrustedProxies: proxies,
		PublicURL:      h.PublicURL,
		MaxWait:        h.BOSHMaxWait.Duration,
		Inactivity:     h.BOSHInactivity.Duration,
		MaxStanza:      s.c2s.Guard.MaxElement,
		MaxPrebind:     s.cfg.Limits.MaxPrebindBytes,
		WriteTimeout:   s.c2s.WriteTimeout,
		Admit: func(a netip.Addr, session bool) bool {
			if session {
				return s.admitAddr(a, a.String())
			}
			return s.admitPerAddr(a, a.String()) && s.admitRate(a, a.String())
		},
		Serve:  s.serveWeb,
		Logger: s.logger.With("component", "web"),
	})
	if err != nil {
		return err
	}
	s.web = wh
	s.proxies = proxies
	s.httpSrv = &http.Server{
		Handler:           s.httpHandler(wh),
		ReadHeaderTimeout: s.c2s.NegotiateTimeout,
		// Longer than a held BOSH request, so that a poller's keep-alive
		// connection is not closed between two requests.
		IdleTimeout: h.BOSHMaxWait.Duration + 30*time.Second,
		// A request's head is read before anything is known of the
		// client: the pre-bind limit, as for a stream header.
		MaxHeaderBytes: s.cfg.Limits.MaxPrebindBytes,
		ErrorLog:       slog.NewLogLogger(s.logger.With("component", "http").Handler(), slog.LevelDebug),
		ConnState:      s.httpConnState,
	}
	return nil
}

// serveWeb runs one WebSocket or BOSH session, counted and closed at
// shutdown like a TCP connection.
func (s *Server) serveWeb(conn web.Conn) bool {
	// Counted for its client's address, as admitted by web.Options.Admit
	// (a WebSocket's connection was counted until hijacked).
	key := addrKey(remoteAddr(conn))
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	s.conns[conn] = key
	s.countAddrLocked(key)
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	defer s.untrack(conn)
	cfg := *s.webC2S
	cfg.Router = boundRouter{Router: s.webC2S.Router, conn: conn}
	c2s.Serve(withConnInfo(s.ctx, webTransport(conn), conn), conn, &cfg)
	return true
}

// boundRouter tells a web session's transport when c2s bound its
// resource, so that the pre-bind size limits give way to the stanza
// limit.
type boundRouter struct {
	c2s.Router
	conn web.Conn
}

func (r boundRouter) Bind(ctx context.Context, sess *c2s.Session) error {
	if err := r.Router.Bind(ctx, sess); err != nil {
		return err
	}
	r.conn.Bound()
	return nil
}

// Resumed is Bind's counterpart for a session resumed (XEP-0198) over
// this transport.
func (r boundRouter) Resumed(ctx context.Context, sess *c2s.Session) {
	r.Router.Resumed(ctx, sess)
	r.conn.Bound()
}

// httpListener applies the connection limits to the HTTP listeners'
// connections as they are accepted, before TLS: they count against
// limits.max_connections with the c2s connections, and, unless they come
// from a trusted proxy (whose clients are counted and rated by their own
// address when they start a session), against
// limits.connections_per_address and the per-address rate.
type httpListener struct {
	net.Listener
	s *Server
}

func (l httpListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.s.admitHTTP(c) {
			return c, nil
		}
		c.Close()
	}
}

// admitHTTP admits and counts an HTTP connection; httpConnState uncounts
// it.
func (s *Server) admitHTTP(c net.Conn) bool {
	addr := s.httpAddr(c)
	if !s.admitAddr(addr, c.RemoteAddr().String()) {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.holdAddrLocked(addrKey(addr)) {
		// Another connection took the last place since admitAddr looked.
		s.refusedLog("connections from one address reached their cap", c.RemoteAddr().String())
		return false
	}
	s.httpOpen++
	return true
}

// httpAddr is the address an HTTP connection is counted and rated by: its
// peer's, or the zero Addr for a trusted proxy's, which carries many
// clients.
func (s *Server) httpAddr(c net.Conn) netip.Addr {
	addr := remoteAddr(c)
	for _, p := range s.proxies {
		if p.Contains(addr) {
			return netip.Addr{}
		}
	}
	return addr
}

// httpConnState uncounts an HTTP connection that closed, or that a
// WebSocket took over (its session counts in conns from then on).
func (s *Server) httpConnState(c net.Conn, state http.ConnState) {
	if state == http.StateClosed || state == http.StateHijacked {
		key := addrKey(s.httpAddr(c))
		s.mu.Lock()
		s.httpOpen--
		s.releaseAddrLocked(key)
		s.mu.Unlock()
	}
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
	// Deletions recorded from now on are acted on (see deletionLoop).
	lastDeletion, err := s.store.LastAccountDeletion(ctx)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	type spec struct {
		addr string
		kind string
	}
	var specs []spec
	for _, a := range s.cfg.C2S.Listen {
		specs = append(specs, spec{a, "starttls"})
	}
	for _, a := range s.cfg.C2S.DirectTLS {
		specs = append(specs, spec{a, "direct-tls"})
	}
	if s.web != nil {
		for _, a := range s.cfg.HTTP.Listen {
			specs = append(specs, spec{a, "http"})
		}
		for _, a := range s.cfg.HTTP.TLSListen {
			specs = append(specs, spec{a, "https"})
		}
	}
	if !s.c2s.RequireTLS && len(s.cfg.C2S.Listen) > 0 {
		// Security review #11: say it where an operator looks.
		s.logger.Warn("c2s.require_tls is false: clients may authenticate without TLS, sending passwords and tokens in the clear", "listen", s.cfg.C2S.Listen)
	}
	var opened []net.Listener
	for _, sp := range specs {
		// No OS keepalive: ottr sends its own whitespace pings and
		// closes idle sessions (limits.keepalive, idle_timeout), and
		// setting it up costs setsockopt calls on every accepted
		// connection.
		lc := net.ListenConfig{KeepAlive: -1}
		l, err := lc.Listen(ctx, "tcp", sp.addr)
		if err != nil {
			for _, o := range opened {
				o.Close()
			}
			return fmt.Errorf("server: listen on %s: %w", sp.addr, err)
		}
		switch sp.kind {
		case "direct-tls":
			l = c2s.TLSListener(l, s.certs.ServerConfig("xmpp-client"))
		case "https":
			l = httpListener{Listener: l, s: s}
			// HTTP/1.1 only: WebSocket needs it, and BOSH gains nothing
			// from HTTP/2.
			l = tls.NewListener(l, s.certs.ServerConfig("http/1.1"))
		case "http":
			l = httpListener{Listener: l, s: s}
			if ap, err := netip.ParseAddrPort(l.Addr().String()); err == nil && !ap.Addr().IsLoopback() {
				s.logger.Warn("plain HTTP listener on a non-loopback address: its WebSocket and BOSH sessions count as encrypted, so put a TLS-terminating proxy in front", "addr", l.Addr().String())
			}
		}
		s.logger.Info("listening", "addr", l.Addr().String(), "kind", sp.kind)
		opened = append(opened, l)
	}
	proxyLn, err := s.listenProxy65(ctx)
	if err != nil {
		for _, o := range opened {
			o.Close()
		}
		return err
	}
	if err := s.startComponents(ctx); err != nil {
		for _, o := range opened {
			o.Close()
		}
		if proxyLn != nil {
			proxyLn.Close()
		}
		return err
	}
	if err := s.startAdminHTTP(ctx); err != nil {
		for _, o := range opened {
			o.Close()
		}
		if proxyLn != nil {
			proxyLn.Close()
		}
		return err
	}
	s.startAdminSocket()
	n := len(s.cfg.C2S.Listen) + len(s.cfg.C2S.DirectTLS)
	s.listeners, s.httpLns = opened[:n:n], opened[n:]
	for _, l := range s.listeners {
		s.wg.Add(1)
		go s.acceptLoop(l)
	}
	for _, l := range s.httpLns {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.httpSrv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
				s.logger.Error("http listener failed", "addr", l.Addr().String(), "err", err)
			}
		}()
	}
	// The listeners are open: the CA can check the domains now.
	s.certs.Start()
	s.wg.Add(1)
	go s.tickLoop()
	s.wg.Add(1)
	go s.deletionLoop(lastDeletion)
	s.serveProxy65(proxyLn)
	if s.mods.upload != nil {
		s.mods.upload.Start(s.ctx)
	}
	return nil
}

// tickLoop runs every session's keepalive and idle timers, from one
// goroutine for the whole server.
func (s *Server) tickLoop() {
	defer s.wg.Done()
	every := min(s.c2s.Keepalive, s.c2s.IdleTimeout) / 4
	if every < 100*time.Millisecond {
		every = 100 * time.Millisecond
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case now := <-t.C:
			s.router.Each(func(t router.Target) {
				if sess, ok := t.(*c2s.Session); ok {
					sess.Tick(now)
				}
			})
		}
	}
}

// Addrs returns the addresses the server listens on, in config order:
// c2s STARTTLS, c2s direct TLS, then plain HTTP and HTTPS.
func (s *Server) Addrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []net.Addr
	for _, l := range s.listeners {
		out = append(out, l.Addr())
	}
	for _, l := range s.httpLns {
		out = append(out, l.Addr())
	}
	return out
}

// HTTPAddrs returns the addresses of the web transports' listeners, plain
// HTTP and HTTPS, in config order.
func (s *Server) HTTPAddrs() (plain, secure []net.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, l := range s.httpLns {
		if i < len(s.cfg.HTTP.Listen) {
			plain = append(plain, l.Addr())
		} else {
			secure = append(secure, l.Addr())
		}
	}
	return plain, secure
}

// OpenConnections returns the number of client connections open now,
// negotiating or bound: c2s connections, HTTP connections and web
// sessions (a WebSocket's connection counts once, as its session; a BOSH
// session counts besides its HTTP connections). limits.max_connections
// caps it.
func (s *Server) OpenConnections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns) + s.httpOpen
}

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
		if !s.admit(conn) {
			conn.Close()
			continue
		}
		if err := s.track(conn); err != nil {
			conn.Close()
			if errors.Is(err, ErrServerClosed) {
				return
			}
			s.refusedLog(err.Error(), conn.RemoteAddr().String())
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.untrack(conn)
			c2s.Serve(withConnInfo(s.ctx, metrics.TransportTCP, conn), conn, s.c2s)
		}()
	}
}

// admit applies the connection limits: the total cap, the cap per source
// address and the rate per source address. A refused connection is
// closed without a word: it has not even sent a stream header.
func (s *Server) admit(c net.Conn) bool {
	return s.admitAddr(remoteAddr(c), c.RemoteAddr().String())
}

// remoteAddr is c's peer address, the zero Addr when it has none.
func remoteAddr(c net.Conn) netip.Addr {
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// addrKey is the key addr is counted by in perAddr, as the rate keys it
// (IPv4 address, IPv6 /64); "" for the zero Addr, which is not counted.
func addrKey(addr netip.Addr) string {
	if !addr.IsValid() {
		return ""
	}
	return limit.AddressKey(addr)
}

// admitAddr applies the connection limits to a new connection or web
// session from addr (the zero Addr when unknown, or not to be counted
// and rated per address); remote is for the log.
func (s *Server) admitAddr(addr netip.Addr, remote string) bool {
	if open := s.OpenConnections(); open >= int(s.maxConns.Load()) {
		s.ops.metrics.Refused("max_connections")
		s.refusedLog("connection cap reached", remote, "open", open)
		return false
	}
	return s.admitPerAddr(addr, remote) && s.admitRate(addr, remote)
}

// admitPerAddr applies limits.connections_per_address: addr may not open
// another connection while it holds that many (security review #5). The
// connection is counted where the total is: a c2s connection by track, an
// HTTP connection by admitHTTP, a web session by serveWeb.
func (s *Server) admitPerAddr(addr netip.Addr, remote string) bool {
	key := addrKey(addr)
	if key == "" {
		return true
	}
	s.mu.Lock()
	open, most := s.perAddr[key], s.perAddrMax
	s.mu.Unlock()
	if open >= most {
		s.ops.metrics.Refused("connections_per_address")
		s.refusedLog("connections from one address reached their cap", remote, "open", open)
		return false
	}
	return true
}

// holdAddrLocked counts one more connection from key, unless key holds
// its cap already; the caller holds s.mu.
func (s *Server) holdAddrLocked(key string) bool {
	if key != "" && s.perAddr[key] >= s.perAddrMax {
		return false
	}
	s.countAddrLocked(key)
	return true
}

// countAddrLocked counts one more connection from key; the caller holds
// s.mu.
func (s *Server) countAddrLocked(key string) {
	if key != "" {
		s.perAddr[key]++
	}
}

// releaseAddrLocked uncounts a connection from key, forgetting key at
// zero; the caller holds s.mu.
func (s *Server) releaseAddrLocked(key string) {
	if key == "" {
		return
	}
	if n := s.perAddr[key] - 1; n > 0 {
		s.perAddr[key] = n
	} else {
		delete(s.perAddr, key)
	}
}

// admitRate applies the rate of new connections per source address.
func (s *Server) admitRate(addr netip.Addr, remote string) bool {
	if addr.IsValid() && !s.perIP.Allow(limit.AddressKey(addr), time.Now()) {
		s.refusedLog("connection rate from one address exceeded", remote)
		return false
	}
	return true
}

// refusedLog logs a refused connection, at most once a second, so that a
// flood does not flood the log too.
func (s *Server) refusedLog(msg, remote string, args ...any) {
	now := time.Now().Unix()
	if s.lastRefusedLog.Swap(now) == now {
		return
	}
	s.logger.Warn(msg, append([]any{"remote", remote}, args...)...)
}

// track counts an admitted c2s connection, in total and for its address;
// it fails with ErrServerClosed when the server is shutting down, or
// when the address reached its cap since admit looked.
func (s *Server) track(c net.Conn) error {
	key := addrKey(remoteAddr(c))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrServerClosed
	}
	if !s.holdAddrLocked(key) {
		return errors.New("connections from one address reached their cap")
	}
	s.conns[c] = key
	return nil
}

// untrack uncounts a c2s connection or web session that ended.
func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	if key, ok := s.conns[c]; ok {
		delete(s.conns, c)
		s.releaseAddrLocked(key)
	}
	s.mu.Unlock()
}

// Shutdown stops accepting, ends every session with a system-shutdown
// stream error and waits for them to finish until ctx is done, when the
// remaining connections are closed. It then closes storage. Goroutines
// still running 10 s after the connections were closed are not
// waited for: the error returned lists their stacks.
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
	// The HTTP listeners close too, but the HTTP server goes on serving
	// the connections it has until the sessions ended: a BOSH client's
	// held request gets its system-shutdown terminate that way.
	for _, l := range s.httpLns {
		l.Close()
	}
	s.mu.Unlock()

	if started {
		s.logger.Info("shutting down", "sessions", s.router.Sessions())
	}
	s.closeAdmin(ctx)
	s.router.CloseAll(stream.Error{Err: stream.SystemShutdown.Err})
	s.closeComponents()
	s.closeProxy65()
	s.certs.Close()
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
		select {
		case <-done:
		case <-time.After(s.stuckWait):
			// Something other than a connection holds them: say what,
			// rather than hang with no word. The stacks are in the error
			// only ("ottr serve" prints it).
			s.logger.Error("shutdown: goroutines still running after their connections were closed", "after", s.stuckWait)
			err = fmt.Errorf("server: shutdown: goroutines still running %v after the connections were closed:\n%s", s.stuckWait, stuckGoroutines())
		}
	}
	if s.httpSrv != nil {
		// Answer what is in flight, then close the idle connections; past
		// the deadline, close everything.
		if herr := s.httpSrv.Shutdown(ctx); herr != nil {
			s.httpSrv.Close()
			if err == nil {
				err = herr
			}
		}
		s.web.Close()
	}
	s.mods.offline.Wait()
	if s.mods.upload != nil {
		s.mods.upload.Close()
	}
	if s.mods.mam != nil {
		s.mods.mam.Close() // writes what is queued
	}
	if s.mods.muc != nil {
		s.mods.muc.Close() // writes the room messages queued
	}
	if cerr := s.claims.Close(); cerr != nil && err == nil {
		err = cerr
	}
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

// ReloadCertificates reads the certificate files ([tls] cert and key, or
// the generated ones) again now, as a handshake does by itself once they
// changed; on an error the certificate in use stays. ACME certificates
// renew themselves.
func (s *Server) ReloadCertificates() error { return s.certs.Reload() }

// newCerts prepares the certificates of cfg's [tls]: the files, and the
// ACME client for every certified name when tls.acme is on.
func newCerts(cfg *config.Config, logger *slog.Logger) (*certs.Manager, error) {
	opts := certs.Options{
		CertFile: cfg.TLS.Cert,
		KeyFile:  cfg.TLS.Key,
		Dir:      cfg.TLSDir(),
		Names:    cfg.CertificateNames(),
		Logger:   logger,
	}
	if cfg.TLS.ACME {
		if !slices.ContainsFunc(slices.Concat(cfg.C2S.DirectTLS, cfg.HTTP.TLSListen), func(a string) bool {
			_, port, err := net.SplitHostPort(a)
			return err == nil && port == "443"
		}) {
			logger.Warn("tls.acme: no direct TLS or HTTPS listener on port 443, where the CA checks each name (TLS-ALPN-01): forward port 443 to one",
				"direct_tls", cfg.C2S.DirectTLS, "https", cfg.HTTP.TLSListen)
		}
		a := &certs.ACMEOptions{
			Names:        cfg.CertificateNames(),
			Email:        cfg.TLS.ACMEEmail,
			DirectoryURL: cfg.TLS.ACMEDirectory,
			CacheDir:     cfg.ACMEDir(),
		}
		if f := cfg.TLS.ACMECAFile; f != "" {
			pem, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("tls.acme_ca_file: %w", err)
			}
			a.RootCAs = x509.NewCertPool()
			if !a.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("tls.acme_ca_file: no PEM certificate in %s", f)
			}
		}
		opts.ACME = a
	}
	return certs.New(opts)
}

// bind2Features are the session features a client may enable inline
// when it binds with XEP-0386 Bind2: carbons and client state.
func bind2Features(mods *loader) map[xml.Name]c2s.InlineFeature {
	f := map[xml.Name]c2s.InlineFeature{
		{Space: carbons.NS, Local: "enable"}: c2s.InlineFeatureFunc(func(_ context.Context, s *c2s.Session, _ c2s.Element) ([]byte, error) {
			mods.carbons.Enable(s)
			return nil, nil
		}),
	}
	for name, h := range csiElements(mods.csi) {
		f[name] = c2s.InlineElement(h)
	}
	return f
}

// fastAdapter lets the auth package check and issue c2s's FAST tokens
// (XEP-0484).
type fastAdapter struct{ f *auth.Fast }

func (a fastAdapter) VerifyFast(ctx context.Context, l c2s.FastLogin) (c2s.FastVerified, error) {
	r, err := a.f.Verify(ctx, auth.FastLogin{
		Mechanism:      l.Mechanism,
		Host:           l.Host,
		Agent:          l.Agent,
		Message:        l.Message,
		Count:          l.Count,
		Invalidate:     l.Invalidate,
		ChannelBinding: l.ChannelBinding,
	})
	return c2s.FastVerified{User: r.Username, Final: r.Final, Rotate: r.Rotate}, err
}

func (a fastAdapter) IssueFast(ctx context.Context, host, user, agent, mechanism string, cb []byte) (string, time.Time, error) {
	t, err := a.f.Issue(ctx, host, user, agent, mechanism, cb)
	return t.Token, t.Expires, err
}

// authAdapter lets the auth package answer c2s's logins.
type authAdapter struct{ a *auth.Authenticator }

func (a authAdapter) Authenticate(ctx context.Context, c c2s.Credentials) error {
	return a.a.Authenticate(ctx, attempt(c))
}

// SCRAMCredentials serves c2s's SCRAM mechanisms (c2s.SCRAMAuthenticator).
func (a authAdapter) SCRAMCredentials(ctx context.Context, c c2s.Credentials) (auth.SCRAMCredentials, error) {
	return a.a.SCRAMCredentials(ctx, attempt(c))
}

// SCRAMDone counts a SCRAM exchange's outcome (c2s.SCRAMAuthenticator).
func (a authAdapter) SCRAMDone(ctx context.Context, c c2s.Credentials, err error) error {
	return a.a.SCRAMDone(ctx, attempt(c), err)
}

// attempt is c as the auth package's Attempt.
func attempt(c c2s.Credentials) auth.Attempt {
	return auth.Attempt{
		Mechanism: c.Mechanism,
		Host:      c.Host,
		Authzid:   c.Authzid,
		Username:  c.Username,
		Secret:    c.Secret,
		Remote:    c.Remote,
	}
}

// csiElements are the handlers of XEP-0352's <active/> and <inactive/>,
// top-level elements of a client stream that tell the csi module what the
// client's state is (modules do not know c2s: this adapter does).
func csiElements(m *csi.Module) map[xml.Name]c2s.ElementHandler {
	h := c2s.ElementHandlerFunc(func(_ context.Context, s *c2s.Session, el c2s.Element) error {
		m.SetActive(s, el.Name.Local == "active")
		return nil
	})
	return map[xml.Name]c2s.ElementHandler{
		{Space: csi.NS, Local: "active"}:   h,
		{Space: csi.NS, Local: "inactive"}: h,
	}
}

// c2sRouter lets the routing core take c2s's sessions: a session is one
// kind of router.Target.
type c2sRouter struct {
	core *router.Router
	csi  *csi.Module // a resumed stream starts active (XEP-0352 §4.2)
	ops  *ops        // the sessions listed and counted for the operator
}

func (r c2sRouter) Bind(ctx context.Context, s *c2s.Session) error {
	if err := r.core.Bind(ctx, s); err != nil {
		return err
	}
	r.ops.bound(ctx, s)
	return nil
}

func (r c2sRouter) Unbind(ctx context.Context, s *c2s.Session) {
	r.ops.unbound(s)
	r.core.Unbind(ctx, s)
}

func (r c2sRouter) Route(ctx context.Context, s *c2s.Session, st *element.Stanza) {
	r.ops.metrics.StanzaRouted(st.Name)
	r.core.Route(ctx, s, st)
}

// Reroute routes a message that s never got acknowledged (XEP-0198) again,
// as from the server (no sender session) to the user's bare JID, s being
// unbound: another resource, or offline storage (RFC 6121 §8.5.2).
func (r c2sRouter) Reroute(ctx context.Context, s *c2s.Session, st *element.Stanza) {
	// A copy: a message to the bare JID may have gone to other sessions
	// too, whose writers read it.
	st = st.Clone()
	st.To = s.JID().Bare()
	r.core.MessageToBare(ctx, nil, st)
}

// Resumed needs nothing of the core: s stayed bound while it waited. A
// stream begins active, a resumed one too (XEP-0352 §4.2 and its 0.2.1
// revision): what was held for s is delivered on the new connection.
func (r c2sRouter) Resumed(ctx context.Context, s *c2s.Session) {
	r.ops.resumed(ctx, s)
	r.csi.SetActive(s, true)
}
