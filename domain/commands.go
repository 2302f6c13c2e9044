package domain

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Caller is who issues a command and when.
type Caller struct {
	Actor Actor
	Roles []string
}

// IsSuperuser reports the superuser role.
func (c Caller) IsSuperuser() bool { return hasRole(c.Roles, RoleSuperuser) }

// Decision is everything a command needs to decide: the caller, the time, an
// id source, the customer's lifecycle and its current state. Deciding does no
// I/O; the service gathers all of this first.
type Decision struct {
	Ctx       context.Context
	Caller    Caller
	Now       time.Time
	NewID     func() string
	Lifecycle *Lifecycle
	Customer  *Customer
}

// Command is a request to change a customer. Decide validates it against the
// state and returns the events that record its effect (none when it changes
// nothing).
type Command interface {
	CommandName() string
	Decide(d Decision) ([]Event, error)
}

func (d Decision) transition(event, reason string, labels []string, rejectType string) (*StatusChanged, error) {
	t, err := d.Lifecycle.Fire(d.Ctx, event, TransitionRequest{Customer: d.Customer, Actor: d.Caller.Actor, Roles: d.Caller.Roles, Reason: reason})
	if err != nil {
		return nil, err
	}
	sc := &StatusChanged{From: d.Customer.Status, To: t.To, Transition: t.Event, Reason: strings.TrimSpace(reason), Labels: labels}
	if d.Lifecycle.Review() != nil && t.To == d.Lifecycle.Review().Rejected {
		sc.RejectType = rejectType
		if sc.RejectType == "" {
			sc.RejectType = RejectRetry
		}
	}
	return sc, nil
}

func (d Decision) moveTo(target, reason string, labels []string, rejectType string) (*StatusChanged, error) {
	event, err := d.Lifecycle.ResolveTarget(d.Customer.Status, target, d.Caller.Roles)
	if err != nil {
		return nil, err
	}
	return d.transition(event, reason, labels, rejectType)
}

func checkTransitionInput(errs *FieldErrors, reason string, labels []string, rejectType string) {
	checkText(errs, "reason", reason, false, maxReasonText)
	checkList(errs, "labels", labels, 64)
	if rejectType != "" {
		checkOneOf(errs, "reject_type", rejectType, []string{RejectRetry, RejectFinal})
	}
}

// RegisterCustomer opens a customer's stream.
type RegisterCustomer struct {
	// CustomerID and PublicID are filled by the service when not given.
	CustomerID     string
	PublicID       string
	Lifecycle      string
	Company        string
	CompanyName    string
	Name           *Name
	IDCardNumber   string
	Nationality    string
	BirthDate      string
	Gender         string
	Language       string
	Emails         []string
	Phones         []string
	Address        *Address
	PersonType     string
	ReferralCode   string
	CreatedByAgent string
	AccessRoles    []string
	AccessGroups   []string
	Tags           []string
	ActiveServices []string
	// PriorHolders are the customers registered before with the same identity
	// document, for lifecycles with an identity rule; the service finds them.
	PriorHolders []*Customer
}

func (RegisterCustomer) CommandName() string { return "RegisterCustomer" }

// Validate checks the registration on its own, before any lifecycle is known.
func (r *RegisterCustomer) Validate(now time.Time) error {
	var errs FieldErrors
	checkText(&errs, "company", r.Company, true, maxShortText)
	checkText(&errs, "company_name", r.CompanyName, false, maxShortText)
	checkText(&errs, "public_id", r.PublicID, false, 32)
	checkName(&errs, "name", r.Name, true)
	checkText(&errs, "id_card_number", r.IDCardNumber, false, 64)
	checkCountry(&errs, "nationality", r.Nationality, false)
	checkDate(&errs, "birth_date", r.BirthDate, now, true)
	checkText(&errs, "gender", r.Gender, false, 32)
	checkLanguage(&errs, "language", r.Language)
	checkEmails(&errs, "emails", r.Emails)
	checkPhones(&errs, "phones", r.Phones)
	checkAddress(&errs, "address", r.Address)
	checkText(&errs, "person_type", r.PersonType, false, maxShortText)
	checkText(&errs, "referral_code", r.ReferralCode, false, maxShortText)
	checkText(&errs, "created_by_agent", r.CreatedByAgent, false, maxShortText)
	checkList(&errs, "access_roles", r.AccessRoles, maxShortText)
	checkList(&errs, "access_groups", r.AccessGroups, maxShortText)
	checkList(&errs, "tags", r.Tags, 64)
	checkServices(&errs, "active_services", r.ActiveServices)
	return errs.orNil()
}

