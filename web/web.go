// Package web serves XMPP to web clients over HTTP: XMPP over WebSocket
// (RFC 7395) at /xmpp-websocket, BOSH (XEP-0124, XEP-0206) at /http-bind,
// and their discovery (XEP-0156) at /.well-known/host-meta and
// /.well-known/host-meta.json, at the paths Prosody uses.
//
// Neither transport has XMPP code of its own. Each session is a virtual
// net.Conn that carries an ordinary XMPP stream, and the embedding server
// runs c2s over it, so negotiation, SASL, binding, routing and every limit
// are the one c2s implementation. The conn translates at the edges: a
// client's <open/> and <close/> (or a BOSH session creation, restart and
// terminate) become the stream header and closing tag c2s expects, and
// what c2s writes is cut into top-level elements (see splitter) and framed
// as WebSocket messages or BOSH responses.
package web

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"ottr.im/ottr/config"
	"ottr.im/ottr/internal/defaults"
)

// Paths served.
const (
	PathWebSocket    = "/xmpp-websocket"
	PathBOSH         = "/http-bind"
	PathHostMeta     = "/.well-known/host-meta"
	PathHostMetaJSON = "/.well-known/host-meta.json"
)

// Options configure a Handler.
type Options struct {
	// Origins are the browser origins allowed besides the endpoint's own
	// (same-origin pages always are). A request without an Origin header
	// is allowed too: it does not come from a page.
	Origins []string
	// TrustedProxies are the proxies whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// PublicURL is the base URL of the endpoints for host-meta; empty
	// means the request's scheme and Host.
	PublicURL string
	// MaxWait caps a BOSH request's wait; Inactivity ends a BOSH session
	// with no request pending for that long.
	MaxWait, Inactivity time.Duration
	// MaxStanza is the c2s limit on one stream-level element: it sizes
	// the WebSocket message limit and the BOSH request body limit once a
	// resource is bound (the c2s guard applies the limit itself to the
	// bytes inside).
	MaxStanza int
	// MaxPrebind is the c2s limit on one element before a resource is
	// bound (limits.max_prebind_bytes): until then it sizes the WebSocket
	// message limit and the BOSH request body limit, so that a client
	// that has not logged in holds little memory. 0 means 16 KiB.
	MaxPrebind int
	// WriteTimeout bounds the write of one response or message.
	WriteTimeout time.Duration

	// Admit applies the server's connection limits to a request from
	// addr (after X-Forwarded-For). With session true it starts a BOSH
	// session, which outlives its HTTP connections and counts against
	// the connection cap on its own; with session false it is a
	// WebSocket upgrade through a trusted proxy, whose connection was
	// counted when accepted (but not per address: it came from the
	// proxy), so only the limits per address apply (the session is then
	// counted for addr). nil admits everything.
	Admit func(addr netip.Addr, session bool) bool
	// Serve runs one client session over conn until it ends, closing
	// conn, and calls conn.Bound once c2s bound a resource. It reports
	// false, without using conn, when the server is shutting down.
	Serve func(conn Conn) bool
	// Logger receives the transport's logs; nil is slog.Default().
	Logger *slog.Logger
}

// Conn is the virtual connection of one WebSocket or BOSH session, which
// Options.Serve runs c2s over.
type Conn interface {
	net.Conn
	// Bound tells the transport that c2s bound a resource: the pre-bind
	// size limits (Options.MaxPrebind) give way to the stanza limit.
	Bound()
}

// Handler is the http.Handler of the web transports.
type Handler struct {
	opts    Options
	logger  *slog.Logger
	origins map[string]bool
	mux     *http.ServeMux

	mu     sync.Mutex
	bosh   map[string]*boshSession // by sid
	closed bool
}

// New returns a Handler. It fails on an origin or a public URL that does
// not parse (config.Validate refuses those first).
func New(opts Options) (*Handler, error) {
	h := &Handler{
		opts:    opts,
		logger:  opts.Logger,
		origins: make(map[string]bool),
		bosh:    make(map[string]*boshSession),
	}
	if h.logger == nil {
		h.logger = slog.Default()
	}
	for _, o := range opts.Origins {
		norm, err := config.ParseOrigin(o)
		if err != nil {
			return nil, fmt.Errorf("web: %w", err)
		}
		h.origins[norm] = true
	}
	if opts.PublicURL != "" {
		if _, err := url.Parse(opts.PublicURL); err != nil {
			return nil, fmt.Errorf("web: public URL: %w", err)
		}
	}
	defaults.Positive(&h.opts.MaxWait, config.DefaultBOSHMaxWait)
	defaults.Positive(&h.opts.Inactivity, config.DefaultBOSHInactivity)
	defaults.Positive(&h.opts.MaxStanza, 256<<10)
	defaults.Positive(&h.opts.MaxPrebind, 16<<10)
	h.opts.MaxPrebind = min(h.opts.MaxPrebind, h.opts.MaxStanza)
	defaults.Positive(&h.opts.WriteTimeout, 30*time.Second)
	if h.opts.Admit == nil {
		h.opts.Admit = func(netip.Addr, bool) bool { return true }
	}
	h.mux = http.NewServeMux()
	h.mux.HandleFunc(PathWebSocket, h.serveWebSocket)
	h.mux.HandleFunc(PathBOSH, h.serveBOSH)
	h.mux.HandleFunc(PathBOSH+"/", h.serveBOSH)
	h.mux.HandleFunc(PathHostMeta, h.serveHostMeta)
	h.mux.HandleFunc(PathHostMetaJSON, h.serveHostMeta)
	return h, nil
}

