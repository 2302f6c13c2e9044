//go:build !unix

package embedded

import (
	"fmt"
	"os"
)

// lockFile is only implemented with flock; without a writer lock two
// processes could both write the file and break its hash chains.
func lockFile(lockPath, dbPath string) (*os.File, error) {
	return nil, fmt.Errorf("embedded: %s: the writer lock is not supported on this platform", dbPath)
}
