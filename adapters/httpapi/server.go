// Package httpapi is the engine's HTTP API: JSON commands and queries,
// RFC 9457 problems, bearer-token authentication.
package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/kycengine/kyc/domain"
	"github.com/kycengine/kyc/projections"
	"github.com/kycengine/kyc/schemas"
)

// RequestObserver is told about every request, for metrics.
type RequestObserver interface {
	Request(method, route string, status int, d time.Duration)
}

// Config wires the API.
type Config struct {
	Service *domain.Service
	Auth    *Authenticator
	Logger  *slog.Logger
	// Metrics serves /metrics; Ready answers /readyz (nil: always ready).
	Metrics  http.Handler
	Ready    func(context.Context) error
	Observer RequestObserver
	Clock    func() time.Time
	// Reader serves the read models (list, profile, audit log, history);
	// nil leaves those routes answering 503 and GET /v1/customers/{id}
	// reading the event store.
	Reader *projections.Reader
	// Projections reports and rebuilds the projections (nil: those routes
	// answer 503).
	Projections ProjectionAdmin
	// SocketTokens issues the tokens of the live profile socket and Socket
	// serves GET /v1/ws (nil: those routes answer 503).
	SocketTokens SocketTokens
	Socket       http.Handler
	// Webhooks manages the webhook endpoints and their deliveries (nil:
	// those routes answer 503).
	Webhooks Webhooks
}

// SocketTokens issues short-lived tokens for the live profile socket, bound
// to one customer and the caller.
type SocketTokens interface {
	Issue(customerID string, actor domain.Actor) (token string, expires time.Time, err error)
}

// Server holds the API's dependencies.
type Server struct {
	svc         *domain.Service
	auth        *Authenticator
	log         *slog.Logger
	metrics     http.Handler
	ready       func(context.Context) error
	observer    RequestObserver
	clock       func() time.Time
	reader      *projections.Reader
	projections ProjectionAdmin
	tokens      SocketTokens
	socket      http.Handler
	webhooks    Webhooks
	routes      []Route
}

// Route is one operation of the API. Routes are a table so the OpenAPI test
// can compare them with the document.
type Route struct {
	Method  string
	Path    string
	Public  bool
	handler http.HandlerFunc
}

// New validates the configuration and builds the route table.
func New(cfg Config) (*Server, error) {
	if cfg.Service == nil || cfg.Auth == nil {
		return nil, errors.New("httpapi: service and authenticator are required")
	}
	s := &Server{svc: cfg.Service, auth: cfg.Auth, log: cfg.Logger, metrics: cfg.Metrics, ready: cfg.Ready, observer: cfg.Observer, clock: cfg.Clock, reader: cfg.Reader,
		projections: cfg.Projections, tokens: cfg.SocketTokens, socket: cfg.Socket, webhooks: cfg.Webhooks}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	s.routes = s.buildRoutes()
	return s, nil
}

// Routes lists the API's operations.
func (s *Server) Routes() []Route { return append([]Route{}, s.routes...) }

