package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fixtures is the directory of the configuration fixtures.
const fixtures = "../testdata/config"

func ptr[T any](v T) *T { return &v }

func TestLoadGood(t *testing.T) {
	path := filepath.Join(fixtures, "good.toml")
	got, err := Load(path)
	if err != nil {
		t.Fatalf("Load(%s): %v", path, err)
	}
	want := &Config{
		DataDir: "/var/lib/ottr",
		Log:     Log{Level: "debug", Format: "text"},
		C2S: C2S{
			Listen:     []string{"0.0.0.0:5222", "[::]:5222"},
			DirectTLS:  []string{":5223"},
			RequireTLS: ptr(false),
		},
		TLS:   TLS{Cert: "/etc/ottr/cert.pem", Key: "/etc/ottr/key.pem", ACMEDirectory: DefaultACMEDirectory},
		Token: Token{OTPDigits: 6, OTPInterval: Duration{time.Minute}, OTPDeviation: ptr(0), NonceDigits: ptr(32)},
		Hosts: []Host{
			{Name: "example.com", OTPSeed: "xvgr73kmzh2m4xmy", TokenSecret: "JYXEX4IQOEYFYQ2S3MC5P4ZT4SDHYEA7"},
			{
				Name:        "Chat.Example.org",
				OTPSeed:     "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
				TokenSecret: "another secret, longer",
				Token:       Token{OTPDigits: 10, OTPDeviation: ptr(2), NonceDigits: ptr(20)},
			},
		},
		Limits: Limits{
			MaxStanzaBytes:        512 * 1024,
			MaxPrebindBytes:       8 * 1024,
			MaxDepth:              16,
			MaxAttributes:         32,
			AuthTimeout:           Duration{20 * time.Second},
			MaxConnections:        500,
			ConnectionsPerAddress: 50,
			ConnectionRate:        Rate{5, time.Minute},
			ConnectionBurst:       20,
			Keepalive:             Duration{90 * time.Second},
			IdleTimeout:           Duration{10 * time.Minute},
			ResumptionTimeout:     Duration{10 * time.Minute},
			FastTokenLifetime:     Duration{336 * time.Hour},
			FastTokenRotation:     Duration{24 * time.Hour},
			WriteTimeout:          Duration{15 * time.Second},
			SendQueue:             256,
			SendQueueBytes:        1 << 20,
			MaxAuthAttempts:       3,
			AuthFailuresAddress:   Rate{100, time.Hour},
			AuthFailuresPair:      Rate{3, time.Minute},
			AuthFailuresAccount:   Rate{5, time.Minute},
			AuthFailureDelay:      Duration{500 * time.Millisecond},
			AuthFailureBurst:      3,
			OfflineMessages:       0,
			OfflineBytes:          2 << 20,
			VCardBytes:            16 * 1024,
			PrivateBytes:          32 * 1024,
			PrivateDocuments:      20,
			PrivateTotalBytes:     256 * 1024,
			RosterItems:           500,
			RosterBytes:           512 * 1024,
			BlockedItems:          200,
			DirectedPresences:     50,
			ArchiveMessages:       100000,
			ArchiveBytes:          64 << 20,
			ArchiveRetention:      Duration{8760 * time.Hour},
			ArchivePageSize:       250,
			PushRegistrations:     8,
			PushInterval:          Duration{5 * time.Second},
			PEPNodes:              256,
			PEPItems:              256,
			PEPItemBytes:          128 << 10,
			PEPBytes:              4 << 20,
			MUCRooms:              10_000,
			MUCRoomsPerUser:       100,
			MUCOccupants:          1000,
			MUCHistoryMessages:    50,
			MUCHistoryBytes:       256 << 10,
			MUCStanzaRate:         Rate{N: 10, Per: time.Second},
		},
		HTTP: HTTP{
			Listen:         []string{"127.0.0.1:5280"},
			TLSListen:      []string{"[::]:5281"},
			Origins:        []string{"https://app.example", "HTTP://Localhost:8080/"},
			TrustedProxies: []string{"127.0.0.1", "10.0.0.0/8"},
			PublicURL:      "https://chat.example/xmpp",
			BOSHMaxWait:    Duration{30 * time.Second},
			BOSHInactivity: Duration{2 * time.Minute},
		},
		Proxy65: Proxy65{
			TransferBandwidth: DefaultProxy65TransferBandwidth, TotalBandwidth: DefaultProxy65TotalBandwidth,
			MaxTransfers: DefaultProxy65MaxTransfers, TransfersPerUser: DefaultProxy65TransfersPerUser, MaxPending: DefaultProxy65MaxPending,
			PendingTimeout: Duration{DefaultProxy65PendingTimeout}, ConnectionsPerAddress: DefaultProxy65PerAddress,
			IdleTimeout: Duration{DefaultProxy65IdleTimeout},
		},
		Upload: Upload{
			MaxFileBytes: DefaultUploadMaxFileBytes, QuotaBytes: DefaultUploadQuotaBytes, QuotaFiles: DefaultUploadQuotaFiles,
			SlotLifetime: Duration{DefaultUploadSlotLifetime}, FileLifetime: Duration{DefaultUploadFileLifetime},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load(%s) =\n%+v\nwant\n%+v", path, got, want)
	}
	if got.C2S.RequireTLSOrDefault() {
		t.Error("RequireTLSOrDefault() = true, want false as configured")
	}

	eff := got.Hosts[1].EffectiveToken(got.Token)
	if eff.Digits() != 10 || eff.Interval() != time.Minute || eff.Deviation() != 2 {
		t.Errorf("host[1] effective token = %d/%v/%d, want 10/1m0s/2", eff.Digits(), eff.Interval(), eff.Deviation())
	}
	eff = got.Hosts[0].EffectiveToken(got.Token)
	if eff.Digits() != 6 || eff.Interval() != time.Minute || eff.Deviation() != 0 {
		t.Errorf("host[0] effective token = %d/%v/%d, want 6/1m0s/0", eff.Digits(), eff.Interval(), eff.Deviation())
	}
	// nonce_digits is host-overridable, 0 (any length) included.
	if n := got.Hosts[1].EffectiveToken(got.Token).NonceLen(); n != 20 {
		t.Errorf("host[1] nonce_digits = %d, want 20", n)
	}
	if n := got.Hosts[0].EffectiveToken(got.Token).NonceLen(); n != 32 {
		t.Errorf("host[0] nonce_digits = %d, want 32 (the default)", n)
	}
	if n := (Host{Token: Token{NonceDigits: ptr(0)}}).EffectiveToken(got.Token).NonceLen(); n != 0 {
		t.Errorf("a host's nonce_digits = 0 gave %d", n)
	}
}

func TestLoadBad(t *testing.T) {
	tests := []struct {
		file string
		want []string // each must appear in the error text
	}{
		{"unknown_key.toml", []string{`unknown key "c2s.lissen"`}},
		{"unknown_table.toml", []string{`unknown key "storage"`}},
		{"unknown_host_key.toml", []string{`unknown key "host.nmae"`}},
		{"unknown_host_token_key.toml", []string{`unknown key "host.token.otp_digit"`}},
		{"bad_port.toml", []string{"c2s.listen[0]", "99999"}},
		{"named_port.toml", []string{"c2s.listen[0]", "xmpp-client"}},
		{"missing_port.toml", []string{"c2s.direct_tls[0]", "host:port"}},
		{"duplicate_address.toml", []string{"c2s.direct_tls[0]", "already listed as c2s.listen[0]"}},
		{"no_listeners.toml", []string{"c2s.listen", "c2s.direct_tls"}},
		{"bad_seed.toml", []string{"host[0].otp_seed", "not valid base32"}},
		{"short_seed.toml", []string{"host[0].otp_seed", "too short"}},
		{"short_secret.toml", []string{"host[0].token_secret", "too short", "15 bytes", "at least 16"}},
		{"nonce_digits_out_of_range.toml", []string{"token.nonce_digits", "got 257", "host[0].token.nonce_digits", "got -1"}},
		{"seed_without_secret.toml", []string{"host[0].token_secret", "required"}},
		{"secret_without_seed.toml", []string{"host[0].otp_seed", "required"}},
		{"duplicate_host.toml", []string{"host[1].name", "already host[0]"}},
		{"host_with_localpart.toml", []string{"host[0].name", "admin@example.com"}},
		{"host_not_canonical.toml", []string{"host[0].name", "canonical"}},
		{"host_empty_name.toml", []string{"host[0].name", "empty"}},
		{"no_hosts.toml", []string{"host:", "at least one"}},
		{"cert_without_key.toml", []string{"tls.key"}},
		{"key_without_cert.toml", []string{"tls.cert"}},
		{"integer_duration.toml", []string{"token.otp_interval", `"30s"`}},
		{"unitless_duration.toml", []string{"token.otp_interval", `"30s"`}},
		{"fractional_interval.toml", []string{"token.otp_interval", "whole number of seconds"}},
		{"interval_too_long.toml", []string{"token.otp_interval", "between 1s and 10m0s"}},
		{"interval_zero.toml", []string{"token.otp_interval", "got 0s"}},
		{"digits_out_of_range.toml", []string{"token.otp_digits", "got 12"}},
		{"digits_zero.toml", []string{"token.otp_digits", "got 0"}},
		{"host_digits_out_of_range.toml", []string{"host[0].token.otp_digits", "got 5"}},
		{"host_digits_zero.toml", []string{"host[1].token.otp_digits", "got 0"}},
		{"deviation_negative.toml", []string{"token.otp_deviation", "got -1"}},
		{"deviation_too_large.toml", []string{"host[0].token.otp_deviation", "got 11"}},
		{"bad_log_level.toml", []string{"log.level", "verbose"}},
		{"empty_data_dir.toml", []string{"data_dir"}},
		{"wrong_type.toml", []string{"c2s.require_tls"}},
		{"syntax_error.toml", []string{"line 2", "table name"}},
		{"http_unknown_key.toml", []string{`unknown key "http.listn"`}},
		{"http_bad_address.toml", []string{"http.listen[0]", "host:port", "http.tls_listen[0]", "99999"}},
		{"http_duplicate_address.toml", []string{"http.tls_listen[0]", "already listed as c2s.listen[0]"}},
		{"http_bad_origins.toml", []string{
			"http.origins[0]", "without a path", "http.origins[1]", "http.origins[2]", "http.origins[3]", "user information",
		}},
		{"http_many_errors.toml", []string{
			"http.trusted_proxies[0]", "http.trusted_proxies[1]", "http.public_url", "http.bosh_max_wait", "http.bosh_inactivity",
		}},
		{"many_errors.toml", []string{
			"data_dir:", "log.level", "c2s.listen[0]", "tls.cert", "host[0].name", "host[0].otp_seed",
		}},
	}
	for _, tt := range tests {
		t.Run(strings.TrimSuffix(tt.file, ".toml"), func(t *testing.T) {
			checkLoadError(t, tt.file, tt.want)
		})
	}
}

// checkLoadError loads the fixture file and checks that it fails with an
// error that contains each of want and names the file on every line.
func checkLoadError(t *testing.T, file string, want []string) {
	t.Helper()
	path := filepath.Join(fixtures, file)
	c, err := Load(path)
	if err == nil {
		t.Fatalf("Load(%s) = %+v, want an error", path, c)
	}
	msg := err.Error()
	for _, w := range append([]string{path}, want...) {
		if !strings.Contains(msg, w) {
			t.Errorf("Load(%s) error does not contain %q:\n%s", path, w, msg)
		}
	}
	// Every line names the file.
	for line := range strings.SplitSeq(msg, "\n") {
		if !strings.Contains(line, path) {
			t.Errorf("error line does not name the file: %q", line)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.toml")
	_, err := Load(path)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Errorf("Load(%s) = %v, want a not-exist error naming the file", path, err)
	}
}

func TestLoadSecretsNotInErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.toml")
	const seed = "SECRETSEEDXX!!!!"
	data := "[[host]]\nname = \"example.com\"\notp_seed = \"" + seed + "\"\ntoken_secret = \"hush\"\n"
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if err == nil {
		t.Fatal("Load: no error for an invalid seed")
	}
	if strings.Contains(err.Error(), seed) || strings.Contains(err.Error(), "hush") {
		t.Errorf("error leaks a secret: %v", err)
	}
}

func TestExample(t *testing.T) {
	c, err := Load(examplePath)
	if err != nil {
		t.Fatalf("Load(%s): %v", examplePath, err)
	}
	// The example documents the defaults: apart from the example secrets it
	// must say exactly what an empty file means.
	want := Default()
	want.C2S.DirectTLS = []string{}
	want.HTTP.Listen = []string{}
	want.HTTP.TLSListen = []string{}
	want.HTTP.Origins = []string{}
	want.HTTP.TrustedProxies = []string{}
	want.Components.Listen = []string{}
	want.Hosts[0].OTPSeed = "XVGR73KMZH2M4XMY"
	want.Hosts[0].TokenSecret = "JYXEX4IQOEYFYQ2S3MC5P4ZT4SDHYEA7"
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Load(%s) =\n%+v\nwant the defaults\n%+v", examplePath, c, want)
	}
}

