package auth

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"time"

	"ottr.im/ottr/internal/defaults"
	"ottr.im/ottr/storage"
)

// The XEP-0484 FAST mechanisms ottr offers, from
// draft-schmaus-kitten-sasl-ht: a token-keyed HMAC of "Initiator" and the
// channel binding data, none or tls-server-end-point (RFC 5929).
// HT-SHA-256-EXPR (tls-exporter) is not offered: its channel binding
// differs on every connection, so the server would need the token itself
// to check it, and ottr keeps only a hash of what a login sends.
const (
	FastNone = "HT-SHA-256-NONE"
	FastEndp = "HT-SHA-256-ENDP"
)

// DefaultFastLifetime is how long a FAST token is accepted by default.
const DefaultFastLifetime = 14 * 24 * time.Hour

// DefaultFastClients bounds the clients (user-agent ids) holding FAST
// tokens for one user; each holds at most two (the one in use and its
// successor).
const DefaultFastClients = 32

// MaxFastAgent bounds the length of a user-agent id that a token is bound
// to.
const MaxFastAgent = 256

// FastStore keeps FAST tokens (see the storagetest suite for the contract).
type FastStore interface {
	PutFastToken(ctx context.Context, t storage.FastToken, maxAgents int) error
	FastTokens(ctx context.Context, host, user, agent string) ([]storage.FastToken, error)
	UseFastToken(ctx context.Context, host, user, agent string, id []byte, count uint64) error
	DeleteFastToken(ctx context.Context, host, user, agent string, id []byte) error
	DeleteFastTokens(ctx context.Context, host, user string) (int, error)
}

