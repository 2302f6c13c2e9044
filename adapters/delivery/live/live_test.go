package live_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/kycengine/kyc/adapters/delivery/live"
	"github.com/kycengine/kyc/adapters/eventstore/memory"
	"github.com/kycengine/kyc/domain"
)

func TestConstructorsValidate(t *testing.T) {
	if _, err := live.NewHub(nil, nil); err == nil {
		t.Error("NewHub accepted a nil source")
	}
	hub, err := live.NewHub(memory.New(), nil)
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := live.NewTokens(testSecret, time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		hub    *live.Hub
		tokens *live.Tokens
		opts   live.SocketOptions
	}{
		{"NoHub", nil, tokens, live.SocketOptions{}},
		{"NoTokens", hub, nil, live.SocketOptions{}},
		{"NegativeBuffer", hub, tokens, live.SocketOptions{Buffer: -1}},
		{"NegativePing", hub, tokens, live.SocketOptions{PingInterval: -time.Second}},
		{"NegativeWriteTimeout", hub, tokens, live.SocketOptions{WriteTimeout: -time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := live.NewSocket(tc.hub, tc.tokens, tc.opts); err == nil {
				t.Fatal("NewSocket accepted it")
			}
		})
	}
}

// upgradeGET sends a well-formed WebSocket handshake as a plain request, so
// the test sees exactly what the server answered.
func upgradeGET(t *testing.T, rawURL string, header http.Header) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, strings.Replace(rawURL, "ws", "http", 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestRefusedTokensDoNotUpgrade(t *testing.T) {
	clk := newClock()
	e := newEnv(t, envConfig{ttl: time.Minute, now: clk.Now})
	customer := uuid.NewString()
	valid := e.token(t, customer)
	otherTokens, err := live.NewTokens([]byte("another secret that is long enough!!"), time.Minute, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	otherSecret, _, err := otherTokens.Issue(customer, testActor)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(valid, ".")
	forged := parts[0] + "." + parts[1] + "." + strings.ToUpper(parts[2][:1]) + strings.ToLower(parts[2][1:])

	cases := []struct {
		name    string
		query   url.Values
		advance time.Duration
		kind    string
	}{
		{"Missing", url.Values{}, 0, "socket-token-missing"},
		{"Empty", url.Values{"token": {""}}, 0, "socket-token-missing"},
		{"Forged", url.Values{"token": {forged}}, 0, "socket-token-invalid"},
		{"OtherSecret", url.Values{"token": {otherSecret}}, 0, "socket-token-invalid"},
		{"Malformed", url.Values{"token": {"garbage"}}, 0, "socket-token-invalid"},
		{"OtherCustomer", url.Values{"token": {valid}, "customer_id": {uuid.NewString()}}, 0, "socket-token-other-customer"},
		{"Expired", url.Values{"token": {valid}}, 2 * time.Minute, "socket-token-expired"},
	}
	// Run in order: the expired case moves the shared clock.
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clk.Advance(tc.advance)
			u := e.wsURL(tc.query)

			resp := upgradeGET(t, u, nil)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status = %d, want 401", resp.StatusCode)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type = %q", ct)
			}
			if resp.Header.Get("Upgrade") != "" || resp.Header.Get("Sec-WebSocket-Accept") != "" {
				t.Errorf("refused request got upgrade headers: %v", resp.Header)
			}
			if resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			var p struct {
				Type, Title, Detail string
				Status              int
			}
			if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
				t.Fatal(err)
			}
			if p.Status != 401 || !strings.HasSuffix(p.Type, "/"+tc.kind) || p.Title == "" || p.Detail == "" {
				t.Errorf("problem = %+v, want status 401 and type .../%s", p, tc.kind)
			}

			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, dresp, err := websocket.Dial(ctx, u, nil)
			if err == nil {
				c.CloseNow()
				t.Fatal("websocket.Dial succeeded")
			}
			if dresp == nil || dresp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("dial response = %v, err %v; want 401", dresp, err)
			}
		})
	}
}

