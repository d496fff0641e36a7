// Package c2s owns one client connection: stream negotiation with mellium
// (STARTTLS, SASL, resource binding), the read loop that stamps and hands
// each stanza to the Router, and the session's bounded outbound queue with
// its single writer goroutine; XEP-0198 stream management (acks, and
// sessions that wait for their client to resume them on a new
// connection, see sm.go).
//
// c2s knows nothing of rosters or routing rules: it declares the small
// Router and Authenticator interfaces it needs and the server satisfies
// them.
package c2s

import (
	"context"
	"crypto/tls"
	"encoding/xml"
	"fmt"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp/stream"

	"ottr.im/ottr/auth"
	"ottr.im/ottr/element"
)

// Namespaces of the stream features negotiated here.
const (
	nsSASL     = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsBind     = "urn:ietf:params:xml:ns:xmpp-bind"
	nsSession  = "urn:ietf:params:xml:ns:xmpp-session"
	nsStartTLS = "urn:ietf:params:xml:ns:xmpp-tls"
	nsStanzas  = "urn:ietf:params:xml:ns:xmpp-stanzas"
)

// Credentials are what one SASL attempt presented.
type Credentials struct {
	Mechanism string
	Host      string // the domain the stream is addressed to
	Authzid   string
	Username  string // nodeprepped by the mechanism
	Secret    string // the password or token
	Remote    netip.Addr
}

// Authenticator checks one SASL login. A failure should implement
// SASLCondition() string to choose the SASL failure condition (default
// not-authorized); its Error text is logged and must not hold the secret.
type Authenticator interface {
	Authenticate(ctx context.Context, c Credentials) error
}

// SCRAMAuthenticator is what the SCRAM mechanisms (RFC 5802, RFC 7677)
// need of the Authenticator besides Authenticate: the stored credentials
// of an account, and the count of an exchange's outcome. An
// Authenticator that implements it gets SCRAM-SHA-1 and SCRAM-SHA-256
// (and their -PLUS variants over TLS) served, when Config.Mechanisms
// names them.
type SCRAMAuthenticator interface {
	// SCRAMCredentials returns the credentials to check the client's
	// proof with: c has the mechanism, host, nodeprepped username,
	// authzid and address (no Secret). An unknown account gets decoy
	// credentials, not an error; an error (with SASLCondition) ends the
	// attempt.
	SCRAMCredentials(ctx context.Context, c Credentials) (auth.SCRAMCredentials, error)
	// SCRAMDone tells the outcome of the exchange whose credentials
	// SCRAMCredentials gave (err nil: logged in) and returns the error
	// to answer with.
	SCRAMDone(ctx context.Context, c Credentials, err error) error
}

// Router is what a session needs from the server. Its methods are called
// from the session's own read goroutine and must not block on another
// session: deliveries go through Session.Deliver.
type Router interface {
	// Bind makes s reachable at s.JID(). A session already bound to the
	// same full JID is closed with a conflict stream error. An error
	// (ideally a stanza.Error) refuses the bind. ctx is the negotiation's:
	// it ends with the server or at the negotiation timeout.
	Bind(ctx context.Context, s *Session) error
	// Unbind removes s; it is called once when a bound session ends, after
	// which s is never delivered to again. ctx is not cancelled (it is
	// context.WithoutCancel of s.Context()): the stream is over, and the
	// work of leaving (unavailable presence, last activity) still runs.
	Unbind(ctx context.Context, s *Session)
	// Route handles one stanza from s, its from already stamped with
	// s.JID(): local handling, delivery, or an error reply. ctx is
	// s.Context().
	Route(ctx context.Context, s *Session, st *element.Stanza)
	// Reroute takes back a message that a session with stream management
	// (XEP-0198) queued or sent but the client never acknowledged, once
	// the session was unbound for good: the server routes it again as to
	// the user's bare JID (another resource, or offline storage), so that
	// it is neither lost nor delivered twice. ctx is not cancelled.
	Reroute(ctx context.Context, s *Session, st *element.Stanza)
	// Resumed tells that s, bound before, now continues on the
	// connection negotiating with ctx (XEP-0198 resumption), after its
	// old connection broke.
	Resumed(ctx context.Context, s *Session)
}

