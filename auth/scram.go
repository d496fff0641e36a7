package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The SCRAM mechanisms (RFC 5802, RFC 7677) the server side here serves.
const (
	SCRAMSHA1       = "SCRAM-SHA-1"
	SCRAMSHA1Plus   = "SCRAM-SHA-1-PLUS"
	SCRAMSHA256     = "SCRAM-SHA-256"
	SCRAMSHA256Plus = "SCRAM-SHA-256-PLUS"
)

// The channel-binding types (XEP-0440 names them) the SCRAM -PLUS
// mechanisms accept.
const (
	// CBTLSExporter is RFC 9266's tls-exporter: keying material exported
	// from the TLS session, offered on TLS 1.3 only.
	CBTLSExporter = "tls-exporter"
	// CBTLSServerEndPoint is RFC 5929's tls-server-end-point: a hash of
	// the server's certificate.
	CBTLSServerEndPoint = "tls-server-end-point"
)

// SCRAMMechanisms lists the SCRAM mechanisms in order of preference: the
// channel-binding ones first, then the stronger hash.
var SCRAMMechanisms = []string{SCRAMSHA256Plus, SCRAMSHA1Plus, SCRAMSHA256, SCRAMSHA1}

// SCRAMHash returns the hash function of a SCRAM mechanism and whether it
// is one served here.
func SCRAMHash(mechanism string) (func() hash.Hash, bool) {
	switch mechanism {
	case SCRAMSHA1, SCRAMSHA1Plus:
		return sha1.New, true
	case SCRAMSHA256, SCRAMSHA256Plus:
		return sha256.New, true
	}
	return nil, false
}

// IsPlus reports whether mechanism is a channel-binding (-PLUS) one.
func IsPlus(mechanism string) bool { return strings.HasSuffix(mechanism, "-PLUS") }

// SCRAMCredentials are what the server keeps of one password for one
// SCRAM hash (RFC 5802 §3): enough to check a client's proof and prove
// itself, not enough to log in.
type SCRAMCredentials struct {
	Salt       []byte
	Iterations int
	StoredKey  []byte // H(HMAC(SaltedPassword, "Client Key"))
	ServerKey  []byte // HMAC(SaltedPassword, "Server Key")

	// decoy marks made-up credentials for an account that has none: the
	// exchange runs as for a real one and always fails.
	decoy bool
}

// NewSCRAMCredentials derives the stored credentials from a salted
// password (PBKDF2 of the password with salt and iterations, by the
// mechanism's hash h).
func NewSCRAMCredentials(h func() hash.Hash, salt []byte, iterations int, saltedPassword []byte) SCRAMCredentials {
	clientKey := hmacSum(h, saltedPassword, []byte("Client Key"))
	stored := h()
	stored.Write(clientKey)
	return SCRAMCredentials{
		Salt:       salt,
		Iterations: iterations,
		StoredKey:  stored.Sum(nil),
		ServerKey:  hmacSum(h, saltedPassword, []byte("Server Key")),
	}
}

func hmacSum(h func() hash.Hash, key, msg []byte) []byte {
	m := hmac.New(h, key)
	m.Write(msg)
	return m.Sum(nil)
}

// Offer is what a transport advertised on a stream before SASL: the
// mechanisms, and the channel-binding types of XEP-0440 (empty when it
// advertised none, as without TLS). SCRAM needs it to refuse a
// downgrade and for the XEP-0474 hash.
type Offer struct {
	Mechanisms      []string
	ChannelBindings []string
}

// plus reports whether a -PLUS mechanism was offered.
func (o Offer) plus() bool { return slices.ContainsFunc(o.Mechanisms, IsPlus) }

