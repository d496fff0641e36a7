package vcard

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"strings"

	"ottr.im/ottr/storage"
)

// The XEP-0084 nodes a PEP avatar lives in.
const (
	nodeMetadata = "urn:xmpp:avatar:metadata"
	nodeData     = "urn:xmpp:avatar:data"
)

// AvatarStore reads the user's XEP-0084 avatar from PEP storage, for the
// XEP-0398 conversion; storage/sqlite implements it.
type AvatarStore interface {
	// PEPNode returns a node's configuration; ok is false when the
	// user has no such node.
	PEPNode(ctx context.Context, host, user, node string) (n storage.PEPNode, ok bool, err error)
	// PEPItems returns the node's items with the given ids (all when
	// ids is empty), newest first, at most max when max is above 0.
	PEPItems(ctx context.Context, host, user, node string, ids []string, max int) ([]storage.PEPItem, error)
}

// avatar is a PEP avatar as a vCard PHOTO.
type avatar struct {
	typ    string
	binval string
}

// pepAvatar returns the user's PEP avatar when the vCard of the user may
// show it to requester (XEP-0398 §3.1: the avatar published with XEP-0084
// is the vCard's photo). A vCard is readable by anyone, so only an avatar
// whose metadata node has the open access model is shown to others; the
// user sees their own whatever its access model. ok is false when there
// is none to show: no node, a disabled avatar (metadata without <info/>),
// only an avatar at an external URL, or no data item for its id.
func pepAvatar(ctx context.Context, store AvatarStore, host, user string, own bool) (a avatar, ok bool, err error) {
	node, found, err := store.PEPNode(ctx, host, user, nodeMetadata)
	if err != nil || !found || (!own && node.Access != "open") {
		return avatar{}, false, err
	}
	items, err := store.PEPItems(ctx, host, user, nodeMetadata, nil, 1)
	if err != nil || len(items) == 0 {
		return avatar{}, false, err
	}
	var meta struct {
		Info []struct {
			ID   string `xml:"id,attr"`
			Type string `xml:"type,attr"`
			URL  string `xml:"url,attr"`
		} `xml:"urn:xmpp:avatar:metadata info"`
	}
	if err := xml.Unmarshal(items[0].Payload, &meta); err != nil {
		return avatar{}, false, nil // not ours to judge: no photo
	}
	for _, info := range meta.Info {
		// §3.1: the info that does not point to an external URL.
		if info.URL != "" || info.ID == "" {
			continue
		}
		data, err := store.PEPItems(ctx, host, user, nodeData, []string{info.ID}, 1)
		if err != nil || len(data) == 0 {
			return avatar{}, false, err
		}
		var d struct {
			Data string `xml:",chardata"`
		}
		if err := xml.Unmarshal(data[0].Payload, &d); err != nil {
			return avatar{}, false, nil
		}
		typ := info.Type
		if typ == "" {
			typ = "image/png"
		}
		return avatar{typ: typ, binval: strings.Join(strings.Fields(d.Data), "")}, true, nil
	}
	return avatar{}, false, nil
}

// withPhoto returns the vCard doc (nil for none) with its PHOTO replaced
// by a's.
func withPhoto(doc []byte, a avatar) ([]byte, error) {
	if doc == nil {
		doc = []byte(`<vCard xmlns="vcard-temp"></vCard>`)
	}
	var out bytes.Buffer
	enc := xml.NewEncoder(&out)
	dec := xml.NewDecoder(bytes.NewReader(doc))
	depth := 0
	skip := 0 // depth of a PHOTO being left out, 0 for none
	for {
		tok, err := dec.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("vcard: reading a stored vCard: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 2 && t.Name.Local == "PHOTO" {
				skip = depth
			}
		case xml.EndElement:
			if depth == 1 {
				// The photo goes last, before </vCard>.
				if err := encodePhoto(enc, a); err != nil {
					return nil, err
				}
			}
			depth--
			if skip != 0 && depth < skip {
				skip = 0
				continue
			}
		}
		if skip != 0 {
			continue
		}
		if err := enc.EncodeToken(tok); err != nil {
			return nil, fmt.Errorf("vcard: writing the vCard: %w", err)
		}
	}
	if err := enc.Flush(); err != nil {
		return nil, fmt.Errorf("vcard: writing the vCard: %w", err)
	}
	return out.Bytes(), nil
}

// encodePhoto writes <PHOTO><TYPE/><BINVAL/></PHOTO>.
func encodePhoto(enc *xml.Encoder, a avatar) error {
	photo := xml.StartElement{Name: xml.Name{Local: "PHOTO"}}
	for _, t := range []xml.Token{
		photo,
		xml.StartElement{Name: xml.Name{Local: "TYPE"}}, xml.CharData(a.typ), xml.EndElement{Name: xml.Name{Local: "TYPE"}},
		xml.StartElement{Name: xml.Name{Local: "BINVAL"}}, xml.CharData(a.binval), xml.EndElement{Name: xml.Name{Local: "BINVAL"}},
		photo.End(),
	} {
		if err := enc.EncodeToken(t); err != nil {
			return fmt.Errorf("vcard: writing the photo: %w", err)
		}
	}
	return nil
}
