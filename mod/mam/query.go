package mam

import (
	"context"
	"encoding/xml"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"ottr.im/ottr/element"
	"ottr.im/ottr/router"
	"ottr.im/ottr/storage"
)

// stampFormat is XEP-0082's DateTime, in UTC to the microsecond.
const stampFormat = "2006-01-02T15:04:05.000000Z"

// registerIQ adds the handlers of <query/>, <prefs/> and <metadata/>.
func (m *Module) registerIQ() error {
	for local, h := range map[string]router.IQHandlerFunc{
		"query":    m.handleQuery,
		"prefs":    m.handlePrefs,
		"metadata": m.handleMetadata,
	} {
		err := m.core.HandleIQ(xml.Name{Space: NS, Local: local}, router.AtSelf|router.AtAccount, "", ownArchive(h))
		if err != nil {
			return err
		}
	}
	return nil
}

// ownArchive refuses requests about another user's archive (XEP-0313
// §9.1: forbidden) and passes the user's own to h.
func ownArchive(h router.IQHandlerFunc) router.IQHandlerFunc {
	return func(ctx context.Context, req router.IQRequest) (xml.TokenReader, error) {
		if !req.To.Bare().Equal(req.From.Bare()) {
			return nil, stanza.Error{Type: stanza.Auth, Condition: stanza.Forbidden}
		}
		return h(ctx, req)
	}
}

func badRequest(text string) error {
	return stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest, Text: map[string]string{"": text}}
}

// queryRequest is a <query/> as sent.
type queryRequest struct {
	QueryID string    `xml:"queryid,attr"`
	Node    string    `xml:"node,attr"`
	Form    *dataForm `xml:"jabber:x:data x"`
	Set     *rsmSet   `xml:"http://jabber.org/protocol/rsm set"`
	Flip    *struct{} `xml:"urn:xmpp:mam:2 flip-page"`
}

// dataForm is an XEP-0004 form as submitted.
type dataForm struct {
	Fields []struct {
		Var    string   `xml:"var,attr"`
		Values []string `xml:"value"`
	} `xml:"field"`
}

// rsmSet is an XEP-0059 request.
type rsmSet struct {
	Max    *string `xml:"max"`
	After  *string `xml:"after"`
	Before *string `xml:"before"`
}

// handleQuery answers a get with the query form and a set with the
// results, sent one message each, and <fin/>.
func (m *Module) handleQuery(ctx context.Context, req router.IQRequest) (xml.TokenReader, error) {
	if req.Stanza.Type == "get" {
		return queryForm(), nil
	}
	var r queryRequest
	if err := req.Stanza.DecodePayload(&r); err != nil {
		return nil, badRequest("the query does not parse")
	}
	if r.Node != "" {
		return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.FeatureNotImplemented}
	}
	now := m.now()
	q, err := m.parseQuery(r)
	if err != nil {
		return nil, err
	}
	q.Expire = m.expire(now)
	owner := req.To.Bare()
	m.w.Sync()
	page, err := m.store.QueryArchive(ctx, owner.Domainpart(), owner.Localpart(), q)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}
	case err != nil:
		return nil, err
	}
	msgs := page.Messages
	if r.Flip != nil {
		msgs = slices.Clone(msgs)
		slices.Reverse(msgs)
	}
	for _, msg := range msgs {
		st, err := result(owner, req.From, r.QueryID, msg)
		if err != nil {
			return nil, err
		}
		m.core.Deliver(req.Session, st)
	}
	return fin(r.QueryID, page), nil
}

// parseQuery reads the form and the RSM set of a query.
func (m *Module) parseQuery(r queryRequest) (storage.ArchiveQuery, error) {
	q := storage.ArchiveQuery{
		Max:      min(m.opts.MaxPage, max(1, m.opts.SendQueue/2)),
		MaxBytes: int64(max(1, m.opts.SendQueueBytes/2)),
	}
	if r.Form != nil {
		for _, f := range r.Form.Fields {
			if err := m.parseField(&q, f.Var, f.Values); err != nil {
				return q, err
			}
		}
	}
	if s := r.Set; s != nil {
		if s.Max != nil {
			n, err := strconv.Atoi(strings.TrimSpace(*s.Max))
			if err != nil || n < 0 {
				return q, badRequest("<max/> is not a count")
			}
			q.Max = min(q.Max, n)
		}
		if s.After != nil {
			q.After = strings.TrimSpace(*s.After)
		}
		if s.Before != nil {
			q.Before, q.Last = strings.TrimSpace(*s.Before), true
		}
	}
	return q, nil
}

// parseField reads one field of the query form into q.
func (m *Module) parseField(q *storage.ArchiveQuery, name string, values []string) error {
	one := func() (string, error) {
		if len(values) != 1 {
			return "", badRequest("field " + name + " takes one value")
		}
		return strings.TrimSpace(values[0]), nil
	}
	stamp := func() (time.Time, error) {
		v, err := one()
		if err != nil {
			return time.Time{}, err
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return time.Time{}, badRequest("field " + name + " is not an XEP-0082 DateTime")
		}
		return t, nil
	}
	var err error
	switch name {
	case "FORM_TYPE":
		var v string
		if v, err = one(); err == nil && v != NS {
			err = badRequest("FORM_TYPE is not " + NS)
		}
	case "with":
		var v string
		if v, err = one(); err == nil {
			var j jid.JID
			if j, err = jid.Parse(v); err != nil {
				err = badRequest("field with is not a JID")
			}
			q.With = j.String()
		}
	case "start":
		q.Start, err = stamp()
	case "end":
		q.End, err = stamp()
	case "after-id":
		q.AfterID, err = one()
	case "before-id":
		q.BeforeID, err = one()
	case "ids":
		if len(values) > m.opts.MaxPage {
			return stanza.Error{Type: stanza.Modify, Condition: stanza.PolicyViolation, Text: map[string]string{
				"": "more ids than a page holds (" + strconv.Itoa(m.opts.MaxPage) + ")",
			}}
		}
		q.IDs = make([]string, 0, len(values))
		for _, v := range values {
			q.IDs = append(q.IDs, strings.TrimSpace(v))
		}
	default:
		// XEP-0313 §4.1.5.
		return stanza.Error{Type: stanza.Cancel, Condition: stanza.FeatureNotImplemented, Text: map[string]string{
			"": "unknown field " + name,
		}}
	}
	return err
}