// IdentityKey normalises an identity document so the same document matches
// however it was typed. Empty when the registration names none.
func IdentityKey(nationality, idCardNumber string) string {
	n := strings.ToUpper(strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' || r == '.' {
			return -1
		}
		return r
	}, idCardNumber))
	if n == "" {
		return ""
	}
	return nationality + ":" + n
}

// IdentityStream is the stream that records which customers used an identity
// document. Its name is a digest, so the document number itself is not in a
// stream name.
func IdentityStream(identityKey string) string {
	sum := sha256.Sum256([]byte("kyc-identity\x00" + identityKey))
	return "identity-" + hex.EncodeToString(sum[:])
}

func (r RegisterCustomer) Decide(d Decision) ([]Event, error) {
	if err := r.Validate(d.Now); err != nil {
		return nil, err
	}
	l := d.Lifecycle
	if rule := l.def.Identity; rule != nil {
		if IdentityKey(r.Nationality, r.IDCardNumber) == "" {
			return nil, &FieldError{Field: "id_card_number", Detail: fmt.Sprintf("lifecycle %s needs an identity document", l.Name()), Err: ErrInvalid}
		}
		for _, prior := range r.PriorHolders {
			if slices.Contains(rule.RefuseIfPreviously, prior.Status) {
				return nil, &FieldError{Field: "id_card_number",
					Detail: fmt.Sprintf("this identity document belongs to a customer in %s; %s never onboards it again", prior.Status, l.Name()),
					Err:    ErrIdentityRejected}
			}
		}
	}
	companyName := r.CompanyName
	if companyName == "" {
		companyName = r.Company
	}
	e := &CustomerRegistered{
		CustomerID: r.CustomerID, PublicID: r.PublicID, CompanyID: r.Company, CompanyName: companyName,
		Lifecycle: l.Name(), LifecycleVersion: l.Version(), Status: l.Initial(),
		Nationality: r.Nationality, Gender: r.Gender, Language: r.Language, PersonType: r.PersonType,
		ReferralCode: r.ReferralCode, CreatedByAgent: r.CreatedByAgent,
		AccessRoles: r.AccessRoles, AccessGroups: r.AccessGroups, Tags: r.Tags, ActiveServices: r.ActiveServices,
	}
	p := &PersonalData{Name: r.Name, Emails: r.Emails, Phones: r.Phones, Address: r.Address}
	if r.IDCardNumber != "" {
		p.IDCardNumber = &r.IDCardNumber
	}
	if r.BirthDate != "" {
		p.BirthDate = &r.BirthDate
	}
	e.Personal = p
	return []Event{e}, nil
}

// ChangeStatus is the inline status change of seed 000: name the target, the
// lifecycle finds the transition.
type ChangeStatus struct {
	Status     string
	Reason     string
	Labels     []string
	RejectType string
}

func (ChangeStatus) CommandName() string { return "ChangeStatus" }

func (c ChangeStatus) Decide(d Decision) ([]Event, error) {
	var errs FieldErrors
	checkText(&errs, "status", c.Status, true, maxShortText)
	if c.Status != "" && !d.Lifecycle.HasState(c.Status) {
		errs.add("status", "%q is not a status of lifecycle %s", c.Status, d.Lifecycle.Name())
	}
	checkTransitionInput(&errs, c.Reason, c.Labels, c.RejectType)
	if err := errs.orNil(); err != nil {
		return nil, err
	}
	sc, err := d.moveTo(c.Status, c.Reason, c.Labels, c.RejectType)
	if err != nil {
		return nil, err
	}
	return []Event{sc}, nil
}

