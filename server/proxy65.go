package server

import (
	"context"
	"fmt"
	"net"

	"ottr.im/ottr/config"
	"ottr.im/ottr/limit"
	"ottr.im/ottr/mod/extdisco"
	"ottr.im/ottr/mod/proxy65"
)

// proxy65Options are the SOCKS5 proxy's options from the configuration:
// a domain for each host whose proxy65 domain is set (proxy.<host> by
// default) when [proxy65] has a listener; no domain when it is off.
func proxy65Options(cfg *config.Config) proxy65.Options {
	p := cfg.Proxy65
	if !p.Enabled() {
		return proxy65.Options{}
	}
	var domains []string
	for _, h := range cfg.Hosts {
		if d := h.Proxy65Domain(); d != "" {
			domains = append(domains, d)
		}
	}
	return proxy65.Options{
		Domains:               domains,
		PublicHost:            p.PublicHost,
		PublicPort:            p.PublicPort,
		TransferBandwidth:     p.TransferBandwidth,
		TotalBandwidth:        p.TotalBandwidth,
		MaxTransfers:          p.MaxTransfers,
		TransfersPerUser:      p.TransfersPerUser,
		MaxPending:            p.MaxPending,
		PendingTimeout:        p.PendingTimeout.Duration,
		ConnectionsPerAddress: p.ConnectionsPerAddress,
		IdleTimeout:           p.IdleTimeout.Duration,
		AddressKey:            limit.AddressKey,
	}
}

// extdiscoOptions are the external services ([[external_service]]) for
// XEP-0215.
func extdiscoOptions(cfg *config.Config) extdisco.Options {
	var o extdisco.Options
	for _, s := range cfg.ExternalServices {
		o.Services = append(o.Services, extdisco.Service{
			Type: s.Type, Host: s.Host, Port: s.Port, Transport: s.Transport,
			Secret: s.Secret, Restricted: s.Restricted, TTL: s.TTL.Duration, Name: s.Name,
		})
	}
	return o
}

// listenProxy65 opens the SOCKS5 proxy's listener, nil when the proxy is
// off.
func (s *Server) listenProxy65(ctx context.Context) (net.Listener, error) {
	if s.mods.proxy65 == nil {
		return nil, nil
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", s.cfg.Proxy65.Listen)
	if err != nil {
		return nil, fmt.Errorf("server: listen on %s: %w", s.cfg.Proxy65.Listen, err)
	}
	s.logger.Info("listening", "addr", l.Addr().String(), "kind", "proxy65")
	return l, nil
}

// serveProxy65 relays the SOCKS5 connections of l (nil: none) until
// Shutdown closes the proxy.
func (s *Server) serveProxy65(l net.Listener) {
	if l != nil {
		s.mods.proxy65.Start(l)
	}
}

// closeProxy65 closes the proxy's listener and connections.
func (s *Server) closeProxy65() {
	if s.mods.proxy65 != nil {
		s.mods.proxy65.Close()
	}
}

// Proxy65Addr returns the address the SOCKS5 proxy listens on, nil when
// it is off or not started.
func (s *Server) Proxy65Addr() net.Addr {
	if s.mods.proxy65 == nil {
		return nil
	}
	return s.mods.proxy65.Addr()
}
