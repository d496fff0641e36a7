package mam

import (
	"context"
	"encoding/xml"
	"errors"
	"slices"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/stanza"

	"ottr.im/ottr/internal/mamquery"
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

// handleQuery answers a get with the query form and a set with the
// results, sent one message each, and <fin/> (internal/mamquery: the
// room archive reads and answers queries the same way).
func (m *Module) handleQuery(ctx context.Context, req router.IQRequest) (xml.TokenReader, error) {
	if req.Stanza.Type == "get" {
		return mamquery.Form(), nil
	}
	now := m.now()
	r, err := mamquery.Parse(req.Stanza, mamquery.Limits{
		MaxPage:  min(m.opts.MaxPage, max(1, m.opts.SendQueue/2)),
		MaxBytes: int64(max(1, m.opts.SendQueueBytes/2)),
	})
	if err != nil {
		return nil, err
	}
	q := r.Query
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
	if r.Flip {
		msgs = slices.Clone(msgs)
		slices.Reverse(msgs)
	}
	for _, msg := range msgs {
		st, err := mamquery.Result(owner, req.From, r.QueryID, msg)
		if err != nil {
			return nil, err
		}
		m.core.Deliver(req.Session, st)
	}
	return mamquery.Fin(r.QueryID, page), nil
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