// FireTransition fires a lifecycle event by name.
type FireTransition struct {
	Event      string
	Reason     string
	Labels     []string
	RejectType string
}

func (FireTransition) CommandName() string { return "FireTransition" }

func (f FireTransition) Decide(d Decision) ([]Event, error) {
	var errs FieldErrors
	checkText(&errs, "event", f.Event, true, maxShortText)
	if f.Event != "" && d.Lifecycle.byEventFrom[f.Event] == nil {
		errs.add("event", "%q is not an event of lifecycle %s", f.Event, d.Lifecycle.Name())
	}
	checkTransitionInput(&errs, f.Reason, f.Labels, f.RejectType)
	if err := errs.orNil(); err != nil {
		return nil, err
	}
	sc, err := d.transition(f.Event, f.Reason, f.Labels, f.RejectType)
	if err != nil {
		return nil, err
	}
	return []Event{sc}, nil
}

// UpdateProfile changes profile fields; nil fields stay as they are.
type UpdateProfile struct {
	Name         *Name
	IDCardNumber *string
	Nationality  *string
	BirthDate    *string
	Gender       *string
	Language     *string
	Emails       *[]string
	Phones       *[]string
	Address      *Address
	PersonType   *string
	ReferralCode *string
}

func (UpdateProfile) CommandName() string { return "UpdateProfile" }

func (u UpdateProfile) Decide(d Decision) ([]Event, error) {
	var errs FieldErrors
	c := d.Customer
	e := &ProfileUpdated{}
	p := &PersonalData{}
	changed := func(field string) { e.Fields = append(e.Fields, field) }
	if u.Name != nil {
		checkName(&errs, "name", u.Name, true)
		if c.Name == nil || *c.Name != *u.Name {
			p.Name = u.Name
			changed("name")
		}
	}
	str := func(field string, v *string, cur string, check func(string), personal **string, public **string) {
		if v == nil {
			return
		}
		check(*v)
		if *v != cur {
			if personal != nil {
				*personal = v
			} else {
				*public = v
			}
			changed(field)
		}
	}
	str("id_card_number", u.IDCardNumber, c.IDCardNumber, func(s string) { checkText(&errs, "id_card_number", s, true, 64) }, &p.IDCardNumber, nil)
	str("nationality", u.Nationality, c.Nationality, func(s string) { checkCountry(&errs, "nationality", s, true) }, nil, &e.Nationality)
	str("birth_date", u.BirthDate, c.BirthDate, func(s string) {
		checkText(&errs, "birth_date", s, true, 10)
		checkDate(&errs, "birth_date", s, d.Now, true)
	}, &p.BirthDate, nil)
	str("gender", u.Gender, c.Gender, func(s string) { checkText(&errs, "gender", s, false, 32) }, nil, &e.Gender)
	str("language", u.Language, c.Language, func(s string) { checkLanguage(&errs, "language", s) }, nil, &e.Language)
	str("person_type", u.PersonType, c.PersonType, func(s string) { checkText(&errs, "person_type", s, false, maxShortText) }, nil, &e.PersonType)
	str("referral_code", u.ReferralCode, c.ReferralCode, func(s string) { checkText(&errs, "referral_code", s, false, maxShortText) }, nil, &e.ReferralCode)
	// Contacts are obligatory once given (seed 002: the email is the login),
	// so an update replaces them but never empties them.
	if u.Emails != nil && len(*u.Emails) == 0 {
		errs.add("emails", "must keep at least one email")
	}
	if u.Phones != nil && len(*u.Phones) == 0 {
		errs.add("phones", "must keep at least one phone number")
	}
	if u.Emails != nil {
		checkEmails(&errs, "emails", *u.Emails)
		if !slices.Equal(*u.Emails, c.Emails) {
			p.Emails = append([]string{}, *u.Emails...)
			changed("emails")
		}
	}
	if u.Phones != nil {
		checkPhones(&errs, "phones", *u.Phones)
		if !slices.Equal(*u.Phones, c.Phones) {
			p.Phones = append([]string{}, *u.Phones...)
			changed("phones")
		}
	}
	if u.Address != nil {
		checkAddress(&errs, "address", u.Address)
		if c.Address == nil || !addressEqual(*c.Address, *u.Address) {
			p.Address = u.Address
			changed("address")
		}
	}
	if err := errs.orNil(); err != nil {
		return nil, err
	}
	if len(e.Fields) == 0 {
		return nil, nil
	}
	e.Personal = p
	return []Event{e}, nil
}

