package domain

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Risk levels (seed 000); empty means unset.
const (
	RiskNormal   = "NORMAL"
	RiskHigh     = "HIGH"
	RiskVeryHigh = "VERY_HIGH"
)

// VideoCallStatuses are the twelve values of seed 000.
var VideoCallStatuses = []string{"WAITING", "MISSED", "TALKING", "COMPLETE", "INCOMPLETE", "ESCALATED",
	"BAD QUALITY", "DISCONNECTED", "APPROVED", "REJECTED", "CONNECTION ERROR", "SUSPICIOUS"}

// Services a customer can have active (seed 001).
var Services = []string{"aml", "video_kyc", "transactions", "questionnaire"}

// Review decisions on an item (seed 003).
const (
	DecisionApproved = "approved"
	DecisionPending  = "pending"
	DecisionRejected = "rejected"
)

// Rejection types, as Sumsub's RETRY / FINAL.
const (
	RejectRetry = "RETRY"
	RejectFinal = "FINAL"
)

// Check outcomes.
const (
	OutcomeApproved        = "approved"
	OutcomeSentForApproval = "sent_for_approval"
	OutcomeRejected        = "rejected"
	OutcomeResubmission    = "resubmission_requested"
)

// Verification statuses (seed 002), derived from contacts and documents.
const (
	VerificationIdentified    = "identified"
	VerificationPhoneVerified = "phone_verified"
	VerificationEmailVerified = "email_verified"
	VerificationNotVerified   = "not_verified"
)

// Document is an identity or supporting document.
type Document struct {
	ID             string `json:"id"`
	Type           string `json:"type"`
	Number         string `json:"number,omitempty"`
	Country        string `json:"country,omitempty"`
	ExpiryDate     string `json:"expiry_date,omitempty"`
	FileDigest     string `json:"file_digest,omitempty"`
	ReviewDecision string `json:"review_decision,omitempty"`
}

// StepResult is the latest result of one verification step (rule).
type StepResult struct {
	Step       string          `json:"step"`
	Result     string          `json:"result"`
	Details    json.RawMessage `json:"details,omitempty"`
	RecordedAt time.Time       `json:"recorded_at"`
}

// Note is an operator's note.
type Note struct {
	ID        string    `json:"id"`
	Text      string    `json:"text"`
	Author    string    `json:"author"`
	CreatedAt time.Time `json:"created_at"`
}

// Check is the reviewer's open check (seed 003).
type Check struct {
	ID        string            `json:"id"`
	Reviewer  string            `json:"reviewer"`
	StartedAt time.Time         `json:"started_at"`
	Items     []string          `json:"items"`
	Decisions map[string]string `json:"decisions"`
	Comments  map[string]string `json:"comments,omitempty"`
}

// Rejection is the last rejection's details.
type Rejection struct {
	Type          string   `json:"type"`
	Labels        []string `json:"labels,omitempty"`
	ClientComment string   `json:"client_comment,omitempty"`
}

