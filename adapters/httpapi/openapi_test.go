package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/google/uuid"

	"github.com/kycengine/kyc/adapters/delivery/bus"
	"github.com/kycengine/kyc/adapters/delivery/relay"
	"github.com/kycengine/kyc/adapters/delivery/state"
	"github.com/kycengine/kyc/adapters/delivery/webhook"
	"github.com/kycengine/kyc/adapters/enginetest"
	eventmemory "github.com/kycengine/kyc/adapters/eventstore/memory"
	"github.com/kycengine/kyc/adapters/httpapi"
	readmemory "github.com/kycengine/kyc/adapters/readmodel/memory"
	"github.com/kycengine/kyc/domain"
	"github.com/kycengine/kyc/projections"
	"github.com/kycengine/kyc/schemas"
)

// Tokens of the test callers: two operators and a superuser of company acme,
// an operator of another company, and a customer-kind caller.
const (
	aliceToken    = "alice-token-0123456789"
	bobToken      = "bob-token-0123456789ab"
	rootToken     = "root-token-0123456789a"
	eveToken      = "eve-token-0123456789ab"
	customerToken = "customer-token-012345"
)

func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(schemas.OpenAPI())
	if err != nil {
		t.Fatalf("load schemas/openapi.yaml: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("schemas/openapi.yaml is not a valid OpenAPI document: %v", err)
	}
	return doc
}

// testEngine is the command side and the credentials the test servers share.
type testEngine struct {
	svc      *domain.Service
	log      *eventmemory.Store
	auth     *httpapi.Authenticator
	metrics  http.Handler
	webhooks httpapi.Webhooks
}

func newTestServer(t *testing.T) *httpapi.Server {
	t.Helper()
	return newTestEngine(t).server(t, nil, nil)
}

func newTestEngine(t *testing.T) testEngine {
	t.Helper()
	svc, log := enginetest.NewService(t)
	auth, err := httpapi.NewAuthenticator([]httpapi.Key{
		{Token: aliceToken, Actor: "alice", Roles: []string{"operator"}, Company: "acme", Kind: domain.ActorOperator},
		{Token: bobToken, Actor: "bob", Roles: []string{"operator"}, Company: "acme", Kind: domain.ActorOperator},
		{Token: rootToken, Actor: "root", Roles: []string{domain.RoleSuperuser}, Company: "acme", Kind: domain.ActorOperator},
		{Token: eveToken, Actor: "eve", Roles: []string{"operator"}, Company: "globex"},
		{Token: customerToken, Actor: "ada", Company: "acme", Kind: domain.ActorCustomer},
	})
	if err != nil {
		t.Fatal(err)
	}
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_, _ = io.WriteString(w, "# HELP kyc_up Whether the engine is up.\n# TYPE kyc_up gauge\nkyc_up 1\n")
	})
	return testEngine{svc: svc, log: log, auth: auth, metrics: metrics}
}

// server builds an API over the engine; reader nil runs it without read
// models.
func (e testEngine) server(t *testing.T, reader *projections.Reader, admin httpapi.ProjectionAdmin) *httpapi.Server {
	t.Helper()
	tokens, socket := liveSocket(t, e.log)
	s, err := httpapi.New(httpapi.Config{Service: e.svc, Auth: e.auth, Metrics: e.metrics, Reader: reader, Projections: admin,
		SocketTokens: tokens, Socket: socket, Webhooks: e.webhooks})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// webhookService runs the webhook pipeline over the engine's log for the
// rest of the test: a relay publishing to an in-process bus, the service
// consuming it, the delivery state in a temporary SQLite file. Failed
// deliveries wait an hour for their second round, so they stay pending.
func webhookService(t *testing.T, eng testEngine) *webhook.Service {
	t.Helper()
	st, err := state.OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "delivery.db"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := bus.Open(t.Context(), "", bus.Options{})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := webhook.NewService(webhook.Config{Store: st, EventTypes: eng.svc.Codec().TypeNames(), CompanyOf: webhook.CompaniesFrom(eng.svc),
		Schedule: webhook.Schedule{Delays: []time.Duration{time.Hour}},
		Retry:    webhook.Retry{MaxRetries: 1, InitialInterval: time.Millisecond, MaxInterval: time.Millisecond, Multiplier: 1},
		Timeout:  2 * time.Second, PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	rel, err := relay.New(relay.Config{Log: eng.log, Publisher: b.Publisher(), Checkpoints: st})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = svc.Run(ctx, b.Subscriber()) })
	select {
	case <-svc.Started():
	case <-time.After(10 * time.Second):
		t.Fatal("the webhook service did not start")
	}
	// The in-process bus keeps nothing: the relay starts once the service
	// listens.
	wg.Go(func() { _ = rel.Run(ctx) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		b.Close()
		st.Close()
	})
	return svc
}

// A server without a webhook service answers the webhook routes with 503.
func TestWebhooksUnavailable(t *testing.T) {
	srv := httptest.NewServer(newTestServer(t).Handler())
	defer srv.Close()
	for _, tc := range []struct {
		token string
		want  int
	}{{aliceToken, http.StatusServiceUnavailable}, {customerToken, http.StatusForbidden}} {
		req, _ := http.NewRequest("GET", srv.URL+"/v1/webhooks", nil)
		req.Header.Set("Authorization", "Bearer "+tc.token)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: %d %s, want %d problem", tc.token, resp.StatusCode, resp.Header.Get("Content-Type"), tc.want)
		}
	}
}

func TestOpenAPIDocumentIsValid(t *testing.T) {
	doc := loadOpenAPI(t)
	if doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi version = %q, want 3.0.3", doc.OpenAPI)
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.Summary == "" || op.Description == "" {
				t.Errorf("%s %s: summary and description are required", method, path)
			}
			if op.OperationID == "" {
				t.Errorf("%s %s: operationId is required", method, path)
			}
		}
	}
}

