// Package config reads and checks ottr's TOML configuration.
//
// Decoding is strict: a key the server does not know is an error, so a typo
// never silently leaves a setting at its default. Keys the file leaves out
// take the values of [Default]. Every problem [Config.Validate] finds is
// reported at once, each prefixed with the dotted key it concerns (for
// example "host[0].otp_seed").
package config

import (
	"encoding/base32"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"mellium.im/xmpp/jid"
)

// Defaults of the token settings, the same as Prosody's mod_auth_token.
const (
	DefaultOTPDigits    = 8
	DefaultOTPInterval  = 30 * time.Second
	DefaultOTPDeviation = 1
	// DefaultNonceDigits is the nonce length tokens must have, the one
	// mod_auth_token's README mints.
	DefaultNonceDigits = 32
)

// Other defaults used when a key is left out of the file.
const (
	DefaultDataDir  = "./ottr-data"
	DefaultLogLevel = "info"
	DefaultListen   = "127.0.0.1:5222"
	DefaultHost     = "localhost"
)

// Bounds of the token settings, enforced by Validate.
const (
	minOTPDigits    = 6
	maxOTPDigits    = 10
	minOTPInterval  = time.Second
	maxOTPInterval  = 10 * time.Minute
	maxOTPDeviation = 10
	maxNonceDigits  = 256
	minSeedBytes    = 10
	// minSecretBytes is the shortest token_secret accepted. One observed
	// token is an HMAC of known text, so a short secret can be searched
	// for offline; 16 characters are 80 bits even as random base32 (the
	// same floor as otp_seed's 10 bytes), and the secrets in
	// mod_auth_token's README and from "ottr secrets" have 32.
	minSecretBytes = 16
)

// logLevels lists the accepted values of log.level.
const logLevels = "debug, info, warn, error"

// Config is the whole server configuration, as read from a TOML file.
type Config struct {
	// DataDir is where the server keeps its state (database, generated
	// certificate and secrets). Default "./ottr-data".
	DataDir string `toml:"data_dir"`
	// Log holds the logging settings.
	Log Log `toml:"log"`
	// C2S holds the client-to-server listeners.
	C2S C2S `toml:"c2s"`
	// TLS names the certificate and key; both empty means a self-signed
	// certificate generated into DataDir.
	TLS TLS `toml:"tls"`
	// Token holds the X-TOKEN settings every host inherits unless it
	// overrides them in its own [host.token] table.
	Token Token `toml:"token"`
	// Hosts are the served XMPP domains, one [[host]] table each.
	Hosts []Host `toml:"host"`
	// Limits holds every limit of the server; keys left out take the
	// values of DefaultLimits.
	Limits Limits `toml:"limits"`
	// HTTP holds the web transports (WebSocket, BOSH, host-meta); off
	// unless it lists an address.
	HTTP HTTP `toml:"http"`
	// Components holds the external components (XEP-0114); off unless
	// it lists an address.
	Components Components `toml:"components"`
	// Proxy65 holds the SOCKS5 bytestreams proxy (XEP-0065); off unless
	// it has a listen address.
	Proxy65 Proxy65 `toml:"proxy65"`
	// Upload holds the HTTP file upload service (XEP-0363), on for every
	// host when HTTP has a listener.
	Upload Upload `toml:"upload"`
	// ExternalServices are the STUN and TURN servers told to users
	// (XEP-0215), one [[external_service]] table each.
	ExternalServices []ExternalService `toml:"external_service"`
	// Admin holds the operator's HTTP endpoint (metrics, health); off
	// unless it has an address.
	Admin Admin `toml:"admin"`
	// Contact lists the server's contact addresses, published in its
	// disco#info (XEP-0157).
	Contact Contact `toml:"contact"`
}

