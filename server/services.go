package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"ottr.im/ottr/element"
	"ottr.im/ottr/storage"
)

// Namespaces of the small services every client asks for.
const (
	nsDiscoItems = "http://jabber.org/protocol/disco#items"
	nsVersion    = "jabber:iq:version"
	nsTime       = "urn:xmpp:time"
	nsLast       = "jabber:iq:last"
	nsVCard      = "vcard-temp"
	nsPrivate    = "jabber:iq:private"
)

// Version is reported by XEP-0092; the binary sets it at build time.
var Version = "0.1.0-dev"

func randomID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func collectTokens(r xml.TokenReader) ([]xml.Token, error) {
	st, err := element.New("iq", "", jid.JID{}, jid.JID{}, "", r)
	if err != nil {
		return nil, err
	}
	return st.Tokens(), nil
}

// registerIM adds the IM core's iq handlers to m.
func (r *Router) registerIM(m *iqMux, started time.Time) error {
	name := func(space, local string) xml.Name { return xml.Name{Space: space, Local: local} }
	get := func(h IQHandlerFunc) IQHandlerFunc {
		return func(ctx context.Context, req IQRequest) (xml.TokenReader, error) {
			if req.Stanza.Type != "get" {
				return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.BadRequest}
			}
			return h(ctx, req)
		}
	}
	for _, reg := range []struct {
		name    xml.Name
		where   int
		feature string
		h       IQHandler
	}{
		{name(nsRoster, "query"), AtSelf, "", IQHandlerFunc(r.handleRoster)},
		{name(nsBlocking, "blocklist"), AtSelf, nsBlocking, IQHandlerFunc(r.handleBlocking)},
		{name(nsBlocking, "block"), AtSelf, "", IQHandlerFunc(r.handleBlocking)},
		{name(nsBlocking, "unblock"), AtSelf, "", IQHandlerFunc(r.handleBlocking)},
		{name(nsVCard, "vCard"), AtSelf | AtAccount, nsVCard, IQHandlerFunc(r.handleVCard)},
		{name(nsPrivate, "query"), AtSelf, nsPrivate, IQHandlerFunc(r.handlePrivate)},
		{name(nsVersion, "query"), AtServer, nsVersion, get(handleVersion)},
		{name(nsTime, "time"), AtServer, nsTime, get(func(context.Context, IQRequest) (xml.TokenReader, error) {
			return timePayload(r.now()), nil
		})},
		{name(nsLast, "query"), AtServer | AtSelf | AtAccount, nsLast, get(func(ctx context.Context, req IQRequest) (xml.TokenReader, error) {
			return r.handleLast(ctx, req, started)
		})},
		{name(nsDiscoItems, "query"), AtServer | AtSelf | AtAccount, nsDiscoItems, get(func(context.Context, IQRequest) (xml.TokenReader, error) {
			return emptyElement(nsDiscoItems, "query"), nil
		})},
		{name(nsDiscoInfo, "query"), AtSelf | AtAccount, "", get(r.handleAccountInfo)},
	} {
		if err := m.handle(reg.name, reg.where, reg.feature, reg.h); err != nil {
			return err
		}
	}
	return nil
}

func textElement(local, text string) xml.TokenReader {
	return xmlstream.Wrap(xmlstream.Token(xml.CharData(text)), xml.StartElement{Name: xml.Name{Local: local}})
}

func handleVersion(context.Context, IQRequest) (xml.TokenReader, error) {
	return xmlstream.Wrap(xmlstream.MultiReader(
		textElement("name", "ottr"),
		textElement("version", Version),
	), xml.StartElement{Name: xml.Name{Space: nsVersion, Local: "query"}}), nil
}

func timePayload(now time.Time) xml.TokenReader {
	return xmlstream.Wrap(xmlstream.MultiReader(
		textElement("tzo", "+00:00"),
		textElement("utc", now.UTC().Format("2006-01-02T15:04:05Z")),
	), xml.StartElement{Name: xml.Name{Space: nsTime, Local: "time"}})
}

// handleLast answers XEP-0012: the server's uptime, or how long ago an
// account was last online, for the account itself and its subscribers.
func (r *Router) handleLast(ctx context.Context, req IQRequest, started time.Time) (xml.TokenReader, error) {
	seconds := func(d time.Duration, text string) xml.TokenReader {
		var inner xml.TokenReader
		if text != "" {
			inner = xmlstream.Token(xml.CharData(text))
		}
		return xmlstream.Wrap(inner, xml.StartElement{
			Name: xml.Name{Space: nsLast, Local: "query"},
			Attr: []xml.Attr{{Name: xml.Name{Local: "seconds"}, Value: strconv.FormatInt(int64(d/time.Second), 10)}},
		})
	}
	if req.To.Localpart() == "" {
		return seconds(r.now().Sub(started), ""), nil
	}
	account := req.To.Bare()
	if !account.Equal(req.From.Bare()) {
		item, ok := r.rosterItem(account, req.From.Bare())
		if !ok || !item.From {
			return nil, stanza.Error{Type: stanza.Auth, Condition: stanza.Forbidden}
		}
	}
	if len(r.available(account, false)) > 0 {
		return seconds(0, ""), nil
	}
	at, status, ok, err := r.store.LastActivity(ctx, account.Domainpart(), account.Localpart())
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}
	}
	return seconds(r.now().Sub(at), status), nil
}

