package bus

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
)

// memoryOutputBuffer sizes each subscriber's channel. Publish waits for
// the ack of every message before sending the next, so a subscriber never
// has more than one message per concurrent Publish call outstanding; 64
// covers the relay's lanes with room to spare without hiding a consumer
// that stopped reading.
const memoryOutputBuffer = 64

func openMemory(opts Options) *Bus {
	gc := gochannel.NewGoChannel(gochannel.Config{
		OutputChannelBuffer:            memoryOutputBuffer,
		BlockPublishUntilSubscriberAck: true,
	}, watermillLogger(opts.Logger))
	return &Bus{
		kind:           KindMemory,
		pub:            &memoryPublisher{gc: gc, life: newLifecycle()},
		sub:            &memorySubscriber{gc: gc, life: newLifecycle()},
		closeTransport: gc.Close,
	}
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
	if err := p.gc.Publish(topic, msgs...); err != nil {
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
	ch, err := s.gc.Subscribe(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("bus: memory subscribe to %s: %w", topic, err)
	}
	return ch, nil
}

// Close refuses new subscriptions; the gochannel's Close (Bus.Close does
// it) ends the existing ones.
func (s *memorySubscriber) Close() error {
	s.life.close()
	return nil
}
