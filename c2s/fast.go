package c2s

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"mellium.im/sasl"

	"ottr.im/ottr/auth"
)

// XEP-0484 FAST (urn:xmpp:fast:0) in SASL2 (sasl2.go): the token
// mechanisms offered, a login with a token, the tokens issued in
// <success/>.

// FastLogin is one login with a XEP-0484 FAST token, for
// FastAuthenticator.
type FastLogin struct {
	Mechanism string // HT-SHA-256-NONE or HT-SHA-256-ENDP
	Host      string // the domain the stream is addressed to
	Agent     string // the SASL2 user-agent id
	Message   []byte // the SASL initial response
	// Count is the client's count (<fast count=''/>), 0 when it gave
	// none; it must increase from one login with a token to the next.
	Count uint64
	// Invalidate asks for the token to be invalidated (<fast
	// invalidate='true'/>).
	Invalidate bool
	// ChannelBinding is the connection's tls-server-end-point data for
	// HT-SHA-256-ENDP, nil for HT-SHA-256-NONE.
	ChannelBinding []byte
	Remote         netip.Addr
}

// FastAuthenticator checks and issues XEP-0484 FAST tokens
// (Config.Fast). Errors follow Authenticator's: SASLCondition() chooses
// the condition, the text is logged and holds no secret.
type FastAuthenticator interface {
	// VerifyFast checks a login with a token and records its use.
	VerifyFast(ctx context.Context, l FastLogin) (FastVerified, error)
	// IssueFast makes a token for a user's client (agent) and mechanism,
	// bound to the channel binding data cb (nil for HT-SHA-256-NONE).
	IssueFast(ctx context.Context, host, user, agent, mechanism string, cb []byte) (token string, expires time.Time, err error)
}

// FastVerified is a successful login with a FAST token.
type FastVerified struct {
	User   string // the nodeprepped user
	Final  []byte // the server's final message
	Rotate bool   // the token is due for replacement: <success/> carries a new one
}

// fastRequest is FAST's <fast/> (a login with a token).
type fastRequest struct {
	Count      string `xml:"count,attr"`
	Invalidate string `xml:"invalidate,attr"`
}

// fastMechanisms are the FAST mechanisms this connection offers:
// HT-SHA-256-ENDP over TLS (the server's certificate known), and
// HT-SHA-256-NONE; none without Config.Fast, nor on a stream that is not
// encrypted (XEP-0484 §6: a token in clear could be replayed), which
// only c2s.require_tls = false allows.
func (n *negotiation) fastMechanisms() []string {
	if n.cfg.Fast == nil || (n.tlsConn == nil && !n.cfg.Secure) {
		return nil
	}
	if n.endpoint() != nil {
		return []string{auth.FastEndp, auth.FastNone}
	}
	return []string{auth.FastNone}
}

// endpoint is the connection's tls-server-end-point channel binding data
// (RFC 5929), nil when the stream is not over TLS here or the
// certificate is unknown. It is computed once.
func (n *negotiation) endpoint() []byte {
	if n.tlsConn == nil || n.cb != nil {
		return n.cb
	}
	cs := n.tlsConn.ConnectionState()
	if !cs.HandshakeComplete {
		return nil
	}
	cert, err := serverCertificate(n.cfg.TLS, cs.ServerName)
	if err != nil || cert == nil || len(cert.Certificate) == 0 {
		n.logger.Debug("no certificate for tls-server-end-point", "err", err)
		return nil
	}
	cb, err := n.cfg.endpoints.get(cert)
	if err != nil {
		n.logger.Debug("no tls-server-end-point", "err", err)
		return nil
	}
	n.cb = cb
	return cb
}

// endpointCache remembers the tls-server-end-point data of the last
// certificate it was asked for, so that a connection does not parse and
// hash the certificate again (a certificate changes on a reload only).
// Copies of a Config after WithDefaults share it.
type endpointCache struct{ last atomic.Pointer[endpointEntry] }

type endpointEntry struct {
	cert *tls.Certificate
	cb   []byte
}

