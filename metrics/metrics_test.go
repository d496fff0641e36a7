package metrics

import (
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// Two servers in one process have metrics of their own: counting on one
// leaves the other at zero, and each serves its own exposition.
func TestRegistryPerServer(t *testing.T) {
	a, b := New(Options{Version: "a"}), New(Options{Version: "b"})
	a.Login("X-TOKEN", LoginSuccess)
	a.Login("X-TOKEN", "not-authorized")
	a.Login("PLAIN", LoginSuccess)
	a.SessionBound(TransportTCP)
	a.Storage("roster", 3*time.Millisecond)
	a.Refused("connection_rate")
	a.Reloaded(errors.New("bad"))
	a.ArchiveWrites(WriteStored, 3)
	a.CountConnections(func() int { return 7 })
	if got := a.Sum("ottr_logins_total", "result"); got[LoginSuccess] != 2 || got["not-authorized"] != 1 {
		t.Errorf("a's logins by result: %v", got)
	}
	if got := b.Sum("ottr_logins_total", "result"); len(got) != 0 {
		t.Errorf("b's logins: %v, want none", got)
	}
	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`ottr_build_info{version="a"} 1`,
		`ottr_sessions{transport="tcp"} 1`,
		`ottr_sessions{transport="bosh"} 0`,
		`ottr_storage_duration_seconds_count{op="roster"} 1`,
		`ottr_limit_refusals_total{limit="connection_rate"} 1`,
		`ottr_config_reloads_total{result="error"} 1`,
		`ottr_archive_writes_total{result="stored"} 3`,
		`ottr_connections 7`,
		"go_goroutines ",
		"process_cpu_seconds_total ",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
}

// What counting costs on the hot paths: a stanza, a login, a storage
// timing.
func BenchmarkCount(b *testing.B) {
	m := New(Options{})
	b.Run("stanza", func(b *testing.B) {
		for range b.N {
			m.StanzaRouted("message")
		}
	})
	b.Run("login", func(b *testing.B) {
		for range b.N {
			m.Login("X-TOKEN", LoginSuccess)
		}
	})
	b.Run("storage", func(b *testing.B) {
		for range b.N {
			m.Storage("roster", time.Millisecond)
		}
	})
}
