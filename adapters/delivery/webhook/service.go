package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/google/uuid"

	"github.com/kycengine/kyc/adapters/delivery/cloudevent"
	"github.com/kycengine/kyc/adapters/delivery/relay"
	"github.com/kycengine/kyc/adapters/delivery/state"
	"github.com/kycengine/kyc/adapters/internal/wmlog"
	"github.com/kycengine/kyc/domain"
)

// Group is the consumer group the webhook fan-out should read the bus as
// (bus.Options.Group), so the processes of a deployment share the work and
// the group resumes where it left off after a restart.
const Group = "webhooks"

// The in-process topics of the delivery pipeline. They live on a private
// gochannel, never on the bus: the durable queue is the deliveries table.
const (
	deliverTopic = "webhooks.deliver"
	failedTopic  = "webhooks.failed"
)

const (
	userAgent   = "kyc-webhooks/1"
	maxErrorLen = 500
)

// CompanyResolver finds the company of a customer whose registration the
// fan-out has not seen (it was registered before webhooks were enabled, or
// while nothing consumed the bus). It returns "" for an unknown customer.
type CompanyResolver func(ctx context.Context, customerID string) (string, error)

// CompaniesFrom resolves companies through the engine: the customer's
// registration names it.
func CompaniesFrom(svc *domain.Service) CompanyResolver {
	reader := domain.Caller{Actor: domain.Actor{Kind: domain.ActorSystem, ID: "webhooks"}, Roles: []string{domain.RoleSuperuser}}
	return func(ctx context.Context, customerID string) (string, error) {
		c, err := svc.Get(ctx, reader, customerID)
		if errors.Is(err, domain.ErrCustomerNotFound) {
			return "", nil
		}
		if err != nil {
			return "", err
		}
		return c.CompanyID, nil
	}
}

// Config wires a Service. Only Store is required.
type Config struct {
	// Store is the delivery state whose webhook tables (migration 00002)
	// hold the endpoints and the deliveries.
	Store  *state.Store
	Logger *slog.Logger
	// Client sends the requests (default: one that follows no redirect, so
	// a 3xx is a failed attempt rather than a signed body sent elsewhere).
	Client *http.Client
	// Clock is the time deliveries are scheduled and signed with (default
	// time.Now).
	Clock func() time.Time
	// Schedule between rounds (default DefaultSchedule) and Retry within a
	// round (default DefaultRetry; the zero value means the default).
	Schedule Schedule
	Retry    Retry
	// Timeout bounds one request (default 10s).
	Timeout time.Duration
	// RotationOverlap is how long the secrets active before a rotation
	// keep signing (default 24h).
	RotationOverlap time.Duration
	// EventTypes are the types an endpoint may filter on; nil accepts any
	// well-formed type name.
	EventTypes []string
	// CompanyOf finds the companies of customers registered before the
	// fan-out saw them (see CompaniesFrom); nil sends such customers'
	// events only to endpoints of every company.
	CompanyOf CompanyResolver
	// Topic is the bus topic of the events (default relay.DefaultTopic).
	Topic string
	// PollInterval is how often the scheduler looks for due deliveries it
	// was not told about (another process's, or leases run out); default 1s.
	PollInterval time.Duration
	// Concurrency bounds the deliveries in flight in this process
	// (default 16).
	Concurrency int
	// Lease is how long a claimed delivery is this process's before
	// another may send it (default: a round's worst case plus 30s).
	Lease time.Duration
}

// Service registers endpoints and delivers events to them.
type Service struct {
	cfg   Config
	store *store
	log   *slog.Logger
	// owner marks the deliveries this process claimed, to hand them back
	// when it stops.
	owner    string
	routes   *routeCache
	wake     chan struct{}
	inflight atomic.Int64
	running  atomic.Bool

	startOnce sync.Once
	started   chan struct{}
}