// get returns the channel binding data of cert.
func (c *endpointCache) get(cert *tls.Certificate) ([]byte, error) {
	if e := c.last.Load(); e != nil && e.cert == cert {
		return e.cb, nil
	}
	cb, err := auth.TLSServerEndPoint(cert.Certificate[0])
	if err != nil {
		return nil, err
	}
	c.last.Store(&endpointEntry{cert: cert, cb: cb})
	return cb, nil
}

// serverCertificate is the certificate cfg presents to a client that
// asked for serverName, as crypto/tls chooses it.
func serverCertificate(cfg *tls.Config, serverName string) (*tls.Certificate, error) {
	if cfg == nil {
		return nil, errors.New("no TLS configuration")
	}
	hello := &tls.ClientHelloInfo{ServerName: serverName}
	if cfg.GetConfigForClient != nil {
		c, err := cfg.GetConfigForClient(hello)
		if err != nil {
			return nil, err
		}
		if c != nil {
			cfg = c
		}
	}
	if cfg.GetCertificate != nil {
		return cfg.GetCertificate(hello)
	}
	if len(cfg.Certificates) == 0 {
		return nil, errors.New("no certificate")
	}
	return &cfg.Certificates[0], nil
}

// fastLogin checks a login with a FAST token (XEP-0484), a single step.
func (n *negotiation) fastLogin(req *authenticateRequest, payload string) (final []byte, cond string, err error) {
	n.authErr = nil
	defer func() {
		if err == nil {
			n.cfg.observeLogin(req.Mechanism, cond)
		}
	}()
	msg, err := decodeSASL(payload)
	if err != nil || payload == "" {
		n.logger.Info("sasl failed", "mechanism", req.Mechanism, "reason", "incorrect encoding or no initial response")
		return nil, "incorrect-encoding", nil
	}
	login := FastLogin{
		Mechanism: req.Mechanism,
		Host:      n.host,
		Agent:     n.agent.ID,
		Message:   msg,
		Remote:    remoteAddr(n.conn),
	}
	if req.Fast != nil {
		if req.Fast.Count != "" {
			c, err := strconv.ParseUint(req.Fast.Count, 10, 63)
			if err != nil || c == 0 {
				n.logger.Info("sasl failed", "mechanism", req.Mechanism, "reason", "bad FAST count")
				return nil, "malformed-request", nil
			}
			login.Count = c
		}
		login.Invalidate = req.Fast.Invalidate == "true" || req.Fast.Invalidate == "1"
	}
	if req.Mechanism == auth.FastEndp {
		login.ChannelBinding = n.endpoint()
	}
	v, err := n.cfg.Fast.VerifyFast(n.ctx, login)
	if err != nil {
		n.authErr = err
		// The deferred call tells the observer, once.
		return nil, n.stepFailed(sasl.Mechanism{Name: req.Mechanism}, err), nil
	}
	n.user = v.User
	n.fastRotate = v.Rotate && !login.Invalidate
	return v.Final, "", nil
}

// fastToken issues the FAST token that goes in <success/>, if any: one
// asked for with <request-token/>, or the next one after a login with a
// token due for replacement (the used one stays valid until the new one
// is used, XEP-0484 §3.5). A login that invalidated its token gets
// one only when it asked. Issuing needs the client's user-agent id;
// failing to issue is logged, the login goes on.
func (n *negotiation) fastToken(req *authenticateRequest) []byte {
	if n.cfg.Fast == nil {
		return nil
	}
	mech := ""
	switch {
	case req.RequestToken != nil:
		mech = req.RequestToken.Mechanism
	case n.fastRotate:
		mech = req.Mechanism
	default:
		return nil
	}
	if !slices.Contains(n.fastMechanisms(), mech) || n.agent.ID == "" {
		n.logger.Info("no FAST token issued", "mechanism", mech, "reason", "mechanism not offered or no user-agent id")
		return nil
	}
	var cb []byte
	if mech == auth.FastEndp {
		cb = n.endpoint()
	}
	token, expires, err := n.cfg.Fast.IssueFast(n.ctx, n.host, n.user, n.agent.ID, mech, cb)
	if err != nil {
		n.logger.Warn("issuing a FAST token failed", "err", err)
		return nil
	}
	return fmt.Appendf(nil, "<token xmlns='%s' expiry='%s' token='%s'/>", nsFAST,
		expires.UTC().Format(time.RFC3339), escapeAttr(token))
}
