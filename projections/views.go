package projections

import (
	"slices"
	"time"

	"github.com/kycengine/kyc/domain"
)

// Permissions (roles) that decide what a caller sees of a profile (seed 001).
const (
	PermissionViewDocument   = "view_document"
	PermissionViewTravelRule = "view_travel_rule_page"
)

// Label is a display value with an optional title, as seed 000's columns
// show them.
type Label struct {
	Label string `json:"label"`
	Title string `json:"title,omitempty"`
}

// KYCLabel derives the list's KYC column from risk (seed 000).
func KYCLabel(risk string) Label {
	switch risk {
	case domain.RiskNormal:
		return Label{Label: "Approved"}
	case domain.RiskHigh:
		return Label{Label: "Pending"}
	case domain.RiskVeryHigh:
		return Label{Label: "Rejected"}
	default:
		return Label{Label: "Created"}
	}
}

// AMLLabel derives the AML column's label and title from aml_status.
func AMLLabel(status *bool) Label {
	switch {
	case status == nil:
		return Label{Label: "Created", Title: "Not Checked"}
	case *status:
		return Label{Label: "Approved", Title: "Low"}
	default:
		return Label{Label: "Rejected", Title: "High"}
	}
}

// BioPayLabel is the BioPay column.
func BioPayLabel(enabled bool) string {
	if enabled {
		return "Enabled"
	}
	return "Disabled"
}

// ListItem is one row of the customer list: the columns of seed 000 with
// their display rules, and the columns of seed 002.
type ListItem struct {
	ID       string       `json:"id"`
	PublicID string       `json:"public_id"`
	Name     *domain.Name `json:"name"`
	// DisplayName is "-" when the name is unknown, as the list shows it.
	DisplayName        string     `json:"display_name"`
	IDCardNumber       string     `json:"id_card_number"`
	Status             string     `json:"status"`
	Lifecycle          string     `json:"lifecycle"`
	CreatedAt          time.Time  `json:"created_at"`
	LastStatusUpdate   *time.Time `json:"last_status_update"`
	Risk               string     `json:"risk"`
	KYC                Label      `json:"kyc"`
	AMLStatus          *bool      `json:"aml_status"`
	AML                Label      `json:"aml"`
	BioPayEnabled      bool       `json:"biopay_enabled"`
	BioPay             string     `json:"biopay"`
	VideoCallStatus    string     `json:"video_call_status"`
	CompanyID          string     `json:"company_id"`
	CompanyName        string     `json:"company_name"`
	Emails             []string   `json:"emails"`
	VerificationStatus string     `json:"verification_status"`
	VerificationLevel  int        `json:"verification_level"`
	State              string     `json:"state"`
	AggregatedStatus   string     `json:"aggregated_status"`
	CreatedByAgent     string     `json:"created_by_agent"`
	Nationality        string     `json:"nationality"`
	Country            string     `json:"country"`
	Age                *int       `json:"age"`
	Tags               []string   `json:"tags"`
	Revision           uint64     `json:"revision"`
}

// ListItemOf renders a row for the list at time now (for the age).
func ListItemOf(r CustomerRow, now time.Time) ListItem {
	c := r.Customer
	display := DisplayName(c)
	if display == "" {
		display = "-"
	}
	return ListItem{
		ID: c.ID, PublicID: c.PublicID, Name: c.Name, DisplayName: display, IDCardNumber: c.IDCardNumber,
		Status: c.Status, Lifecycle: c.Lifecycle, CreatedAt: c.CreatedAt, LastStatusUpdate: c.LastStatusUpdate,
		Risk: c.Risk, KYC: KYCLabel(c.Risk), AMLStatus: c.AMLStatus, AML: AMLLabel(c.AMLStatus),
		BioPayEnabled: c.BioPayEnabled, BioPay: BioPayLabel(c.BioPayEnabled), VideoCallStatus: c.VideoCallStatus,
		CompanyID: c.CompanyID, CompanyName: c.CompanyName, Emails: nonNil(c.Emails),
		VerificationStatus: r.VerificationStatus, VerificationLevel: c.VerificationLevel, State: r.State,
		AggregatedStatus: r.AggregatedStatus, CreatedByAgent: c.CreatedByAgent, Nationality: c.Nationality,
		Country: Country(c), Age: ageOf(c, now), Tags: nonNil(c.Tags), Revision: c.Revision,
	}
}

