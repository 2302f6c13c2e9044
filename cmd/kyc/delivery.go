package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/kycengine/kyc/adapters/delivery/bus"
	"github.com/kycengine/kyc/adapters/delivery/live"
	"github.com/kycengine/kyc/adapters/delivery/relay"
	"github.com/kycengine/kyc/adapters/delivery/state"
	"github.com/kycengine/kyc/adapters/metrics"
	"github.com/kycengine/kyc/projections"
)

const deliveryFile = "delivery.db"

// openDeliveryState opens the delivery state beside the read models: in
// the data folder, or in the PostgreSQL database that holds them.
func (f *storeFlags) openDeliveryState(ctx context.Context) (*state.Store, error) {
	kind, raw, err := f.readURL()
	if err != nil {
		return nil, err
	}
	if kind == kindPostgres {
		return state.OpenPostgres(ctx, raw)
	}
	if err := os.MkdirAll(f.dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data folder: %w", err)
	}
	return state.OpenSQLite(ctx, filepath.Join(f.dataDir, deliveryFile))
}

// delivery is the running relay: the bus it publishes to and what it needs
// to stop cleanly.
type delivery struct {
	bus   *bus.Bus
	state *state.Store
	wg    sync.WaitGroup
	stop  context.CancelFunc
}

// startDelivery opens the bus and runs the relay in the background: in this
// process alone, or, where processes share the read models, in whichever
// holds the "relay" lease.
func startDelivery(ctx context.Context, f *storeFlags, busURL string, events relay.Log, log *slog.Logger, m *metrics.Metrics) (*delivery, error) {
	b, err := bus.Open(ctx, busURL, bus.Options{Logger: log})
	if err != nil {
		return nil, fmt.Errorf("--bus: %w", err)
	}
	st, err := f.openDeliveryState(ctx)
	if err != nil {
		b.Close()
		return nil, err
	}
	r, err := relay.New(relay.Config{
		Log: events, Publisher: b.Publisher(), Checkpoints: st, Observer: m.Relay(), Logger: log,
	})
	if err != nil {
		st.Close()
		b.Close()
		return nil, err
	}
	leases, err := f.leases(log)
	if err != nil {
		st.Close()
		b.Close()
		return nil, err
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	d := &delivery{bus: b, state: st, stop: stop}
	d.wg.Go(func() { runRelay(runCtx, r, leases, log) })
	log.Info("relay: publishing the log", "bus", b.Kind(), "topic", relay.DefaultTopic)
	return d, nil
}

func runRelay(ctx context.Context, r *relay.Relay, leases projections.Leases, log *slog.Logger) {
	if leases == nil {
		_ = r.Run(ctx)
		return
	}
	for ctx.Err() == nil {
		held, release, err := leases.Acquire(ctx, "relay")
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("relay: cannot take the lease; trying again", "err", err)
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
			continue
		}
		log.Info("relay: lease taken; publishing here")
		_ = r.Run(held)
		release()
		if ctx.Err() == nil {
			log.Warn("relay: lease lost; another process publishes now")
		}
	}
}

// Close stops the relay and closes the bus and the state store.
func (d *delivery) Close() error {
	d.stop()
	d.wg.Wait()
	return errors.Join(d.bus.Close(), d.state.Close())
}

// liveSocket is the running live profile socket: its tokens, its handler
// and the hub that feeds it.
type liveSocket struct {
	tokens *live.Tokens
	socket *live.Socket
	stop   context.CancelFunc
	done   chan struct{}
}

// socketTokenTTL is how long a live socket token opens the socket: long
// enough for a page to connect, short enough that a leaked URL is soon dead.
const socketTokenTTL = 5 * time.Minute

// startLive runs the hub of the live profile socket. Tokens are signed with
// secret; without one, with a random key of this process, which is enough
// for one process but not for several behind a load balancer (a token from
// one would be refused by the others).
func startLive(ctx context.Context, events live.EventSource, secret string, shared bool, log *slog.Logger) (*liveSocket, error) {
	key := []byte(secret)
	if secret == "" {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		if shared {
			log.Warn("live socket: no --socket-secret; tokens work only on the process that issued them. Give every process the same secret.")
		}
	}
	tokens, err := live.NewTokens(key, socketTokenTTL, nil)
	if err != nil {
		return nil, fmt.Errorf("--socket-secret: %w", err)
	}
	hub, err := live.NewHub(events, log)
	if err != nil {
		return nil, err
	}
	socket, err := live.NewSocket(hub, tokens, live.SocketOptions{Log: log})
	if err != nil {
		return nil, err
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	l := &liveSocket{tokens: tokens, socket: socket, stop: stop, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		_ = hub.Run(runCtx)
	}()
	return l, nil
}

// Close stops the hub, which closes the open sockets.
func (l *liveSocket) Close() {
	l.stop()
	<-l.done
}