func TestDefaults(t *testing.T) {
	d := Default()
	if err := d.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"data_dir", d.DataDir, "./ottr-data"},
		{"log.level", d.Log.Level, "info"},
		{"c2s.listen", d.C2S.Listen, []string{"127.0.0.1:5222"}},
		{"c2s.direct_tls", d.C2S.DirectTLS, []string(nil)},
		{"c2s.require_tls", d.C2S.RequireTLSOrDefault(), true},
		{"log.format", d.Log.Format, "text"},
		{"tls", d.TLS, TLS{ACMEDirectory: DefaultACMEDirectory}},
		{"token.otp_digits", d.Token.Digits(), 8},
		{"token.otp_interval", d.Token.Interval(), 30 * time.Second},
		{"token.otp_deviation", d.Token.Deviation(), 1},
		{"token.nonce_digits", d.Token.NonceLen(), 32},
		{"host", d.Hosts, []Host{{Name: "localhost"}}},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("Default() %s = %#v, want %#v", c.name, c.got, c.want)
		}
	}

	// An empty file means the defaults.
	path := filepath.Join(fixtures, "empty.toml")
	got, err := Load(path)
	if err != nil {
		t.Fatalf("Load(%s): %v", path, err)
	}
	if !reflect.DeepEqual(got, d) {
		t.Errorf("Load(%s) =\n%+v\nwant Default()\n%+v", path, got, d)
	}

	// Default returns a fresh value each time.
	d.Hosts[0].Name = "changed"
	*d.C2S.RequireTLS = false
	if e := Default(); e.Hosts[0].Name != "localhost" || !e.C2S.RequireTLSOrDefault() {
		t.Error("Default() shares state between calls")
	}
}