// FastOptions configure a Fast.
type FastOptions struct {
	// Store keeps the tokens.
	Store FastStore
	// Lifetime is how long a token is accepted; 0 is DefaultFastLifetime.
	Lifetime time.Duration
	// MaxClients bounds the clients with tokens per user; 0 is
	// DefaultFastClients.
	MaxClients int
	// Rotation is the age from which a token used to log in is replaced:
	// the login's success carries a new one. 0 replaces it at every use.
	// Between rotations a login with the current token writes nothing
	// unless it gives a count.
	Rotation time.Duration
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// Fast issues and checks XEP-0484 FAST tokens. A token is 32 random bytes,
// base64url-encoded, given to the client once: the store keeps only the
// SHA-256 of the HMAC a login with it sends and the server's answer, both
// computed at issue for the token's mechanism and channel binding, so a
// copy of the database logs no one in. Tokens are bound to a user, a
// client (the SASL2 user-agent id) and a mechanism, and replaced when
// used past FastOptions.Rotation: the login's success carries the next
// one, and the older goes once the newer was used (XEP-0484 §3.5).
type Fast struct {
	store      FastStore
	lifetime   time.Duration
	rotation   time.Duration
	maxClients int
	now        func() time.Time
}

// NewFast returns a Fast for opts.
func NewFast(opts FastOptions) *Fast {
	f := &Fast{store: opts.Store, lifetime: opts.Lifetime, rotation: max(opts.Rotation, 0), maxClients: opts.MaxClients, now: opts.Now}
	defaults.Positive(&f.lifetime, DefaultFastLifetime)
	defaults.Positive(&f.maxClients, DefaultFastClients)
	if f.now == nil {
		f.now = time.Now
	}
	return f
}

// FastLogin is one login with a FAST token.
type FastLogin struct {
	// Mechanism is the FAST mechanism the client chose.
	Mechanism string
	// Host is the domain the stream is addressed to.
	Host string
	// Agent is the client's SASL2 user-agent id.
	Agent string
	// Message is the SASL initial response: authcid NUL HMAC.
	Message []byte
	// Count is the XEP-0484 count the client gave, 0 for none.
	Count uint64
	// Invalidate asks for the token to be invalidated by this login.
	Invalidate bool
	// ChannelBinding is the connection's data for the mechanism's
	// channel binding type (HT-SHA-256-ENDP: tls-server-end-point).
	ChannelBinding []byte
}

// FastResult is a successful FAST login.
type FastResult struct {
	// Username is the nodeprepped user who logged in.
	Username string
	// Final is the server's final message (the additional data of the
	// SASL2 success).
	Final []byte
	// Rotate says the token is due for replacement (FastOptions.Rotation):
	// the success should carry a new one.
	Rotate bool
}

// FastToken is a token issued to a client.
type FastToken struct {
	// Token is the secret, given to the client once.
	Token string
	// Expires is when it stops being accepted.
	Expires time.Time
}

// IsFast reports whether mechanism is one of the FAST mechanisms.
func IsFast(mechanism string) bool { return mechanism == FastNone || mechanism == FastEndp }

// htMessage is the HT mechanisms' HMAC of label and the channel binding
// data, keyed with the token's bytes.
func htMessage(token []byte, label string, cb []byte) []byte {
	m := hmac.New(sha256.New, token)
	m.Write([]byte(label))
	m.Write(cb)
	return m.Sum(nil)
}

// Verify checks a FAST login and records its use: the token is then the
// client's current one (older ones go) with the login's count, or, with
// Invalidate, it is gone. A login with the client's current token and no
// count changes nothing, so it writes nothing: the common reconnection
// costs one read. The error is an *Error: malformed for a message
// that is not authcid NUL 32 bytes, bad credentials for a token that is
// not the client's for this mechanism, expired (whose SASL condition is
// credentials-expired), or replay for a count not above the last one.
func (f *Fast) Verify(ctx context.Context, l FastLogin) (FastResult, error) {
	user, sum, err := splitHT(l.Message)
	if err != nil {
		return FastResult{}, err
	}
	if !IsFast(l.Mechanism) || l.Agent == "" || len(l.Agent) > MaxFastAgent || (l.Mechanism == FastEndp && len(l.ChannelBinding) == 0) {
		return FastResult{}, &Error{Reason: ReasonBadCredentials, detail: "no FAST login possible"}
	}
	tokens, err := f.store.FastTokens(ctx, l.Host, user, l.Agent)
	if err != nil {
		return FastResult{}, &Error{Reason: ReasonUnavailable, err: err}
	}
	id := sha256.Sum256(sum)
	var tok *storage.FastToken
	for i := range tokens {
		// Every token of the client is compared, in constant time.
		if subtle.ConstantTimeCompare(tokens[i].ID, id[:]) == 1 {
			tok = &tokens[i]
		}
	}
	switch {
	case tok == nil || tok.Mechanism != l.Mechanism:
		return FastResult{}, &Error{Reason: ReasonBadCredentials, detail: "no such FAST token"}
	case !f.now().Before(tok.Expires):
		return FastResult{}, fastExpired{&Error{Reason: ReasonExpired, detail: "FAST token expired"}}
	}
	older := slices.ContainsFunc(tokens, func(t storage.FastToken) bool { return t.Created.Before(tok.Created) })
	switch {
	case l.Invalidate:
		if err := f.store.DeleteFastToken(ctx, l.Host, user, l.Agent, tok.ID); err != nil {
			return FastResult{}, &Error{Reason: ReasonUnavailable, err: err}
		}
		return FastResult{Username: user, Final: tok.Responder}, nil
	case tok.Used && !older && l.Count == 0:
		// Already the client's current token, and no count to record.
	default:
		if err := f.use(ctx, l, user, tok); err != nil {
			return FastResult{}, err
		}
	}
	rotate := !f.now().Before(tok.Created.Add(f.rotation))
	return FastResult{Username: user, Final: tok.Responder, Rotate: rotate}, nil
}

// use records a login with tok: used, with the login's count (refused as
// a replay when not above the last one), the client's older tokens gone.
func (f *Fast) use(ctx context.Context, l FastLogin, user string, tok *storage.FastToken) error {
	if err := f.store.UseFastToken(ctx, l.Host, user, l.Agent, tok.ID, l.Count); err != nil {
		switch {
		case errors.Is(err, storage.ErrFastReplay):
			return &Error{Reason: ReasonReplay, detail: fmt.Sprintf("FAST count %d not above the last one", l.Count)}
		case errors.Is(err, storage.ErrNotFound):
			// Invalidated or rotated away meanwhile.
			return &Error{Reason: ReasonBadCredentials, detail: "no such FAST token"}
		}
		return &Error{Reason: ReasonUnavailable, err: err}
	}
	return nil
}

// Issue makes a new token for a user's client and mechanism, with the
// connection's channel binding data for that mechanism (none for
// HT-SHA-256-NONE), and stores what checks it. The client's unused tokens
// go.
func (f *Fast) Issue(ctx context.Context, host, user, agent, mechanism string, cb []byte) (FastToken, error) {
	switch {
	case !IsFast(mechanism):
		return FastToken{}, fmt.Errorf("auth: FAST mechanism %q not offered", mechanism)
	case agent == "" || len(agent) > MaxFastAgent:
		return FastToken{}, errors.New("auth: a FAST token needs a user-agent id of 1 to 256 bytes")
	case mechanism == FastEndp && len(cb) == 0:
		return FastToken{}, errors.New("auth: HT-SHA-256-ENDP without channel binding data")
	case mechanism == FastNone:
		cb = nil
	}
	raw := make([]byte, 32)
	rand.Read(raw)
	token := base64.RawURLEncoding.EncodeToString(raw)
	now := f.now()
	id := sha256.Sum256(htMessage([]byte(token), "Initiator", cb))
	t := storage.FastToken{
		Host: host, Username: user, Agent: agent, Mechanism: mechanism,
		ID: id[:], Responder: htMessage([]byte(token), "Responder", cb),
		Expires: now.Add(f.lifetime).Truncate(time.Second), Created: now,
	}
	if err := f.store.PutFastToken(ctx, t, f.maxClients); err != nil {
		return FastToken{}, fmt.Errorf("auth: issue FAST token: %w", err)
	}
	return FastToken{Token: token, Expires: t.Expires}, nil
}

// Revoke removes every FAST token of a user and says how many there were:
// what an administrator's revocation calls (a password change and the
// account's deletion remove them in the store).
func (f *Fast) Revoke(ctx context.Context, host, user string) (int, error) {
	return f.store.DeleteFastTokens(ctx, host, user)
}

// fastExpired is a login with a FAST token past its expiry: XEP-0484 §4.2
// answers credentials-expired, and the client falls back to another
// mechanism. It matches its *Error with errors.Is and errors.As.
type fastExpired struct{ err *Error }

// Error implements error.
func (e fastExpired) Error() string { return e.err.Error() }

// SASLCondition is credentials-expired.
func (fastExpired) SASLCondition() string { return "credentials-expired" }

// Unwrap returns the *Error.
func (e fastExpired) Unwrap() error { return e.err }

// splitHT parses an HT initial response: the authcid, NUL, and the
// 32-byte HMAC. The username is nodeprepped.
func splitHT(msg []byte) (user string, sum []byte, err error) {
	name, sum, ok := bytes.Cut(msg, []byte{0})
	if !ok || len(name) == 0 || len(name) > 1023 || len(sum) != sha256.Size {
		return "", nil, malformed("want authcid NUL 32-byte HMAC")
	}
	user, err = Nodeprep(string(name))
	if err != nil {
		return "", nil, err
	}
	return user, sum, nil
}
