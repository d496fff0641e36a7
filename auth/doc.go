// Package auth owns everything that decides who a client is: the X-TOKEN
// token verifier (byte-for-byte compatible with Prosody's community module
// mod_auth_token), its replay cache, token minting for app backends and tests,
// salted and iterated password hashes for password accounts, and the SASL
// mechanisms (X-TOKEN and PLAIN) that carry those credentials. The server
// side of SCRAM (SCRAM-SHA-1, SCRAM-SHA-256 and their -PLUS variants with
// tls-exporter and tls-server-end-point, XEP-0474's downgrade hash) is
// [SCRAMServer], a transport-neutral step function that SASL and SASL2
// both drive; [Authenticator.SCRAMCredentials] gives it an account's
// stored credentials.
//
// A token is
//
//	OTP + NONCE + " " + base64(HMAC-SHA256(token_secret, OTP + NONCE + user@host))
//
// where OTP is an RFC 6238 TOTP code (SHA-1, 8 digits, 30 s by default) from
// the base32 otp_seed and NONCE is a run of digits of a fixed length
// (TokenParams.NonceDigits, 32 by default: without a fixed length, digits could
// move between the nonce and a username that starts with digits). A token
// verifies during the window it was minted in and the deviation windows either
// side, and only once: the replay cache remembers every accepted token until
// its OTP can no longer verify, in memory and, with a ClaimStore, durably
// across restarts.
//
// An [Authenticator] also limits failed logins (see [FailureLimits]): a valid
// token is never refused by those limits, and failures from one address never
// refuse a password login from another.
//
// The package holds no stream code; transports (c2s, WebSocket) ask an
// [Authenticator] and map its errors to SASL conditions through
// [Error.SASLCondition].
package auth
