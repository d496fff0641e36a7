package config

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// wantDefaultLimits spells out the documented defaults, independently of
// DefaultLimits.
var wantDefaultLimits = Limits{
	MaxStanzaBytes:        262144,
	MaxPrebindBytes:       16384,
	MaxDepth:              32,
	MaxAttributes:         64,
	AuthTimeout:           Duration{30 * time.Second},
	MaxConnections:        10000,
	ConnectionsPerAddress: 100,
	ConnectionRate:        Rate{N: 100, Per: time.Second},
	ConnectionBurst:       200,
	Keepalive:             Duration{60 * time.Second},
	IdleTimeout:           Duration{5 * time.Minute},
	ResumptionTimeout:     Duration{10 * time.Minute},
	FastTokenLifetime:     Duration{336 * time.Hour},
	FastTokenRotation:     Duration{24 * time.Hour},
	WriteTimeout:          Duration{30 * time.Second},
	SendQueue:             1024,
	SendQueueBytes:        4194304,
	MaxAuthAttempts:       5,
	AuthFailuresAddress:   Rate{N: 30, Per: time.Minute},
	AuthFailuresPair:      Rate{N: 10, Per: time.Minute},
	AuthFailuresAccount:   Rate{N: 10, Per: time.Minute},
	AuthFailureDelay:      Duration{2 * time.Second},
	AuthFailureBurst:      10,
	OfflineMessages:       1000,
	OfflineBytes:          4194304,
	VCardBytes:            65536,
	PrivateBytes:          65536,
	PrivateDocuments:      100,
	PrivateTotalBytes:     1048576,
	RosterItems:           2000,
	RosterBytes:           1048576,
	BlockedItems:          1000,
	DirectedPresences:     200,
	ArchiveMessages:       100000,
	ArchiveBytes:          67108864,
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
}

func TestLimitDefaults(t *testing.T) {
	if got := DefaultLimits(); got != wantDefaultLimits {
		t.Errorf("DefaultLimits() =\n%+v\nwant\n%+v", got, wantDefaultLimits)
	}
	if got := Default().Limits; got != wantDefaultLimits {
		t.Errorf("Default().Limits =\n%+v\nwant\n%+v", got, wantDefaultLimits)
	}
	path := filepath.Join(fixtures, "empty.toml")
	c, err := Load(path)
	if err != nil {
		t.Fatalf("Load(%s): %v", path, err)
	}
	if c.Limits != wantDefaultLimits {
		t.Errorf("Load(%s).Limits =\n%+v\nwant\n%+v", path, c.Limits, wantDefaultLimits)
	}
	if errs := wantDefaultLimits.validate(); len(errs) != 0 {
		t.Errorf("default limits do not validate: %v", errs)
	}
}

// TestLoadPartialLimits checks that only the keys given change: the others
// keep their defaults, and an explicit offline_messages = 0 is kept.
func TestLoadPartialLimits(t *testing.T) {
	tests := []struct {
		file   string
		change func(*Limits)
	}{
		{"limits_offline_off.toml", func(l *Limits) { l.OfflineMessages = 0 }},
		{"limits_inline.toml", func(l *Limits) {
			l.MaxDepth = 8
			l.ConnectionRate = Rate{N: 2, Per: time.Hour}
		}},
	}
	for _, tt := range tests {
		t.Run(strings.TrimSuffix(tt.file, ".toml"), func(t *testing.T) {
			path := filepath.Join(fixtures, tt.file)
			c, err := Load(path)
			if err != nil {
				t.Fatalf("Load(%s): %v", path, err)
			}
			want := DefaultLimits()
			tt.change(&want)
			if c.Limits != want {
				t.Errorf("Load(%s).Limits =\n%+v\nwant\n%+v", path, c.Limits, want)
			}
		})
	}
}

