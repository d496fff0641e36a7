//go:build unix

package claimlog

import (
	"errors"
	"os"
	"syscall"
)

// flockWorks reports whether lockFile locks (see InUse).
const flockWorks = true

// errLocked is lockFile's error when another open file holds the lock.
var errLocked = errors.New("locked")

// lockFile takes an exclusive flock on f without waiting. The kernel
// releases it when the file is closed or the process ends, SIGKILL
// included.
func lockFile(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return errLocked
	}
	return err
}
