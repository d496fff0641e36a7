package claimlog

import (
	"path/filepath"
	"testing"
	"time"
)

// TestInUse: the claim log is in use while a Log has it open (as a
// running server does), not before it exists nor after it is closed, and
// InUse does not keep the lock: Open works after it.
func TestInUse(t *testing.T) {
	if !flockWorks {
		t.Skip("no flock here: InUse cannot tell")
	}
	path := filepath.Join(t.TempDir(), FileName)
	want := func(what string, wantInUse bool) {
		t.Helper()
		inUse, known, err := InUse(path)
		if err != nil || !known || inUse != wantInUse {
			t.Fatalf("InUse %s = %v, %v, %v; want %v, true, nil", what, inUse, known, err, wantInUse)
		}
	}
	want("before the file exists", false)
	l := mustOpen(t, path, time.Now(), 10)
	want("while open", true)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	want("after Close", false)
	l = mustOpen(t, path, time.Now(), 10) // InUse released its lock
	want("while open again", true)
}
