package live

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/kycengine/kyc/domain"
)

// Kinds of message a socket receives. The page reacts to the kind; the event
// type is there for logs and for pages that want to be more selective.
const (
	KindSubscribed = "subscribed"
	// KindStepResults: the verification steps, documents or their review
	// changed; the page reloads the document list and the customer record.
	KindStepResults = "step_results"
	// KindAISummary: a new AI summary; the page reloads the customer record.
	KindAISummary = "ai_generated_summary"
	// KindStatusChanged: the lifecycle status moved.
	KindStatusChanged = "status_changed"
)

// kindOf says which pushed kind an event type is, or "" when the page does
// not refresh on it.
func kindOf(eventType string) string {
	switch eventType {
	case domain.StepResultRecorded{}.EventType(),
		domain.DocumentUploaded{}.EventType(),
		domain.ItemReviewed{}.EventType():
		return KindStepResults
	case domain.AISummaryGenerated{}.EventType():
		return KindAISummary
	case domain.StatusChanged{}.EventType():
		return KindStatusChanged
	}
	return ""
}

// Message is a push: which event of the customer happened. Data is the
// event's data part exactly as stored; the personal part is never included.
type Message struct {
	Type       string          `json:"type"`
	CustomerID string          `json:"customer_id"`
	EventID    string          `json:"event_id"`
	EventType  string          `json:"event_type"`
	Revision   uint64          `json:"revision"`
	OccurredAt time.Time       `json:"occurred_at"`
	Data       json.RawMessage `json:"data"`
}

// Subscribed is the first message on a socket. Once the page has it, every
// later change is pushed, so a page that reloads on it misses nothing that
// happened between its first load and the socket opening.
type Subscribed struct {
	Type       string    `json:"type"`
	CustomerID string    `json:"customer_id"`
	ExpiresAt  time.Time `json:"expires_at"`
}

// EventSource is the part of domain.EventStore the hub reads.
type EventSource interface {
	ReadAll(ctx context.Context, after domain.Position, limit int) ([]domain.RecordedEvent, error)
	SubscribeAll(ctx context.Context, after domain.Position, handle func(context.Context, domain.RecordedEvent) error) error
}

// Tailer is implemented by stores that know the position of their last
// event without reading the log; the hub then starts there at once instead
// of paging through everything stored.
type Tailer interface {
	Tail(ctx context.Context) (domain.Position, error)
}

// errHubStopped is returned for subscriptions after Run has returned: no
// more pushes would come, so the socket is refused rather than left silent.
var errHubStopped = errors.New("live: hub stopped")

const (
	tailPage   = 4096
	minBackoff = 100 * time.Millisecond
	maxBackoff = 30 * time.Second
)

// Hub follows the global log once for the whole process and fans each
// customer's events out to the sockets open on that customer, so the number
// of open pages does not multiply the load on the store.
type Hub struct {
	store   EventSource
	log     *slog.Logger
	running atomic.Bool
	// following is closed once Run knows the tail of the log: from then on
	// every new event reaches dispatch, so a socket may promise its page
	// that nothing later is missed.
	following chan struct{}

	mu      sync.Mutex
	stopped bool
	subs    map[string]map[*subscriber]struct{} // customer id -> sockets
}

// subscriber is one socket's queue. The hub never blocks on it: when send is
// full the hub drops the subscriber, and the socket closes itself with the
// code and reason the hub left.
type subscriber struct {
	customerID string
	send       chan []byte

	once   sync.Once
	gone   chan struct{} // closed by drop; code and reason are set before
	code   websocket.StatusCode
	reason string
}

func (s *subscriber) drop(code websocket.StatusCode, reason string) {
	s.once.Do(func() {
		s.code, s.reason = code, reason
		close(s.gone)
	})
}