func addressEqual(a, b Address) bool {
	return a.Country == b.Country && a.City == b.City && slices.Equal(a.Lines, b.Lines)
}

// UploadDocument adds a document, or replaces one with the same id.
type UploadDocument struct {
	DocumentID string
	Type       string
	Number     string
	Country    string
	ExpiryDate string
	FileDigest string
}

func (UploadDocument) CommandName() string { return "UploadDocument" }

// DocumentTypes a customer can upload.
var DocumentTypes = []string{"PASSPORT", "ID_CARD", "DRIVERS_LICENSE", "RESIDENCE_PERMIT", "PROOF_OF_ADDRESS", "SELFIE", "OTHER"}

// fileDigestPrefix names the digest algorithm of a document file.
const fileDigestPrefix = "sha256:"

func (u UploadDocument) Decide(d Decision) ([]Event, error) {
	var errs FieldErrors
	checkText(&errs, "document_id", u.DocumentID, false, 64)
	checkOneOf(&errs, "type", u.Type, DocumentTypes)
	checkText(&errs, "number", u.Number, false, 64)
	checkCountry(&errs, "country", u.Country, false)
	checkDate(&errs, "expiry_date", u.ExpiryDate, d.Now, false)
	if u.FileDigest != "" {
		hexPart, ok := strings.CutPrefix(u.FileDigest, fileDigestPrefix)
		if b, err := hex.DecodeString(hexPart); !ok || err != nil || len(b) != sha256.Size {
			errs.add("file_digest", "must be sha256: followed by 64 hex digits")
		}
	}
	if len(d.Customer.Documents) >= maxListItems && u.DocumentID == "" {
		errs.add("document_id", "the customer already has %d documents", maxListItems)
	}
	if err := errs.orNil(); err != nil {
		return nil, err
	}
	id := u.DocumentID
	if id == "" {
		id = d.NewID()
	}
	e := &DocumentUploaded{DocumentID: id, Type: u.Type, Country: u.Country, ExpiryDate: u.ExpiryDate, FileDigest: u.FileDigest}
	if u.Number != "" {
		e.Personal = &PersonalData{DocumentNumber: &u.Number}
	}
	return []Event{e}, nil
}

func (d Decision) review() (*ReviewStates, error) {
	r := d.Lifecycle.Review()
	if r == nil {
		return nil, fmt.Errorf("%w: lifecycle %s has no review workflow", ErrReviewState, d.Lifecycle.Name())
	}
	return r, nil
}

func (d Decision) openCheck() (*Check, error) {
	if _, err := d.review(); err != nil {
		return nil, err
	}
	if d.Customer.Check == nil {
		return nil, fmt.Errorf("%w: no check is open; start one first", ErrReviewState)
	}
	return d.Customer.Check, nil
}

// StartCheck opens a check on a case in review (seed 003 "Start Check").
type StartCheck struct{}

func (StartCheck) CommandName() string { return "StartCheck" }

func (StartCheck) Decide(d Decision) ([]Event, error) {
	r, err := d.review()
	if err != nil {
		return nil, err
	}
	if d.Customer.Status != r.InReview {
		return nil, fmt.Errorf("%w: a check starts in %s, the customer is %s", ErrReviewState, r.InReview, d.Customer.Status)
	}
	if d.Customer.Check != nil {
		return nil, fmt.Errorf("%w: check %s is already open", ErrReviewState, d.Customer.Check.ID)
	}
	return []Event{&CheckStarted{CheckID: d.NewID(), Items: d.Customer.ReviewItems()}}, nil
}

