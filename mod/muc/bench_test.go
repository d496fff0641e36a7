package muc_test

import (
	"fmt"
	"testing"

	"ottr.im/ottr/internal/routertest"
	"ottr.im/ottr/mod/muc"
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
