package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/kycengine/kyc/adapters/delivery/webhook"
	"github.com/kycengine/kyc/domain"
)

// Webhooks is what the API needs of the webhook service
// (*webhook.Service). The scope passed in is the caller's: its company, or
// everything for a superuser, so another company's endpoints and
// deliveries answer 404 as if absent.
type Webhooks interface {
	CreateEndpoint(ctx context.Context, in webhook.EndpointInput) (webhook.Endpoint, string, error)
	ListEndpoints(ctx context.Context, scope webhook.Scope) ([]webhook.Endpoint, error)
	GetEndpoint(ctx context.Context, scope webhook.Scope, id string) (webhook.Endpoint, error)
	DeleteEndpoint(ctx context.Context, scope webhook.Scope, id string) error
	RotateSecret(ctx context.Context, scope webhook.Scope, id string) (webhook.Endpoint, string, error)
	ListDeliveries(ctx context.Context, scope webhook.Scope, f webhook.DeliveryFilter) ([]webhook.Delivery, int, error)
	GetDelivery(ctx context.Context, scope webhook.Scope, id string) (webhook.Delivery, []byte, error)
	Attempts(ctx context.Context, scope webhook.Scope, deliveryID string) ([]webhook.Attempt, error)
	Replay(ctx context.Context, scope webhook.Scope, id string) (webhook.Delivery, error)
}

type webhookRequest struct {
	URL         string   `json:"url"`
	Types       []string `json:"types"`
	Description string   `json:"description"`
	Company     string   `json:"company"`
}

// endpointWithSecret answers a creation or a rotation: the only answers
// that show a secret.
type endpointWithSecret struct {
	Endpoint webhook.Endpoint `json:"endpoint"`
	Secret   string           `json:"secret"`
}

type deliveryPage struct {
	Total   int                `json:"total"`
	Page    int                `json:"page"`
	PerPage int                `json:"per_page"`
	Items   []webhook.Delivery `json:"items"`
}

type attemptView struct {
	Attempt    int       `json:"attempt"`
	At         time.Time `json:"at"`
	Status     *int      `json:"status,omitempty"`
	Error      string    `json:"error,omitempty"`
	DurationMS int64     `json:"duration_ms"`
}

type deliveryDetail struct {
	Delivery webhook.Delivery `json:"delivery"`
	Attempts []attemptView    `json:"attempts"`
	// Payload is the body every attempt POSTs.
	Payload json.RawMessage `json:"payload"`
}

// webhookScope admits operators, API keys and system callers (customers
// manage no integrations) and says what they may see.
func (s *Server) webhookScope(w http.ResponseWriter, r *http.Request) (webhook.Scope, bool) {
	caller := callerFrom(r.Context())
	if caller.Actor.Kind == domain.ActorCustomer {
		writeProblem(w, r, Problem{Type: problemBase + "forbidden", Status: http.StatusForbidden,
			Detail: "webhooks are managed by operators and API keys"})
		return webhook.Scope{}, false
	}
	if s.webhooks == nil {
		writeProblem(w, r, Problem{Type: problemBase + "webhooks-unavailable", Status: http.StatusServiceUnavailable,
			Detail: "this server delivers no webhooks"})
		return webhook.Scope{}, false
	}
	if caller.IsSuperuser() {
		return webhook.Everything(), true
	}
	return webhook.CompanyScope(caller.Actor.Company), true
}

// webhookFail maps the webhook service's errors to problems.
func (s *Server) webhookFail(w http.ResponseWriter, r *http.Request, err error) {
	var verr *webhook.ValidationError
	switch {
	case errors.As(err, &verr):
		p := Problem{Type: problemBase + "invalid-input", Title: "Invalid input", Status: http.StatusUnprocessableEntity, Detail: err.Error()}
		for _, f := range verr.Fields {
			p.Errors = append(p.Errors, ProblemField{Field: f.Field, Pointer: pointer(f.Field), Detail: f.Detail})
		}
		writeProblem(w, r, p)
	case errors.Is(err, webhook.ErrNotFound):
		writeProblem(w, r, Problem{Type: problemBase + "webhook-not-found", Title: "Webhook not found", Status: http.StatusNotFound, Detail: err.Error()})
	case errors.Is(err, webhook.ErrPending):
		writeProblem(w, r, Problem{Type: problemBase + "delivery-pending", Title: "Delivery still pending", Status: http.StatusConflict,
			Detail: err.Error() + "; it is retried on its schedule, replay it once it is delivered or dead"})
	default:
		s.fail(w, r, err)
	}
}