// Element is a top-level element that a client sent on a bound stream
// and that is not a stanza, such as XEP-0352's <active/>.
type Element struct {
	// Name is the element's name, its namespace resolved.
	Name xml.Name
	// Raw is the element as the client sent it, checked well-formed and
	// within the limits. It may use a prefix declared on the stream
	// header (stream:). The handler may keep it.
	Raw []byte
}

// ElementHandler handles one kind of non-stanza element on a bound stream
// (Config.Elements).
//
// HandleElement runs on the session's read goroutine: the session reads
// nothing else until it returns, so it must not block on other sessions
// (deliver to them through their queues). It answers the client with
// s.DeliverRaw (or s.Deliver for a stanza), through the session's queue
// and writer; it never writes to the connection. ctx is s.Context().
// Returning nil goes on reading; returning an error ends the stream: with
// that stream error if it is (or wraps) a stream.Error, else with
// undefined-condition.
type ElementHandler interface {
	HandleElement(ctx context.Context, s *Session, el Element) error
}

// ElementHandlerFunc adapts a function to an ElementHandler.
type ElementHandlerFunc func(ctx context.Context, s *Session, el Element) error

// HandleElement calls f.
func (f ElementHandlerFunc) HandleElement(ctx context.Context, s *Session, el Element) error {
	return f(ctx, s, el)
}

// Config is shared by every connection of a listener.
type Config struct {
	// Serves reports whether a domain is one of ours.
	Serves func(domain string) bool
	// TLS is the server's TLS configuration, used for STARTTLS.
	TLS *tls.Config
	// RequireTLS refuses SASL before the stream is encrypted.
	RequireTLS bool
	// Secure says that the transport under the stream is already
	// encrypted, or is trusted to be (a WebSocket or BOSH session over
	// HTTPS or behind a TLS-terminating proxy): the stream starts in the
	// Secure state, so STARTTLS is not offered and RequireTLS is met.
	Secure bool
	// Mechanisms are the SASL mechanisms offered, in order of preference.
	// The SCRAM ones (by name, see auth.SCRAMMechanisms) are served by
	// auth.SCRAMServer when Auth is a SCRAMAuthenticator, and left out
	// otherwise; -PLUS ones are offered only over TLS here, with the
	// channel-binding types of XEP-0440 listed beside them.
	Mechanisms []sasl.Mechanism
	// Announce are informational stream features listed, as empty
	// elements with these attributes, once the client authenticated
	// (such as roster versioning, RFC 6121 §2.6.1, or the server's
	// XEP-0115 capabilities).
	Announce []xml.StartElement
	// Caps, when set, returns the server's XEP-0115 capabilities <c/>,
	// listed with Announce (§6.3). It is called at each listing, so
	// that features registered until the first session are in it.
	Caps func() xml.StartElement
	// Auth checks credentials.
	Auth Authenticator
	// Router receives bound sessions and their stanzas.
	Router Router
	// Observer, when set, is told of logins and of sessions closed with
	// a full send queue (for metrics).
	Observer Observer
	// Elements handle the top-level elements other than stanzas that a
	// client may send once bound, by name (such as XEP-0352's <active/>;
	// XEP-0198's are handled by c2s itself). Any other such element ends
	// the stream with unsupported-stanza-type. WithDefaults panics on a
	// nil handler, a stanza's name or XEP-0198's namespace.
	Elements map[xml.Name]ElementHandler
	// Bind2 are the session features a client may enable inline in a
	// XEP-0386 Bind2 request inside SASL2, by the name of the element it
	// puts in <bind/> (such as XEP-0280's <enable/>); each namespace is
	// advertised as an inline feature. XEP-0198's <enable/> is handled by
	// c2s itself.
	Bind2 map[xml.Name]InlineFeature
	// Fast checks and issues XEP-0484 FAST tokens; nil offers no FAST
	// mechanism.
	Fast FastAuthenticator
	// Logger is the parent logger; each connection adds its id and address.
	Logger *slog.Logger
	// NegotiateTimeout bounds the time from connect to a bound resource.
	NegotiateTimeout time.Duration
	// MaxAuthAttempts is the number of SASL attempts on one stream.
	MaxAuthAttempts int
	// QueueLen and QueueBytes bound the stanzas waiting for a slow reader;
	// past either, the session is closed.
	QueueLen   int
	QueueBytes int
	// Guard bounds the raw input before it is parsed.
	Guard GuardLimits
	// Keepalive is how long a bound session may go without the server
	// writing before a whitespace keepalive is sent; IdleTimeout how long
	// it may go without the client sending anything before it is closed
	// (both checked by Session.Tick). WriteTimeout bounds one write.
	Keepalive, IdleTimeout, WriteTimeout time.Duration
	// Limits bound every stanza read.
	Limits element.Limits
	// CloseGrace is how long to wait for the peer's closing stream tag
	// after ours before the socket is closed.
	CloseGrace time.Duration
	// ResumeTimeout is the longest a session with stream management
	// (XEP-0198) that asked for resumption waits for its client after
	// its connection broke: it keeps its resource, its presence and what
	// is delivered meanwhile, then ends as a dropped connection does. A
	// client's shorter max is honoured. 0 is 10 minutes; negative offers
	// acks without resumption.
	ResumeTimeout time.Duration
	// AckDelay is how long the server waits, after writing a stanza the
	// client has not acknowledged, before it asks for an ack with <r/>
	// (checked by Session.Tick; it also asks every 5 stanzas).
	AckDelay time.Duration

	ready   bool           // defaults applied
	connIDs *atomic.Uint64 // numbers the connections in the logs
	// resumable holds the sessions that may be resumed, by id; copies of
	// a Config made after WithDefaults share it, so that a session may be
	// resumed over any of the listeners (TCP, direct TLS, WebSocket).
	resumable *resumeTable
	// endpoints caches the certificate's tls-server-end-point (fast.go).
	endpoints *endpointCache
}

