package server

import (
	"context"
	"errors"
	"fmt"
	"net"

	"mellium.im/xmpp/stream"

	"ottr.im/ottr/component"
)

// maxComponentHandshakes bounds the component connections open at once,
// shaking hands or connected: the port is meant for loopback or a private
// network, but a stray client must not hold more than this many.
const maxComponentHandshakes = 64

// newComponents prepares the component listener's server for
// [components] (XEP-0114) and hands its domains to the core, which must
// not have started. With no service configured it does nothing.
func (s *Server) newComponents() error {
	cfg := s.cfg.Components
	if len(cfg.Services) == 0 {
		return nil
	}
	services := make([]component.Service, len(cfg.Services))
	for i, svc := range cfg.Services {
		services[i] = component.Service{Name: svc.Name, Secret: svc.Secret}
	}
	srv, err := component.New(component.Config{
		Services:         services,
		Core:             s.router,
		Guard:            s.c2s.Guard,
		Limits:           s.c2s.Limits,
		HandshakeTimeout: s.c2s.NegotiateTimeout,
		WriteTimeout:     s.c2s.WriteTimeout,
		CloseGrace:       s.c2s.CloseGrace,
		QueueLen:         s.c2s.QueueLen,
		QueueBytes:       s.c2s.QueueBytes,
		Logger:           s.logger.With("component", "xep0114"),
	})
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	s.components = srv
	return nil
}

// startComponents opens the component listeners and serves them; the
// caller holds s.mu. On an error nothing is left open.
func (s *Server) startComponents(ctx context.Context) error {
	if len(s.cfg.Components.Listen) == 0 {
		return nil
	}
	if s.components == nil {
		return errors.New("server: components.listen without a [[components.service]]")
	}
	var opened []net.Listener
	for _, a := range s.cfg.Components.Listen {
		var lc net.ListenConfig
		l, err := lc.Listen(ctx, "tcp", a)
		if err != nil {
			for _, o := range opened {
				o.Close()
			}
			return fmt.Errorf("server: listen on %s: %w", a, err)
		}
		s.logger.Info("listening", "addr", l.Addr().String(), "kind", "component")
		opened = append(opened, l)
	}
	s.compLns = opened
	handshakes := make(chan struct{}, maxComponentHandshakes)
	for _, l := range opened {
		s.wg.Add(1)
		go s.acceptComponents(l, handshakes)
	}
	return nil
}

// acceptComponents serves the component connections of l until it is
// closed; past maxComponentHandshakes connections a new one is closed at
// once.
func (s *Server) acceptComponents(l net.Listener, handshakes chan struct{}) {
	defer s.wg.Done()
	for {
		conn, err := l.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.logger.Error("component listener failed", "addr", l.Addr().String(), "err", err)
			}
			return
		}
		select {
		case handshakes <- struct{}{}:
		default:
			s.logger.Warn("too many component connections", "remote", conn.RemoteAddr().String())
			conn.Close()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.components.Serve(s.ctx, conn)
			<-handshakes
		}()
	}
}

// ComponentAddrs returns the addresses the component listeners listen
// on, in config order.
func (s *Server) ComponentAddrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	addrs := make([]net.Addr, len(s.compLns))
	for i, l := range s.compLns {
		addrs[i] = l.Addr()
	}
	return addrs
}

// closeComponents closes the component listeners and ends every
// component connection with system-shutdown.
func (s *Server) closeComponents() {
	s.mu.Lock()
	for _, l := range s.compLns {
		l.Close()
	}
	s.mu.Unlock()
	if s.components != nil {
		s.components.CloseAll(stream.SystemShutdown)
	}
}