// SSDP returns XEP-0474's (version 0.5.0) downgrade-protection hash of
// what was offered, for the SCRAM hash h: the mechanisms sorted by octet
// and joined by %x1E, then, when channel-binding types were advertised
// (XEP-0440), %x1F and the types sorted and joined by %x1E; hashed with h
// and base64-encoded. It is the value of the attribute "h" of the
// server-first-message. With SASL2 the mechanisms are those of the
// <authentication/> feature, not SASL1's.
func SSDP(h func() hash.Hash, o Offer) string {
	mechs := slices.Sorted(slices.Values(o.Mechanisms))
	s := strings.Join(mechs, "\x1e")
	if len(o.ChannelBindings) > 0 {
		cbs := slices.Sorted(slices.Values(o.ChannelBindings))
		s += "\x1f" + strings.Join(cbs, "\x1e")
	}
	sum := h()
	sum.Write([]byte(s))
	return base64.StdEncoding.EncodeToString(sum.Sum(nil))
}

// SCRAMConfig is what one server-side SCRAM exchange needs from its
// transport and from the account store.
type SCRAMConfig struct {
	// Mechanism is the SCRAM mechanism the client chose.
	Mechanism string
	// Lookup returns the credentials of the (nodeprepped) username for
	// the mechanism's hash, given the authorization identity the client
	// asked for ("" for none). It is called once, on the
	// client-first-message. An account that has no credentials should get
	// decoy ones (see DecoyCredentials) so that its absence does not
	// show; an error ends the exchange with it.
	Lookup func(username, authzid string) (SCRAMCredentials, error)
	// Offer is what the transport advertised (see Offer).
	Offer Offer
	// ChannelBinding returns the channel-binding data of type typ for
	// the connection, one of Offer.ChannelBindings. Nil when the
	// connection has no channel binding.
	ChannelBinding func(typ string) ([]byte, error)
	// NoSSDP leaves XEP-0474's hash out of the server-first-message.
	NoSSDP bool
}

// SCRAMServer is the server side of one SCRAM exchange (RFC 5802), with
// channel binding (-PLUS) and XEP-0474 downgrade protection. It is
// transport-neutral: Step takes the client's messages, decoded (no
// base64 of the SASL profile), and returns the server's, the same
// contract as mellium's sasl.Negotiator.Step, so that SASL1 (<auth/>,
// <challenge/>, <response/>, <success/>) and SASL2 (<authenticate/>, ...,
// <success/> with <additional-data/>) drive it alike:
//
//	more, resp, err := s.Step(msg)
//	err != nil:      the exchange failed; send the SASL failure with
//	                 err's SASLCondition (SASLText for its text)
//	more:            send resp as a challenge, Step the client's response
//	!more, err nil:  the client authenticated as Username; resp is the
//	                 server-final-message, sent as the success's
//	                 additional data
//
// A SCRAMServer is for one exchange and one goroutine.
type SCRAMServer struct {
	cfg   SCRAMConfig
	h     func() hash.Hash
	step  int
	first clientFirst
	creds SCRAMCredentials
	// nonce is the combined nonce; serverFirst the server-first-message.
	nonce, serverFirst []byte
	cbData             []byte // the channel-binding data in use, if any
	// snonce, when set, is the server's part of the nonce (tests);
	// otherwise it is random.
	snonce []byte
}

// NewSCRAMServer starts the server side of one exchange.
func NewSCRAMServer(cfg SCRAMConfig) (*SCRAMServer, error) {
	h, ok := SCRAMHash(cfg.Mechanism)
	if !ok {
		return nil, fmt.Errorf("auth: %q is not a SCRAM mechanism", cfg.Mechanism)
	}
	if cfg.Lookup == nil {
		return nil, errors.New("auth: SCRAMConfig.Lookup is nil")
	}
	return &SCRAMServer{cfg: cfg, h: h}, nil
}

// Username returns the nodeprepped username of the client-first-message
// ("" before it).
func (s *SCRAMServer) Username() string { return s.first.username }

// Authzid returns the authorization identity the client asked for ("" for
// none).
func (s *SCRAMServer) Authzid() string { return s.first.authzid }

// Mechanism returns the mechanism of the exchange.
func (s *SCRAMServer) Mechanism() string { return s.cfg.Mechanism }

// Step handles the client's next message: the client-first-message, then
// the client-final-message. See SCRAMServer for the contract.
func (s *SCRAMServer) Step(msg []byte) (more bool, resp []byte, err error) {
	s.step++
	switch s.step {
	case 1:
		resp, err = s.clientFirst(msg)
		return err == nil, resp, err
	case 2:
		resp, err = s.clientFinal(msg)
		return false, resp, err
	}
	return false, nil, scramMalformed("exchange already over")
}