// Contact holds the server's XEP-0157 contact addresses: URIs (mailto:,
// xmpp:, https:) that clients and other servers show, for abuse reports
// above all. Every key is optional.
type Contact struct {
	Abuse    []string `toml:"abuse"`
	Admin    []string `toml:"admin"`
	Feedback []string `toml:"feedback"`
	Sales    []string `toml:"sales"`
	Security []string `toml:"security"`
	Status   []string `toml:"status"`
	Support  []string `toml:"support"`
}

// Addresses returns the addresses by XEP-0157 field name (abuse for
// abuse-addresses), leaving out the empty ones.
func (c Contact) Addresses() map[string][]string {
	m := make(map[string][]string)
	for name, v := range map[string][]string{
		"abuse": c.Abuse, "admin": c.Admin, "feedback": c.Feedback, "sales": c.Sales,
		"security": c.Security, "status": c.Status, "support": c.Support,
	} {
		if len(v) > 0 {
			m[name] = v
		}
	}
	return m
}

// Log holds the logging settings.
type Log struct {
	// Level is one of "debug", "info", "warn" or "error". Default "info".
	Level string `toml:"level"`
	// Format is "text" (slog's key=value lines) or "json" (one JSON
	// object a line, for a log collector). Default "text".
	Format string `toml:"format"`
}

// C2S holds the client-to-server listener settings.
type C2S struct {
	// Listen are host:port addresses that accept plain TCP connections and
	// offer STARTTLS. Default ["127.0.0.1:5222"]; an explicit empty list
	// disables them.
	Listen []string `toml:"listen"`
	// DirectTLS are host:port addresses where TLS starts at once (XEP-0368).
	// Default none.
	DirectTLS []string `toml:"direct_tls"`
	// RequireTLS makes STARTTLS mandatory before authentication. Nil means
	// the default, true; read it with RequireTLSOrDefault.
	RequireTLS *bool `toml:"require_tls"`
}

// RequireTLSOrDefault reports whether STARTTLS is mandatory: the configured
// value, or true when require_tls was not given.
func (c C2S) RequireTLSOrDefault() bool {
	if c.RequireTLS == nil {
		return true
	}
	return *c.RequireTLS
}

// TLS names the PEM files of the server certificate and its private key.
// Both empty means a self-signed certificate generated into the data
// directory. The files are read again when they change. With ACME,
// certificates for the hosts and their services come from an ACME CA
// (see tls.go).
type TLS struct {
	// Cert is the path of the PEM certificate chain.
	Cert string `toml:"cert"`
	// Key is the path of the PEM private key.
	Key string `toml:"key"`
	// ACME obtains and renews a certificate for every host and its MUC
	// and upload domains from an ACME CA, answering TLS-ALPN-01 on the
	// direct TLS and HTTPS listeners. Default false.
	ACME bool `toml:"acme"`
	// ACMEEmail is the contact the CA tells of problems. Default none.
	ACMEEmail string `toml:"acme_email"`
	// ACMEDirectory is the CA's directory URL. Default
	// DefaultACMEDirectory (Let's Encrypt's production CA).
	ACMEDirectory string `toml:"acme_directory"`
	// ACMECAFile is a PEM file of the roots trusted for the directory's
	// HTTPS, for a private CA. Default "": the system's roots.
	ACMECAFile string `toml:"acme_ca_file"`
}

// Token holds the X-TOKEN (TOTP plus HMAC) settings. A zero field means
// "unset": it inherits from the level above, and the accessors Digits,
// Interval and Deviation fall back to mod_auth_token's defaults, so callers
// never see zeros.
type Token struct {
	// OTPDigits is the number of TOTP digits, 6 to 10. Default 8.
	OTPDigits int `toml:"otp_digits"`
	// OTPInterval is the TOTP time step, 1s to 10m in whole seconds.
	// Default 30s.
	OTPInterval Duration `toml:"otp_interval"`
	// OTPDeviation is how many time steps before and after the current one
	// are accepted, 0 to 10. Nil means the default, 1.
	OTPDeviation *int `toml:"otp_deviation"`
	// NonceDigits is the exact number of nonce digits a token must have,
	// 0 to 256. Nil means the default, 32 (what mod_auth_token's README
	// mints). 0 accepts any length, as mod_auth_token does, and then
	// refuses X-TOKEN for usernames that start with a digit: the MAC has
	// no separator between nonce and username, so with nonces of any
	// length a token for 12345 would also log in 2345.
	NonceDigits *int `toml:"nonce_digits"`
}