// ReviewItem marks a personal field or document approved, pending or rejected.
type ReviewItem struct {
	Item     string
	Decision string
	Comment  string
}

func (ReviewItem) CommandName() string { return "ReviewItem" }

func (ri ReviewItem) Decide(d Decision) ([]Event, error) {
	var errs FieldErrors
	checkText(&errs, "item", ri.Item, true, maxShortText)
	checkOneOf(&errs, "decision", ri.Decision, []string{DecisionApproved, DecisionPending, DecisionRejected})
	checkText(&errs, "comment", ri.Comment, false, maxReasonText)
	if err := errs.orNil(); err != nil {
		return nil, err
	}
	check, err := d.openCheck()
	if err != nil {
		return nil, err
	}
	if !slices.Contains(check.Items, ri.Item) {
		return nil, &FieldError{Field: "item", Detail: fmt.Sprintf("%q is not an item of this check (items: %s)", ri.Item, strings.Join(check.Items, ", ")), Err: ErrInvalid}
	}
	if check.Decisions[ri.Item] == ri.Decision && check.Comments[ri.Item] == ri.Comment {
		return nil, nil
	}
	return []Event{&ItemReviewed{CheckID: check.ID, Item: ri.Item, Decision: ri.Decision, Comment: ri.Comment}}, nil
}

// CheckIncompleteError lists the items that keep a check from approving.
type CheckIncompleteError struct{ NotApproved []string }

func (e *CheckIncompleteError) Error() string {
	return fmt.Sprintf("%s: %s", ErrCheckIncomplete, strings.Join(e.NotApproved, ", "))
}
func (e *CheckIncompleteError) Unwrap() error { return ErrCheckIncomplete }

// FinishCheck closes a check whose items are all approved: it approves, or
// sends the case to the four-eyes approval when the lifecycle has that step.
type FinishCheck struct{}

func (FinishCheck) CommandName() string { return "FinishCheck" }

func (FinishCheck) Decide(d Decision) ([]Event, error) {
	check, err := d.openCheck()
	if err != nil {
		return nil, err
	}
	var notApproved []string
	for _, it := range check.Items {
		if check.Decisions[it] != DecisionApproved {
			notApproved = append(notApproved, it)
		}
	}
	if len(notApproved) > 0 {
		return nil, &CheckIncompleteError{NotApproved: notApproved}
	}
	r := d.Lifecycle.Review()
	outcome, target := OutcomeApproved, r.Approved
	if _, err := d.Lifecycle.ResolveTarget(d.Customer.Status, r.Approved, d.Caller.Roles); err != nil && r.AwaitingApproval != "" {
		outcome, target = OutcomeSentForApproval, r.AwaitingApproval
	}
	sc, err := d.moveTo(target, "", nil, "")
	if err != nil {
		return nil, err
	}
	return []Event{&CheckFinished{CheckID: check.ID, Outcome: outcome}, sc}, nil
}

// RejectCheck closes the check by rejecting the customer with reason labels,
// an internal reason and an optional comment meant for the customer.
type RejectCheck struct {
	Reason        string
	Labels        []string
	RejectType    string
	ClientComment string
}

func (RejectCheck) CommandName() string { return "RejectCheck" }

func (rc RejectCheck) Decide(d Decision) ([]Event, error) {
	var errs FieldErrors
	checkTransitionInput(&errs, rc.Reason, rc.Labels, rc.RejectType)
	checkOneOf(&errs, "reject_type", rc.RejectType, []string{RejectRetry, RejectFinal})
	checkText(&errs, "client_comment", rc.ClientComment, false, maxReasonText)
	if err := errs.orNil(); err != nil {
		return nil, err
	}
	check, err := d.openCheck()
	if err != nil {
		return nil, err
	}
	sc, err := d.moveTo(d.Lifecycle.Review().Rejected, rc.Reason, rc.Labels, rc.RejectType)
	if err != nil {
		return nil, err
	}
	return []Event{sc, &CheckFinished{CheckID: check.ID, Outcome: OutcomeRejected, Labels: rc.Labels, RejectType: rc.RejectType, ClientComment: rc.ClientComment}}, nil
}