// ServeHTTP serves the endpoints; anything else is not found.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Server", "ottr")
	h.mux.ServeHTTP(w, r)
}

// Close ends the BOSH sessions still registered; held requests are
// answered with a system-shutdown terminate. The server calls it after
// the c2s sessions ended.
func (h *Handler) Close() {
	h.mu.Lock()
	h.closed = true
	sessions := make([]*boshSession, 0, len(h.bosh))
	for _, s := range h.bosh {
		sessions = append(sessions, s)
	}
	h.mu.Unlock()
	for _, s := range sessions {
		s.terminate("system-shutdown", nil)
	}
}

// originAllowed applies the origin policy: no Origin header (not a
// browser), an Origin in the configured list, or the page's own host
// (which is all an empty list allows).
func (h *Handler) originAllowed(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	norm, err := config.ParseOrigin(o)
	if err != nil {
		return false // "null" and other opaque origins
	}
	if h.origins[norm] {
		return true
	}
	u, err := url.Parse(norm)
	if err != nil {
		return false
	}
	return sameHost(u, r.Host)
}

// sameHost compares an origin's host and port with a request's Host
// header, default ports ignored: behind a TLS-terminating proxy the
// scheme the server sees is not the page's.
func sameHost(origin *url.URL, host string) bool {
	oh, op := origin.Hostname(), origin.Port()
	if op == "" {
		op = map[string]string{"http": "80", "https": "443"}[origin.Scheme]
	}
	rh, rp, err := net.SplitHostPort(host)
	if err != nil {
		rh, rp = strings.Trim(host, "[]"), ""
	}
	if !strings.EqualFold(oh, rh) {
		return false
	}
	return rp == "" && (op == "80" || op == "443") || rp == op
}

// refuseOrigin answers a request from an origin not allowed.
func (h *Handler) refuseOrigin(w http.ResponseWriter, r *http.Request, what string) {
	h.logger.Info("origin refused", "transport", what, "origin", r.Header.Get("Origin"), "remote", h.clientAddr(r).String())
	http.Error(w, "origin not allowed", http.StatusForbidden)
}

// clientAddr is the client's address: the peer's, or, when the peer is a
// trusted proxy, the last address of X-Forwarded-For that is not one.
func (h *Handler) clientAddr(r *http.Request) netip.AddrPort {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.AddrPort{}
	}
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	if !h.trusted(ap.Addr()) {
		return ap
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		for hop := range strings.SplitSeq(v, ",") {
			hops = append(hops, strings.TrimSpace(hop))
		}
	}
	for _, hop := range slices.Backward(hops) {
		a, err := netip.ParseAddr(hop)
		if err != nil {
			break // a forged or broken entry: trust nothing before it
		}
		a = a.Unmap()
		ap = netip.AddrPortFrom(a, 0)
		if !h.trusted(a) {
			break
		}
	}
	return ap
}

// proxied reports whether r came through a trusted proxy, so that the
// client's address is not the peer's.
func (h *Handler) proxied(r *http.Request) bool {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	return err == nil && h.trusted(ap.Addr().Unmap())
}

func (h *Handler) trusted(a netip.Addr) bool {
	for _, p := range h.opts.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// scheme is the scheme the client used: https on a TLS listener, or
// when a trusted proxy says so with X-Forwarded-Proto.
func (h *Handler) scheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil && h.trusted(ap.Addr().Unmap()) {
		if p := strings.ToLower(r.Header.Get("X-Forwarded-Proto")); p == "https" {
			return p
		}
	}
	return "http"
}

// serveHostMeta answers XEP-0156 discovery, in XRD or JSON, with the
// links to both endpoints.
func (h *Handler) serveHostMeta(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	base := strings.TrimSuffix(h.opts.PublicURL, "/")
	if base == "" {
		base = h.scheme(r) + "://" + r.Host
	}
	bosh := base + PathBOSH
	ws := "ws" + strings.TrimPrefix(base, "http") + PathWebSocket
	// XEP-0156 §3.2.1: discovery is for pages of any origin.
	w.Header().Set("Access-Control-Allow-Origin", "*")
	if r.URL.Path == PathHostMetaJSON {
		type link struct {
			Rel  string `json:"rel"`
			Href string `json:"href"`
		}
		doc := struct {
			Links []link `json:"links"`
		}{[]link{
			{"urn:xmpp:alt-connections:websocket", ws},
			{"urn:xmpp:alt-connections:xbosh", bosh},
		}}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(doc)
		return
	}
	w.Header().Set("Content-Type", "application/xrd+xml; charset=utf-8")
	fmt.Fprintf(w, "<?xml version='1.0' encoding='utf-8'?>\n"+
		"<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n"+
		"  <Link rel='urn:xmpp:alt-connections:websocket' href='%s'/>\n"+
		"  <Link rel='urn:xmpp:alt-connections:xbosh' href='%s'/>\n"+
		"</XRD>\n", escapeAttr(ws), escapeAttr(bosh))
}

// addr is a net.Addr for the virtual connections: the client's address
// (after X-Forwarded-For) as a TCP address, so that c2s and the limits
// see it as for a TCP client.
func tcpAddr(ap netip.AddrPort) net.Addr { return net.TCPAddrFromAddrPort(ap) }

// localAddr is the listener's address a request came in on.
func localAddr(r *http.Request) net.Addr {
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		return a
	}
	return &net.TCPAddr{}
}

// seconds formats d in whole seconds, at least 1.
func seconds(d time.Duration) string {
	return strconv.Itoa(max(1, int(d/time.Second)))
}