// NewService validates the configuration and fills in defaults.
func NewService(cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, errors.New("webhook: no delivery state store")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Schedule.Delays == nil {
		cfg.Schedule = DefaultSchedule
	}
	if cfg.Retry == (Retry{}) {
		cfg.Retry = DefaultRetry
	}
	if cfg.Topic == "" {
		cfg.Topic = relay.DefaultTopic
	}
	for _, d := range []struct {
		value *time.Duration
		def   time.Duration
	}{{&cfg.Timeout, 10 * time.Second}, {&cfg.RotationOverlap, 24 * time.Hour}, {&cfg.PollInterval, time.Second}} {
		if *d.value == 0 {
			*d.value = d.def
		}
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 16
	}
	if cfg.Lease == 0 {
		cfg.Lease = cfg.Retry.worstCase(cfg.Timeout) + 30*time.Second
	}
	var errs []error
	for _, d := range cfg.Schedule.Delays {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("schedule delay %v is not positive", d))
		}
	}
	r := cfg.Retry
	switch {
	case len(cfg.Schedule.Delays) == 0:
		errs = append(errs, errors.New("the schedule has no delays"))
	case cfg.Schedule.Jitter < 0 || cfg.Schedule.Jitter >= 1:
		errs = append(errs, fmt.Errorf("schedule jitter %v is not in [0, 1)", cfg.Schedule.Jitter))
	}
	switch {
	case r.MaxRetries < 0 || r.InitialInterval <= 0 || r.MaxInterval < r.InitialInterval:
		errs = append(errs, errors.New("retry: MaxRetries must not be negative and 0 < InitialInterval <= MaxInterval"))
	case r.Multiplier < 1 || r.RandomizationFactor < 0 || r.RandomizationFactor >= 1:
		errs = append(errs, errors.New("retry: Multiplier must be at least 1 and RandomizationFactor in [0, 1)"))
	}
	if cfg.Timeout < 0 || cfg.RotationOverlap < 0 || cfg.PollInterval < 0 || cfg.Concurrency < 0 || cfg.Lease < 0 {
		errs = append(errs, errors.New("timeout, rotation overlap, poll interval, concurrency and lease must not be negative"))
	}
	if cfg.Lease > 0 && cfg.Lease <= cfg.Retry.worstCase(cfg.Timeout) {
		errs = append(errs, fmt.Errorf("lease %v is shorter than a round may take (%v)", cfg.Lease, cfg.Retry.worstCase(cfg.Timeout)))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	return &Service{cfg: cfg, store: newStore(cfg.Store), log: cfg.Logger, owner: uuid.NewString(), routes: newRouteCache(),
		wake: make(chan struct{}, 1), started: make(chan struct{})}, nil
}

// Started is closed once Run has subscribed to the bus. On the in-process
// bus, which keeps nothing for absent subscribers, the relay must not
// publish before that.
func (s *Service) Started() <-chan struct{} { return s.started }

// poke wakes the scheduler: a delivery became due or a slot came free.
func (s *Service) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run consumes the events from sub (the bus Subscriber, opened with Group
// on transports that have groups) and delivers them until ctx ends; then
// it hands the deliveries it holds back to the table and returns ctx's
// error. It returns ErrStopped early if the transport ends the
// subscription for good; calling Run again subscribes again. Only one Run
// may be running at a time.
func (s *Service) Run(ctx context.Context, sub message.Subscriber) error {
	if sub == nil {
		return errors.New("webhook: no bus subscriber")
	}
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("webhook: Run is already running")
	}
	defer s.running.Store(false)
	// Messages of an earlier run died with its gochannel.
	s.inflight.Store(0)

	wlog := wmlog.New(s.log)
	internal := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: int64(s.cfg.Concurrency)}, wlog)
	defer internal.Close()
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: s.cfg.Timeout + 5*time.Second}, wlog)
	if err != nil {
		return fmt.Errorf("webhook: router: %w", err)
	}

	// Fan-out: bus event -> one pending delivery per matching endpoint. A
	// failure (the database) is retried here briefly, then nacked, so the
	// bus hands the event over again.
	fanOut := router.AddConsumerHandler("webhooks-fanout", s.cfg.Topic, sub, s.fanOut)
	fanOut.AddMiddleware(retryAfterFailure(middleware.Retry{MaxRetries: 2, InitialInterval: 100 * time.Millisecond, MaxInterval: 2 * time.Second,
		Multiplier: 2, RandomizationFactor: 0.5}))

	// Delivery: one round. Retry makes the quick in-process retries; when
	// they are spent the poison queue moves the message to failedTopic,
	// where the round's failure is recorded and the next round scheduled.
	// A cancelled context (shutdown) is not a failed round: the delivery
	// is handed back instead.
	poison, err := middleware.PoisonQueueWithFilter(internal, failedTopic, func(err error) bool { return !errors.Is(err, context.Canceled) })
	if err != nil {
		return fmt.Errorf("webhook: poison queue: %w", err)
	}
	deliver := router.AddConsumerHandler("webhooks-deliver", deliverTopic, internal, s.deliver)
	deliver.AddMiddleware(s.settle, poison, s.retryMiddleware(), middleware.Recoverer)

	failed := router.AddConsumerHandler("webhooks-failed", failedTopic, internal, s.roundFailed)
	failed.AddMiddleware(s.dropAfterLogging, middleware.Retry{MaxRetries: 3, InitialInterval: 100 * time.Millisecond,
		MaxInterval: time.Second, Multiplier: 2}.Middleware)

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	routerDone := make(chan error, 1)
	go func() { routerDone <- router.Run(runCtx) }()
	select {
	case <-router.Running():
	case err := <-routerDone:
		return fmt.Errorf("webhook: start the router: %w", err)
	}
	s.startOnce.Do(func() { close(s.started) })
	s.log.Info("webhooks: delivering", "topic", s.cfg.Topic, "rounds", s.cfg.Schedule.Rounds())

	scheduled := make(chan struct{})
	go func() {
		defer close(scheduled)
		s.schedule(runCtx, internal)
	}()

	var result error
	routerEnded := false
	select {
	case <-ctx.Done():
	case <-fanOut.Stopped():
		result = ErrStopped
	case err := <-routerDone:
		routerEnded = true
		result = fmt.Errorf("%w: the router stopped: %v", ErrStopped, err)
	}
	if ctx.Err() != nil {
		// The subscription also ends when ctx does; that is no failure.
		result = ctx.Err()
	}
	cancel()
	<-scheduled
	if err := router.Close(); err != nil {
		s.log.Warn("webhooks: router close", "err", err)
	}
	if !routerEnded {
		<-routerDone
	}
	// What this process claimed and did not finish goes back to the table
	// now rather than when the lease runs out.
	releaseCtx, stop := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer stop()
	if err := s.store.release(releaseCtx, s.owner); err != nil {
		s.log.Warn("webhooks: hand back claimed deliveries", "err", err)
	}
	return result
}

