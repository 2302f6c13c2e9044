package bus

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"strings"
	"sync"
	"time"

	wmjetstream "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/jetstream"
	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const (
	// natsConnectTimeout bounds Open when the context has no sooner deadline.
	natsConnectTimeout = 5 * time.Second
	// natsAPITimeout bounds stream and consumer management requests.
	natsAPITimeout = 10 * time.Second
	// natsPublishAckTimeout fails a Publish whose acks never come (a
	// connection closed under it) instead of blocking the relay forever.
	natsPublishAckTimeout = 30 * time.Second
	// natsMaxPendingAcks leaves room for every relay lane's batch in flight
	// at once; natsStallWait is how long a Publish may wait for room before
	// failing rather than the client library's 200ms.
	natsMaxPendingAcks = 16384
	natsStallWait      = 10 * time.Second
	// natsEphemeralInactive lets the server delete a private consumer whose
	// process died without deleting it.
	natsEphemeralInactive = 5 * time.Minute
	// natsHandBackDelay is how long a message a stopping subscriber hands
	// back waits before the server offers it again (see consume).
	natsHandBackDelay = 500 * time.Millisecond
	// natsCloseGrace bounds the flush of acks and naks on Close.
	natsCloseGrace = 5 * time.Second
)

func openNATS(ctx context.Context, rawURL string, opts Options) (*Bus, error) {
	servers := natsServers(rawURL)
	where := redact(servers)
	timeout := natsConnectTimeout
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < timeout {
		timeout = max(time.Until(deadline), time.Millisecond)
	}
	log := opts.Logger.With("transport", KindNATS)
	nc, err := nats.Connect(servers,
		nats.Name("kyc-bus"),
		nats.Timeout(timeout),
		// The relay and the consumers are long-running: ride out a broker
		// restart or failover instead of giving up after a minute.
		nats.MaxReconnects(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("disconnected from NATS", "error", err)
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			log.Info("reconnected to NATS", "server", c.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			log.Error("NATS error", "error", err)
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("%w: connect to NATS at %s: %w", ErrUnavailable, where, err)
	}
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(natsMaxPendingAcks),
		jetstream.WithPublishAsyncTimeout(natsPublishAckTimeout),
		jetstream.WithDefaultTimeout(natsAPITimeout),
	)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("bus: JetStream at %s: %w", where, err)
	}
	if _, err := js.AccountInfo(ctx); err != nil {
		nc.Close()
		return nil, fmt.Errorf("%w: JetStream at %s (is the server started with -js?): %w", ErrUnavailable, where, err)
	}
	streams := &natsStreams{js: js, maxAge: opts.MaxAge, known: map[string]string{}}
	return &Bus{
		kind: KindNATS,
		pub:  &natsPublisher{js: js, streams: streams, life: newLifecycle()},
		sub: &natsSubscriber{
			js: js, streams: streams, opts: opts, log: log, life: newLifecycle(),
		},
		closeTransport: func() error {
			// Acks and naks are fire-and-forget writes: flush them so a
			// durable group resumes exactly after its last ack.
			err := nc.FlushTimeout(natsCloseGrace)
			nc.Close()
			if err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
				return fmt.Errorf("flush NATS connection: %w", err)
			}
			return nil
		},
	}, nil
}

// natsServers gives every server in the list a scheme, so each can be
// parsed (for redaction) and nats.go sees one form.
func natsServers(raw string) string {
	parts := strings.Split(raw, ",")
	var out []string
	for _, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if !strings.Contains(p, "://") {
			p = "nats://" + p
		}
		out = append(out, p)
	}
	return strings.Join(out, ",")
}

// natsStreams makes sure a topic's stream exists before the first publish
// or subscribe, once per topic per Bus.
type natsStreams struct {
	js     jetstream.JetStream
	maxAge time.Duration

	mu    sync.Mutex
	known map[string]string // topic → stream name
}