// Digits returns the number of TOTP digits, DefaultOTPDigits when unset.
func (t Token) Digits() int {
	if t.OTPDigits == 0 {
		return DefaultOTPDigits
	}
	return t.OTPDigits
}

// Interval returns the TOTP time step, DefaultOTPInterval when unset.
func (t Token) Interval() time.Duration {
	if t.OTPInterval.Duration == 0 {
		return DefaultOTPInterval
	}
	return t.OTPInterval.Duration
}

// Deviation returns the number of accepted steps on each side of the
// current one, DefaultOTPDeviation when unset.
func (t Token) Deviation() int {
	if t.OTPDeviation == nil {
		return DefaultOTPDeviation
	}
	return *t.OTPDeviation
}

// NonceLen returns the number of nonce digits tokens must have (0: any),
// DefaultNonceDigits when unset.
func (t Token) NonceLen() int {
	if t.NonceDigits == nil {
		return DefaultNonceDigits
	}
	return *t.NonceDigits
}

// Host is one served XMPP domain.
type Host struct {
	// Name is the domain, a valid XMPP domainpart such as "example.com".
	Name string `toml:"name"`
	// OTPSeed is the base32 TOTP seed (as pyotp.random_base32 makes it;
	// lowercase and missing padding are accepted). Empty means the host
	// refuses X-TOKEN.
	OTPSeed string `toml:"otp_seed"`
	// TokenSecret is the HMAC key, used as its ASCII bytes, at least 16
	// bytes long. Required when OTPSeed is set, and only then.
	TokenSecret string `toml:"token_secret"`
	// Token overrides the top-level [token] settings for this host; zero
	// fields inherit.
	Token Token `toml:"token"`
	// Proxy65 is the domain of the host's SOCKS5 bytestreams proxy
	// (XEP-0065) when [proxy65] has a listener; nil (left out) means
	// "proxy.<name>", "" no proxy for this host. Read it with
	// Proxy65Domain.
	Proxy65 *string `toml:"proxy65"`
	// PreviousOTPSeed and PreviousTokenSecret are the pair otp_seed and
	// token_secret replaced (secret rotation): tokens minted with it
	// still log in until PreviousUntil, so that the app backend can
	// switch to the new pair with no failed login. Both or neither;
	// only beside a current pair. Default none.
	PreviousOTPSeed     string `toml:"previous_otp_seed"`
	PreviousTokenSecret string `toml:"previous_token_secret"`
	// PreviousUntil is when the previous pair stops being accepted, a
	// TOML date-time such as 2026-12-01T00:00:00Z. Required with a
	// previous pair.
	PreviousUntil time.Time `toml:"previous_until"`
	// MUC is the domain of the host's group chat service (XEP-0045).
	// Unset means "conference." + Name; "" turns the service off.
	MUC *string `toml:"muc"`
	// Upload is the domain of the host's HTTP file upload service
	// (XEP-0363). Unset means "upload." + Name when [http] has a
	// listener; "" turns the service off. Read it with UploadDomain.
	Upload *string `toml:"upload"`
}

// MUCDomain returns the domain of h's group chat service, "" when it is
// off.
func (h Host) MUCDomain() string {
	if h.MUC == nil {
		return "conference." + strings.ToLower(h.Name)
	}
	return strings.ToLower(*h.MUC)
}