// retryAfterFailure runs a handler once and hands a failed message to
// Watermill's Retry, after r.InitialInterval, for r.MaxRetries more tries.
// Retry sets up its back-off (a cancellable context, timers, closures) for
// every message before the first try; on the fan-out, which an in-process
// relay waits for and which nearly always succeeds at once, that setup cost
// twice the handler itself.
func retryAfterFailure(r middleware.Retry) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		retried := r.Middleware(h)
		return func(msg *message.Message) ([]*message.Message, error) {
			out, err := h(msg)
			if err == nil {
				return out, nil
			}
			t := time.NewTimer(r.InitialInterval)
			defer t.Stop()
			select {
			case <-msg.Context().Done():
				return out, err
			case <-t.C:
			}
			return retried(msg)
		}
	}
}

// retryMiddleware is the quick in-process retry of a round.
func (s *Service) retryMiddleware() message.HandlerMiddleware {
	r := s.cfg.Retry
	return middleware.Retry{
		MaxRetries: r.MaxRetries, InitialInterval: r.InitialInterval, MaxInterval: r.MaxInterval,
		Multiplier: r.Multiplier, RandomizationFactor: r.RandomizationFactor,
		ShouldRetry: func(p middleware.RetryParams) bool { return !errors.Is(p.Err, context.Canceled) },
	}.Middleware
}

// settle frees the in-flight slot once a round is over, however it ended.
func (s *Service) settle(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		defer func() {
			s.inflight.Add(-1)
			s.poke()
		}()
		return h(msg)
	}
}

// dropAfterLogging acks a failure record it could not write: nacking
// would have the gochannel hand it back at once, forever. The delivery's
// lease runs out and the next round starts then.
func (s *Service) dropAfterLogging(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		out, err := h(msg)
		if err != nil && !errors.Is(err, context.Canceled) {
			s.log.Error("webhooks: could not record a failed round; it is retried when its lease ends", "delivery", msg.UUID, "err", err)
		}
		return out, nil
	}
}

// fanOut turns one bus event into the pending deliveries of the endpoints
// that want it. It returns only once they are committed, so the message is
// acked only then: a crash before makes the bus deliver the event again,
// and the deliveries' derived ids keep that from doubling them.
func (s *Service) fanOut(msg *message.Message) error {
	ctx := msg.Context()
	// Most events match no endpoint, so the routing reads only the
	// metadata; the CloudEvent is decoded once an endpoint wants it.
	typ := cloudevent.DomainType(msg.Metadata.Get(cloudevent.KeyType))
	customer, ok := domain.CustomerIDFromStream(msg.Metadata.Get(cloudevent.KeyStream))
	if typ == "" || !ok {
		// Not a customer's event (identity bindings, or not ours at all):
		// it belongs to no company.
		return nil
	}
	company, registered, err := s.companyOf(ctx, customer, typ, msg.Payload)
	if err != nil {
		return fmt.Errorf("webhook: company of customer %s: %w", customer, err)
	}
	targets, ok := s.routes.endpoints(company)
	if !ok {
		if targets, err = s.store.targets(ctx, company); err != nil {
			return fmt.Errorf("webhook: endpoints of %q: %w", company, err)
		}
		s.routes.rememberEndpoints(company, targets)
	}
	wanted := slices.ContainsFunc(targets, func(t target) bool { return t.wants(typ) })
	if registered != nil && s.cfg.CompanyOf != nil {
		// A customer this process forgets (a restart, a full cache) is
		// resolved again from the log, so a registration needs no write of
		// its own: one per customer was most of the fan-out's time on a
		// busy in-process bus, whose Publish waits for it.
		s.routes.rememberCompany(registered.customerID, registered.company)
		registered = nil
	}
	if !wanted && registered == nil {
		return nil
	}
	return s.record(ctx, msg, typ, customer, company, registered, targets)
}

