// Package c2s owns one client connection: stream negotiation with mellium
// (STARTTLS, SASL, resource binding), the read loop that stamps and hands
// each stanza to the Router, and the session's bounded outbound queue with
// its single writer goroutine.
//
// c2s knows nothing of rosters or routing rules: it declares the small
// Router and Authenticator interfaces it needs and the server satisfies
// them.
package c2s

import (
	"context"
	"crypto/tls"
	"log/slog"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp/stream"

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

// Authenticator checks one SASL login. username is already nodeprepped;
// secret is the password or token. A failure should implement
// SASLCondition() string to choose the SASL failure condition (default
// not-authorized); its Error text is logged and must not hold the secret.
type Authenticator interface {
	Authenticate(ctx context.Context, mechanism, host, authzid, username, secret string) error
}

// Router is what a session needs from the server. Its methods are called
// from the session's own read goroutine and must not block on another
// session: deliveries go through Session.Deliver.
type Router interface {
	// Bind makes s reachable at s.JID(). A session already bound to the
	// same full JID is closed with a conflict stream error. An error
	// (ideally a stanza.Error) refuses the bind.
	Bind(s *Session) error
	// Unbind removes s; it is called once when a bound session ends, after
	// which s is never delivered to again.
	Unbind(s *Session)
	// Route handles one stanza from s, its from already stamped with
	// s.JID(): local handling, delivery, or an error reply.
	Route(s *Session, st *element.Stanza)
}

// Config is shared by every connection of a listener.
type Config struct {
	// Serves reports whether a domain is one of ours.
	Serves func(domain string) bool
	// TLS is the server's TLS configuration, used for STARTTLS.
	TLS *tls.Config
	// RequireTLS refuses SASL before the stream is encrypted.
	RequireTLS bool
	// Mechanisms are the SASL mechanisms offered, in order of preference.
	Mechanisms []sasl.Mechanism
	// Auth checks credentials.
	Auth Authenticator
	// Router receives bound sessions and their stanzas.
	Router Router
	// Logger is the parent logger; each connection adds its id and address.
	Logger *slog.Logger
	// NegotiateTimeout bounds the time from connect to a bound resource.
	NegotiateTimeout time.Duration
	// MaxAuthAttempts is the number of SASL attempts on one stream.
	MaxAuthAttempts int
	// QueueLen is the most stanzas waiting for a slow reader before the
	// session is closed.
	QueueLen int
	// Limits bound every stanza read.
	Limits element.Limits
	// CloseGrace is how long to wait for the peer's closing stream tag
	// after ours before the socket is closed.
	CloseGrace time.Duration
}

func (c *Config) withDefaults() *Config {
	d := *c
	if d.NegotiateTimeout == 0 {
		d.NegotiateTimeout = 30 * time.Second
	}
	if d.MaxAuthAttempts == 0 {
		d.MaxAuthAttempts = 5
	}
	if d.QueueLen == 0 {
		d.QueueLen = 1024
	}
	if d.Limits == (element.Limits{}) {
		d.Limits = element.DefaultLimits
	}
	if d.CloseGrace == 0 {
		d.CloseGrace = 2 * time.Second
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	return &d
}

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