func (s *Server) buildRoutes() []Route {
	pub := func(method, path string, h http.HandlerFunc) Route {
		return Route{Method: method, Path: path, Public: true, handler: h}
	}
	auth := func(method, path string, h http.HandlerFunc) Route {
		return Route{Method: method, Path: path, handler: h}
	}
	rs := []Route{
		pub("GET", "/healthz", s.healthz),
		pub("GET", "/readyz", s.readyz),
		pub("GET", "/metrics", s.serveMetrics),
		pub("GET", "/v1/openapi.yaml", s.openapi),
		auth("GET", "/v1/lifecycles", s.listLifecycles),
		auth("GET", "/v1/lifecycles/{name}", s.getLifecycle),
		auth("POST", "/v1/customers", s.register),
		auth("GET", "/v1/customers", s.listCustomers),
		auth("GET", "/v1/audit", s.audit),
		auth("GET", "/v1/customers/{id}", s.getProfile),
		auth("GET", "/v1/customers/{id}/history", s.history),
		auth("GET", "/v1/projections", s.projectionStatus),
		auth("POST", "/v1/projections/{name}/rebuild", s.rebuildProjection),
		auth("POST", "/v1/webhooks", s.createWebhook),
		auth("GET", "/v1/webhooks", s.listWebhooks),
		auth("GET", "/v1/webhooks/{id}", s.getWebhook),
		auth("DELETE", "/v1/webhooks/{id}", s.deleteWebhook),
		auth("POST", "/v1/webhooks/{id}/secrets", s.rotateWebhookSecret),
		auth("GET", "/v1/webhooks/{id}/deliveries", s.listWebhookDeliveries),
		// Deliveries have their own root: under /v1/webhooks/deliveries/{id}
		// they would clash with /v1/webhooks/{id}/deliveries.
		auth("GET", "/v1/webhook-deliveries/{id}", s.getWebhookDelivery),
		auth("POST", "/v1/webhook-deliveries/{id}/replay", s.replayWebhookDelivery),
		auth("PATCH", "/v1/customers/{id}", command(s, func(b updateProfileRequest) (domain.Command, error) { return b.command(), nil })),
		auth("GET", "/v1/customers/{id}/events", s.events),
		auth("GET", "/v1/customers/{id}/state", s.state),
		auth("POST", "/v1/customers/{id}/socket-token", s.socketToken),
		// The socket checks its own token: browsers cannot set headers on
		// a WebSocket request.
		pub("GET", "/v1/ws", s.liveSocket),
		auth("POST", "/v1/customers/{id}/status", command(s, func(b statusRequest) (domain.Command, error) {
			return domain.ChangeStatus{Status: b.Status, Reason: b.Reason, Labels: b.Labels, RejectType: b.RejectType}, nil
		})),
		auth("POST", "/v1/customers/{id}/transitions/{event}", s.transition),
		auth("PATCH", "/v1/customers/{id}/activate", s.fixedTransition("activate")),
		auth("PATCH", "/v1/customers/{id}/deactivate", s.fixedTransition("deactivate")),
		auth("POST", "/v1/customers/{id}/documents", command(s, func(b documentRequest) (domain.Command, error) {
			return domain.UploadDocument{DocumentID: b.DocumentID, Type: b.Type, Number: b.Number, Country: b.Country, ExpiryDate: b.ExpiryDate, FileDigest: b.FileDigest}, nil
		})),
		auth("POST", "/v1/customers/{id}/review/start", s.bodyless(domain.StartCheck{})),
		auth("POST", "/v1/customers/{id}/review/items", command(s, func(b reviewItemRequest) (domain.Command, error) {
			return domain.ReviewItem{Item: b.Item, Decision: b.Decision, Comment: b.Comment}, nil
		})),
		auth("POST", "/v1/customers/{id}/review/finish", s.bodyless(domain.FinishCheck{})),
		auth("POST", "/v1/customers/{id}/review/reject", command(s, func(b rejectRequest) (domain.Command, error) {
			return domain.RejectCheck{Reason: b.Reason, Labels: b.Labels, RejectType: b.RejectType, ClientComment: b.ClientComment}, nil
		})),
		auth("POST", "/v1/customers/{id}/review/resubmission", command(s, func(b resubmissionRequest) (domain.Command, error) {
			return domain.RequestResubmission{Items: b.Items, Comment: b.Comment}, nil
		})),
		auth("POST", "/v1/customers/{id}/resubmission", command(s, func(b resubmitRequest) (domain.Command, error) {
			return domain.SubmitResubmission{Items: b.Items}, nil
		})),
		auth("PUT", "/v1/customers/{id}/risk", command(s, func(b riskRequest) (domain.Command, error) {
			if b.Risk == nil {
				return nil, missing("risk")
			}
			return domain.AssessRisk{Risk: *b.Risk, Source: b.Source}, nil
		})),
		auth("PUT", "/v1/customers/{id}/aml", command(s, func(b amlRequest) (domain.Command, error) {
			return domain.RecordAMLScreening{Result: b.Result, Provider: b.Provider, Reference: b.Reference}, nil
		})),
		auth("PUT", "/v1/customers/{id}/video-call-status", command(s, func(b videoCallRequest) (domain.Command, error) {
			return domain.SetVideoCallStatus{Status: b.Status}, nil
		})),
		auth("PUT", "/v1/customers/{id}/biopay", command(s, func(b bioPayRequest) (domain.Command, error) {
			if b.Enabled == nil {
				return nil, missing("enabled")
			}
			return domain.SetBioPay{Enabled: *b.Enabled}, nil
		})),
		auth("PUT", "/v1/customers/{id}/verification-level", command(s, func(b levelRequest) (domain.Command, error) {
			if b.Level == nil {
				return nil, missing("level")
			}
			return domain.SetVerificationLevel{Level: *b.Level}, nil
		})),
		auth("POST", "/v1/customers/{id}/contacts/verification", command(s, func(b contactRequest) (domain.Command, error) {
			if b.Verified == nil {
				return nil, missing("verified")
			}
			return domain.VerifyContact{Channel: b.Channel, Verified: *b.Verified}, nil
		})),
		auth("POST", "/v1/customers/{id}/notes", command(s, func(b noteRequest) (domain.Command, error) {
			return domain.AddNote{Text: b.Text}, nil
		})),
		auth("POST", "/v1/customers/{id}/tags", command(s, func(b tagsRequest) (domain.Command, error) {
			return domain.ChangeTags{Add: b.Add, Remove: b.Remove}, nil
		})),
		auth("POST", "/v1/customers/{id}/steps", command(s, func(b stepRequest) (domain.Command, error) {
			return domain.RecordStepResult{Step: b.Step, Result: b.Result, Details: b.Details}, nil
		})),
		auth("PUT", "/v1/customers/{id}/ai-summary", command(s, func(b aiSummaryRequest) (domain.Command, error) {
			return domain.RecordAISummary{Summary: b.Summary, Model: b.Model}, nil
		})),
		auth("PUT", "/v1/customers/{id}/services", command(s, func(b servicesRequest) (domain.Command, error) {
			if b.ActiveServices == nil {
				return nil, missing("active_services")
			}
			return domain.SetServices{ActiveServices: b.ActiveServices}, nil
		})),
		auth("PUT", "/v1/customers/{id}/access", command(s, func(b accessRequest) (domain.Command, error) {
			return domain.SetAccess{AccessRoles: b.AccessRoles, AccessGroups: b.AccessGroups}, nil
		})),
	}
	return rs
}