// EffectiveToken returns the token settings in force for h: each field of
// h.Token if set, else the one of defaults (normally Config.Token) if set,
// else mod_auth_token's default. Every field of the result is set.
func (h Host) EffectiveToken(defaults Token) Token {
	digits := h.Token.OTPDigits
	if digits == 0 {
		digits = defaults.Digits()
	}
	interval := h.Token.OTPInterval.Duration
	if interval == 0 {
		interval = defaults.Interval()
	}
	deviation := defaults.Deviation()
	if h.Token.OTPDeviation != nil {
		deviation = *h.Token.OTPDeviation
	}
	nonce := defaults.NonceLen()
	if h.Token.NonceDigits != nil {
		nonce = *h.Token.NonceDigits
	}
	return Token{
		OTPDigits:    digits,
		OTPInterval:  Duration{interval},
		OTPDeviation: &deviation,
		NonceDigits:  &nonce,
	}
}

// Duration is a time.Duration written in TOML as a string that
// time.ParseDuration accepts, such as "30s". A bare integer is refused
// because its unit would be a guess.
type Duration struct {
	time.Duration
}

// UnmarshalText parses text with time.ParseDuration.
func (d *Duration) UnmarshalText(text []byte) error {
	s := string(text)
	v, err := time.ParseDuration(s)
	if err != nil {
		if _, nerr := strconv.ParseInt(s, 10, 64); nerr == nil {
			return fmt.Errorf("duration %q has no unit: write %q", s, s+"s")
		}
		return fmt.Errorf("not a duration (write it like \"30s\"): %w", err)
	}
	d.Duration = v
	return nil
}

// MarshalText formats d with time.Duration.String, which UnmarshalText
// reads back.
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(d.Duration.String()), nil
}

// UnmarshalTOML implements toml.Unmarshaler so that a bare TOML integer is
// refused instead of being read as nanoseconds or seconds; strings go
// through UnmarshalText.
func (d *Duration) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case string:
		return d.UnmarshalText([]byte(v))
	case int64:
		return fmt.Errorf("a bare integer (%d) is not a duration: write a string with a unit, such as \"30s\"", v)
	default:
		return fmt.Errorf("a %T is not a duration: write a string such as \"30s\"", v)
	}
}

// Default returns the built-in configuration: data_dir "./ottr-data", log
// level "info", STARTTLS on 127.0.0.1:5222 with TLS required, no HTTP
// listener, a
// self-signed certificate, mod_auth_token's token settings, one host,
// "localhost", with no seed or secret (the server generates those into the
// data directory), and the limits of DefaultLimits.
func Default() *Config {
	c := &Config{}
	applyDefaults(c, nil)
	return c
}

// applyDefaults fills the keys that md says the file left out; a nil md
// means an empty file.
func applyDefaults(c *Config, md *toml.MetaData) {
	defined := func(key ...string) bool { return md != nil && md.IsDefined(key...) }
	if !defined("data_dir") {
		c.DataDir = DefaultDataDir
	}
	if !defined("log", "level") {
		c.Log.Level = DefaultLogLevel
	}
	if !defined("log", "format") {
		c.Log.Format = DefaultLogFormat
	}
	if !defined("tls", "acme_directory") {
		c.TLS.ACMEDirectory = DefaultACMEDirectory
	}
	if !defined("c2s", "listen") {
		c.C2S.Listen = []string{DefaultListen}
	}
	if c.C2S.RequireTLS == nil {
		t := true
		c.C2S.RequireTLS = &t
	}
	if !defined("token", "otp_digits") {
		c.Token.OTPDigits = DefaultOTPDigits
	}
	if !defined("token", "otp_interval") {
		c.Token.OTPInterval = Duration{DefaultOTPInterval}
	}
	if c.Token.OTPDeviation == nil {
		d := DefaultOTPDeviation
		c.Token.OTPDeviation = &d
	}
	if c.Token.NonceDigits == nil {
		n := DefaultNonceDigits
		c.Token.NonceDigits = &n
	}
	if !defined("host") {
		c.Hosts = []Host{{Name: DefaultHost}}
	}
	applyLimitDefaults(&c.Limits, defined)
	applyHTTPDefaults(&c.HTTP, defined)
	applyProxy65Defaults(&c.Proxy65, defined)
	applyUploadDefaults(&c.Upload, defined)
	applyExternalServiceDefaults(c.ExternalServices)
}

