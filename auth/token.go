package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
)

// mod_auth_token's fixed settings, used when TokenParams leaves a field zero.
const (
	DefaultDigits    = 8
	DefaultInterval  = 30 * time.Second
	DefaultDeviation = 1

	// DefaultNonceDigits is the nonce length mod_auth_token's README mints,
	// and the one a token's nonce must have unless TokenParams says
	// otherwise.
	DefaultNonceDigits = 32
	// AnyNonceLength in TokenParams.NonceDigits accepts a nonce of any
	// length, as mod_auth_token does; tokens are then refused for
	// usernames that start with a digit (see TokenParams.NonceDigits).
	AnyNonceLength = -1
	// MaxNonceDigits is the longest fixed nonce length TokenParams accepts.
	MaxNonceDigits = 256

	// maxTokenLen bounds the work spent on one token; real tokens are about
	// 85 bytes (8-digit OTP, 32-digit nonce, space, 44 bytes of base64).
	maxTokenLen = 1024
	// macLen is the size of an HMAC-SHA-256.
	macLen = sha256.Size
)

// TokenParams are one virtual host's token settings, named as
// mod_auth_token names them.
type TokenParams struct {
	// OTPSeed is the base32 TOTP seed (pyotp.random_base32()).
	OTPSeed string
	// TokenSecret is the HMAC key; its ASCII bytes are the key.
	TokenSecret string
	// Digits of the OTP (default 8).
	Digits int
	// Interval is the TOTP step (default 30 s).
	Interval time.Duration
	// Deviation is how many steps either side of now still verify (default 1).
	// A negative value is treated as 0.
	Deviation int
	// NonceDigits is the exact length a token's nonce must have: 0 means
	// DefaultNonceDigits (32, what mod_auth_token's README mints),
	// AnyNonceLength any length.
	//
	// The MAC covers OTP + NONCE + user@host with no separator, so with
	// nonces of any length the digits at the start of a username can move
	// into the nonce: a token for 12345@host would also log in 2345@host
	// with the nonce one digit longer. A fixed length pins where the nonce
	// ends; with AnyNonceLength, usernames that start with a digit are
	// refused instead (Mint does not mint for them, Verify does not accept
	// them).
	NonceDigits int

	// PreviousOTPSeed and PreviousTokenSecret are the pair OTPSeed and
	// TokenSecret replace (secret rotation): until PreviousUntil, a
	// token minted with either pair verifies, so that an app backend can
	// switch pairs with no failed login. Both empty: no previous pair.
	// Mint uses the current pair only.
	PreviousOTPSeed     string
	PreviousTokenSecret string
	// PreviousUntil is the first instant the previous pair no longer
	// verifies.
	PreviousUntil time.Time
}

// previous returns the previous pair's parameters, and whether they
// verify at now.
func (p TokenParams) previous(now time.Time) (TokenParams, bool) {
	if p.PreviousOTPSeed == "" || !now.Before(p.PreviousUntil) {
		return TokenParams{}, false
	}
	q := p
	q.OTPSeed, q.TokenSecret = p.PreviousOTPSeed, p.PreviousTokenSecret
	q.PreviousOTPSeed, q.PreviousTokenSecret, q.PreviousUntil = "", "", time.Time{}
	return q, true
}

func (p TokenParams) withDefaults() TokenParams {
	if p.Digits == 0 {
		p.Digits = DefaultDigits
	}
	if p.Interval == 0 {
		p.Interval = DefaultInterval
	}
	if p.Deviation < 0 {
		p.Deviation = 0
	}
	if p.NonceDigits == 0 {
		p.NonceDigits = DefaultNonceDigits
	}
	return p
}

// validate checks that the parameters can mint and verify tokens.
func (p TokenParams) validate() error {
	if p.OTPSeed == "" || p.TokenSecret == "" {
		return errors.New("auth: otp_seed and token_secret are both required for tokens")
	}
	if _, err := DecodeSeed(p.OTPSeed); err != nil {
		return err
	}
	if p.Digits < 6 || p.Digits > 10 {
		return fmt.Errorf("auth: otp_digits %d out of range 6..10", p.Digits)
	}
	if p.Interval < time.Second || p.Interval%time.Second != 0 {
		return fmt.Errorf("auth: otp_interval %s must be a whole number of seconds", p.Interval)
	}
	if p.NonceDigits != AnyNonceLength && (p.NonceDigits < 1 || p.NonceDigits > MaxNonceDigits) {
		return fmt.Errorf("auth: nonce_digits %d out of range 1..%d (or AnyNonceLength)", p.NonceDigits, MaxNonceDigits)
	}
	if p.PreviousOTPSeed != "" || p.PreviousTokenSecret != "" {
		if p.PreviousOTPSeed == "" || p.PreviousTokenSecret == "" {
			return errors.New("auth: the previous otp_seed and token_secret go together")
		}
		if _, err := DecodeSeed(p.PreviousOTPSeed); err != nil {
			return fmt.Errorf("auth: previous pair: %w", err)
		}
	}
	return nil
}