// streamName turns a topic into a valid stream name: JetStream forbids '.'
// in names but not in subjects.
func streamName(topic string) string { return strings.ReplaceAll(topic, ".", "_") }

// ensure returns the stream capturing topic, creating it if missing. An
// existing stream is used as it is, so an operator who created it with
// replicas, other limits or sync-always keeps that configuration.
func (s *natsStreams) ensure(ctx context.Context, topic string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if name, ok := s.known[topic]; ok {
		return name, nil
	}
	name := streamName(topic)
	_, err := s.js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = s.js.CreateStream(ctx, jetstream.StreamConfig{
			Name:        name,
			Description: "kyc events (created by the kyc bus)",
			Subjects:    []string{topic},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			Discard:     jetstream.DiscardOld,
			MaxAge:      s.maxAge,
			Replicas:    1,
		})
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			err = nil // another process created it first
		}
	}
	if err != nil {
		return "", fmt.Errorf("bus: NATS stream %s for topic %s: %w", name, topic, err)
	}
	s.known[topic] = name
	return name, nil
}

// natsPublisher publishes with JetStream's async API rather than
// watermill-nats' Publisher, which waits for each message's ack before
// sending the next (one round trip per message). It marshals with
// watermill-nats' NATSMarshaler, so watermill-nats subscribers read what it
// writes.
type natsPublisher struct {
	js        jetstream.JetStream
	streams   *natsStreams
	marshaler wmnats.NATSMarshaler
	life      *lifecycle
}

// inflight is one message sent and not yet known to be stored.
type inflight struct {
	ack  jetstream.PubAckFuture
	uuid string
	done bool
	err  error
}

// wait blocks until the message is acked or failed. Futures deliver their
// outcome once, hence done.
func (f *inflight) wait() error {
	if f.done {
		return f.err
	}
	f.done = true
	select {
	case <-f.ack.Ok():
	case err := <-f.ack.Err():
		f.err = fmt.Errorf("message %s: %w", f.uuid, err)
	}
	return f.err
}

// Publish sends msgs without waiting between them, except that a message
// waits for the ack of the previous one of its partition (messages without
// a PartitionKey count as one partition). Were two messages of a partition
// in flight together, the first could fail (no stream leader for a moment,
// a limit) while the second is stored, and the relay's retry would then
// store the first after the second. So msgs go out in rounds: the first
// message of every partition, then, once those are acked, the second of
// each, and so on. A customer's events come in runs (a command appends
// several), and waiting message by message in the given order made a run
// of ten cost ten round trips during which nothing else went out. Publish
// returns once every message sent is acked, or the first error; messages
// after a failure are not sent, and those acked before it are dropped as
// duplicates when the relay retries.
func (p *natsPublisher) Publish(topic string, msgs ...*message.Message) error {
	if err := validateTopic(topic); err != nil {
		return err
	}
	if err := p.life.enter(); err != nil {
		return err
	}
	defer p.life.leave()
	if len(msgs) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), natsAPITimeout)
	stream, err := p.streams.ensure(ctx, topic)
	cancel()
	if err != nil {
		return err
	}
	for round := range partitionRounds(msgs) {
		if err := p.publishRound(topic, stream, round); err != nil {
			return fmt.Errorf("bus: NATS publish to %s: %w", topic, err)
		}
	}
	return nil
}

// partitionRounds yields the n-th message of every partition of msgs, in
// the order the partitions first appear, for n = 1, 2, ...
func partitionRounds(msgs []*message.Message) iter.Seq[[]*message.Message] {
	return func(yield func([]*message.Message) bool) {
		var order [][]*message.Message
		index := make(map[string]int)
		for _, m := range msgs {
			key := m.Metadata.Get(PartitionKey)
			i, ok := index[key]
			if !ok {
				i = len(order)
				index[key] = i
				order = append(order, nil)
			}
			order[i] = append(order[i], m)
		}
		round := make([]*message.Message, 0, len(order))
		for n := 0; len(order) > 0; n++ {
			round = round[:0]
			kept := order[:0]
			for _, part := range order {
				round = append(round, part[n])
				if len(part) > n+1 {
					kept = append(kept, part)
				}
			}
			order = kept
			if !yield(round) {
				return
			}
		}
	}
}

