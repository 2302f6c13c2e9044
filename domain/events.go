package domain

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
)

// Event is a fact about a customer, past tense. Its JSON is the event's
// "data" part; personal data travels apart (see Personal).
type Event interface {
	EventType() string
}

// PersonalData is the personal part of an event: what crypto-shredding would
// encrypt per customer and erase. It is never inside the data part.
type PersonalData struct {
	Name           *Name    `json:"name,omitempty"`
	IDCardNumber   *string  `json:"id_card_number,omitempty"`
	BirthDate      *string  `json:"birth_date,omitempty"`
	Emails         []string `json:"emails,omitempty"`
	Phones         []string `json:"phones,omitempty"`
	Address        *Address `json:"address,omitempty"`
	DocumentNumber *string  `json:"document_number,omitempty"`
}

func (p *PersonalData) empty() bool {
	return p == nil || (p.Name == nil && p.IDCardNumber == nil && p.BirthDate == nil && p.Emails == nil &&
		p.Phones == nil && p.Address == nil && p.DocumentNumber == nil)
}

// withPersonal is embedded by events that carry personal data.
type withPersonal struct {
	Personal *PersonalData `json:"-"`
}

func (w *withPersonal) personalPart() **PersonalData { return &w.Personal }

type personalCarrier interface{ personalPart() **PersonalData }

// Name of a person.
type Name struct {
	First string `json:"first"`
	Last  string `json:"last"`
}

// Address is a postal address; Country is ISO 3166-1 alpha-2.
type Address struct {
	Country string   `json:"country"`
	City    string   `json:"city,omitempty"`
	Lines   []string `json:"lines,omitempty"`
}

// CustomerRegistered opens a customer stream.
type CustomerRegistered struct {
	withPersonal
	CustomerID       string   `json:"customer_id"`
	PublicID         string   `json:"public_id"`
	CompanyID        string   `json:"company_id"`
	CompanyName      string   `json:"company_name"`
	Lifecycle        string   `json:"lifecycle"`
	LifecycleVersion int      `json:"lifecycle_version"`
	Status           string   `json:"status"`
	Nationality      string   `json:"nationality,omitempty"`
	Gender           string   `json:"gender,omitempty"`
	Language         string   `json:"language,omitempty"`
	PersonType       string   `json:"person_type,omitempty"`
	ReferralCode     string   `json:"referral_code,omitempty"`
	CreatedByAgent   string   `json:"created_by_agent,omitempty"`
	AccessRoles      []string `json:"access_roles,omitempty"`
	AccessGroups     []string `json:"access_groups,omitempty"`
	Tags             []string `json:"tags,omitempty"`
	ActiveServices   []string `json:"active_services,omitempty"`
}

// ProfileUpdated changes profile fields; only the fields present changed.
type ProfileUpdated struct {
	withPersonal
	Nationality  *string `json:"nationality,omitempty"`
	Gender       *string `json:"gender,omitempty"`
	Language     *string `json:"language,omitempty"`
	PersonType   *string `json:"person_type,omitempty"`
	ReferralCode *string `json:"referral_code,omitempty"`
	// Fields names every changed field, personal ones included, so the audit
	// trail can say what changed even after personal data is shredded.
	Fields []string `json:"fields"`
}

// DocumentUploaded adds or replaces a document.
type DocumentUploaded struct {
	withPersonal
	DocumentID string `json:"document_id"`
	Type       string `json:"type"`
	Country    string `json:"country,omitempty"`
	ExpiryDate string `json:"expiry_date,omitempty"`
	FileDigest string `json:"file_digest,omitempty"`
}

// CheckStarted opens a reviewer's check (seed 003 "Start Check").
type CheckStarted struct {
	CheckID string   `json:"check_id"`
	Items   []string `json:"items"`
}

// ItemReviewed marks one personal field or document in the open check.
type ItemReviewed struct {
	CheckID  string `json:"check_id"`
	Item     string `json:"item"`
	Decision string `json:"decision"`
	Comment  string `json:"comment,omitempty"`
}

// CheckFinished closes the open check with its outcome.
type CheckFinished struct {
	CheckID string `json:"check_id"`
	Outcome string `json:"outcome"`
	// Labels, RejectType and ClientComment are set for a rejection.
	Labels        []string `json:"labels,omitempty"`
	RejectType    string   `json:"reject_type,omitempty"`
	ClientComment string   `json:"client_comment,omitempty"`
}

// StatusChanged moves the customer through its lifecycle.
type StatusChanged struct {
	From       string   `json:"from"`
	To         string   `json:"to"`
	Transition string   `json:"transition"`
	Reason     string   `json:"reason,omitempty"`
	Labels     []string `json:"labels,omitempty"`
	// RejectType is RETRY or FINAL when the move is a rejection.
	RejectType string `json:"reject_type,omitempty"`
}

// ResubmissionRequested asks the customer to provide chosen items again.
type ResubmissionRequested struct {
	Items   []string `json:"items"`
	Comment string   `json:"comment,omitempty"`
}