// Load reads the TOML file at path, refuses unknown keys, fills in the
// defaults for keys not given, and validates the result. Each error names
// the file and the key.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var c Config
	md, err := toml.Decode(string(data), &c)
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}
	if err := unknownKeys(md); err != nil {
		return nil, prefixEach(path, err)
	}
	zeros, err := explicitZeros(string(data))
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}
	applyDefaults(&c, &md)
	if err := errors.Join(append(zeros, c.Validate())...); err != nil {
		return nil, prefixEach(path, err)
	}
	return &c, nil
}

// unknownKeys returns one error per key of the file that no field took,
// skipping the keys inside an unknown table (the table is reported).
func unknownKeys(md toml.MetaData) error {
	var errs []error
	var reported []string
	for _, k := range md.Undecoded() {
		s := k.String()
		inside := false
		for _, r := range reported {
			if strings.HasPrefix(s, r+".") {
				inside = true
				break
			}
		}
		if inside {
			continue
		}
		reported = append(reported, s)
		errs = append(errs, fmt.Errorf("unknown key %q", s))
	}
	return errors.Join(errs...)
}

// explicitZeros reports token keys written as 0 or "0s": in a Token a zero
// means "inherit", so without this check they would silently mean the
// default instead of being refused.
func explicitZeros(data string) ([]error, error) {
	type rawToken struct {
		OTPDigits   *int      `toml:"otp_digits"`
		OTPInterval *Duration `toml:"otp_interval"`
	}
	var raw struct {
		Token rawToken `toml:"token"`
		Hosts []struct {
			Token rawToken `toml:"token"`
		} `toml:"host"`
	}
	if _, err := toml.Decode(data, &raw); err != nil {
		return nil, err
	}
	var errs []error
	check := func(prefix string, t rawToken) {
		if t.OTPDigits != nil && *t.OTPDigits == 0 {
			errs = append(errs, fmt.Errorf("%sotp_digits: must be between %d and %d, got 0", prefix, minOTPDigits, maxOTPDigits))
		}
		if t.OTPInterval != nil && t.OTPInterval.Duration == 0 {
			errs = append(errs, fmt.Errorf("%sotp_interval: must be between %v and %v, got 0s", prefix, minOTPInterval, maxOTPInterval))
		}
	}
	check("token.", raw.Token)
	for i, h := range raw.Hosts {
		check(fmt.Sprintf("host[%d].token.", i), h.Token)
	}
	return errs, nil
}

// prefixEach prefixes every error joined in err (recursively) with
// "config: path: ", so each line of the message names the file.
func prefixEach(path string, err error) error {
	var out []error
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		out = append(out, fmt.Errorf("config: %s: %w", path, e))
	}
	walk(err)
	return errors.Join(out...)
}

