//go:build !unix

package claimlog

import (
	"errors"
	"os"
)

// flockWorks reports whether lockFile locks (see InUse).
const flockWorks = false

// errLocked is lockFile's error when another open file holds the lock.
var errLocked = errors.New("locked")

// lockFile does nothing where flock is not available: a second ottr serve
// on the same data_dir is not detected there.
func lockFile(*os.File) error { return nil }