// handleAccountInfo answers disco#info on an account's bare JID.
func (r *Router) handleAccountInfo(ctx context.Context, req IQRequest) (xml.TokenReader, error) {
	if !r.accountExists(req.To.Bare()) {
		return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}
	}
	for _, a := range req.Payload.Attr {
		if a.Name.Local == "node" && a.Value != "" {
			return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}
		}
	}
	return xmlstream.Wrap(xmlstream.MultiReader(
		xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Local: "identity"}, Attr: []xml.Attr{
			{Name: xml.Name{Local: "category"}, Value: "account"},
			{Name: xml.Name{Local: "type"}, Value: "registered"},
		}}),
		xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Local: "feature"}, Attr: []xml.Attr{{Name: xml.Name{Local: "var"}, Value: nsDiscoInfo}}}),
	), xml.StartElement{Name: xml.Name{Space: nsDiscoInfo, Local: "query"}}), nil
}

// marshalPayload serializes the request's payload element.
func marshalPayload(req IQRequest) ([]byte, error) {
	var buf bytes.Buffer
	enc := xml.NewEncoder(&buf)
	for _, tok := range payloadTokens(req.Stanza) {
		if err := enc.EncodeToken(tok); err != nil {
			return nil, err
		}
	}
	if err := enc.Flush(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// storedElement returns a stored XML element as tokens.
func storedElement(doc []byte) xml.TokenReader {
	return xml.NewDecoder(bytes.NewReader(doc))
}

// handleVCard answers XEP-0054: anyone may read an account's vCard, only
// the user may set it, within the size limit.
func (r *Router) handleVCard(ctx context.Context, req IQRequest) (xml.TokenReader, error) {
	account := req.To.Bare()
	host, user := account.Domainpart(), account.Localpart()
	if req.Stanza.Type == "get" {
		if !account.Equal(req.From.Bare()) && !r.accountExists(account) {
			return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}
		}
		doc, ok, err := r.store.GetXML(ctx, host, user, "vcard")
		if err != nil {
			return nil, err
		}
		if !ok {
			return emptyElement(nsVCard, "vCard"), nil
		}
		return storedElement(doc), nil
	}
	if !account.Equal(req.From.Bare()) {
		return nil, stanza.Error{Type: stanza.Auth, Condition: stanza.Forbidden}
	}
	doc, err := marshalPayload(req)
	if err != nil {
		return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
	}
	if len(doc) > r.limits.VCardMax {
		return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable, Text: map[string]string{"": "vCard larger than " + strconv.Itoa(r.limits.VCardMax) + " bytes"}}
	}
	// One vCard per user: the key "vcard" is its own quota scope.
	return nil, r.store.PutXML(ctx, host, user, "vcard", doc, storage.Quota{Count: 1, Bytes: int64(r.limits.VCardMax)})
}

// handlePrivate answers XEP-0049 private XML storage on the user's own
// account: one child element per request, stored by its namespace.
func (r *Router) handlePrivate(ctx context.Context, req IQRequest) (xml.TokenReader, error) {
	user := req.From.Bare()
	toks := payloadTokens(req.Stanza)
	// toks is <query> ... </query>: find its single child.
	var child []xml.Token
	var childStart xml.StartElement
	depth, children := 0, 0
	for _, tok := range toks[1 : len(toks)-1] {
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				children++
				childStart = t
			}
			depth++
		case xml.EndElement:
			depth--
		}
		if children == 1 {
			child = append(child, tok)
		}
	}
	if children != 1 || childStart.Name.Space == "" {
		return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
	}
	if strings.HasPrefix(childStart.Name.Space, "jabber:") {
		// XEP-0049 §3: the jabber: namespaces are the server's.
		return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable}
	}
	key := "private:" + childStart.Name.Space + " " + childStart.Name.Local
	host, name := user.Domainpart(), user.Localpart()
	wrap := func(inner xml.TokenReader) xml.TokenReader {
		return xmlstream.Wrap(inner, xml.StartElement{Name: xml.Name{Space: nsPrivate, Local: "query"}})
	}
	if req.Stanza.Type == "get" {
		doc, ok, err := r.store.GetXML(ctx, host, name, key)
		if err != nil {
			return nil, err
		}
		if !ok {
			return wrap(emptyElement(childStart.Name.Space, childStart.Name.Local)), nil
		}
		return wrap(storedElement(doc)), nil
	}
	var buf bytes.Buffer
	enc := xml.NewEncoder(&buf)
	for _, tok := range child {
		if err := enc.EncodeToken(tok); err != nil {
			return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
		}
	}
	if err := enc.Flush(); err != nil {
		return nil, err
	}
	if buf.Len() > r.limits.PrivateMax {
		return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable}
	}
	// Every "private:" document counts against private_documents and
	// private_total_bytes (security review #6).
	err := r.store.PutXML(ctx, host, name, key, buf.Bytes(), r.privateQuota())
	if errors.Is(err, storage.ErrQuota) {
		return nil, stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint}
	}
	return nil, err
}
