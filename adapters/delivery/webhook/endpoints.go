package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

var (
	// ErrNotFound: no such endpoint or delivery in the caller's scope
	// (another company's are reported as absent, so they do not leak).
	ErrNotFound = errors.New("webhook: not found")
	// ErrInvalid: the input was refused; a *ValidationError names the
	// fields.
	ErrInvalid = errors.New("webhook: invalid input")
	// ErrPending: a replay of a delivery that is still being tried.
	ErrPending = errors.New("webhook: delivery is still pending")
	// ErrStopped: Run ended because the bus subscription did.
	ErrStopped = errors.New("webhook: the bus subscription ended")
)

// FieldError is one refused input.
type FieldError struct {
	Field  string
	Detail string
}

// ValidationError lists every refused input of a request; it is ErrInvalid.
type ValidationError struct {
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Detail
	}
	return "webhook: invalid input: " + strings.Join(parts, "; ")
}

func (e *ValidationError) Unwrap() error { return ErrInvalid }

func (e *ValidationError) add(field, format string, args ...any) {
	e.Fields = append(e.Fields, FieldError{Field: field, Detail: fmt.Sprintf(format, args...)})
}

func (e *ValidationError) orNil() error {
	if len(e.Fields) == 0 {
		return nil
	}
	return e
}

// AllCompanies is the company of an endpoint that receives the events of
// every company's customers (registered by a superuser).
const AllCompanies = "*"

// Delivery statuses.
const (
	StatusPending   = "pending"
	StatusDelivered = "delivered"
	StatusDead      = "dead"
)

// Scope is what a caller may see and manage: one company's endpoints and
// their deliveries, or everything. The zero Scope sees nothing, so a
// forgotten scope fails closed.
type Scope struct {
	company string
	all     bool
}

// CompanyScope is the scope of a caller of one company.
func CompanyScope(company string) Scope { return Scope{company: company} }

// Everything is the scope of a superuser.
func Everything() Scope { return Scope{all: true} }

func (s Scope) sees(company string) bool {
	return s.all || (s.company != "" && s.company == company)
}

// EndpointInput registers an endpoint.
type EndpointInput struct {
	// Company whose customers' events the endpoint gets, or AllCompanies.
	// The caller decides who may name which (the HTTP API: a superuser any,
	// others only their own).
	Company string
	// URL receives the POSTs: absolute http or https.
	URL string
	// Types are the domain event types sent (e.g. "StatusChanged"); none
	// means every type.
	Types       []string
	Description string
}

// Endpoint is a registered receiver. Secrets lists the signing secrets'
// metadata; their values are shown only when created.
type Endpoint struct {
	ID          string       `json:"id"`
	Company     string       `json:"company"`
	URL         string       `json:"url"`
	Types       []string     `json:"types"`
	Description string       `json:"description"`
	CreatedAt   time.Time    `json:"created_at"`
	Secrets     []SecretInfo `json:"secrets"`
}

