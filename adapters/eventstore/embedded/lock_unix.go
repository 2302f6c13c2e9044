//go:build unix

package embedded

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockFile takes an exclusive advisory lock on lockPath for the store at
// dbPath. flock locks belong to the open file, so the lock goes away with the
// process however it ends, and a second Open in the same process is refused
// like one in another process.
func lockFile(lockPath, dbPath string) (*os.File, error) {
	f, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("embedded: open lock file for %s: %w", dbPath, err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("embedded: %s: %w (lock file %s is held)", dbPath, ErrLocked, lockPath)
		}
		return nil, fmt.Errorf("embedded: lock %s: %w", lockPath, err)
	}
	return f, nil
}
