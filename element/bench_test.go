package element

import (
	"bytes"
	"encoding/xml"
	"io"
	"testing"
)

const typicalMessage = `<message xmlns='jabber:client' to='bob@example.org' from='alice@example.org/phone' type='chat' id='d1f5e8c0-7a1b'><body>Are we still on for lunch at noon? I booked the usual place.</body><active xmlns='http://jabber.org/protocol/chatstates'/><request xmlns='urn:xmpp:receipts'/><origin-id xmlns='urn:xmpp:sid:0' id='d1f5e8c0-7a1b'/></message>`

// BenchmarkReadMessage decodes a typical chat message from bytes into a
// Stanza, as the c2s read loop does.
func BenchmarkReadMessage(b *testing.B) {
	// One long stream of messages through one decoder, as on a session.
	stream := append([]byte("<stream xmlns='jabber:client'>"), bytes.Repeat([]byte(typicalMessage), b.N)...)
	d := xml.NewDecoder(bytes.NewReader(stream))
	if _, err := d.Token(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(typicalMessage)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tok, err := d.Token()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Read(tok.(xml.StartElement).Copy(), d, DefaultLimits); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWriteMessage encodes a typical chat message, as a session's
// writer does.
func BenchmarkWriteMessage(b *testing.B) {
	st, err := Unmarshal([]byte(typicalMessage))
	if err != nil {
		b.Fatal(err)
	}
	enc := xml.NewEncoder(io.Discard)
	b.ReportAllocs()
	b.SetBytes(int64(len(typicalMessage)))
	for i := 0; i < b.N; i++ {
		if _, err := st.WriteXML(enc); err != nil {
			b.Fatal(err)
		}
	}
	enc.Flush()
}
