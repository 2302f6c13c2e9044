// Package bus opens the message transport the relay publishes events to and
// downstream consumers (kyc subscribe, webhooks) read them from. One URL
// picks the transport, so the same binary runs embedded (memory://), on
// NATS JetStream (nats://) or on PostgreSQL (postgres://) without the
// relay or the consumers knowing which one they talk to: they only see a
// Watermill message.Publisher and message.Subscriber.
//
// What every transport promises, and what the conformance tests check:
//
//   - Publish returns only once the transport has accepted every message it
//     was given (JetStream acked it, PostgreSQL committed it, every in-process
//     subscriber acked it), so the relay may advance its checkpoint then.
//   - Delivery is at least once: a message may arrive again after a Nack, a
//     crash or a restart; consumers deduplicate on the message UUID (the
//     event id).
//   - Messages of one partition (metadata PartitionKey, the customer id)
//     published by one publisher in order are delivered in that order, also
//     across a Nack: the nacked message comes back before anything after it.
//
// How each transport keeps those promises, and what Group and FromStart
// mean on it, is documented on [Open].
package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Kinds of transport, as [Bus.Kind] reports them.
const (
	KindMemory   = "memory"
	KindNATS     = "nats"
	KindPostgres = "postgres"
)

// PartitionKey is the metadata key whose value (the customer id) names the
// partition a message must stay in order within. The NATS publisher reads
// it to pipeline messages of different partitions while keeping each
// partition's messages strictly one after the other. It must equal
// cloudevent.KeyPartition, which the relay sets.
const PartitionKey = "partition_key"

var (
	// ErrUnsupportedScheme: the URL names no transport this package knows.
	ErrUnsupportedScheme = errors.New("bus: unsupported URL scheme")
	// ErrUnavailable: the transport's server could not be reached or refused
	// us; the wrapped error says why.
	ErrUnavailable = errors.New("bus: server unavailable")
	// ErrInvalidOptions: Open was given options it cannot honour.
	ErrInvalidOptions = errors.New("bus: invalid options")
	// ErrInvalidTopic: a topic name not usable on every transport.
	ErrInvalidTopic = errors.New("bus: invalid topic")
	// ErrClosed: the Bus was closed.
	ErrClosed = errors.New("bus: closed")
)

// Defaults for the zero values of [Options].
const (
	DefaultAckTimeout   = 30 * time.Second
	DefaultNackDelay    = time.Second
	DefaultMaxAge       = 7 * 24 * time.Hour
	DefaultPollInterval = 100 * time.Millisecond
)

// Options tune how Open connects and how the Subscriber consumes. The zero
// value is valid: a private consumer of new messages only.
type Options struct {
	// Logger receives the transport's logs; Watermill's chatty per-message
	// Info lines are lowered to Debug. Nil discards everything.
	Logger *slog.Logger

	// Group names a durable consumer: subscribers with the same Group share
	// the work, and the group resumes where it left off across restarts
	// (NATS: a durable JetStream consumer of that name; PostgreSQL: a row in
	// the offsets table). "" makes every Subscribe call a private consumer
	// that is forgotten when its subscription ends. The memory transport
	// has no groups: every subscriber receives every message.
	// Letters, digits, '-' and '_' only, at most 64 characters, so the same
	// name is valid as a JetStream consumer name and a PostgreSQL key.
	Group string

	// FromStart makes a consumer that has no position yet (a private one,
	// or a Group seen for the first time) start at the oldest message still
	// on the bus instead of with messages published after Subscribe. An
	// existing Group always resumes where it left off, whatever FromStart
	// says. The memory transport keeps no history, so there it changes
	// nothing.
	FromStart bool

	// AckTimeout is how long a subscriber may hold a message before the
	// transport hands it out again (NATS AckWait, PostgreSQL AckDeadline).
	// Zero means DefaultAckTimeout. Not used by memory, which waits forever.
	AckTimeout time.Duration

	// NackDelay is how long a nacked message waits before it is delivered
	// again; nothing after it in its partition is delivered meanwhile, so a
	// consumer that keeps failing cannot spin. Zero means DefaultNackDelay.
	// Memory redelivers at once.
	NackDelay time.Duration

	// MaxAge is how long NATS keeps messages in a stream this package
	// creates; consumers away for longer lose what expired. A stream that
	// already exists keeps the limits it was created with. Zero means
	// DefaultMaxAge.
	MaxAge time.Duration

	// PollInterval is how often an idle PostgreSQL subscriber looks for new
	// rows, which bounds its delivery latency. Zero means
	// DefaultPollInterval.
	PollInterval time.Duration
}

