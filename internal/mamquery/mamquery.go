// Package mamquery reads XEP-0313 queries and writes their results, for
// every archive the server keeps: a user's (mod/mam) and a room's
// (mod/muc). One reading of the form and the RSM set (XEP-0059), one
// shape of <result/> and <fin/>.
package mamquery

import (
	"encoding/xml"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"ottr.im/ottr/element"
	"ottr.im/ottr/storage"
)

// Namespaces of a query and its answers.
const (
	NS        = "urn:xmpp:mam:2"
	nsRSM     = "http://jabber.org/protocol/rsm"
	nsForward = "urn:xmpp:forward:0"
	nsDelay   = "urn:xmpp:delay"
	nsData    = "jabber:x:data"
)

// stampFormat is XEP-0082's DateTime, in UTC to the microsecond.
const stampFormat = "2006-01-02T15:04:05.000000Z"

// MaxQueryIDBytes bounds the queryid echoed in every result.
const MaxQueryIDBytes = 256

// Limits bound one page of results.
type Limits struct {
	// MaxPage is the most messages of a page (and of an ids field).
	MaxPage int
	// MaxBytes is the most bytes of stanzas of a page.
	MaxBytes int64
}

// Request is a query as read.
type Request struct {
	// Query is what to read from the archive (Expire left to the
	// caller).
	Query storage.ArchiveQuery
	// QueryID is echoed in every result and in <fin/>.
	QueryID string
	// Flip asks for the page in reverse order (XEP-0313 §4.4).
	Flip bool
}

// request is a <query/> as sent.
type request struct {
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

// BadRequest is the error of a query that does not read, with text.
func BadRequest(text string) error {
	return stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest, Text: map[string]string{"": text}}
}

// Parse reads the <query/> of st (an iq set): its form fields (XEP-0313
// §4.1: FORM_TYPE, with, start, end, after-id, before-id, ids) and its RSM
// set, within lim. An unknown field is feature-not-implemented (§4.1.5),
// a node feature-not-implemented, anything else that does not read
// bad-request.
func Parse(st *element.Stanza, lim Limits) (Request, error) {
	var r request
	if err := st.DecodePayload(&r); err != nil {
		return Request{}, BadRequest("the query does not parse")
	}
	if len(r.QueryID) > MaxQueryIDBytes {
		return Request{}, BadRequest("queryid longer than " + strconv.Itoa(MaxQueryIDBytes) + " bytes")
	}
	if r.Node != "" {
		return Request{}, stanza.Error{Type: stanza.Cancel, Condition: stanza.FeatureNotImplemented}
	}
	q := storage.ArchiveQuery{Max: max(1, lim.MaxPage), MaxBytes: max(1, lim.MaxBytes)}
	if r.Form != nil {
		for _, f := range r.Form.Fields {
			if err := parseField(&q, f.Var, f.Values, lim); err != nil {
				return Request{}, err
			}
		}
	}
	if s := r.Set; s != nil {
		if s.Max != nil {
			n, err := strconv.Atoi(strings.TrimSpace(*s.Max))
			if err != nil || n < 0 {
				return Request{}, BadRequest("<max/> is not a count")
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
	return Request{Query: q, QueryID: r.QueryID, Flip: r.Flip != nil}, nil
}

// parseField reads one field of the query form into q.
func parseField(q *storage.ArchiveQuery, name string, values []string, lim Limits) error {
	one := func() (string, error) {
		if len(values) != 1 {
			return "", BadRequest("field " + name + " takes one value")
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
			return time.Time{}, BadRequest("field " + name + " is not an XEP-0082 DateTime")
		}
		return t, nil
	}
	var err error
	switch name {
	case "FORM_TYPE":
		var v string
		if v, err = one(); err == nil && v != NS {
			err = BadRequest("FORM_TYPE is not " + NS)
		}
	case "with":
		var v string
		if v, err = one(); err == nil {
			var j jid.JID
			if j, err = jid.Parse(v); err != nil {
				err = BadRequest("field with is not a JID")
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
		if len(values) > lim.MaxPage {
			return stanza.Error{Type: stanza.Modify, Condition: stanza.PolicyViolation, Text: map[string]string{
				"": "more ids than a page holds (" + strconv.Itoa(lim.MaxPage) + ")",
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

// Form is the form of the fields a query may use (XEP-0313 §4.1.5), in
// its <query/>.
func Form() xml.TokenReader {
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

// Result is one result of a query: the archived message forwarded
// (XEP-0297) with its stamp, from the archive (a user's bare JID, a
// room's) to the requester.
func Result(archive, to jid.JID, queryID string, msg storage.ArchivedMessage) (*element.Stanza, error) {
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
	return element.New("message", "", archive, to, "", payload)
}

// Fin is the iq result that ends a query: whether the page is complete
// and its RSM set (XEP-0313 §4.3, XEP-0059 §2).
func Fin(queryID string, page storage.ArchivePage) xml.TokenReader {
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