func TestLoadBadLimits(t *testing.T) {
	tests := []struct {
		file string
		want []string // each must appear in the error text
	}{
		{"limits_unknown_key.toml", []string{`unknown key "limits.max_stanza"`}},
		{"limits_stanza_too_small.toml", []string{"limits.max_stanza_bytes:", "between 4096 and 67108864", "got 1024"}},
		{"limits_stanza_too_large.toml", []string{"limits.max_stanza_bytes:", "got 67108865"}},
		{"limits_prebind_too_small.toml", []string{"limits.max_prebind_bytes:", "between 4096 and 1048576", "got 1024"}},
		{"limits_prebind_too_large.toml", []string{"limits.max_prebind_bytes:", "got 1048577"}},
		{"limits_depth_zero.toml", []string{"limits.max_depth:", "between 4 and 256", "got 0"}},
		{"limits_depth_too_large.toml", []string{"limits.max_depth:", "got 257"}},
		{"limits_attributes_too_small.toml", []string{"limits.max_attributes:", "between 4 and 1024", "got 3"}},
		{"limits_auth_timeout_zero.toml", []string{"limits.auth_timeout:", "between 1s and 24h0m0s", "got 0s"}},
		{"limits_idle_timeout_too_long.toml", []string{"limits.idle_timeout:", "got 25h0m0s"}},
		{"limits_write_timeout_integer.toml", []string{"limits.write_timeout", `"30s"`}},
		{"limits_keepalive_not_shorter.toml", []string{"limits.keepalive:", "shorter than limits.idle_timeout"}},
		{"limits_connections_zero.toml", []string{"limits.max_connections:", "between 1 and 10000000", "got 0"}},
		{"limits_connections_too_many.toml", []string{"limits.max_connections:", "got 10000001"}},
		{"limits_per_address_zero.toml", []string{"limits.connections_per_address:", "between 1 and 10000000", "got 0"}},
		{"limits_per_address_too_many.toml", []string{"limits.connections_per_address:", "got 10000001"}},
		{"limits_rate_zero.toml", []string{"limits.connection_rate", "positive", "0/s"}},
		{"limits_rate_per_day.toml", []string{"limits.auth_failures_per_address", `unknown period "day"`}},
		{"limits_rate_no_period.toml", []string{"limits.auth_failures_per_account", `"10/s"`}},
		{"limits_rate_integer.toml", []string{"limits.connection_rate", `"100/s"`}},
		{"limits_rate_negative.toml", []string{"limits.connection_rate", "positive whole number"}},
		{"limits_connection_burst_zero.toml", []string{"limits.connection_burst:", "at least 1, got 0"}},
		{"limits_send_queue_too_small.toml", []string{"limits.send_queue:", "between 16 and 1000000", "got 8"}},
		{"limits_send_queue_bytes_too_small.toml", []string{"limits.send_queue_bytes:", "at least 65536, got 1024"}},
		{"limits_send_queue_bytes_below_stanza.toml", []string{"limits.send_queue_bytes:", "limits.max_stanza_bytes (1048576)", "got 524288"}},
		{"limits_auth_attempts_zero.toml", []string{"limits.max_auth_attempts:", "between 1 and 20", "got 0"}},
		{"limits_auth_attempts_too_many.toml", []string{"limits.max_auth_attempts:", "got 21"}},
		{"limits_auth_failure_burst_zero.toml", []string{"limits.auth_failure_burst:", "at least 1, got 0"}},
		{"limits_offline_negative.toml", []string{"limits.offline_messages:", "between 0 and 1000000", "got -1"}},
		{"limits_offline_too_many.toml", []string{"limits.offline_messages:", "got 1000001"}},
		{"limits_vcard_too_large.toml", []string{"limits.vcard_bytes:", "between 1024 and 16777216", "got 16777217"}},
		{"limits_private_too_small.toml", []string{"limits.private_bytes:", "got 512"}},
		{"limits_roster_too_small.toml", []string{"limits.roster_items:", "between 10 and 1000000", "got 5"}},
		{"limits_archive.toml", []string{
			"limits.archive_messages:", "between 0 and 10000000", "got 10000001",
			"limits.archive_bytes:", "between 1024 and 1073741824", "got 512",
			"limits.archive_retention:", "between 1h0m0s and 876000h0m0s", "got 59m0s",
			"limits.archive_page_size:", "between 1 and 10000", "got 0",
		}},
		{"limits_archive_retention_long.toml", []string{
			"limits.archive_messages:", "got -1",
			"limits.archive_retention:", "got 876001h0m0s",
			"limits.archive_page_size:", "got 10001",
		}},
		{"limits_store_quotas.toml", []string{
			"limits.offline_bytes:", "between 1024 and 1073741824", "got 1073741825",
			"limits.private_documents:", "between 1 and 100000", "got 0",
			"limits.private_total_bytes:", "at least limits.private_bytes (65536), got 4096",
			"limits.roster_bytes:", "between 16384 and 1073741824", "got 1024",
			"limits.blocked_items:", "between 10 and 1000000", "got 9",
		}},
		{"limits_many_errors.toml", []string{
			"limits.max_stanza_bytes:", "limits.max_depth:", "limits.keepalive:",
			"limits.send_queue:", "limits.vcard_bytes:", "limits.roster_items:",
		}},
	}
	for _, tt := range tests {
		t.Run(strings.TrimSuffix(tt.file, ".toml"), func(t *testing.T) {
			checkLoadError(t, tt.file, tt.want)
		})
	}
}

