// Package vcard is XEP-0054, vcard-temp: anyone may read a local
// account's vCard, only its user may set it, within a size limit. It
// answers on the user's own account and on other accounts' bare JIDs and
// adds no hooks. With Options.Avatars, the photo of the vCard it answers is
// the user's XEP-0084 avatar when they published one (XEP-0398 §3.1).
//
// Store: GetXML and PutXML, under the key "vcard".
package vcard

import (
	"context"
	"encoding/xml"
	"fmt"
	"strconv"

	"mellium.im/xmpp/stanza"

	"ottr.im/ottr/element"
	"ottr.im/ottr/internal/defaults"
	"ottr.im/ottr/router"
	"ottr.im/ottr/storage"
)

const (
	ns  = "vcard-temp"
	key = "vcard"
)

// Store holds small per-user XML documents by key.
type Store interface {
	// GetXML returns the stored document; ok is false when there is none.
	GetXML(ctx context.Context, host, user, key string) (doc []byte, ok bool, err error)
	// PutXML stores doc under key, replacing any previous one; an empty
	// doc deletes it. q bounds the documents of key's scope (the keys
	// sharing its text up to the first ':'); beyond it PutXML stores
	// nothing and returns an error wrapping storage.ErrQuota.
	PutXML(ctx context.Context, host, user, key string, doc []byte, q storage.Quota) error
}

// DefaultMaxBytes is the largest vCard when Options.MaxBytes is 0
// (config's vcard_bytes default).
const DefaultMaxBytes = 64 << 10

// Options are the module's limits.
type Options struct {
	// MaxBytes is the largest vCard in bytes (vcard_bytes); 0 is
	// DefaultMaxBytes.
	MaxBytes int
	// Avatars, when set, reads users' XEP-0084 avatars: a vCard get
	// answers the PEP avatar as the PHOTO (XEP-0398 §3.1).
	Avatars AvatarStore
}

// Register adds the vCard handler to core.
func Register(core *router.Router, store Store, opts Options) error {
	defaults.Positive(&opts.MaxBytes, DefaultMaxBytes)
	h := &handler{core: core, store: store, max: opts.MaxBytes, avatars: opts.Avatars}
	if err := core.HandleIQ(xml.Name{Space: ns, Local: "vCard"}, router.AtSelf|router.AtAccount, ns, h); err != nil {
		return fmt.Errorf("vcard: %w", err)
	}
	return nil
}

type handler struct {
	core    *router.Router
	store   Store
	max     int
	avatars AvatarStore // nil: no XEP-0398 conversion
}

// HandleIQ answers XEP-0054 requests.
func (h *handler) HandleIQ(ctx context.Context, req router.IQRequest) (xml.TokenReader, error) {
	account := req.To.Bare()
	host, user := account.Domainpart(), account.Localpart()
	if req.Stanza.Type == "get" {
		if !account.Equal(req.From.Bare()) && !h.core.AccountExists(ctx, account) {
			return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}
		}
		doc, ok, err := h.store.GetXML(ctx, host, user, key)
		if err != nil {
			return nil, fmt.Errorf("vcard: reading the vCard of %s: %w", account, err)
		}
		if h.avatars != nil {
			a, found, err := pepAvatar(ctx, h.avatars, host, user, account.Equal(req.From.Bare()))
			if err != nil {
				return nil, fmt.Errorf("vcard: reading the PEP avatar of %s: %w", account, err)
			}
			if found {
				if !ok {
					doc = nil
				}
				if doc, err = withPhoto(doc, a); err != nil {
					return nil, err
				}
				ok = true
			}
		}
		if !ok {
			return element.Empty(ns, "vCard"), nil
		}
		return element.Stored(doc), nil
	}
	if !account.Equal(req.From.Bare()) {
		return nil, stanza.Error{Type: stanza.Auth, Condition: stanza.Forbidden}
	}
	doc, err := element.EncodeTokens(req.Stanza.PayloadTokens())
	if err != nil {
		return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
	}
	if len(doc) > h.max {
		return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable, Text: map[string]string{"": "vCard larger than " + strconv.Itoa(h.max) + " bytes"}}
	}
	// One vCard per user: the key "vcard" is its own quota scope.
	if err := h.store.PutXML(ctx, host, user, key, doc, storage.Quota{Count: 1, Bytes: int64(h.max)}); err != nil {
		return nil, fmt.Errorf("vcard: storing the vCard of %s: %w", account, err)
	}
	return nil, nil
}
