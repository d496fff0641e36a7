package mam

import (
	"context"
	"encoding/xml"
	"strconv"
	"strings"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"ottr.im/ottr/element"
	"ottr.im/ottr/router"
	"ottr.im/ottr/storage"
)

// prefsRequest is a <prefs/> as sent (XEP-0441 §3).
type prefsRequest struct {
	Default *string  `xml:"default,attr"`
	Always  []string `xml:"always>jid"`
	Never   []string `xml:"never>jid"`
}

// handlePrefs answers a get with the user's preferences, and a set by
// replacing them and answering with them as stored.
func (m *Module) handlePrefs(ctx context.Context, req router.IQRequest) (xml.TokenReader, error) {
	owner := req.To.Bare()
	host, user := owner.Domainpart(), owner.Localpart()
	if req.Stanza.Type == "get" {
		p, err := m.store.ArchivePrefs(ctx, host, user)
		if err != nil {
			return nil, err
		}
		return prefsXML(p), nil
	}
	var r prefsRequest
	if err := req.Stanza.DecodePayload(&r); err != nil {
		return nil, badRequest("the preferences do not parse")
	}
	p, err := m.parsePrefs(r)
	if err != nil {
		return nil, err
	}
	// Dropped before and after: a read that started before the change
	// is not cached (see userPrefs), nor one that starts during it.
	m.forgetPrefs(owner)
	err = m.store.SetArchivePrefs(ctx, host, user, p)
	m.forgetPrefs(owner)
	if err != nil {
		return nil, err
	}
	return prefsXML(p), nil
}

// parsePrefs checks a <prefs/> set: a known default, JIDs that parse
// (kept in their canonical form, repeats dropped), none in both lists,
// at most MaxPrefsJIDs of them.
func (m *Module) parsePrefs(r prefsRequest) (storage.ArchivePrefs, error) {
	var p storage.ArchivePrefs
	if r.Default == nil {
		return p, badRequest("default is missing")
	}
	switch p.Default = *r.Default; p.Default {
	case storage.ArchiveAlways, storage.ArchiveNever, storage.ArchiveRoster:
	default:
		return p, badRequest("default is always, never or roster")
	}
	if len(r.Always)+len(r.Never) > m.opts.MaxPrefsJIDs {
		return p, stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable, Text: map[string]string{
			"": "at most " + strconv.Itoa(m.opts.MaxPrefsJIDs) + " JIDs",
		}}
	}
	seen := make(map[string]string)
	for _, l := range []struct {
		name string
		in   []string
		out  *[]string
	}{{"always", r.Always, &p.Always}, {"never", r.Never, &p.Never}} {
		for _, s := range l.in {
			j, err := jid.Parse(strings.TrimSpace(s))
			if err != nil {
				return p, stanza.Error{Type: stanza.Modify, Condition: stanza.JIDMalformed}
			}
			key := j.String()
			switch seen[key] {
			case "":
				seen[key] = l.name
				*l.out = append(*l.out, key)
			case l.name:
			default:
				return p, badRequest(key + " is in both always and never")
			}
		}
	}
	return p, nil
}

// prefsXML is the <prefs/> element of p; no preferences read as
// default='always' (the module's default).
func prefsXML(p storage.ArchivePrefs) xml.TokenReader {
	def := p.Default
	if def == "" {
		def = storage.ArchiveAlways
	}
	list := func(name string, jids []string) xml.TokenReader {
		var inner []xml.TokenReader
		for _, j := range jids {
			inner = append(inner, element.Text("jid", j))
		}
		return xmlstream.Wrap(xmlstream.MultiReader(inner...), xml.StartElement{Name: xml.Name{Local: name}})
	}
	return xmlstream.Wrap(xmlstream.MultiReader(list("always", p.Always), list("never", p.Never)), xml.StartElement{
		Name: xml.Name{Space: NS, Local: "prefs"},
		Attr: []xml.Attr{{Name: xml.Name{Local: "default"}, Value: def}},
	})
}
