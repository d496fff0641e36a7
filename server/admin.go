package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stream"

	"ottr.im/ottr/auth"
	"ottr.im/ottr/c2s"
	"ottr.im/ottr/config"
	"ottr.im/ottr/metrics"
	"ottr.im/ottr/router"
)

// ops is what the server keeps for its operator: the metrics, and the
// bound c2s sessions with where they come from (for "ottr ctl sessions"
// and the ottr_sessions gauge).
type ops struct {
	metrics *metrics.Metrics

	mu       sync.Mutex
	sessions map[*c2s.Session]sessionInfo
}

// sessionInfo is what ops knows of one bound session.
type sessionInfo struct {
	transport string    // metrics.TransportTCP, ...
	remote    string    // the client's address
	since     time.Time // bound, or resumed on its current connection
}

// connInfo is what the server tells c2s's Router of a connection, through
// the context c2s.Serve is given (the session's context derives from it).
type connInfo struct {
	transport string
	remote    string
}

type connInfoKey struct{}

// withConnInfo returns ctx carrying what the server knows of conn: its
// transport (metrics.Transport*) and its client's address.
func withConnInfo(ctx context.Context, transport string, conn net.Conn) context.Context {
	return context.WithValue(ctx, connInfoKey{}, connInfo{transport: transport, remote: conn.RemoteAddr().String()})
}

// webTransport is the transport of a web session: "websocket" or "bosh".
func webTransport(conn net.Conn) string {
	if t, ok := conn.(interface{ Transport() string }); ok {
		return t.Transport()
	}
	return metrics.TransportWebSocket
}

func newOps(m *metrics.Metrics) *ops {
	return &ops{metrics: m, sessions: make(map[*c2s.Session]sessionInfo)}
}

// bound records s, bound over the connection that negotiated with ctx.
func (o *ops) bound(ctx context.Context, s *c2s.Session) {
	ci, _ := ctx.Value(connInfoKey{}).(connInfo)
	if ci.transport == "" {
		ci.transport = metrics.TransportTCP
	}
	o.mu.Lock()
	_, again := o.sessions[s]
	o.sessions[s] = sessionInfo{transport: ci.transport, remote: ci.remote, since: time.Now()}
	o.mu.Unlock()
	if !again {
		o.metrics.SessionBound(ci.transport)
	}
}

// resumed records that s goes on over the connection that negotiated
// with ctx (XEP-0198 resumption): its address and transport are that
// connection's now.
func (o *ops) resumed(ctx context.Context, s *c2s.Session) {
	ci, ok := ctx.Value(connInfoKey{}).(connInfo)
	if !ok {
		return
	}
	o.mu.Lock()
	old, known := o.sessions[s]
	if known {
		o.sessions[s] = sessionInfo{transport: ci.transport, remote: ci.remote, since: time.Now()}
	}
	o.mu.Unlock()
	if known && old.transport != ci.transport {
		o.metrics.SessionUnbound(old.transport)
		o.metrics.SessionBound(ci.transport)
	}
}

// unbound forgets s.
func (o *ops) unbound(s *c2s.Session) {
	o.mu.Lock()
	info, ok := o.sessions[s]
	delete(o.sessions, s)
	o.mu.Unlock()
	if ok {
		o.metrics.SessionUnbound(info.transport)
	}
}

// SessionInfo describes one bound client session, as "ottr ctl sessions"
// lists it.
type SessionInfo struct {
	// JID is the session's full JID.
	JID string `json:"jid"`
	// Transport is "tcp" (STARTTLS or direct TLS), "websocket" or "bosh".
	Transport string `json:"transport"`
	// Address is the client's address and port (behind a trusted proxy,
	// the proxy's).
	Address string `json:"address"`
	// Since is when the session was bound, or resumed on its current
	// connection.
	Since time.Time `json:"since"`
	// Client is the client's software, when it named itself (a SASL2
	// user agent); empty otherwise.
	Client string `json:"client,omitempty"`
	// Waiting reports a session whose connection broke and that waits
	// for its client to resume it (XEP-0198).
	Waiting bool `json:"waiting,omitempty"`
}

