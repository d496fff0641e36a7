// Package caps computes XEP-0115 entity capabilities verification strings:
// the server's own (advertised in its stream features) and a client's, to
// check the ver a presence claims against the disco#info it answers before
// the features are trusted (XEP-0115 §5.4).
package caps

import (
	"cmp"
	"crypto/sha1" //nolint:gosec // XEP-0115 names SHA-1 as the hash every entity supports.
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Namespaces of the elements read and written here.
const (
	NS     = "http://jabber.org/protocol/caps"
	NSInfo = "http://jabber.org/protocol/disco#info"
	NSData = "jabber:x:data"
)

// Identity is one disco#info identity.
type Identity struct {
	Category, Type, Lang, Name string
}

// Field is one field of an extended form (XEP-0128): its var and values,
// and the type written with it when not empty (not part of the hash).
type Field struct {
	Var    string
	Values []string
	Type   string
}

// Form is an extended disco#info form: its FORM_TYPE and other fields.
type Form struct {
	Type   string
	Fields []Field
}

// Info is what a disco#info result holds, as far as XEP-0115 hashes it.
type Info struct {
	Identities []Identity
	Features   []string
	Forms      []Form
}

// Ver returns the XEP-0115 §5.1 verification string of info with SHA-1,
// base64-encoded. It sorts copies; info is not changed.
func (info Info) Ver() string {
	var b strings.Builder
	ids := slices.Clone(info.Identities)
	slices.SortFunc(ids, func(a, b Identity) int {
		return cmp.Or(cmp.Compare(a.Category, b.Category), cmp.Compare(a.Type, b.Type), cmp.Compare(a.Lang, b.Lang))
	})
	for _, id := range ids {
		b.WriteString(id.Category + "/" + id.Type + "/" + id.Lang + "/" + id.Name + "<")
	}
	features := slices.Clone(info.Features)
	slices.Sort(features)
	for _, f := range features {
		b.WriteString(f + "<")
	}
	forms := slices.Clone(info.Forms)
	slices.SortFunc(forms, func(a, b Form) int { return strings.Compare(a.Type, b.Type) })
	for _, form := range forms {
		b.WriteString(form.Type + "<")
		fields := slices.Clone(form.Fields)
		slices.SortFunc(fields, func(a, b Field) int { return strings.Compare(a.Var, b.Var) })
		for _, f := range fields {
			b.WriteString(f.Var + "<")
			values := slices.Clone(f.Values)
			slices.Sort(values)
			for _, v := range values {
				b.WriteString(v + "<")
			}
		}
	}
	sum := sha1.Sum([]byte(b.String())) //nolint:gosec // see the import
	return base64.StdEncoding.EncodeToString(sum[:])
}

// ErrInvalid is wrapped by Parse's errors for a result XEP-0115 §5.4 says
// to ignore: duplicate identities or features, or a form without a
// FORM_TYPE or with two.
var ErrInvalid = errors.New("caps: disco#info result that must not be trusted")

// Parse reads the disco#info <query/> that start opens from d (the rest
// of the element, up to its end). Unknown children are skipped.
func Parse(d *xml.Decoder, start xml.StartElement) (Info, error) {
	if start.Name.Space != NSInfo || start.Name.Local != "query" {
		return Info{}, fmt.Errorf("%w: %s %s is not a disco#info query", ErrInvalid, start.Name.Space, start.Name.Local)
	}
	var raw struct {
		Identities []struct {
			Category string `xml:"category,attr"`
			Type     string `xml:"type,attr"`
			Lang     string `xml:"http://www.w3.org/XML/1998/namespace lang,attr"`
			Name     string `xml:"name,attr"`
		} `xml:"http://jabber.org/protocol/disco#info identity"`
		Features []struct {
			Var string `xml:"var,attr"`
		} `xml:"http://jabber.org/protocol/disco#info feature"`
		Forms []struct {
			Type   string `xml:"type,attr"`
			Fields []struct {
				Var    string   `xml:"var,attr"`
				Type   string   `xml:"type,attr"`
				Values []string `xml:"jabber:x:data value"`
			} `xml:"jabber:x:data field"`
		} `xml:"jabber:x:data x"`
	}
	if err := d.DecodeElement(&raw, &start); err != nil {
		return Info{}, fmt.Errorf("caps: reading a disco#info result: %w", err)
	}
	var info Info
	seen := make(map[string]bool)
	for _, id := range raw.Identities {
		key := "i\x00" + id.Category + "/" + id.Type + "/" + id.Lang + "/" + id.Name
		if seen[key] {
			return Info{}, fmt.Errorf("%w: duplicate identity %s/%s", ErrInvalid, id.Category, id.Type)
		}
		seen[key] = true
		info.Identities = append(info.Identities, Identity{id.Category, id.Type, id.Lang, id.Name})
	}
	for _, f := range raw.Features {
		if seen["f\x00"+f.Var] {
			return Info{}, fmt.Errorf("%w: duplicate feature %s", ErrInvalid, f.Var)
		}
		seen["f\x00"+f.Var] = true
		info.Features = append(info.Features, f.Var)
	}
	for _, x := range raw.Forms {
		if x.Type != "result" {
			continue
		}
		var form Form
		types := 0
		for _, f := range x.Fields {
			if f.Var == "FORM_TYPE" {
				types++
				if f.Type != "hidden" || len(f.Values) != 1 {
					return Info{}, fmt.Errorf("%w: a FORM_TYPE that is not one hidden value", ErrInvalid)
				}
				form.Type = f.Values[0]
				continue
			}
			form.Fields = append(form.Fields, Field{Var: f.Var, Values: f.Values})
		}
		if types != 1 {
			// §5.4 3.6: a form without exactly one FORM_TYPE is ignored
			// for the hash: the whole result is not trusted.
			return Info{}, fmt.Errorf("%w: a form with %d FORM_TYPE fields", ErrInvalid, types)
		}
		if seen["x\x00"+form.Type] {
			return Info{}, fmt.Errorf("%w: two forms of type %s", ErrInvalid, form.Type)
		}
		seen["x\x00"+form.Type] = true
		info.Forms = append(info.Forms, form)
	}
	return info, nil
}

// Element returns the <c/> element that advertises ver under node, with
// the SHA-1 hash (XEP-0115 §4), for presence or stream features.
func Element(node, ver string) xml.StartElement {
	return xml.StartElement{
		Name: xml.Name{Space: NS, Local: "c"},
		Attr: []xml.Attr{
			{Name: xml.Name{Local: "hash"}, Value: "sha-1"},
			{Name: xml.Name{Local: "node"}, Value: node},
			{Name: xml.Name{Local: "ver"}, Value: ver},
		},
	}
}