func TestValidateZero(t *testing.T) {
	err := (&Config{}).Validate()
	if err == nil {
		t.Fatal("Config{}.Validate() = nil, want errors")
	}
	for _, key := range []string{"data_dir", "log.level", "c2s.listen", "host:"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("Config{}.Validate() does not mention %q:\n%v", key, err)
		}
	}
}

func TestEffectiveToken(t *testing.T) {
	tests := []struct {
		name     string
		host     Token
		defaults Token
		want     [3]any // digits, interval, deviation
	}{
		{"all unset", Token{}, Token{}, [3]any{8, 30 * time.Second, 1}},
		{"top-level", Token{}, Token{OTPDigits: 6, OTPInterval: Duration{time.Minute}, OTPDeviation: ptr(0)},
			[3]any{6, time.Minute, 0}},
		{"host overrides", Token{OTPDigits: 10, OTPInterval: Duration{10 * time.Second}, OTPDeviation: ptr(3)},
			Token{OTPDigits: 6, OTPInterval: Duration{time.Minute}, OTPDeviation: ptr(0)},
			[3]any{10, 10 * time.Second, 3}},
		{"host zero deviation", Token{OTPDeviation: ptr(0)}, Token{}, [3]any{8, 30 * time.Second, 0}},
		{"mixed", Token{OTPDigits: 7}, Token{OTPInterval: Duration{time.Minute}}, [3]any{7, time.Minute, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := Host{Token: tt.host}.EffectiveToken(tt.defaults)
			got := [3]any{e.Digits(), e.Interval(), e.Deviation()}
			if got != tt.want {
				t.Errorf("EffectiveToken = %v, want %v", got, tt.want)
			}
			// Every field is set, so the raw fields agree with the accessors.
			raw := [3]any{e.OTPDigits, e.OTPInterval.Duration, *e.OTPDeviation}
			if raw != tt.want {
				t.Errorf("EffectiveToken raw fields = %v, want %v", raw, tt.want)
			}
		})
	}
	// The result does not alias the inputs.
	dev := 2
	defaults := Token{OTPDeviation: &dev}
	e := Host{}.EffectiveToken(defaults)
	*e.OTPDeviation = 9
	if dev != 2 {
		t.Error("EffectiveToken result aliases the defaults")
	}
}

func TestDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{"30s", 30 * time.Second, ""},
		{"1m30s", 90 * time.Second, ""},
		{"30", 0, `write "30s"`},
		{"soon", 0, `"30s"`},
	}
	for _, tt := range tests {
		var d Duration
		err := d.UnmarshalText([]byte(tt.in))
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("UnmarshalText(%q) = %v", tt.in, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("UnmarshalText(%q) = %v, want an error containing %q", tt.in, err, tt.wantErr)
		case d.Duration != tt.want:
			t.Errorf("UnmarshalText(%q) = %v, want %v", tt.in, d.Duration, tt.want)
		}
	}
	text, err := Duration{90 * time.Second}.MarshalText()
	if err != nil || string(text) != "1m30s" {
		t.Errorf("MarshalText = %q, %v; want \"1m30s\"", text, err)
	}
}

func TestDecodeSeed(t *testing.T) {
	want, err := DecodeSeed("XVGR73KMZH2M4XMY")
	if err != nil || len(want) != 10 {
		t.Fatalf("DecodeSeed = %x, %v; want 10 bytes", want, err)
	}
	// pyotp ignores case.
	for _, s := range []string{"xvgr73kmzh2m4xmy", "XvGr73KmZh2m4XmY"} {
		got, err := DecodeSeed(s)
		if err != nil || string(got) != string(want) {
			t.Errorf("DecodeSeed(%q) = %x, %v; want %x", s, got, err, want)
		}
	}
	unpadded, err := DecodeSeed("JBSWY3DPEHPK3PXPJB")
	padded, err2 := DecodeSeed("JBSWY3DPEHPK3PXPJB======")
	if err != nil || err2 != nil || string(unpadded) != string(padded) {
		t.Errorf("DecodeSeed unpadded = %x, %v; padded = %x, %v", unpadded, err, padded, err2)
	}
}

