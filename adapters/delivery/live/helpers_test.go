package live_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/kycengine/kyc/adapters/delivery/live"
	"github.com/kycengine/kyc/adapters/eventstore/memory"
	"github.com/kycengine/kyc/domain"
)

var (
	testSecret  = []byte("0123456789abcdef0123456789abcdef")
	testActor   = domain.Actor{Kind: domain.ActorOperator, ID: "op-1", Company: "acme"}
	wsTestRoute = "/v1/ws"
)

// clock is an injectable clock tests move by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock {
	return &clock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// env is a running hub over a memory store, served by an httptest server.
type env struct {
	store  *memory.Store
	hub    *live.Hub
	tokens *live.Tokens
	srv    *httptest.Server
	codec  *domain.Codec
	stop   context.CancelFunc // stops the hub
	done   chan struct{}      // closed when Run returned
}

type envConfig struct {
	ttl   time.Duration
	now   func() time.Time
	opts  live.SocketOptions
	log   *slog.Logger
	store live.EventSource // memory store when nil
}

func newEnv(tb testing.TB, cfg envConfig) *env {
	tb.Helper()
	if cfg.ttl == 0 {
		cfg.ttl = time.Hour
	}
	e := &env{store: memory.New(), codec: domain.NewCodec(), done: make(chan struct{})}
	src := cfg.store
	if src == nil {
		src = e.store
	}
	var err error
	if e.hub, err = live.NewHub(src, cfg.log); err != nil {
		tb.Fatal(err)
	}
	if e.tokens, err = live.NewTokens(testSecret, cfg.ttl, cfg.now); err != nil {
		tb.Fatal(err)
	}
	socket, err := live.NewSocket(e.hub, e.tokens, cfg.opts)
	if err != nil {
		tb.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+wsTestRoute, socket)
	e.srv = httptest.NewServer(mux)
	ctx, cancel := context.WithCancel(context.Background())
	e.stop = cancel
	go func() {
		defer close(e.done)
		if err := e.hub.Run(ctx); err != nil {
			tb.Errorf("hub.Run: %v", err)
		}
	}()
	tb.Cleanup(func() {
		cancel()
		<-e.done
		e.srv.Close()
	})
	return e
}

func (e *env) token(tb testing.TB, customerID string) string {
	tb.Helper()
	tok, _, err := e.tokens.Issue(customerID, testActor)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

func (e *env) wsURL(query url.Values) string {
	return "ws" + strings.TrimPrefix(e.srv.URL, "http") + wsTestRoute + "?" + query.Encode()
}

// dial opens a socket for customerID and reads the subscribed message.
func (e *env) dial(tb testing.TB, customerID string, opts *websocket.DialOptions) *websocket.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, e.wsURL(url.Values{"token": {e.token(tb, customerID)}}), opts)
	if err != nil {
		tb.Fatalf("dial: %v", err)
	}
	tb.Cleanup(func() { c.CloseNow() })
	c.SetReadLimit(1 << 20)
	var hello live.Subscribed
	readJSON(tb, c, &hello)
	if hello.Type != live.KindSubscribed || hello.CustomerID != customerID || hello.ExpiresAt.IsZero() {
		tb.Fatalf("first message = %+v, want subscribed to %s", hello, customerID)
	}
	return c
}

func readJSON(tb testing.TB, c *websocket.Conn, v any) []byte {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, b, err := c.Read(ctx)
	if err != nil {
		tb.Fatalf("read: %v", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		tb.Fatalf("decode %s: %v", b, err)
	}
	return b
}

// eventData encodes ev with the real codec, as the service would.
func (e *env) eventData(tb testing.TB, ev domain.Event) domain.EventData {
	tb.Helper()
	typ, version, data, personal, err := e.codec.Encode(ev)
	if err != nil {
		tb.Fatal(err)
	}
	return domain.EventData{ID: uuid.New(), Type: typ, SchemaVersion: version, OccurredAt: time.Now().UTC().Truncate(time.Millisecond),
		Actor: testActor, Data: data, Personal: personal}
}

func (e *env) append(tb testing.TB, stream string, d domain.EventData) domain.RecordedEvent {
	tb.Helper()
	res, err := e.store.Append(context.Background(), stream, domain.ExpectAny, []domain.EventData{d})
	if err != nil {
		tb.Fatal(err)
	}
	return res.Recorded[0]
}

// logTap is a slog handler that hands each record's message to a channel.
type logTap struct{ msgs chan string }

func (t logTap) Enabled(context.Context, slog.Level) bool { return true }
func (t logTap) Handle(_ context.Context, r slog.Record) error {
	select {
	case t.msgs <- r.Message:
	default:
	}
	return nil
}
func (t logTap) WithAttrs([]slog.Attr) slog.Handler { return t }
func (t logTap) WithGroup(string) slog.Handler      { return t }
