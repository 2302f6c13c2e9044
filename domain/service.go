package domain

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"github.com/google/uuid"
)

// IdempotencyIndex finds the events an idempotency key produced. The service
// uses it to answer a retried command with its first result.
type IdempotencyIndex interface {
	FindByIdempotencyKey(ctx context.Context, key string) ([]RecordedEvent, error)
}

// ServiceObserver is told about every command, for metrics.
type ServiceObserver interface {
	CommandFinished(command, outcome string, d time.Duration)
	ConcurrencyConflict(command string)
}

// Command outcomes reported to the observer.
const (
	OutcomeOK       = "ok"
	OutcomeNoChange = "no_change"
	OutcomeReplayed = "replayed"
	OutcomeRefused  = "refused"
	OutcomeConflict = "conflict"
	OutcomeError    = "error"
)

// ServiceConfig wires the command service.
type ServiceConfig struct {
	Store       EventStore
	Idempotency IdempotencyIndex
	Lifecycles  *Lifecycles
	Codec       *Codec
	// Clock and NewEventID default to time.Now and UUIDv7.
	Clock      func() time.Time
	NewEventID func() (uuid.UUID, error)
	Observer   ServiceObserver
	// MaxAttempts bounds how often a command is re-decided on fresh state
	// after a concurrency conflict (default 8).
	MaxAttempts int
	// CacheSize bounds the folded customers kept in memory (default 50,000).
	CacheSize int
	// Admission, when set, is asked before each command is decided and may
	// hold it back (the read models falling behind); nil admits everything.
	Admission Admission
}

// Admission holds commands back while something that follows the log cannot
// keep up with it. Admit returns when the command may go on, after waiting
// if need be, with done, which the caller calls once the command has ended;
// or the context's error.
type Admission interface {
	Admit(ctx context.Context) (done func(), err error)
}

// Service decides commands against folded customer state and appends the
// resulting events with optimistic concurrency.
type Service struct {
	store       EventStore
	idem        IdempotencyIndex
	lifecycles  *Lifecycles
	codec       *Codec
	clock       func() time.Time
	newEventID  func() (uuid.UUID, error)
	observer    ServiceObserver
	maxAttempts int
	admission   Admission
	cache       *customerCache
	keyLocks    [256]sync.Mutex
}

