package server_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ottr.im/ottr/internal/testfixture/testserver"
	"ottr.im/ottr/server"
	"ottr.im/ottr/storage/claimlog"
)

// TestSecondServerSameDataDir: a second server on a data_dir in use fails
// to start, naming the claim log, instead of sharing the used tokens with
// the first (each would accept a token the other accepted); once the first
// shut down, it starts. The log is created 0600.
func TestSecondServerSameDataDir(t *testing.T) {
	cfg := testserver.Config(t)
	first, err := server.New(server.Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(cfg.DataDir, claimlog.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: mode %v, want 0600", claimlog.FileName, fi.Mode().Perm())
	}
	second, err := server.New(server.Options{Config: cfg})
	if err == nil {
		second.Shutdown(context.Background())
		first.Shutdown(context.Background())
		t.Fatal("a second server on the same data_dir started")
	}
	if !strings.Contains(err.Error(), "used by another ottr serve") || !strings.Contains(err.Error(), claimlog.FileName) {
		t.Errorf("second server: %q, want the claim log named as used by another ottr serve", err)
	}
	if err := first.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	again, err := server.New(server.Options{Config: cfg})
	if err != nil {
		t.Fatalf("after the first shut down: %v", err)
	}
	if err := again.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}
