package config

import (
	"slices"
	"strings"
	"testing"
)

func TestValidateACME(t *testing.T) {
	base := func() *Config {
		c := Default()
		c.C2S.DirectTLS = []string{":443"}
		c.Hosts = []Host{{Name: "chat.example"}}
		c.TLS.ACME = true
		c.TLS.ACMEEmail = "admin@chat.example"
		return c
	}
	tests := []struct {
		name   string
		change func(*Config)
		want   string // "" valid, else a substring of the error
	}{
		{"valid", func(*Config) {}, ""},
		{"https listener is enough", func(c *Config) { c.C2S.DirectTLS = nil; c.HTTP.TLSListen = []string{":443"} }, ""},
		{"no email", func(c *Config) { c.TLS.ACMEEmail = "" }, ""},
		{"off ignores the rest", func(c *Config) { c.TLS.ACME = false; c.Hosts[0].Name = "localhost"; c.TLS.ACMEDirectory = "x" }, ""},
		{"no ALPN listener", func(c *Config) { c.C2S.DirectTLS = nil }, "tls.acme: the CA checks"},
		{"http directory", func(c *Config) { c.TLS.ACMEDirectory = "http://ca.example/dir" }, "tls.acme_directory"},
		{"bad email", func(c *Config) { c.TLS.ACMEEmail = "Admin <admin@chat.example>" }, "tls.acme_email"},
		{"dotless host", func(c *Config) { c.Hosts[0].Name = "localhost" }, `"localhost" has no dot`},
		{"IP host", func(c *Config) { c.Hosts[0].Name = "192.0.2.1" }, "is an IP address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.change(c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Validate() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestCertificateNames(t *testing.T) {
	off := ""
	c := Default()
	c.Hosts = []Host{{Name: "Chat.Example"}, {Name: "b.example", MUC: &off}}
	got := c.CertificateNames()
	want := []string{"chat.example", "b.example", "conference.chat.example"}
	if !slices.Equal(got, want) {
		t.Errorf("CertificateNames() = %q, want %q", got, want)
	}
	// With [http], the upload domains too; a host's own muc and upload
	// names are taken as they are.
	c.HTTP.TLSListen = []string{":443"}
	files := "files.b.example"
	c.Hosts[1].Upload = &files
	got = c.CertificateNames()
	want = []string{"chat.example", "b.example", "conference.chat.example", "upload.chat.example", "files.b.example"}
	if !slices.Equal(got, want) {
		t.Errorf("with [http] CertificateNames() = %q, want %q", got, want)
	}
}

func TestLogFormat(t *testing.T) {
	c := Default()
	c.Log.Format = "xml"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "log.format") {
		t.Errorf("Validate() with log.format xml = %v, want a log.format error", err)
	}
	c.Log.Format = "json"
	if err := c.Validate(); err != nil {
		t.Errorf("Validate() with log.format json = %v", err)
	}
}
