package config

import "ottr.im/ottr/auth"

// TokenParams returns the X-TOKEN parameters of h: its seed and secret
// (and the previous pair of a rotation) with the token settings in force
// for it (EffectiveToken of defaults, normally Config.Token), as the
// server verifies and "ottr token" mints.
func (h Host) TokenParams(defaults Token) auth.TokenParams {
	t := h.EffectiveToken(defaults)
	return auth.TokenParams{
		OTPSeed:             h.OTPSeed,
		TokenSecret:         h.TokenSecret,
		Digits:              t.Digits(),
		Interval:            t.Interval(),
		Deviation:           t.Deviation(),
		NonceDigits:         auth.ConfigNonceDigits(t.NonceLen()),
		PreviousOTPSeed:     h.PreviousOTPSeed,
		PreviousTokenSecret: h.PreviousTokenSecret,
		PreviousUntil:       h.PreviousUntil,
	}
}

// NonceLength is the length of the nonces to mint tokens for h with:
// its nonce_digits, or mod_auth_token's README's 32 when any length goes.
func (h Host) NonceLength(defaults Token) int {
	if n := h.EffectiveToken(defaults).NonceLen(); n > 0 {
		return n
	}
	return DefaultNonceDigits
}