func (s *Server) createWebhook(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.webhookScope(w, r); !ok {
		return
	}
	var body webhookRequest
	if err := decodeBody(r, &body); err != nil {
		s.fail(w, r, err)
		return
	}
	caller := callerFrom(r.Context())
	company := body.Company
	if company == "" {
		company = caller.Actor.Company
	}
	if company != caller.Actor.Company && !caller.IsSuperuser() {
		writeProblem(w, r, fieldProblem(http.StatusForbidden, "forbidden", "Forbidden", "company",
			"only a superuser may register an endpoint for another company or for every company (\"*\")"))
		return
	}
	ep, secret, err := s.webhooks.CreateEndpoint(r.Context(), webhook.EndpointInput{Company: company, URL: body.URL, Types: body.Types, Description: body.Description})
	if err != nil {
		s.webhookFail(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/webhooks/"+ep.ID)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, endpointWithSecret{Endpoint: ep, Secret: secret})
}

func (s *Server) listWebhooks(w http.ResponseWriter, r *http.Request) {
	scope, ok := s.webhookScope(w, r)
	if !ok {
		return
	}
	es, err := s.webhooks.ListEndpoints(r.Context(), scope)
	if err != nil {
		s.webhookFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": es})
}

func (s *Server) getWebhook(w http.ResponseWriter, r *http.Request) {
	scope, ok := s.webhookScope(w, r)
	if !ok {
		return
	}
	ep, err := s.webhooks.GetEndpoint(r.Context(), scope, r.PathValue("id"))
	if err != nil {
		s.webhookFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ep)
}

func (s *Server) deleteWebhook(w http.ResponseWriter, r *http.Request) {
	scope, ok := s.webhookScope(w, r)
	if !ok {
		return
	}
	if err := s.webhooks.DeleteEndpoint(r.Context(), scope, r.PathValue("id")); err != nil {
		s.webhookFail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) rotateWebhookSecret(w http.ResponseWriter, r *http.Request) {
	scope, ok := s.webhookScope(w, r)
	if !ok {
		return
	}
	if err := decodeOptionalEmpty(r); err != nil {
		s.fail(w, r, err)
		return
	}
	ep, secret, err := s.webhooks.RotateSecret(r.Context(), scope, r.PathValue("id"))
	if err != nil {
		s.webhookFail(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, endpointWithSecret{Endpoint: ep, Secret: secret})
}

func (s *Server) listWebhookDeliveries(w http.ResponseWriter, r *http.Request) {
	scope, ok := s.webhookScope(w, r)
	if !ok {
		return
	}
	f := webhook.DeliveryFilter{EndpointID: r.PathValue("id"), Page: 1, PerPage: webhook.DefaultPerPage}
	verr := &webhook.ValidationError{}
	for name, values := range r.URL.Query() {
		if len(values) > 1 {
			verr.Fields = append(verr.Fields, webhook.FieldError{Field: name, Detail: "is given more than once"})
			continue
		}
		v := values[0]
		switch name {
		case "status":
			f.Status = v
		case "page":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 1_000_000 {
				verr.Fields = append(verr.Fields, webhook.FieldError{Field: "page", Detail: "must be a number from 1 to 1000000"})
			}
			f.Page = n
		case "per_page":
			n, err := strconv.Atoi(v)
			if err != nil || (n != 20 && n != 50 && n != 100) {
				verr.Fields = append(verr.Fields, webhook.FieldError{Field: "per_page", Detail: "must be 20, 50 or 100"})
			}
			f.PerPage = n
		default:
			verr.Fields = append(verr.Fields, webhook.FieldError{Field: name, Detail: "unknown query parameter; use status, page or per_page"})
		}
	}
	if len(verr.Fields) > 0 {
		s.webhookFail(w, r, verr)
		return
	}
	items, total, err := s.webhooks.ListDeliveries(r.Context(), scope, f)
	if err != nil {
		s.webhookFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, deliveryPage{Total: total, Page: f.Page, PerPage: f.PerPage, Items: items})
}

func (s *Server) getWebhookDelivery(w http.ResponseWriter, r *http.Request) {
	scope, ok := s.webhookScope(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	d, payload, err := s.webhooks.GetDelivery(r.Context(), scope, id)
	if err != nil {
		s.webhookFail(w, r, err)
		return
	}
	as, err := s.webhooks.Attempts(r.Context(), scope, id)
	if err != nil {
		s.webhookFail(w, r, err)
		return
	}
	views := make([]attemptView, len(as))
	for i, a := range as {
		views[i] = attemptView{Attempt: a.Number, At: a.At, Status: a.Status, Error: a.Error, DurationMS: a.Duration.Milliseconds()}
	}
	writeJSON(w, http.StatusOK, deliveryDetail{Delivery: d, Attempts: views, Payload: payload})
}

// replayWebhookDelivery queues a dead or delivered delivery again; it is
// sent in the background, hence 202.
func (s *Server) replayWebhookDelivery(w http.ResponseWriter, r *http.Request) {
	scope, ok := s.webhookScope(w, r)
	if !ok {
		return
	}
	if err := decodeOptionalEmpty(r); err != nil {
		s.fail(w, r, err)
		return
	}
	d, err := s.webhooks.Replay(r.Context(), scope, r.PathValue("id"))
	if err != nil {
		s.webhookFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, d)
}