// Validate checks c and returns every problem found, joined with
// errors.Join, each message starting with the key concerned. Zero token
// fields are taken as unset; limits are not (Load and Default fill them),
// so a zero limit is refused wherever its range excludes 0.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}

	if c.DataDir == "" {
		add("data_dir: must not be empty")
	}
	if !slices.Contains(strings.Split(logLevels, ", "), c.Log.Level) {
		add("log.level: %q is not one of %s", c.Log.Level, logLevels)
	}
	if !slices.Contains(strings.Split(logFormats, ", "), c.Log.Format) {
		add("log.format: %q is not one of %s", c.Log.Format, logFormats)
	}

	if len(c.C2S.Listen) == 0 && len(c.C2S.DirectTLS) == 0 {
		add("c2s.listen: no address in c2s.listen or c2s.direct_tls: the server would not accept clients")
	}
	seen := make(map[string]string) // normalized address → key that gave it
	checkAddrs := func(key string, addrs []string) {
		for i, a := range addrs {
			k := fmt.Sprintf("%s[%d]", key, i)
			norm, err := checkAddr(a)
			if err != nil {
				add("%s: %w", k, err)
				continue
			}
			if norm == "" {
				continue
			}
			if prev, ok := seen[norm]; ok {
				add("%s: address %q is already listed as %s", k, a, prev)
				continue
			}
			seen[norm] = k
		}
	}
	checkAddrs("c2s.listen", c.C2S.Listen)
	checkAddrs("c2s.direct_tls", c.C2S.DirectTLS)
	checkAddrs("http.listen", c.HTTP.Listen)
	checkAddrs("http.tls_listen", c.HTTP.TLSListen)
	errs = append(errs, c.HTTP.validate()...)
	checkAddrs("components.listen", c.Components.Listen)
	if c.Admin.Listen != "" {
		checkAddrs("admin.listen", []string{c.Admin.Listen})
	}
	errs = append(errs, c.Components.validate(c.Hosts)...)
	if c.Proxy65.Enabled() {
		checkAddrs("proxy65.listen", []string{c.Proxy65.Listen})
	}
	errs = append(errs, c.Proxy65.validate(c.Hosts, c.Components.Services)...)
	errs = append(errs, c.validateUpload()...)
	errs = append(errs, validateExternalServices(c.ExternalServices)...)

	switch {
	case c.TLS.Cert != "" && c.TLS.Key == "":
		add("tls.key: must be set when tls.cert is (or leave both empty for a self-signed certificate)")
	case c.TLS.Cert == "" && c.TLS.Key != "":
		add("tls.cert: must be set when tls.key is (or leave both empty for a self-signed certificate)")
	}
	errs = append(errs, c.validateACME()...)

	errs = append(errs, c.Token.validate("token.")...)

	if len(c.Hosts) == 0 {
		add("host: at least one [[host]] is required")
	}
	names := make(map[string]int) // lowercased name → index
	for i, h := range c.Hosts {
		p := fmt.Sprintf("host[%d].", i)
		if err := checkDomain(h.Name); err != nil {
			add("%sname: %w", p, err)
		} else {
			lower := strings.ToLower(h.Name)
			if j, ok := names[lower]; ok {
				add("%sname: %q is already host[%d]", p, h.Name, j)
			} else {
				names[lower] = i
			}
		}
		if h.OTPSeed != "" {
			if err := checkSeed(h.OTPSeed); err != nil {
				add("%sotp_seed: %w", p, err)
			}
			if h.TokenSecret == "" {
				add("%stoken_secret: required when otp_seed is set", p)
			} else if len(h.TokenSecret) < minSecretBytes {
				add("%stoken_secret: too short: %d bytes, need at least %d (\"ottr secrets\" makes 32)", p, len(h.TokenSecret), minSecretBytes)
			}
		} else if h.TokenSecret != "" {
			add("%sotp_seed: required when token_secret is set", p)
		}
		errs = append(errs, h.Token.validate(p+"token.")...)
		errs = append(errs, h.validateRotation(p)...)
		if d := h.MUCDomain(); h.MUC != nil && d != "" {
			if err := checkDomain(d); err != nil {
				add("%smuc: %w", p, err)
			}
		}
	}
	mucs := make(map[string]int) // MUC domain → host index
	for i, h := range c.Hosts {
		d := h.MUCDomain()
		if d == "" {
			continue
		}
		if _, ok := names[d]; ok {
			add("host[%d].muc: %q is a served host", i, d)
		} else if j, ok := mucs[d]; ok {
			add("host[%d].muc: %q is already host[%d]'s", i, d, j)
		}
		for _, s := range c.Components.Services {
			if strings.EqualFold(s.Name, d) {
				add("host[%d].muc: %q is a component's domain (set muc to another domain, or \"\" to turn the service off)", i, d)
			}
		}
		mucs[d] = i
	}
	for name, uris := range c.Contact.Addresses() {
		for _, u := range uris {
			if p, err := url.Parse(u); err != nil || p.Scheme == "" || p.Opaque == "" && p.Host == "" && p.Path == "" {
				add("contact.%s: %q is not a URI with a scheme (mailto:…, xmpp:…, https://…)", name, u)
			}
		}
	}
	errs = append(errs, c.Limits.validate()...)
	return errors.Join(errs...)
}