// Sessions returns the bound client sessions, sorted by JID.
func (s *Server) Sessions() []SessionInfo {
	s.ops.mu.Lock()
	out := make([]SessionInfo, 0, len(s.ops.sessions))
	for sess, info := range s.ops.sessions {
		out = append(out, SessionInfo{
			JID:       sess.JID().String(),
			Transport: info.transport,
			Address:   info.remote,
			Since:     info.since,
			Client:    sess.UserAgent(),
		})
	}
	s.ops.mu.Unlock()
	for i := range out {
		// Outside ops.mu: Waiting takes the session's lock.
		if j, err := jid.Parse(out[i].JID); err == nil {
			if sess, ok := s.router.Session(j).(*c2s.Session); ok {
				out[i].Waiting = sess.Waiting()
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].JID < out[j].JID })
	return out
}

// ErrNotBound is returned by Kick when no session is bound at the JID.
var ErrNotBound = errors.New("server: no session bound at that JID")

// Kick ends the sessions at addr, a full JID (one session) or a bare JID
// (every session of the account), with a not-authorized stream error
// whose text is reason, and returns how many it ended. A session waiting
// for stream-management resumption ends at once. Kick does not wait for
// the sessions to be over.
func (s *Server) Kick(addr jid.JID, reason string) (int, error) {
	if !s.router.Serves(addr.Domainpart()) || addr.Localpart() == "" {
		return 0, fmt.Errorf("server: %s is not a user of a served host", addr)
	}
	var targets []router.Target
	if addr.Resourcepart() == "" {
		targets = s.router.Resources(addr)
	} else if t := s.router.Session(addr); t != nil {
		targets = []router.Target{t}
	}
	if len(targets) == 0 {
		return 0, ErrNotBound
	}
	if reason == "" {
		reason = "ended by the administrator"
	}
	for _, t := range targets {
		t.Close(c2s.StreamError(stream.NotAuthorized, reason))
	}
	s.logger.Info("sessions kicked", "jid", addr.String(), "sessions", len(targets))
	s.ops.metrics.Kicked(len(targets))
	return len(targets), nil
}

// FastTokenStore deletes a user's FAST tokens (XEP-0484); storage/sqlite
// implements it.
type FastTokenStore interface {
	DeleteFastTokens(ctx context.Context, host, user string) (int, error)
}

// RevokeUser ends every session of the account bare and invalidates its
// FAST tokens, so that its clients cannot log in again without new
// credentials (a password, or a token from the app backend). It returns
// the sessions ended and the tokens deleted.
func (s *Server) RevokeUser(ctx context.Context, bare jid.JID) (sessions, tokens int, err error) {
	bare = bare.Bare()
	tokens, err = RevokeFastTokens(ctx, s.store, bare)
	if err != nil {
		return 0, 0, err
	}
	sessions, err = s.Kick(bare, "access revoked by the administrator")
	if errors.Is(err, ErrNotBound) {
		err = nil
	}
	return sessions, tokens, err
}

// RevokeFastTokens deletes the FAST tokens of bare from store and returns
// how many it deleted. "ottr user kick" calls it directly when no server
// runs.
func RevokeFastTokens(ctx context.Context, store FastTokenStore, bare jid.JID) (int, error) {
	n, err := store.DeleteFastTokens(ctx, bare.Domainpart(), bare.Localpart())
	if err != nil {
		return 0, fmt.Errorf("server: deleting the FAST tokens of %s: %w", bare, err)
	}
	return n, nil
}

// Stats are the figures "ottr ctl stats" prints.
type Stats struct {
	// Uptime is how long the server has run.
	Uptime time.Duration `json:"uptime_ns"`
	// Sessions counts the bound sessions by transport.
	Sessions map[string]int `json:"sessions"`
	// Connections is what limits.max_connections caps now.
	Connections int `json:"connections"`
	// Hosts are the served hosts.
	Hosts []string `json:"hosts"`
	// Accounts is how many accounts the served hosts hold.
	Accounts int `json:"accounts"`
	// Logins counts the SASL attempts since the start by result:
	// "success", or the failure condition.
	Logins map[string]int `json:"logins"`
	// Stanzas counts the stanzas clients sent, by kind.
	Stanzas map[string]int `json:"stanzas"`
}

