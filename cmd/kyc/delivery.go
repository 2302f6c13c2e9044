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

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/kycengine/kyc/adapters/delivery/bus"
	"github.com/kycengine/kyc/adapters/delivery/live"
	"github.com/kycengine/kyc/adapters/delivery/relay"
	"github.com/kycengine/kyc/adapters/delivery/state"
	"github.com/kycengine/kyc/adapters/delivery/webhook"
	"github.com/kycengine/kyc/adapters/metrics"
	"github.com/kycengine/kyc/domain"
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

// delivery is the running relay and webhook service: the buses they use and
// what they need to stop cleanly.
type delivery struct {
	bus      *bus.Bus
	hookBus  *bus.Bus // nil on the in-process channel, which the relay's bus serves
	state    *state.Store
	webhooks *webhook.Service
	wg       sync.WaitGroup
	stop     context.CancelFunc
}

// startDelivery opens the bus, starts the webhook service and then the
// relay: in this process alone, or, where processes share the read models,
// in whichever holds the "relay" lease. Webhooks run in every process (a
// consumer group and row claims share the work); they subscribe before the
// relay publishes, since the in-process channel drops what nobody listens to.
func startDelivery(ctx context.Context, f *storeFlags, busURL string, events relay.Log, svc *domain.Service, leases projections.Leases,
	log *slog.Logger, m *metrics.Metrics) (_ *delivery, err error) {
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	d := &delivery{stop: stop}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	if d.bus, err = bus.Open(ctx, busURL, bus.Options{Logger: log}); err != nil {
		return nil, fmt.Errorf("--bus: %w", err)
	}
	if d.state, err = f.openDeliveryState(ctx); err != nil {
		return nil, err
	}
	hookSub := d.bus.Subscriber()
	if d.bus.Kind() != bus.KindMemory {
		if d.hookBus, err = bus.Open(ctx, busURL, bus.Options{Logger: log, Group: webhook.Group}); err != nil {
			return nil, fmt.Errorf("--bus: %w", err)
		}
		hookSub = d.hookBus.Subscriber()
	}
	d.webhooks, err = webhook.NewService(webhook.Config{
		Store: d.state, Logger: log, EventTypes: svc.Codec().TypeNames(), CompanyOf: webhook.CompaniesFrom(svc),
	})
	if err != nil {
		return nil, err
	}
	d.wg.Go(func() { runWebhooks(runCtx, d.webhooks, hookSub, log) })
	select {
	case <-d.webhooks.Started():
	case <-time.After(30 * time.Second):
		return nil, errors.New("webhooks: the subscription to the bus did not start within 30s")
	}
	r, err := relay.New(relay.Config{
		Log: events, Publisher: d.bus.Publisher(), Checkpoints: d.state, Observer: m.Relay(), Logger: log,
	})
	if err != nil {
		return nil, err
	}
	d.wg.Go(func() { runRelay(runCtx, r, leases, log) })
	log.Info("relay: publishing the log", "bus", d.bus.Kind(), "topic", relay.DefaultTopic)
	return d, nil
}

// runWebhooks keeps the webhook service running: a transport that ended its
// subscription is subscribed to again after a pause.
func runWebhooks(ctx context.Context, hooks *webhook.Service, sub message.Subscriber, log *slog.Logger) {
	for {
		err := hooks.Run(ctx, sub)
		if ctx.Err() != nil {
			return
		}
		log.Warn("webhooks: stopped; starting again", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
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

// Close stops the relay and the webhooks (which hand their claimed
// deliveries back) and closes the buses and the state store.
func (d *delivery) Close() error {
	d.stop()
	d.wg.Wait()
	var errs []error
	for _, b := range []*bus.Bus{d.hookBus, d.bus} {
		if b != nil {
			errs = append(errs, b.Close())
		}
	}
	if d.state != nil {
		errs = append(errs, d.state.Close())
	}
	return errors.Join(errs...)
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
