package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestUploadDomain(t *testing.T) {
	s := func(v string) *string { return &v }
	for _, tc := range []struct {
		upload *string
		http   bool
		want   string
	}{
		{nil, true, "upload.example.org"},
		{nil, false, ""},
		{s("Files.Example.org"), true, "files.example.org"},
		{s(""), true, ""},
	} {
		h := Host{Name: "Example.org", Upload: tc.upload}
		if got := h.UploadDomain(tc.http); got != tc.want {
			t.Errorf("UploadDomain(%v) with upload %v = %q, want %q", tc.http, tc.upload, got, tc.want)
		}
	}
}

func TestUploadValidate(t *testing.T) {
	s := func(v string) *string { return &v }
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		want   string // "" for no error
	}{
		{"defaults with http", func(c *Config) {}, ""},
		{"no http, default", func(c *Config) { c.HTTP.TLSListen = nil }, ""},
		{"no http, set", func(c *Config) { c.HTTP.TLSListen = nil; c.Hosts[0].Upload = s("files.localhost") }, "host[0].upload: \"files.localhost\" needs an [http] listener"},
		{"off", func(c *Config) { c.Hosts[0].Upload = s("") }, ""},
		{"a served host", func(c *Config) { c.Hosts[0].Upload = s("localhost") }, "is a served host"},
		{"the muc's", func(c *Config) { c.Hosts[0].Upload = s("conference.localhost") }, "group chat service"},
		{"a component's", func(c *Config) {
			c.Components.Services = []ComponentService{{Name: "push.localhost", Secret: "0123456789abcdef"}}
			c.Hosts[0].Upload = s("push.localhost")
		}, "a component's domain"},
		{"not a domain", func(c *Config) { c.Hosts[0].Upload = s("a b") }, "host[0].upload"},
		{"small file", func(c *Config) { c.Upload.MaxFileBytes = 100 }, "upload.max_file_bytes"},
		{"quota under a file", func(c *Config) { c.Upload.QuotaBytes = c.Upload.MaxFileBytes - 1 }, "upload.quota_bytes"},
		{"no files", func(c *Config) { c.Upload.QuotaFiles = 0 }, "upload.quota_files"},
		{"total under quota", func(c *Config) { c.Upload.TotalBytes = 1 }, "upload.total_bytes"},
		{"short slots", func(c *Config) { c.Upload.SlotLifetime = Duration{time.Second} }, "upload.slot_lifetime"},
		{"short files", func(c *Config) { c.Upload.FileLifetime = Duration{time.Minute} }, "upload.file_lifetime"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			c.HTTP.TLSListen = []string{"127.0.0.1:0"}
			tc.mutate(c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate() = %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Validate() = %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// TestUploadDocumented checks that config.toml.example shows every
// [upload] key with its default and that the README's configuration
// table has a row for each.
func TestUploadDocumented(t *testing.T) {
	d := readDocs(t)
	typ := reflect.TypeFor[Upload]()
	for i := range typ.NumField() {
		key := typ.Field(i).Tag.Get("toml")
		if !d.md.IsDefined("upload", key) {
			t.Errorf("%s does not set upload.%s", examplePath, key)
		}
		if !strings.Contains(d.readme, "| `upload."+key+"` |") {
			t.Errorf("README.md has no row for upload.%s", key)
		}
	}
	if !strings.Contains(d.readme, "| `[[host]] upload` |") {
		t.Error("README.md has no row for [[host]] upload")
	}
	if !reflect.DeepEqual(d.config.Upload, Default().Upload) {
		t.Errorf("the example's [upload] %+v is not the defaults %+v", d.config.Upload, Default().Upload)
	}
}
