package webhook

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/kycengine/kyc/adapters/delivery/bus"
	"github.com/kycengine/kyc/adapters/delivery/bus/natstest"
	"github.com/kycengine/kyc/adapters/delivery/cloudevent"
	"github.com/kycengine/kyc/adapters/delivery/relay"
	"github.com/kycengine/kyc/adapters/delivery/state"
	"github.com/kycengine/kyc/adapters/pgtest"
)

// Two processes consume a real transport as the "webhooks" group and share
// one PostgreSQL delivery state: every event reaches the receiver once.
func TestSharedGroupOnRealTransports(t *testing.T) {
	for name, url := range map[string]func(t *testing.T, db string) string{
		"nats":     func(t *testing.T, _ string) string { return natstest.Start(t) },
		"postgres": func(_ *testing.T, db string) string { return db },
	} {
		t.Run(name, func(t *testing.T) {
			db := pgtest.NewDatabase(t)
			busURL := url(t, db)
			ctx := t.Context()
			rc := newReceiver(t, always(http.StatusOK))
			var svcs []*Service
			for range 2 {
				st, err := state.OpenPostgres(ctx, db)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { st.Close() })
				b, err := bus.Open(ctx, busURL, bus.Options{Group: Group, FromStart: true})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { b.Close() })
				svcs = append(svcs, runOn(t, fastConfig(st), b.Subscriber()))
			}
			ep, _, err := svcs[0].CreateEndpoint(ctx, EndpointInput{Company: "acme", URL: rc.URL})
			if err != nil {
				t.Fatal(err)
			}
			pub, err := bus.Open(ctx, busURL, bus.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer pub.Close()
			const events = 20
			var msgs []*message.Message
			var ids []string
			for range events {
				ev := registered(uuid.NewString(), "acme")
				msgs = append(msgs, cloudevent.ToMessage(ev, ""))
				ids = append(ids, mustDeliveryID(t, ep.ID, ev))
			}
			if err := pub.Publisher().Publish(relay.DefaultTopic, msgs...); err != nil {
				t.Fatal(err)
			}
			for _, id := range ids {
				waitStatus(t, svcs[1], id, StatusDelivered)
			}
			time.Sleep(200 * time.Millisecond)
			seen := map[string]int{}
			for _, r := range rc.got() {
				seen[r.header.Get(HeaderID)]++
			}
			if len(rc.got()) != events || len(seen) != events {
				t.Errorf("%d requests for %d deliveries, want %d of each", len(rc.got()), len(seen), events)
			}
		})
	}
}

// runOn runs a service on a given subscriber until the end of the test.
func runOn(t *testing.T, cfg Config, sub message.Subscriber) *Service {
	t.Helper()
	svc, err := NewService(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx, sub) }()
	select {
	case <-svc.Started():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v", err)
		}
	})
	return svc
}
