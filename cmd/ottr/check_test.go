package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCheckConfig(t *testing.T) {
	fixture := func(name string) string {
		p, err := filepath.Abs(filepath.Join("../../testdata/config", name))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	example, err := filepath.Abs("../../config.toml.example")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string
		stderr []string // for a bad file, the key at fault
	}{
		{"example", []string{"-c", example}, 0, []string{`name = "localhost"`, "otp_seed = <set>", "config OK"}, nil},
		{"example, long flag", []string{"-config", example}, 0, []string{"config OK"}, nil},
		{"example, argument", []string{example}, 0, []string{"config OK"}, nil},
		{"good", []string{"-c", fixture("good.toml")}, 0, []string{`name = "Chat.Example.org"`, "otp_digits = 10", "config OK"}, nil},
		{"empty file", []string{"-c", fixture("empty.toml")}, 0, []string{`data_dir = "./ottr-data"`, "config OK"}, nil},

		{"bad log level", []string{"-c", fixture("bad_log_level.toml")}, 1, nil, []string{"log.level"}},
		{"bad port", []string{"-c", fixture("bad_port.toml")}, 1, nil, []string{"c2s.listen[0]"}},
		{"bad seed", []string{"-c", fixture("bad_seed.toml")}, 1, nil, []string{"host[0].otp_seed"}},
		{"short seed", []string{"-c", fixture("short_seed.toml")}, 1, nil, []string{"host[0].otp_seed"}},
		{"seed without secret", []string{"-c", fixture("seed_without_secret.toml")}, 1, nil, []string{"host[0].token_secret"}},
		{"cert without key", []string{"-c", fixture("cert_without_key.toml")}, 1, nil, []string{"tls.key"}},
		{"digits", []string{"-c", fixture("digits_out_of_range.toml")}, 1, nil, []string{"token.otp_digits"}},
		{"host digits", []string{"-c", fixture("host_digits_zero.toml")}, 1, nil, []string{"host[1].token.otp_digits"}},
		{"interval", []string{"-c", fixture("interval_too_long.toml")}, 1, nil, []string{"token.otp_interval"}},
		{"unitless interval", []string{"-c", fixture("unitless_duration.toml")}, 1, nil, []string{"token.otp_interval"}},
		{"duplicate host", []string{"-c", fixture("duplicate_host.toml")}, 1, nil, []string{"host[1].name"}},
		{"duplicate address", []string{"-c", fixture("duplicate_address.toml")}, 1, nil, []string{"c2s.direct_tls[0]"}},
		{"no hosts", []string{"-c", fixture("no_hosts.toml")}, 1, nil, []string{"host:"}},
		{"empty data_dir", []string{"-c", fixture("empty_data_dir.toml")}, 1, nil, []string{"data_dir"}},
		{"unknown key", []string{"-c", fixture("unknown_key.toml")}, 1, nil, []string{"c2s.lissen"}},
		{"unknown host key", []string{"-c", fixture("unknown_host_key.toml")}, 1, nil, []string{"host.nmae"}},
		{"wrong type", []string{"-c", fixture("wrong_type.toml")}, 1, nil, []string{"c2s.require_tls"}},
		{"syntax error", []string{"-c", fixture("syntax_error.toml")}, 1, nil, []string{"syntax_error.toml", "line 2"}},
		{"many errors", []string{"-c", fixture("many_errors.toml")}, 1, nil, []string{"data_dir", "log.level", "c2s.listen[0]", "tls.cert", "host[0].name", "host[0].otp_seed"}},
		{"missing file", []string{"-c", fixture("does_not_exist.toml")}, 1, nil, []string{"does_not_exist.toml"}},

		{"no file", nil, 2, nil, []string{"missing -c FILE", "usage: ottr check-config"}},
		{"flag and argument", []string{"-c", example, example}, 2, nil, []string{"unexpected arguments"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			r := runOttr(t, dir, "", append([]string{"check-config"}, tt.args...)...)
			r.check(t, tt.code, tt.stdout, tt.stderr)
			if tt.code != 0 && r.stdout != "" {
				t.Errorf("stdout not empty on failure:\n%s", r.stdout)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("check-config wrote into its working directory: %v", entries)
			}
		})
	}
}
