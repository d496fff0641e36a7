package claimlog

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// InUse reports whether another process (a running ottr serve) holds the
// claim log at path open, by taking the lock Open takes and releasing it
// at once; a file that does not exist is not in use. known is false where
// flock is not available: InUse cannot tell there. A server starting at
// the very moment InUse holds the lock fails as it would on a second
// server.
func InUse(path string) (inUse, known bool, err error) {
	if !flockWorks {
		return false, false, nil
	}
	for range 10 {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
		if errors.Is(err, fs.ErrNotExist) {
			return false, true, nil
		}
		if err != nil {
			return false, false, fmt.Errorf("claimlog: %w", err)
		}
		err = lockFile(f)
		if errors.Is(err, errLocked) {
			f.Close()
			return true, true, nil
		}
		if err != nil {
			f.Close()
			return false, false, fmt.Errorf("claimlog: lock %s: %w", path, err)
		}
		// A lock won on a file just renamed over says nothing: the
		// server holds the one path names now.
		same, err := samePath(f, path)
		f.Close()
		if err != nil {
			return false, false, fmt.Errorf("claimlog: %w", err)
		}
		if same {
			return false, true, nil
		}
	}
	return false, false, fmt.Errorf("claimlog: %s keeps being replaced: a server is rewriting it", path)
}
