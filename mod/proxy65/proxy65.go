// Package proxy65 is XEP-0065's SOCKS5 bytestreams proxy: a domain
// (proxy.<host>) that tells local users where the proxy listens and
// activates their transfers, and the SOCKS5 relay itself.
//
// A transfer goes like this (XEP-0065 §6): the initiator asks the proxy
// for its address (an iq get of <query
// xmlns='http://jabber.org/protocol/bytestreams'/>, answered with a
// <streamhost jid host port/>) and offers it to the target; the target
// connects with SOCKS5, naming as destination the hex SHA-1 of the stream
// id, the initiator's full JID and the target's full JID; the initiator
// connects with the same hash and asks the proxy to activate it (an iq
// set with <activate>target</activate>); the proxy then relays between
// the two connections. Only a local user may activate, and the proxy
// computes the hash from the JID the request came from, so only the
// initiator named in the hash activates a transfer.
//
// Every resource an unauthenticated SOCKS client can hold is bounded:
// connections per address, connections not activated (MaxPending), the
// time from accept to activation (PendingTimeout, handshake included), a
// 257-byte handshake buffer and nothing read before activation; activated
// transfers are bounded in number (MaxTransfers, and TransfersPerUser for
// one initiator), in bandwidth each and together, and end when idle.
package proxy65

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"ottr.im/ottr/element"
	"ottr.im/ottr/internal/caps"
	"ottr.im/ottr/internal/defaults"
	"ottr.im/ottr/router"
)

// Namespaces.
const (
	// NS is the bytestreams namespace.
	NS      = "http://jabber.org/protocol/bytestreams"
	nsInfo  = "http://jabber.org/protocol/disco#info"
	nsItems = "http://jabber.org/protocol/disco#items"
)

// Defaults of the zero Options fields.
const (
	DefaultTransferBandwidth = 10 << 20
	DefaultTotalBandwidth    = 100 << 20
	DefaultMaxTransfers      = 100
	DefaultTransfersPerUser  = 10
	DefaultMaxPending        = 100
	DefaultPendingTimeout    = 60 * time.Second
	DefaultPerAddress        = 10
	DefaultIdleTimeout       = 5 * time.Minute
)

// Options configure the proxy.
type Options struct {
	// Domains are the proxy's addresses, such as proxy.example.org, one
	// per host that has a proxy; none registers nothing.
	Domains []string
	// PublicHost and PublicPort are the streamhost address users are
	// told; "" and 0 mean the listener's host and port.
	PublicHost string
	PublicPort int
	// TransferBandwidth caps one transfer, both directions together, in
	// bytes per second; 0 is DefaultTransferBandwidth.
	TransferBandwidth int
	// TotalBandwidth caps all transfers together, in bytes per second; 0
	// is DefaultTotalBandwidth.
	TotalBandwidth int
	// MaxTransfers caps the activated transfers; 0 is
	// DefaultMaxTransfers.
	MaxTransfers int
	// TransfersPerUser caps the activated transfers one user (the
	// initiator's bare JID) has at once; 0 is DefaultTransfersPerUser.
	TransfersPerUser int
	// MaxPending caps the connections not in an activated transfer; 0 is
	// DefaultMaxPending.
	MaxPending int
	// PendingTimeout is the time from accept to activation; 0 is
	// DefaultPendingTimeout.
	PendingTimeout time.Duration
	// ConnectionsPerAddress caps the connections open from one address
	// key; 0 is DefaultPerAddress.
	ConnectionsPerAddress int
	// IdleTimeout ends a transfer that relayed nothing either way this
	// long; 0 is DefaultIdleTimeout.
	IdleTimeout time.Duration
	// AddressKey maps a client's address to the key connections are
	// counted by (an IPv6 /64, say); nil is the address itself.
	AddressKey func(netip.Addr) string
	// Logger receives the proxy's logs; nil is the core's.
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.TransferBandwidth, DefaultTransferBandwidth)
	def(&o.TotalBandwidth, DefaultTotalBandwidth)
	def(&o.MaxTransfers, DefaultMaxTransfers)
	def(&o.TransfersPerUser, DefaultTransfersPerUser)
	def(&o.MaxPending, DefaultMaxPending)
	def(&o.ConnectionsPerAddress, DefaultPerAddress)
	defaults.Positive(&o.PendingTimeout, DefaultPendingTimeout)
	defaults.Positive(&o.IdleTimeout, DefaultIdleTimeout)
	if o.AddressKey == nil {
		o.AddressKey = netip.Addr.String
	}
	return o
}

// Module is the proxy: its domains on the core and its relay.
type Module struct {
	core  *router.Router
	relay *relay
	opts  Options
	// addr is the streamhost address told to users, set by Serve.
	addr atomic.Pointer[streamhost]
}

type streamhost struct {
	host string
	port int
}

// Register hands the proxy's domains to core. The relay accepts nothing
// until Serve.
func Register(core *router.Router, opts Options) (*Module, error) {
	opts = opts.withDefaults()
	logger := opts.Logger
	if logger == nil {
		logger = core.Logger().With("module", "proxy65")
	}
	m := &Module{core: core, opts: opts, relay: newRelay(opts, logger)}
	for _, d := range opts.Domains {
		if err := core.AddDomain(d, m); err != nil {
			return nil, fmt.Errorf("proxy65: %w", err)
		}
	}
	return m, nil
}

