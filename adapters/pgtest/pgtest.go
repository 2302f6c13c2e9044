// Package pgtest starts a throwaway PostgreSQL server for tests and benchmarks:
// initdb and pg_ctl from Debian's postgresql package, a cluster in a temporary
// folder, listening on a free loopback port, stopped when the tests end.
//
// A test package wires it in once and then asks for a fresh database per test:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
//	func TestSomething(t *testing.T) {
//		url := pgtest.NewDatabase(t) // postgres://...; dropped with the server
//	}
//
// Outside CI a machine without PostgreSQL skips those tests with a message
// that says what to install; with CI=true it fails them.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
)

// Server is a running throwaway cluster.
type Server struct {
	dir  string
	port int
	bin  string
	cred *syscall.Credential

	mu sync.Mutex
	n  int
}

// Options tune a server.
type Options struct {
	// Durable keeps fsync and synchronous commit on, for benchmarks whose
	// figures must mean what a production server would do. Tests leave it
	// off: a crash of the test machine loses nothing anyone wants.
	Durable bool
	// MaxConnections defaults to 300: several kyc processes, each with a pool.
	MaxConnections int
}

var shared struct {
	once   sync.Once
	server *Server
	err    error
}

// Main runs the package's tests and stops the shared server, if one was
// started, once they are done. Use it as TestMain's body.
func Main(m *testing.M) int {
	code := m.Run()
	if shared.server != nil {
		if err := shared.server.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest:", err)
		}
	}
	return code
}

// NewDatabase returns the URL of an empty database of its own on the package's
// shared server, starting the server on first use. Without PostgreSQL it skips
// the test, or fails it when CI=true.
func NewDatabase(t testing.TB) string {
	t.Helper()
	shared.once.Do(func() {
		shared.server, shared.err = Start(Options{})
	})
	if shared.err != nil {
		Unavailable(t, shared.err)
	}
	url, err := shared.server.CreateDatabase(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return url
}

// ErrNotInstalled: no initdb was found.
var ErrNotInstalled = errors.New("PostgreSQL is not installed (apt-get install postgresql)")

// Unavailable skips t because of err, or fails it under CI=true, where every
// dependency must be present.
func Unavailable(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("PostgreSQL is required under CI=true: %v", err)
	}
	t.Skipf("skipping: %v", err)
}

// FindBin returns the folder holding initdb and pg_ctl: $KYC_PG_BIN, the
// newest /usr/lib/postgresql/*/bin, or PATH.
func FindBin() (string, error) {
	if dir := os.Getenv("KYC_PG_BIN"); dir != "" {
		return dir, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", ErrNotInstalled
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// Start creates and starts a cluster. The caller stops it.
func Start(opts Options) (*Server, error) {
	bin, err := FindBin()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "kyc-pgtest-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, bin: bin}
	// initdb refuses to run as root; the cluster then belongs to the
	// postgres user the Debian package creates.
	if os.Geteuid() == 0 {
		cred, err := unprivileged()
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		s.cred = cred
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	data := filepath.Join(dir, "data")
	if out, err := s.run("initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-instructions"); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	maxConn := opts.MaxConnections
	if maxConn <= 0 {
		maxConn = 300
	}
	settings := []string{
		"listen_addresses='127.0.0.1'",
		"unix_socket_directories=''",
		fmt.Sprintf("max_connections=%d", maxConn),
		"shared_buffers=256MB",
		"max_wal_size=4GB",
	}
	if !opts.Durable {
		settings = append(settings, "fsync=off", "synchronous_commit=off", "full_page_writes=off")
	}
	// A port picked by the kernel can be taken by someone else before the
	// server binds it; try a few.
	for attempt := 0; ; attempt++ {
		port, err := freePort()
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		s.port = port
		conf := strings.Join(append(settings, fmt.Sprintf("port=%d", port)), "\n") + "\n"
		if err := os.WriteFile(filepath.Join(data, "postgresql.auto.conf"), []byte(conf), 0o600); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		if s.cred != nil {
			_ = os.Chown(filepath.Join(data, "postgresql.auto.conf"), int(s.cred.Uid), int(s.cred.Gid))
		}
		out, err := s.run("pg_ctl", "start", "-w", "-t", "60", "-D", data, "-l", filepath.Join(dir, "server.log"))
		if err == nil {
			return s, nil
		}
		if attempt == 3 {
			logText, _ := os.ReadFile(filepath.Join(dir, "server.log"))
			os.RemoveAll(dir)
			return nil, fmt.Errorf("pg_ctl start: %w\n%s\n%s", err, out, logText)
		}
	}
}

// URL is the connection string of database name.
func (s *Server) URL(name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, name)
}

// CreateDatabase makes a new empty database and returns its URL.
func (s *Server) CreateDatabase(ctx context.Context) (string, error) {
	s.mu.Lock()
	s.n++
	name := fmt.Sprintf("kyc_test_%d", s.n)
	s.mu.Unlock()
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return "", fmt.Errorf("pgtest: connect: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("pgtest: create database: %w", err)
	}
	return s.URL(name), nil
}

// Stop shuts the server down and removes its folder.
func (s *Server) Stop() error {
	out, err := s.run("pg_ctl", "stop", "-m", "immediate", "-w", "-D", filepath.Join(s.dir, "data"))
	rmErr := os.RemoveAll(s.dir)
	if err != nil {
		return fmt.Errorf("pg_ctl stop: %w\n%s", err, out)
	}
	return rmErr
}

func (s *Server) run(name string, args ...string) ([]byte, error) {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	// pg_ctl start leaves the server running with our stdout; a file keeps
	// the server from holding a pipe this process waits on.
	f, err := os.CreateTemp("", "pgtest-out-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	runErr := cmd.Run()
	out, _ := os.ReadFile(f.Name())
	return out, runErr
}

func unprivileged() (*syscall.Credential, error) {
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, errors.New("pgtest: running as root and no postgres or nobody user to run PostgreSQL as")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
