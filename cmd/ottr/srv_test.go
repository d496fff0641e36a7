package main

import (
	"slices"
	"testing"

	"ottr.im/ottr/config"
)

func TestSRVRecords(t *testing.T) {
	cfg := config.Default()
	cfg.Hosts = []config.Host{{Name: "example.org"}, {Name: "example.net"}}
	cfg.C2S.Listen = []string{"0.0.0.0:5222", "xmpp.example.org:5223"}
	cfg.C2S.DirectTLS = []string{"127.0.0.1:5223", "[::]:443"}
	want := []string{
		"_xmpp-client._tcp.example.org. 3600 IN SRV 0 5 5222 example.org.",
		"_xmpp-client._tcp.example.org. 3600 IN SRV 1 5 5223 xmpp.example.org.",
		"; _xmpps-client._tcp.example.org. 3600 IN SRV 0 5 5223 example.org.  (the listener is on loopback: unreachable from other machines)",
		"_xmpps-client._tcp.example.org. 3600 IN SRV 1 5 443 example.org.",
		"_xmpp-client._tcp.example.net. 3600 IN SRV 0 5 5222 example.net.",
		"_xmpp-client._tcp.example.net. 3600 IN SRV 1 5 5223 xmpp.example.org.",
		"; _xmpps-client._tcp.example.net. 3600 IN SRV 0 5 5223 example.net.  (the listener is on loopback: unreachable from other machines)",
		"_xmpps-client._tcp.example.net. 3600 IN SRV 1 5 443 example.net.",
	}
	if got := srvRecords(cfg); !slices.Equal(got, want) {
		t.Errorf("srvRecords:\n%q\nwant\n%q", got, want)
	}
}
