package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kycengine/kyc/adapters/delivery/bus"
	"github.com/kycengine/kyc/adapters/delivery/cloudevent"
	"github.com/kycengine/kyc/adapters/delivery/relay"
)

type subscribeOptions struct {
	bus       string
	types     []string
	group     string
	fromStart bool
	logLevel  string
}

func newSubscribeCmd() *cobra.Command {
	var o subscribeOptions
	cmd := &cobra.Command{
		Use:   "subscribe",
		Short: "Print the events the relay publishes, one CloudEvents JSON line each",
		Long: `subscribe is the reference consumer for integrators: it reads the topic the
server's relay publishes to and prints each event as a structured CloudEvents
JSON line on stdout (id, type, source, subject = customer id, time,
dataschema, data, and the kycstream/kycrevision/kycposition extensions).

Delivery is at least once: after a restart or a broker redelivery an event
may come again, always with the same id; subscribe drops the repeats it has
seen in this run. With --group, the broker remembers how far the group got,
and several subscribers with the same group share the events.

  kyc subscribe --bus nats://localhost:4222 --type StatusChanged | jq .`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return subscribe(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&o.bus, "bus", os.Getenv("KYC_BUS"), "the bus the server publishes to: nats://... or postgres://... (env KYC_BUS)")
	cmd.Flags().StringSliceVar(&o.types, "type", nil, "print only these event types (StatusChanged or kyc.customer.StatusChanged; repeatable)")
	cmd.Flags().StringVar(&o.group, "group", "", "durable consumer group: resume where the group left off (default: a private consumer)")
	cmd.Flags().BoolVar(&o.fromStart, "from-start", false, "start at the oldest event the bus still holds instead of only new ones (private consumers)")
	cmd.Flags().StringVar(&o.logLevel, "log-level", "warn", "debug, info, warn or error (logs go to stderr)")
	return cmd
}

// seenIDs remembers the most recent event ids, to drop redeliveries.
type seenIDs struct {
	set   map[string]struct{}
	order []string
	next  int
}

func newSeenIDs(n int) *seenIDs {
	return &seenIDs{set: make(map[string]struct{}, n), order: make([]string, n)}
}

// add reports whether id is new, remembering it in place of the oldest.
func (s *seenIDs) add(id string) bool {
	if _, ok := s.set[id]; ok {
		return false
	}
	if old := s.order[s.next]; old != "" {
		delete(s.set, old)
	}
	s.order[s.next] = id
	s.next = (s.next + 1) % len(s.order)
	s.set[id] = struct{}{}
	return true
}

func subscribe(ctx context.Context, o subscribeOptions, out io.Writer) error {
	log, err := newLogger(o.logLevel)
	if err != nil {
		return err
	}
	if o.bus == "" {
		return errors.New("--bus is required: the URL of the bus kyc serve publishes to (nats://... or postgres://...)")
	}
	b, err := bus.Open(ctx, o.bus, bus.Options{Logger: log, Group: o.group, FromStart: o.fromStart})
	if err != nil {
		return err
	}
	defer b.Close()
	if b.Kind() == bus.KindMemory {
		return errors.New("--bus: the in-process bus lives inside kyc serve; subscribe needs a bus it can reach (nats://... or postgres://...)")
	}
	wanted := map[string]bool{}
	for _, t := range o.types {
		wanted[strings.TrimPrefix(t, cloudevent.TypePrefix)] = true
	}
	msgs, err := b.Subscriber().Subscribe(ctx, relay.DefaultTopic)
	if err != nil {
		return fmt.Errorf("subscribe to %s: %w", relay.DefaultTopic, err)
	}
	seen := newSeenIDs(100_000)
	enc := json.NewEncoder(out)
	for {
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-msgs:
			if !ok {
				return nil
			}
			ev, err := cloudevent.FromMessage(m)
			if err != nil {
				log.Warn("subscribe: skipping a message that is not a kyc event", "uuid", m.UUID, "err", err)
				m.Ack()
				continue
			}
			if (len(wanted) == 0 || wanted[cloudevent.DomainType(ev.Type())]) && seen.add(ev.ID()) {
				if err := enc.Encode(ev); err != nil {
					m.Nack()
					return fmt.Errorf("write: %w", err)
				}
			}
			m.Ack()
		}
	}
}
