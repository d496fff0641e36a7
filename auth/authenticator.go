package auth

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"ottr.im/ottr/limit"
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
	// DefaultReplayEntries, in front of Claims when that is set.
	Replay ReplayCache
	// Claims, when Replay is nil, remembers accepted tokens durably so a
	// token used once is refused after a restart too; nil keeps them in
	// memory only.
	Claims ClaimStore
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// Failures limits failed logins; the zero value does not limit.
	Failures FailureLimits
}

// FailureLimits are token buckets of failed logins. They never refuse a
// valid token, and nothing done from one address can make a password
// login from another address fail:
//
//   - Every failed login (token or password) takes from the bucket of its
//     source address. While that is empty, password logins from the address
//     are refused with temporary-auth-failure before the password is
//     checked. Tokens are always checked: a valid one logs in.
//   - A failed password login also takes from the bucket of the pair
//     (address, account). While that is empty, password logins from that
//     address to that account are refused the same way.
//   - A failed password login also takes from the account's bucket. While
//     that is empty, the answer to each further failed password login for
//     the account is delayed by Delay: guessing from many addresses is
//     slowed, and the right password is never refused or delayed.
//
// Every table is bounded (see limit.Keyed): filled, it forgets its least
// recently used entries and never refuses a new one.
type FailureLimits struct {
	// PerAddress, PerPair and PerAccount are failures allowed per second
	// (0: no limit on that dimension); Burst is the size of every bucket.
	PerAddress, PerPair, PerAccount float64
	Burst                           int
	// Delay is how long a failed password answer waits while the
	// account's bucket is empty (0: no delay).
	Delay time.Duration
	// Refused, when set, is told of each password login refused and each
	// failed answer delayed, with the table's [limits] key (see
	// TableAddress, TablePair, TableAccount); it must not block.
	Refused func(table string)
}

// maxLimitKeys bounds the keys each failure table remembers at once; an
// entry is about 85 bytes whatever its key (measured), so a full table is
// some 5.5 MB, and the three together under 17 MB.
const maxLimitKeys = 1 << 16

// Attempt is one login.
type Attempt struct {
	// Mechanism is "X-TOKEN" or "PLAIN".
	Mechanism string
	// Host is the domain the client addressed.
	Host string
	// Authzid is the optional authorization identity.
	Authzid string
	// Username is already nodeprepped.
	Username string
	// Secret is the token or the password.
	Secret string
	// Remote is the client's address (the zero Addr when unknown).
	Remote netip.Addr
}

// DefaultReplayEntries bounds the default replay cache: at 1,000 token
// logins a second each entry lives at most three 30 s windows, so 90,000
// entries are live at once; a million leaves room for bursts (about 80 MB
// at the worst).
const DefaultReplayEntries = 1 << 20

// Authenticator checks credentials for every served host. It is safe for
// concurrent use.
type Authenticator struct {
	hosts    map[string]*Verifier // one per served host; without secrets it refuses tokens
	accounts AccountStore
	dummy    PasswordHash // checked for unknown users so they cost the same
	now      func() time.Time

	byAddress, byPair, byAccount *limit.Keyed // nil: not limited
	delay                        time.Duration
}

// New returns an Authenticator for opts.
func New(opts Options) (*Authenticator, error) {
	if opts.Replay == nil {
		mem := NewMemoryReplayCache(DefaultReplayEntries)
		opts.Replay = mem
		if opts.Claims != nil {
			opts.Replay = NewDurableReplayCache(mem, opts.Claims)
		}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	f := opts.Failures
	a := &Authenticator{hosts: make(map[string]*Verifier), accounts: opts.Accounts, now: opts.Now, delay: f.Delay}
	if f.PerAddress > 0 {
		a.byAddress = limit.NewKeyed(f.PerAddress, f.Burst, maxLimitKeys)
	}
	if f.PerPair > 0 {
		a.byPair = limit.NewKeyed(f.PerPair, f.Burst, maxLimitKeys)
	}
	if f.PerAccount > 0 {
		a.byAccount = limit.NewKeyed(f.PerAccount, f.Burst, maxLimitKeys)
	}
	a.observeFailures(f.Refused)
	for host, p := range opts.Hosts {
		host = strings.ToLower(host)
		// A host without secrets gets a verifier too, one that refuses
		// tokens until a reload gives it secrets (SetTokens).
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

// Authenticate checks one login and returns nil or an *Error; the error
// never contains the secret. The authzid, if any, must name the same
// account. Failed attempts are counted as FailureLimits says: a token is
// always checked, and a valid one always logs in; a password login may be
// refused unchecked while its address, or its address and account
// together, have failed too often.
func (a *Authenticator) Authenticate(ctx context.Context, at Attempt) error {
	if err := a.refused(at); err != nil {
		return err
	}
	return a.counted(ctx, at, a.check(ctx, strings.ToLower(at.Host), at))
}

// limitKeys are the keys of at in the failure tables ("" address key:
// the address is unknown).
func limitKeys(at Attempt) (addrKey, pairKey, acctKey string) {
	if at.Remote.IsValid() {
		addrKey = limit.AddressKey(at.Remote)
	}
	acctKey = at.Username + "@" + strings.ToLower(at.Host)
	return addrKey, addrKey + " " + acctKey, acctKey
}

// refused returns the error refusing a password login unchecked while its
// address, or its address and account together, have failed too often;
// nil for a token login.
func (a *Authenticator) refused(at Attempt) error {
	addrKey, pairKey, _ := limitKeys(at)
	now := a.now()
	if at.Mechanism != XToken.Name && addrKey != "" &&
		((a.byAddress != nil && !a.byAddress.Has(addrKey, now)) ||
			(a.byPair != nil && !a.byPair.Has(pairKey, now))) {
		return &Error{Reason: ReasonRateLimited}
	}
	return nil
}

// counted returns err, the outcome of checking at, after counting it
// against the failure limits when it is a failed login (not a malformed
// attempt or a storage failure); a failed password login for an account
// that failed too often waits Delay first.
func (a *Authenticator) counted(ctx context.Context, at Attempt, err error) error {
	var ae *Error
	if err == nil || !errors.As(err, &ae) || ae.Reason == ReasonUnavailable || ae.Reason == ReasonMalformed {
		return err
	}
	addrKey, pairKey, acctKey := limitKeys(at)
	now := a.now()
	if a.byAddress != nil && addrKey != "" {
		a.byAddress.Take(addrKey, now)
	}
	if at.Mechanism == XToken.Name {
		return err
	}
	if a.byPair != nil && addrKey != "" {
		a.byPair.Take(pairKey, now)
	}
	if a.byAccount != nil && a.delay > 0 && !a.byAccount.Allow(acctKey, now) {
		t := time.NewTimer(a.delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
	return err
}

func (a *Authenticator) check(ctx context.Context, host string, at Attempt) error {
	v, served := a.hosts[host]
	if !served {
		return &Error{Reason: ReasonBadCredentials, detail: "host not served"}
	}
	if at.Authzid != "" && !strings.EqualFold(at.Authzid, at.Username+"@"+host) {
		return &Error{Reason: ReasonAuthz}
	}
	switch at.Mechanism {
	case XToken.Name:
		if v == nil {
			return &Error{Reason: ReasonNoTokens}
		}
		return v.VerifyContext(ctx, at.Username, host, at.Secret)
	case Plain.Name:
		return a.checkPassword(ctx, host, at.Username, at.Secret)
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