// RequestResubmission asks the customer for chosen items again and moves the
// case to the lifecycle's resubmission status (PENDING_UPLOAD).
type RequestResubmission struct {
	Items   []string
	Comment string
}

func (RequestResubmission) CommandName() string { return "RequestResubmission" }

func (rr RequestResubmission) Decide(d Decision) ([]Event, error) {
	var errs FieldErrors
	if len(rr.Items) == 0 {
		errs.add("items", "name at least one item to resubmit")
	}
	checkList(&errs, "items", rr.Items, maxShortText)
	checkText(&errs, "comment", rr.Comment, false, maxReasonText)
	if err := errs.orNil(); err != nil {
		return nil, err
	}
	r, err := d.review()
	if err != nil {
		return nil, err
	}
	sc, err := d.moveTo(r.Resubmission, rr.Comment, nil, "")
	if err != nil {
		return nil, err
	}
	var out []Event
	if ch := d.Customer.Check; ch != nil {
		out = append(out, &CheckFinished{CheckID: ch.ID, Outcome: OutcomeResubmission})
	}
	return append(out, &ResubmissionRequested{Items: rr.Items, Comment: rr.Comment}, sc), nil
}

// SubmitResubmission is the customer's resubmission: the case goes back to
// review and subscribers learn it needs a re-check.
type SubmitResubmission struct {
	Items []string
}

func (SubmitResubmission) CommandName() string { return "SubmitResubmission" }

func (s SubmitResubmission) Decide(d Decision) ([]Event, error) {
	var errs FieldErrors
	checkList(&errs, "items", s.Items, maxShortText)
	if err := errs.orNil(); err != nil {
		return nil, err
	}
	r, err := d.review()
	if err != nil {
		return nil, err
	}
	if d.Customer.Status != r.Resubmission {
		return nil, fmt.Errorf("%w: a resubmission is expected in %s, the customer is %s", ErrReviewState, r.Resubmission, d.Customer.Status)
	}
	items := s.Items
	if len(items) == 0 {
		items = d.Customer.ResubmissionItems
	}
	sc, err := d.moveTo(r.InReview, "", nil, "")
	if err != nil {
		return nil, err
	}
	return []Event{&ResubmissionReceived{Items: clone(items), NeedsRecheck: true}, sc}, nil
}

// AssessRisk sets the risk level ("" unsets it).
type AssessRisk struct {
	Risk   string
	Source string
}

func (AssessRisk) CommandName() string { return "AssessRisk" }

func (a AssessRisk) Decide(d Decision) ([]Event, error) {
	var errs FieldErrors
	if a.Risk != "" {
		checkOneOf(&errs, "risk", a.Risk, []string{RiskNormal, RiskHigh, RiskVeryHigh})
	}
	checkText(&errs, "source", a.Source, false, maxShortText)
	if err := errs.orNil(); err != nil {
		return nil, err
	}
	if a.Risk == d.Customer.Risk {
		return nil, nil
	}
	return []Event{&RiskAssessed{Risk: a.Risk, Source: a.Source}}, nil
}

// RecordAMLScreening records an AML result: true clear, false hit, nil reset.
type RecordAMLScreening struct {
	Result    *bool
	Provider  string
	Reference string
}

func (RecordAMLScreening) CommandName() string { return "RecordAMLScreening" }

func (a RecordAMLScreening) Decide(d Decision) ([]Event, error) {
	var errs FieldErrors
	checkText(&errs, "provider", a.Provider, false, maxShortText)
	checkText(&errs, "reference", a.Reference, false, maxShortText)
	if err := errs.orNil(); err != nil {
		return nil, err
	}
	// Every screening is recorded, even with an unchanged result: auditors
	// need to see that it was run.
	return []Event{&AMLScreened{Result: a.Result, Provider: a.Provider, Reference: a.Reference}}, nil
}