// SCRAMError is a SCRAM exchange refused for what the client sent (as
// opposed to its credentials): its condition is one of RFC 6120 §6.5 and
// its text may be shown to the client.
type SCRAMError struct {
	Condition string
	Text      string
}

// Error implements error.
func (e *SCRAMError) Error() string { return "auth: scram: " + e.Condition + ": " + e.Text }

// SASLCondition is the SASL failure condition.
func (e *SCRAMError) SASLCondition() string { return e.Condition }

// SASLText is the failure's text for the client.
func (e *SCRAMError) SASLText() string { return e.Text }

func scramMalformed(format string, args ...any) *SCRAMError {
	return &SCRAMError{Condition: "malformed-request", Text: fmt.Sprintf(format, args...)}
}

// Bounds on what a client sends.
const (
	maxSCRAMMessage = 4096 // one client message
	maxSCRAMNonce   = 512  // the client's nonce
	scramNonceBytes = 18   // random bytes of the server's nonce
)

func (s *SCRAMServer) clientFirst(msg []byte) ([]byte, error) {
	cf, err := parseClientFirst(msg)
	if err != nil {
		return nil, err
	}
	plus := IsPlus(s.cfg.Mechanism)
	switch {
	case plus && cf.cbFlag != 'p':
		return nil, scramMalformed("%s needs channel binding (gs2 flag p=)", s.cfg.Mechanism)
	case !plus && cf.cbFlag == 'p':
		return nil, scramMalformed("channel binding requested with %s; use %s-PLUS", s.cfg.Mechanism, s.cfg.Mechanism)
	case cf.cbFlag == 'y' && s.cfg.Offer.plus():
		// RFC 5802 §6: the client thinks the server does not support
		// channel binding, but it offered it: the list was tampered with.
		return nil, scramMalformed("the server supports channel binding: the mechanism list the client saw was altered")
	case cf.cbFlag == 'p':
		if !slices.Contains(s.cfg.Offer.ChannelBindings, cf.cbName) || s.cfg.ChannelBinding == nil {
			return nil, scramMalformed("channel-binding type %q is not supported here", cf.cbName)
		}
		data, err := s.cfg.ChannelBinding(cf.cbName)
		if err != nil || len(data) == 0 {
			return nil, &SCRAMError{Condition: "temporary-auth-failure", Text: "channel-binding data unavailable"}
		}
		s.cbData = data
	}
	user, err := Nodeprep(cf.username)
	if err != nil {
		return nil, scramMalformed("invalid username")
	}
	cf.username = user
	s.first = cf
	creds, err := s.cfg.Lookup(user, cf.authzid)
	if err != nil {
		return nil, err
	}
	if len(creds.Salt) == 0 || creds.Iterations <= 0 {
		return nil, &Error{Reason: ReasonUnavailable, detail: "scram: credentials without salt or iterations"}
	}
	s.creds = creds
	s.nonce = make([]byte, 0, len(cf.nonce)+base64.StdEncoding.EncodedLen(scramNonceBytes))
	s.nonce = append(s.nonce, cf.nonce...)
	if s.snonce != nil {
		s.nonce = append(s.nonce, s.snonce...)
	} else {
		random := make([]byte, scramNonceBytes)
		rand.Read(random)
		s.nonce = base64.StdEncoding.AppendEncode(s.nonce, random)
	}
	out := make([]byte, 0, 128)
	out = append(out, "r="...)
	out = append(out, s.nonce...)
	out = append(out, ",s="...)
	out = base64.StdEncoding.AppendEncode(out, creds.Salt)
	out = append(out, ",i="...)
	out = strconv.AppendInt(out, int64(creds.Iterations), 10)
	if !s.cfg.NoSSDP {
		out = append(out, ",h="...)
		out = append(out, SSDP(s.h, s.cfg.Offer)...)
	}
	s.serverFirst = out
	return out, nil
}

