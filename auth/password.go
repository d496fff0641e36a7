package auth

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// DefaultPasswordIterations is the PBKDF2 iteration count for new password
// hashes, as Prosody uses for SCRAM.
const DefaultPasswordIterations = 10000

const (
	passwordScheme = "pbkdf2-sha256"
	saltLen        = 16
)

// HashPassword returns a salted, iterated hash of password in the form
//
//	pbkdf2-sha256$ITERATIONS$BASE64(SALT)$BASE64(SALTED_PASSWORD)
//
// SALTED_PASSWORD is PBKDF2-HMAC-SHA-256(password, salt, iterations, 32),
// which is exactly SCRAM-SHA-256's SaltedPassword (RFC 7677), so accounts
// stored today can log in with SCRAM later without knowing the password.
// A second part, after ';', holds the same for SCRAM-SHA-1 with a salt of
// its own (see StoredSCRAM); hashes written before it have none.
// The password is prepared with the OpaqueString profile by the caller's
// mechanism; here it is used as given.
func HashPassword(password string, iterations int) (string, error) {
	if iterations <= 0 {
		iterations = DefaultPasswordIterations
	}
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("auth: reading salt: %w", err)
	}
	key, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return "", fmt.Errorf("auth: hashing password: %w", err)
	}
	sha1, err := sha1Part(password, iterations)
	if err != nil {
		return "", err
	}
	return strings.Join([]string{
		passwordScheme,
		strconv.Itoa(iterations),
		base64.StdEncoding.EncodeToString(salt),
		base64.StdEncoding.EncodeToString(key),
	}, "$") + hashPartSep + sha1, nil
}

// PasswordHash is a parsed stored hash.
type PasswordHash struct {
	Iterations     int
	Salt           []byte
	SaltedPassword []byte
}

// ParsePasswordHash parses what HashPassword returns.
func ParsePasswordHash(s string) (PasswordHash, error) {
	s, _, _ = strings.Cut(s, hashPartSep) // the SHA-256 part comes first
	parts := strings.Split(s, "$")
	if len(parts) != 4 || parts[0] != passwordScheme {
		return PasswordHash{}, errors.New("auth: unknown password hash format")
	}
	iter, err := strconv.Atoi(parts[1])
	if err != nil || iter <= 0 {
		return PasswordHash{}, errors.New("auth: bad iteration count in password hash")
	}
	salt, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil {
		return PasswordHash{}, fmt.Errorf("auth: bad salt in password hash: %w", err)
	}
	key, err := base64.StdEncoding.DecodeString(parts[3])
	if err != nil || len(key) != sha256.Size {
		return PasswordHash{}, errors.New("auth: bad key in password hash")
	}
	return PasswordHash{Iterations: iter, Salt: salt, SaltedPassword: key}, nil
}

// Check reports whether password matches, in time independent of where
// they differ.
func (h PasswordHash) Check(password string) bool {
	key, err := pbkdf2.Key(sha256.New, password, h.Salt, h.Iterations, sha256.Size)
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare(key, h.SaltedPassword) == 1
}