// validate checks the set fields of t; prefix is the dotted key of its table
// with a trailing dot.
func (t Token) validate(prefix string) []error {
	var errs []error
	if d := t.OTPDigits; d != 0 && (d < minOTPDigits || d > maxOTPDigits) {
		errs = append(errs, fmt.Errorf("%sotp_digits: must be between %d and %d, got %d", prefix, minOTPDigits, maxOTPDigits, d))
	}
	if iv := t.OTPInterval.Duration; iv != 0 {
		switch {
		case iv < minOTPInterval || iv > maxOTPInterval:
			errs = append(errs, fmt.Errorf("%sotp_interval: must be between %v and %v, got %v", prefix, minOTPInterval, maxOTPInterval, iv))
		case iv%time.Second != 0:
			errs = append(errs, fmt.Errorf("%sotp_interval: must be a whole number of seconds, got %v", prefix, iv))
		}
	}
	if d := t.OTPDeviation; d != nil && (*d < 0 || *d > maxOTPDeviation) {
		errs = append(errs, fmt.Errorf("%sotp_deviation: must be between 0 and %d, got %d", prefix, maxOTPDeviation, *d))
	}
	if n := t.NonceDigits; n != nil && (*n < 0 || *n > maxNonceDigits) {
		errs = append(errs, fmt.Errorf("%snonce_digits: must be between 0 (any length) and %d, got %d", prefix, maxNonceDigits, *n))
	}
	return errs
}

// checkAddr checks that a is host:port with a numeric port in 0..65535 and
// returns it normalized for duplicate detection. An empty host means every
// interface, as for net.Listen; port 0 picks a free port (the server logs
// the one it got), which tests that embed ottr use.
func checkAddr(a string) (string, error) {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return "", fmt.Errorf("%q is not host:port: %w", a, err)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return "", fmt.Errorf("%q: port %q is not a number between 0 and 65535", a, port)
	}
	if n == 0 {
		// Every port-0 listener gets its own port: never a duplicate.
		return "", nil
	}
	return net.JoinHostPort(strings.ToLower(host), strconv.FormatUint(n, 10)), nil
}

// checkDomain checks that name is a valid XMPP domainpart already in its
// canonical form, apart from letter case.
func checkDomain(name string) error {
	if name == "" {
		return errors.New("must not be empty")
	}
	j, err := jid.New("", name, "")
	if err != nil {
		return fmt.Errorf("%q is not a valid XMPP domain: %w", name, err)
	}
	if d := j.Domainpart(); d != strings.ToLower(name) {
		return fmt.Errorf("%q is not a bare XMPP domain in canonical form (it would be %q)", name, d)
	}
	return nil
}

// DecodeSeed decodes a base32 TOTP seed the way pyotp does: case is
// ignored and missing '=' padding is added.
func DecodeSeed(seed string) ([]byte, error) {
	s := strings.ToUpper(seed)
	if r := len(s) % 8; r != 0 {
		s += strings.Repeat("=", 8-r)
	}
	return base32.StdEncoding.DecodeString(s)
}

// checkSeed checks that seed decodes and is long enough. The messages never
// contain the seed.
func checkSeed(seed string) error {
	b, err := DecodeSeed(seed)
	if err != nil {
		return fmt.Errorf("not valid base32 (%w)", err)
	}
	if len(b) < minSeedBytes {
		return fmt.Errorf("too short: %d bytes, need at least %d (%d base32 characters)", len(b), minSeedBytes, minSeedBytes*8/5)
	}
	return nil
}

