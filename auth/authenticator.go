package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"ottr.im/ottr/storage"
)

// AccountStore is the storage the authenticator reads password hashes from.
type AccountStore interface {
	// PasswordHash returns the stored hash of host's user, or an error
	// wrapping storage.ErrNotFound. An empty hash means the account has no
	// password (it logs in with tokens only).
	PasswordHash(ctx context.Context, host, username string) (string, error)
}

// Options configure an Authenticator.
type Options struct {
	// Hosts maps each served domain to its token settings; a host whose
	// TokenParams has no OTPSeed refuses X-TOKEN.
	Hosts map[string]TokenParams
	// Accounts holds password accounts; nil refuses every PLAIN login.
	Accounts AccountStore
	// Replay remembers accepted tokens; nil gets a MemoryReplayCache of
	// DefaultReplayEntries.
	Replay ReplayCache
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// DefaultReplayEntries bounds the default replay cache: at 1,000 token
// logins a second each entry lives at most three 30 s windows, so 90,000
// entries are live at once; a million leaves room for bursts (about 80 MB
// at the worst).
const DefaultReplayEntries = 1 << 20

// Authenticator checks credentials for every served host. It is safe for
// concurrent use.
type Authenticator struct {
	hosts    map[string]*Verifier // nil value: tokens disabled on that host
	accounts AccountStore
	dummy    PasswordHash // checked for unknown users so they cost the same
}

// New returns an Authenticator for opts.
func New(opts Options) (*Authenticator, error) {
	if opts.Replay == nil {
		opts.Replay = NewMemoryReplayCache(DefaultReplayEntries)
	}
	a := &Authenticator{hosts: make(map[string]*Verifier), accounts: opts.Accounts}
	for host, p := range opts.Hosts {
		host = strings.ToLower(host)
		if p.OTPSeed == "" && p.TokenSecret == "" {
			a.hosts[host] = nil
			continue
		}
		v, err := NewVerifier(p, opts.Replay, opts.Now)
		if err != nil {
			return nil, fmt.Errorf("host %s: %w", host, err)
		}
		a.hosts[host] = v
	}
	dummy, err := HashPassword("ottr-dummy-password", DefaultPasswordIterations)
	if err != nil {
		return nil, err
	}
	a.dummy, _ = ParsePasswordHash(dummy)
	return a, nil
}

// Serves reports whether host is one of the configured hosts.
func (a *Authenticator) Serves(host string) bool {
	_, ok := a.hosts[strings.ToLower(host)]
	return ok
}

// Authenticate checks one login by mechanism ("X-TOKEN" or "PLAIN") of
// username (already nodeprepped) at host, with secret (the token or the
// password) and an optional authzid, which must name the same account. It
// returns nil or an *Error; the error never contains the secret.
func (a *Authenticator) Authenticate(ctx context.Context, mechanism, host, authzid, username, secret string) error {
	host = strings.ToLower(host)
	v, served := a.hosts[host]
	if !served {
		return &Error{Reason: ReasonBadCredentials, detail: "host not served"}
	}
	if authzid != "" && !strings.EqualFold(authzid, username+"@"+host) {
		return &Error{Reason: ReasonAuthz}
	}
	switch mechanism {
	case XToken.Name:
		if v == nil {
			return &Error{Reason: ReasonNoTokens}
		}
		return v.Verify(username, host, secret)
	case Plain.Name:
		return a.checkPassword(ctx, host, username, secret)
	default:
		return &Error{Reason: ReasonMalformed, detail: "unsupported mechanism"}
	}
}

func (a *Authenticator) checkPassword(ctx context.Context, host, username, password string) error {
	if a.accounts == nil {
		a.dummy.Check(password)
		return &Error{Reason: ReasonBadCredentials}
	}
	stored, err := a.accounts.PasswordHash(ctx, host, username)
	switch {
	case errors.Is(err, storage.ErrNotFound) || (err == nil && stored == ""):
		a.dummy.Check(password)
		return &Error{Reason: ReasonBadCredentials}
	case err != nil:
		return &Error{Reason: ReasonUnavailable, err: err}
	}
	h, err := ParsePasswordHash(stored)
	if err != nil {
		return &Error{Reason: ReasonUnavailable, err: err}
	}
	if !h.Check(password) {
		return &Error{Reason: ReasonBadCredentials}
	}
	return nil
}
