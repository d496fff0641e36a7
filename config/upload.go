package config

import (
	"fmt"
	"strings"
	"time"
)

// Upload holds the HTTP file upload service's settings, the [upload]
// table (XEP-0363). The service is at upload.<host> (or a host's upload
// key) whenever [http] has a listener; its files are served by that
// listener under /upload/ and kept in data_dir/upload.
type Upload struct {
	// MaxFileBytes is the largest file a slot is given for, 1 KiB to 16
	// GiB; it is in the service's disco#info. Default 10485760 (10 MiB).
	MaxFileBytes int64 `toml:"max_file_bytes"`
	// QuotaBytes bounds the bytes of one user's files, the slots not yet
	// used included, at least MaxFileBytes and at most 1 TiB; past it a
	// slot request gets resource-constraint. Default 536870912 (512 MiB).
	QuotaBytes int64 `toml:"quota_bytes"`
	// QuotaFiles bounds the number of one user's files and unused slots,
	// 1 to 1,000,000. Default 1000.
	QuotaFiles int `toml:"quota_files"`
	// TotalBytes bounds every user's files together, 0 (no bound) or at
	// least QuotaBytes. Default 0.
	TotalBytes int64 `toml:"total_bytes"`
	// SlotLifetime is how long a slot's PUT may start after the slot was
	// given, and how long one PUT may last, 10s to 24h. Default 5m.
	SlotLifetime Duration `toml:"slot_lifetime"`
	// FileLifetime is how long a file is kept after its upload, then
	// deleted, 1h to 876000h (100 years). Default 168h (a week).
	FileLifetime Duration `toml:"file_lifetime"`
}

// Defaults and bounds of the [upload] settings.
const (
	DefaultUploadMaxFileBytes = 10 * mib
	DefaultUploadQuotaBytes   = 512 * mib
	DefaultUploadQuotaFiles   = 1000
	DefaultUploadSlotLifetime = 5 * time.Minute
	DefaultUploadFileLifetime = 7 * 24 * time.Hour
	maxUploadFileBytes        = 16 << 30
	maxUploadQuotaBytes       = 1 << 40
)

// UploadDomain returns the domain of h's upload service: its upload key,
// "upload.<name>" when the key is left out and httpEnabled ([http] has
// a listener), "" when off.
func (h Host) UploadDomain(httpEnabled bool) string {
	switch {
	case h.Upload != nil:
		return strings.ToLower(*h.Upload)
	case httpEnabled:
		return "upload." + strings.ToLower(h.Name)
	}
	return ""
}

func applyUploadDefaults(u *Upload, defined func(key ...string) bool) {
	set := func(key string, f func()) {
		if !defined("upload", key) {
			f()
		}
	}
	set("max_file_bytes", func() { u.MaxFileBytes = DefaultUploadMaxFileBytes })
	set("quota_bytes", func() { u.QuotaBytes = DefaultUploadQuotaBytes })
	set("quota_files", func() { u.QuotaFiles = DefaultUploadQuotaFiles })
	set("slot_lifetime", func() { u.SlotLifetime = Duration{DefaultUploadSlotLifetime} })
	set("file_lifetime", func() { u.FileLifetime = Duration{DefaultUploadFileLifetime} })
}

// validateUpload checks [upload] and the hosts' upload keys: each a
// domain of its own, and only with an HTTP listener to serve the files.
func (c *Config) validateUpload() []error {
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}
	u := c.Upload
	if u.MaxFileBytes < 1024 || u.MaxFileBytes > maxUploadFileBytes {
		add("upload.max_file_bytes: must be between 1024 and %d, got %d", int64(maxUploadFileBytes), u.MaxFileBytes)
	}
	if u.QuotaBytes < u.MaxFileBytes || u.QuotaBytes > maxUploadQuotaBytes {
		add("upload.quota_bytes: must be between max_file_bytes (%d) and %d, got %d", u.MaxFileBytes, int64(maxUploadQuotaBytes), u.QuotaBytes)
	}
	if u.QuotaFiles < 1 || u.QuotaFiles > 1_000_000 {
		add("upload.quota_files: must be between 1 and 1000000, got %d", u.QuotaFiles)
	}
	if u.TotalBytes != 0 && u.TotalBytes < u.QuotaBytes {
		add("upload.total_bytes: must be 0 (no bound) or at least quota_bytes (%d), got %d", u.QuotaBytes, u.TotalBytes)
	}
	if d := u.SlotLifetime.Duration; d < 10*time.Second || d > 24*time.Hour {
		add("upload.slot_lifetime: must be between 10s and 24h, got %v", d)
	}
	if d := u.FileLifetime.Duration; d < time.Hour || d > 876000*time.Hour {
		add("upload.file_lifetime: must be between 1h and 876000h, got %v", d)
	}
	taken := make(map[string]string) // domain → what has it
	for i, h := range c.Hosts {
		taken[strings.ToLower(h.Name)] = "a served host"
		if d := h.MUCDomain(); d != "" {
			taken[d] = fmt.Sprintf("host[%d]'s group chat service", i)
		}
		if d := h.Proxy65Domain(); c.Proxy65.Enabled() && d != "" {
			taken[d] = fmt.Sprintf("host[%d]'s SOCKS5 proxy", i)
		}
	}
	for _, s := range c.Components.Services {
		taken[strings.ToLower(s.Name)] = "a component's domain"
	}
	for i, h := range c.Hosts {
		d := h.UploadDomain(c.HTTP.Enabled())
		if d == "" {
			continue
		}
		key := fmt.Sprintf("host[%d].upload", i)
		if !c.HTTP.Enabled() {
			add("%s: %q needs an [http] listener to serve the files (http.listen or http.tls_listen), or set upload = \"\"", key, d)
			continue
		}
		if err := checkDomain(d); err != nil {
			add("%s: %w", key, err)
			continue
		}
		if what, ok := taken[d]; ok {
			add("%s: %q is %s (set upload to another domain, or \"\" to turn the service off)", key, d, what)
			continue
		}
		taken[d] = fmt.Sprintf("host[%d]'s upload service", i)
	}
	return errs
}

// writeUpload writes the [upload] settings for Summary.
func writeUpload(b *strings.Builder, c *Config) {
	u := c.Upload
	b.WriteString("[upload]")
	var ds []string
	for _, h := range c.Hosts {
		if d := h.UploadDomain(c.HTTP.Enabled()); d != "" {
			ds = append(ds, d)
		}
	}
	if len(ds) == 0 {
		b.WriteString("  # off")
	} else {
		fmt.Fprintf(b, "  # serves %s", strings.Join(ds, ", "))
	}
	fmt.Fprintf(b, "\nmax_file_bytes = %d\nquota_bytes = %d\nquota_files = %d\ntotal_bytes = %d", u.MaxFileBytes, u.QuotaBytes, u.QuotaFiles, u.TotalBytes)
	if u.TotalBytes == 0 {
		b.WriteString("  # no bound")
	}
	fmt.Fprintf(b, "\nslot_lifetime = %q\nfile_lifetime = %q\n", u.SlotLifetime.Duration.String(), u.FileLifetime.Duration.String())
}
