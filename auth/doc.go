// Package auth owns everything that decides who a client is: the X-TOKEN
// token verifier (byte-for-byte compatible with Prosody's community module
// mod_auth_token), its replay cache, token minting for app backends and tests,
// salted and iterated password hashes for password accounts, and the SASL
// mechanisms (X-TOKEN and PLAIN) that carry those credentials.
//
// A token is
//
//	OTP + NONCE + " " + base64(HMAC-SHA256(token_secret, OTP + NONCE + user@host))
//
// where OTP is an RFC 6238 TOTP code (SHA-1, 8 digits, 30 s by default) from
// the base32 otp_seed and NONCE is any run of digits. A token verifies during
// the window it was minted in and the deviation windows either side, and only
// once: the replay cache remembers every accepted token until its OTP can no
// longer verify.
//
// The package holds no stream code; transports (c2s, WebSocket) ask an
// [Authenticator] and map its errors to SASL conditions through
// [Error.SASLCondition].
package auth
