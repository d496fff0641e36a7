// Package extdisco is XEP-0215, external service discovery
// (urn:xmpp:extdisco:2): the server tells its local users the STUN and
// TURN servers of its configuration, so that their clients can set up
// calls, and hands out time-limited TURN credentials in the scheme of
// coturn's use-auth-secret (the "TURN REST API"): the username is
// "expiry:user", the expiry a Unix time, and the password the base64 of
// HMAC-SHA1(secret, username). The TURN server checks them with the same
// secret and nothing else: ottr and it share no state.
//
// A services request (<services/>, optionally with a type) lists the
// services, with fresh credentials for each that has a secret unless it
// is Restricted; a credentials request (<credentials><service host type
// [port]/></credentials>, XEP-0215 §3.3) gets the credentials of one
// service. Only local users are answered. The module keeps nothing.
package extdisco

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"strconv"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"ottr.im/ottr/element"
	"ottr.im/ottr/router"
)

// NS is the namespace of XEP-0215 version 2.
const NS = "urn:xmpp:extdisco:2"

// DefaultTTL is how long credentials stay valid when Service.TTL is 0.
const DefaultTTL = 24 * time.Hour

// Service is one STUN or TURN server.
type Service struct {
	// Type is "stun", "stuns", "turn" or "turns".
	Type string
	// Host and Port are where it listens.
	Host string
	Port int
	// Transport is "udp", "tcp" or "" (not said).
	Transport string
	// Secret is the shared secret credentials are made with (coturn's
	// static-auth-secret); "" for a server that takes none.
	Secret string
	// Restricted hands credentials out only on a credentials request.
	Restricted bool
	// TTL is how long credentials stay valid; 0 is DefaultTTL.
	TTL time.Duration
	// Name is a human-readable name; "" for none.
	Name string
}

// Options configure the module.
type Options struct {
	// Services are the servers told to users; with none the module
	// registers nothing.
	Services []Service
	// Now is the clock credentials expire by; nil is time.Now.
	Now func() time.Time
}

// Credentials returns the coturn use-auth-secret credentials of user
// with secret, valid until expires (its Unix time, whole seconds).
func Credentials(secret, user string, expires time.Time) (username, password string) {
	username = strconv.FormatInt(expires.Unix(), 10) + ":" + user
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(username))
	return username, base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Register adds the services and credentials handlers to core.
func Register(core *router.Router, opts Options) error {
	if len(opts.Services) == 0 {
		return nil
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m := &module{core: core, opts: opts}
	for _, reg := range []struct {
		local   string
		feature string
		h       router.IQHandlerFunc
	}{
		{"services", NS, m.services},
		{"credentials", "", m.credentials},
	} {
		if err := core.HandleIQ(xml.Name{Space: NS, Local: reg.local}, router.AtServer, reg.feature, reg.h); err != nil {
			return fmt.Errorf("extdisco: %w", err)
		}
	}
	return nil
}

type module struct {
	core *router.Router
	opts Options
}

// check answers a set with bad-request, and anyone but a local user
// with forbidden.
func (m *module) check(req router.IQRequest) error {
	if req.Stanza.Type != "get" {
		return stanza.Error{Type: stanza.Cancel, Condition: stanza.BadRequest}
	}
	if !isLocalUser(m.core, req.From) {
		return stanza.Error{Type: stanza.Auth, Condition: stanza.Forbidden}
	}
	return nil
}

func isLocalUser(core *router.Router, j jid.JID) bool {
	return j.Localpart() != "" && core.Serves(j.Domainpart())
}

func (m *module) services(_ context.Context, req router.IQRequest) (xml.TokenReader, error) {
	if err := m.check(req); err != nil {
		return nil, err
	}
	typ := element.Attr(req.Payload, "type")
	now := m.opts.Now()
	var items []xml.TokenReader
	for _, s := range m.opts.Services {
		if typ != "" && s.Type != typ {
			continue
		}
		items = append(items, m.service(s, req.From, now, !s.Restricted))
	}
	return xmlstream.Wrap(xmlstream.MultiReader(items...), xml.StartElement{Name: xml.Name{Space: NS, Local: "services"}}), nil
}

// credentials answers a request for the credentials of one service,
// named by its host and type (and port, when given).
func (m *module) credentials(_ context.Context, req router.IQRequest) (xml.TokenReader, error) {
	if err := m.check(req); err != nil {
		return nil, err
	}
	var q struct {
		Service []struct {
			Host string `xml:"host,attr"`
			Type string `xml:"type,attr"`
			Port string `xml:"port,attr"`
		} `xml:"service"`
	}
	if err := req.Stanza.DecodePayload(&q); err != nil || len(q.Service) != 1 || q.Service[0].Host == "" || q.Service[0].Type == "" {
		return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
	}
	want := q.Service[0]
	for _, s := range m.opts.Services {
		if s.Host == want.Host && s.Type == want.Type && (want.Port == "" || want.Port == strconv.Itoa(s.Port)) && s.Secret != "" {
			return xmlstream.Wrap(m.service(s, req.From, m.opts.Now(), true), xml.StartElement{Name: xml.Name{Space: NS, Local: "credentials"}}), nil
		}
	}
	return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}
}

// service is one <service/>, with credentials for user when it has a
// secret and withCredentials.
func (m *module) service(s Service, user jid.JID, now time.Time, withCredentials bool) xml.TokenReader {
	attrs := []xml.Attr{
		{Name: xml.Name{Local: "type"}, Value: s.Type},
		{Name: xml.Name{Local: "host"}, Value: s.Host},
		{Name: xml.Name{Local: "port"}, Value: strconv.Itoa(s.Port)},
	}
	add := func(name, value string) {
		if value != "" {
			attrs = append(attrs, xml.Attr{Name: xml.Name{Local: name}, Value: value})
		}
	}
	add("transport", s.Transport)
	add("name", s.Name)
	if s.Secret != "" {
		add("restricted", "1")
		if withCredentials {
			ttl := s.TTL
			if ttl <= 0 {
				ttl = DefaultTTL
			}
			expires := now.Add(ttl).Truncate(time.Second).UTC()
			username, password := Credentials(s.Secret, user.Bare().String(), expires)
			add("username", username)
			add("password", password)
			add("expires", expires.Format(time.RFC3339))
		}
	}
	return xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Local: "service"}, Attr: attrs})
}