func TestMatchingCustomerIDIsAccepted(t *testing.T) {
	e := newEnv(t, envConfig{})
	customer := uuid.NewString()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, e.wsURL(url.Values{"token": {e.token(t, customer)}, "customer_id": {customer}}), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	var hello live.Subscribed
	readJSON(t, c, &hello)
	if hello.CustomerID != customer {
		t.Fatalf("subscribed = %+v", hello)
	}
}

func TestOrigin(t *testing.T) {
	customer := uuid.NewString()
	t.Run("ForeignOriginRefusedByDefault", func(t *testing.T) {
		e := newEnv(t, envConfig{})
		resp := upgradeGET(t, e.wsURL(url.Values{"token": {e.token(t, customer)}}), http.Header{"Origin": {"https://evil.example"}})
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("status = %d, want 403", resp.StatusCode)
		}
	})
	t.Run("AllowedPattern", func(t *testing.T) {
		e := newEnv(t, envConfig{opts: live.SocketOptions{OriginPatterns: []string{"app.example"}}})
		e.dial(t, customer, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://app.example"}}})
	})
}

// TestPushesOnlyTheCustomersEvents is the seed 001 flow end to end: two open
// profile pages, events for both customers, each page hears exactly its own
// customer's step results, summaries and status changes, in order.
func TestPushesOnlyTheCustomersEvents(t *testing.T) {
	e := newEnv(t, envConfig{})
	a, b := uuid.NewString(), uuid.NewString()
	sockA, sockB := e.dial(t, a, nil), e.dial(t, b, nil)

	docNumber := "X-SECRET-4711"
	doc := domain.DocumentUploaded{DocumentID: "doc-1", Type: "passport", Country: "EE"}
	doc.Personal = &domain.PersonalData{DocumentNumber: &docNumber}
	steps := []struct {
		event domain.Event
		kind  string // "" when not pushed
	}{
		{domain.StatusChanged{From: "new", To: "in_review", Transition: "submit"}, live.KindStatusChanged},
		{domain.StepResultRecorded{Step: "liveness", Result: "passed", Details: json.RawMessage(`{"score":0.98}`)}, live.KindStepResults},
		{domain.NoteAdded{NoteID: "n1", Text: "called the customer"}, ""},
		{doc, live.KindStepResults},
		{domain.ItemReviewed{CheckID: "chk-1", Item: "document:doc-1", Decision: "approved"}, live.KindStepResults},
		{domain.ProfileUpdated{Fields: []string{"language"}}, ""},
		{domain.AISummaryGenerated{Summary: "low risk", Model: "m1"}, live.KindAISummary},
	}
	var worst time.Duration
	for i, step := range steps {
		for _, c := range []struct {
			customer string
			sock     *websocket.Conn
		}{{a, sockA}, {b, sockB}} {
			// Something that is no customer's must not reach anyone.
			e.append(t, domain.IdentityStream("passport:"+uuid.NewString()),
				e.eventData(t, domain.IdentityBound{CustomerID: c.customer, Lifecycle: "default"}))
			start := time.Now()
			rec := e.append(t, domain.StreamName(c.customer), e.eventData(t, step.event))
			if rec.Revision != uint64(i) {
				t.Fatalf("revision = %d, want %d", rec.Revision, i)
			}
			if step.kind == "" {
				continue
			}
			var m live.Message
			raw := readJSON(t, c.sock, &m)
			latency := time.Since(start)
			worst = max(worst, latency)
			want := live.Message{Type: step.kind, CustomerID: c.customer, EventID: rec.ID.String(), EventType: rec.Type,
				Revision: rec.Revision, OccurredAt: rec.OccurredAt, Data: rec.Data}
			if m.Type != want.Type || m.CustomerID != want.CustomerID || m.EventID != want.EventID ||
				m.EventType != want.EventType || m.Revision != want.Revision || !m.OccurredAt.Equal(want.OccurredAt) ||
				!jsonEqual(t, m.Data, want.Data) {
				t.Fatalf("customer %s step %d: got %s\nwant %+v", c.customer, i, raw, want)
			}
			if bytes.Contains(raw, []byte("personal")) || bytes.Contains(raw, []byte(docNumber)) {
				t.Fatalf("push carries the personal part: %s", raw)
			}
		}
	}
	if worst >= time.Second {
		t.Fatalf("worst append-to-receive latency %s, want under 1s", worst)
	} else {
		t.Logf("worst append-to-receive latency %s", worst)
	}

	// A last status change on each: the next message each socket reads must
	// be its own, proving nothing else (NoteAdded, ProfileUpdated, the other
	// customer's events) was pushed in between.
	for _, c := range []struct {
		customer string
		sock     *websocket.Conn
	}{{a, sockA}, {b, sockB}} {
		rec := e.append(t, domain.StreamName(c.customer), e.eventData(t, domain.StatusChanged{From: "in_review", To: "approved", Transition: "approve"}))
		var m live.Message
		raw := readJSON(t, c.sock, &m)
		if m.EventID != rec.ID.String() || m.CustomerID != c.customer {
			t.Fatalf("customer %s: next message %s, want the final status change %s", c.customer, raw, rec.ID)
		}
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	xs, _ := json.Marshal(x)
	ys, _ := json.Marshal(y)
	return bytes.Equal(xs, ys)
}

func TestEventsBeforeRunAreNotPushed(t *testing.T) {
	store := memory.New()
	customer := uuid.NewString()
	codec := domain.NewCodec()
	old := func() domain.EventData {
		typ, v, data, _, _ := codec.Encode(domain.StatusChanged{From: "a", To: "b", Transition: "t"})
		return domain.EventData{ID: uuid.New(), Type: typ, SchemaVersion: v, OccurredAt: time.Now(), Actor: testActor, Data: data}
	}
	for range 3 {
		if _, err := store.Append(context.Background(), domain.StreamName(customer), domain.ExpectAny, []domain.EventData{old()}); err != nil {
			t.Fatal(err)
		}
	}
	e := newEnv(t, envConfig{store: store})
	e.store = store
	sock := e.dial(t, customer, nil)
	rec := e.append(t, domain.StreamName(customer), old())
	var m live.Message
	readJSON(t, sock, &m)
	if m.EventID != rec.ID.String() || m.Revision != 3 {
		t.Fatalf("first push is %+v, want the event appended after the hub started (revision 3)", m)
	}
}

// TestSlowConsumerIsDropped: a socket that does not read fills its buffer
// and is closed with the policy code, while another socket on the same
// customer keeps receiving everything.
func TestSlowConsumerIsDropped(t *testing.T) {
	tap := logTap{msgs: make(chan string, 64)}
	e := newEnv(t, envConfig{opts: live.SocketOptions{Buffer: 4}, log: slog.New(tap)})
	customer := uuid.NewString()

	// A small receive buffer on the slow client so the server's writes block
	// after a few megabytes instead of after the kernel's autotuned tens of
	// megabytes. Not smaller than a loopback segment (64 KiB): below that,
	// TCP falls back to slow zero-window probing and the late read crawls.
	slowClient := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			err = c.(*net.TCPConn).SetReadBuffer(128 << 10)
		}
		return c, err
	}}}
	slow := e.dial(t, customer, &websocket.DialOptions{HTTPClient: slowClient})
	fast := e.dial(t, customer, nil)

	got := make(chan struct{}, 1)
	fastDone := make(chan error, 1)
	go func() {
		for {
			_, _, err := fast.Read(context.Background())
			if err != nil {
				fastDone <- err
				return
			}
			got <- struct{}{}
		}
	}()
	// waitFast waits for the fast socket's next message: appending in step
	// with it keeps a healthy reader's queue short, so only the slow one
	// falls behind.
	waitFast := func() {
		t.Helper()
		select {
		case <-got:
		case err := <-fastDone:
			t.Fatalf("fast socket ended: %v", err)
		case <-time.After(5 * time.Second):
			t.Fatal("fast socket got nothing for 5s")
		}
	}

	details := json.RawMessage(fmt.Sprintf(`{"blob":%q}`, strings.Repeat("x", 16<<10)))
	appended, dropped := 0, false
	for !dropped && appended < 5000 {
		e.append(t, domain.StreamName(customer), e.eventData(t, domain.StepResultRecorded{Step: "s", Result: "passed", Details: details}))
		appended++
		waitFast()
	drain:
		for {
			select {
			case msg := <-tap.msgs:
				if strings.Contains(msg, "fell behind") {
					dropped = true
				}
			default:
				break drain
			}
		}
	}
	if !dropped {
		t.Fatalf("slow socket not dropped after %d events", appended)
	}
	t.Logf("slow socket dropped after %d events", appended)

	// Reading now, the slow client finds what was written before the drop,
	// then the policy close.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var err error
	for err == nil {
		_, _, err = slow.Read(ctx)
	}
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation || ce.Reason == "" {
		t.Fatalf("slow socket ended with %v, want close %d with a reason", err, websocket.StatusPolicyViolation)
	}

	// And the customer's other socket keeps getting pushes afterwards.
	e.append(t, domain.StreamName(customer), e.eventData(t, domain.AISummaryGenerated{Summary: "s"}))
	waitFast()
}