var groupName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// resolve validates the options and fills in defaults, so the transports
// see only usable values.
func (o Options) resolve() (Options, error) {
	if o.Group != "" && !groupName.MatchString(o.Group) {
		return o, fmt.Errorf("%w: group %q: use 1 to 64 letters, digits, '-' or '_'", ErrInvalidOptions, o.Group)
	}
	for _, d := range []struct {
		name  string
		value *time.Duration
		def   time.Duration
	}{
		{"AckTimeout", &o.AckTimeout, DefaultAckTimeout},
		{"NackDelay", &o.NackDelay, DefaultNackDelay},
		{"MaxAge", &o.MaxAge, DefaultMaxAge},
		{"PollInterval", &o.PollInterval, DefaultPollInterval},
	} {
		if *d.value < 0 {
			return o, fmt.Errorf("%w: %s must not be negative, got %v", ErrInvalidOptions, d.name, *d.value)
		}
		if *d.value == 0 {
			*d.value = d.def
		}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// Bus is an open transport. Its Publisher and Subscriber are safe for
// concurrent use and stay valid until Close.
type Bus struct {
	kind string
	pub  message.Publisher
	sub  message.Subscriber

	// closeTransport releases what Publisher and Subscriber share (the NATS
	// connection, the database pool, the in-process channel) once both are
	// closed.
	closeTransport func() error

	closeOnce sync.Once
	closeErr  error
}

// Open opens the transport rawURL names:
//
//	""  or "memory://"                     Watermill's in-process gochannel
//	"nats://host:4222[,nats://host2:4222]" NATS JetStream
//	"postgres://..." or "postgresql://..." PostgreSQL through watermill-sql
//
// Publisher and Subscriber are both made here, so every connection error
// surfaces from Open rather than from a later call; Subscriber returns the
// same instance every time, each Subscribe call being its own consumer.
//
// memory: one gochannel serves both sides. Nothing is stored: a message
// published while no subscriber listens is dropped, which is fine because
// everything in-process (webhooks, live feeds) subscribes before the relay
// starts. A topic is spread over 8 gochannel topics by partition key.
// Publish sends each partition's messages one at a time, the partitions
// side by side, and blocks until every subscriber has acked each message;
// that is what keeps partitions in order (gochannel otherwise hands each
// message to its own goroutine) and gives the relay back-pressure from slow
// in-process consumers. A subscription thus holds up to 8 messages at once,
// one per partition, which a Watermill router handles in parallel. Group
// and FromStart change nothing.
//
// nats: one JetStream stream per topic (subject = topic, stream name = topic
// with '.' made '_'), created on first use if missing with file storage,
// limits retention, MaxAge from Options and the server's 2-minute duplicate
// window; each message carries Nats-Msg-Id = its UUID, so a relay that
// republishes after a failure within that window stores nothing twice.
// Publish pipelines a batch with async publishes but never has two messages
// of one partition in flight at once, and returns after every ack. Each
// Subscribe uses a pull consumer with explicit acks and MaxAckPending 1:
// strict stream order for the whole consumer, across Nacks, redeliveries
// and group members, at the price of one round trip per message. A Group
// is a durable consumer of that name (never deleted by this package);
// without one the consumer is ephemeral and deleted when the subscription
// ends. On Close or cancellation the message in hand is nacked so another
// member or the next run gets it at once rather than after AckTimeout.
//
// postgres: watermill-sql's DefaultPostgreSQLSchema (payload stored as
// BYTEA) and DefaultPostgreSQLOffsetsAdapter, tables created on first use.
// Messages are read in (transaction id, offset) order and only from
// transactions older than every transaction still running, so a publisher
// that commits late cannot be skipped; each Publish is one multi-row INSERT
// (split above 5,000 messages), so a batch is one round trip and commits
// as a whole. A Group is a row in the offsets table; without one each
// Subscribe gets a random private group whose row is deleted when the
// subscription ends.
func Open(ctx context.Context, rawURL string, opts Options) (*Bus, error) {
	opts, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	scheme := "memory"
	if rawURL != "" {
		s, _, ok := strings.Cut(rawURL, "://")
		if !ok {
			return nil, fmt.Errorf("%w: %q has no scheme (want memory://, nats:// or postgres://)", ErrUnsupportedScheme, redact(rawURL))
		}
		scheme = strings.ToLower(s)
	}
	switch scheme {
	case "memory":
		if rawURL != "" && !strings.EqualFold(rawURL, "memory://") {
			return nil, fmt.Errorf("%w: memory:// takes no host, path or parameters, got %q", ErrInvalidOptions, rawURL)
		}
		return openMemory(opts), nil
	case "nats":
		return openNATS(ctx, rawURL, opts)
	case "postgres", "postgresql":
		return openPostgres(ctx, rawURL, opts)
	default:
		return nil, fmt.Errorf("%w %q (want memory://, nats:// or postgres://)", ErrUnsupportedScheme, scheme)
	}
}

// Publisher publishes to the bus; see Open for what Publish promises on
// each transport.
func (b *Bus) Publisher() message.Publisher { return b.pub }

// Subscriber consumes from the bus as Options.Group and Options.FromStart
// say. Each Subscribe call is one consumer; its channel closes when its
// context is cancelled, the Bus is closed, or the transport ends the
// subscription for good (a NATS consumer deleted by an operator), after
// which the caller may subscribe again.
func (b *Bus) Subscriber() message.Subscriber { return b.sub }

// Kind is KindMemory, KindNATS or KindPostgres.
func (b *Bus) Kind() string { return b.kind }

// Close stops every subscription (handing back messages not yet acked),
// waits for Publish calls in progress and releases the connection. It is
// safe to call more than once.
func (b *Bus) Close() error {
	b.closeOnce.Do(func() {
		var errs []error
		if err := b.sub.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close %s subscriber: %w", b.kind, err))
		}
		if err := b.pub.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close %s publisher: %w", b.kind, err))
		}
		if err := b.closeTransport(); err != nil {
			errs = append(errs, fmt.Errorf("close %s transport: %w", b.kind, err))
		}
		b.closeErr = errors.Join(errs...)
	})
	return b.closeErr
}

