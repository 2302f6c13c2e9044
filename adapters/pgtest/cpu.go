package pgtest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of the times in /proc/<pid>/stat: fixed at 100 by the
// kernel's ABI on every architecture Go runs Linux on.
const userHZ = 100

// CPU returns the processor time the server has used since it started:
// the postmaster's own, the reaped children's it has collected (backends of
// closed connections), and each live child's. Benchmarks take it before and
// after a scenario to tell the server's cost per event from the client's.
// It reads /proc, so it works on Linux only.
func (s *Server) CPU() (time.Duration, error) {
	pidFile, err := os.ReadFile(filepath.Join(s.dir, "data", "postmaster.pid"))
	if err != nil {
		return 0, fmt.Errorf("pgtest: server cpu: %w", err)
	}
	first, _, _ := bytes.Cut(pidFile, []byte("\n"))
	postmaster, err := strconv.Atoi(string(bytes.TrimSpace(first)))
	if err != nil {
		return 0, fmt.Errorf("pgtest: server cpu: postmaster.pid: %w", err)
	}
	own, err := procStat(postmaster)
	if err != nil {
		return 0, fmt.Errorf("pgtest: server cpu: %w", err)
	}
	ticks := own.utime + own.stime + own.cutime + own.cstime
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("pgtest: server cpu: %w", err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == postmaster {
			continue
		}
		st, err := procStat(pid)
		if err != nil || st.ppid != postmaster {
			// Gone since the listing, or not the server's; a backend that
			// exits here is counted in the postmaster's cutime next time.
			continue
		}
		ticks += st.utime + st.stime
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}

type stat struct {
	ppid                         int
	utime, stime, cutime, cstime int64
}

func procStat(pid int) (stat, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return stat{}, err
	}
	return parseStat(raw)
}

// parseStat reads the fields CPU needs from a /proc/<pid>/stat (proc(5)).
func parseStat(raw []byte) (stat, error) {
	// The command name, in parentheses, may itself hold spaces and ')'.
	end := bytes.LastIndexByte(raw, ')')
	if end < 0 || end+2 > len(raw) {
		return stat{}, errors.New("malformed stat")
	}
	// Fields from the state (field 3 of proc(5)) on.
	f := strings.Fields(string(raw[end+2:]))
	if len(f) < 15 {
		return stat{}, errors.New("malformed stat")
	}
	var (
		st  stat
		err error
	)
	if st.ppid, err = strconv.Atoi(f[1]); err != nil {
		return stat{}, err
	}
	for i, p := range []*int64{&st.utime, &st.stime, &st.cutime, &st.cstime} {
		if *p, err = strconv.ParseInt(f[11+i], 10, 64); err != nil {
			return stat{}, err
		}
	}
	return st, nil
}
