package auth

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"ottr.im/ottr/storage"
)

// A stored password hash (see HashPassword) is one or more parts joined
// by ';', each
//
//	SCHEME$ITERATIONS$BASE64(SALT)$BASE64(SALTED_PASSWORD)
//
// with SCHEME pbkdf2-sha256 (always first: SCRAM-SHA-256 and PLAIN) or
// pbkdf2-sha1 (SCRAM-SHA-1, stored from the first password change after
// SCRAM-SHA-1 came; older hashes have no such part).
const (
	hashPartSep        = ";"
	passwordSchemeSHA1 = "pbkdf2-sha1"
)

// sha1Part returns the pbkdf2-sha1 part of a stored hash for password,
// with a salt of its own.
func sha1Part(password string, iterations int) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("auth: reading salt: %w", err)
	}
	key, err := pbkdf2.Key(sha1.New, password, salt, iterations, sha1.Size)
	if err != nil {
		return "", fmt.Errorf("auth: hashing password: %w", err)
	}
	return strings.Join([]string{
		passwordSchemeSHA1,
		strconv.Itoa(iterations),
		base64.StdEncoding.EncodeToString(salt),
		base64.StdEncoding.EncodeToString(key),
	}, "$"), nil
}

// ErrNoSCRAMCredentials says that a stored hash has no credentials for a
// SCRAM mechanism's hash (SHA-1 for a password set before they were
// stored).
var ErrNoSCRAMCredentials = errors.New("auth: no credentials for this SCRAM hash")

// StoredSCRAM returns the SCRAM credentials for mechanism kept in a stored
// hash (what HashPassword returns), or an error wrapping
// ErrNoSCRAMCredentials when it has none for the mechanism's hash.
func StoredSCRAM(stored, mechanism string) (SCRAMCredentials, error) {
	h, ok := SCRAMHash(mechanism)
	if !ok {
		return SCRAMCredentials{}, fmt.Errorf("auth: %q is not a SCRAM mechanism", mechanism)
	}
	scheme, size := passwordScheme, sha256.Size
	if h().Size() == sha1.Size {
		scheme, size = passwordSchemeSHA1, sha1.Size
	}
	for part := range strings.SplitSeq(stored, hashPartSep) {
		fields := strings.Split(part, "$")
		if len(fields) != 4 || fields[0] != scheme {
			continue
		}
		iter, err := strconv.Atoi(fields[1])
		if err != nil || iter <= 0 {
			return SCRAMCredentials{}, errors.New("auth: bad iteration count in password hash")
		}
		salt, err := base64.StdEncoding.DecodeString(fields[2])
		if err != nil || len(salt) == 0 {
			return SCRAMCredentials{}, errors.New("auth: bad salt in password hash")
		}
		key, err := base64.StdEncoding.DecodeString(fields[3])
		if err != nil || len(key) != size {
			return SCRAMCredentials{}, errors.New("auth: bad key in password hash")
		}
		return NewSCRAMCredentials(h, salt, iter, key), nil
	}
	return SCRAMCredentials{}, fmt.Errorf("%w (%s)", ErrNoSCRAMCredentials, mechanism)
}

// PasswordMechanisms returns the SASL mechanisms a stored hash lets an
// account log in with ("" hash: none, a token-only account). The -PLUS
// variants go with their mechanism.
func PasswordMechanisms(stored string) []string {
	if stored == "" {
		return nil
	}
	mechs := []string{Plain.Name}
	for _, m := range []string{SCRAMSHA256, SCRAMSHA1} {
		if _, err := StoredSCRAM(stored, m); err == nil {
			mechs = append(mechs, m, m+"-PLUS")
		}
	}
	return mechs
}

// DecoyCredentials returns made-up credentials for username on host for
// mechanism's hash: the same salt every time for the same name (within
// this Authenticator's life), the default iteration count, and keys no
// proof matches. An exchange for an account that does not exist looks
// like one for an account that does, and fails at the proof. The key is
// the dummy hash's salted password, random for each Authenticator.
func (a *Authenticator) DecoyCredentials(host, username, mechanism string) SCRAMCredentials {
	h, _ := SCRAMHash(mechanism)
	if h == nil {
		h = sha256.New
	}
	m := hmac.New(sha256.New, a.dummy.SaltedPassword)
	m.Write([]byte(mechanism + "\x00" + host + "\x00" + username))
	sum := m.Sum(nil)
	size := h().Size()
	return SCRAMCredentials{
		Salt:       sum[:saltLen],
		Iterations: DefaultPasswordIterations,
		StoredKey:  make([]byte, size),
		ServerKey:  make([]byte, size),
		decoy:      true,
	}
}

// SCRAMCredentials returns the credentials one SCRAM exchange checks the
// client's proof with: at names the mechanism, the host, the nodeprepped
// username, the authzid and the client's address (its Secret is unused).
// It counts as a password login for the failure limits: refused with
// ReasonRateLimited while they are exhausted. An unknown user, or a
// token-only account, gets decoy credentials (the exchange then fails at
// the proof, as with a wrong password). An account whose stored hash has
// no credentials for the mechanism's hash (SCRAM-SHA-1 for a password
// set before they were stored) is refused with ReasonNoSCRAMCredentials
// (mechanism-too-weak), counted as a failed login.
func (a *Authenticator) SCRAMCredentials(ctx context.Context, at Attempt) (SCRAMCredentials, error) {
	host := strings.ToLower(at.Host)
	if err := a.refused(at); err != nil {
		return SCRAMCredentials{}, err
	}
	if _, served := a.hosts[host]; !served {
		return a.DecoyCredentials(host, at.Username, at.Mechanism), nil
	}
	if at.Authzid != "" && !strings.EqualFold(at.Authzid, at.Username+"@"+host) {
		return SCRAMCredentials{}, a.counted(ctx, at, &Error{Reason: ReasonAuthz})
	}
	if a.accounts == nil {
		return a.DecoyCredentials(host, at.Username, at.Mechanism), nil
	}
	stored, err := a.accounts.PasswordHash(ctx, host, at.Username)
	switch {
	case errors.Is(err, storage.ErrNotFound) || (err == nil && stored == ""):
		return a.DecoyCredentials(host, at.Username, at.Mechanism), nil
	case err != nil:
		return SCRAMCredentials{}, &Error{Reason: ReasonUnavailable, err: err}
	}
	creds, err := StoredSCRAM(stored, at.Mechanism)
	switch {
	case errors.Is(err, ErrNoSCRAMCredentials):
		return SCRAMCredentials{}, a.counted(ctx, at, &Error{Reason: ReasonNoSCRAMCredentials, detail: at.Mechanism})
	case err != nil:
		return SCRAMCredentials{}, &Error{Reason: ReasonUnavailable, err: err}
	}
	return creds, nil
}

// SCRAMDone records the outcome of a SCRAM exchange whose credentials
// SCRAMCredentials returned: err is what SCRAMServer.Step returned at the
// client-final-message (nil: logged in). A failed proof counts against
// the failure limits as a wrong password does (and may wait Delay); the
// error returned is the one to answer with.
func (a *Authenticator) SCRAMDone(ctx context.Context, at Attempt, err error) error {
	return a.counted(ctx, at, err)
}
