package muc_test

import (
	"fmt"
	"testing"

	"ottr.im/ottr/internal/routertest"
	"ottr.im/ottr/mod/muc"
	"ottr.im/ottr/storage"
)

// BenchmarkGroupchat measures one groupchat message to a room of N
// occupants: the fan-out, its clones and the history, without a socket.
func BenchmarkGroupchat(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("occupants=%d", n), func(b *testing.B) {
			core, store := routertest.New(b)
			f := register(b, core, store, muc.Options{Rate: 1e9})
			targets := make([]*routertest.Target, n)
			for i := range targets {
				targets[i] = routertest.Bind(b, core, fmt.Sprintf("u%d@localhost/r", i))
				routertest.Send(b, core, targets[i], fmt.Sprintf(`<presence to='%s/u%d'/>`, room, i))
			}
			for _, tg := range targets {
				tg.Take()
			}
			msg := routertest.Stanza(b, `<message xmlns='jabber:client' type='groupchat' to='`+room+`'><body>hello, everyone in the room</body></message>`)
			msg.From = targets[0].JID()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				f.core.Route(b.Context(), targets[0], msg.Clone())
				if i%64 == 63 {
					b.StopTimer()
					for _, tg := range targets {
						tg.Take()
					}
					b.StartTimer()
				}
			}
		})
	}
}

// BenchmarkGroupchatArchive measures one groupchat message to a
// persistent room of 10 occupants, with and without its archive; the
// archive's writes, queued by the loop, are counted to the last.
func BenchmarkGroupchatArchive(b *testing.B) {
	for _, archive := range []bool{false, true} {
		b.Run(fmt.Sprintf("archive=%v", archive), func(b *testing.B) {
			core, store := routertest.New(b)
			opts := muc.Options{Rate: 1e9}
			if archive {
				opts.ArchiveMessages = 100_000
			}
			f := register(b, core, store, opts)
			targets := make([]*routertest.Target, 10)
			for i := range targets {
				targets[i] = routertest.Bind(b, core, fmt.Sprintf("u%d@localhost/r", i))
				routertest.Send(b, core, targets[i], fmt.Sprintf(`<presence to='%s/u%d'/>`, room, i))
				if i == 0 {
					routertest.Send(b, core, targets[0], `<iq type='set' id='cfg' to='`+room+`'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>`+field("muc#roomconfig_persistentroom", "1")+`</x></query></iq>`)
				}
			}
			for _, tg := range targets {
				tg.Take()
			}
			msg := routertest.Stanza(b, `<message xmlns='jabber:client' type='groupchat' to='`+room+`'><body>hello, everyone in the room</body></message>`)
			msg.From = targets[0].JID()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				f.core.Route(b.Context(), targets[0], msg.Clone())
				if i++; i%64 == 0 {
					for _, tg := range targets {
						tg.Take()
					}
				}
			}
			f.mod.Flush()
			if archive {
				page, err := store.QueryArchive(b.Context(), "conference.localhost", "room", storage.ArchiveQuery{})
				if err != nil || page.Count != min(i, 100_000) {
					b.Fatalf("the room's archive after %d messages: %d, %v", i, page.Count, err)
				}
			}
		})
	}
}
