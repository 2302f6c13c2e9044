package domain

import (
	"errors"
	"fmt"
	"strings"
)

// Domain refusals. Each is a sentinel so callers match with errors.Is; the
// error values returned carry details through the types below.
var (
	// ErrInvalid: a command's input is malformed or out of range.
	ErrInvalid = errors.New("invalid input")
	// ErrIllegalTransition: the lifecycle does not allow the move now.
	ErrIllegalTransition = errors.New("transition not allowed")
	// ErrReasonRequired: the transition needs a reason and none was given.
	ErrReasonRequired = errors.New("reason required")
	// ErrReasonTooShort: the reason is not longer than the lifecycle's minimum.
	ErrReasonTooShort = errors.New("reason too short")
	// ErrFourEyes: the approver is the person who sent the case for approval.
	ErrFourEyes = errors.New("four-eyes rule: approver must differ from the reviewer")
	// ErrFinalRejection: the last rejection was FINAL; the case cannot reopen.
	ErrFinalRejection = errors.New("rejection is final")
	// ErrForbidden: the caller's roles do not allow the action.
	ErrForbidden = errors.New("forbidden")
	// ErrIdentityRejected: the identity document belongs to a rejected customer
	// under a lifecycle that never onboards it again.
	ErrIdentityRejected = errors.New("identity document was rejected before")
	// ErrCustomerNotFound: no customer with that id (or not visible to the caller).
	ErrCustomerNotFound = errors.New("customer not found")
	// ErrCustomerExists: a registration named an id that is already taken.
	ErrCustomerExists = errors.New("customer already exists")
	// ErrUnknownLifecycle: no lifecycle definition by that name and version.
	ErrUnknownLifecycle = errors.New("unknown lifecycle")
	// ErrReviewState: the review workflow step does not fit the case's state
	// (no open check, a check already open, not in review).
	ErrReviewState = errors.New("review step not possible now")
	// ErrCheckIncomplete: the check cannot be finished as approved because
	// items are not approved.
	ErrCheckIncomplete = errors.New("check has items that are not approved")
	// ErrRevisionMismatch: the caller's If-Match revision is not the current one.
	ErrRevisionMismatch = errors.New("revision mismatch")
	// ErrIdempotencyKeyReused: an idempotency key that answered one request
	// was sent with a different one (another customer or command).
	ErrIdempotencyKeyReused = errors.New("idempotency key was used for a different request")
)

// FieldError is an ErrInvalid (or another refusal) about one input field. The
// HTTP layer names Field in its problem document.
type FieldError struct {
	Field  string
	Detail string
	Err    error
}

func (e *FieldError) Error() string { return fmt.Sprintf("%s: %s", e.Field, e.Detail) }
func (e *FieldError) Unwrap() error {
	if e.Err == nil {
		return ErrInvalid
	}
	return e.Err
}

func invalid(field, format string, args ...any) error {
	return &FieldError{Field: field, Detail: fmt.Sprintf(format, args...), Err: ErrInvalid}
}

// FieldErrors collects several FieldErrors so a client learns every problem
// with its request at once.
type FieldErrors []*FieldError

func (es FieldErrors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "; ")
}

// Unwrap lets errors.Is find ErrInvalid (and any other cause) in the list.
func (es FieldErrors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

func (es FieldErrors) orNil() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

func (es *FieldErrors) add(field, format string, args ...any) {
	*es = append(*es, &FieldError{Field: field, Detail: fmt.Sprintf(format, args...), Err: ErrInvalid})
}

// TransitionError is an ErrIllegalTransition with what is allowed instead.
type TransitionError struct {
	Lifecycle string
	From      string
	// Requested is the event or target status the caller asked for, and
	// Field says which of the two ("event" or "status").
	Requested string
	Field     string
	// Allowed lists the transitions possible from From for this caller.
	Allowed []Transition
}

func (e *TransitionError) Error() string {
	targets := make([]string, len(e.Allowed))
	for i, t := range e.Allowed {
		targets[i] = t.To
	}
	return fmt.Sprintf("%s: %s in lifecycle %s does not allow %q (allowed now: %s)",
		ErrIllegalTransition, e.From, e.Lifecycle, e.Requested, strings.Join(targets, ", "))
}

func (e *TransitionError) Unwrap() error { return ErrIllegalTransition }

// AllowedStatuses lists the distinct target statuses of the allowed moves.
func (e *TransitionError) AllowedStatuses() []string {
	seen := map[string]bool{}
	var out []string
	for _, t := range e.Allowed {
		if !seen[t.To] {
			seen[t.To] = true
			out = append(out, t.To)
		}
	}
	return out
}
