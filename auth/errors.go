package auth

import "fmt"

// Reason says why a login failed. It is safe to log: it never contains a
// credential.
type Reason string

// The reasons a login fails.
const (
	ReasonMalformed      Reason = "malformed"       // payload or token not in the expected shape
	ReasonNonceLength    Reason = "nonce length"    // the token's nonce does not have nonce_digits digits
	ReasonNumericUser    Reason = "numeric user"    // any nonce length, and the username starts with a digit
	ReasonExpired        Reason = "expired"         // the OTP is not valid now (expired, early, or wrong seed)
	ReasonBadMAC         Reason = "bad MAC"         // the signature does not match
	ReasonReplay         Reason = "replay"          // the token was already used
	ReasonBadCredentials Reason = "bad credentials" // unknown user or wrong password
	ReasonNoTokens       Reason = "tokens disabled" // the host has no otp_seed
	ReasonAuthz          Reason = "authzid refused" // asked to act as someone else
	ReasonRateLimited    Reason = "rate limited"    // too many failures
	ReasonUnavailable    Reason = "unavailable"     // storage or replay cache failed

	// ReasonNoSCRAMCredentials: the account has no credentials for the
	// SCRAM mechanism's hash (SCRAM-SHA-1 before the next password change).
	ReasonNoSCRAMCredentials Reason = "no credentials for this SCRAM hash"
)

// Error is a failed login. Transports map it to a SASL failure condition
// with SASLCondition.
type Error struct {
	Reason Reason
	detail string
	err    error
}

func malformed(format string, args ...any) *Error {
	return &Error{Reason: ReasonMalformed, detail: fmt.Sprintf(format, args...)}
}

// Error implements error.
func (e *Error) Error() string {
	s := "auth: " + string(e.Reason)
	if e.detail != "" {
		s += ": " + e.detail
	}
	if e.err != nil {
		s += ": " + e.err.Error()
	}
	return s
}

// Unwrap returns the underlying error, if any.
func (e *Error) Unwrap() error { return e.err }

// Is lets errors.Is(err, &Error{Reason: r}) match on the reason alone.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Reason == e.Reason
}

// SASLCondition is the RFC 6120 §6.5 failure condition a client is sent.
// Every credential problem is not-authorized, so an unknown user and a
// wrong secret look the same.
func (e *Error) SASLCondition() string {
	switch e.Reason {
	case ReasonMalformed:
		return "malformed-request"
	case ReasonRateLimited, ReasonUnavailable:
		return "temporary-auth-failure"
	case ReasonAuthz:
		return "invalid-authzid"
	case ReasonNoSCRAMCredentials:
		return "mechanism-too-weak"
	default:
		return "not-authorized"
	}
}
