package archivewriter

import (
	"context"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"mellium.im/xmlstream"

	"ottr.im/ottr/element"
	"ottr.im/ottr/storage"
)

func TestID(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	prev := ""
	for i := range 1000 {
		id := ID(t0.Add(time.Duration(i) * time.Microsecond))
		if len(id) != 29 {
			t.Fatalf("ID = %q: %d characters, want 29", id, len(id))
		}
		if _, err := hex.DecodeString(id[:12]); err != nil {
			t.Fatalf("ID = %q: not hex: %v", id, err)
		}
		if id <= prev {
			t.Fatalf("ID %q of a later time sorts before %q", id, prev)
		}
		prev = id
	}
	if a, b := ID(t0), ID(t0); a == b || a[:13] != b[:13] {
		t.Errorf("two IDs at the same time: %q, %q; want the same time prefix, different ids", a, b)
	}
}

// fakeStore records the batches it is given.
type fakeStore struct {
	mu      sync.Mutex
	batches [][]storage.ArchiveEntry
}

func (s *fakeStore) AppendArchives(_ context.Context, entries []storage.ArchiveEntry, _ storage.ArchiveLimits) ([]error, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches = append(s.batches, entries)
	return make([]error, len(entries)), nil
}

// TestBatches queues more than a batch from several goroutines: Sync
// returns once all of it is written, in batches of at most MaxBatch, in
// each sender's order; after Close, Add drops.
func TestBatches(t *testing.T) {
	s := &fakeStore{}
	w := New(s, func() storage.ArchiveLimits { return storage.ArchiveLimits{} }, slog.New(slog.DiscardHandler))
	const senders, each = 4, MaxBatch
	var wg sync.WaitGroup
	for i := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				w.Add(storage.ArchiveEntry{User: fmt.Sprint(i), Message: storage.ArchivedMessage{ID: fmt.Sprint(j)}})
			}
		}()
	}
	wg.Wait()
	w.Sync()
	s.mu.Lock()
	next := map[string]int{}
	total := 0
	for _, b := range s.batches {
		if len(b) > MaxBatch {
			t.Errorf("a batch of %d, want at most %d", len(b), MaxBatch)
		}
		for _, e := range b {
			if e.Message.ID != fmt.Sprint(next[e.User]) {
				t.Fatalf("sender %s: message %s written after %d", e.User, e.Message.ID, next[e.User])
			}
			next[e.User]++
			total++
		}
	}
	s.mu.Unlock()
	if total != senders*each {
		t.Errorf("%d written after Sync, want %d", total, senders*each)
	}
	w.Close()
	if w.Add(storage.ArchiveEntry{}) {
		t.Error("Add after Close queued")
	}
}

// TestEncode: element.Unmarshal reads from Encode's bytes the stanza it
// reads from element.Marshal's, for stanzas as read from a client and as
// changed by the server.
func TestEncode(t *testing.T) {
	for _, in := range []string{
		`<message to='bob@example.com' type='chat' id='x'><body>Hi &amp; &lt;bye&gt; 😀 "q" 'a'</body></message>`,
		`<message xmlns='jabber:client' to='bob@example.com'><body>x</body><x:y xmlns:x='urn:x' x:a='1'/><z xmlns='urn:z' b='&apos;'><w/></z></message>`,
		`<message xmlns:p='urn:p' from='a@b/c' to='bob@example.com' type='normal'><p:data p:k='v'>t</p:data><body/></message>`,
		`<iq type='get' id='1'><query xmlns='jabber:iq:roster'/></iq>`,
		`<presence/>`,
	} {
		for _, changed := range []bool{false, true} {
			st, err := element.FromBytes([]byte(in))
			if err != nil {
				t.Fatalf("FromBytes(%s): %v", in, err)
			}
			if changed {
				// The tokens, no longer the client's bytes.
				sid := xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Space: "urn:xmpp:sid:0", Local: "stanza-id"},
					Attr: []xml.Attr{{Name: xml.Name{Local: "by"}, Value: "bob@example.com"}, {Name: xml.Name{Local: "id"}, Value: "i&d"}}})
				if err := st.Append(sid); err != nil {
					t.Fatal(err)
				}
			}
			want, err := st.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			b := Encode(st)
			got, err := element.Unmarshal(b)
			if err != nil {
				t.Fatalf("Unmarshal(Encode(%s)) = %s: %v", in, b, err)
			}
			if g, err := got.Marshal(); err != nil || string(g) != string(want) {
				t.Errorf("Encode(%s) = %s, read back as %s; Marshal gives %s", in, b, g, want)
			}
		}
	}
}