// WithDefaults returns a copy of c with every zero limit set to its
// default. Serve applies it itself when the caller did not, at the cost
// of a copy per connection.
func (c *Config) WithDefaults() *Config {
	if c.ready {
		return c
	}
	for name, h := range c.Elements {
		if h == nil || element.Is(name) || name.Space == nsSM {
			panic(fmt.Sprintf("c2s: Config.Elements: bad handler for {%s}%s: nil, a stanza's name, or stream management's (handled here)", name.Space, name.Local))
		}
	}
	d := *c
	d.ready = true
	d.connIDs = new(atomic.Uint64)
	if d.NegotiateTimeout == 0 {
		d.NegotiateTimeout = 30 * time.Second
	}
	if d.MaxAuthAttempts == 0 {
		d.MaxAuthAttempts = 5
	}
	if d.QueueLen == 0 {
		d.QueueLen = 1024
	}
	if d.QueueBytes == 0 {
		d.QueueBytes = 4 << 20
	}
	if d.Guard == (GuardLimits{}) {
		d.Guard = GuardLimits{MaxElement: 256 << 10, MaxDepth: 32, MaxAttributes: 64}
	}
	if d.Guard.MaxPrebind == 0 {
		d.Guard.MaxPrebind = 16 << 10
	}
	if d.Keepalive == 0 {
		d.Keepalive = 60 * time.Second
	}
	if d.IdleTimeout == 0 {
		d.IdleTimeout = 5 * time.Minute
	}
	if d.WriteTimeout == 0 {
		d.WriteTimeout = 30 * time.Second
	}
	if d.Limits == (element.Limits{}) {
		d.Limits = element.Limits{MaxTokens: 1 << 16, MaxBytes: d.Guard.MaxElement, MaxDepth: d.Guard.MaxDepth}
	}
	if d.CloseGrace == 0 {
		d.CloseGrace = 2 * time.Second
	}
	if d.ResumeTimeout == 0 {
		d.ResumeTimeout = DefaultResumeTimeout
	}
	if d.AckDelay == 0 {
		d.AckDelay = 5 * time.Second
	}
	d.resumable = newResumeTable()
	d.endpoints = new(endpointCache)
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	return &d
}

// StreamError returns e with text for the peer (none when text is
// empty): for the other transports that answer with stream errors.
func StreamError(e stream.Error, text string) stream.Error { return streamError(e, text) }

// streamError wraps a stream error with a text for the client.
func streamError(e stream.Error, text string) stream.Error {
	if text != "" {
		e.Text = append(e.Text, struct {
			Lang  string
			Value string
		}{Value: text})
	}
	return e
}