var topicName = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)

// maxTopicLen keeps "watermill_offsets_<topic>" within PostgreSQL's 63-byte
// identifiers, so two topics never share a truncated table name.
const maxTopicLen = 45

// validateTopic accepts only names every transport can use as they are (a
// NATS subject without wildcards, a PostgreSQL table suffix), so a topic
// that works on memory in development works on NATS and PostgreSQL too.
func validateTopic(topic string) error {
	if len(topic) > maxTopicLen || !topicName.MatchString(topic) {
		return fmt.Errorf("%w %q: use at most %d letters, digits, '-' or '_' in '.'-separated tokens", ErrInvalidTopic, topic, maxTopicLen)
	}
	return nil
}

// redact hides passwords in each of a comma-separated list of URLs, so
// errors can name the server without leaking credentials.
func redact(raw string) string {
	parts := strings.Split(raw, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		u, err := url.Parse(p)
		switch {
		case err != nil:
			if at := strings.LastIndex(p, "@"); at >= 0 {
				p = "xxxxx" + p[at:]
			}
			parts[i] = p
		default:
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
}

// lifecycle tracks a publisher's or subscriber's in-flight work, so Close
// can refuse new work and wait for what is running.
type lifecycle struct {
	mu      sync.Mutex
	closed  bool
	closing chan struct{}
	wg      sync.WaitGroup
}

func newLifecycle() *lifecycle { return &lifecycle{closing: make(chan struct{})} }

// enter registers one unit of work; the caller must call leave.
func (l *lifecycle) enter() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	l.wg.Add(1)
	return nil
}

func (l *lifecycle) leave() { l.wg.Done() }

// close refuses new work, signals closing and waits for running work.
func (l *lifecycle) close() {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.closing)
	}
	l.mu.Unlock()
	l.wg.Wait()
}