// record writes the deliveries of an event some endpoint wants, and the
// customer's registration when it must be kept. It is apart from fanOut so
// that the common case, an event nobody wants, runs in a small stack frame:
// the router runs each message on a new goroutine, and a large frame made
// every one of them grow its stack.
func (s *Service) record(ctx context.Context, msg *message.Message, typ, customer, company string, registered *registration, targets []target) error {
	var (
		ds       []newDelivery
		payload  []byte
		eventID  string
		position domain.Position
	)
	for _, t := range targets {
		if !t.wants(typ) {
			continue
		}
		if payload == nil {
			ev, err := cloudevent.FromMessage(msg)
			if err != nil {
				// Not ours, and never will be: refusing it would block the
				// subscription.
				s.log.Warn("webhooks: skipping a bus message that is not a kyc event", "message", msg.UUID, "err", err)
				return nil
			}
			if payload, err = json.Marshal(ev); err != nil {
				return fmt.Errorf("webhook: event %s: %w", ev.ID(), err)
			}
			eventID = ev.ID()
			// Only orders the deliveries made in one millisecond: a
			// message without a readable position is still delivered.
			position, _ = cloudevent.ParsePosition(msg.Metadata.Get(cloudevent.KeyPosition))
		}
		id, err := deliveryID(t.id, eventID)
		if err != nil {
			return err
		}
		ds = append(ds, newDelivery{id: id, endpointID: t.id, eventID: eventID, eventType: typ, customerID: customer, company: company,
			payload: payload, position: position})
	}
	if err := s.store.insertDeliveries(ctx, registered, ds, msec(s.cfg.Clock())); err != nil {
		return fmt.Errorf("webhook: record deliveries of event %s: %w", msg.UUID, err)
	}
	if registered != nil {
		s.routes.rememberCompany(registered.customerID, registered.company)
	}
	if len(ds) > 0 {
		s.poke()
	}
	return nil
}

// deliveryID derives a delivery's id from its endpoint and event.
func deliveryID(endpointID, eventID string) (string, error) {
	ns, err := uuid.Parse(endpointID)
	if err != nil {
		return "", fmt.Errorf("webhook: endpoint id %q: %w", endpointID, err)
	}
	return uuid.NewSHA1(ns, []byte(eventID)).String(), nil
}

// registeredCompany is the company a registration names, "" when data is
// not one. Apart from companyOf for the size of its frame (see record).
func registeredCompany(data []byte) string {
	var reg struct {
		CompanyID string `json:"company_id"`
	}
	if err := json.Unmarshal(data, &reg); err != nil {
		return ""
	}
	return reg.CompanyID
}

// registeredType is the event that names a customer's company.
var registeredType = domain.CustomerRegistered{}.EventType()

// companyOf is the company of the customer an event is about: what its
// registration said. registered is set when this event is the registration.
func (s *Service) companyOf(ctx context.Context, customer, typ string, data []byte) (string, *registration, error) {
	if typ == registeredType {
		if company := registeredCompany(data); company != "" {
			return company, &registration{customerID: customer, company: company}, nil
		}
	}
	if company, ok := s.routes.company(customer); ok {
		return company, nil, nil
	}
	company, err := s.store.customerCompany(ctx, customer)
	if err != nil {
		return "", nil, err
	}
	if company != "" {
		s.routes.rememberCompany(customer, company)
		return company, nil, nil
	}
	if s.cfg.CompanyOf != nil {
		if company, err = s.cfg.CompanyOf(ctx, customer); err != nil {
			return "", nil, err
		}
		if company != "" {
			if err := s.store.rememberCustomer(ctx, customer, company); err != nil {
				return "", nil, err
			}
			s.routes.rememberCompany(customer, company)
			return company, nil, nil
		}
	}
	s.log.Warn("webhooks: the customer's company is unknown; only endpoints of every company get its event", "customer", customer, "type", typ)
	return "", nil, nil
}