// DecodeSeed decodes a base32 OTP seed the way pyotp does: case-insensitive,
// padding optional.
func DecodeSeed(seed string) ([]byte, error) {
	s := strings.ToUpper(strings.TrimSpace(seed))
	if n := len(s) % 8; n != 0 {
		s += strings.Repeat("=", 8-n)
	}
	b, err := base32.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("auth: otp_seed is not valid base32: %w", err)
	}
	if len(b) == 0 {
		return nil, errors.New("auth: otp_seed is empty")
	}
	return b, nil
}

// Token is a parsed X-TOKEN token. It carries no verdict: see Verifier.
type Token struct {
	OTP   string // the first Digits digits
	Nonce string // the remaining digits, possibly empty
	MAC   []byte // the decoded HMAC-SHA-256
}

// ParseToken splits a token into OTP, nonce and MAC. It accepts exactly the
// shape mod_auth_token's README mints: at least digits decimal digits, one
// space, standard base64 of a 32-byte MAC (padding optional). Anything else
// is ErrMalformed.
func ParseToken(token string, digits int) (Token, error) {
	if digits <= 0 {
		digits = DefaultDigits
	}
	if len(token) > maxTokenLen {
		return Token{}, malformed("token longer than %d bytes", maxTokenLen)
	}
	code, mac, ok := strings.Cut(token, " ")
	if !ok {
		return Token{}, malformed("no space between code and signature")
	}
	if len(code) < digits {
		return Token{}, malformed("code shorter than the %d-digit OTP", digits)
	}
	for i := 0; i < len(code); i++ {
		if code[i] < '0' || code[i] > '9' {
			return Token{}, malformed("code is not all digits")
		}
	}
	raw, err := base64.StdEncoding.DecodeString(mac)
	if err != nil {
		raw, err = base64.RawStdEncoding.DecodeString(mac)
	}
	if err != nil {
		return Token{}, malformed("signature is not base64")
	}
	if len(raw) != macLen {
		return Token{}, malformed("signature is %d bytes, want %d", len(raw), macLen)
	}
	return Token{OTP: code[:digits], Nonce: code[digits:], MAC: raw}, nil
}

// signature computes the token MAC for otp+nonce+jid.
func signature(secret, otpCode, nonce, jid string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(otpCode))
	m.Write([]byte(nonce))
	m.Write([]byte(jid))
	return m.Sum(nil)
}

func otpOpts(p TokenParams) hotp.ValidateOpts {
	return hotp.ValidateOpts{Digits: otp.Digits(p.Digits), Algorithm: otp.AlgorithmSHA1}
}

func counterAt(t time.Time, interval time.Duration) int64 {
	return t.Unix() / int64(interval/time.Second)
}

// Mint returns a token for jid (user@host, already nodeprepped) valid at
// now, with the given nonce (digits only; see NewNonce). It computes what
// mod_auth_token's README Python snippet computes. The nonce must have
// p's NonceDigits; with AnyNonceLength, a jid whose username starts with a
// digit is refused (a verifier would refuse the token).
func Mint(p TokenParams, jid string, now time.Time, nonce string) (string, error) {
	p = p.withDefaults()
	if err := p.validate(); err != nil {
		return "", err
	}
	for i := 0; i < len(nonce); i++ {
		if nonce[i] < '0' || nonce[i] > '9' {
			return "", errors.New("auth: nonce must be decimal digits")
		}
	}
	if err := p.checkNonce(len(nonce), jid); err != nil {
		return "", fmt.Errorf("auth: %s", err.detail)
	}
	code, err := hotp.GenerateCodeCustom(p.OTPSeed, uint64(counterAt(now, p.Interval)), otpOpts(p))
	if err != nil {
		return "", fmt.Errorf("auth: computing OTP: %w", err)
	}
	mac := signature(p.TokenSecret, code, nonce, jid)
	return code + nonce + " " + base64.StdEncoding.EncodeToString(mac), nil
}