// TestValidateZeroLimits checks that Validate covers every limit: a zero
// Limits is refused for every key whose range excludes 0.
func TestValidateZeroLimits(t *testing.T) {
	c := Default()
	c.Limits = Limits{}
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate() with zero limits = nil, want errors")
	}
	for _, key := range limitKeys() {
		if key == "offline_messages" || key == "auth_failure_delay" || key == "archive_messages" || key == "muc_history_messages" {
			continue
		}
		if !strings.Contains(err.Error(), "limits."+key+":") {
			t.Errorf("Validate() with zero limits does not mention limits.%s:\n%v", key, err)
		}
	}
	if strings.Contains(err.Error(), "limits.archive_messages") {
		t.Errorf("Validate() refuses archive_messages = 0:\n%v", err)
	}
	if strings.Contains(err.Error(), "limits.offline_messages") {
		t.Errorf("Validate() refuses offline_messages = 0:\n%v", err)
	}
	if strings.Contains(err.Error(), "limits.auth_failure_delay") {
		t.Errorf("Validate() refuses auth_failure_delay = 0s:\n%v", err)
	}
}

func TestRate(t *testing.T) {
	tests := []struct {
		in      string
		want    Rate
		wantErr string // empty: no error
	}{
		{"100/s", Rate{100, time.Second}, ""},
		{"30/min", Rate{30, time.Minute}, ""},
		{"2/h", Rate{2, time.Hour}, ""},
		{"1/s", Rate{1, time.Second}, ""},
		{"007/min", Rate{7, time.Minute}, ""},
		{"0/s", Rate{}, "positive"},
		{"0/h", Rate{}, "positive"},
		{"abc", Rate{}, `write it like "100/s"`},
		{"", Rate{}, `write it like "100/s"`},
		{"10/day", Rate{}, `unknown period "day"`},
		{"10/m", Rate{}, `unknown period "m"`},
		{"10/S", Rate{}, `unknown period "S"`},
		{"10/sec", Rate{}, `unknown period "sec"`},
		{"-5/s", Rate{}, "positive whole number"},
		{"+5/s", Rate{}, "positive whole number"},
		{"1.5/s", Rate{}, "positive whole number"},
		{" 5/s", Rate{}, "positive whole number"},
		{"5 /s", Rate{}, "positive whole number"},
		{"5/ s", Rate{}, `unknown period " s"`},
		{"/s", Rate{}, "positive whole number"},
		{"10", Rate{}, `write "10/s", "10/min" or "10/h"`},
		{"10/", Rate{}, `unknown period ""`},
		{"10/s/s", Rate{}, `unknown period "s/s"`},
		{"99999999999999999999/s", Rate{}, "too large"},
	}
	for _, tt := range tests {
		r := Rate{N: -1} // must be left alone on error
		err := r.UnmarshalText([]byte(tt.in))
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("UnmarshalText(%q) = %v", tt.in, err)
		case tt.wantErr == "" && r != tt.want:
			t.Errorf("UnmarshalText(%q) = %+v, want %+v", tt.in, r, tt.want)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("UnmarshalText(%q) = %v, want an error containing %q", tt.in, err, tt.wantErr)
		case tt.wantErr != "" && r != (Rate{N: -1}):
			t.Errorf("UnmarshalText(%q) failed but changed the rate to %+v", tt.in, r)
		}
	}
}

