package domain_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/kycengine/kyc/adapters/enginetest"
	"github.com/kycengine/kyc/domain"
)

func shippedLifecycles(t testing.TB) *domain.Lifecycles {
	return enginetest.Lifecycles(t)
}

func TestShippedLifecyclesLoad(t *testing.T) {
	ls := shippedLifecycles(t)
	want := []string{"banking", "kyc-review", "onboarding"}
	if got := ls.Names(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("lifecycles = %v, want %v", got, want)
	}
	for _, name := range want {
		l, _ := ls.Latest(name)
		m := l.Mermaid()
		if !strings.HasPrefix(m, "stateDiagram-v2") || !strings.Contains(m, "[*] --> "+l.Initial()) {
			t.Errorf("%s: Mermaid diagram lacks header or initial state:\n%s", name, m)
		}
	}
}

func TestTransitionRules(t *testing.T) {
	ls := shippedLifecycles(t)
	operator := domain.Actor{Kind: domain.ActorOperator, ID: "alice", Company: "acme"}
	other := domain.Actor{Kind: domain.ActorOperator, ID: "bob", Company: "acme"}
	tests := []struct {
		name      string
		lifecycle string
		customer  domain.Customer
		event     string
		actor     domain.Actor
		roles     []string
		reason    string
		wantTo    string
		wantErr   error
	}{
		{"reject needs a reason", "kyc-review", domain.Customer{Status: "PENDING_REVIEW"}, "reject", operator, nil, "", "", domain.ErrReasonRequired},
		{"reject with 10 characters is too short", "kyc-review", domain.Customer{Status: "PENDING_REVIEW"}, "reject", operator, nil, "0123456789", "", domain.ErrReasonTooShort},
		{"reject with 10 characters padded is too short", "kyc-review", domain.Customer{Status: "PENDING_REVIEW"}, "reject", operator, nil, "  0123456789  ", "", domain.ErrReasonTooShort},
		{"reject with 11 characters", "kyc-review", domain.Customer{Status: "PENDING_REVIEW"}, "reject", operator, nil, "01234567890", "REJECTED", nil},
		{"blacklist with 10 multibyte characters is too short", "kyc-review", domain.Customer{Status: "APPROVED"}, "blacklist", operator, nil, "éééééééééé", "", domain.ErrReasonTooShort},
		{"blacklist from REJECTED", "kyc-review", domain.Customer{Status: "REJECTED"}, "blacklist", operator, nil, "sanctions list hit", "BLACKLISTED", nil},
		{"four eyes refuses the reviewer", "kyc-review", domain.Customer{Status: "PENDING_APPROVAL", StatusChangedBy: "alice"}, "approve", operator, nil, "", "", domain.ErrFourEyes},
		{"four eyes accepts another operator", "kyc-review", domain.Customer{Status: "PENDING_APPROVAL", StatusChangedBy: "alice"}, "approve", other, nil, "", "APPROVED", nil},
		{"no approval straight from review", "kyc-review", domain.Customer{Status: "PENDING_REVIEW"}, "approve", operator, nil, "", "", domain.ErrIllegalTransition},
		{"nothing leaves BLACKLISTED for an operator", "kyc-review", domain.Customer{Status: "BLACKLISTED"}, "lift_blacklist", operator, []string{"operator"}, "cleared by compliance board", "", domain.ErrForbidden},
		{"superuser lifts BLACKLISTED with a reason", "kyc-review", domain.Customer{Status: "BLACKLISTED"}, "lift_blacklist", operator, []string{"superuser"}, "cleared by compliance board", "PENDING_REVIEW", nil},
		{"superuser lift needs a reason", "kyc-review", domain.Customer{Status: "BLACKLISTED"}, "lift_blacklist", operator, []string{"superuser"}, "", "", domain.ErrReasonRequired},
		{"reject is impossible from BLACKLISTED", "kyc-review", domain.Customer{Status: "BLACKLISTED"}, "reject", operator, nil, "a long enough reason", "", domain.ErrIllegalTransition},
		{"reopen after RETRY", "kyc-review", domain.Customer{Status: "REJECTED", Rejection: &domain.Rejection{Type: domain.RejectRetry}}, "reopen", operator, nil, "customer sent new passport", "PENDING_UPLOAD", nil},
		{"no reopen after FINAL", "kyc-review", domain.Customer{Status: "REJECTED", Rejection: &domain.Rejection{Type: domain.RejectFinal}}, "reopen", operator, nil, "customer sent new passport", "", domain.ErrFinalRejection},
		{"unknown event", "kyc-review", domain.Customer{Status: "CREATED"}, "teleport", operator, nil, "", "", domain.ErrIllegalTransition},
		{"onboarding challenge", "onboarding", domain.Customer{Status: "initiating"}, "verify_challenge", operator, nil, "", "screening", nil},
		{"onboarding rejected is final", "onboarding", domain.Customer{Status: "rejected"}, "activate", operator, nil, "", "", domain.ErrIllegalTransition},
		{"onboarding illicit activity", "onboarding", domain.Customer{Status: "inactive"}, "reject_illicit", operator, nil, "structuring detected", "rejected", nil},
		{"onboarding deactivate", "onboarding", domain.Customer{Status: "active"}, "deactivate", operator, nil, "", "inactive", nil},
		{"banking suspend needs a reason", "banking", domain.Customer{Status: "active"}, "suspend", operator, nil, "", "", domain.ErrReasonRequired},
		{"banking block from suspended", "banking", domain.Customer{Status: "suspended"}, "block", operator, nil, "confirmed account takeover", "blocked", nil},
		{"banking blocked is final", "banking", domain.Customer{Status: "blocked"}, "reinstate", operator, nil, "confirmed account takeover", "", domain.ErrIllegalTransition},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := ls.Latest(tt.lifecycle)
			if err != nil {
				t.Fatal(err)
			}
			c := tt.customer
			got, err := l.Fire(context.Background(), tt.event, domain.TransitionRequest{Customer: &c, Actor: tt.actor, Roles: tt.roles, Reason: tt.reason})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.To != tt.wantTo {
				t.Fatalf("to = %s, want %s", got.To, tt.wantTo)
			}
		})
	}
}