// SetVideoCallStatus records the video-KYC call state.
type SetVideoCallStatus struct{ Status string }

func (SetVideoCallStatus) CommandName() string { return "SetVideoCallStatus" }

func (s SetVideoCallStatus) Decide(d Decision) ([]Event, error) {
	var errs FieldErrors
	checkOneOf(&errs, "status", s.Status, VideoCallStatuses)
	if err := errs.orNil(); err != nil {
		return nil, err
	}
	if s.Status == d.Customer.VideoCallStatus {
		return nil, nil
	}
	return []Event{&VideoCallStatusChanged{Status: s.Status}}, nil
}

// SetBioPay switches BioPay on or off.
type SetBioPay struct{ Enabled bool }

func (SetBioPay) CommandName() string { return "SetBioPay" }

func (s SetBioPay) Decide(d Decision) ([]Event, error) {
	if s.Enabled == d.Customer.BioPayEnabled {
		return nil, nil
	}
	return []Event{&BioPayToggled{Enabled: s.Enabled}}, nil
}

// SetVerificationLevel sets the level 0-5 of seed 002.
type SetVerificationLevel struct{ Level int }

func (SetVerificationLevel) CommandName() string { return "SetVerificationLevel" }

func (s SetVerificationLevel) Decide(d Decision) ([]Event, error) {
	if s.Level < 0 || s.Level > 5 {
		return nil, invalid("level", "must be between 0 and 5")
	}
	if s.Level == d.Customer.VerificationLevel {
		return nil, nil
	}
	return []Event{&VerificationLevelChanged{From: d.Customer.VerificationLevel, To: s.Level}}, nil
}

// VerifyContact records whether the email or phone is verified.
type VerifyContact struct {
	Channel  string
	Verified bool
}

func (VerifyContact) CommandName() string { return "VerifyContact" }

func (v VerifyContact) Decide(d Decision) ([]Event, error) {
	var errs FieldErrors
	checkOneOf(&errs, "channel", v.Channel, []string{"email", "phone"})
	if err := errs.orNil(); err != nil {
		return nil, err
	}
	cur := d.Customer.EmailVerified
	if v.Channel == "phone" {
		cur = d.Customer.PhoneVerified
	}
	if cur == v.Verified {
		return nil, nil
	}
	return []Event{&ContactVerified{Channel: v.Channel, Verified: v.Verified}}, nil
}

// AddNote adds an operator's note.
type AddNote struct{ Text string }

func (AddNote) CommandName() string { return "AddNote" }

func (a AddNote) Decide(d Decision) ([]Event, error) {
	var errs FieldErrors
	checkText(&errs, "text", a.Text, true, maxNoteText)
	if err := errs.orNil(); err != nil {
		return nil, err
	}
	return []Event{&NoteAdded{NoteID: d.NewID(), Text: a.Text}}, nil
}

// ChangeTags adds and removes tags.
type ChangeTags struct {
	Add    []string
	Remove []string
}

func (ChangeTags) CommandName() string { return "ChangeTags" }

func (t ChangeTags) Decide(d Decision) ([]Event, error) {
	var errs FieldErrors
	checkList(&errs, "add", t.Add, 64)
	checkList(&errs, "remove", t.Remove, 64)
	for i, a := range t.Add {
		if slices.Contains(t.Remove, a) {
			errs.add(fmt.Sprintf("add[%d]", i), "%q is both added and removed", a)
		}
	}
	if err := errs.orNil(); err != nil {
		return nil, err
	}
	e := &TagsChanged{}
	for _, a := range t.Add {
		if !slices.Contains(d.Customer.Tags, a) {
			e.Added = append(e.Added, a)
		}
	}
	for _, r := range t.Remove {
		if slices.Contains(d.Customer.Tags, r) {
			e.Removed = append(e.Removed, r)
		}
	}
	if len(e.Added)+len(d.Customer.Tags)-len(e.Removed) > maxListItems {
		return nil, invalid("add", "a customer has at most %d tags", maxListItems)
	}
	if len(e.Added) == 0 && len(e.Removed) == 0 {
		return nil, nil
	}
	return []Event{e}, nil
}

