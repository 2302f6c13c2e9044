// Package natstest runs a NATS server with JetStream inside the test
// process, so the NATS transport is tested and benchmarked on every
// machine without a broker to install.
package natstest

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// readyTimeout is generous: under -race a loaded CI machine starts slowly.
const readyTimeout = 30 * time.Second

// Start starts a JetStream-enabled server on a random loopback port with
// its store in t.TempDir(), stops it when t ends, and returns its client URL
// once it accepts connections.
func Start(t testing.TB) (url string) {
	t.Helper()
	s, err := server.NewServer(&server.Options{
		Host:      "127.0.0.1",
		Port:      server.RANDOM_PORT,
		JetStream: true,
		StoreDir:  t.TempDir(),
		NoLog:     true,
		NoSigs:    true,
	})
	if err != nil {
		t.Fatalf("natstest: new server: %v", err)
	}
	s.Start()
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	if !s.ReadyForConnections(readyTimeout) {
		t.Fatalf("natstest: server not ready after %v", readyTimeout)
	}
	return s.ClientURL()
}