// TestRoutesMatchOpenAPI compares the server's route table with the document
// in both directions, and checks that exactly the public routes are exempt
// from the bearer token.
func TestRoutesMatchOpenAPI(t *testing.T) {
	doc := loadOpenAPI(t)
	s := newTestServer(t)

	routes := map[string]httpapi.Route{}
	for _, r := range s.Routes() {
		k := r.Method + " " + r.Path
		if _, dup := routes[k]; dup {
			t.Errorf("route %s is in the route table twice", k)
		}
		routes[k] = r
	}
	ops := map[string]*openapi3.Operation{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			ops[strings.ToUpper(method)+" "+path] = op
		}
	}

	var missingInDoc, missingInServer []string
	for k := range routes {
		if ops[k] == nil {
			missingInDoc = append(missingInDoc, k)
		}
	}
	for k := range ops {
		if _, ok := routes[k]; !ok {
			missingInServer = append(missingInServer, k)
		}
	}
	sort.Strings(missingInDoc)
	sort.Strings(missingInServer)
	if len(missingInDoc) > 0 {
		t.Errorf("routes the server serves but schemas/openapi.yaml does not document:\n  %s", strings.Join(missingInDoc, "\n  "))
	}
	if len(missingInServer) > 0 {
		t.Errorf("operations schemas/openapi.yaml documents but the server does not serve:\n  %s", strings.Join(missingInServer, "\n  "))
	}

	global := doc.Security
	for k, r := range routes {
		op := ops[k]
		if op == nil {
			continue
		}
		reqs := global
		if op.Security != nil {
			reqs = *op.Security
		}
		needsBearer := len(reqs) > 0
		for _, req := range reqs {
			if _, ok := req["bearerAuth"]; !ok {
				needsBearer = false
			}
		}
		switch {
		case r.Public && len(reqs) > 0:
			t.Errorf("%s is public but the document requires %v", k, reqs)
		case !r.Public && !needsBearer:
			t.Errorf("%s needs a bearer token but the document does not require bearerAuth", k)
		}
	}
}

// apiCall is one request of the flow and what it must answer.
type apiCall struct {
	method, path string
	token        string
	// body is sent as is when it is a string or []byte, else as JSON; nil
	// sends no body.
	body    any
	headers map[string]string
	want    int
	// wantType is the problem type's last segment, checked when set.
	wantType string
	// offContract marks a request that deliberately breaks the document (to
	// provoke a 400, 413 or 422): its request must fail validation, its
	// response must still match.
	offContract bool
}

type apiResult struct {
	status int
	header http.Header
	body   []byte
}

func (r apiResult) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// contractClient sends requests to the live server and checks each request
// and response against the OpenAPI document.
type contractClient struct {
	t       *testing.T
	base    string
	http    *http.Client
	router  routers.Router
	covered map[string]int
	opts    []openapi3.SchemaValidationOption
}

func (c *contractClient) do(call apiCall) apiResult {
	c.t.Helper()
	var raw []byte
	switch b := call.body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	case []byte:
		raw = b
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			c.t.Fatal(err)
		}
	}
	newRequest := func() *http.Request {
		var body io.Reader
		if call.body != nil {
			body = bytes.NewReader(raw)
		}
		req, err := http.NewRequest(call.method, c.base+call.path, body)
		if err != nil {
			c.t.Fatal(err)
		}
		if call.body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if call.token != "" {
			req.Header.Set("Authorization", "Bearer "+call.token)
		}
		for k, v := range call.headers {
			req.Header.Set(k, v)
		}
		return req
	}
	name := call.method + " " + call.path
	if len(name) > 120 {
		name = name[:120] + "..."
	}

	ctx := context.Background()
	vreq := newRequest()
	route, pathParams, err := c.router.FindRoute(vreq)
	if err != nil {
		c.t.Fatalf("%s: the document has no operation for this request: %v", name, err)
	}
	c.covered[route.Method+" "+route.Path]++
	input := &openapi3filter.RequestValidationInput{
		Request: vreq, PathParams: pathParams, Route: route,
		Options: &openapi3filter.Options{
			MultiError:                        true,
			RejectWhenRequestBodyNotSpecified: true,
			AuthenticationFunc:                openapi3filter.NoopAuthenticationFunc,
			SchemaValidationOptions:           c.opts,
		},
	}
	input.Options.WithCustomSchemaErrorFunc(schemaError)
	reqErr := openapi3filter.ValidateRequest(ctx, input)
	switch {
	case call.offContract && reqErr == nil:
		c.t.Errorf("%s: the request is meant to break the document, but the document accepts it (body %s)", name, clip(raw))
	case !call.offContract && reqErr != nil:
		c.t.Errorf("%s: the document refuses a request the server is meant to accept: %v\nbody: %s", name, reqErr, clip(raw))
	}

	resp, err := c.http.Do(newRequest())
	if err != nil {
		c.t.Fatalf("%s: %v", name, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		c.t.Fatalf("%s: read response: %v", name, err)
	}
	res := apiResult{status: resp.StatusCode, header: resp.Header, body: body}
	if resp.StatusCode != call.want {
		c.t.Errorf("%s: status %d, want %d\nresponse: %s", name, resp.StatusCode, call.want, clip(body))
	}
	if call.wantType != "" {
		var p struct {
			Type string `json:"type"`
		}
		_ = json.Unmarshal(body, &p)
		if want := "https://kyc-engine.dev/problems/" + call.wantType; p.Type != want {
			c.t.Errorf("%s: problem type %q, want %q", name, p.Type, want)
		}
	}

	rinput := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: input,
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Options: &openapi3filter.Options{
			IncludeResponseStatus:   true,
			MultiError:              true,
			SchemaValidationOptions: c.opts,
		},
	}
	rinput.Options.WithCustomSchemaErrorFunc(schemaError)
	rinput.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(ctx, rinput); err != nil {
		c.t.Errorf("%s: the %d response does not match the document: %v\nresponse: %s", name, resp.StatusCode, err, clip(body))
	}
	return res
}

// schemaError keeps a validation message to where and why, without the
// schema and value dumps kin-openapi adds by default.
func schemaError(err *openapi3.SchemaError) string {
	value, _ := json.Marshal(err.Value)
	return fmt.Sprintf("at /%s: %s (value %s)", strings.Join(err.JSONPointer(), "/"), err.Reason, clip(value))
}

func clip(b []byte) string {
	if len(b) > 2000 {
		return string(b[:2000]) + "..."
	}
	return string(b)
}

// commandResult is the part of a CommandResponse the flow needs.
type commandResult struct {
	ID       string `json:"id"`
	Status   string `json:"status"`
	Revision uint64 `json:"revision"`
	Replayed bool   `json:"replayed"`
	Events   []struct {
		Type string `json:"type"`
	} `json:"events"`
	Customer struct {
		Check *struct {
			Items []string `json:"items"`
		} `json:"check"`
		VerificationStatus string `json:"verification_status"`
		AggregatedStatus   string `json:"aggregated_status"`
	} `json:"customer"`
}