// NewHub returns a hub reading store. log may be nil to discard logs.
func NewHub(store EventSource, log *slog.Logger) (*Hub, error) {
	if store == nil {
		return nil, errors.New("live: hub needs an event source")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Hub{store: store, log: log, following: make(chan struct{}), subs: map[string]map[*subscriber]struct{}{}}, nil
}

// Run follows the log from its current tail until ctx ends, then closes every
// socket with "going away" and returns nil. Events already stored when Run
// starts are not pushed: a page only needs to hear of what changes after it
// loaded. Store errors are logged and retried with back-off, resuming after
// the last event pushed, because a page that stops hearing about changes is
// worse than a late one. Run may be called once.
func (h *Hub) Run(ctx context.Context) error {
	if !h.running.CompareAndSwap(false, true) {
		return errors.New("live: hub is already running")
	}
	defer h.stop()

	from := domain.Start
	if !h.retry(ctx, "finding the tail of the event log", func() (bool, error) {
		if t, ok := h.store.(Tailer); ok {
			pos, err := t.Tail(ctx)
			from = pos
			return false, err
		}
		for {
			page, err := h.store.ReadAll(ctx, from, tailPage)
			if err != nil {
				return false, fmt.Errorf("read all after %s: %w", from, err)
			}
			if len(page) == 0 {
				return false, nil
			}
			from = page[len(page)-1].Position
		}
	}) {
		return nil
	}
	h.log.Debug("live: following the event log", "from", from.String())
	close(h.following)

	h.retry(ctx, "following the event log", func() (bool, error) {
		progressed := false
		err := h.store.SubscribeAll(ctx, from, func(_ context.Context, e domain.RecordedEvent) error {
			h.dispatch(e)
			from, progressed = e.Position, true
			return nil
		})
		if err == nil {
			err = errors.New("subscription ended")
		}
		return progressed, fmt.Errorf("subscribe after %s: %w", from, err)
	})
	return nil
}

// retry runs f until it returns a nil error or ctx ends, sleeping with
// exponential back-off in between; progress resets the back-off. It reports
// whether f succeeded.
func (h *Hub) retry(ctx context.Context, what string, f func() (progressed bool, err error)) bool {
	backoff := minBackoff
	for {
		progressed, err := f()
		if ctx.Err() != nil {
			return false
		}
		if err == nil {
			return true
		}
		if progressed {
			backoff = minBackoff
		}
		h.log.Error("live: "+what+" failed; retrying", "err", err, "retry_in", backoff.String())
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// dispatch queues e on every socket of its customer, without waiting for any.
func (h *Hub) dispatch(e domain.RecordedEvent) {
	customerID, ok := domain.CustomerIDFromStream(e.Stream)
	if !ok {
		return
	}
	kind := kindOf(e.Type)
	if kind == "" {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	subs := h.subs[customerID]
	if len(subs) == 0 {
		return
	}
	msg, err := json.Marshal(Message{
		Type: kind, CustomerID: customerID, EventID: e.ID.String(), EventType: e.Type,
		Revision: e.Revision, OccurredAt: e.OccurredAt, Data: e.Data,
	})
	if err != nil {
		// Only a stored data part that is not JSON gets here; the page
		// would not know what to do with it either.
		h.log.Error("live: cannot encode event", "event_id", e.ID.String(), "stream", e.Stream, "err", err)
		return
	}
	for s := range subs {
		select {
		case s.send <- msg:
		default:
			delete(subs, s)
			s.drop(websocket.StatusPolicyViolation, "too slow: missed updates; reload and reconnect")
			h.log.Warn("live: closing a socket that fell behind", "customer_id", customerID, "buffer", cap(s.send))
		}
	}
	if len(subs) == 0 {
		delete(h.subs, customerID)
	}
}

func (h *Hub) subscribe(customerID string, buffer int) (*subscriber, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped {
		return nil, errHubStopped
	}
	s := &subscriber{customerID: customerID, send: make(chan []byte, buffer), gone: make(chan struct{})}
	if h.subs[customerID] == nil {
		h.subs[customerID] = map[*subscriber]struct{}{}
	}
	h.subs[customerID][s] = struct{}{}
	return s, nil
}

func (h *Hub) unsubscribe(s *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if subs := h.subs[s.customerID]; subs != nil {
		delete(subs, s)
		if len(subs) == 0 {
			delete(h.subs, s.customerID)
		}
	}
}

func (h *Hub) isStopped() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stopped
}

// stop closes every socket: hijacked connections outlive http.Server's
// Shutdown, so without this they would stay open and silent.
func (h *Hub) stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopped = true
	for _, subs := range h.subs {
		for s := range subs {
			s.drop(websocket.StatusGoingAway, "server shutting down; reconnect")
		}
	}
	clear(h.subs)
}
