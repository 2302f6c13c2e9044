package domain_test

import (
	"testing"
	"time"

	"github.com/kycengine/kyc/domain"
)

// TestVerificationStatus holds seed 002's rule: identified when email,
// phone and documents are verified, phone verified when email and phone
// are, email verified when only the email is, else not verified. Documents
// count as verified from verification level 2 on (verified by the
// provider) or when a reviewer approved one.
func TestVerificationStatus(t *testing.T) {
	approved := []domain.Document{{ID: "d1", ReviewDecision: domain.DecisionApproved}}
	pending := []domain.Document{{ID: "d1", ReviewDecision: domain.DecisionPending}, {ID: "d2", ReviewDecision: domain.DecisionRejected}}
	tests := []struct {
		name string
		c    domain.Customer
		want string
	}{
		{"nothing verified", domain.Customer{}, domain.VerificationNotVerified},
		{"only the phone", domain.Customer{PhoneVerified: true}, domain.VerificationNotVerified},
		{"documents without contacts", domain.Customer{VerificationLevel: 2, Documents: approved}, domain.VerificationNotVerified},
		{"phone and documents, no email", domain.Customer{PhoneVerified: true, VerificationLevel: 2}, domain.VerificationNotVerified},
		{"only the email", domain.Customer{EmailVerified: true}, domain.VerificationEmailVerified},
		{"email and documents", domain.Customer{EmailVerified: true, Documents: approved}, domain.VerificationEmailVerified},
		{"email and phone", domain.Customer{EmailVerified: true, PhoneVerified: true}, domain.VerificationPhoneVerified},
		{"email and phone, level 1", domain.Customer{EmailVerified: true, PhoneVerified: true, VerificationLevel: 1}, domain.VerificationPhoneVerified},
		{"email and phone, documents not approved", domain.Customer{EmailVerified: true, PhoneVerified: true, Documents: pending}, domain.VerificationPhoneVerified},
		{"email, phone, level 2", domain.Customer{EmailVerified: true, PhoneVerified: true, VerificationLevel: 2}, domain.VerificationIdentified},
		{"email, phone, level 5", domain.Customer{EmailVerified: true, PhoneVerified: true, VerificationLevel: 5}, domain.VerificationIdentified},
		{"email, phone, an approved document", domain.Customer{EmailVerified: true, PhoneVerified: true, Documents: append(pending, approved...)}, domain.VerificationIdentified},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.c.VerificationStatus(); got != tt.want {
				t.Fatalf("verification status %s, want %s", got, tt.want)
			}
		})
	}
}

// TestAggregatedStatus holds seed 002's rule: blocked, suspended, active
// when identified, else pending; the state exists only where the
// lifecycle's status is the banking state.
func TestAggregatedStatus(t *testing.T) {
	ls := shippedLifecycles(t)
	banking, _ := ls.Latest("banking")
	review, _ := ls.Latest("kyc-review")
	identified := domain.Customer{EmailVerified: true, PhoneVerified: true, VerificationLevel: 2}
	with := func(c domain.Customer, status string) domain.Customer { c.Status = status; return c }
	tests := []struct {
		name      string
		c         domain.Customer
		lifecycle *domain.Lifecycle
		state     string
		want      string
	}{
		{"blocked, identified", with(identified, "blocked"), banking, "blocked", "blocked"},
		{"suspended, identified", with(identified, "suspended"), banking, "suspended", "suspended"},
		{"active, identified", with(identified, "active"), banking, "active", "active"},
		{"active, not identified", with(domain.Customer{EmailVerified: true, PhoneVerified: true}, "active"), banking, "active", "pending"},
		{"suspended, not identified", with(domain.Customer{}, "suspended"), banking, "suspended", "suspended"},
		{"review lifecycle, identified", with(identified, "APPROVED"), review, "", "active"},
		{"review lifecycle, not identified", with(domain.Customer{}, "APPROVED"), review, "", "pending"},
		{"review lifecycle, a status named like a state", with(identified, "blocked"), review, "", "active"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.c.State(tt.lifecycle); got != tt.state {
				t.Fatalf("state %q, want %q", got, tt.state)
			}
			if got := tt.c.AggregatedStatus(tt.lifecycle); got != tt.want {
				t.Fatalf("aggregated status %s, want %s", got, tt.want)
			}
		})
	}
}

// TestAge counts whole years, a birthday counting from its day.
func TestAge(t *testing.T) {
	at := func(s string) time.Time {
		ts, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	tests := []struct {
		birth string
		at    time.Time
		want  int
	}{
		{"1990-06-15", at("2026-06-14T23:59:59Z"), 35},
		{"1990-06-15", at("2026-06-15T00:00:00Z"), 36},
		{"1990-06-15", at("2026-05-20T12:00:00Z"), 35},
		{"1990-06-15", at("2026-07-01T12:00:00Z"), 36},
		// The time is read in UTC: 01:00 in Paris is still the day before.
		{"1990-06-15", at("2026-06-15T01:00:00+02:00"), 35},
		{"2000-02-29", at("2026-02-28T12:00:00Z"), 25},
		{"2000-02-29", at("2026-03-01T00:00:00Z"), 26},
		{"2026-01-01", at("2026-12-31T00:00:00Z"), 0},
		{"", at("2026-01-01T00:00:00Z"), -1},
		{"15/06/1990", at("2026-01-01T00:00:00Z"), -1},
	}
	for _, tt := range tests {
		c := domain.Customer{BirthDate: tt.birth}
		if got := c.Age(tt.at); got != tt.want {
			t.Errorf("born %q, at %s: age %d, want %d", tt.birth, tt.at.Format(time.RFC3339), got, tt.want)
		}
	}
}