func TestRateFormat(t *testing.T) {
	tests := []struct {
		r         Rate
		str       string
		perSecond float64
	}{
		{Rate{100, time.Second}, "100/s", 100},
		{Rate{30, time.Minute}, "30/min", 0.5},
		{Rate{36, time.Hour}, "36/h", 0.01},
	}
	for _, tt := range tests {
		if s := tt.r.String(); s != tt.str {
			t.Errorf("%#v.String() = %q, want %q", tt.r, s, tt.str)
		}
		if p := tt.r.PerSecond(); p != tt.perSecond {
			t.Errorf("%#v.PerSecond() = %v, want %v", tt.r, p, tt.perSecond)
		}
		text, err := tt.r.MarshalText()
		if err != nil || string(text) != tt.str {
			t.Errorf("%#v.MarshalText() = %q, %v; want %q", tt.r, text, err, tt.str)
			continue
		}
		var back Rate
		if err := back.UnmarshalText(text); err != nil || back != tt.r {
			t.Errorf("UnmarshalText(%q) = %+v, %v; want %+v", text, back, err, tt.r)
		}
	}
	for _, r := range []Rate{{}, {0, time.Second}, {-1, time.Second}, {5, 2 * time.Second}} {
		if text, err := r.MarshalText(); err == nil {
			t.Errorf("%#v.MarshalText() = %q, want an error", r, text)
		}
	}
	if p := (Rate{}).PerSecond(); p != 0 {
		t.Errorf("Rate{}.PerSecond() = %v, want 0", p)
	}
	if s := (Rate{5, 2 * time.Second}).String(); s != "5/2s" {
		t.Errorf("Rate{5, 2s}.String() = %q, want \"5/2s\"", s)
	}
}

func TestSummaryLimits(t *testing.T) {
	s := Default().Summary()
	for _, want := range []string{
		"\n[limits]\n",
		"max_stanza_bytes = 262144  # 256 KiB\n",
		"max_prebind_bytes = 16384  # 16 KiB\n",
		"max_depth = 32\n",
		"max_attributes = 64\n",
		"auth_timeout = 30s\n",
		"max_connections = 10000\n",
		"connections_per_address = 100\n",
		"connection_rate = 100/s\n",
		"connection_burst = 200\n",
		"keepalive = 1m0s\n",
		"idle_timeout = 5m0s\n",
		"write_timeout = 30s\n",
		"send_queue = 1024\n",
		"send_queue_bytes = 4194304  # 4 MiB\n",
		"max_auth_attempts = 5\n",
		"auth_failures_per_address = 30/min\n",
		"auth_failures_per_account = 10/min\n",
		"auth_failure_burst = 10\n",
		"offline_messages = 1000\n",
		"vcard_bytes = 65536  # 64 KiB\n",
		"private_bytes = 65536  # 64 KiB\n",
		"roster_items = 2000\n",
		"directed_presences = 200\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("Default().Summary() lacks %q:\n%s", want, s)
		}
	}
	// Every key is listed, whatever the list above forgets.
	_, limits, _ := strings.Cut(s, "[limits]\n")
	for _, key := range limitKeys() {
		if !strings.Contains(limits, "\n"+key+" = ") && !strings.HasPrefix(limits, key+" = ") {
			t.Errorf("Summary [limits] lacks %s:\n%s", key, limits)
		}
	}

	c, err := Load(filepath.Join(fixtures, "good.toml"))
	if err != nil {
		t.Fatal(err)
	}
	s = c.Summary()
	for _, want := range []string{
		"connection_rate = 5/min\n",
		"auth_failures_per_address = 100/h\n",
		"max_stanza_bytes = 524288  # 512 KiB\n",
		"send_queue_bytes = 1048576  # 1 MiB\n",
		"keepalive = 1m30s\n",
		"offline_messages = 0\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("Summary of good.toml lacks %q:\n%s", want, s)
		}
	}
}

// TestLimitsDocumented checks that config.toml.example sets every limit and
// that the README's configuration table has a row for each.
func TestLimitsDocumented(t *testing.T) {
	d := readDocs(t)
	for _, key := range limitKeys() {
		if !d.md.IsDefined("limits", key) {
			t.Errorf("%s does not set limits.%s", examplePath, key)
		}
		if !strings.Contains(d.readme, "| `limits."+key+"` |") {
			t.Errorf("README.md has no row for limits.%s", key)
		}
	}
	if !reflect.DeepEqual(d.config.Limits, wantDefaultLimits) {
		t.Errorf("%s [limits] =\n%+v\nwant the defaults\n%+v", examplePath, d.config.Limits, wantDefaultLimits)
	}
}