// SecretInfo describes a signing secret. A secret with ExpiresAt in the
// past no longer signs.
type SecretInfo struct {
	ID        string     `json:"id"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// Delivery is one event on its way to one endpoint.
type Delivery struct {
	// ID is also the webhook-id header, the same on every attempt, so
	// receivers deduplicate on it.
	ID         string `json:"id"`
	EndpointID string `json:"endpoint_id"`
	EventID    string `json:"event_id"`
	EventType  string `json:"event_type"`
	CustomerID string `json:"customer_id"`
	// Company is the customer's company.
	Company string `json:"company"`
	Status  string `json:"status"`
	// Attempts counts requests; Rounds counts the scheduled rounds they
	// were made in (see Schedule).
	Attempts int `json:"attempts"`
	Rounds   int `json:"rounds"`
	// Replays counts the times an operator sent the delivery again.
	Replays       int        `json:"replays"`
	LastError     string     `json:"last_error,omitempty"`
	LastStatus    *int       `json:"last_status,omitempty"`
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
	DeliveredAt   *time.Time `json:"delivered_at,omitempty"`
	DeadAt        *time.Time `json:"dead_at,omitempty"`
	ReplayedAt    *time.Time `json:"replayed_at,omitempty"`
}

// Attempt is one request of a delivery.
type Attempt struct {
	Number int       `json:"attempt"`
	At     time.Time `json:"at"`
	// Status is the HTTP status answered; nil when there was no answer
	// (refused connection, timeout).
	Status   *int          `json:"status,omitempty"`
	Error    string        `json:"error,omitempty"`
	Duration time.Duration `json:"-"`
}

// DeliveryFilter selects one page of an endpoint's deliveries, newest
// first.
type DeliveryFilter struct {
	EndpointID string
	// Status is "" (all), StatusPending, StatusDelivered or StatusDead (the
	// dead-letter list).
	Status string
	// Page counts from 1; PerPage is at most MaxPerPage (zero values mean
	// 1 and DefaultPerPage).
	Page, PerPage int
}

// Page sizes of ListDeliveries.
const (
	DefaultPerPage = 20
	MaxPerPage     = 100
)

const (
	maxURLLen         = 2048
	maxDescriptionLen = 500
	maxTypes          = 100
)

var typeName = regexp.MustCompile(`^[A-Z][A-Za-z0-9]{0,63}$`)

func (s *Service) validate(in EndpointInput) error {
	var verr ValidationError
	switch {
	case in.Company == "":
		verr.add("company", "is required")
	case len(in.Company) > 128:
		verr.add("company", "is longer than 128 characters")
	}
	u, err := url.Parse(in.URL)
	switch {
	case in.URL == "":
		verr.add("url", "is required")
	case len(in.URL) > maxURLLen:
		verr.add("url", "is longer than %d characters", maxURLLen)
	case err != nil:
		verr.add("url", "is not a URL: %v", err)
	case u.Scheme != "http" && u.Scheme != "https":
		verr.add("url", "must be an absolute http or https URL")
	case u.Host == "":
		verr.add("url", "has no host")
	case u.User != nil:
		verr.add("url", "must not carry credentials; authenticate the requests by their signature")
	case u.Fragment != "":
		verr.add("url", "must not have a fragment")
	}
	if len(in.Types) > maxTypes {
		verr.add("types", "has more than %d entries", maxTypes)
	}
	for i, t := range in.Types {
		field := fmt.Sprintf("types[%d]", i)
		switch {
		case !typeName.MatchString(t):
			verr.add(field, "%q is not an event type name", t)
		case s.cfg.EventTypes != nil && !slices.Contains(s.cfg.EventTypes, t):
			verr.add(field, "%q is not an event type of this engine", t)
		case slices.Index(in.Types, t) < i:
			verr.add(field, "%q is listed twice", t)
		}
	}
	if len(in.Description) > maxDescriptionLen {
		verr.add("description", "is longer than %d characters", maxDescriptionLen)
	}
	return verr.orNil()
}

// CreateEndpoint registers an endpoint with a first secret, returned in
// the Standard Webhooks format ("whsec_..."): the only time it is shown.
func (s *Service) CreateEndpoint(ctx context.Context, in EndpointInput) (Endpoint, string, error) {
	in.URL = strings.TrimSpace(in.URL)
	if err := s.validate(in); err != nil {
		return Endpoint{}, "", err
	}
	key, err := newSecret()
	if err != nil {
		return Endpoint{}, "", err
	}
	now := msec(s.cfg.Clock())
	types := slices.Clone(in.Types)
	if types == nil {
		types = []string{}
	}
	endpointID, err := newID()
	if err != nil {
		return Endpoint{}, "", err
	}
	secretID, err := newID()
	if err != nil {
		return Endpoint{}, "", err
	}
	e := Endpoint{ID: endpointID, Company: in.Company, URL: in.URL, Types: types, Description: in.Description, CreatedAt: now,
		Secrets: []SecretInfo{{ID: secretID, CreatedAt: now}}}
	if err := s.store.insertEndpoint(ctx, e, key); err != nil {
		return Endpoint{}, "", fmt.Errorf("webhook: create endpoint: %w", err)
	}
	s.routes.forgetEndpoints()
	return e, FormatSecret(key), nil
}

// ListEndpoints lists the endpoints in scope, oldest first.
func (s *Service) ListEndpoints(ctx context.Context, scope Scope) ([]Endpoint, error) {
	if !scope.all && scope.company == "" {
		return []Endpoint{}, nil
	}
	es, err := s.store.endpoints(ctx, scope)
	if err != nil {
		return nil, fmt.Errorf("webhook: list endpoints: %w", err)
	}
	if es == nil {
		es = []Endpoint{}
	}
	return es, nil
}

// GetEndpoint reads an endpoint in scope.
func (s *Service) GetEndpoint(ctx context.Context, scope Scope, id string) (Endpoint, error) {
	if _, err := uuid.Parse(id); err != nil {
		return Endpoint{}, fmt.Errorf("%w: endpoint %s", ErrNotFound, id)
	}
	e, err := s.store.endpoint(ctx, id)
	if errors.Is(err, ErrNotFound) || (err == nil && !scope.sees(e.Company)) {
		return Endpoint{}, fmt.Errorf("%w: endpoint %s", ErrNotFound, id)
	}
	if err != nil {
		return Endpoint{}, fmt.Errorf("webhook: read endpoint %s: %w", id, err)
	}
	return e, nil
}

// DeleteEndpoint removes an endpoint with its secrets and its deliveries,
// pending ones included: nothing more is sent to it.
func (s *Service) DeleteEndpoint(ctx context.Context, scope Scope, id string) error {
	if _, err := s.GetEndpoint(ctx, scope, id); err != nil {
		return err
	}
	if err := s.store.deleteEndpoint(ctx, id); err != nil {
		return fmt.Errorf("webhook: delete endpoint %s: %w", id, err)
	}
	s.routes.forgetEndpoints()
	return nil
}

// newID names an endpoint or a secret. UUIDv7s drawn in one process grow,
// so rows made within one millisecond (all that created_at keeps) still
// list in the order they were made: lists sort by (created_at, id), and
// the newest secret is the last.
func newID() (string, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return "", fmt.Errorf("webhook: draw an id: %w", err)
	}
	return id.String(), nil
}

// RotateSecret adds a secret to an endpoint and returns it (the only time
// it is shown) with the endpoint as it is now. The secrets that were
// active keep signing for Config.RotationOverlap, so the receiver can
// switch to the new one without missing a delivery: meanwhile every
// delivery carries a signature per active secret.
func (s *Service) RotateSecret(ctx context.Context, scope Scope, id string) (Endpoint, string, error) {
	if _, err := s.GetEndpoint(ctx, scope, id); err != nil {
		return Endpoint{}, "", err
	}
	key, err := newSecret()
	if err != nil {
		return Endpoint{}, "", err
	}
	secretID, err := newID()
	if err != nil {
		return Endpoint{}, "", err
	}
	now := msec(s.cfg.Clock())
	sec := SecretInfo{ID: secretID, CreatedAt: now}
	if err := s.store.rotate(ctx, id, sec, key, now, now.Add(s.cfg.RotationOverlap)); err != nil {
		return Endpoint{}, "", fmt.Errorf("webhook: rotate the secret of %s: %w", id, err)
	}
	e, err := s.GetEndpoint(ctx, scope, id)
	if err != nil {
		return Endpoint{}, "", err
	}
	return e, FormatSecret(key), nil
}

// ListDeliveries returns one page of an endpoint's deliveries, newest
// first, and how many match on all pages.
func (s *Service) ListDeliveries(ctx context.Context, scope Scope, f DeliveryFilter) ([]Delivery, int, error) {
	var verr ValidationError
	switch f.Status {
	case "", StatusPending, StatusDelivered, StatusDead:
	default:
		verr.add("status", "%q is not pending, delivered or dead", f.Status)
	}
	if f.Page == 0 {
		f.Page = 1
	}
	if f.PerPage == 0 {
		f.PerPage = DefaultPerPage
	}
	if f.Page < 1 || f.Page > 1_000_000 {
		verr.add("page", "must be between 1 and 1000000")
	}
	if f.PerPage < 1 || f.PerPage > MaxPerPage {
		verr.add("per_page", "must be between 1 and %d", MaxPerPage)
	}
	if err := verr.orNil(); err != nil {
		return nil, 0, err
	}
	if _, err := s.GetEndpoint(ctx, scope, f.EndpointID); err != nil {
		return nil, 0, err
	}
	ds, total, err := s.store.deliveries(ctx, f)
	if err != nil {
		return nil, 0, fmt.Errorf("webhook: list deliveries of %s: %w", f.EndpointID, err)
	}
	return ds, total, nil
}

// GetDelivery reads a delivery in scope (the scope of its endpoint), with
// the payload it POSTs.
func (s *Service) GetDelivery(ctx context.Context, scope Scope, id string) (Delivery, []byte, error) {
	if _, err := uuid.Parse(id); err != nil {
		return Delivery{}, nil, fmt.Errorf("%w: delivery %s", ErrNotFound, id)
	}
	d, company, payload, err := s.store.delivery(ctx, id)
	if errors.Is(err, ErrNotFound) || (err == nil && !scope.sees(company)) {
		return Delivery{}, nil, fmt.Errorf("%w: delivery %s", ErrNotFound, id)
	}
	if err != nil {
		return Delivery{}, nil, fmt.Errorf("webhook: read delivery %s: %w", id, err)
	}
	return d, payload, nil
}

// Attempts lists a delivery's requests in order.
func (s *Service) Attempts(ctx context.Context, scope Scope, deliveryID string) ([]Attempt, error) {
	if _, _, err := s.GetDelivery(ctx, scope, deliveryID); err != nil {
		return nil, err
	}
	as, err := s.store.attempts(ctx, deliveryID)
	if err != nil {
		return nil, fmt.Errorf("webhook: attempts of %s: %w", deliveryID, err)
	}
	return as, nil
}

// Replay sends a dead or delivered delivery again: it becomes pending, due
// now, with a full schedule of rounds; its attempts are kept and counted
// on, and Replays and ReplayedAt record the replay. A pending delivery is
// refused with ErrPending.
func (s *Service) Replay(ctx context.Context, scope Scope, id string) (Delivery, error) {
	if _, _, err := s.GetDelivery(ctx, scope, id); err != nil {
		return Delivery{}, err
	}
	ok, err := s.store.replay(ctx, id, msec(s.cfg.Clock()))
	if err != nil {
		return Delivery{}, fmt.Errorf("webhook: replay %s: %w", id, err)
	}
	if !ok {
		return Delivery{}, fmt.Errorf("%w: %s", ErrPending, id)
	}
	s.poke()
	d, _, err := s.GetDelivery(ctx, scope, id)
	return d, err
}
