package projections_test

import (
	"slices"
	"testing"
	"time"

	"github.com/kycengine/kyc/domain"
	"github.com/kycengine/kyc/projections"
)

func rules(n int) []domain.StepResult {
	out := make([]domain.StepResult, n)
	for i := range out {
		out[i] = domain.StepResult{Step: "step", Result: "passed"}
	}
	return out
}

var (
	reviewer  = domain.Actor{Kind: domain.ActorOperator, ID: "alice", Company: "acme"}
	selfServe = domain.Actor{Kind: domain.ActorCustomer, ID: "c-1", Company: "acme"}
)

// TestSections holds seed 001's visibility rules: two sections follow the
// caller's permissions (a superuser has them all), the verification steps
// need more than three rules, and four sections follow the customer's
// active services.
func TestSections(t *testing.T) {
	allServices := []string{"aml", "video_kyc", "transactions", "questionnaire"}
	tests := []struct {
		name     string
		customer domain.Customer
		caller   domain.Caller
		visible  []string
	}{
		{"nothing configured, no permission", domain.Customer{}, domain.Caller{Actor: reviewer},
			[]string{projections.SectionProfileInfo}},
		{"three rules are not enough", domain.Customer{Rules: rules(3)}, domain.Caller{Actor: reviewer},
			[]string{projections.SectionProfileInfo}},
		{"four rules", domain.Customer{Rules: rules(4)}, domain.Caller{Actor: reviewer},
			[]string{projections.SectionProfileInfo, projections.SectionVerificationSteps}},
		{"view_document", domain.Customer{}, domain.Caller{Actor: reviewer, Roles: []string{"operator", projections.PermissionViewDocument}},
			[]string{projections.SectionProfileInfo, projections.SectionDocuments}},
		{"view_travel_rule_page", domain.Customer{}, domain.Caller{Actor: reviewer, Roles: []string{projections.PermissionViewTravelRule}},
			[]string{projections.SectionProfileInfo, projections.SectionTravelRule}},
		{"superuser has every permission", domain.Customer{}, domain.Caller{Actor: reviewer, Roles: []string{domain.RoleSuperuser}},
			[]string{projections.SectionProfileInfo, projections.SectionDocuments, projections.SectionTravelRule}},
		{"aml", domain.Customer{ActiveServices: []string{"aml"}}, domain.Caller{Actor: reviewer},
			[]string{projections.SectionProfileInfo, projections.SectionAML}},
		{"video_kyc", domain.Customer{ActiveServices: []string{"video_kyc"}}, domain.Caller{Actor: reviewer},
			[]string{projections.SectionProfileInfo, projections.SectionVideoCalls}},
		{"transactions", domain.Customer{ActiveServices: []string{"transactions"}}, domain.Caller{Actor: reviewer},
			[]string{projections.SectionProfileInfo, projections.SectionTransactions}},
		{"questionnaire", domain.Customer{ActiveServices: []string{"questionnaire"}}, domain.Caller{Actor: reviewer},
			[]string{projections.SectionProfileInfo, projections.SectionQuestionnaires}},
		{"services do not open permission sections", domain.Customer{ActiveServices: allServices, Rules: rules(5)}, domain.Caller{Actor: reviewer},
			[]string{projections.SectionProfileInfo, projections.SectionVerificationSteps, projections.SectionAML,
				projections.SectionVideoCalls, projections.SectionTransactions, projections.SectionQuestionnaires}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sections := projections.Sections(&tt.customer, tt.caller)
			if len(sections) != 8 {
				t.Fatalf("%d sections, want the 8 of seed 001", len(sections))
			}
			var visible []string
			for _, s := range sections {
				if s.Rule == "" {
					t.Errorf("section %s says no rule", s.Name)
				}
				if s.Visible {
					visible = append(visible, s.Name)
				}
			}
			if !slices.Equal(visible, tt.visible) {
				t.Fatalf("visible %v, want %v", visible, tt.visible)
			}
		})
	}
}

// TestProfileHidesWhatTheCallerMayNotSee: the view_document permission
// guards the documents themselves, not only their section, and a customer
// reading its own profile sees neither the internal state reason nor the
// review trail. The stored row is never changed.
func TestProfileHidesWhatTheCallerMayNotSee(t *testing.T) {
	changed := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	row := func() projections.CustomerRow {
		return projections.CustomerRow{Customer: &domain.Customer{
			ID: "c-1", CompanyID: "acme", Status: "REJECTED",
			Documents:        []domain.Document{{ID: "d-1", Type: "PASSPORT", Number: "X1234567"}},
			StateReason:      "document appears to be tampered with",
			StatusChangedBy:  "alice",
			Check:            &domain.Check{ID: "k-1", Reviewer: "alice"},
			Rejection:        &domain.Rejection{Type: domain.RejectRetry, ClientComment: "please upload a clearer photo"},
			LastStatusUpdate: &changed,
		}}
	}
	tests := []struct {
		name          string
		caller        domain.Caller
		documents     bool
		reviewDetails bool
	}{
		{"operator without view_document", domain.Caller{Actor: reviewer, Roles: []string{"operator"}}, false, true},
		{"operator with view_document", domain.Caller{Actor: reviewer, Roles: []string{projections.PermissionViewDocument}}, true, true},
		{"superuser", domain.Caller{Actor: reviewer, Roles: []string{domain.RoleSuperuser}}, true, true},
		{"the customer", domain.Caller{Actor: selfServe}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := row()
			p := projections.ProfileOf(r, tt.caller, changed)
			c := p.Customer
			if got := len(c.Documents) == 1; got != tt.documents {
				t.Errorf("documents shown: %v, want %v", got, tt.documents)
			}
			if c.Documents == nil {
				t.Errorf("hidden documents are null; they must stay an empty list")
			}
			review := map[string]bool{"state reason": c.StateReason != "", "status changed by": c.StatusChangedBy != "", "check": c.Check != nil}
			for what, shown := range review {
				if shown != tt.reviewDetails {
					t.Errorf("%s shown: %v, want %v", what, shown, tt.reviewDetails)
				}
			}
			if c.Rejection == nil || c.Rejection.ClientComment == "" {
				t.Errorf("the comment meant for the customer is gone: %+v", c.Rejection)
			}
			want := row().Customer
			if len(r.Customer.Documents) != 1 || r.Customer.StateReason != want.StateReason || r.Customer.Check == nil {
				t.Errorf("the stored row was changed: %+v", r.Customer)
			}
		})
	}
}