func missing(field string) error {
	return &domain.FieldError{Field: field, Detail: "is required", Err: domain.ErrInvalid}
}

// Handler returns the API with its middleware.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	paths := map[string][]string{}
	for _, rt := range s.routes {
		h := rt.handler
		if !rt.Public {
			h = s.authenticated(h)
		}
		mux.Handle(rt.Method+" "+rt.Path, s.instrument(rt.Path, h))
		paths[rt.Path] = append(paths[rt.Path], rt.Method)
	}
	// A known path with another method gets a problem document, not the
	// mux's plain-text answer.
	for path, methods := range paths {
		allow := strings.Join(methods, ", ")
		mux.Handle(path, s.instrument(path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeProblem(w, r, Problem{Type: problemBase + "method-not-allowed", Status: http.StatusMethodNotAllowed,
				Detail: fmt.Sprintf("%s is not supported here; use %s", r.Method, allow)})
		})))
	}
	mux.Handle("/", s.instrument("unknown", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, Problem{Type: problemBase + "not-found", Status: http.StatusNotFound, Detail: "no such route; see /v1/openapi.yaml"})
	})))
	return s.recoverer(mux)
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// Hijack lets the WebSocket upgrade through the recorder.
func (r *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := r.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("httpapi: the connection cannot be taken over")
	}
	r.status = http.StatusSwitchingProtocols
	return h.Hijack()
}

// Unwrap gives http.ResponseController the writer underneath.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (s *Server) instrument(route string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		d := time.Since(start)
		if s.observer != nil {
			s.observer.Request(r.Method, route, rec.status, d)
		}
		if rec.status >= 500 {
			s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "status", rec.status, "duration", d)
		} else {
			s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", rec.status, "duration", d)
		}
	})
}