// Customer is the state of one customer, folded from its stream. Field names
// are those of SPEC section 3.
type Customer struct {
	ID                string       `json:"id"`
	PublicID          string       `json:"public_id"`
	CompanyID         string       `json:"company_id"`
	CompanyName       string       `json:"company_name"`
	Lifecycle         string       `json:"lifecycle"`
	LifecycleVersion  int          `json:"lifecycle_version"`
	Status            string       `json:"status"`
	Name              *Name        `json:"name"`
	IDCardNumber      string       `json:"id_card_number,omitempty"`
	Nationality       string       `json:"nationality,omitempty"`
	BirthDate         string       `json:"birth_date,omitempty"`
	Gender            string       `json:"gender,omitempty"`
	Language          string       `json:"language,omitempty"`
	Emails            []string     `json:"emails"`
	Phones            []string     `json:"phones"`
	Address           *Address     `json:"address,omitempty"`
	PersonType        string       `json:"person_type,omitempty"`
	ReferralCode      string       `json:"referral_code,omitempty"`
	CreatedByAgent    string       `json:"created_by_agent,omitempty"`
	AccessRoles       []string     `json:"access_roles"`
	AccessGroups      []string     `json:"access_groups"`
	Tags              []string     `json:"tags"`
	Risk              string       `json:"risk"`
	AMLStatus         *bool        `json:"aml_status"`
	BioPayEnabled     bool         `json:"biopay_enabled"`
	VideoCallStatus   string       `json:"video_call_status"`
	VerificationLevel int          `json:"verification_level"`
	EmailVerified     bool         `json:"email_verified"`
	PhoneVerified     bool         `json:"phone_verified"`
	Documents         []Document   `json:"documents"`
	ActiveServices    []string     `json:"active_services"`
	Rules             []StepResult `json:"rules"`
	Notes             []Note       `json:"notes"`
	AISummary         string       `json:"ai_summary,omitempty"`
	StateReason       string       `json:"state_reason,omitempty"`
	CreatedAt         time.Time    `json:"created_at"`
	LastStatusUpdate  *time.Time   `json:"last_status_update"`
	Check             *Check       `json:"check,omitempty"`
	Rejection         *Rejection   `json:"rejection,omitempty"`
	ResubmissionItems []string     `json:"resubmission_items,omitempty"`
	// StatusChangedBy is the actor of the last status change: the four-eyes
	// rule compares the approver with it.
	StatusChangedBy string `json:"status_changed_by,omitempty"`
	Revision        uint64 `json:"revision"`
}

// Exists reports whether the customer was registered.
func (c *Customer) Exists() bool { return c.ID != "" }

// VerificationStatus is derived as seed 002 says: identified when email,
// phone and documents are verified; phone verified; email verified; not verified.
func (c *Customer) VerificationStatus() string {
	docs := c.VerificationLevel >= 2 || slices.ContainsFunc(c.Documents, func(d Document) bool {
		return d.ReviewDecision == DecisionApproved
	})
	switch {
	case c.EmailVerified && c.PhoneVerified && docs:
		return VerificationIdentified
	case c.EmailVerified && c.PhoneVerified:
		return VerificationPhoneVerified
	case c.EmailVerified:
		return VerificationEmailVerified
	default:
		return VerificationNotVerified
	}
}

// State is the banking state (seed 002) for lifecycles whose status is that
// state; empty otherwise.
func (c *Customer) State(l *Lifecycle) string {
	if l != nil && l.def.StateFromStatus {
		return c.Status
	}
	return ""
}

// AggregatedStatus applies seed 002's rule: blocked, suspended, active when
// identified, else pending.
func (c *Customer) AggregatedStatus(l *Lifecycle) string {
	switch state := c.State(l); {
	case state == "blocked":
		return "blocked"
	case state == "suspended":
		return "suspended"
	case c.VerificationStatus() == VerificationIdentified:
		return "active"
	default:
		return "pending"
	}
}

// Age in whole years at a given time, or -1 when the birth date is unknown.
func (c *Customer) Age(at time.Time) int {
	b, err := time.Parse(time.DateOnly, c.BirthDate)
	if err != nil {
		return -1
	}
	at = at.UTC()
	age := at.Year() - b.Year()
	if at.Month() < b.Month() || (at.Month() == b.Month() && at.Day() < b.Day()) {
		age--
	}
	return age
}

