// Package testfixture holds the secrets and the token minting that every
// package's tests share: one seed, one secret, one host name.
//
// It imports only auth, so that the internal tests of the packages server
// imports (c2s, router, the modules, config) can use it without an import
// cycle; the configuration and the running server built on these values
// are in testfixture/testserver.
package testfixture

import (
	"testing"
	"time"

	"ottr.im/ottr/auth"
)

// The seed and secret of mod_auth_token's README and config.toml.example,
// the host the tests serve, and a second seed and secret for a second
// host. Public values: tests only.
const (
	Host        = "localhost"
	Seed        = "XVGR73KMZH2M4XMY"
	Secret      = "JYXEX4IQOEYFYQ2S3MC5P4ZT4SDHYEA7"
	OtherSeed   = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
	OtherSecret = "another secret, longer"
)

// NonceDigits is the length of the nonces Token draws: the default of
// token.nonce_digits.
const NonceDigits = 32

// Params returns the token parameters of Seed and Secret with every other
// setting at its default; callers change a copy for other settings.
func Params() auth.TokenParams {
	return auth.TokenParams{OTPSeed: Seed, TokenSecret: Secret}
}

// Token mints a token for jid with Params, valid now and once (a fresh
// random nonce), failing the test if minting fails.
func Token(t testing.TB, jid string) string {
	t.Helper()
	tok, err := auth.Mint(Params(), jid, time.Now(), auth.NewNonce(NonceDigits))
	if err != nil {
		t.Fatalf("minting a token for %s: %v", jid, err)
	}
	return tok
}