// ResubmissionReceived: the customer resubmitted; the case needs a re-check.
type ResubmissionReceived struct {
	Items        []string `json:"items"`
	NeedsRecheck bool     `json:"needs_recheck"`
}

// RiskAssessed sets the risk level; an empty Risk unsets it.
type RiskAssessed struct {
	Risk   string `json:"risk"`
	Source string `json:"source,omitempty"`
}

// AMLScreened records an AML screening result: true clear, false a hit, nil
// not checked (a reset).
type AMLScreened struct {
	Result    *bool  `json:"result"`
	Provider  string `json:"provider,omitempty"`
	Reference string `json:"reference,omitempty"`
}

// VideoCallStatusChanged records the video-KYC call state (seed 000 values).
type VideoCallStatusChanged struct {
	Status string `json:"status"`
}

// BioPayToggled switches BioPay.
type BioPayToggled struct {
	Enabled bool `json:"enabled"`
}

// VerificationLevelChanged sets the verification level 0-5 (seed 002).
type VerificationLevelChanged struct {
	From int `json:"from"`
	To   int `json:"to"`
}

// ContactVerified records whether an email or phone was verified.
type ContactVerified struct {
	Channel  string `json:"channel"`
	Verified bool   `json:"verified"`
}

// NoteAdded is an operator's note.
type NoteAdded struct {
	NoteID string `json:"note_id"`
	Text   string `json:"text"`
}

// TagsChanged adds and removes tags.
type TagsChanged struct {
	Added   []string `json:"added,omitempty"`
	Removed []string `json:"removed,omitempty"`
}

// StepResultRecorded records a verification step (rule) result.
type StepResultRecorded struct {
	Step    string          `json:"step"`
	Result  string          `json:"result"`
	Details json.RawMessage `json:"details,omitempty"`
}

// AISummaryGenerated stores a generated case summary.
type AISummaryGenerated struct {
	Summary string `json:"summary"`
	Model   string `json:"model,omitempty"`
}

// ServicesChanged sets the customer's active services.
type ServicesChanged struct {
	ActiveServices []string `json:"active_services"`
}

// AccessChanged sets the customer's access roles and groups.
type AccessChanged struct {
	AccessRoles  []string `json:"access_roles"`
	AccessGroups []string `json:"access_groups"`
}

// IdentityBound is recorded on an identity stream when a customer registers
// with an identity document under a lifecycle that keeps identities, so a
// later registration can find the customers that used the same document.
type IdentityBound struct {
	CustomerID string `json:"customer_id"`
	Lifecycle  string `json:"lifecycle"`
}

func (CustomerRegistered) EventType() string       { return "CustomerRegistered" }
func (ProfileUpdated) EventType() string           { return "ProfileUpdated" }
func (DocumentUploaded) EventType() string         { return "DocumentUploaded" }
func (CheckStarted) EventType() string             { return "CheckStarted" }
func (ItemReviewed) EventType() string             { return "ItemReviewed" }
func (CheckFinished) EventType() string            { return "CheckFinished" }
func (StatusChanged) EventType() string            { return "StatusChanged" }
func (ResubmissionRequested) EventType() string    { return "ResubmissionRequested" }
func (ResubmissionReceived) EventType() string     { return "ResubmissionReceived" }
func (RiskAssessed) EventType() string             { return "RiskAssessed" }
func (AMLScreened) EventType() string              { return "AMLScreened" }
func (VideoCallStatusChanged) EventType() string   { return "VideoCallStatusChanged" }
func (BioPayToggled) EventType() string            { return "BioPayToggled" }
func (VerificationLevelChanged) EventType() string { return "VerificationLevelChanged" }
func (ContactVerified) EventType() string          { return "ContactVerified" }
func (NoteAdded) EventType() string                { return "NoteAdded" }
func (TagsChanged) EventType() string              { return "TagsChanged" }
func (StepResultRecorded) EventType() string       { return "StepResultRecorded" }
func (AISummaryGenerated) EventType() string       { return "AISummaryGenerated" }
func (ServicesChanged) EventType() string          { return "ServicesChanged" }
func (AccessChanged) EventType() string            { return "AccessChanged" }
func (IdentityBound) EventType() string            { return "IdentityBound" }

// Upcaster turns the data and personal parts of one schema version into the
// next version's. Registered per type and source version.
type Upcaster func(data, personal json.RawMessage) (json.RawMessage, json.RawMessage, error)

type eventKind struct {
	current   int
	new       func() Event
	upcasters map[int]Upcaster // source version -> next version
}

// Codec encodes events for the store and decodes stored events back,
// upcasting old versions on the way.
type Codec struct {
	kinds map[string]*eventKind
}