func TestTokenExpiryClosesSocket(t *testing.T) {
	clk := newClock() // on a whole second, so the token lives exactly ttl
	e := newEnv(t, envConfig{ttl: time.Second, now: clk.Now})
	customer := uuid.NewString()
	start := time.Now()
	sock := e.dial(t, customer, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _, err := sock.Read(ctx)
	if code := websocket.CloseStatus(err); code != websocket.StatusNormalClosure {
		t.Fatalf("socket ended with %v, want a normal close", err)
	}
	if took := time.Since(start); took < 900*time.Millisecond || took > 3*time.Second {
		t.Fatalf("closed after %s, want about the 1s token lifetime", took)
	}
}

func TestHubStopClosesSocketsAndRefusesNewOnes(t *testing.T) {
	e := newEnv(t, envConfig{})
	customer := uuid.NewString()
	sock := e.dial(t, customer, nil)
	e.stop()
	<-e.done
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _, err := sock.Read(ctx)
	if code := websocket.CloseStatus(err); code != websocket.StatusGoingAway {
		t.Fatalf("socket ended with %v, want going away", err)
	}
	resp := upgradeGET(t, e.wsURL(url.Values{"token": {e.token(t, customer)}}), nil)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("after stop: %d %s, want 503 problem", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if err := e.hub.Run(context.Background()); err == nil {
		t.Fatal("second Run succeeded")
	}
}

// flaky fails its first calls, as a store that is briefly unreachable.
type flaky struct {
	*memory.Store
	readFails, subFails atomic.Int32
}

func (f *flaky) ReadAll(ctx context.Context, after domain.Position, limit int) ([]domain.RecordedEvent, error) {
	if f.readFails.Add(-1) >= 0 {
		return nil, domain.ErrStoreUnavailable
	}
	return f.Store.ReadAll(ctx, after, limit)
}

func (f *flaky) SubscribeAll(ctx context.Context, after domain.Position, handle func(context.Context, domain.RecordedEvent) error) error {
	if f.subFails.Add(-1) >= 0 {
		// Deliver what is there, then fail: the retry must resume after it.
		return f.Store.SubscribeAll(ctx, after, func(ctx context.Context, e domain.RecordedEvent) error {
			if err := handle(ctx, e); err != nil {
				return err
			}
			return domain.ErrStoreUnavailable
		})
	}
	return f.Store.SubscribeAll(ctx, after, handle)
}

func TestHubRetriesStoreErrors(t *testing.T) {
	store := memory.New()
	src := &flaky{Store: store}
	src.readFails.Store(1)
	src.subFails.Store(1)
	e := newEnv(t, envConfig{store: src})
	e.store = store
	customer := uuid.NewString()
	sock := e.dial(t, customer, nil)
	var want []string
	for range 3 {
		rec := e.append(t, domain.StreamName(customer), e.eventData(t, domain.StatusChanged{From: "a", To: "b", Transition: "t"}))
		want = append(want, rec.ID.String())
	}
	for i, id := range want {
		var m live.Message
		readJSON(t, sock, &m)
		if m.EventID != id {
			t.Fatalf("push %d is %s, want %s (each event once, in order)", i, m.EventID, id)
		}
	}
}
