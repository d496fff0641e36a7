package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"

	"ottr.im/ottr/auth"
	"ottr.im/ottr/config"
)

// runToken implements "ottr token": it prints one X-TOKEN token for
// user@host, valid now, and nothing else on stdout. The nonce has the
// host's nonce_digits (32 random digits by default, and also when any
// length is accepted).
func runToken(_ context.Context, e *env, args []string) error {
	f := newFlagSet("token", "[-c FILE] [-nonce DIGITS] user@host")
	cfgPath := f.configFlag()
	nonce := f.String("nonce", "", "use `DIGITS` as the nonce instead of random digits (exactly the host's token.nonce_digits, 32 by default)")
	if err := f.parse(e, args); err != nil {
		return err
	}
	if err := f.nArgs(1, "user@host"); err != nil {
		return err
	}
	nonceSet := false
	f.Visit(func(fl *flag.Flag) { nonceSet = nonceSet || fl.Name == "nonce" })
	if nonceSet && !isDigits(*nonce) {
		return f.usageErr("-nonce %q: must be decimal digits", *nonce)
	}
	user, hostName, err := splitJID(f.Arg(0))
	if err != nil {
		return f.usageErr("%v", err)
	}
	cfg, onDefaults, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	h, err := configuredHost(cfg, hostName, onDefaults)
	if err != nil {
		return err
	}
	if onDefaults {
		// Only now, so that a mistyped host creates no data directory.
		if err := fillSecrets(cfg); err != nil {
			return err
		}
		h, _ = cfg.Host(h.Name)
	}
	if h.OTPSeed == "" {
		return fmt.Errorf("host %q has no otp_seed: it does not accept X-TOKEN (set otp_seed and token_secret in its [[host]] table; \"ottr secrets\" makes them)", h.Name)
	}
	n := h.EffectiveToken(cfg.Token).NonceLen()
	switch {
	case n == 0 && user[0] >= '0' && user[0] <= '9':
		return fmt.Errorf("host %q accepts nonces of any length (token.nonce_digits = 0), so it refuses tokens for usernames that start with a digit such as %q: set nonce_digits to the length your tokens use", h.Name, user)
	case n > 0 && nonceSet && len(*nonce) != n:
		return fmt.Errorf("-nonce %q has %d digits: host %q needs exactly %d (token.nonce_digits)", *nonce, len(*nonce), h.Name, n)
	case !nonceSet:
		if n == 0 {
			n = auth.DefaultNonceDigits
		}
		*nonce = auth.NewNonce(n)
	}
	tok, err := mintToken(cfg, h, user, *nonce, time.Now())
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(e.stdout, tok)
	return err
}

// mintToken returns a token for user (nodeprepped) at host h of cfg, valid
// at now, with the given nonce, for h's effective token settings.
func mintToken(cfg *config.Config, h config.Host, user, nonce string, now time.Time) (string, error) {
	tok, err := auth.Mint(h.TokenParams(cfg.Token), user+"@"+strings.ToLower(h.Name), now, nonce)
	if err != nil {
		return "", fmt.Errorf("minting a token for %s@%s: %w", user, h.Name, err)
	}
	return tok, nil
}

// runSecrets implements "ottr secrets": it prints a fresh otp_seed and
// token_secret as TOML lines for a [[host]] table.
func runSecrets(_ context.Context, e *env, args []string) error {
	f := newFlagSet("secrets", "")
	if err := f.parse(e, args); err != nil {
		return err
	}
	if err := f.nArgs(0, ""); err != nil {
		return err
	}
	_, err := fmt.Fprintf(e.stdout, "otp_seed = %q\ntoken_secret = %q\n",
		auth.RandomBase32(seedLen), auth.RandomBase32(secretLen))
	return err
}

// isDigits reports whether s holds only the decimal digits 0 to 9 (the
// empty string does).
func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
