package bus

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/kycengine/kyc/adapters/internal/wmlog"
)

// memoryOutputBuffer sizes each subscriber's channel. Publish waits for
// the ack of every message before sending the next, so a subscriber never
// has more than one message per concurrent Publish call outstanding; 64
// covers the relay's lanes with room to spare without hiding a consumer
// that stopped reading.
const memoryOutputBuffer = 64

// memoryPartitions is how many gochannel topics carry one bus topic. A
// gochannel subscriber holds one message at a time until it is acked, which
// keeps order but made a consumer's handler (the webhook fan-out) the bound
// of the relay: one message in hand per subscription, whatever the cores.
// Each partition key hashes to one of these topics, and a subscription
// reads all of them, so a consumer holds up to this many messages at once,
// never two of one partition.
const memoryPartitions = 8

func openMemory(opts Options) *Bus {
	gc := gochannel.NewGoChannel(gochannel.Config{
		OutputChannelBuffer:            memoryOutputBuffer,
		BlockPublishUntilSubscriberAck: true,
	}, wmlog.New(opts.Logger))
	return &Bus{
		kind:           KindMemory,
		pub:            &memoryPublisher{gc: gc, life: newLifecycle()},
		sub:            &memorySubscriber{gc: gc, life: newLifecycle()},
		closeTransport: gc.Close,
	}
}

// partitionTopic is the gochannel topic of partition p of a bus topic; the
// '#' cannot occur in a bus topic, so it names nothing a caller could.
func partitionTopic(topic string, p int) string { return topic + "#" + strconv.Itoa(p) }

// partitionOf is the partition of a message; messages without a key share
// partition 0, so that one publisher's keyless messages stay in order.
func partitionOf(msg *message.Message) int {
	key := msg.Metadata.Get(PartitionKey)
	if key == "" {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % memoryPartitions)
}

// memoryPublisher adds topic validation and a Close that does not close the
// gochannel the subscriber still uses.
type memoryPublisher struct {
	gc   *gochannel.GoChannel
	life *lifecycle
}

func (p *memoryPublisher) Publish(topic string, msgs ...*message.Message) error {
	if err := validateTopic(topic); err != nil {
		return err
	}
	if err := p.life.enter(); err != nil {
		return err
	}
	defer p.life.leave()
	// Partitions are published side by side, each in the given order.
	var parts [memoryPartitions][]*message.Message
	for _, m := range msgs {
		i := partitionOf(m)
		parts[i] = append(parts[i], m)
	}
	var wg sync.WaitGroup
	var errs [memoryPartitions]error
	for i, part := range parts {
		if len(part) > 0 {
			wg.Go(func() { errs[i] = p.gc.Publish(partitionTopic(topic, i), part...) })
		}
	}
	wg.Wait()
	if err := errors.Join(errs[:]...); err != nil {
		return fmt.Errorf("bus: memory publish to %s: %w", topic, err)
	}
	// Closing the gochannel releases a Publish waiting for acks as if they
	// had come; do not let the relay take that for delivery.
	p.life.mu.Lock()
	closed := p.life.closed
	p.life.mu.Unlock()
	if closed {
		return fmt.Errorf("bus: memory publish to %s interrupted, messages may be lost: %w", topic, ErrClosed)
	}
	return nil
}

// Close cannot wait for Publish calls blocked on a subscriber's ack: only
// closing the gochannel (Bus.Close does it next) releases them.
func (p *memoryPublisher) Close() error {
	p.life.mu.Lock()
	if !p.life.closed {
		p.life.closed = true
		close(p.life.closing)
	}
	p.life.mu.Unlock()
	return nil
}

type memorySubscriber struct {
	gc   *gochannel.GoChannel
	life *lifecycle
}

func (s *memorySubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if err := validateTopic(topic); err != nil {
		return nil, err
	}
	if err := s.life.enter(); err != nil {
		return nil, err
	}
	defer s.life.leave()
	// A partition subscribed to and never read would hold every publisher
	// up, so a failed Subscribe ends those already made.
	ctx, cancel := context.WithCancel(ctx)
	parts := make([]<-chan *message.Message, memoryPartitions)
	for i := range parts {
		ch, err := s.gc.Subscribe(ctx, partitionTopic(topic, i))
		if err != nil {
			cancel()
			return nil, fmt.Errorf("bus: memory subscribe to %s: %w", topic, err)
		}
		parts[i] = ch
	}
	// Each partition's channel closes when ctx ends or the bus closes; the
	// merged one closes after all of them. A message dropped here on the
	// way out is released by the gochannel, which stops waiting for its ack
	// when the subscription closes.
	out := make(chan *message.Message)
	var wg sync.WaitGroup
	for _, ch := range parts {
		wg.Go(func() {
			for m := range ch {
				select {
				case out <- m:
				case <-ctx.Done():
				}
			}
		})
	}
	go func() {
		wg.Wait()
		cancel()
		close(out)
	}()
	return out, nil
}

// Close refuses new subscriptions; the gochannel's Close (Bus.Close does
// it) ends the existing ones.
func (s *memorySubscriber) Close() error {
	s.life.close()
	return nil
}
