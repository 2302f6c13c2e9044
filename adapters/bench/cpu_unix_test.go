//go:build unix

package bench

import (
	"syscall"
	"time"
)

// ownCPU is the processor time this process has used, user and system; 0
// when it cannot be read.
func ownCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