// Stats returns the server's figures now.
func (s *Server) Stats(ctx context.Context) Stats {
	st := Stats{
		Uptime:      time.Since(s.started),
		Sessions:    map[string]int{metrics.TransportTCP: 0, metrics.TransportWebSocket: 0, metrics.TransportBOSH: 0},
		Connections: s.OpenConnections(),
		Logins:      s.ops.metrics.Sum("ottr_logins_total", "result"),
		Stanzas:     s.ops.metrics.Sum("ottr_stanzas_routed_total", "kind"),
	}
	s.ops.mu.Lock()
	for _, info := range s.ops.sessions {
		st.Sessions[info.transport]++
	}
	s.ops.mu.Unlock()
	for _, h := range s.cfg.Hosts {
		st.Hosts = append(st.Hosts, h.Name)
		if n, err := s.store.ListAccounts(ctx, h.Name); err == nil {
			st.Accounts += len(n)
		}
	}
	return st
}

// loginObserver counts c2s's logins and full send queues in the metrics.
type loginObserver struct{ m *metrics.Metrics }

func (o loginObserver) Login(mechanism, condition string) {
	if condition == "" {
		condition = metrics.LoginSuccess
	}
	o.m.Login(mechanism, condition)
}

func (o loginObserver) QueueFull() { o.m.QueueDropped() }

// startAdminHTTP opens [admin] listen, when set: /metrics, /healthz and
// /readyz.
func (s *Server) startAdminHTTP(ctx context.Context) error {
	addr := s.cfg.Admin.Listen
	if addr == "" {
		return nil
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("server: admin.listen on %s: %w", addr, err)
	}
	if !s.cfg.Admin.OnLoopback() {
		s.logger.Warn("the admin endpoint (metrics) is not on a loopback address: it has no authentication, keep it on a private network", "addr", l.Addr().String())
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.ops.metrics.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := s.Ready(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		// A scrape is one small request: nothing may hold a connection
		// open for long (the endpoint may not be on loopback).
		ReadTimeout:    10 * time.Second,
		WriteTimeout:   30 * time.Second,
		IdleTimeout:    60 * time.Second,
		MaxHeaderBytes: 8 << 10,
		ErrorLog:       slog.NewLogLogger(s.logger.With("component", "admin").Handler(), slog.LevelDebug),
	}
	s.adminLn, s.adminHTTP = l, srv
	s.logger.Info("listening", "addr", l.Addr().String(), "kind", "admin")
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("admin listener failed", "addr", l.Addr().String(), "err", err)
		}
	}()
	return nil
}

// AdminAddr returns the address of the admin endpoint, nil when
// [admin] listen is empty or the server has not started.
func (s *Server) AdminAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.adminLn == nil {
		return nil
	}
	return s.adminLn.Addr()
}

// Ready reports whether the server serves: its listeners are open and
// its storage answers (within 2 s), as /readyz does.
func (s *Server) Ready(ctx context.Context) error {
	s.mu.Lock()
	closed, open := s.closed, len(s.listeners)+len(s.httpLns)
	s.mu.Unlock()
	switch {
	case closed:
		return ErrServerClosed
	case open == 0:
		return errors.New("server: not listening yet")
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	start := time.Now()
	_, err := s.store.LastAccountDeletion(ctx)
	s.ops.metrics.Storage("ready", time.Since(start))
	if err != nil {
		return fmt.Errorf("server: storage does not answer: %w", err)
	}
	return nil
}

// authFailureLimits are the failure tables' settings of the limits in
// lim, told of refusals through m.
func authFailureLimits(lim config.Limits, m *metrics.Metrics) auth.FailureLimits {
	return auth.FailureLimits{
		PerAddress: lim.AuthFailuresAddress.PerSecond(),
		PerPair:    lim.AuthFailuresPair.PerSecond(),
		PerAccount: lim.AuthFailuresAccount.PerSecond(),
		Delay:      lim.AuthFailureDelay.Duration,
		Burst:      lim.AuthFailureBurst,
		Refused:    m.Refused,
	}
}