// Apply folds one event into the state. It trusts the event: the decision
// that produced it already checked the rules, and the stored log is the truth.
func (c *Customer) Apply(e Event, meta RecordedEvent) {
	c.Revision = meta.Revision
	at := meta.OccurredAt
	switch e := e.(type) {
	case *CustomerRegistered:
		*c = Customer{
			ID: e.CustomerID, PublicID: e.PublicID, CompanyID: e.CompanyID, CompanyName: e.CompanyName,
			Lifecycle: e.Lifecycle, LifecycleVersion: e.LifecycleVersion, Status: e.Status,
			Nationality: e.Nationality, Gender: e.Gender, Language: e.Language, PersonType: e.PersonType,
			ReferralCode: e.ReferralCode, CreatedByAgent: e.CreatedByAgent,
			AccessRoles: listOf(e.AccessRoles), AccessGroups: listOf(e.AccessGroups), Tags: listOf(e.Tags),
			ActiveServices: listOf(e.ActiveServices), CreatedAt: at, Revision: meta.Revision,
			Emails: []string{}, Phones: []string{}, Documents: []Document{}, Rules: []StepResult{}, Notes: []Note{},
		}
		c.applyPersonal(e.Personal)
	case *ProfileUpdated:
		setIf(&c.Nationality, e.Nationality)
		setIf(&c.Gender, e.Gender)
		setIf(&c.Language, e.Language)
		setIf(&c.PersonType, e.PersonType)
		setIf(&c.ReferralCode, e.ReferralCode)
		c.applyPersonal(e.Personal)
	case *DocumentUploaded:
		d := Document{ID: e.DocumentID, Type: e.Type, Country: e.Country, ExpiryDate: e.ExpiryDate, FileDigest: e.FileDigest}
		if e.Personal != nil && e.Personal.DocumentNumber != nil {
			d.Number = *e.Personal.DocumentNumber
		}
		if i := slices.IndexFunc(c.Documents, func(x Document) bool { return x.ID == d.ID }); i >= 0 {
			c.Documents[i] = d // a new upload of the same document needs a new review
		} else {
			c.Documents = append(c.Documents, d)
		}
	case *CheckStarted:
		c.Check = &Check{ID: e.CheckID, Reviewer: meta.Actor.ID, StartedAt: at, Items: listOf(e.Items), Decisions: map[string]string{}}
	case *ItemReviewed:
		if c.Check != nil {
			c.Check.Decisions[e.Item] = e.Decision
			if e.Comment != "" {
				if c.Check.Comments == nil {
					c.Check.Comments = map[string]string{}
				}
				c.Check.Comments[e.Item] = e.Comment
			}
		}
		if id, ok := strings.CutPrefix(e.Item, DocumentItemPrefix); ok {
			for i := range c.Documents {
				if c.Documents[i].ID == id {
					c.Documents[i].ReviewDecision = e.Decision
				}
			}
		}
	case *CheckFinished:
		c.Check = nil
		// A rejecting check is recorded after its StatusChanged, which set
		// the rejection; the check adds what the customer is told.
		if e.Outcome == OutcomeRejected && c.Rejection != nil {
			c.Rejection.ClientComment = e.ClientComment
		}
	case *StatusChanged:
		c.Status = e.To
		c.StatusChangedBy = meta.Actor.ID
		t := at
		c.LastStatusUpdate = &t
		if e.Reason != "" {
			c.StateReason = e.Reason
		}
		if e.RejectType != "" {
			c.Rejection = &Rejection{Type: e.RejectType, Labels: clone(e.Labels)}
		}
	case *ResubmissionRequested:
		c.ResubmissionItems = clone(e.Items)
	case *ResubmissionReceived:
		c.ResubmissionItems = nil
	case *RiskAssessed:
		c.Risk = e.Risk
	case *AMLScreened:
		c.AMLStatus = e.Result
	case *VideoCallStatusChanged:
		c.VideoCallStatus = e.Status
	case *BioPayToggled:
		c.BioPayEnabled = e.Enabled
	case *VerificationLevelChanged:
		c.VerificationLevel = e.To
	case *ContactVerified:
		if e.Channel == "email" {
			c.EmailVerified = e.Verified
		} else {
			c.PhoneVerified = e.Verified
		}
	case *NoteAdded:
		c.Notes = append(c.Notes, Note{ID: e.NoteID, Text: e.Text, Author: meta.Actor.ID, CreatedAt: at})
	case *TagsChanged:
		tags := slices.DeleteFunc(c.Tags, func(t string) bool { return slices.Contains(e.Removed, t) })
		for _, t := range e.Added {
			if !slices.Contains(tags, t) {
				tags = append(tags, t)
			}
		}
		c.Tags = listOf(tags)
	case *StepResultRecorded:
		r := StepResult{Step: e.Step, Result: e.Result, Details: clone(e.Details), RecordedAt: at}
		if i := slices.IndexFunc(c.Rules, func(x StepResult) bool { return x.Step == e.Step }); i >= 0 {
			c.Rules[i] = r
		} else {
			c.Rules = append(c.Rules, r)
		}
	case *AISummaryGenerated:
		c.AISummary = e.Summary
	case *ServicesChanged:
		c.ActiveServices = listOf(e.ActiveServices)
	case *AccessChanged:
		c.AccessRoles = listOf(e.AccessRoles)
		c.AccessGroups = listOf(e.AccessGroups)
	}
}