// NewService validates the configuration.
func NewService(cfg ServiceConfig) (*Service, error) {
	if cfg.Store == nil || cfg.Lifecycles == nil || cfg.Codec == nil {
		return nil, errors.New("command service: store, lifecycles and codec are required")
	}
	if cfg.Idempotency == nil {
		return nil, errors.New("command service: an idempotency index is required")
	}
	s := &Service{
		store: cfg.Store, idem: cfg.Idempotency, lifecycles: cfg.Lifecycles, codec: cfg.Codec, admission: cfg.Admission,
		clock: cfg.Clock, newEventID: cfg.NewEventID, observer: cfg.Observer, maxAttempts: cfg.MaxAttempts,
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	if s.newEventID == nil {
		s.newEventID = uuid.NewV7
	}
	if s.maxAttempts <= 0 {
		s.maxAttempts = 8
	}
	size := cfg.CacheSize
	if size <= 0 {
		size = 50_000
	}
	s.cache = newCustomerCache(size)
	return s, nil
}

// Lifecycles returns the lifecycle registry the service uses.
func (s *Service) Lifecycles() *Lifecycles { return s.lifecycles }

// Codec returns the event codec the service uses.
func (s *Service) Codec() *Codec { return s.codec }

// Options are the per-request parts of a command.
type Options struct {
	Caller         Caller
	IdempotencyKey string
	// ExpectedRevision, when set, refuses the command with
	// ErrRevisionMismatch unless the customer is at that revision (If-Match).
	ExpectedRevision *uint64
	CorrelationID    string
	CausationID      string
}

// Result is what a command did.
type Result struct {
	Customer *Customer
	// Events are the events the command appended; for a replayed
	// idempotent command, the events the first attempt appended.
	Events []RecordedEvent
	// Replayed is true when an idempotency key matched an earlier command.
	Replayed bool
}

// Register opens a new customer's stream.
func (s *Service) Register(ctx context.Context, cmd RegisterCustomer, opts Options) (res Result, err error) {
	start := s.clock()
	defer func() { s.observe(cmd.CommandName(), start, res, err) }()
	caller := opts.Caller
	if cmd.Company == "" {
		cmd.Company = caller.Actor.Company
	}
	if cmd.Company != caller.Actor.Company && !caller.IsSuperuser() {
		return Result{}, &FieldError{Field: "company", Detail: "only a superuser may register a customer in another company", Err: ErrForbidden}
	}
	admitted, err := s.admit(ctx)
	if err != nil {
		return Result{}, err
	}
	defer admitted()
	name := cmd.Lifecycle
	if name == "" {
		name = s.lifecycles.Default()
	}
	l, err := s.lifecycles.Latest(name)
	if err != nil {
		return Result{}, &FieldError{Field: "lifecycle", Detail: err.Error(), Err: ErrUnknownLifecycle}
	}
	if err := cmd.Validate(s.clock()); err != nil {
		return Result{}, err
	}
	unlock := s.lockKey(caller, opts.IdempotencyKey)
	defer unlock()
	if prior, ok, err := s.replay(ctx, caller, opts.IdempotencyKey, ""); err != nil || ok {
		return prior, err
	}
	id, err := s.newEventID()
	if err != nil {
		return Result{}, fmt.Errorf("new customer id: %w", err)
	}
	cmd.CustomerID = id.String()
	if cmd.PublicID == "" {
		cmd.PublicID = newPublicID()
	}
	identity := ""
	if l.def.Identity != nil {
		identity = IdentityKey(cmd.Nationality, cmd.IDCardNumber)
	}
	if identity != "" {
		if cmd.PriorHolders, err = s.priorHolders(ctx, identity); err != nil {
			return Result{}, err
		}
	}
	d := Decision{Ctx: ctx, Caller: caller, Now: s.clock(), NewID: s.newID, Lifecycle: l, Customer: &Customer{}}
	events, err := cmd.Decide(d)
	if err != nil {
		return Result{}, err
	}
	if identity != "" {
		// The binding is written first: a binding whose customer never got
		// written is ignored on lookup, while a customer without a binding
		// could later be onboarded again after a rejection.
		bound := &IdentityBound{CustomerID: cmd.CustomerID, Lifecycle: l.Name()}
		if _, err := s.append(ctx, IdentityStream(identity), ExpectAny, []Event{bound}, Options{Caller: caller, CorrelationID: opts.CorrelationID, CausationID: opts.CausationID}); err != nil {
			return Result{}, fmt.Errorf("bind identity: %w", err)
		}
	}
	recorded, err := s.append(ctx, StreamName(cmd.CustomerID), ExpectNoStream, events, opts)
	if err != nil {
		if errors.Is(err, ErrConcurrencyConflict) {
			return Result{}, fmt.Errorf("%w: %s", ErrCustomerExists, cmd.CustomerID)
		}
		return Result{}, err
	}
	c := &Customer{}
	applyDecided(c, events, recorded)
	s.cache.put(c)
	return Result{Customer: c.Clone(), Events: recorded}, nil
}

// applyDecided folds the events a command just appended. It applies the
// decided values rather than decoding what was stored: the codec round trip
// is the identity (the property tests fold the stored log and compare).
func applyDecided(c *Customer, events []Event, recorded []RecordedEvent) {
	for i, e := range events {
		c.Apply(e, recorded[i])
	}
}

func (s *Service) priorHolders(ctx context.Context, identity string) ([]*Customer, error) {
	bindings, err := s.store.ReadStream(ctx, IdentityStream(identity), Forwards, 0, 0)
	if errors.Is(err, ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read identity bindings: %w", err)
	}
	var out []*Customer
	for _, b := range bindings {
		r, err := s.codec.DecodeRecorded(b)
		if err != nil {
			return nil, err
		}
		bound, ok := r.Event.(*IdentityBound)
		if !ok {
			continue
		}
		c, err := s.load(ctx, bound.CustomerID)
		if errors.Is(err, ErrCustomerNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// admit waits while the admission control holds commands back; before
// anything is loaded, so a held command decides on the state it finds after.
// done ends the command's admission; the caller defers it.
func (s *Service) admit(ctx context.Context) (done func(), err error) {
	if s.admission == nil {
		return func() {}, nil
	}
	done, err = s.admission.Admit(ctx)
	if err != nil {
		return nil, fmt.Errorf("command held back: %w", err)
	}
	return done, nil
}

// Execute runs a command on an existing customer: fold, decide, append with
// the expected revision, and on a conflict decide again on fresh state.
//
// The first decision is made on the cached customer without reading the
// store: the append's expected revision refuses it if another process (or
// a concurrent command) appended in between, so an append never rests on
// stale state, and the common case costs one round trip to the store
// instead of two. An answer that appends nothing (a refusal, a command with
// nothing to do, a revision mismatch) is only given on state brought up to
// date from the store, since nothing would check it.
func (s *Service) Execute(ctx context.Context, customerID string, cmd Command, opts Options) (res Result, err error) {
	start := s.clock()
	defer func() { s.observe(cmd.CommandName(), start, res, err) }()
	if _, perr := uuid.Parse(customerID); perr != nil {
		return Result{}, &FieldError{Field: "id", Detail: "is not a UUID", Err: ErrCustomerNotFound}
	}
	admitted, err := s.admit(ctx)
	if err != nil {
		return Result{}, err
	}
	defer admitted()
	unlock := s.lockKey(opts.Caller, opts.IdempotencyKey)
	defer unlock()
	if prior, ok, err := s.replay(ctx, opts.Caller, opts.IdempotencyKey, customerID); err != nil || ok {
		return prior, err
	}
	for attempt, first := 1, true; ; first = false {
		c, cached, err := s.current(ctx, opts.Caller, customerID, first)
		if err != nil {
			return Result{}, err
		}
		events, err := s.decide(ctx, c, cmd, opts)
		if cached && (err != nil || len(events) == 0) {
			continue
		}
		if err != nil {
			return Result{Customer: c}, err
		}
		if len(events) == 0 {
			return Result{Customer: c}, nil
		}
		recorded, err := s.append(ctx, StreamName(customerID), ExpectRevision(c.Revision), events, opts)
		if errors.Is(err, ErrConcurrencyConflict) {
			if s.observer != nil {
				s.observer.ConcurrencyConflict(cmd.CommandName())
			}
			// With If-Match the caller decided on a revision that is gone:
			// tell it, rather than deciding for it on newer state.
			if opts.ExpectedRevision != nil {
				return Result{}, fmt.Errorf("%w: %v", ErrRevisionMismatch, err)
			}
			if cached {
				// The cache was behind; reading on from it catches up.
				continue
			}
			s.cache.drop(customerID)
			if attempt < s.maxAttempts {
				attempt++
				continue
			}
			return Result{}, fmt.Errorf("gave up after %d attempts: %w", attempt, err)
		}
		if err != nil {
			return Result{}, err
		}
		applyDecided(c, events, recorded)
		// The cache keeps c; the caller gets its own copy.
		s.cache.put(c)
		return Result{Customer: c.Clone(), Events: recorded}, nil
	}
}

// current returns the customer a command decides on: with trustCache, the
// cached copy as it is when there is one (cached is then true); otherwise
// the customer brought up to date from the store.
func (s *Service) current(ctx context.Context, caller Caller, customerID string, trustCache bool) (c *Customer, cached bool, err error) {
	if trustCache {
		if c := s.cache.get(customerID); c != nil {
			return c, true, s.visible(caller, c)
		}
	}
	c, err = s.Get(ctx, caller, customerID)
	return c, false, err
}

// decide checks the caller's expected revision and runs the command's
// decision on c.
func (s *Service) decide(ctx context.Context, c *Customer, cmd Command, opts Options) ([]Event, error) {
	if opts.ExpectedRevision != nil && *opts.ExpectedRevision != c.Revision {
		return nil, fmt.Errorf("%w: customer is at revision %d, not %d", ErrRevisionMismatch, c.Revision, *opts.ExpectedRevision)
	}
	l, err := s.lifecycles.Get(c.Lifecycle, c.LifecycleVersion)
	if err != nil {
		return nil, err
	}
	return cmd.Decide(Decision{Ctx: ctx, Caller: opts.Caller, Now: s.clock(), NewID: s.newID, Lifecycle: l, Customer: c})
}

// Get returns the current state of a customer the caller may see; the result
// is the caller's to change.
func (s *Service) Get(ctx context.Context, caller Caller, customerID string) (*Customer, error) {
	c, err := s.load(ctx, customerID)
	if err != nil {
		return nil, err
	}
	if err := s.visible(caller, c); err != nil {
		return nil, err
	}
	return c, nil
}

// visible refuses a customer of another company to a caller who is not a
// superuser. A customer never changes company, so a cached copy answers
// as well as a fresh one.
func (s *Service) visible(caller Caller, c *Customer) error {
	if c.CompanyID != caller.Actor.Company && !caller.IsSuperuser() {
		// Another company's customer is reported as absent, so its
		// existence does not leak.
		return fmt.Errorf("%w: %s", ErrCustomerNotFound, c.ID)
	}
	return nil
}

// load returns the folded customer, from the cache brought up to date or
// from the stream. The returned value is the caller's to change.
func (s *Service) load(ctx context.Context, customerID string) (*Customer, error) {
	c := s.cache.get(customerID)
	from := uint64(0)
	if c != nil {
		from = c.Revision + 1
	} else {
		c = &Customer{}
	}
	events, err := s.store.ReadStream(ctx, StreamName(customerID), Forwards, from, 0)
	if errors.Is(err, ErrStreamNotFound) && from == 0 {
		return nil, fmt.Errorf("%w: %s", ErrCustomerNotFound, customerID)
	}
	if err != nil && !errors.Is(err, ErrStreamNotFound) {
		return nil, fmt.Errorf("load customer %s: %w", customerID, err)
	}
	if err := s.fold(c, events); err != nil {
		return nil, err
	}
	if !c.Exists() {
		return nil, fmt.Errorf("%w: %s", ErrCustomerNotFound, customerID)
	}
	if len(events) > 0 {
		s.cache.put(c.Clone())
	}
	return c, nil
}

func (s *Service) fold(c *Customer, events []RecordedEvent) error {
	for _, e := range events {
		r, err := s.codec.DecodeRecorded(e)
		if err != nil {
			return err
		}
		c.Apply(r.Event, e)
	}
	return nil
}

// Events returns a customer's stream with envelopes.
func (s *Service) Events(ctx context.Context, caller Caller, customerID string) ([]RecordedEvent, error) {
	return s.readVisible(ctx, caller, customerID)
}

// StateAt replays a customer's stream up to a revision or a time (whichever
// is given; neither means now). It reads the store, not the cache, so what
// an auditor sees is what the log says.
func (s *Service) StateAt(ctx context.Context, caller Caller, customerID string, revision *uint64, at *time.Time) (*Customer, error) {
	events, err := s.readVisible(ctx, caller, customerID)
	if err != nil {
		return nil, err
	}
	return ReplayState(s.codec, events, revision, at)
}

// readVisible reads a customer's whole stream once, for a caller who may see
// it. The registration, the stream's first event, names the company, which
// never changes.
func (s *Service) readVisible(ctx context.Context, caller Caller, customerID string) ([]RecordedEvent, error) {
	if _, err := uuid.Parse(customerID); err != nil {
		return nil, &FieldError{Field: "id", Detail: "is not a UUID", Err: ErrCustomerNotFound}
	}
	events, err := s.store.ReadStream(ctx, StreamName(customerID), Forwards, 0, 0)
	if errors.Is(err, ErrStreamNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrCustomerNotFound, customerID)
	}
	if err != nil {
		return nil, fmt.Errorf("read customer %s: %w", customerID, err)
	}
	first := uint64(0)
	registered, err := ReplayState(s.codec, events, &first, nil)
	if err != nil {
		return nil, err
	}
	if registered.CompanyID != caller.Actor.Company && !caller.IsSuperuser() {
		return nil, fmt.Errorf("%w: %s", ErrCustomerNotFound, customerID)
	}
	return events, nil
}

// ReplayState folds events up to a revision or a time.
func ReplayState(codec *Codec, events []RecordedEvent, revision *uint64, at *time.Time) (*Customer, error) {
	c := &Customer{}
	for _, e := range events {
		if revision != nil && e.Revision > *revision {
			break
		}
		if at != nil && e.RecordedAt.After(*at) {
			break
		}
		r, err := codec.DecodeRecorded(e)
		if err != nil {
			return nil, err
		}
		c.Apply(r.Event, e)
	}
	if !c.Exists() {
		return nil, fmt.Errorf("%w: nothing recorded by then", ErrCustomerNotFound)
	}
	return c, nil
}

func (s *Service) append(ctx context.Context, stream string, expected ExpectedRevision, events []Event, opts Options) ([]RecordedEvent, error) {
	now := s.clock().UTC()
	commandID, err := s.newEventID()
	if err != nil {
		return nil, err
	}
	correlation := opts.CorrelationID
	if correlation == "" {
		correlation = commandID.String()
	}
	causation := opts.CausationID
	if causation == "" {
		causation = commandID.String()
	}
	data := make([]EventData, len(events))
	for i, e := range events {
		typ, version, payload, personal, err := s.codec.Encode(e)
		if err != nil {
			return nil, err
		}
		id, err := s.newEventID()
		if err != nil {
			return nil, err
		}
		data[i] = EventData{
			ID: id, Type: typ, SchemaVersion: version, OccurredAt: now, Actor: opts.Caller.Actor,
			CorrelationID: correlation, CausationID: causation, IdempotencyKey: opts.IdempotencyKey,
			Data: payload, Personal: personal,
		}
	}
	res, err := s.store.Append(ctx, stream, expected, data)
	if err != nil {
		return nil, err
	}
	if len(res.Recorded) == len(data) {
		return res.Recorded, nil
	}
	first := res.LastRevision + 1 - uint64(len(data))
	// The store assigned positions and hashes but did not hand them back:
	// read what it holds so the caller sees exactly the stored envelopes.
	return s.store.ReadStream(ctx, stream, Forwards, first, len(data))
}

// replay answers a command whose idempotency key was used before by the same
// caller with the first command's result. customerID is the target of the
// command ("" for a registration): a key first used on another customer, or
// for a registration and now for a change (or the other way round), is
// refused rather than answered with an unrelated result.
func (s *Service) replay(ctx context.Context, caller Caller, key, customerID string) (Result, bool, error) {
	if key == "" {
		return Result{}, false, nil
	}
	found, err := s.idem.FindByIdempotencyKey(ctx, key)
	if err != nil {
		return Result{}, false, fmt.Errorf("idempotency lookup: %w", err)
	}
	var mine []RecordedEvent
	for _, e := range found {
		if e.Actor == caller.Actor {
			if _, ok := CustomerIDFromStream(e.Stream); ok {
				mine = append(mine, e)
			}
		}
	}
	if len(mine) == 0 {
		return Result{}, false, nil
	}
	firstWasRegistration := mine[0].Type == (CustomerRegistered{}).EventType()
	if customerID == "" && !firstWasRegistration || customerID != "" && (firstWasRegistration || mine[0].Stream != StreamName(customerID)) {
		return Result{}, false, &FieldError{Field: "Idempotency-Key", Detail: "this key answered a different request; use a new key for each request", Err: ErrIdempotencyKeyReused}
	}
	customerID, _ = CustomerIDFromStream(mine[0].Stream)
	events, err := s.store.ReadStream(ctx, mine[0].Stream, Forwards, 0, 0)
	if err != nil {
		return Result{}, false, err
	}
	last := mine[len(mine)-1].Revision
	c, err := ReplayState(s.codec, events, &last, nil)
	if err != nil {
		return Result{}, false, fmt.Errorf("replay idempotent result for %s: %w", customerID, err)
	}
	return Result{Customer: c, Events: mine, Replayed: true}, true, nil
}

// lockKey serialises commands that carry the same idempotency key, so two
// concurrent retries cannot both miss the lookup and both append.
func (s *Service) lockKey(caller Caller, key string) func() {
	if key == "" {
		return func() {}
	}
	h := fnv.New32a()
	h.Write([]byte(caller.Actor.Company + "\x00" + caller.Actor.ID + "\x00" + key))
	m := &s.keyLocks[h.Sum32()%uint32(len(s.keyLocks))]
	m.Lock()
	return m.Unlock
}

func (s *Service) newID() string {
	id, err := s.newEventID()
	if err != nil {
		// UUIDv7 generation fails only when the system's randomness does;
		// nothing sensible can continue then.
		panic(fmt.Sprintf("generate id: %v", err))
	}
	return id.String()
}

func (s *Service) observe(command string, start time.Time, res Result, err error) {
	if s.observer == nil {
		return
	}
	outcome := OutcomeOK
	switch {
	case err != nil && errors.Is(err, ErrConcurrencyConflict):
		outcome = OutcomeConflict
	case err != nil && IsRefusal(err):
		outcome = OutcomeRefused
	case err != nil:
		outcome = OutcomeError
	case res.Replayed:
		outcome = OutcomeReplayed
	case len(res.Events) == 0:
		outcome = OutcomeNoChange
	}
	s.observer.CommandFinished(command, outcome, s.clock().Sub(start))
}

var publicIDEncoding = base32.NewEncoding("0123456789ABCDEFGHJKMNPQRSTVWXYZ").WithPadding(base32.NoPadding)

// newPublicID makes a short id people can read out: 10 characters of
// Crockford base32, 50 random bits.
func newPublicID() string {
	var b [7]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("generate public id: %v", err))
	}
	return publicIDEncoding.EncodeToString(b[:])[:10]
}

// customerCache keeps recently used folded customers. Entries are private
// copies; a stale entry is harmless because appends check the revision.
type customerCache struct {
	mu   sync.Mutex
	max  int
	byID map[string]*Customer
}

func newCustomerCache(max int) *customerCache {
	return &customerCache{max: max, byID: make(map[string]*Customer)}
}

func (c *customerCache) get(id string) *Customer {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v := c.byID[id]; v != nil {
		return v.Clone()
	}
	return nil
}

func (c *customerCache) put(v *Customer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.byID) >= c.max {
		// Dropping an arbitrary entry is enough: a miss costs one stream read.
		for k := range c.byID {
			delete(c.byID, k)
			break
		}
	}
	c.byID[v.ID] = v
}

func (c *customerCache) drop(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.byID, id)
}