// schedule hands due deliveries to the delivery handler: the one part of
// the pipeline that is not a Watermill handler, because a wait of hours
// that must outlive the process can only be kept in the table.
func (s *Service) schedule(ctx context.Context, pub message.Publisher) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-s.wake:
		}
		timer.Reset(s.dispatch(ctx, pub))
	}
}

// dispatch claims what is due, as far as there are free slots, and says
// how long to wait before looking again.
func (s *Service) dispatch(ctx context.Context, pub message.Publisher) time.Duration {
	free := s.cfg.Concurrency - int(s.inflight.Load())
	if free <= 0 {
		// settle pokes when a slot frees.
		return s.cfg.PollInterval
	}
	now := s.cfg.Clock()
	ids, err := s.store.claim(ctx, s.owner, now, now.Add(s.cfg.Lease), free)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("webhooks: cannot claim due deliveries", "err", err)
		}
		return s.cfg.PollInterval
	}
	for _, id := range ids {
		s.inflight.Add(1)
		if err := pub.Publish(deliverTopic, message.NewMessage(id, nil)); err != nil {
			// The claim lapses after the lease and the delivery is tried then.
			s.inflight.Add(-1)
			s.log.Warn("webhooks: cannot hand over a delivery", "delivery", id, "err", err)
		}
	}
	if len(ids) == free {
		return s.cfg.PollInterval
	}
	next, err := s.store.nextDue(ctx, now)
	if err != nil || next == nil {
		return s.cfg.PollInterval
	}
	return max(0, min(next.Sub(now), s.cfg.PollInterval))
}

// deliver makes one request of a delivery and records it. An error fails
// the request; Retry and the poison queue decide what comes next.
func (s *Service) deliver(msg *message.Message) error {
	ctx := msg.Context()
	id := msg.UUID
	d, ok, err := s.store.sendable(ctx, id, s.cfg.Clock())
	if err != nil {
		return fmt.Errorf("read delivery: %w", err)
	}
	if !ok || d.status != StatusPending {
		// Deleted with its endpoint, or settled by another process.
		return nil
	}
	if len(d.keys) == 0 {
		return errors.New("the endpoint has no active secret")
	}
	start := s.cfg.Clock()
	status, reqErr := s.post(ctx, id, d, start)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	a := Attempt{At: msec(start), Status: status, Duration: time.Since(start)}
	if reqErr != nil {
		a.Error = clip(reqErr.Error(), maxErrorLen)
	}
	if err := s.store.recordAttempt(ctx, id, a, reqErr == nil); err != nil {
		return fmt.Errorf("record the attempt: %w", err)
	}
	if reqErr != nil {
		s.log.Info("webhooks: attempt failed", "delivery", id, "url", redactURL(d.url), "err", reqErr)
		return reqErr
	}
	s.log.Debug("webhooks: delivered", "delivery", id, "url", redactURL(d.url))
	return nil
}

// post sends the payload, signed with every active key at the time at.
func (s *Service) post(ctx context.Context, id string, d sendable, at time.Time) (*int, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.url, bytes.NewReader(d.payload))
	if err != nil {
		return nil, err
	}
	ts := at.Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set(HeaderID, id)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(d.keys, id, ts, d.payload))
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		// The URL is the endpoint's, shown beside the error anyway.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, err
	}
	defer resp.Body.Close()
	head, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	// Draining a little lets the connection be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	code := resp.StatusCode
	if code < 200 || code > 299 {
		msg := fmt.Sprintf("HTTP %d", code)
		if body := strings.TrimSpace(string(head)); body != "" {
			msg += ": " + clip(body, 200)
		}
		return &code, errors.New(msg)
	}
	return &code, nil
}

// roundFailed records that a round's requests all failed: the next round
// is scheduled, or the delivery is dead after the last one.
func (s *Service) roundFailed(msg *message.Message) error {
	reason := msg.Metadata.Get(middleware.ReasonForPoisonedKey)
	status, err := s.store.roundFailed(msg.Context(), msg.UUID, s.cfg.Schedule, reason, msec(s.cfg.Clock()))
	if err != nil {
		return err
	}
	switch status {
	case StatusDead:
		s.log.Warn("webhooks: delivery is dead after its last round; replay it once the receiver works", "delivery", msg.UUID, "err", reason)
	case StatusPending:
		s.poke()
	}
	return nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// redactURL keeps a URL's query, which may hold a receiver's token, out of
// the logs.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.RawQuery = ""
	u.User = nil
	return u.String()
}
