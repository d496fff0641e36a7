// Package private is XEP-0049, private XML storage: a user keeps small
// XML documents on its own account, one per namespace and element name,
// within per-document and per-user limits. It answers on the user's own
// account only and adds no hooks. A document may be served by a View
// instead of the store (XEP-0048 bookmarks by the PEP module).
//
// Store: GetXML and PutXML, under keys "private:" + namespace + " " +
// element name.
package private

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"ottr.im/ottr/element"
	"ottr.im/ottr/internal/defaults"
	"ottr.im/ottr/router"
	"ottr.im/ottr/storage"
)

const ns = "jabber:iq:private"

// Store holds small per-user XML documents by key.
type Store interface {
	// GetXML returns the stored document; ok is false when there is none.
	GetXML(ctx context.Context, host, user, key string) (doc []byte, ok bool, err error)
	// PutXML stores doc under key, replacing any previous one; an empty
	// doc deletes it. q bounds the documents of key's scope (the keys
	// sharing its text up to the first ':', such as every "private:"
	// key); beyond it PutXML stores nothing and returns an error
	// wrapping storage.ErrQuota.
	PutXML(ctx context.Context, host, user, key string, doc []byte, q storage.Quota) error
}

// The defaults of Options' zero values (config's defaults too).
const (
	DefaultMaxBytes      = 64 << 10
	DefaultMaxDocuments  = 100
	DefaultMaxTotalBytes = 1 << 20
)

// Options are the module's limits.
type Options struct {
	// MaxBytes is the largest document in bytes (private_bytes);
	// MaxDocuments and MaxTotalBytes bound one user's documents together
	// (private_documents, private_total_bytes). 0 is the Default of each.
	MaxBytes, MaxDocuments, MaxTotalBytes int
	// Views serve documents, by their element's name, from elsewhere
	// than the store (nil: none): XEP-0411 makes XEP-0048's
	// {storage:bookmarks}storage a view of the PEP bookmarks.
	Views map[xml.Name]View
}

// View serves one private XML document from elsewhere than the store.
type View interface {
	// GetPrivate returns the user's document, one element.
	GetPrivate(ctx context.Context, user jid.JID) ([]byte, error)
	// SetPrivate takes the document the user stores (within
	// Options.MaxBytes); a stanza.Error it returns goes to the client as
	// it is.
	SetPrivate(ctx context.Context, user jid.JID, doc []byte) error
}

// Register adds the private XML storage handler to core.
func Register(core *router.Router, store Store, opts Options) error {
	defaults.Positive(&opts.MaxBytes, DefaultMaxBytes)
	defaults.Positive(&opts.MaxDocuments, DefaultMaxDocuments)
	defaults.Positive(&opts.MaxTotalBytes, DefaultMaxTotalBytes)
	h := &handler{store: store, opts: opts}
	if err := core.HandleIQ(xml.Name{Space: ns, Local: "query"}, router.AtSelf, ns, h); err != nil {
		return fmt.Errorf("private: %w", err)
	}
	return nil
}

type handler struct {
	store Store
	opts  Options
}

// HandleIQ answers XEP-0049 requests on the user's own account: one
// child element per request, stored by its name.
func (h *handler) HandleIQ(ctx context.Context, req router.IQRequest) (xml.TokenReader, error) {
	user := req.From.Bare()
	toks := req.Stanza.PayloadTokens()
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
		return xmlstream.Wrap(inner, xml.StartElement{Name: xml.Name{Space: ns, Local: "query"}})
	}
	view := h.opts.Views[childStart.Name]
	if req.Stanza.Type == "get" && view != nil {
		doc, err := view.GetPrivate(ctx, user)
		if err != nil {
			return nil, fmt.Errorf("private: reading %s of %s: %w", key, user, err)
		}
		return wrap(element.Stored(doc)), nil
	}
	if req.Stanza.Type == "get" {
		doc, ok, err := h.store.GetXML(ctx, host, name, key)
		if err != nil {
			return nil, fmt.Errorf("private: reading %s of %s: %w", key, user, err)
		}
		if !ok {
			return wrap(element.Empty(childStart.Name.Space, childStart.Name.Local)), nil
		}
		return wrap(element.Stored(doc)), nil
	}
	doc, err := element.EncodeTokens(child)
	if err != nil {
		return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
	}
	if len(doc) > h.opts.MaxBytes {
		return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable}
	}
	if view != nil {
		if err := view.SetPrivate(ctx, user, doc); err != nil {
			return nil, fmt.Errorf("private: storing %s of %s: %w", key, user, err)
		}
		return nil, nil
	}
	// Every "private:" document counts against private_documents and
	// private_total_bytes (security review #6).
	q := storage.Quota{Count: h.opts.MaxDocuments, Bytes: int64(h.opts.MaxTotalBytes)}
	err = h.store.PutXML(ctx, host, name, key, doc, q)
	if errors.Is(err, storage.ErrQuota) {
		return nil, stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint}
	}
	if err != nil {
		return nil, fmt.Errorf("private: storing %s of %s: %w", key, user, err)
	}
	return nil, nil
}