func (s *SCRAMServer) clientFinal(msg []byte) ([]byte, error) {
	cf, err := parseClientFinal(msg)
	if err != nil {
		return nil, err
	}
	want := append(slices.Clip(s.first.gs2Header), s.cbData...)
	if subtle.ConstantTimeCompare(cf.channelBinding, want) != 1 {
		return nil, scramMalformed("channel-binding data do not match")
	}
	if !bytes.Equal(cf.nonce, s.nonce) {
		return nil, scramMalformed("wrong nonce in client-final-message")
	}
	size := s.h().Size()
	if len(cf.proof) != size {
		return nil, scramMalformed("proof of %d bytes, want %d", len(cf.proof), size)
	}
	authMessage := make([]byte, 0, len(s.first.bare)+len(s.serverFirst)+len(cf.withoutProof)+2)
	authMessage = append(authMessage, s.first.bare...)
	authMessage = append(authMessage, ',')
	authMessage = append(authMessage, s.serverFirst...)
	authMessage = append(authMessage, ',')
	authMessage = append(authMessage, cf.withoutProof...)

	clientKey := hmacSum(s.h, s.creds.StoredKey, authMessage)
	subtle.XORBytes(clientKey, clientKey, cf.proof)
	stored := s.h()
	stored.Write(clientKey)
	if !hmac.Equal(stored.Sum(nil), s.creds.StoredKey) || s.creds.decoy {
		return nil, &Error{Reason: ReasonBadCredentials, detail: "scram proof"}
	}
	out := append([]byte("v="), base64.StdEncoding.EncodeToString(hmacSum(s.h, s.creds.ServerKey, authMessage))...)
	return out, nil
}

// clientFirst is a parsed client-first-message (RFC 5802 §7).
type clientFirst struct {
	cbFlag    byte   // 'n', 'y' or 'p'
	cbName    string // with 'p'
	authzid   string // unescaped, "" for none
	username  string // unescaped; nodeprepped once accepted
	nonce     []byte
	gs2Header []byte // up to and with the second comma
	bare      []byte // client-first-message-bare
}

// parseClientFirst parses
//
//	gs2-header = gs2-cbind-flag "," [ authzid ] ","
//	client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions]
//
// refusing reserved-mext (m=), as RFC 5802 wants.
func parseClientFirst(msg []byte) (clientFirst, error) {
	var cf clientFirst
	if len(msg) > maxSCRAMMessage {
		return cf, scramMalformed("client-first-message longer than %d bytes", maxSCRAMMessage)
	}
	flag, rest, ok := bytes.Cut(msg, []byte{','})
	if !ok {
		return cf, scramMalformed("no gs2 header")
	}
	switch {
	case len(flag) == 1 && (flag[0] == 'n' || flag[0] == 'y'):
		cf.cbFlag = flag[0]
	case bytes.HasPrefix(flag, []byte("p=")) && validCBName(flag[2:]):
		cf.cbFlag, cf.cbName = 'p', string(flag[2:])
	default:
		return cf, scramMalformed("invalid gs2-cbind-flag")
	}
	authz, rest, ok := bytes.Cut(rest, []byte{','})
	if !ok {
		return cf, scramMalformed("gs2 header without its second comma")
	}
	if len(authz) > 0 {
		if !bytes.HasPrefix(authz, []byte("a=")) {
			return cf, scramMalformed("invalid authzid")
		}
		a, err := unescapeSaslname(authz[2:])
		if err != nil {
			return cf, err
		}
		cf.authzid = a
	}
	cf.gs2Header = msg[:len(msg)-len(rest)]
	cf.bare = rest
	fields := bytes.Split(rest, []byte{','})
	if len(fields) < 2 {
		return cf, scramMalformed("client-first-message-bare needs a username and a nonce")
	}
	if bytes.HasPrefix(fields[0], []byte("m=")) {
		return cf, scramMalformed("mandatory extension (m=) not supported")
	}
	if !bytes.HasPrefix(fields[0], []byte("n=")) {
		return cf, scramMalformed("expected the username (n=)")
	}
	u, err := unescapeSaslname(fields[0][2:])
	if err != nil {
		return cf, err
	}
	cf.username = u
	if !bytes.HasPrefix(fields[1], []byte("r=")) {
		return cf, scramMalformed("expected the nonce (r=)")
	}
	cf.nonce = fields[1][2:]
	if len(cf.nonce) == 0 || len(cf.nonce) > maxSCRAMNonce || !printable(cf.nonce) {
		return cf, scramMalformed("invalid client nonce")
	}
	for _, ext := range fields[2:] {
		if !validAttr(ext) {
			return cf, scramMalformed("invalid extension attribute")
		}
	}
	return cf, nil
}