// queryForm is the form of the fields a query may use (XEP-0313 §4.1.5).
func queryForm() xml.TokenReader {
	field := func(name, typ string, inner ...xml.TokenReader) xml.TokenReader {
		return xmlstream.Wrap(xmlstream.MultiReader(inner...), xml.StartElement{
			Name: xml.Name{Local: "field"},
			Attr: []xml.Attr{{Name: xml.Name{Local: "type"}, Value: typ}, {Name: xml.Name{Local: "var"}, Value: name}},
		})
	}
	validate := xmlstream.Wrap(element.Empty("", "open"), xml.StartElement{
		Name: xml.Name{Space: "http://jabber.org/protocol/xdata-validate", Local: "validate"},
		Attr: []xml.Attr{{Name: xml.Name{Local: "datatype"}, Value: "xs:string"}},
	})
	form := xmlstream.Wrap(xmlstream.MultiReader(
		field("FORM_TYPE", "hidden", element.Text("value", NS)),
		field("with", "jid-single"),
		field("start", "text-single"),
		field("end", "text-single"),
		field("before-id", "text-single"),
		field("after-id", "text-single"),
		field("ids", "list-multi", validate),
	), xml.StartElement{Name: xml.Name{Space: nsData, Local: "x"}, Attr: []xml.Attr{{Name: xml.Name{Local: "type"}, Value: "form"}}})
	return xmlstream.Wrap(form, xml.StartElement{Name: xml.Name{Space: NS, Local: "query"}})
}

// result is one result of a query: the archived message forwarded
// (XEP-0297) with its stamp, from the archive to the requester.
func result(owner, to jid.JID, queryID string, msg storage.ArchivedMessage) (*element.Stanza, error) {
	attrs := []xml.Attr{{Name: xml.Name{Local: "id"}, Value: msg.ID}}
	if queryID != "" {
		attrs = append([]xml.Attr{{Name: xml.Name{Local: "queryid"}, Value: queryID}}, attrs...)
	}
	delay := xmlstream.Wrap(nil, xml.StartElement{
		Name: xml.Name{Space: nsDelay, Local: "delay"},
		Attr: []xml.Attr{{Name: xml.Name{Local: "stamp"}, Value: msg.Stored.UTC().Format(stampFormat)}},
	})
	payload := xmlstream.Wrap(
		xmlstream.Wrap(xmlstream.MultiReader(delay, element.Stored(msg.Stanza)), xml.StartElement{Name: xml.Name{Space: nsForward, Local: "forwarded"}}),
		xml.StartElement{Name: xml.Name{Space: NS, Local: "result"}, Attr: attrs},
	)
	return element.New("message", "", owner, to, "", payload)
}

// fin is the iq result that ends a query: whether the page is complete
// and its RSM set (XEP-0313 §4.3, XEP-0059 §2).
func fin(queryID string, page storage.ArchivePage) xml.TokenReader {
	var set []xml.TokenReader
	if n := len(page.Messages); n > 0 {
		set = append(set, element.Text("first", page.Messages[0].ID), element.Text("last", page.Messages[n-1].ID))
	}
	set = append(set, element.Text("count", strconv.Itoa(page.Count)))
	var attrs []xml.Attr
	if queryID != "" {
		attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "queryid"}, Value: queryID})
	}
	attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "complete"}, Value: strconv.FormatBool(page.Complete)})
	return xmlstream.Wrap(
		xmlstream.Wrap(xmlstream.MultiReader(set...), xml.StartElement{Name: xml.Name{Space: nsRSM, Local: "set"}}),
		xml.StartElement{Name: xml.Name{Space: NS, Local: "fin"}, Attr: attrs},
	)
}

// handleMetadata answers <metadata/> with the archive's first and last
// messages (XEP-0313 §5).
func (m *Module) handleMetadata(ctx context.Context, req router.IQRequest) (xml.TokenReader, error) {
	if req.Stanza.Type != "get" {
		return nil, badRequest("metadata is read with a get")
	}
	owner := req.To.Bare()
	m.w.Sync()
	var inner []xml.TokenReader
	for _, end := range []struct {
		name string
		last bool
	}{{"start", false}, {"end", true}} {
		page, err := m.store.QueryArchive(ctx, owner.Domainpart(), owner.Localpart(), storage.ArchiveQuery{
			Max: 1, MaxBytes: 1, Last: end.last, Expire: m.expire(m.now()),
		})
		if err != nil {
			return nil, err
		}
		if len(page.Messages) == 0 {
			break
		}
		msg := page.Messages[0]
		inner = append(inner, xmlstream.Wrap(nil, xml.StartElement{
			Name: xml.Name{Local: end.name},
			Attr: []xml.Attr{
				{Name: xml.Name{Local: "id"}, Value: msg.ID},
				{Name: xml.Name{Local: "timestamp"}, Value: msg.Stored.UTC().Format(stampFormat)},
			},
		}))
	}
	return xmlstream.Wrap(xmlstream.MultiReader(inner...), xml.StartElement{Name: xml.Name{Space: NS, Local: "metadata"}}), nil
}