func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("panic in handler", "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
				writeProblem(w, r, Problem{Status: http.StatusInternalServerError, Detail: "the server could not complete the request; it has been logged"})
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func (s *Server) authenticated(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		caller, ok := s.auth.Authenticate(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="kyc"`)
			writeProblem(w, r, Problem{Type: problemBase + "unauthenticated", Status: http.StatusUnauthorized,
				Detail: "send Authorization: Bearer <token> with a token from the keys file", Field: "Authorization"})
			return
		}
		next(w, r.WithContext(withCaller(r.Context(), caller)))
	}
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	p := problemFor(err)
	if p.Status >= 500 {
		s.log.Error("request error", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if errors.Is(err, domain.ErrRevisionMismatch) {
		if c, gerr := s.svc.Get(r.Context(), callerFrom(r.Context()), r.PathValue("id")); gerr == nil {
			p.CurrentRevision = &c.Revision
			w.Header().Set("ETag", etag(c.Revision))
		}
	}
	writeProblem(w, r, p)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

func etag(rev uint64) string { return `"` + strconv.FormatUint(rev, 10) + `"` }

// options reads the per-request command options from headers.
func (s *Server) options(r *http.Request) (domain.Options, error) {
	key, err := parseIdempotencyKey(r.Header.Get("Idempotency-Key"))
	if err != nil {
		return domain.Options{}, err
	}
	rev, err := parseIfMatch(r.Header.Get("If-Match"))
	if err != nil {
		return domain.Options{}, err
	}
	correlation, causation := r.Header.Get("X-Correlation-ID"), r.Header.Get("X-Causation-ID")
	for name, v := range map[string]string{"X-Correlation-ID": correlation, "X-Causation-ID": causation} {
		if len(v) > 128 {
			return domain.Options{}, badRequest(name, "is longer than 128 characters")
		}
	}
	return domain.Options{Caller: callerFrom(r.Context()), IdempotencyKey: key, ExpectedRevision: rev,
		CorrelationID: correlation, CausationID: causation}, nil
}

// command builds a handler for a command with a JSON body of type B.
func command[B any](s *Server, build func(B) (domain.Command, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var body B
		if err := decodeBody(r, &body); err != nil {
			s.fail(w, r, err)
			return
		}
		cmd, err := build(body)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		s.execute(w, r, cmd)
	}
}

// bodyless builds a handler for a command that takes no input; an empty body
// or an empty object is accepted.
func (s *Server) bodyless(cmd domain.Command) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := decodeOptionalEmpty(r); err != nil {
			s.fail(w, r, err)
			return
		}
		s.execute(w, r, cmd)
	}
}

func decodeOptionalEmpty(r *http.Request) error {
	if r.ContentLength == 0 {
		return nil
	}
	var empty struct{}
	return decodeBody(r, &empty)
}

func (s *Server) transition(w http.ResponseWriter, r *http.Request) {
	s.fireTransition(w, r, r.PathValue("event"))
}

// fixedTransition serves seed 004's PATCH activate / deactivate.
func (s *Server) fixedTransition(event string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { s.fireTransition(w, r, event) }
}

// fireTransition fires a lifecycle event; the body ({"reason", "labels",
// "reject_type"}) is optional because most events need no reason.
func (s *Server) fireTransition(w http.ResponseWriter, r *http.Request, event string) {
	var body transitionRequest
	if r.ContentLength != 0 {
		if err := decodeBody(r, &body); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	s.execute(w, r, domain.FireTransition{Event: event, Reason: body.Reason, Labels: body.Labels, RejectType: body.RejectType})
}

func (s *Server) execute(w http.ResponseWriter, r *http.Request, cmd domain.Command) {
	opts, err := s.options(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	res, err := s.svc.Execute(r.Context(), r.PathValue("id"), cmd, opts)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeResult(w, r, http.StatusOK, res)
}

func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	var body registerRequest
	if err := decodeBody(r, &body); err != nil {
		s.fail(w, r, err)
		return
	}
	opts, err := s.options(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if opts.ExpectedRevision != nil {
		s.fail(w, r, badRequest("If-Match", "a new customer has no revision to match"))
		return
	}
	res, err := s.svc.Register(r.Context(), body.command(), opts)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/customers/"+res.Customer.ID)
	s.writeResult(w, r, http.StatusCreated, res)
}

// commandResponse is the answer to every command.
type commandResponse struct {
	ID       string                 `json:"id"`
	Status   string                 `json:"status"`
	Revision uint64                 `json:"revision"`
	Replayed bool                   `json:"replayed"`
	Events   []domain.RecordedEvent `json:"events"`
	Customer customerView           `json:"customer"`
}

func (s *Server) writeResult(w http.ResponseWriter, r *http.Request, status int, res domain.Result) {
	c := res.Customer
	w.Header().Set("ETag", etag(c.Revision))
	if res.Replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	events := res.Events
	if events == nil {
		events = []domain.RecordedEvent{}
	}
	writeJSON(w, status, commandResponse{ID: c.ID, Status: c.Status, Revision: c.Revision, Replayed: res.Replayed,
		Events: events, Customer: s.view(callerFrom(r.Context()), c)})
}

func (s *Server) getCustomer(w http.ResponseWriter, r *http.Request) {
	c, err := s.svc.Get(r.Context(), callerFrom(r.Context()), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("ETag", etag(c.Revision))
	writeJSON(w, http.StatusOK, s.view(callerFrom(r.Context()), c))
}

func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	if callerFrom(r.Context()).Actor.Kind == domain.ActorCustomer {
		// The log carries internal reasons and reviewers' comments that are
		// never shown to the customer (seed 002).
		writeProblem(w, r, Problem{Type: problemBase + "forbidden", Status: http.StatusForbidden, Detail: "the event log is for operators and auditors"})
		return
	}
	events, err := s.svc.Events(r.Context(), callerFrom(r.Context()), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": events})
}

type socketTokenResponse struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	URL       string    `json:"url"`
}

// socketToken gives the caller a token for the live socket of a customer it
// may see; the check is the same as for reading the customer.
func (s *Server) socketToken(w http.ResponseWriter, r *http.Request) {
	if s.tokens == nil {
		socketDisabled(w, r)
		return
	}
	caller := callerFrom(r.Context())
	id := r.PathValue("id")
	if _, err := s.svc.Get(r.Context(), caller, id); err != nil {
		s.fail(w, r, err)
		return
	}
	token, expires, err := s.tokens.Issue(id, caller.Actor)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, socketTokenResponse{Token: token, ExpiresAt: expires, URL: "/v1/ws?token=" + url.QueryEscape(token)})
}

func socketDisabled(w http.ResponseWriter, r *http.Request) {
	writeProblem(w, r, Problem{Type: problemBase + "unavailable", Status: http.StatusServiceUnavailable, Detail: "the live socket is not enabled on this server"})
}

func (s *Server) liveSocket(w http.ResponseWriter, r *http.Request) {
	if s.socket == nil {
		socketDisabled(w, r)
		return
	}
	s.socket.ServeHTTP(w, r)
}

func (s *Server) state(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for name := range q {
		if name != "revision" && name != "at" {
			s.fail(w, r, badRequest(name, "unknown query parameter; use revision or at"))
			return
		}
	}
	var (
		rev *uint64
		at  *time.Time
	)
	if v := q.Get("revision"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			s.fail(w, r, badRequest("revision", "%q is not a revision number", v))
			return
		}
		rev = &n
	}
	if v := q.Get("at"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			s.fail(w, r, badRequest("at", "%q is not an RFC 3339 time", v))
			return
		}
		at = &t
	}
	if rev != nil && at != nil {
		s.fail(w, r, badRequest("at", "give revision or at, not both"))
		return
	}
	c, err := s.svc.StateAt(r.Context(), callerFrom(r.Context()), r.PathValue("id"), rev, at)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.view(callerFrom(r.Context()), c))
}

func (s *Server) listLifecycles(w http.ResponseWriter, r *http.Request) {
	ls := s.svc.Lifecycles()
	var out []lifecycleView
	for _, name := range ls.Names() {
		l, _ := ls.Latest(name)
		out = append(out, lifecycleViewOf(l, name == ls.Default()))
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": out})
}

func (s *Server) getLifecycle(w http.ResponseWriter, r *http.Request) {
	ls := s.svc.Lifecycles()
	l, err := ls.Latest(r.PathValue("name"))
	if err != nil {
		writeProblem(w, r, Problem{Type: problemBase + "unknown-lifecycle", Status: http.StatusNotFound, Detail: err.Error(), Field: "name"})
		return
	}
	writeJSON(w, http.StatusOK, lifecycleViewOf(l, l.Name() == ls.Default()))
}

type lifecycleView struct {
	Name       string            `json:"name"`
	Version    int               `json:"version"`
	Default    bool              `json:"default"`
	Definition domain.Definition `json:"definition"`
	Mermaid    string            `json:"mermaid"`
}

func lifecycleViewOf(l *domain.Lifecycle, isDefault bool) lifecycleView {
	return lifecycleView{Name: l.Name(), Version: l.Version(), Default: isDefault, Definition: l.Definition(), Mermaid: l.Mermaid()}
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.ready(ctx); err != nil {
			writeProblem(w, r, Problem{Type: problemBase + "not-ready", Status: http.StatusServiceUnavailable, Detail: err.Error()})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	if s.metrics == nil {
		writeProblem(w, r, Problem{Status: http.StatusNotFound, Detail: "metrics are not enabled"})
		return
	}
	s.metrics.ServeHTTP(w, r)
}

func (s *Server) openapi(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(schemas.OpenAPI())
}