// StepResults a verification step can have.
var StepResults = []string{"passed", "failed", "pending", "skipped"}

// RecordStepResult records the result of a verification step (rule).
type RecordStepResult struct {
	Step    string
	Result  string
	Details json.RawMessage
}

func (RecordStepResult) CommandName() string { return "RecordStepResult" }

func (s RecordStepResult) Decide(d Decision) ([]Event, error) {
	var errs FieldErrors
	checkText(&errs, "step", s.Step, true, maxShortText)
	checkOneOf(&errs, "result", s.Result, StepResults)
	if len(s.Details) > 16<<10 {
		errs.add("details", "is larger than 16 KiB")
	} else if len(s.Details) > 0 && !isJSONObject(s.Details) {
		errs.add("details", "must be a JSON object")
	}
	if err := errs.orNil(); err != nil {
		return nil, err
	}
	return []Event{&StepResultRecorded{Step: s.Step, Result: s.Result, Details: s.Details}}, nil
}

// isJSONObject checks without building the object: step results arrive at
// volume and their details are only stored.
func isJSONObject(b json.RawMessage) bool {
	trimmed := bytes.TrimLeft(b, " \t\r\n")
	return len(trimmed) > 0 && trimmed[0] == '{' && json.Valid(b)
}

// RecordAISummary stores a generated case summary.
type RecordAISummary struct {
	Summary string
	Model   string
}

func (RecordAISummary) CommandName() string { return "RecordAISummary" }

func (s RecordAISummary) Decide(d Decision) ([]Event, error) {
	var errs FieldErrors
	checkText(&errs, "summary", s.Summary, true, maxNoteText)
	checkText(&errs, "model", s.Model, false, maxShortText)
	if err := errs.orNil(); err != nil {
		return nil, err
	}
	return []Event{&AISummaryGenerated{Summary: s.Summary, Model: s.Model}}, nil
}

// SetServices sets the active services (seed 001).
type SetServices struct{ ActiveServices []string }

func (SetServices) CommandName() string { return "SetServices" }

func (s SetServices) Decide(d Decision) ([]Event, error) {
	var errs FieldErrors
	checkServices(&errs, "active_services", s.ActiveServices)
	if err := errs.orNil(); err != nil {
		return nil, err
	}
	if slices.Equal(s.ActiveServices, d.Customer.ActiveServices) {
		return nil, nil
	}
	return []Event{&ServicesChanged{ActiveServices: orEmpty(s.ActiveServices)}}, nil
}

// SetAccess sets access roles and groups (seed 002).
type SetAccess struct {
	AccessRoles  []string
	AccessGroups []string
}

func (SetAccess) CommandName() string { return "SetAccess" }

func (s SetAccess) Decide(d Decision) ([]Event, error) {
	var errs FieldErrors
	checkList(&errs, "access_roles", s.AccessRoles, maxShortText)
	checkList(&errs, "access_groups", s.AccessGroups, maxShortText)
	if err := errs.orNil(); err != nil {
		return nil, err
	}
	if slices.Equal(s.AccessRoles, d.Customer.AccessRoles) && slices.Equal(s.AccessGroups, d.Customer.AccessGroups) {
		return nil, nil
	}
	return []Event{&AccessChanged{AccessRoles: orEmpty(s.AccessRoles), AccessGroups: orEmpty(s.AccessGroups)}}, nil
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// IsRefusal reports whether err is a domain refusal rather than a fault.
func IsRefusal(err error) bool {
	for _, target := range []error{ErrInvalid, ErrIllegalTransition, ErrReasonRequired, ErrReasonTooShort, ErrFourEyes,
		ErrFinalRejection, ErrForbidden, ErrIdentityRejected, ErrCustomerNotFound, ErrCustomerExists,
		ErrUnknownLifecycle, ErrReviewState, ErrCheckIncomplete, ErrRevisionMismatch, ErrIdempotencyKeyReused} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}