func ageOf(c *domain.Customer, now time.Time) *int {
	if a := c.Age(now); a >= 0 {
		return &a
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Profile sections, in seed 001's render order.
const (
	SectionProfileInfo       = "profile_info"
	SectionVerificationSteps = "verification_steps"
	SectionDocuments         = "documents"
	SectionAML               = "aml"
	SectionVideoCalls        = "video_calls"
	SectionTransactions      = "transactions"
	SectionTravelRule        = "travel_rule"
	SectionQuestionnaires    = "questionnaires"
)

// Section says whether one profile section is shown to the caller, and the
// rule that decided it.
type Section struct {
	Name    string `json:"name"`
	Visible bool   `json:"visible"`
	Rule    string `json:"rule"`
}

// hasPermission reports whether the caller holds a permission; a superuser
// holds them all.
func hasPermission(caller domain.Caller, permission string) bool {
	return caller.IsSuperuser() || slices.Contains(caller.Roles, permission)
}

// Sections applies seed 001's visibility rules for a caller.
func Sections(c *domain.Customer, caller domain.Caller) []Section {
	has := func(p string) bool { return hasPermission(caller, p) }
	service := func(s string) bool { return slices.Contains(c.ActiveServices, s) }
	return []Section{
		{SectionProfileInfo, true, "always visible"},
		{SectionVerificationSteps, len(c.Rules) > 3, "the customer has more than 3 rules"},
		{SectionDocuments, has(PermissionViewDocument), "the caller has the view_document permission"},
		{SectionAML, service("aml"), "aml is an active service"},
		{SectionVideoCalls, service("video_kyc"), "video_kyc is an active service"},
		{SectionTransactions, service("transactions"), "transactions is an active service"},
		{SectionTravelRule, has(PermissionViewTravelRule), "the caller has the view_travel_rule_page permission"},
		{SectionQuestionnaires, service("questionnaire"), "questionnaire is an active service"},
	}
}

// Profile is the customer profile read model as one caller sees it.
type Profile struct {
	// Customer holds every field of SPEC section 3. Documents are left out
	// for a caller without view_document: the permission guards the data,
	// not only the section. The other sections' rules are display rules
	// about the customer, so their data stays.
	Customer           *domain.Customer `json:"customer"`
	Age                *int             `json:"age"`
	VerificationStatus string           `json:"verification_status"`
	State              string           `json:"state"`
	AggregatedStatus   string           `json:"aggregated_status"`
	KYC                Label            `json:"kyc"`
	AML                Label            `json:"aml"`
	BioPay             string           `json:"biopay"`
	Sections           []Section        `json:"sections"`
	Revision           uint64           `json:"revision"`
}

// SeenBy returns a copy of the customer without what the caller may not
// see: the documents without view_document (the permission guards the data,
// not only the profile's section), and for a caller of kind customer the
// state reason and the internal review trail (seed 002). Every route that
// shows a customer's state goes through it.
func SeenBy(c *domain.Customer, caller domain.Caller) *domain.Customer {
	shown := c.Clone()
	if !hasPermission(caller, PermissionViewDocument) {
		shown.Documents = []domain.Document{}
	}
	if caller.Actor.Kind == domain.ActorCustomer {
		shown.StateReason, shown.StatusChangedBy, shown.Check = "", "", nil
	}
	return shown
}

// ProfileOf renders a row for a caller at time now.
func ProfileOf(r CustomerRow, caller domain.Caller, now time.Time) Profile {
	sections := Sections(r.Customer, caller)
	c := SeenBy(r.Customer, caller)
	return Profile{
		Customer: c, Age: ageOf(c, now), VerificationStatus: r.VerificationStatus, State: r.State,
		AggregatedStatus: r.AggregatedStatus, KYC: KYCLabel(c.Risk), AML: AMLLabel(c.AMLStatus),
		BioPay: BioPayLabel(c.BioPayEnabled), Sections: sections, Revision: c.Revision,
	}
}