// clientFinalMessage is a parsed client-final-message.
type clientFinalMessage struct {
	channelBinding []byte // decoded c=
	nonce          []byte
	proof          []byte // decoded p=
	withoutProof   []byte // client-final-message-without-proof
}

// parseClientFinal parses
//
//	client-final-message = channel-binding "," nonce ["," extensions] "," proof
func parseClientFinal(msg []byte) (clientFinalMessage, error) {
	var cf clientFinalMessage
	if len(msg) > maxSCRAMMessage {
		return cf, scramMalformed("client-final-message longer than %d bytes", maxSCRAMMessage)
	}
	i := bytes.LastIndexByte(msg, ',')
	if i < 0 {
		return cf, scramMalformed("client-final-message without a proof")
	}
	cf.withoutProof = msg[:i]
	proof, ok := bytes.CutPrefix(msg[i+1:], []byte("p="))
	if !ok {
		return cf, scramMalformed("expected the proof (p=) last")
	}
	var err error
	if cf.proof, err = base64.StdEncoding.AppendDecode(nil, proof); err != nil {
		return cf, scramMalformed("proof is not base64")
	}
	fields := bytes.Split(cf.withoutProof, []byte{','})
	if len(fields) < 2 {
		return cf, scramMalformed("client-final-message needs channel binding and nonce")
	}
	c, ok := bytes.CutPrefix(fields[0], []byte("c="))
	if !ok {
		return cf, scramMalformed("expected the channel binding (c=) first")
	}
	if cf.channelBinding, err = base64.StdEncoding.AppendDecode(nil, c); err != nil {
		return cf, scramMalformed("channel binding is not base64")
	}
	if cf.nonce, ok = bytes.CutPrefix(fields[1], []byte("r=")); !ok {
		return cf, scramMalformed("expected the nonce (r=) second")
	}
	for _, ext := range fields[2:] {
		if !validAttr(ext) {
			return cf, scramMalformed("invalid extension attribute")
		}
	}
	return cf, nil
}

// unescapeSaslname decodes a saslname: "=2C" is ',' and "=3D" is '=';
// any other '=' fails (RFC 5802 §5.1), as do an empty name, NUL and
// invalid UTF-8.
func unescapeSaslname(b []byte) (string, error) {
	if len(b) == 0 {
		return "", scramMalformed("empty name")
	}
	var out strings.Builder
	out.Grow(len(b))
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c == '=' && i+2 < len(b) && b[i+1] == '2' && b[i+2] == 'C':
			out.WriteByte(',')
			i += 2
		case c == '=' && i+2 < len(b) && b[i+1] == '3' && b[i+2] == 'D':
			out.WriteByte('=')
			i += 2
		case c == '=' || c == 0:
			return "", scramMalformed("invalid saslname")
		default:
			out.WriteByte(c)
		}
	}
	s := out.String()
	if !utf8.ValidString(s) {
		return "", scramMalformed("saslname is not UTF-8")
	}
	return s, nil
}

// validCBName: cb-name = 1*(ALPHA / DIGIT / "." / "-").
func validCBName(b []byte) bool {
	if len(b) == 0 || len(b) > 64 {
		return false
	}
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// validAttr: attr-val = ALPHA "=" value.
func validAttr(b []byte) bool {
	return len(b) >= 2 && (b[0] >= 'a' && b[0] <= 'z' || b[0] >= 'A' && b[0] <= 'Z') && b[1] == '='
}

// printable: %x21-2B / %x2D-7E, what a nonce is made of.
func printable(b []byte) bool {
	for _, c := range b {
		if c < 0x21 || c > 0x7e || c == ',' {
			return false
		}
	}
	return true
}
