package bus

import (
	"context"
	"database/sql"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v3/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/kycengine/kyc/adapters/internal/wmlog"
)

const (
	// pgMaxInsertRows keeps one INSERT under PostgreSQL's 65,535 bind
	// parameters (three per message) with room to spare.
	pgMaxInsertRows = 5000
	// pgIdleConns keeps a connection per relay lane and subscriber warm;
	// database/sql's default of 2 would reconnect on most publishes.
	pgIdleConns = 16
	// pgCloseGrace is how long a subscription may take to commit its acks
	// on close before its transaction is cancelled (and its acked messages
	// redelivered later).
	pgCloseGrace = 5 * time.Second
	// pgPrivateGroupPrefix marks the offsets rows of private consumers.
	pgPrivateGroupPrefix = "kyc_private_"
	// pgConnectTimeout applies when the URL sets no connect_timeout.
	pgConnectTimeout = 10 * time.Second
)

func openPostgres(ctx context.Context, rawURL string, opts Options) (*Bus, error) {
	cfg, err := pgx.ParseConfig(rawURL)
	if err != nil {
		return nil, fmt.Errorf("bus: PostgreSQL URL: %w", err) // pgx redacts the password
	}
	where := fmt.Sprintf("%s:%d/%s", cfg.Host, cfg.Port, cfg.Database)
	if cfg.ConnectTimeout == 0 {
		// Without one a silently dropped SYN holds Open (and every later
		// reconnect) for the kernel's TCP timeout, minutes.
		cfg.ConnectTimeout = pgConnectTimeout
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxIdleConns(pgIdleConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("%w: connect to PostgreSQL at %s: %w", ErrUnavailable, where, err)
	}
	wlog := wmlog.New(opts.Logger)
	schema := &pgSchema{
		db: db,
		messages: wsql.DefaultPostgreSQLSchema{
			// Payloads are bytes to the bus; JSON would reject anything else
			// and spend time validating what the relay already validated.
			GeneratePayloadType: func(string) string { return "BYTEA" },
		},
		done: map[string]bool{},
	}
	inner, err := wsql.NewPublisher(db, wsql.PublisherConfig{
		SchemaAdapter:        schema.messages,
		AutoInitializeSchema: true,
	}, wlog)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("bus: PostgreSQL publisher: %w", err)
	}
	return &Bus{
		kind: KindPostgres,
		pub:  &pgPublisher{inner: inner, schema: schema, life: newLifecycle()},
		sub: &pgSubscriber{
			db: db, schema: schema, opts: opts, wlog: wlog,
			log: opts.Logger.With("transport", KindPostgres), life: newLifecycle(),
		},
		closeTransport: db.Close,
	}, nil
}

// pgSchema creates a topic's tables once per Bus. watermill-sql runs its
// CREATE TABLE IF NOT EXISTS from every publisher and subscriber without
// coordination, and concurrent ones can fail on PostgreSQL's catalog
// unique indexes; an advisory lock serializes them across processes.
type pgSchema struct {
	db       *sql.DB
	messages wsql.DefaultPostgreSQLSchema
	offsets  wsql.DefaultPostgreSQLOffsetsAdapter

	mu   sync.Mutex
	done map[string]bool
}

