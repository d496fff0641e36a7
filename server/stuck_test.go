package server

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"ottr.im/ottr/config"
)

// TestShutdownReportsStuck: a goroutine of the server that outlives the
// connections Shutdown closed makes Shutdown return an error naming it,
// instead of hanging (as one CI run did, with nothing to show why).
func TestShutdownReportsStuck(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.C2S.Listen = []string{"127.0.0.1:0"}
	cfg.C2S.DirectTLS = nil
	s, err := New(Options{Config: cfg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.stuckWait = 200 * time.Millisecond
	release := make(chan struct{})
	defer close(release)
	s.wg.Add(1)
	go blockedUntil(&s.wg, release)

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = s.Shutdown(ctx)
	if err == nil {
		t.Fatal("Shutdown returned no error with a goroutine still running")
	}
	if !strings.Contains(err.Error(), "goroutines still running") || !strings.Contains(err.Error(), "server.blockedUntil") {
		t.Errorf("Shutdown's error does not name the stuck goroutine:\n%v", err)
	}
	if strings.Contains(err.Error(), "server.(*Server).Shutdown") {
		t.Errorf("Shutdown's error lists its own goroutine:\n%v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Shutdown took %v", d)
	}
}

// blockedUntil stands for a goroutine stuck on something other than a
// connection.
func blockedUntil(wg interface{ Done() }, release <-chan struct{}) {
	defer wg.Done()
	<-release
}