// NewCodec knows every event type of the engine at its current version.
func NewCodec() *Codec {
	c := &Codec{kinds: map[string]*eventKind{}}
	for _, f := range []func() Event{
		func() Event { return &CustomerRegistered{} },
		func() Event { return &ProfileUpdated{} },
		func() Event { return &DocumentUploaded{} },
		func() Event { return &CheckStarted{} },
		func() Event { return &ItemReviewed{} },
		func() Event { return &CheckFinished{} },
		func() Event { return &StatusChanged{} },
		func() Event { return &ResubmissionRequested{} },
		func() Event { return &ResubmissionReceived{} },
		func() Event { return &RiskAssessed{} },
		func() Event { return &AMLScreened{} },
		func() Event { return &VideoCallStatusChanged{} },
		func() Event { return &BioPayToggled{} },
		func() Event { return &VerificationLevelChanged{} },
		func() Event { return &ContactVerified{} },
		func() Event { return &NoteAdded{} },
		func() Event { return &TagsChanged{} },
		func() Event { return &StepResultRecorded{} },
		func() Event { return &AISummaryGenerated{} },
		func() Event { return &ServicesChanged{} },
		func() Event { return &AccessChanged{} },
		func() Event { return &IdentityBound{} },
	} {
		c.kinds[f().EventType()] = &eventKind{current: 1, new: f, upcasters: map[int]Upcaster{}}
	}
	return c
}

// Register adds an event type at a version, or moves a known type to a newer
// version with the upcaster from the version before it. Older events keep
// being read: they are upcast step by step on decode, never rewritten.
func (c *Codec) Register(newEvent func() Event, version int, fromPrevious Upcaster) error {
	name := newEvent().EventType()
	k := c.kinds[name]
	if k == nil {
		if version != 1 {
			return fmt.Errorf("event %s: first version must be 1", name)
		}
		c.kinds[name] = &eventKind{current: 1, new: newEvent, upcasters: map[int]Upcaster{}}
		return nil
	}
	if version != k.current+1 || fromPrevious == nil {
		return fmt.Errorf("event %s: version %d must follow %d with an upcaster", name, version, k.current)
	}
	k.upcasters[k.current] = fromPrevious
	k.current = version
	k.new = newEvent
	return nil
}

// Types lists the known event types with their current versions.
func (c *Codec) Types() map[string]int {
	out := make(map[string]int, len(c.kinds))
	for n, k := range c.kinds {
		out[n] = k.current
	}
	return out
}

// TypeNames lists the known event types, sorted.
func (c *Codec) TypeNames() []string {
	out := make([]string, 0, len(c.kinds))
	for n := range c.kinds {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Encode splits an event into its data and personal parts.
func (c *Codec) Encode(e Event) (typ string, version int, data, personal json.RawMessage, err error) {
	k := c.kinds[e.EventType()]
	if k == nil {
		return "", 0, nil, nil, fmt.Errorf("encode: unknown event type %s", e.EventType())
	}
	data, err = json.Marshal(e)
	if err != nil {
		return "", 0, nil, nil, fmt.Errorf("encode %s: %w", e.EventType(), err)
	}
	if pc, ok := e.(personalCarrier); ok {
		if p := *pc.personalPart(); !p.empty() {
			if personal, err = json.Marshal(p); err != nil {
				return "", 0, nil, nil, fmt.Errorf("encode %s personal data: %w", e.EventType(), err)
			}
		}
	}
	return e.EventType(), k.current, data, personal, nil
}

// Decode turns a stored event back into its current-version Go value.
func (c *Codec) Decode(typ string, version int, data, personal json.RawMessage) (Event, error) {
	k := c.kinds[typ]
	if k == nil {
		return nil, fmt.Errorf("decode: unknown event type %s", typ)
	}
	if version < 1 || version > k.current {
		return nil, fmt.Errorf("decode %s: unknown version %d (current %d)", typ, version, k.current)
	}
	for v := version; v < k.current; v++ {
		var err error
		if data, personal, err = k.upcasters[v](data, personal); err != nil {
			return nil, fmt.Errorf("upcast %s v%d: %w", typ, v, err)
		}
	}
	e := k.new()
	if err := strictUnmarshal(data, e); err != nil {
		return nil, fmt.Errorf("decode %s v%d: %w", typ, version, err)
	}
	if pc, ok := e.(personalCarrier); ok && len(personal) > 0 && !bytes.Equal(personal, []byte("null")) {
		p := &PersonalData{}
		if err := strictUnmarshal(personal, p); err != nil {
			return nil, fmt.Errorf("decode %s personal data: %w", typ, err)
		}
		*pc.personalPart() = p
	}
	return e, nil
}

func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// Recorded pairs a decoded event with its envelope.
type Recorded struct {
	Event Event
	Meta  RecordedEvent
}

// DecodeRecorded decodes a stored event.
func (c *Codec) DecodeRecorded(r RecordedEvent) (Recorded, error) {
	e, err := c.Decode(r.Type, r.SchemaVersion, r.Data, r.Personal)
	if err != nil {
		return Recorded{}, fmt.Errorf("%s revision %d: %w", r.Stream, r.Revision, err)
	}
	return Recorded{Event: e, Meta: r}, nil
}
