package embedded

import (
	"os"
	"syscall"
)

// syncData flushes f's data and the metadata needed to read it back, like
// SQLite itself does on Linux: unlike fsync it skips timestamps, which saves
// a journal commit once the WAL has reached its size and is being reused.
func syncData(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			serr = syscall.Fdatasync(int(fd))
			if serr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	return serr
}