// NewNonce returns n random decimal digits from crypto/rand (the README's
// snippet uses 32).
func NewNonce(n int) string {
	var b strings.Builder
	b.Grow(n)
	ten := big.NewInt(10)
	for i := 0; i < n; i++ {
		d, err := rand.Int(rand.Reader, ten)
		if err != nil {
			panic("auth: crypto/rand failed: " + err.Error())
		}
		b.WriteByte(byte('0' + d.Int64()))
	}
	return b.String()
}

// RandomBase32 returns n characters of random base32, as
// pyotp.random_base32(n) does; used for fresh otp_seed and token_secret
// values.
func RandomBase32(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("auth: crypto/rand failed: " + err.Error())
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// ConfigNonceDigits maps the configuration's nonce_digits, where 0 means
// any length, to TokenParams.NonceDigits, where 0 means the default.
func ConfigNonceDigits(n int) int {
	if n == 0 {
		return AnyNonceLength
	}
	return n
}

// checkNonce refuses a nonce of n digits for jid (user@host) when its
// digits could have come from the username: a nonce of the wrong length,
// or with AnyNonceLength a username that starts with a digit.
func (p TokenParams) checkNonce(n int, jid string) *Error {
	if p.NonceDigits == AnyNonceLength {
		if jid != "" && jid[0] >= '0' && jid[0] <= '9' {
			return &Error{Reason: ReasonNumericUser, detail: "a username that starts with a digit needs a fixed nonce_digits"}
		}
		return nil
	}
	if n != p.NonceDigits {
		return &Error{Reason: ReasonNonceLength, detail: fmt.Sprintf("nonce has %d digits, want %d", n, p.NonceDigits)}
	}
	return nil
}

// Verifier checks tokens for one virtual host. It is safe for concurrent
// use; SetParams changes its secrets while it verifies (a configuration
// reload).
type Verifier struct {
	p      atomic.Pointer[TokenParams] // nil: the host refuses tokens
	replay ReplayCache
	now    func() time.Time
}

// NewVerifier returns a verifier for p that records accepted tokens in
// replay and reads the time from now (time.Now when nil).
func NewVerifier(p TokenParams, replay ReplayCache, now func() time.Time) (*Verifier, error) {
	if replay == nil {
		return nil, errors.New("auth: a verifier needs a replay cache")
	}
	if now == nil {
		now = time.Now
	}
	v := &Verifier{replay: replay, now: now}
	if err := v.SetParams(p); err != nil {
		return nil, err
	}
	return v, nil
}

// SetParams replaces the verifier's settings and secrets: the next token
// verified uses them. Params with neither OTPSeed nor TokenSecret turn
// tokens off (every token is refused with ReasonNoTokens). Tokens already
// used stay refused: the replay cache is the same, and its key does not
// depend on the pair a token was minted with.
func (v *Verifier) SetParams(p TokenParams) error {
	pp, err := prepareParams(p)
	if err != nil {
		return err
	}
	v.p.Store(pp)
	return nil
}

// prepareParams returns p with its defaults, checked, or nil for params
// without secrets (tokens off).
func prepareParams(p TokenParams) (*TokenParams, error) {
	if p.OTPSeed == "" && p.TokenSecret == "" && p.PreviousOTPSeed == "" && p.PreviousTokenSecret == "" {
		return nil, nil
	}
	p = p.withDefaults()
	if err := p.validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// SetTokens replaces the token settings and secrets of the served hosts,
// as a configuration reload does: each host of hosts gets its params (a
// host left out keeps its own). Every params is checked before any is
// applied, so an error changes nothing; a host not served is an error
// (adding a host needs a restart). Logins in progress finish with the
// secrets they started with; tokens already used stay refused.
func (a *Authenticator) SetTokens(hosts map[string]TokenParams) error {
	ready := make(map[*Verifier]*TokenParams, len(hosts))
	for host, p := range hosts {
		v, ok := a.hosts[strings.ToLower(host)]
		if !ok || v == nil {
			return fmt.Errorf("auth: host %s is not served: adding a host needs a restart", host)
		}
		pp, err := prepareParams(p)
		if err != nil {
			return fmt.Errorf("host %s: %w", host, err)
		}
		ready[v] = pp
	}
	for v, pp := range ready {
		v.p.Store(pp)
	}
	return nil
}

// pairCheck is what one secret pair makes of a token: the OTP step it
// matched (-1: none) and whether the MAC matched.
type pairCheck struct {
	step  int64
	macOK bool
}

// checkPair computes the OTPs of p around now and the MAC of t for jid
// with p's pair, comparing both in constant time.
func checkPair(p TokenParams, t Token, jid string, now time.Time) (pairCheck, error) {
	c := counterAt(now, p.Interval)
	opts := otpOpts(p)
	res := pairCheck{step: -1}
	for k := c - int64(p.Deviation); k <= c+int64(p.Deviation); k++ {
		if k < 0 {
			continue
		}
		code, err := hotp.GenerateCodeCustom(p.OTPSeed, uint64(k), opts)
		if err != nil {
			return res, fmt.Errorf("computing OTP: %w", err)
		}
		if subtle.ConstantTimeCompare([]byte(code), []byte(t.OTP)) == 1 {
			res.step = k
		}
	}
	res.macOK = hmac.Equal(signature(p.TokenSecret, t.OTP, t.Nonce, jid), t.MAC)
	return res, nil
}

// Verify is VerifyContext with context.Background.
func (v *Verifier) Verify(username, domain, token string) error {
	return v.VerifyContext(context.Background(), username, domain, token)
}

// VerifyContext reports whether token logs in username (nodeprepped) at
// domain now. It returns nil exactly once per valid token; otherwise an
// *Error whose Reason says why (malformed, nonce length, numeric user,
// expired, bad MAC, replay, unavailable). The OTP and the MAC are compared
// in constant time, and both are always computed, so the time taken does
// not tell which check failed. ctx bounds the replay cache's work.
//
// While a previous pair is accepted (TokenParams.PreviousUntil), a token
// verifies with either pair; both are always computed then. A token is
// claimed in the replay cache under the same key whichever pair it was
// minted with, so it logs in once, not once per pair.
func (v *Verifier) VerifyContext(ctx context.Context, username, domain, token string) error {
	pp := v.p.Load()
	if pp == nil {
		return &Error{Reason: ReasonNoTokens}
	}
	p := *pp
	t, err := ParseToken(token, p.Digits)
	if err != nil {
		return err
	}
	jid := username + "@" + domain
	// The nonce length and the username are public: checking them first
	// tells an attacker nothing about the secrets.
	if err := p.checkNonce(len(t.Nonce), jid); err != nil {
		return err
	}
	now := v.now()
	res, err := checkPair(p, t, jid, now)
	if err != nil {
		return &Error{Reason: ReasonUnavailable, err: err}
	}
	if prev, ok := p.previous(now); ok {
		old, err := checkPair(prev, t, jid, now)
		if err != nil {
			return &Error{Reason: ReasonUnavailable, err: err}
		}
		// The pair that verifies the token wins; else the failure of the
		// pair that came closer (an OTP that matched).
		if (old.step >= 0 && old.macOK) || (res.step < 0 && old.step >= 0) {
			res = old
		}
	}
	matched := res.step
	switch {
	case matched < 0:
		return &Error{Reason: ReasonExpired}
	case !res.macOK:
		return &Error{Reason: ReasonBadMAC}
	}
	// The OTP of step matched verifies until the clock passes step
	// matched+Deviation; remember the token until then. Both pairs share
	// the interval and deviation.
	step := int64(p.Interval / time.Second)
	expires := time.Unix((matched+int64(p.Deviation)+1)*step, 0)
	fresh, err := v.replay.Claim(ctx, replayKey(jid, t), expires, now)
	if err != nil {
		return &Error{Reason: ReasonUnavailable, err: err}
	}
	if !fresh {
		return &Error{Reason: ReasonReplay}
	}
	return nil
}

// replayKey identifies one token for one JID in fixed space.
func replayKey(jid string, t Token) ReplayKey {
	h := sha256.New()
	h.Write([]byte(jid))
	h.Write([]byte{0})
	h.Write([]byte(t.OTP))
	h.Write([]byte{0})
	h.Write([]byte(t.Nonce))
	var k ReplayKey
	copy(k[:], h.Sum(nil))
	return k
}