// Serve relays the SOCKS5 connections accepted on l until Close; the
// streamhost address is PublicHost and PublicPort, or else l's.
func (m *Module) Serve(l net.Listener) error {
	if err := m.add(l); err != nil {
		return err
	}
	return m.relay.accept(l)
}

// Start is Serve in the background: it returns once l is taken in.
// Close waits for it.
func (m *Module) Start(l net.Listener) error {
	if err := m.add(l); err != nil {
		return err
	}
	go m.relay.accept(l)
	return nil
}

// add sets the streamhost address from l unless the options gave it,
// and hands l to the relay.
func (m *Module) add(l net.Listener) error {
	sh := &streamhost{host: m.opts.PublicHost, port: m.opts.PublicPort}
	if ap, err := netip.ParseAddrPort(l.Addr().String()); err == nil {
		if sh.host == "" {
			sh.host = ap.Addr().Unmap().String()
		}
		if sh.port == 0 {
			sh.port = int(ap.Port())
		}
	}
	m.addr.CompareAndSwap(nil, sh)
	return m.relay.add(l)
}

// Addr returns the address of the first listener Serve was given, nil
// before.
func (m *Module) Addr() net.Addr {
	m.relay.mu.Lock()
	defer m.relay.mu.Unlock()
	if len(m.relay.listeners) == 0 {
		return nil
	}
	return m.relay.listeners[0].Addr()
}

// Close closes the listeners and every SOCKS5 connection, and waits for
// them.
func (m *Module) Close() { m.relay.close() }

// Counts returns the SOCKS5 connections not in an activated transfer and
// the activated transfers.
func (m *Module) Counts() (pending, transfers int) { return m.relay.counts() }

// HandleStanza serves a stanza to one of the proxy's domains: disco#info
// and disco#items, the streamhost query and activation. Messages get
// service-unavailable; presence is dropped.
func (m *Module) HandleStanza(_ context.Context, from router.Target, st *element.Stanza) {
	if !st.IsIQRequest() {
		if st.Name == "message" {
			m.core.Bounce(from, st, stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable})
		}
		return
	}
	result, err := m.handleIQ(from.JID(), st)
	if err != nil {
		var se stanza.Error
		if !errors.As(err, &se) {
			se = stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError}
		}
		m.core.Bounce(from, st, se)
		return
	}
	reply := st.Reply(st.To, result)
	reply.To = from.JID()
	m.core.Deliver(from, reply)
}

// activateQuery is the payload of an activation request.
type activateQuery struct {
	XMLName  xml.Name `xml:"http://jabber.org/protocol/bytestreams query"`
	SID      string   `xml:"sid,attr"`
	Activate *string  `xml:"activate"`
}

func (m *Module) handleIQ(from jid.JID, st *element.Stanza) (xml.TokenReader, error) {
	payload, ok := st.Payload()
	if !ok {
		return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
	}
	if st.To.Localpart() != "" || st.To.Resourcepart() != "" {
		return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}
	}
	get := st.Type == "get"
	switch {
	case payload.Name == xml.Name{Space: nsInfo, Local: "query"} && get:
		if element.Attr(payload, "node") != "" {
			return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}
		}
		return discoInfo(), nil
	case payload.Name == xml.Name{Space: nsItems, Local: "query"} && get:
		return element.Empty(nsItems, "query"), nil
	case payload.Name.Space != NS || payload.Name.Local != "query":
		return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}
	}
	// Only local users use the proxy.
	if from.Localpart() == "" || !m.core.Serves(from.Domainpart()) {
		return nil, stanza.Error{Type: stanza.Auth, Condition: stanza.Forbidden}
	}
	if get {
		sh := m.addr.Load()
		if sh == nil {
			return nil, stanza.Error{Type: stanza.Wait, Condition: stanza.ServiceUnavailable}
		}
		// The query's sid, if it has one, comes back (as Prosody does).
		var attrs []xml.Attr
		for _, a := range payload.Attr {
			if a.Name.Local == "sid" && a.Name.Space == "" {
				attrs = append(attrs, xml.Attr{Name: a.Name, Value: a.Value})
			}
		}
		return xmlstream.Wrap(
			xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Local: "streamhost"}, Attr: []xml.Attr{
				{Name: xml.Name{Local: "jid"}, Value: st.To.String()},
				{Name: xml.Name{Local: "host"}, Value: sh.host},
				{Name: xml.Name{Local: "port"}, Value: strconv.Itoa(sh.port)},
			}}),
			xml.StartElement{Name: xml.Name{Space: NS, Local: "query"}, Attr: attrs},
		), nil
	}
	var q activateQuery
	if err := st.DecodePayload(&q); err != nil || q.SID == "" || q.Activate == nil {
		return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
	}
	target, err := jid.Parse(*q.Activate)
	if err != nil {
		return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.JIDMalformed}
	}
	switch err := m.relay.activate(Hash(q.SID, from, target), from.Bare().String()); {
	case errors.Is(err, errUnknown):
		return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.ItemNotFound}
	case errors.Is(err, errOneSide):
		return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.NotAllowed, Text: map[string]string{
			"": "both parties must be connected to the proxy before activation",
		}}
	case errors.Is(err, errBusy):
		return nil, stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint}
	case err != nil:
		return nil, err
	}
	return nil, nil
}

// discoInfo is the proxy's disco#info (XEP-0065 §4).
func discoInfo() xml.TokenReader {
	return caps.Info{
		Identities: []caps.Identity{{Category: "proxy", Type: "bytestreams", Name: "SOCKS5 Bytestreams Service"}},
		Features:   []string{nsInfo, NS},
	}.Query("")
}