func (c *Customer) applyPersonal(p *PersonalData) {
	if p == nil {
		return
	}
	if p.Name != nil {
		n := *p.Name
		c.Name = &n
	}
	setIf(&c.IDCardNumber, p.IDCardNumber)
	setIf(&c.BirthDate, p.BirthDate)
	if p.Emails != nil {
		c.Emails = clone(p.Emails)
	}
	if p.Phones != nil {
		c.Phones = clone(p.Phones)
	}
	if p.Address != nil {
		a := *p.Address
		a.Lines = clone(a.Lines)
		c.Address = &a
	}
}

// Clone returns a deep-enough copy for handing state to callers while the
// service keeps folding its own.
func (c *Customer) Clone() *Customer {
	out := *c
	if c.Name != nil {
		n := *c.Name
		out.Name = &n
	}
	if c.Address != nil {
		a := *c.Address
		a.Lines = clone(a.Lines)
		out.Address = &a
	}
	if c.AMLStatus != nil {
		v := *c.AMLStatus
		out.AMLStatus = &v
	}
	if c.LastStatusUpdate != nil {
		t := *c.LastStatusUpdate
		out.LastStatusUpdate = &t
	}
	out.Emails, out.Phones = clone(c.Emails), clone(c.Phones)
	out.AccessRoles, out.AccessGroups, out.Tags = clone(c.AccessRoles), clone(c.AccessGroups), clone(c.Tags)
	out.ActiveServices = clone(c.ActiveServices)
	out.Documents, out.Rules, out.Notes = clone(c.Documents), clone(c.Rules), clone(c.Notes)
	for i := range out.Rules {
		out.Rules[i].Details = clone(out.Rules[i].Details)
	}
	out.ResubmissionItems = clone(c.ResubmissionItems)
	if c.Check != nil {
		ch := *c.Check
		ch.Items = clone(c.Check.Items)
		ch.Decisions = cloneMap(c.Check.Decisions)
		ch.Comments = cloneMap(c.Check.Comments)
		out.Check = &ch
	}
	if c.Rejection != nil {
		r := *c.Rejection
		r.Labels = clone(c.Rejection.Labels)
		out.Rejection = &r
	}
	return &out
}

func clone[S ~[]E, E any](s S) S {
	if s == nil {
		return nil
	}
	return append(S{}, s...)
}

// listOf copies a list so that an empty one shows as [] rather than null.
func listOf(s []string) []string { return append([]string{}, s...) }

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func setIf[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// DocumentItemPrefix marks review items that are documents: "document:<id>".
const DocumentItemPrefix = "document:"

// PersonalItems are the personal fields a reviewer marks (seed 003).
var PersonalItems = []string{"name", "id_card_number", "nationality", "birth_date", "address"}

// ReviewItems lists what a check of this customer covers: the personal fields
// it has and every document.
func (c *Customer) ReviewItems() []string {
	var items []string
	for _, f := range PersonalItems {
		present := map[string]bool{
			"name": c.Name != nil, "id_card_number": c.IDCardNumber != "", "nationality": c.Nationality != "",
			"birth_date": c.BirthDate != "", "address": c.Address != nil,
		}[f]
		if present {
			items = append(items, f)
		}
	}
	for _, d := range c.Documents {
		items = append(items, DocumentItemPrefix+d.ID)
	}
	return items
}

// StreamName is the stream of a customer.
func StreamName(customerID string) string { return "customer-" + customerID }

// CustomerIDFromStream is the inverse of StreamName.
func CustomerIDFromStream(stream string) (string, bool) {
	return strings.CutPrefix(stream, "customer-")
}

func (c *Customer) String() string {
	return fmt.Sprintf("customer %s (%s, %s)", c.ID, c.Lifecycle, c.Status)
}
