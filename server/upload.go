package server

import (
	"net"
	"net/http"
	"path/filepath"
	"strings"

	"ottr.im/ottr/config"
	"ottr.im/ottr/mod/upload"
)

// uploadOptions are the upload module's options from the configuration:
// a service for each host whose upload domain is set (upload.<host> by
// default when [http] has a listener), files in data_dir/upload; the
// module list sets BaseURL. Services is empty when the module is off.
func uploadOptions(cfg *config.Config) upload.Options {
	services := make(map[string]string)
	for _, h := range cfg.Hosts {
		if d := h.UploadDomain(cfg.HTTP.Enabled()); d != "" {
			services[d] = strings.ToLower(h.Name)
		}
	}
	u := cfg.Upload
	return upload.Options{
		Services:     services,
		Dir:          filepath.Join(cfg.DataDir, "upload"),
		MaxFileBytes: u.MaxFileBytes,
		QuotaBytes:   u.QuotaBytes,
		QuotaFiles:   u.QuotaFiles,
		TotalBytes:   u.TotalBytes,
		SlotLifetime: u.SlotLifetime.Duration,
		FileLifetime: u.FileLifetime.Duration,
		IdleTimeout:  cfg.Limits.WriteTimeout.Duration,
	}
}

// uploadBaseURL is where host's users upload and download files:
// http.public_url when set, else the first HTTPS listener (the first
// plain one when there is none) at the host's name, which the
// certificate names.
func (s *Server) uploadBaseURL(host string) string {
	if u := s.cfg.HTTP.PublicURL; u != "" {
		return u
	}
	plain, secure := s.HTTPAddrs()
	scheme, addrs := "https", secure
	if len(addrs) == 0 {
		scheme, addrs = "http", plain
	}
	if len(addrs) == 0 {
		return scheme + "://" + host
	}
	_, port, err := net.SplitHostPort(addrs[0].String())
	if err != nil || (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		return scheme + "://" + host
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// httpHandler is what the HTTP listeners serve: the web transports, and
// the upload module's files under upload.PathPrefix when it is on.
func (s *Server) httpHandler(web http.Handler) http.Handler {
	if s.mods.upload == nil {
		return web
	}
	mux := http.NewServeMux()
	mux.Handle(upload.PathPrefix, s.mods.upload)
	mux.Handle("/", web)
	return mux
}
