package main

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"ottr.im/ottr/config"
)

// srvRecords returns, in zone-file syntax, the DNS SRV records (RFC 6120
// §3.2.1, XEP-0368) that let clients find the c2s listeners of every
// host: _xmpp-client._tcp for STARTTLS, _xmpps-client._tcp for direct
// TLS. A listener's port is the one published; the target is the host
// itself (which needs an A/AAAA record pointing at this machine), or the
// listener's host name when it has one. A loopback listener's record is
// commented out with the reason.
func srvRecords(cfg *config.Config) []string {
	var out []string
	for _, h := range cfg.Hosts {
		for _, l := range []struct {
			service string
			addrs   []string
		}{
			{"_xmpp-client._tcp", cfg.C2S.Listen},
			{"_xmpps-client._tcp", cfg.C2S.DirectTLS},
		} {
			for i, a := range l.addrs {
				host, port, err := net.SplitHostPort(a)
				if err != nil {
					continue // Validate refused it already
				}
				p, _ := strconv.Atoi(port)
				target, loopback := h.Name, host == "localhost"
				if ip, err := netip.ParseAddr(host); err == nil {
					loopback = ip.IsLoopback()
				} else if host != "" && !loopback {
					target = host
				}
				// RFC 2782: lower priority first; equal weights share.
				r := fmt.Sprintf("%s.%s. 3600 IN SRV %d 5 %d %s.", l.service, h.Name, i, p, target)
				if loopback {
					r = "; " + r + "  (the listener is on loopback: unreachable from other machines)"
				}
				out = append(out, r)
			}
		}
	}
	return out
}
