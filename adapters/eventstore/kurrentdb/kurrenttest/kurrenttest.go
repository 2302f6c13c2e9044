// Package kurrenttest runs an in-memory, single-node KurrentDB (EventStoreDB)
// inside the test process, so code written against the official Go client can
// be tested over real gRPC without a container.
//
// It serves the Streams service only: append, stream and $all reads,
// subscriptions to $all (with filters and checkpoints) and tombstones. Other
// services answer Unimplemented, which the client accepts for server features.
package kurrenttest

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"google.golang.org/grpc"
)

// rebindTimeout bounds how long Restart waits for the old port to be free.
const rebindTimeout = 5 * time.Second

// Server is an in-memory single-node KurrentDB for tests.
type Server struct {
	store   *store
	appends atomic.Int64

	mu     sync.Mutex // serialises Stop and Restart
	addr   string
	grpc   *grpc.Server
	lis    net.Listener
	served chan struct{} // closed when the current Serve returns
}

// Start starts a server on 127.0.0.1:0 and stops it through t.Cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("kurrenttest: listen: %v", err)
	}
	s := &Server{store: newStore(time.Now()), addr: lis.Addr().String()}
	s.serve(lis)
	t.Cleanup(s.Stop)
	return s
}

// URL is the client connection string: "esdb://127.0.0.1:PORT?tls=false".
func (s *Server) URL() string {
	return "esdb://" + s.addr + "?tls=false"
}

// Appends counts Append calls served, so tests can see how many round trips a
// client made.
func (s *Server) Appends() int64 {
	return s.appends.Load()
}

// Stop closes the listener and every open call, the way a crashed or
// restarted node would: subscriptions end with an Unavailable error on the
// client. The data is kept so Restart can serve it again.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.grpc == nil {
		return
	}
	s.grpc.Stop()
	_ = s.lis.Close() // already closed by grpc.Stop; closing is what matters
	<-s.served
	s.grpc, s.lis, s.served = nil, nil, nil
}

// Restart serves the same data again on the same address after Stop, so
// clients can test reconnecting to a node that came back.
func (s *Server) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.grpc != nil {
		return errors.New("kurrenttest: Restart while the server is running")
	}
	deadline := time.Now().Add(rebindTimeout)
	for {
		lis, err := net.Listen("tcp", s.addr)
		if err == nil {
			s.serve(lis)
			return nil
		}
		// The port can linger for a moment after the old listener closed.
		if time.Now().After(deadline) {
			return fmt.Errorf("kurrenttest: listen again on %s: %w", s.addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// serve starts a gRPC server on lis; the caller holds mu or owns s.
func (s *Server) serve(lis net.Listener) {
	// WaitForHandlers makes Stop return only once every handler has finished,
	// so no handler of a stopped server touches the store or the test after.
	gs := grpc.NewServer(grpc.WaitForHandlers(true))
	api.RegisterStreamsServer(gs, &streams{srv: s})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = gs.Serve(lis)
	}()
	s.grpc, s.lis, s.served = gs, lis, done
}
