// Package component accepts external components (XEP-0114, the Jabber
// Component Protocol, jabber:component:accept): an app server, a bot or a
// bridge that lives beside the server on its own domain.
//
// Each configured service (a domain and a shared secret) is handed to the
// routing core with AddDomain when the Server is made, so stanzas to the
// domain and its JIDs come here whether or not the component is
// connected: while it is not, the sender gets a wait error
// (remote-server-timeout, "component unavailable"). A
// connection opens a stream to the domain, gets the server's stream
// header with an id, and proves the secret with
// <handshake>hex(SHA-1(id + secret))</handshake> (XEP-0114 §3), compared
// in constant time; a bad proof ends with not-authorized, an unknown
// domain with host-unknown, a second connection for a connected domain
// with conflict. The input before the handshake is bounded by the
// pre-bind limits, after it by the stanza limits, and checked by the
// client sessions' framer (c2s.Framer).
//
// After the handshake the connection is a router.Target for the domain:
// stanzas for it are queued (bounded) and written by one writer
// goroutine; stanzas from it must come from its domain (else
// invalid-from, as XEP-0114 §4 and RFC 6120 §4.9.3.10 say) and go to the
// core's RouteInbound. An iq request routed to the component is
// remembered (bounded) so that its response goes back to whoever asked,
// even a server module that is not a bound session (push, XEP-0357).
package component

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"ottr.im/ottr/c2s"
	"ottr.im/ottr/element"
	"ottr.im/ottr/router"
)

// NS is the namespace of a component's stream (XEP-0114).
const NS = "jabber:component:accept"

// Service is one component the server accepts.
type Service struct {
	// Name is the component's domain.
	Name string
	// Secret is the secret shared with the component.
	Secret string
}

// Core is what components need of the routing core (*router.Router).
type Core interface {
	// AddDomain hands every stanza to domain and its JIDs to h.
	AddDomain(domain string, h router.DomainHandler) error
	// RouteInbound routes a stanza from a trusted non-client entity.
	RouteInbound(ctx context.Context, from router.Target, st *element.Stanza)
	// Bounce answers st with a stanza error to from.
	Bounce(from router.Target, st *element.Stanza, e stanza.Error)
	// Deliver queues st to t after the StanzaDeliver hooks.
	Deliver(t router.Target, st *element.Stanza)
}

// Config configures a Server. Zero limits take the defaults of a client
// session's (c2s.Config.WithDefaults).
type Config struct {
	// Services are the components accepted.
	Services []Service
	// Core is the routing core.
	Core Core
	// Guard bounds the raw input: MaxPrebind until the handshake
	// succeeded, then MaxElement, MaxDepth and MaxAttributes.
	Guard c2s.GuardLimits
	// Limits bound every stanza read.
	Limits element.Limits
	// HandshakeTimeout bounds the time from connect to a successful
	// handshake.
	HandshakeTimeout time.Duration
	// WriteTimeout bounds one write; CloseGrace is how long the peer has
	// to close its stream after ours.
	WriteTimeout, CloseGrace time.Duration
	// QueueLen and QueueBytes bound the stanzas waiting for a slow
	// component; past either, it is disconnected.
	QueueLen, QueueBytes int
	// MaxPendingIQ bounds the iq requests routed to one component whose
	// response is awaited.
	MaxPendingIQ int
	// Logger is the parent logger.
	Logger *slog.Logger
}

// withDefaults returns a copy of c with every zero limit set to the
// default a client session's (c2s.Config.WithDefaults) has.
func (c Config) withDefaults() Config {
	d := (&c2s.Config{
		Guard: c.Guard, Limits: c.Limits, NegotiateTimeout: c.HandshakeTimeout,
		WriteTimeout: c.WriteTimeout, CloseGrace: c.CloseGrace,
		QueueLen: c.QueueLen, QueueBytes: c.QueueBytes, Logger: c.Logger,
	}).WithDefaults()
	c.Guard, c.Limits, c.HandshakeTimeout = d.Guard, d.Limits, d.NegotiateTimeout
	c.WriteTimeout, c.CloseGrace = d.WriteTimeout, d.CloseGrace
	c.QueueLen, c.QueueBytes, c.Logger = d.QueueLen, d.QueueBytes, d.Logger
	c.Guard.MaxPrebind = min(c.Guard.MaxPrebind, c.Guard.MaxElement)
	if c.MaxPendingIQ == 0 {
		c.MaxPendingIQ = 1024
	}
	return c
}

// Server accepts the connections of the configured components.
type Server struct {
	cfg     Config
	secrets map[string]string // domain -> secret
	ids     atomic.Uint64     // numbers the connections in the logs

	mu    sync.Mutex
	conns map[string]*Conn // domain -> its connection, once it shook hands
}

// New returns a Server for cfg.Services and hands each service's domain to
// the core. It is called before the core starts.
func New(cfg Config) (*Server, error) {
	if cfg.Core == nil {
		return nil, errors.New("component: no core")
	}
	cfg = cfg.withDefaults()
	s := &Server{cfg: cfg, secrets: make(map[string]string), conns: make(map[string]*Conn)}
	for _, svc := range cfg.Services {
		d, err := jid.New("", svc.Name, "")
		if err != nil || svc.Name == "" {
			return nil, fmt.Errorf("component: bad name %q: %v", svc.Name, err)
		}
		name := d.Domainpart()
		if svc.Secret == "" {
			return nil, fmt.Errorf("component: %s has no secret", name)
		}
		if _, dup := s.secrets[name]; dup {
			return nil, fmt.Errorf("component: %s configured twice", name)
		}
		if err := cfg.Core.AddDomain(name, domain{s: s, name: name}); err != nil {
			return nil, fmt.Errorf("component: %w", err)
		}
		s.secrets[name] = svc.Secret
	}
	return s, nil
}

// Connected returns the connection of the component for domain, nil when
// it is not connected.
func (s *Server) Connected(domain string) *Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns[strings.ToLower(domain)]
}

// claim makes c the connection of its domain, unless one is already.
func (s *Server) claim(c *Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns[c.name] != nil {
		return false
	}
	s.conns[c.name] = c
	return true
}

// release forgets c as its domain's connection.
func (s *Server) release(c *Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns[c.name] == c {
		delete(s.conns, c.name)
	}
}

// CloseAll ends every component connection with e's condition.
func (s *Server) CloseAll(e error) {
	s.mu.Lock()
	conns := make([]*Conn, 0, len(s.conns))
	for _, c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.closeWith(e)
	}
}

// domain is the core's handler for one component's domain.
type domain struct {
	s    *Server
	name string
}

// HandleStanza queues st to the component, or answers with a wait error
// (remote-server-timeout, as Prosody's mod_component does) when it is not
// connected or cannot take more.
func (d domain) HandleStanza(ctx context.Context, from router.Target, st *element.Stanza) {
	c := d.s.Connected(d.name)
	if c == nil || !c.forward(from, st) {
		d.s.cfg.Core.Bounce(from, st, stanza.Error{Type: stanza.Wait, Condition: stanza.RemoteServerTimeout, Text: map[string]string{
			"": "component unavailable",
		}})
	}
}