// Host returns the host named name, compared case-insensitively.
func (c *Config) Host(name string) (Host, bool) {
	for _, h := range c.Hosts {
		if strings.EqualFold(h.Name, name) {
			return h, true
		}
	}
	return Host{}, false
}

// Summary returns the values in force as TOML-like text, for
// "ottr check-config". Secrets are shown only as <set> or <unset>; each
// host's token settings are the effective ones; every limit is listed.
func (c *Config) Summary() string {
	var b strings.Builder
	line := func(format string, args ...any) {
		fmt.Fprintf(&b, format+"\n", args...)
	}
	line("data_dir = %q", c.DataDir)
	line("[log]")
	line("level = %q", c.Log.Level)
	line("format = %q", c.Log.Format)
	line("[c2s]")
	line("listen = %s", quoteList(c.C2S.Listen))
	line("direct_tls = %s", quoteList(c.C2S.DirectTLS))
	line("require_tls = %t", c.C2S.RequireTLSOrDefault())
	line("[tls]")
	if c.TLS.Cert == "" && c.TLS.Key == "" {
		line("cert = \"\"  # self-signed, in data_dir")
		line("key = \"\"")
	} else {
		line("cert = %q", c.TLS.Cert)
		line("key = %q", c.TLS.Key)
	}
	writeACME(&b, c)
	line("[token]")
	writeToken(&b, c.Token)
	for _, h := range c.Hosts {
		line("[[host]]")
		line("name = %q", h.Name)
		line("otp_seed = %s", redact(h.OTPSeed))
		line("token_secret = %s", redact(h.TokenSecret))
		if h.PreviousOTPSeed != "" {
			line("previous_otp_seed = %s", redact(h.PreviousOTPSeed))
			line("previous_token_secret = %s", redact(h.PreviousTokenSecret))
			line("previous_until = %s", h.PreviousUntil.UTC().Format(time.RFC3339))
		}
		line("muc = %q", h.MUCDomain())
		line("upload = %q", h.UploadDomain(c.HTTP.Enabled()))
		line("[host.token]  # effective")
		writeToken(&b, h.EffectiveToken(c.Token))
	}
	line("[limits]")
	writeLimits(&b, c.Limits)
	line("[http]")
	writeHTTP(&b, c.HTTP)
	writeComponents(&b, c.Components)
	writeProxy65(&b, c.Proxy65, c.Hosts)
	writeUpload(&b, c)
	writeExternalServices(&b, c.ExternalServices)
	line("[admin]")
	line("listen = %q", c.Admin.Listen)
	return b.String()
}

// writeToken writes the token settings in force for t.
func writeToken(b *strings.Builder, t Token) {
	fmt.Fprintf(b, "otp_digits = %d\n", t.Digits())
	fmt.Fprintf(b, "otp_interval = %q\n", t.Interval().String())
	fmt.Fprintf(b, "otp_deviation = %d\n", t.Deviation())
	fmt.Fprintf(b, "nonce_digits = %d\n", t.NonceLen())
}

// redact hides a secret, telling only whether it is set.
func redact(s string) string {
	if s == "" {
		return "<unset>"
	}
	return "<set>"
}

// quoteList formats a string list as a TOML array.
func quoteList(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// DatabaseFile is the name of the embedded database inside data_dir.
const DatabaseFile = "ottr.db"

// DatabasePath is where the embedded database lives: the server and the
// CLI (`ottr user ...`) open the same file.
func (c *Config) DatabasePath() string { return filepath.Join(c.DataDir, DatabaseFile) }

// TLSDir is where the generated self-signed certificate is kept.
func (c *Config) TLSDir() string { return filepath.Join(c.DataDir, "tls") }