func (s *pgSchema) ensure(ctx context.Context, topic string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done[topic] {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("PostgreSQL tables for %s: %w", topic, err)
	}
	defer tx.Rollback() // a no-op after Commit
	h := fnv.New64a()
	h.Write([]byte("kyc-bus-schema:" + topic))
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(h.Sum64())); err != nil {
		return fmt.Errorf("PostgreSQL tables for %s: lock: %w", topic, err)
	}
	queries := append(s.messages.SchemaInitializingQueries(topic), s.offsets.SchemaInitializingQueries(topic)...)
	for _, q := range queries {
		if _, err := tx.ExecContext(ctx, q.Query, q.Args...); err != nil {
			return fmt.Errorf("PostgreSQL tables for %s: %w", topic, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("PostgreSQL tables for %s: %w", topic, err)
	}
	s.done[topic] = true
	return nil
}

// pgPublisher adds table creation without races, batches too large for
// one statement, and a Close that is safe while Publish runs (the inner
// publisher's closed flag is not synchronized).
type pgPublisher struct {
	inner  *wsql.Publisher
	schema *pgSchema
	life   *lifecycle
}

// Publish inserts msgs with one INSERT per pgMaxInsertRows messages, each
// committed on its own; a failure part-way leaves the earlier chunks
// stored, which the relay's retry turns into duplicates, never gaps.
func (p *pgPublisher) Publish(topic string, msgs ...*message.Message) error {
	if err := validateTopic(topic); err != nil {
		return err
	}
	if err := p.life.enter(); err != nil {
		return err
	}
	defer p.life.leave()
	if len(msgs) == 0 {
		return nil // watermill-sql would build an INSERT without rows
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	err := p.schema.ensure(ctx, topic)
	cancel()
	if err != nil {
		return fmt.Errorf("bus: PostgreSQL publish to %s: %w", topic, err)
	}
	for len(msgs) > 0 {
		n := min(len(msgs), pgMaxInsertRows)
		if err := p.inner.Publish(topic, msgs[:n]...); err != nil {
			return fmt.Errorf("bus: PostgreSQL publish to %s: %w", topic, err)
		}
		msgs = msgs[n:]
	}
	return nil
}

func (p *pgPublisher) Close() error {
	p.life.close()
	return p.inner.Close()
}

// pgSubscriber gives each Subscribe call its own watermill-sql Subscriber
// sharing the pool, so one subscription can end without the others, and
// ends it through the Subscriber's Close rather than by cancelling its
// context: Close lets the batch transaction commit the acks it has, where
// a cancelled context rolls them back into redeliveries.
type pgSubscriber struct {
	db     *sql.DB
	schema *pgSchema
	opts   Options
	wlog   watermill.LoggerAdapter
	log    *slog.Logger
	life   *lifecycle
}

func (s *pgSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if err := validateTopic(topic); err != nil {
		return nil, err
	}
	if err := s.life.enter(); err != nil {
		return nil, err
	}
	ch, err := s.subscribe(ctx, topic)
	if err != nil {
		s.life.leave()
		return nil, fmt.Errorf("bus: PostgreSQL subscribe to %s: %w", topic, err)
	}
	return ch, nil
}

func (s *pgSubscriber) subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if err := s.schema.ensure(ctx, topic); err != nil {
		return nil, err
	}
	group, private := s.opts.Group, s.opts.Group == ""
	if private {
		group = pgPrivateGroupPrefix + uuid.NewString()
	}
	if !s.opts.FromStart {
		if err := s.startAtEnd(ctx, topic, group); err != nil {
			return nil, err
		}
	}
	ackDeadline := s.opts.AckTimeout
	inner, err := wsql.NewSubscriber(s.db, wsql.SubscriberConfig{
		ConsumerGroup:    group,
		AckDeadline:      &ackDeadline,
		PollInterval:     s.opts.PollInterval,
		ResendInterval:   s.opts.NackDelay,
		SchemaAdapter:    s.schema.messages,
		OffsetsAdapter:   s.schema.offsets,
		InitializeSchema: true,
	}, s.wlog)
	if err != nil {
		return nil, err
	}
	// Detached from ctx: see pgSubscriber. innerCancel is the last resort
	// when Close cannot finish in time.
	innerCtx, innerCancel := context.WithCancel(context.WithoutCancel(ctx))
	src, err := inner.Subscribe(innerCtx, topic)
	if err != nil {
		innerCancel()
		if private {
			s.forget(topic, group)
		}
		return nil, err
	}
	out := make(chan *message.Message)
	go func() {
		defer s.life.leave()
		defer close(out)
		forward(ctx, s.life.closing, src, out)
		done := make(chan struct{})
		go func() {
			if err := inner.Close(); err != nil {
				s.log.Warn("close PostgreSQL subscription", "topic", topic, "error", err)
			}
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(pgCloseGrace):
			innerCancel()
			<-done
		}
		innerCancel()
		if private {
			s.forget(topic, group)
		}
	}()
	return out, nil
}

// forward passes messages on until the caller's context ends, the Bus
// closes or the inner subscription ends by itself.
func forward(ctx context.Context, closing <-chan struct{}, src <-chan *message.Message, out chan<- *message.Message) {
	for {
		select {
		case m, ok := <-src:
			if !ok {
				return
			}
			select {
			case out <- m:
			case <-ctx.Done():
				return
			case <-closing:
				return
			}
		case <-ctx.Done():
			return
		case <-closing:
			return
		}
	}
}

// startAtEnd gives a group without a position one just after the newest
// message consumers can see now, so it receives only what is published
// from here on. Rows of transactions still running count as new: they
// become visible only later. An existing group keeps its position (ON
// CONFLICT DO NOTHING), and with no visible rows there is nothing to skip.
func (s *pgSubscriber) startAtEnd(ctx context.Context, topic, group string) error {
	q := `INSERT INTO ` + s.schema.offsets.MessagesOffsetsTable(topic) + `
			(consumer_group, offset_acked, last_processed_transaction_id)
		SELECT $1, "offset", transaction_id FROM ` + s.schema.messages.MessagesTable(topic) + `
		WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())
		ORDER BY transaction_id DESC, "offset" DESC
		LIMIT 1
		ON CONFLICT (consumer_group) DO NOTHING`
	if _, err := s.db.ExecContext(ctx, q, group); err != nil {
		return fmt.Errorf("position group %s at the end: %w", group, err)
	}
	return nil
}

// forget deletes a private consumer's offsets row, which nothing would
// ever read again.
func (s *pgSubscriber) forget(topic, group string) {
	ctx, cancel := context.WithTimeout(context.Background(), pgCloseGrace)
	defer cancel()
	q := `DELETE FROM ` + s.schema.offsets.MessagesOffsetsTable(topic) + ` WHERE consumer_group = $1`
	if _, err := s.db.ExecContext(ctx, q, group); err != nil {
		s.log.Debug("delete private PostgreSQL consumer", "group", group, "error", err)
	}
}

// Close ends every subscription, committing the acks each has, and waits
// for them.
func (s *pgSubscriber) Close() error {
	s.life.close()
	return nil
}
