package pgtest

import (
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestParseStat(t *testing.T) {
	// Fields 3-17 of proc(5): state, ppid, pgrp, session, tty, tpgid, flags,
	// minflt, cminflt, majflt, cmajflt, utime, stime, cutime, cstime.
	const tail = " S 41 41 41 0 -1 4194560 100 200 0 0 %d %d %d %d 20 0 1 0 5 0 0"
	for _, tc := range []struct {
		name, raw string
		want      stat
		wantErr   bool
	}{
		{name: "plain", raw: "42 (postgres)" + fmt.Sprintf(tail, 7, 3, 11, 13), want: stat{ppid: 41, utime: 7, stime: 3, cutime: 11, cstime: 13}},
		{name: "command name with spaces and parentheses",
			raw: "43 (postgres: a) b (c)" + fmt.Sprintf(tail, 1, 2, 3, 4), want: stat{ppid: 41, utime: 1, stime: 2, cutime: 3, cstime: 4}},
		{name: "cut short", raw: "44 (postgres) S 41 41", wantErr: true},
		{name: "no command name", raw: "45 postgres S 41", wantErr: true},
		{name: "not a number", raw: "46 (postgres)" + fmt.Sprintf(tail, 1, 2, 3, 4)[:38] + "x 2 3 4 20 0 1 0 5 0 0", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStat([]byte(tc.raw))
			if tc.wantErr {
				if err == nil {
					t.Fatalf("parsed %q as %+v, want an error", tc.raw, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("parseStat(%q) = %+v, %v; want %+v", tc.raw, got, err, tc.want)
			}
		})
	}
}

// The server's CPU includes what a backend spent before its connection
// closed and the postmaster reaped it, and not the CPU of other processes
// (this test's own, here).
func TestCPUCountsClosedConnections(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("CPU reads /proc")
	}
	url := NewDatabase(t)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	before, err := shared.server.CPU()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SELECT count(*) FROM generate_series(1, 3000000) g WHERE g % 7 = 3"); err != nil {
		t.Fatal(err)
	}
	backend, err := procStat(pid)
	if err != nil {
		t.Fatal(err)
	}
	query := time.Duration(backend.utime+backend.stime) * time.Second / userHZ
	// CPU spent outside the server, which must not count.
	for spin := time.Now(); time.Since(spin) < 500*time.Millisecond; {
	}
	if err := conn.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("backend %d still there 10 s after its connection closed", pid)
		}
	}
	after, err := shared.server.CPU()
	if err != nil {
		t.Fatal(err)
	}
	used := after - before
	// The backend's time includes its start, before the first reading; the
	// server's other processes add a little while the test runs; the spin
	// would add 500 ms.
	if used < query/2 || used > query+250*time.Millisecond {
		t.Errorf("server CPU grew by %s; the query took %s in a backend now gone", used, query)
	}
	if query < 50*time.Millisecond {
		t.Errorf("the query took %s of CPU, too little to tell anything", query)
	}
}