// publishRound sends msgs, of distinct partitions, side by side and waits
// for their acks. It waits for everything sent even after a failure:
// returning earlier would let the relay's retry race the stragglers.
func (p *natsPublisher) publishRound(topic, stream string, msgs []*message.Message) error {
	sent := make([]inflight, 0, len(msgs))
	var firstErr error
	for _, m := range msgs {
		nm, err := p.marshaler.Marshal(topic, m)
		if err != nil {
			firstErr = fmt.Errorf("marshal message %s: %w", m.UUID, err)
			break
		}
		ack, err := p.js.PublishMsgAsync(nm,
			jetstream.WithMsgID(m.UUID),
			jetstream.WithExpectStream(stream),
			jetstream.WithStallWait(natsStallWait),
		)
		if err != nil {
			firstErr = fmt.Errorf("message %s: %w", m.UUID, err)
			break
		}
		sent = append(sent, inflight{ack: ack, uuid: m.UUID})
	}
	for i := range sent {
		if err := sent[i].wait(); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// Close waits for Publish calls in progress; the connection is closed by
// Bus.Close once the subscriber is done with it too.
func (p *natsPublisher) Close() error {
	p.life.close()
	return nil
}

// natsSubscriber consumes with JetStream pull consumers. It is its own
// rather than watermill-nats' Subscriber, which (v2.1.3) leaves the message
// in hand un-nacked on Close, stalling a MaxAckPending-1 group for a whole
// AckWait after every restart, and can send on its closed output channel
// when the Subscribe context is cancelled while messages arrive. It
// unmarshals with watermill-nats' DefaultUnmarshaler, so it reads what
// watermill-nats publishers write.
type natsSubscriber struct {
	js          jetstream.JetStream
	streams     *natsStreams
	opts        Options
	log         *slog.Logger
	unmarshaler wmjetstream.DefaultUnmarshaler
	life        *lifecycle
}

func (s *natsSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if err := validateTopic(topic); err != nil {
		return nil, err
	}
	if err := s.life.enter(); err != nil {
		return nil, err
	}
	stream, err := s.streams.ensure(ctx, topic)
	if err != nil {
		s.life.leave()
		return nil, err
	}
	consumer, err := s.consumer(ctx, stream)
	if err != nil {
		s.life.leave()
		return nil, fmt.Errorf("bus: NATS consumer on %s: %w", stream, err)
	}
	iter, err := consumer.Messages()
	if err != nil {
		s.deleteEphemeral(stream, consumer)
		s.life.leave()
		return nil, fmt.Errorf("bus: NATS consume %s: %w", stream, err)
	}
	out := make(chan *message.Message)
	go func() {
		defer s.life.leave()
		defer close(out)
		defer s.deleteEphemeral(stream, consumer)
		s.consume(ctx, iter, out)
	}()
	return out, nil
}

// consumer returns the group's durable consumer, creating it if this is
// the group's first run, or a new ephemeral consumer. An existing durable
// is used as it is: its position is the point of having a group, and
// JetStream refuses to change a deliver policy anyway.
func (s *natsSubscriber) consumer(ctx context.Context, stream string) (jetstream.Consumer, error) {
	deliver := jetstream.DeliverNewPolicy
	if s.opts.FromStart {
		deliver = jetstream.DeliverAllPolicy
	}
	cfg := jetstream.ConsumerConfig{
		Durable:       s.opts.Group,
		Description:   "kyc bus subscriber",
		DeliverPolicy: deliver,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.opts.AckTimeout,
		MaxDeliver:    -1,
		// One message at a time keeps stream order for the whole consumer,
		// however many members share it and whatever gets redelivered.
		MaxAckPending: 1,
	}
	if s.opts.Group == "" {
		cfg.InactiveThreshold = natsEphemeralInactive
		return s.js.CreateConsumer(ctx, stream, cfg)
	}
	c, err := s.js.Consumer(ctx, stream, s.opts.Group)
	if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return c, err
	}
	c, err = s.js.CreateConsumer(ctx, stream, cfg)
	if errors.Is(err, jetstream.ErrConsumerExists) {
		return s.js.Consumer(ctx, stream, s.opts.Group) // another member created it first
	}
	return c, err
}

// deleteEphemeral removes a private consumer right away rather than leaving
// it to the server's inactivity timer.
func (s *natsSubscriber) deleteEphemeral(stream string, c jetstream.Consumer) {
	if s.opts.Group != "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), natsCloseGrace)
	defer cancel()
	if err := s.js.DeleteConsumer(ctx, stream, c.CachedInfo().Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		s.log.Debug("delete private NATS consumer", "stream", stream, "error", err)
	}
}

// outcome is what the consumer of the output channel did with a message.
type outcome int

const (
	acked outcome = iota
	nacked
	stopped
)

func (s *natsSubscriber) consume(ctx context.Context, iter jetstream.MessagesContext, out chan<- *message.Message) {
	run, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.life.closing:
			cancel()
		case <-run.Done():
		}
	}()
	defer iter.Stop()
	for {
		jm, err := iter.Next(jetstream.NextContext(run))
		if err != nil {
			if run.Err() == nil && !errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				s.log.Error("NATS subscription ended", "error", err)
			}
			return
		}
		msg, err := s.unmarshaler.Unmarshal(jm)
		if err != nil {
			// Redelivering what cannot be read would block the consumer
			// (MaxAckPending 1) for good.
			s.log.Error("dropping unreadable NATS message", "subject", jm.Subject(), "error", err)
			if err := jm.Term(); err != nil {
				s.log.Warn("terminate NATS message", "error", err)
			}
			continue
		}
		switch hand(run, msg, out) {
		case acked:
			if err := doubleAck(jm); err != nil {
				s.log.Warn("ack NATS message; it will be redelivered", "uuid", msg.UUID, "error", err)
			}
		case nacked:
			if err := jm.NakWithDelay(s.opts.NackDelay); err != nil {
				s.log.Warn("nack NATS message", "uuid", msg.UUID, "error", err)
			}
		case stopped:
			// Unsubscribe first, so the server hands the message to another
			// member (or keeps it for the next run) instead of back to us.
			// Stop only signals the iterator, which withdraws its pull
			// request from another goroutine; a nak that reached the server
			// first had the message redelivered to that request, where it
			// sat unacked for a whole AckWait. The delay outlasts the
			// withdrawal.
			iter.Stop()
			if err := jm.NakWithDelay(natsHandBackDelay); err != nil {
				s.log.Debug("hand back NATS message on stop", "uuid", msg.UUID, "error", err)
			}
			return
		}
	}
}

// doubleAck waits for the server to confirm the ack: with MaxAckPending 1
// the next message follows that confirmation anyway, and a lost ack is
// then logged rather than noticed only as a redelivery.
func doubleAck(jm jetstream.Msg) error {
	ctx, cancel := context.WithTimeout(context.Background(), natsCloseGrace)
	defer cancel()
	return jm.DoubleAck(ctx)
}

// hand gives msg to the consumer and waits for its verdict; an ack that
// races a stop still counts.
func hand(ctx context.Context, msg *message.Message, out chan<- *message.Message) outcome {
	msgCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	msg.SetContext(msgCtx)
	select {
	case out <- msg:
	case <-ctx.Done():
		return stopped
	}
	select {
	case <-msg.Acked():
		return acked
	case <-msg.Nacked():
		return nacked
	case <-ctx.Done():
		select {
		case <-msg.Acked():
			return acked
		default:
			return stopped
		}
	}
}

// Close ends every subscription, handing back the messages in hand, and
// waits for them.
func (s *natsSubscriber) Close() error {
	s.life.close()
	return nil
}