func TestIllegalTransitionListsAllowedStatuses(t *testing.T) {
	l, _ := shippedLifecycles(t).Latest("kyc-review")
	_, err := l.ResolveTarget("CREATED", "APPROVED", nil)
	var te *domain.TransitionError
	if !errors.As(err, &te) {
		t.Fatalf("err = %v, want a TransitionError", err)
	}
	got := strings.Join(te.AllowedStatuses(), ",")
	for _, want := range []string{"INCOMPLETE", "PENDING_UPLOAD", "PENDING_REVIEW", "REJECTED", "BLACKLISTED"} {
		if !strings.Contains(got, want) {
			t.Errorf("allowed %s lacks %s", got, want)
		}
	}
	if strings.Contains(got, "APPROVED") {
		t.Errorf("allowed %s offers APPROVED from CREATED", got)
	}
}

// TestTransitionRoles: a transition that names roles is open to callers
// with one of them and to superusers, and closed to everyone else, both
// when fired and in the moves offered. The shipped lifecycles name only
// superuser, so a definition of its own tells the superuser's bypass apart.
func TestTransitionRoles(t *testing.T) {
	l, err := domain.ParseDefinition([]byte(`name: escalation
version: 1
initial: OPEN
final: [CLOSED]
states: [{name: OPEN}, {name: ESCALATED}, {name: CLOSED}]
transitions:
  - {event: escalate, from: [OPEN], to: ESCALATED, roles: [compliance_officer, mlro]}
  - {event: close, from: [OPEN, ESCALATED], to: CLOSED}
`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		roles   []string
		allowed string
	}{
		{"no role", nil, "close"},
		{"another role", []string{"operator", "view_document"}, "close"},
		{"the first role named", []string{"compliance_officer"}, "close,escalate"},
		{"the second role named", []string{"operator", "mlro"}, "close,escalate"},
		{"superuser", []string{"superuser"}, "close,escalate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := domain.Customer{Status: "OPEN"}
			actor := domain.Actor{Kind: domain.ActorOperator, ID: "alice", Company: "acme"}
			_, err := l.Fire(context.Background(), "escalate", domain.TransitionRequest{Customer: &c, Actor: actor, Roles: tt.roles})
			if may := strings.Contains(tt.allowed, "escalate"); may != (err == nil) || (!may && !errors.Is(err, domain.ErrForbidden)) {
				t.Fatalf("escalate: err = %v, want it allowed: %v", err, may)
			}
			var events []string
			for _, tr := range l.Allowed("OPEN", tt.roles) {
				events = append(events, tr.Event)
			}
			if got := strings.Join(events, ","); got != tt.allowed {
				t.Fatalf("allowed from OPEN: %s, want %s", got, tt.allowed)
			}
		})
	}
}

func TestInvalidDefinitionsAreRefused(t *testing.T) {
	base := `name: x
version: 1
initial: A
final: [C]
min_reason_length: 11
states: [{name: A}, {name: B}, {name: C}]
`
	tests := []struct{ name, yaml, want string }{
		{"unknown field", base + "colour: red\ntransitions: []\n", "colour"},
		{"unknown target", base + "transitions: [{event: go, from: [A], to: Z}]\n", `unknown state "Z"`},
		{"unknown source", base + "transitions: [{event: go, from: [Q], to: B}]\n", `unknown state "Q"`},
		{"unknown guard", base + "transitions: [{event: go, from: [A], to: B, guards: [moon_phase]}]\n", "unknown guard"},
		{"bad reason mode", base + "transitions: [{event: go, from: [A], to: B, reason: maybe}]\n", "reason must be"},
		{"leaving final freely", base + "transitions: [{event: go, from: [C], to: A}]\n", "leaves final state"},
		{"duplicate source", base + "transitions: [{event: go, from: [A], to: B}, {event: go, from: [A], to: C}]\n", "defined twice"},
		{"no version", strings.Replace(base, "version: 1", "version: 0", 1) + "transitions: []\n", "version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := domain.ParseDefinition([]byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}