// TestResponsesMatchOpenAPI drives a realistic flow through a live server and
// validates every request and every response against the document: the
// proof that the document and the server agree.
func TestResponsesMatchOpenAPI(t *testing.T) {
	doc := loadOpenAPI(t)
	eng := newTestEngine(t)
	hooks := webhookService(t, eng)
	eng.webhooks = hooks
	srv := httptest.NewServer(eng.server(t, nil, nil).Handler())
	defer srv.Close()
	// A second server over the same engine serves the read models, which the
	// projection engine builds from the events the flow's commands produce.
	readModels := readmemory.New()
	reader, projEngine := httpapi.ReadSide(t, eng.svc, eng.log, readModels, 100*time.Millisecond)
	readSrv := httptest.NewServer(eng.server(t, reader, projEngine).Handler())
	defer readSrv.Close()

	doc.Servers = openapi3.Servers{{URL: srv.URL}, {URL: readSrv.URL}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	c := &contractClient{t: t, base: srv.URL, http: srv.Client(), router: router, covered: map[string]int{},
		opts: []openapi3.SchemaValidationOption{openapi3.WithStringFormatValidators(map[string]openapi3.StringFormatValidator{
			"uuid":  openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForUUIDOfRFC9562),
			"email": openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForEmail),
		})}}

	type obj = map[string]any
	const (
		alice, bob, root, eve, customer = aliceToken, bobToken, rootToken, eveToken, customerToken
		longReason                      = "document appears to be forged"
	)
	unknown := uuid.NewString()
	command := func(call apiCall) commandResult {
		t.Helper()
		var r commandResult
		res := c.do(call)
		if res.status < 300 {
			res.decode(t, &r)
		}
		return r
	}

	// Operations routes, public.
	c.do(apiCall{method: "GET", path: "/healthz", want: 200})
	c.do(apiCall{method: "GET", path: "/readyz", want: 200})
	c.do(apiCall{method: "GET", path: "/metrics", want: 200})
	c.do(apiCall{method: "GET", path: "/v1/openapi.yaml", want: 200})

	// Lifecycles.
	c.do(apiCall{method: "GET", path: "/v1/lifecycles", token: alice, want: 200})
	c.do(apiCall{method: "GET", path: "/v1/lifecycles/onboarding", token: alice, want: 200})
	c.do(apiCall{method: "GET", path: "/v1/lifecycles/kyc-review", token: alice, want: 200})
	c.do(apiCall{method: "GET", path: "/v1/lifecycles/no-such-lifecycle", token: alice, want: 404, wantType: "unknown-lifecycle"})

	// Authentication.
	c.do(apiCall{method: "GET", path: "/v1/customers/" + unknown, want: 401, wantType: "unauthenticated"})
	c.do(apiCall{method: "GET", path: "/v1/customers/" + unknown, token: "not-a-known-token-at-all", want: 401, wantType: "unauthenticated"})

	// Webhooks, registered before the customers below so that their events
	// are delivered: one receiver that answers 204, one that always fails.
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	defer receiver.Close()
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusInternalServerError) }))
	defer failing.Close()
	var created struct {
		Endpoint struct {
			ID string `json:"id"`
		} `json:"endpoint"`
		Secret string `json:"secret"`
	}
	res := c.do(apiCall{method: "POST", path: "/v1/webhooks", token: alice, body: obj{"url": receiver.URL + "/kyc",
		"types": []string{"CustomerRegistered", "StatusChanged"}, "description": "CRM"}, want: 201})
	res.decode(t, &created)
	hook := "/v1/webhooks/" + created.Endpoint.ID
	if res.header.Get("Location") != hook || !strings.HasPrefix(created.Secret, "whsec_") {
		t.Errorf("created webhook: Location %q, secret %q", res.header.Get("Location"), created.Secret)
	}
	c.do(apiCall{method: "POST", path: "/v1/webhooks", token: alice, body: obj{"url": failing.URL, "types": []string{"CustomerRegistered"}}, want: 201}).decode(t, &created)
	failingHook := "/v1/webhooks/" + created.Endpoint.ID
	c.do(apiCall{method: "POST", path: "/v1/webhooks", token: root, body: obj{"url": receiver.URL + "/all", "company": "*"}, want: 201})
	c.do(apiCall{method: "POST", path: "/v1/webhooks", token: alice, body: obj{"url": receiver.URL, "company": "*"}, want: 403, wantType: "forbidden"})
	c.do(apiCall{method: "POST", path: "/v1/webhooks", token: eve, body: obj{"url": receiver.URL, "company": "acme"}, want: 403, wantType: "forbidden"})
	c.do(apiCall{method: "POST", path: "/v1/webhooks", token: customer, body: obj{"url": receiver.URL}, want: 403, wantType: "forbidden"})
	c.do(apiCall{method: "POST", path: "/v1/webhooks", token: alice, body: obj{"url": "ftp://example.com/hook"}, want: 422, wantType: "invalid-input"})
	c.do(apiCall{method: "POST", path: "/v1/webhooks", token: alice, body: obj{"url": "https://example.com/hook", "types": []string{"NoSuchEvent"}},
		want: 422, wantType: "invalid-input", offContract: true})
	c.do(apiCall{method: "POST", path: "/v1/webhooks", token: alice, body: obj{"url": "https://example.com/hook", "colour": "red"},
		want: 400, wantType: "malformed-request", offContract: true})
	var hookList struct {
		Items []struct {
			ID string `json:"id"`
		} `json:"items"`
	}
	c.do(apiCall{method: "GET", path: "/v1/webhooks", token: alice, want: 200}).decode(t, &hookList)
	if len(hookList.Items) != 2 {
		t.Errorf("alice sees %d webhooks, want acme's 2", len(hookList.Items))
	}
	c.do(apiCall{method: "GET", path: "/v1/webhooks", token: root, want: 200}).decode(t, &hookList)
	if len(hookList.Items) != 3 {
		t.Errorf("a superuser sees %d webhooks, want 3", len(hookList.Items))
	}
	c.do(apiCall{method: "GET", path: "/v1/webhooks", token: customer, want: 403, wantType: "forbidden"})
	c.do(apiCall{method: "GET", path: hook, token: alice, want: 200})
	c.do(apiCall{method: "GET", path: hook, token: eve, want: 404, wantType: "webhook-not-found"})
	c.do(apiCall{method: "GET", path: "/v1/webhooks/not-a-uuid", token: alice, want: 404, wantType: "webhook-not-found"})
	c.do(apiCall{method: "POST", path: hook + "/secrets", token: alice, want: 201})
	c.do(apiCall{method: "POST", path: hook + "/secrets", token: bob, body: obj{}, want: 201})
	c.do(apiCall{method: "POST", path: hook + "/secrets", token: eve, want: 404, wantType: "webhook-not-found"})
	c.do(apiCall{method: "POST", path: hook + "/secrets", token: alice, body: obj{"expire": "now"}, want: 400, wantType: "malformed-request", offContract: true})

	// Registration, with an idempotent retry.
	registration := obj{
		"name": obj{"first": "Ada", "last": "Lovelace"}, "id_card_number": "X1234567", "nationality": "GB",
		"birth_date": "1990-01-02", "gender": "female", "language": "en-GB",
		"emails": []string{"ada@example.com"}, "phones": []string{"+441234567890"},
		"address":     obj{"country": "GB", "city": "London", "lines": []string{"1 Main St"}},
		"person_type": "natural", "referral_code": "FRIEND1", "created_by_agent": "agent-7",
	}
	reg := c.do(apiCall{method: "POST", path: "/v1/customers", token: alice, body: registration,
		headers: map[string]string{"Idempotency-Key": "register-ada-1", "X-Correlation-ID": "onboarding-42"}, want: 201})
	var first commandResult
	reg.decode(t, &first)
	id := first.ID
	if loc := reg.header.Get("Location"); loc != "/v1/customers/"+id {
		t.Errorf("Location = %q, want /v1/customers/%s", loc, id)
	}
	retry := c.do(apiCall{method: "POST", path: "/v1/customers", token: alice, body: registration,
		headers: map[string]string{"Idempotency-Key": "register-ada-1"}, want: 201})
	var again commandResult
	retry.decode(t, &again)
	if !again.Replayed || again.ID != id || retry.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("idempotent retry: replayed=%v id=%s header=%q, want a replay of %s", again.Replayed, again.ID, retry.header.Get("Idempotent-Replayed"), id)
	}
	c.do(apiCall{method: "POST", path: "/v1/customers", token: alice, body: registration,
		headers: map[string]string{"If-Match": `"0"`}, want: 400, wantType: "malformed-request"})
	c.do(apiCall{method: "POST", path: "/v1/customers", token: alice, body: obj{"name": obj{"first": "A", "last": "B"}, "nickname": "x"},
		want: 400, wantType: "malformed-request", offContract: true})
	c.do(apiCall{method: "POST", path: "/v1/customers", token: alice, body: `{"name": {"first": "A", "last": "B"}`,
		want: 400, wantType: "malformed-request", offContract: true})
	c.do(apiCall{method: "POST", path: "/v1/customers", token: alice, body: obj{"name": obj{"first": "A", "last": "B"}, "birth_date": "2999-01-01"},
		want: 422, wantType: "invalid-input"})
	c.do(apiCall{method: "POST", path: "/v1/customers", token: alice, body: obj{"name": obj{"first": "A", "last": "B"}, "lifecycle": "no-such-lifecycle"},
		want: 422, wantType: "unknown-lifecycle"})
	c.do(apiCall{method: "POST", path: "/v1/customers", token: alice, body: obj{"name": obj{"first": "A", "last": "B"}, "company": "globex"},
		want: 403, wantType: "forbidden"})
	c.do(apiCall{method: "POST", path: "/v1/customers", token: alice, body: obj{"name": obj{"first": "A", "last": "B"}, "emails": []string{"not-an-email"}},
		want: 422, wantType: "invalid-input", offContract: true})

	cust := "/v1/customers/" + id
	got := c.do(apiCall{method: "GET", path: cust, token: alice, want: 200})
	if got.header.Get("ETag") == "" {
		t.Error("GET customer: no ETag")
	}
	c.do(apiCall{method: "GET", path: cust, token: eve, want: 404, wantType: "customer-not-found"})
	c.do(apiCall{method: "GET", path: cust, token: customer, want: 200})

	// The live socket: a token only for a customer the caller may read; the
	// socket refuses requests without a valid one before upgrading.
	c.do(apiCall{method: "POST", path: cust + "/socket-token", token: alice, want: 201})
	c.do(apiCall{method: "POST", path: cust + "/socket-token", token: eve, want: 404, wantType: "customer-not-found"})
	c.do(apiCall{method: "POST", path: cust + "/socket-token", want: 401, wantType: "unauthenticated"})
	c.do(apiCall{method: "GET", path: "/v1/ws", want: 401, wantType: "socket-token-missing", offContract: true})
	c.do(apiCall{method: "GET", path: "/v1/ws?token=forged.token.value", want: 401, wantType: "socket-token-invalid"})

	// Profile, with optimistic concurrency.
	upd := command(apiCall{method: "PATCH", path: cust, token: alice, body: obj{"gender": "f", "language": "en",
		"address": obj{"country": "GB", "city": "Oxford"}}, want: 200})
	stale := c.do(apiCall{method: "PATCH", path: cust, token: alice, body: obj{"gender": "x"},
		headers: map[string]string{"If-Match": `"0"`}, want: 412, wantType: "revision-mismatch"})
	if want := fmt.Sprintf(`"%d"`, upd.Revision); stale.header.Get("ETag") != want {
		t.Errorf("412: ETag %q, want %s", stale.header.Get("ETag"), want)
	}
	command(apiCall{method: "PATCH", path: cust, token: alice, body: obj{"phones": []string{"+441234567891"}},
		headers: map[string]string{"If-Match": fmt.Sprintf(`"%d"`, upd.Revision), "X-Causation-ID": "ticket-9"}, want: 200})
	c.do(apiCall{method: "PATCH", path: cust, token: alice, body: obj{"gender": "x"},
		headers: map[string]string{"If-Match": "yesterday"}, want: 400, wantType: "malformed-request"})
	c.do(apiCall{method: "PATCH", path: cust, token: alice, body: obj{"emails": []string{}},
		want: 422, wantType: "invalid-input", offContract: true})

	// Status changes the lifecycle refuses.
	c.do(apiCall{method: "POST", path: cust + "/status", token: alice, body: obj{"status": "APPROVED"}, want: 409, wantType: "illegal-transition"})
	c.do(apiCall{method: "POST", path: cust + "/status", token: alice, body: obj{"status": "REJECTED", "reason": "too short"}, want: 422, wantType: "reason-required"})
	c.do(apiCall{method: "POST", path: cust + "/status", token: alice, body: obj{"status": "NO_SUCH_STATUS"}, want: 422, wantType: "invalid-input"})

	// A document, then the review workflow with four eyes.
	command(apiCall{method: "POST", path: cust + "/documents", token: alice, body: obj{
		"document_id": "passport-1", "type": "PASSPORT", "number": "P1234567", "country": "GB", "expiry_date": "2035-01-31",
		"file_digest": "sha256:" + strings.Repeat("ab", 32)}, want: 200})
	c.do(apiCall{method: "POST", path: cust + "/documents", token: alice, body: obj{"type": "PASSPORT", "expiry_date": "31/01/2035"},
		want: 422, wantType: "invalid-input", offContract: true})
	command(apiCall{method: "POST", path: cust + "/transitions/submit", token: alice, body: obj{}, want: 200})
	c.do(apiCall{method: "POST", path: cust + "/transitions/approve", token: alice, body: obj{}, want: 409, wantType: "illegal-transition"})
	c.do(apiCall{method: "POST", path: cust + "/transitions/no_such_event", token: alice, body: obj{}, want: 422, wantType: "invalid-input"})
	c.do(apiCall{method: "POST", path: cust + "/review/finish", token: alice, want: 409, wantType: "review-state"})
	started := command(apiCall{method: "POST", path: cust + "/review/start", token: alice, want: 200})
	if started.Customer.Check == nil || len(started.Customer.Check.Items) == 0 {
		t.Fatalf("review/start: no check items in %+v", started)
	}
	items := started.Customer.Check.Items
	c.do(apiCall{method: "POST", path: cust + "/review/start", token: alice, body: obj{}, want: 409, wantType: "review-state"})
	c.do(apiCall{method: "POST", path: cust + "/review/start", token: alice, body: obj{"force": true}, want: 400, wantType: "malformed-request", offContract: true})
	for _, it := range items[:len(items)-1] {
		command(apiCall{method: "POST", path: cust + "/review/items", token: alice, body: obj{"item": it, "decision": "approved"}, want: 200})
	}
	c.do(apiCall{method: "POST", path: cust + "/review/finish", token: alice, body: obj{}, want: 409, wantType: "check-incomplete"})
	c.do(apiCall{method: "POST", path: cust + "/review/items", token: alice, body: obj{"item": "favourite_colour", "decision": "approved"}, want: 422, wantType: "invalid-input"})
	c.do(apiCall{method: "POST", path: cust + "/review/items", token: alice, body: obj{"item": "name", "decision": "maybe"}, want: 422, wantType: "invalid-input", offContract: true})
	command(apiCall{method: "POST", path: cust + "/review/items", token: alice,
		body: obj{"item": items[len(items)-1], "decision": "approved", "comment": "clear scan"}, want: 200})
	if fin := command(apiCall{method: "POST", path: cust + "/review/finish", token: alice, want: 200}); fin.Status != "PENDING_APPROVAL" {
		t.Errorf("review/finish: status %s, want PENDING_APPROVAL", fin.Status)
	}
	c.do(apiCall{method: "POST", path: cust + "/status", token: alice, body: obj{"status": "APPROVED"}, want: 409, wantType: "four-eyes"})
	if ok := command(apiCall{method: "POST", path: cust + "/transitions/approve", token: bob, body: obj{}, want: 200}); ok.Status != "APPROVED" {
		t.Errorf("approve: status %s, want APPROVED", ok.Status)
	}
	command(apiCall{method: "PATCH", path: cust + "/deactivate", token: alice, want: 200})
	command(apiCall{method: "PATCH", path: cust + "/activate", token: alice, body: obj{"reason": "customer asked to re-enable"}, want: 200})

	// Every attribute route.
	command(apiCall{method: "PUT", path: cust + "/risk", token: alice, body: obj{"risk": "HIGH", "source": "manual review"}, want: 200})
	command(apiCall{method: "PUT", path: cust + "/risk", token: alice, body: obj{"risk": ""}, want: 200})
	c.do(apiCall{method: "PUT", path: cust + "/risk", token: alice, body: obj{"source": "x"}, want: 422, wantType: "invalid-input", offContract: true})
	command(apiCall{method: "PUT", path: cust + "/aml", token: alice, body: obj{"result": true, "provider": "ComplyAdvantage", "reference": "ca-1"}, want: 200})
	command(apiCall{method: "PUT", path: cust + "/aml", token: alice, body: obj{"result": false}, want: 200})
	command(apiCall{method: "PUT", path: cust + "/aml", token: alice, body: obj{"result": nil}, want: 200})
	command(apiCall{method: "PUT", path: cust + "/aml", token: alice, body: obj{"result": true}, want: 200})
	c.do(apiCall{method: "PUT", path: cust + "/aml", token: alice, body: obj{"result": "clear"}, want: 400, wantType: "malformed-request", offContract: true})
	command(apiCall{method: "PUT", path: cust + "/video-call-status", token: alice, body: obj{"status": "BAD QUALITY"}, want: 200})
	c.do(apiCall{method: "PUT", path: cust + "/video-call-status", token: alice, body: obj{"status": "ON HOLD"}, want: 422, wantType: "invalid-input", offContract: true})
	command(apiCall{method: "PUT", path: cust + "/biopay", token: alice, body: obj{"enabled": true}, want: 200})
	c.do(apiCall{method: "PUT", path: cust + "/biopay", token: alice, body: obj{}, want: 422, wantType: "invalid-input", offContract: true})
	command(apiCall{method: "PUT", path: cust + "/verification-level", token: alice, body: obj{"level": 3}, want: 200})
	c.do(apiCall{method: "PUT", path: cust + "/verification-level", token: alice, body: obj{"level": 9}, want: 422, wantType: "invalid-input", offContract: true})
	command(apiCall{method: "POST", path: cust + "/contacts/verification", token: alice, body: obj{"channel": "email", "verified": true}, want: 200})
	if v := command(apiCall{method: "POST", path: cust + "/contacts/verification", token: alice, body: obj{"channel": "phone", "verified": true}, want: 200}); v.Customer.VerificationStatus != "identified" {
		t.Errorf("verification_status %q, want identified", v.Customer.VerificationStatus)
	}
	command(apiCall{method: "POST", path: cust + "/notes", token: alice, body: obj{"text": "Called the customer; documents confirmed."}, want: 200})
	note := apiCall{method: "POST", path: cust + "/notes", token: alice, body: obj{"text": "Retried note."}, headers: map[string]string{"Idempotency-Key": "note-1"}, want: 200}
	command(note)
	if r := command(note); !r.Replayed || len(r.Events) != 1 {
		t.Errorf("idempotent note retry: replayed=%v events=%d, want a replay of one event", r.Replayed, len(r.Events))
	}
	c.do(apiCall{method: "POST", path: cust + "/notes", token: alice, body: obj{"text": "x"}, headers: map[string]string{"Idempotency-Key": "has space"},
		want: 400, wantType: "malformed-request", offContract: true})
	c.do(apiCall{method: "POST", path: cust + "/notes", token: alice, body: "", want: 400, wantType: "malformed-request", offContract: true})
	c.do(apiCall{method: "POST", path: cust + "/notes", token: alice, body: obj{"text": strings.Repeat("x", httpapi.MaxBodyBytes)},
		want: 413, wantType: "body-too-large", offContract: true})
	command(apiCall{method: "POST", path: cust + "/tags", token: alice, body: obj{"add": []string{"vip", "pep"}}, want: 200})
	command(apiCall{method: "POST", path: cust + "/tags", token: alice, body: obj{"add": []string{"reviewed"}, "remove": []string{"pep"}}, want: 200})
	c.do(apiCall{method: "POST", path: cust + "/tags", token: alice, body: obj{"add": []string{"x"}, "remove": []string{"x"}}, want: 422, wantType: "invalid-input"})
	command(apiCall{method: "POST", path: cust + "/steps", token: alice, body: obj{"step": "liveness", "result": "passed", "details": obj{"score": 0.98}}, want: 200})
	command(apiCall{method: "POST", path: cust + "/steps", token: alice, body: obj{"step": "sanctions", "result": "pending"}, want: 200})
	command(apiCall{method: "PUT", path: cust + "/ai-summary", token: alice, body: obj{"summary": "Low-risk retail customer; documents consistent.", "model": "summariser-1"}, want: 200})
	command(apiCall{method: "PUT", path: cust + "/services", token: alice, body: obj{"active_services": []string{"aml", "video_kyc"}}, want: 200})
	c.do(apiCall{method: "PUT", path: cust + "/services", token: alice, body: obj{"active_services": []string{"crypto"}}, want: 422, wantType: "invalid-input", offContract: true})
	command(apiCall{method: "PUT", path: cust + "/access", token: alice, body: obj{"access_roles": []string{"customer"}, "access_groups": []string{"retail"}}, want: 200})
	command(apiCall{method: "PUT", path: cust + "/access", token: alice, body: obj{}, want: 200})
	c.do(apiCall{method: "GET", path: cust, token: alice, want: 200})
	c.do(apiCall{method: "GET", path: cust, token: customer, want: 200})

	// Resubmission, rejection, blacklisting and its lifting.
	reg2 := command(apiCall{method: "POST", path: "/v1/customers", token: alice, body: obj{"name": obj{"first": "Charles", "last": "Babbage"},
		"tags": []string{"referral"}, "access_roles": []string{"customer"}, "active_services": []string{"aml"}}, want: 201})
	cust2 := "/v1/customers/" + reg2.ID
	command(apiCall{method: "POST", path: cust2 + "/transitions/submit", token: alice, body: obj{}, want: 200})
	command(apiCall{method: "POST", path: cust2 + "/review/start", token: alice, body: obj{}, want: 200})
	if r := command(apiCall{method: "POST", path: cust2 + "/review/resubmission", token: alice,
		body: obj{"items": []string{"name"}, "comment": "the name does not match the document"}, want: 200}); r.Status != "PENDING_UPLOAD" {
		t.Errorf("review/resubmission: status %s, want PENDING_UPLOAD", r.Status)
	}
	c.do(apiCall{method: "POST", path: cust2 + "/review/resubmission", token: alice, body: obj{"items": []string{}}, want: 422, wantType: "invalid-input", offContract: true})
	command(apiCall{method: "POST", path: cust2 + "/resubmission", token: alice, body: obj{}, want: 200})
	c.do(apiCall{method: "POST", path: cust2 + "/resubmission", token: alice, body: obj{"items": []string{"name"}}, want: 409, wantType: "review-state"})
	c.do(apiCall{method: "POST", path: cust2 + "/review/reject", token: alice, body: obj{"reason": longReason, "reject_type": "RETRY"}, want: 409, wantType: "review-state"})
	command(apiCall{method: "POST", path: cust2 + "/review/start", token: alice, want: 200})
	c.do(apiCall{method: "POST", path: cust2 + "/review/reject", token: alice, body: obj{"reason": "forged", "reject_type": "FINAL"}, want: 422, wantType: "reason-required"})
	if r := command(apiCall{method: "POST", path: cust2 + "/review/reject", token: alice, body: obj{"reason": longReason,
		"labels": []string{"forgery"}, "reject_type": "FINAL", "client_comment": "Please contact support."}, want: 200}); r.Status != "REJECTED" {
		t.Errorf("review/reject: status %s, want REJECTED", r.Status)
	}
	c.do(apiCall{method: "POST", path: cust2 + "/transitions/reopen", token: alice, body: obj{"reason": "customer sent a new passport"}, want: 409, wantType: "final-rejection"})
	command(apiCall{method: "POST", path: cust2 + "/status", token: alice, body: obj{"status": "BLACKLISTED", "reason": "sanctions screening hit", "labels": []string{"sanctions"}}, want: 200})
	c.do(apiCall{method: "POST", path: cust2 + "/transitions/lift_blacklist", token: alice, body: obj{"reason": "false positive confirmed"}, want: 403, wantType: "forbidden"})
	command(apiCall{method: "POST", path: cust2 + "/transitions/lift_blacklist", token: root, body: obj{"reason": "false positive confirmed"}, want: 200})
	c.do(apiCall{method: "GET", path: cust2, token: alice, want: 200})

	// Onboarding: activate / deactivate as PATCH endpoints (seed 004).
	reg3 := command(apiCall{method: "POST", path: "/v1/customers", token: alice, body: obj{"lifecycle": "onboarding",
		"name": obj{"first": "Grace", "last": "Hopper"}, "nationality": "US", "id_card_number": "123-45-6789", "birth_date": "1986-12-09"}, want: 201})
	cust3 := "/v1/customers/" + reg3.ID
	c.do(apiCall{method: "PATCH", path: cust3 + "/deactivate", token: alice, want: 409, wantType: "illegal-transition"})
	for _, ev := range []string{"verify_challenge", "pass_screening", "complete_verification"} {
		command(apiCall{method: "POST", path: cust3 + "/transitions/" + ev, token: alice, body: obj{}, want: 200})
	}
	c.do(apiCall{method: "PATCH", path: cust3 + "/activate", token: alice, want: 409, wantType: "illegal-transition"})
	if r := command(apiCall{method: "PATCH", path: cust3 + "/deactivate", token: alice, want: 200}); r.Status != "inactive" {
		t.Errorf("deactivate: status %s, want inactive", r.Status)
	}
	if r := command(apiCall{method: "PATCH", path: cust3 + "/activate", token: alice, body: obj{}, want: 200}); r.Status != "active" {
		t.Errorf("activate: status %s, want active", r.Status)
	}
	c.do(apiCall{method: "PATCH", path: cust3 + "/activate", token: alice, body: obj{"when": "now"}, want: 400, wantType: "malformed-request", offContract: true})
	command(apiCall{method: "POST", path: cust3 + "/status", token: alice, body: obj{"status": "rejected", "reason": "evidence of illicit activity"}, want: 200})
	c.do(apiCall{method: "POST", path: "/v1/customers", token: alice, body: obj{"lifecycle": "onboarding",
		"name": obj{"first": "Grace", "last": "Hopper"}, "nationality": "US", "id_card_number": "123 45 6789"}, want: 409, wantType: "identity-rejected"})
	c.do(apiCall{method: "GET", path: cust3, token: alice, want: 200})

	// Audit: events and time travel.
	c.do(apiCall{method: "GET", path: cust + "/events", token: alice, want: 200})
	c.do(apiCall{method: "GET", path: cust2 + "/events", token: alice, want: 200})
	c.do(apiCall{method: "GET", path: cust + "/state?revision=0", token: alice, want: 200})
	c.do(apiCall{method: "GET", path: cust + "/state?revision=5", token: alice, want: 200})
	c.do(apiCall{method: "GET", path: cust + "/state", token: alice, want: 200})
	c.do(apiCall{method: "GET", path: cust + "/state?at=" + time.Now().UTC().Format(time.RFC3339Nano), token: alice, want: 200})
	c.do(apiCall{method: "GET", path: cust + "/state?at=2000-01-01T00:00:00Z", token: alice, want: 404, wantType: "customer-not-found"})
	c.do(apiCall{method: "GET", path: cust + "/state?revision=0&at=2000-01-01T00:00:00Z", token: alice, want: 400, wantType: "malformed-request"})
	c.do(apiCall{method: "GET", path: cust + "/state?revision=latest", token: alice, want: 400, wantType: "malformed-request", offContract: true})
	c.do(apiCall{method: "GET", path: cust + "/state?version=1", token: alice, want: 400, wantType: "malformed-request"})

	// Unknown customers.
	c.do(apiCall{method: "GET", path: "/v1/customers/" + unknown, token: alice, want: 404, wantType: "customer-not-found"})
	c.do(apiCall{method: "GET", path: "/v1/customers/" + unknown + "/events", token: alice, want: 404, wantType: "customer-not-found"})
	c.do(apiCall{method: "GET", path: "/v1/customers/" + unknown + "/state", token: alice, want: 404, wantType: "customer-not-found"})
	c.do(apiCall{method: "POST", path: "/v1/customers/" + unknown + "/notes", token: alice, body: obj{"text": "hello"}, want: 404, wantType: "customer-not-found"})
	c.do(apiCall{method: "POST", path: "/v1/customers/" + unknown + "/review/start", token: alice, want: 404, wantType: "customer-not-found"})

	// Read models: the list, the profile, the audit log and the history.
	c.do(apiCall{method: "GET", path: "/v1/customers", token: alice, want: 503, wantType: "read-models-unavailable"})
	c.do(apiCall{method: "GET", path: "/v1/audit", token: alice, want: 503, wantType: "read-models-unavailable"})
	c.do(apiCall{method: "GET", path: cust + "/history", token: alice, want: 503, wantType: "read-models-unavailable"})
	httpapi.CaughtUp(t, projEngine)
	rc := *c
	rc.base = readSrv.URL
	var list struct {
		Total int `json:"total"`
		Items []struct {
			ID string `json:"id"`
		} `json:"items"`
	}
	rc.do(apiCall{method: "GET", path: "/v1/customers", token: alice, want: 200}).decode(t, &list)
	if list.Total != 3 || len(list.Items) != 3 {
		t.Errorf("list: total %d with %d items, want the 3 customers of acme", list.Total, len(list.Items))
	}
	rc.do(apiCall{method: "GET", path: "/v1/customers?q=ada+lovelace&status=APPROVED&status=CREATED&risk=NORMAL&risk=HIGH&sort=name&page=1&per_page=50", token: alice, want: 200})
	rc.do(apiCall{method: "GET", path: "/v1/customers?created_from=2024-01-01&created_to=" + time.Now().UTC().Format(time.RFC3339) +
		"&updated_from=2024-01-01T00:00:00Z&expiry_from=2030-01-01&expiry_to=2040-12-31&age_min=18&age_max=99&nationality=GB&country=GB" +
		"&document_type=PASSPORT&video_call_status=BAD+QUALITY&verification_level=3&verification_status=identified&state=active" +
		"&tag=vip&access_role=customer&access_group=retail&agent=agent-7&referral_code=FRIEND1&sort=-last_status_update", token: alice, want: 200})
	rc.do(apiCall{method: "GET", path: "/v1/customers?company=acme&company=globex", token: root, want: 200})
	rc.do(apiCall{method: "GET", path: "/v1/customers?company=acme", token: alice, want: 403, wantType: "forbidden"})
	rc.do(apiCall{method: "GET", path: "/v1/customers", token: customer, want: 403, wantType: "forbidden"})
	rc.do(apiCall{method: "GET", path: "/v1/customers?per_page=25", token: alice, want: 422, wantType: "invalid-input", offContract: true})
	rc.do(apiCall{method: "GET", path: "/v1/customers?risk=LOW", token: alice, want: 422, wantType: "invalid-input", offContract: true})
	rc.do(apiCall{method: "GET", path: "/v1/customers?created_from=2024-02-01&created_to=2024-01-01", token: alice, want: 422, wantType: "invalid-input"})
	rc.do(apiCall{method: "GET", path: "/v1/customers?colour=red", token: alice, want: 422, wantType: "invalid-input"})
	prof := rc.do(apiCall{method: "GET", path: cust, token: alice, want: 200})
	var profile struct {
		Revision uint64 `json:"revision"`
		Customer struct {
			ID string `json:"id"`
		} `json:"customer"`
	}
	prof.decode(t, &profile)
	if profile.Customer.ID != id || prof.header.Get("ETag") != fmt.Sprintf(`"%d"`, profile.Revision) {
		t.Errorf("profile: customer %q, ETag %q, revision %d", profile.Customer.ID, prof.header.Get("ETag"), profile.Revision)
	}
	rc.do(apiCall{method: "GET", path: cust + fmt.Sprintf("?min_revision=%d", profile.Revision), token: alice, want: 200})
	rc.do(apiCall{method: "GET", path: cust2, token: customer, want: 200})
	rc.do(apiCall{method: "GET", path: cust, token: eve, want: 404, wantType: "customer-not-found"})
	late := rc.do(apiCall{method: "GET", path: cust + fmt.Sprintf("?min_revision=%d", profile.Revision+1), token: alice, want: 503, wantType: "revision-not-reached"})
	if late.header.Get("Retry-After") != "1" {
		t.Errorf("revision-not-reached: Retry-After %q, want 1", late.header.Get("Retry-After"))
	}
	rc.do(apiCall{method: "GET", path: cust + "?min_revision=latest", token: alice, want: 422, wantType: "invalid-input", offContract: true})
	rc.do(apiCall{method: "GET", path: cust + "?revision=1", token: alice, want: 422, wantType: "invalid-input"})
	rc.do(apiCall{method: "GET", path: "/v1/audit", token: alice, want: 200})
	rc.do(apiCall{method: "GET", path: "/v1/audit?customer=" + id + "&type=StatusChanged&type=CustomerRegistered&actor=alice&actor=bob&from=2024-01-01&to=" +
		time.Now().UTC().Format(time.DateOnly) + "&page=1&per_page=100", token: alice, want: 200})
	rc.do(apiCall{method: "GET", path: "/v1/audit?company=globex", token: root, want: 200})
	rc.do(apiCall{method: "GET", path: "/v1/audit?company=acme", token: eve, want: 403, wantType: "forbidden"})
	rc.do(apiCall{method: "GET", path: "/v1/audit?type=NoSuchEvent", token: alice, want: 422, wantType: "invalid-input", offContract: true})
	rc.do(apiCall{method: "GET", path: cust + "/history", token: alice, want: 200})
	rc.do(apiCall{method: "GET", path: cust2 + "/history", token: customer, want: 200})
	rc.do(apiCall{method: "GET", path: cust + "/history", token: eve, want: 404, wantType: "customer-not-found"})
	rc.do(apiCall{method: "GET", path: "/v1/customers/" + unknown + "/history", token: alice, want: 404, wantType: "customer-not-found"})
	rc.do(apiCall{method: "GET", path: cust + "/history?page=1", token: alice, want: 422, wantType: "invalid-input"})

	// Projections: status and rebuild, superusers only.
	c.do(apiCall{method: "GET", path: "/v1/projections", token: root, want: 503, wantType: "read-models-unavailable"})
	rc.do(apiCall{method: "GET", path: "/v1/projections", token: alice, want: 403, wantType: "forbidden"})
	rc.do(apiCall{method: "POST", path: "/v1/projections/customers/rebuild", token: alice, want: 403, wantType: "forbidden"})
	rc.do(apiCall{method: "POST", path: "/v1/projections/colours/rebuild", token: root, want: 404, wantType: "unknown-projection", offContract: true})
	rc.do(apiCall{method: "POST", path: "/v1/projections/audit/rebuild", token: root, want: 202})
	httpapi.CaughtUp(t, projEngine)
	var sts struct {
		Items []projections.Status `json:"items"`
	}
	rc.do(apiCall{method: "GET", path: "/v1/projections", token: root, want: 200}).decode(t, &sts)
	if len(sts.Items) != 2 || sts.Items[1].Name != projections.AuditProjection || sts.Items[1].Generation < 2 {
		t.Errorf("projection status after a rebuild of audit: %+v", sts.Items)
	}

	// Webhook deliveries of the events above: the receiver got acme's
	// registrations and status changes; the failing endpoint's deliveries
	// wait for their next round.
	var delivered, pending string
	acme := webhook.CompanyScope("acme")
	eventually(t, "webhook deliveries", func() bool {
		ds, _, err := hooks.ListDeliveries(context.Background(), acme, webhook.DeliveryFilter{EndpointID: strings.TrimPrefix(failingHook, "/v1/webhooks/")})
		if err != nil || len(ds) < 3 {
			return false
		}
		for _, d := range ds {
			if d.Rounds == 0 {
				return false
			}
		}
		pending = ds[0].ID
		ds, _, err = hooks.ListDeliveries(context.Background(), acme, webhook.DeliveryFilter{EndpointID: strings.TrimPrefix(hook, "/v1/webhooks/"), Status: webhook.StatusDelivered})
		if err != nil || len(ds) == 0 {
			return false
		}
		delivered = ds[0].ID
		return true
	})
	var page struct {
		Total int `json:"total"`
		Items []struct {
			Status string `json:"status"`
		} `json:"items"`
	}
	c.do(apiCall{method: "GET", path: hook + "/deliveries", token: alice, want: 200}).decode(t, &page)
	if page.Total < 3 {
		t.Errorf("%d deliveries, want at least acme's 3 registrations", page.Total)
	}
	c.do(apiCall{method: "GET", path: hook + "/deliveries?status=delivered&page=1&per_page=50", token: alice, want: 200})
	c.do(apiCall{method: "GET", path: failingHook + "/deliveries?status=pending", token: bob, want: 200}).decode(t, &page)
	if page.Total != 3 || page.Items[0].Status != "pending" {
		t.Errorf("failing endpoint: %d pending deliveries, want 3", page.Total)
	}
	c.do(apiCall{method: "GET", path: hook + "/deliveries?status=lost", token: alice, want: 422, wantType: "invalid-input", offContract: true})
	c.do(apiCall{method: "GET", path: hook + "/deliveries?colour=red", token: alice, want: 422, wantType: "invalid-input"})
	c.do(apiCall{method: "GET", path: hook + "/deliveries", token: eve, want: 404, wantType: "webhook-not-found"})
	var detail struct {
		Delivery struct {
			Status   string `json:"status"`
			Attempts int    `json:"attempts"`
		} `json:"delivery"`
		Attempts []struct {
			Status int `json:"status"`
		} `json:"attempts"`
	}
	c.do(apiCall{method: "GET", path: "/v1/webhook-deliveries/" + delivered, token: alice, want: 200}).decode(t, &detail)
	if detail.Delivery.Status != "delivered" || len(detail.Attempts) != 1 || detail.Attempts[0].Status != 204 {
		t.Errorf("delivered delivery: %+v", detail)
	}
	c.do(apiCall{method: "GET", path: "/v1/webhook-deliveries/" + pending, token: root, want: 200})
	c.do(apiCall{method: "GET", path: "/v1/webhook-deliveries/" + delivered, token: eve, want: 404, wantType: "webhook-not-found"})
	c.do(apiCall{method: "GET", path: "/v1/webhook-deliveries/" + unknown, token: alice, want: 404, wantType: "webhook-not-found"})
	c.do(apiCall{method: "POST", path: "/v1/webhook-deliveries/" + delivered + "/replay", token: alice, want: 202})
	c.do(apiCall{method: "POST", path: "/v1/webhook-deliveries/" + pending + "/replay", token: alice, body: obj{}, want: 409, wantType: "delivery-pending"})
	c.do(apiCall{method: "POST", path: "/v1/webhook-deliveries/" + delivered + "/replay", token: eve, want: 404, wantType: "webhook-not-found"})
	c.do(apiCall{method: "DELETE", path: failingHook, token: eve, want: 404, wantType: "webhook-not-found"})
	c.do(apiCall{method: "DELETE", path: failingHook, token: alice, want: 204})
	c.do(apiCall{method: "GET", path: "/v1/webhook-deliveries/" + pending, token: alice, want: 404, wantType: "webhook-not-found"})
	c.do(apiCall{method: "DELETE", path: failingHook, token: alice, want: 404, wantType: "webhook-not-found"})

	// Every documented operation must have been exercised.
	var missed []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			if c.covered[method+" "+path] == 0 {
				missed = append(missed, method+" "+path)
			}
		}
	}
	slices.Sort(missed)
	if len(missed) > 0 {
		t.Errorf("operations the flow never exercised:\n  %s", strings.Join(missed, "\n  "))
	}
}

// TestQueryEnumsMatchTheEngine keeps the document's closed value sets for
// query parameters in step with what the server accepts.
func TestQueryEnumsMatchTheEngine(t *testing.T) {
	doc := loadOpenAPI(t)
	enum := func(name string) []string {
		t.Helper()
		ref := doc.Components.Schemas[name]
		if ref == nil || ref.Value == nil {
			t.Fatalf("schema %s is missing", name)
		}
		var out []string
		for _, v := range ref.Value.Enum {
			out = append(out, fmt.Sprint(v))
		}
		slices.Sort(out)
		return out
	}
	svc, _ := enginetest.NewService(t)
	if got, want := enum("LifecycleStatus"), httpapi.LifecycleStatuses(svc.Lifecycles()); !slices.Equal(got, want) {
		t.Errorf("LifecycleStatus enum %v, want the lifecycles' statuses %v", got, want)
	}
	if got, want := enum("EventType"), svc.Codec().TypeNames(); !slices.Equal(got, want) {
		t.Errorf("EventType enum %v, want the codec's types %v", got, want)
	}
}

// eventually polls cond until it holds, for at most 10 seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
