package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/kycengine/kyc/domain"
)

// Problem is an RFC 9457 problem document.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	// Field names the first offending input; Errors lists all of them.
	Field  string         `json:"field,omitempty"`
	Errors []ProblemField `json:"errors,omitempty"`
	// AllowedStatuses and AllowedTransitions answer an illegal transition
	// with what the lifecycle allows now.
	AllowedStatuses    []string            `json:"allowed_statuses,omitempty"`
	AllowedTransitions []domain.Transition `json:"allowed_transitions,omitempty"`
	// NotApproved lists the check items that keep a check from finishing.
	NotApproved []string `json:"not_approved,omitempty"`
	// CurrentRevision is set on a 412.
	CurrentRevision *uint64 `json:"current_revision,omitempty"`
}

// ProblemField is one invalid input.
type ProblemField struct {
	Field   string `json:"field"`
	Pointer string `json:"pointer"`
	Detail  string `json:"detail"`
}

const problemBase = "https://kyc-engine.dev/problems/"

func writeProblem(w http.ResponseWriter, r *http.Request, p Problem) {
	if p.Type == "" {
		p.Type = "about:blank"
	}
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	p.Instance = r.URL.Path
	if len(p.Errors) > 0 && p.Field == "" {
		p.Field = p.Errors[0].Field
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

func fieldProblem(status int, kind, title, field, detail string) Problem {
	return Problem{Type: problemBase + kind, Title: title, Status: status, Detail: detail, Field: field,
		Errors: []ProblemField{{Field: field, Pointer: pointer(field), Detail: detail}}}
}

// pointer turns a field path such as "address.lines[0]" into a JSON pointer.
func pointer(field string) string {
	if field == "" {
		return ""
	}
	p := strings.NewReplacer(".", "/", "[", "/", "]", "").Replace(field)
	return "#/" + p
}

// problemFor maps an error from decoding or from the domain to a problem.
func problemFor(err error) Problem {
	var (
		fields   domain.FieldErrors
		field    *domain.FieldError
		te       *domain.TransitionError
		inc      *domain.CheckIncompleteError
		bodyErr  *requestError
		tooLarge *http.MaxBytesError
	)
	switch {
	case errors.As(err, &tooLarge):
		return fieldProblem(http.StatusRequestEntityTooLarge, "body-too-large", "Request body too large", "body",
			fmt.Sprintf("the body is larger than %d bytes", tooLarge.Limit))
	case errors.As(err, &bodyErr):
		return fieldProblem(bodyErr.status, bodyErr.kind, bodyErr.title, bodyErr.field, bodyErr.detail)
	case errors.As(err, &te):
		return Problem{Type: problemBase + "illegal-transition", Title: "Transition not allowed", Status: http.StatusConflict,
			Detail: err.Error(), Field: te.Field, AllowedStatuses: nonNil(te.AllowedStatuses()), AllowedTransitions: te.Allowed}
	case errors.As(err, &inc):
		return Problem{Type: problemBase + "check-incomplete", Title: "Check has items that are not approved", Status: http.StatusConflict,
			Detail: err.Error(), NotApproved: inc.NotApproved}
	case errors.As(err, &fields):
		p := Problem{Type: problemBase + "invalid-input", Title: "Invalid input", Status: http.StatusUnprocessableEntity, Detail: err.Error()}
		for _, f := range fields {
			p.Errors = append(p.Errors, ProblemField{Field: f.Field, Pointer: pointer(f.Field), Detail: f.Detail})
		}
		p.Field = p.Errors[0].Field
		return p
	case errors.As(err, &field):
		status, kind, title := statusFor(field.Err)
		return fieldProblem(status, kind, title, field.Field, field.Detail)
	}
	status, kind, title := statusFor(err)
	detail := err.Error()
	if status == http.StatusInternalServerError {
		detail = "the server could not complete the request; it has been logged"
	}
	return Problem{Type: problemBase + kind, Title: title, Status: status, Detail: detail}
}

func statusFor(err error) (int, string, string) {
	switch {
	case errors.Is(err, domain.ErrReasonRequired), errors.Is(err, domain.ErrReasonTooShort):
		return http.StatusUnprocessableEntity, "reason-required", "A longer reason is required"
	case errors.Is(err, domain.ErrIdempotencyKeyReused):
		return http.StatusUnprocessableEntity, "idempotency-key-reused", "Idempotency key reused"
	case errors.Is(err, domain.ErrInvalid):
		return http.StatusUnprocessableEntity, "invalid-input", "Invalid input"
	case errors.Is(err, domain.ErrUnknownLifecycle):
		return http.StatusUnprocessableEntity, "unknown-lifecycle", "Unknown lifecycle"
	case errors.Is(err, domain.ErrCustomerNotFound):
		return http.StatusNotFound, "customer-not-found", "Customer not found"
	case errors.Is(err, domain.ErrForbidden):
		return http.StatusForbidden, "forbidden", "Forbidden"
	case errors.Is(err, domain.ErrRevisionMismatch):
		return http.StatusPreconditionFailed, "revision-mismatch", "Customer changed since the given revision"
	case errors.Is(err, domain.ErrIllegalTransition):
		return http.StatusConflict, "illegal-transition", "Transition not allowed"
	case errors.Is(err, domain.ErrFourEyes):
		return http.StatusConflict, "four-eyes", "Approver must differ from the reviewer"
	case errors.Is(err, domain.ErrFinalRejection):
		return http.StatusConflict, "final-rejection", "Rejection is final"
	case errors.Is(err, domain.ErrIdentityRejected):
		return http.StatusConflict, "identity-rejected", "Identity document was rejected before"
	case errors.Is(err, domain.ErrReviewState):
		return http.StatusConflict, "review-state", "Review step not possible now"
	case errors.Is(err, domain.ErrCustomerExists):
		return http.StatusConflict, "customer-exists", "Customer already exists"
	case errors.Is(err, domain.ErrConcurrencyConflict):
		return http.StatusConflict, "concurrency-conflict", "Too many concurrent changes; retry"
	case errors.Is(err, domain.ErrStoreUnavailable):
		return http.StatusServiceUnavailable, "store-unavailable", "Event store unavailable"
	default:
		return http.StatusInternalServerError, "internal", "Internal server error"
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