func TestHostLookup(t *testing.T) {
	c, err := Load(filepath.Join(fixtures, "good.toml"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		want   string
		wantOK bool
	}{
		{"example.com", "example.com", true},
		{"EXAMPLE.COM", "example.com", true},
		{"chat.example.org", "Chat.Example.org", true},
		{"example.org", "", false},
	}
	for _, tt := range tests {
		h, ok := c.Host(tt.name)
		if ok != tt.wantOK || h.Name != tt.want {
			t.Errorf("Host(%q) = %q, %t; want %q, %t", tt.name, h.Name, ok, tt.want, tt.wantOK)
		}
	}
}

func TestSummary(t *testing.T) {
	c, err := Load(filepath.Join(fixtures, "good.toml"))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Summary()
	for _, secret := range []string{"xvgr73kmzh2m4xmy", "JYXEX4IQOEYFYQ2S3MC5P4ZT4SDHYEA7", "JBSWY3DP", "another secret, longer"} {
		if strings.Contains(s, secret) {
			t.Errorf("Summary leaks %q:\n%s", secret, s)
		}
	}
	for _, want := range []string{
		`data_dir = "/var/lib/ottr"`,
		`level = "debug"`,
		`listen = ["0.0.0.0:5222", "[::]:5222"]`,
		`direct_tls = [":5223"]`,
		"require_tls = false",
		`cert = "/etc/ottr/cert.pem"`,
		`name = "Chat.Example.org"`,
		"otp_seed = <set>",
		"token_secret = <set>",
		"otp_digits = 10",
		`otp_interval = "1m0s"`,
		"otp_deviation = 2",
		"nonce_digits = 20",
		"nonce_digits = 32",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("Summary lacks %q:\n%s", want, s)
		}
	}
	if s := Default().Summary(); !strings.Contains(s, "otp_seed = <unset>") || !strings.Contains(s, "self-signed") {
		t.Errorf("Default().Summary() lacks <unset> seed or self-signed note:\n%s", s)
	}
}
