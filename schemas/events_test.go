package schemas_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kycengine/kyc/domain"
	"github.com/kycengine/kyc/schemas"
	"github.com/kycengine/kyc/schemas/eventschema"
)

var loadValidator = sync.OnceValues(eventschema.New)

func validator(t *testing.T) *eventschema.Validator {
	t.Helper()
	v, err := loadValidator()
	if err != nil {
		t.Fatalf("compile event schemas: %v", err)
	}
	return v
}

// schemaFiles reads every event schema as a JSON document, by file name.
func schemaFiles(t *testing.T) map[string]map[string]any {
	t.Helper()
	entries, err := fs.ReadDir(schemas.Events(), ".")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]any{}
	for _, e := range entries {
		raw, err := fs.ReadFile(schemas.Events(), e.Name())
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		out[e.Name()] = doc
	}
	return out
}

func TestEventSchemasCompile(t *testing.T) {
	v := validator(t)
	for typ, version := range domain.NewCodec().Types() {
		if !v.Has(typ, version) {
			t.Errorf("no compiled schema for %s v%d", typ, version)
		}
	}
}

// TestEventSchemaFilesMatchCodec: exactly one schema file per event type at
// its current version, and no other file.
func TestEventSchemaFilesMatchCodec(t *testing.T) {
	name := regexp.MustCompile(`^([A-Za-z0-9]+)\.v([0-9]+)\.json$`)
	types := domain.NewCodec().Types()
	found := map[string]bool{}
	for file := range schemaFiles(t) {
		m := name.FindStringSubmatch(file)
		if m == nil {
			t.Errorf("%s: not named <Type>.v<version>.json", file)
			continue
		}
		version, _ := strconv.Atoi(m[2])
		current, ok := types[m[1]]
		switch {
		case !ok:
			t.Errorf("%s: %s is not an event type of the codec", file, m[1])
		case version != current:
			t.Errorf("%s: %s is at version %d", file, m[1], current)
		}
		found[m[1]] = true
	}
	for typ, version := range types {
		if !found[typ] {
			t.Errorf("missing schema file %s.v%d.json", typ, version)
		}
	}
}

// TestEventSchemaDocuments checks what every schema file must say: draft,
// $id, title, description, and a closed object everywhere except where a
// field is free-form by design.
func TestEventSchemaDocuments(t *testing.T) {
	freeForm := map[string]bool{"StepResultRecorded.v1.json#/properties/data/properties/details": true}
	for file, doc := range schemaFiles(t) {
		if doc["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
			t.Errorf("%s: $schema = %v", file, doc["$schema"])
		}
		if doc["$id"] != eventschema.BaseID+file {
			t.Errorf("%s: $id = %v", file, doc["$id"])
		}
		for _, k := range []string{"title", "description"} {
			if s, _ := doc[k].(string); strings.TrimSpace(s) == "" {
				t.Errorf("%s: no %s", file, k)
			}
		}
		walkObjects(doc, "#", func(ptr string, node map[string]any) {
			ap, ok := node["additionalProperties"]
			switch {
			case freeForm[file+ptr]:
				if ap != true {
					t.Errorf("%s%s: free-form object should say additionalProperties: true", file, ptr)
				}
			case !ok || ap != false:
				t.Errorf("%s%s: object schema without additionalProperties: false", file, ptr)
			}
		})
	}
}

// walkObjects calls f for every subschema that describes an object (by its
// type; conditions such as "if" only constrain properties and are skipped).
func walkObjects(node any, ptr string, f func(string, map[string]any)) {
	switch n := node.(type) {
	case map[string]any:
		var isObject bool
		switch typ := n["type"].(type) {
		case string:
			isObject = typ == "object"
		case []any:
			isObject = slices.Contains(typ, any("object"))
		}
		if isObject {
			f(ptr, n)
		}
		keys := make([]string, 0, len(n))
		for k := range n {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if k == "enum" || k == "const" || k == "required" {
				continue
			}
			walkObjects(n[k], ptr+"/"+k, f)
		}
	case []any:
		for i, v := range n {
			walkObjects(v, ptr+"/"+strconv.Itoa(i), f)
		}
	}
}

// TestEventSchemasMirrorGoStructs: the data part of each schema has exactly
// the JSON fields of the Go struct, requires those without omitempty, and has
// a personal part only for events that carry personal data.
func TestEventSchemasMirrorGoStructs(t *testing.T) {
	codec := domain.NewCodec()
	files := schemaFiles(t)
	personalFields := map[string]bool{}
	for _, f := range jsonFields(reflect.TypeFor[domain.PersonalData]()) {
		personalFields[f.name] = true
	}
	for typ, version := range codec.Types() {
		doc := files[fmt.Sprintf("%s.v%d.json", typ, version)]
		if doc == nil {
			continue // reported by TestEventSchemaFilesMatchCodec
		}
		e, err := codec.Decode(typ, version, json.RawMessage(`{}`), nil)
		if err != nil {
			t.Fatalf("zero %s: %v", typ, err)
		}
		rt := reflect.TypeOf(e).Elem()
		props := doc["properties"].(map[string]any)
		data := props["data"].(map[string]any)
		dataProps := data["properties"].(map[string]any)
		required := map[string]bool{}
		for _, r := range asSlice(data["required"]) {
			required[r.(string)] = true
		}
		var goNames []string
		for _, f := range jsonFields(rt) {
			goNames = append(goNames, f.name)
			if _, ok := dataProps[f.name]; !ok {
				t.Errorf("%s: Go field %s is not in the schema", typ, f.name)
			}
			if required[f.name] == f.omitempty {
				t.Errorf("%s.%s: required in schema = %v, but omitempty in Go = %v", typ, f.name, required[f.name], f.omitempty)
			}
		}
		for p := range dataProps {
			if !slices.Contains(goNames, p) {
				t.Errorf("%s: schema property %s is not a Go field", typ, p)
			}
		}
		_, hasPersonal := rt.FieldByName("Personal")
		personal, schemaHasPersonal := props["personal"].(map[string]any)
		if hasPersonal != schemaHasPersonal {
			t.Errorf("%s: carries personal data = %v, schema has personal = %v", typ, hasPersonal, schemaHasPersonal)
		}
		if schemaHasPersonal {
			if len(asSlice(personal["required"])) > 0 {
				t.Errorf("%s: personal data fields must all be optional", typ)
			}
			for p := range personal["properties"].(map[string]any) {
				if !personalFields[p] {
					t.Errorf("%s: personal property %s is not a field of domain.PersonalData", typ, p)
				}
			}
		}
	}
}

func asSlice(v any) []any { s, _ := v.([]any); return s }

type jsonField struct {
	name      string
	omitempty bool
}

// jsonFields lists the JSON fields encoding/json gives a struct type,
// including those promoted from untagged embedded structs.
func jsonFields(rt reflect.Type) []jsonField {
	var out []jsonField
	for i := range rt.NumField() {
		f := rt.Field(i)
		tag := f.Tag.Get("json")
		if f.Anonymous && tag == "" && f.Type.Kind() == reflect.Struct {
			out = append(out, jsonFields(f.Type)...)
			continue
		}
		if tag == "-" || !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		out = append(out, jsonField{name: name, omitempty: slices.Contains(strings.Split(opts, ","), "omitempty")})
	}
	return out
}

// Fixed ids in the canonical form the engine generates (UUIDv7).
const (
	customerID = "01968a2c-5f3e-7b1a-9c4d-2e8f6a1b3c5d"
	checkID    = "01968a2d-0a11-7c22-8d33-4e445f556a67"
	noteID     = "01968a2d-77aa-7bbb-8ccc-dddeeefff001"
	docUUID    = "01968a2e-1234-7abc-9def-0123456789ab"
	digest     = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
)

func ptr[T any](v T) *T { return &v }

func registered(personal *domain.PersonalData) *domain.CustomerRegistered {
	e := &domain.CustomerRegistered{
		CustomerID: customerID, PublicID: "7K3QX9M2PA", CompanyID: "acme-bank", CompanyName: "acme-bank",
		Lifecycle: "kyc-review", LifecycleVersion: 1, Status: "CREATED",
	}
	e.Personal = personal
	return e
}

func registeredFull() *domain.CustomerRegistered {
	e := registered(&domain.PersonalData{
		Name:         &domain.Name{First: "Maria", Last: "Fernandes da Silva"},
		IDCardNumber: ptr("T22000129"),
		BirthDate:    ptr("1987-04-23"),
		Emails:       []string{"maria.silva@example.pt", "m.silva+bank@example.com"},
		Phones:       []string{"+351912345678", "+4915112345678"},
		Address:      &domain.Address{Country: "PT", City: "Lisboa", Lines: []string{"Rua Augusta 100", "3.º Esq."}},
	})
	e.CompanyName = "ACME Bank S.A."
	e.Nationality, e.Gender, e.Language, e.PersonType = "PT", "female", "pt-PT", "natural"
	e.ReferralCode, e.CreatedByAgent = "SPRING24", "branch-lisboa-07"
	e.AccessRoles, e.AccessGroups = []string{"kyc-officer", "compliance"}, []string{"retail-pt"}
	e.Tags = []string{"vip", "priority"}
	e.ActiveServices = []string{"aml", "video_kyc", "transactions", "questionnaire"}
	return e
}

func profileUpdated(e *domain.ProfileUpdated, personal *domain.PersonalData) *domain.ProfileUpdated {
	e.Personal = personal
	return e
}

func documentUploaded(e *domain.DocumentUploaded, personal *domain.PersonalData) *domain.DocumentUploaded {
	e.Personal = personal
	return e
}

// samples are realistic events of every type: a minimal one and a fully
// populated one at least, plus edge cases the engine can emit.
var samples = []struct {
	name  string
	event domain.Event
}{
	{"CustomerRegistered minimal, no personal data", registered(nil)},
	{"CustomerRegistered with name only", registered(&domain.PersonalData{Name: &domain.Name{First: "Jan", Last: "Kowalski"}})},
	{"CustomerRegistered full", registeredFull()},

	{"ProfileUpdated public field", &domain.ProfileUpdated{Nationality: ptr("DE"), Fields: []string{"nationality"}}},
	{"ProfileUpdated cleared fields", &domain.ProfileUpdated{Gender: ptr(""), Language: ptr(""), PersonType: ptr(""), ReferralCode: ptr(""),
		Fields: []string{"gender", "language", "person_type", "referral_code"}}},
	{"ProfileUpdated emptied emails, personal {}", profileUpdated(&domain.ProfileUpdated{Fields: []string{"emails"}}, &domain.PersonalData{Emails: []string{}})},
	{"ProfileUpdated full", profileUpdated(&domain.ProfileUpdated{
		Nationality: ptr("AT"), Gender: ptr("male"), Language: ptr("de-AT"), PersonType: ptr("natural"), ReferralCode: ptr("FRIEND-42"),
		Fields: []string{"name", "id_card_number", "nationality", "birth_date", "gender", "language", "emails", "phones", "address", "person_type", "referral_code"},
	}, &domain.PersonalData{
		Name: &domain.Name{First: "Lukas", Last: "Gruber"}, IDCardNumber: ptr("P1234567"), BirthDate: ptr("1990-12-31"),
		Emails: []string{"lukas@example.at"}, Phones: []string{"+436641234567"},
		Address: &domain.Address{Country: "AT", City: "Wien", Lines: []string{"Stephansplatz 1"}},
	})},

	{"DocumentUploaded minimal", documentUploaded(&domain.DocumentUploaded{DocumentID: docUUID, Type: "SELFIE"}, nil)},
	{"DocumentUploaded full, client id", documentUploaded(&domain.DocumentUploaded{
		DocumentID: "passport-front", Type: "PASSPORT", Country: "PT", ExpiryDate: "2031-06-30", FileDigest: digest,
	}, &domain.PersonalData{DocumentNumber: ptr("CB123456")})},
	{"DocumentUploaded upper-case digest", documentUploaded(&domain.DocumentUploaded{
		DocumentID: "poa-2024", Type: "PROOF_OF_ADDRESS", FileDigest: digest[:7] + strings.ToUpper(digest[7:]),
	}, nil)},

	{"CheckStarted minimal", &domain.CheckStarted{CheckID: checkID, Items: []string{"name"}}},
	{"CheckStarted full", &domain.CheckStarted{CheckID: checkID, Items: []string{"name", "id_card_number", "nationality", "birth_date", "address", "document:passport-front", "document:" + docUUID}}},
	{"CheckStarted nothing to review", &domain.CheckStarted{CheckID: checkID}},

	{"ItemReviewed minimal", &domain.ItemReviewed{CheckID: checkID, Item: "name", Decision: domain.DecisionApproved}},
	{"ItemReviewed full", &domain.ItemReviewed{CheckID: checkID, Item: "document:passport-front", Decision: domain.DecisionRejected, Comment: "Photo page is blurred; the MRZ cannot be read."}},
	{"ItemReviewed pending", &domain.ItemReviewed{CheckID: checkID, Item: "address", Decision: domain.DecisionPending}},

	{"CheckFinished minimal", &domain.CheckFinished{CheckID: checkID, Outcome: domain.OutcomeSentForApproval}},
	{"CheckFinished approved", &domain.CheckFinished{CheckID: checkID, Outcome: domain.OutcomeApproved}},
	{"CheckFinished resubmission", &domain.CheckFinished{CheckID: checkID, Outcome: domain.OutcomeResubmission}},
	{"CheckFinished rejected minimal", &domain.CheckFinished{CheckID: checkID, Outcome: domain.OutcomeRejected, RejectType: domain.RejectRetry}},
	{"CheckFinished rejected full", &domain.CheckFinished{CheckID: checkID, Outcome: domain.OutcomeRejected, RejectType: domain.RejectFinal,
		Labels: []string{"forgery", "sanctions_hit"}, ClientComment: "We cannot offer you an account."}},

	{"StatusChanged minimal", &domain.StatusChanged{From: "CREATED", To: "PENDING_REVIEW", Transition: "submit"}},
	{"StatusChanged full rejection", &domain.StatusChanged{From: "PENDING_REVIEW", To: "REJECTED", Transition: "reject",
		Reason: "Passport reported stolen in SIS.", Labels: []string{"stolen_document"}, RejectType: domain.RejectFinal}},

	{"ResubmissionRequested minimal", &domain.ResubmissionRequested{Items: []string{"document:passport-front"}}},
	{"ResubmissionRequested full", &domain.ResubmissionRequested{Items: []string{"document:passport-front", "address"}, Comment: "Please upload a sharp photo and a recent utility bill."}},

	{"ResubmissionReceived minimal", &domain.ResubmissionReceived{NeedsRecheck: true}},
	{"ResubmissionReceived full", &domain.ResubmissionReceived{Items: []string{"document:passport-front", "address"}, NeedsRecheck: true}},

	{"RiskAssessed unset", &domain.RiskAssessed{}},
	{"RiskAssessed full", &domain.RiskAssessed{Risk: domain.RiskVeryHigh, Source: "risk-model-2024-q4"}},
	{"RiskAssessed normal", &domain.RiskAssessed{Risk: domain.RiskNormal}},

	{"AMLScreened reset", &domain.AMLScreened{}},
	{"AMLScreened full hit", &domain.AMLScreened{Result: ptr(false), Provider: "ComplyAdvantage", Reference: "CA-2024-000123"}},
	{"AMLScreened clear", &domain.AMLScreened{Result: ptr(true)}},

	{"VideoCallStatusChanged minimal", &domain.VideoCallStatusChanged{Status: "WAITING"}},
	{"VideoCallStatusChanged with space", &domain.VideoCallStatusChanged{Status: "BAD QUALITY"}},

	{"BioPayToggled on", &domain.BioPayToggled{Enabled: true}},
	{"BioPayToggled off", &domain.BioPayToggled{Enabled: false}},

	{"VerificationLevelChanged minimal", &domain.VerificationLevelChanged{From: 0, To: 1}},
	{"VerificationLevelChanged full", &domain.VerificationLevelChanged{From: 5, To: 2}},

	{"ContactVerified email", &domain.ContactVerified{Channel: "email", Verified: true}},
	{"ContactVerified phone withdrawn", &domain.ContactVerified{Channel: "phone", Verified: false}},

	{"NoteAdded minimal", &domain.NoteAdded{NoteID: noteID, Text: "ok"}},
	{"NoteAdded full", &domain.NoteAdded{NoteID: noteID, Text: strings.Repeat("Customer called; confirmed the address change. ", 200)}},

	{"TagsChanged added", &domain.TagsChanged{Added: []string{"vip"}}},
	{"TagsChanged full", &domain.TagsChanged{Added: []string{"pep", "manual-review"}, Removed: []string{"vip"}}},

	{"StepResultRecorded minimal", &domain.StepResultRecorded{Step: "liveness", Result: "passed"}},
	{"StepResultRecorded full", &domain.StepResultRecorded{Step: "document_authenticity", Result: "failed",
		Details: json.RawMessage(`{"provider":"idnow","score":0.31,"checks":{"mrz":false,"hologram":true},"reasons":["mrz_mismatch"]}`)}},
	{"StepResultRecorded details null", &domain.StepResultRecorded{Step: "sanctions", Result: "skipped", Details: json.RawMessage(`null`)}},

	{"AISummaryGenerated minimal", &domain.AISummaryGenerated{Summary: "Low-risk retail customer; documents consistent."}},
	{"AISummaryGenerated full", &domain.AISummaryGenerated{Summary: "Passport valid until 2031; address matches utility bill; no AML hits.", Model: "gpt-4o-2024-08-06"}},

	{"ServicesChanged none", &domain.ServicesChanged{ActiveServices: []string{}}},
	{"ServicesChanged full", &domain.ServicesChanged{ActiveServices: []string{"aml", "video_kyc", "transactions", "questionnaire"}}},

	{"AccessChanged none", &domain.AccessChanged{AccessRoles: []string{}, AccessGroups: []string{}}},
	{"AccessChanged full", &domain.AccessChanged{AccessRoles: []string{"kyc-officer", "compliance"}, AccessGroups: []string{"retail-pt", "retail-es"}}},

	{"IdentityBound minimal", &domain.IdentityBound{CustomerID: customerID, Lifecycle: "onboarding"}},
	{"IdentityBound other lifecycle", &domain.IdentityBound{CustomerID: "01968a2f-0000-7000-8000-000000000001", Lifecycle: "kyc-review"}},
}

// checkEvent encodes an event, validates the stored payload against its
// schema and decodes it back.
func checkEvent(t *testing.T, codec *domain.Codec, v *eventschema.Validator, e domain.Event) {
	t.Helper()
	typ, version, data, personal, err := codec.Encode(e)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	if err := v.Validate(typ, version, data, personal); err != nil {
		t.Errorf("%v\n data: %s\n personal: %s", err, data, personal)
	}
	if _, err := codec.Decode(typ, version, data, personal); err != nil {
		t.Errorf("the payload does not decode: %v", err)
	}
}

func TestSampleEventsMatchSchemas(t *testing.T) {
	codec, v := domain.NewCodec(), validator(t)
	perType := map[string]int{}
	for _, s := range samples {
		perType[s.event.EventType()]++
		t.Run(s.name, func(t *testing.T) { checkEvent(t, codec, v, s.event) })
	}
	for _, typ := range codec.TypeNames() {
		if perType[typ] < 2 {
			t.Errorf("%s has %d samples, want a minimal and a full one at least", typ, perType[typ])
		}
	}
}

// TestDecidedEventsMatchSchemas runs a customer through the kyc-review
// lifecycle with the engine's own commands, folding each event as the service
// does, and validates every event the commands emit.
func TestDecidedEventsMatchSchemas(t *testing.T) {
	codec, v := domain.NewCodec(), validator(t)
	ls, err := domain.LoadLifecycles(schemas.Lifecycles(), "kyc-review")
	if err != nil {
		t.Fatal(err)
	}
	l, err := ls.Latest("kyc-review")
	if err != nil {
		t.Fatal(err)
	}
	reviewer := domain.Caller{Actor: domain.Actor{Kind: domain.ActorOperator, ID: "alice", Company: "acme-bank"}}
	approver := domain.Caller{Actor: domain.Actor{Kind: domain.ActorOperator, ID: "bob", Company: "acme-bank"}}
	now := time.Date(2025, 3, 14, 9, 30, 0, 0, time.UTC)
	c := &domain.Customer{}
	var revision uint64
	seen := map[string]bool{}
	run := func(caller domain.Caller, cmd domain.Command) {
		t.Helper()
		events, err := cmd.Decide(domain.Decision{Ctx: context.Background(), Caller: caller, Now: now, NewID: uuid.NewString, Lifecycle: l, Customer: c})
		if err != nil {
			t.Fatalf("%s: %v", cmd.CommandName(), err)
		}
		for _, e := range events {
			seen[e.EventType()] = true
			t.Run(cmd.CommandName()+"/"+e.EventType(), func(t *testing.T) { checkEvent(t, codec, v, e) })
			typ, version, data, personal, err := codec.Encode(e)
			if err != nil {
				t.Fatal(err)
			}
			decoded, err := codec.Decode(typ, version, data, personal)
			if err != nil {
				t.Fatal(err)
			}
			revision++
			c.Apply(decoded, domain.RecordedEvent{EventData: domain.EventData{Type: typ, SchemaVersion: version, OccurredAt: now, Actor: caller.Actor}, Revision: revision})
		}
	}

	reg := domain.RegisterCustomer{
		CustomerID: uuid.NewString(), PublicID: "7K3QX9M2PA", Company: "acme-bank",
		Name: &domain.Name{First: "Maria", Last: "Silva"}, IDCardNumber: "T22000129", Nationality: "PT", BirthDate: "1987-04-23",
		Gender: "female", Language: "pt-PT", Emails: []string{"maria@example.pt"}, Phones: []string{"+351912345678"},
		Tags: []string{"new"}, ActiveServices: []string{"aml"},
		Address: &domain.Address{Country: "PT", City: "Lisboa", Lines: []string{"Rua Augusta 100"}},
	}
	reg.Lifecycle = l.Name()
	run(reviewer, reg)
	run(reviewer, domain.UpdateProfile{Gender: ptr(""), Emails: &[]string{"maria.new@example.pt"}, Phones: &[]string{"+351934567890"}, Nationality: ptr("BR")})
	run(reviewer, domain.UploadDocument{DocumentID: "passport", Type: "PASSPORT", Number: "CB123456", Country: "PT", ExpiryDate: "2031-06-30", FileDigest: digest})
	run(reviewer, domain.UploadDocument{Type: "SELFIE"})
	run(reviewer, domain.RecordStepResult{Step: "liveness", Result: "passed", Details: json.RawMessage(`{"score": 0.98}`)})
	run(reviewer, domain.AssessRisk{Risk: domain.RiskHigh, Source: "scoring"})
	run(reviewer, domain.AssessRisk{})
	run(reviewer, domain.RecordAMLScreening{Result: ptr(true), Provider: "ComplyAdvantage"})
	run(reviewer, domain.RecordAMLScreening{})
	run(reviewer, domain.SetVideoCallStatus{Status: "CONNECTION ERROR"})
	run(reviewer, domain.SetBioPay{Enabled: true})
	run(reviewer, domain.SetVerificationLevel{Level: 2})
	run(reviewer, domain.VerifyContact{Channel: "phone", Verified: true})
	run(reviewer, domain.AddNote{Text: "Customer asked for a Portuguese-speaking agent."})
	run(reviewer, domain.ChangeTags{Add: []string{"vip"}, Remove: []string{"new"}})
	run(reviewer, domain.RecordAISummary{Summary: "Documents consistent.", Model: "summary-v1"})
	run(reviewer, domain.SetServices{ActiveServices: nil})
	run(reviewer, domain.SetAccess{AccessRoles: []string{"kyc-officer"}})
	run(reviewer, domain.ChangeStatus{Status: "PENDING_REVIEW"})

	// First check: the passport is unreadable; ask for it again.
	run(reviewer, domain.StartCheck{})
	run(reviewer, domain.ReviewItem{Item: "document:passport", Decision: domain.DecisionRejected, Comment: "blurred"})
	run(reviewer, domain.RequestResubmission{Items: []string{"document:passport"}, Comment: "Please upload a sharp photo."})
	run(reviewer, domain.SubmitResubmission{})

	// Second check: rejected with RETRY, then reopened.
	run(reviewer, domain.StartCheck{})
	run(reviewer, domain.RejectCheck{Reason: "Address does not match the proof.", Labels: []string{"address_mismatch"}, RejectType: domain.RejectRetry, ClientComment: "Please send a recent utility bill."})
	run(reviewer, domain.FireTransition{Event: "reopen", Reason: "Customer sent a new utility bill."})
	run(reviewer, domain.ChangeStatus{Status: "PENDING_REVIEW"})

	// Third check: everything approved, four-eyes approval by another operator.
	run(reviewer, domain.StartCheck{})
	for _, item := range c.Check.Items {
		run(reviewer, domain.ReviewItem{Item: item, Decision: domain.DecisionApproved})
	}
	run(reviewer, domain.FinishCheck{})
	run(approver, domain.FireTransition{Event: "approve"})
	if c.Status != "APPROVED" {
		t.Fatalf("status = %s, want APPROVED", c.Status)
	}
	for _, typ := range codec.TypeNames() {
		if !seen[typ] && typ != "IdentityBound" { // IdentityBound is written by the service itself
			t.Errorf("the scenario emitted no %s", typ)
		}
	}
}

// TestSchemasRejectInvalidPayloads shows the schemas are not vacuous: each
// payload breaks one rule and must fail at the expected location.
func TestSchemasRejectInvalidPayloads(t *testing.T) {
	v := validator(t)
	const (
		reg   = `"customer_id":"` + customerID + `","public_id":"7K3QX9M2PA","company_id":"acme","company_name":"Acme","lifecycle":"kyc-review","lifecycle_version":1,"status":"CREATED"`
		check = `"check_id":"` + checkID + `"`
	)
	tests := []struct {
		name     string
		typ      string
		data     string
		personal string
		wantAt   string // JSON pointer of the failing location
	}{
		// Unknown fields.
		{"unknown field in data", "CustomerRegistered", `{` + reg + `,"nickname":"Mia"}`, ``, "/data"},
		{"unknown field in nested personal name", "CustomerRegistered", `{` + reg + `}`, `{"name":{"first":"A","last":"B","middle":"C"}}`, "/personal/name"},
		{"unknown field in personal", "ProfileUpdated", `{"fields":["name"]}`, `{"ssn":"123-45-6789"}`, "/personal"},
		{"personal on an event type without personal data", "NoteAdded", `{"note_id":"` + noteID + `","text":"hi"}`, `{"name":{"first":"A","last":"B"}}`, ""},
		{"personal field a document upload does not carry", "DocumentUploaded", `{"document_id":"p","type":"PASSPORT"}`, `{"name":{"first":"A","last":"B"}}`, "/personal"},
		{"withPersonal leaked into data", "CustomerRegistered", `{` + reg + `,"Personal":{}}`, ``, "/data"},

		// Wrong enum values.
		{"risk level", "RiskAssessed", `{"risk":"MEDIUM"}`, ``, "/data/risk"},
		{"risk level lower case", "RiskAssessed", `{"risk":"high"}`, ``, "/data/risk"},
		{"video call status", "VideoCallStatusChanged", `{"status":"RINGING"}`, ``, "/data/status"},
		{"review decision", "ItemReviewed", `{` + check + `,"item":"name","decision":"accepted"}`, ``, "/data/decision"},
		{"check outcome", "CheckFinished", `{` + check + `,"outcome":"closed"}`, ``, "/data/outcome"},
		{"reject type", "StatusChanged", `{"from":"A","to":"B","transition":"reject","reject_type":"SOFT"}`, ``, "/data/reject_type"},
		{"service", "ServicesChanged", `{"active_services":["aml","crypto"]}`, ``, "/data/active_services/1"},
		{"service at registration", "CustomerRegistered", `{` + reg + `,"active_services":["savings"]}`, ``, "/data/active_services/0"},
		{"document type", "DocumentUploaded", `{"document_id":"p","type":"VISA"}`, ``, "/data/type"},
		{"step result", "StepResultRecorded", `{"step":"liveness","result":"ok"}`, ``, "/data/result"},
		{"contact channel", "ContactVerified", `{"channel":"fax","verified":true}`, ``, "/data/channel"},
		{"profile field name", "ProfileUpdated", `{"fields":["favourite_colour"]}`, ``, "/data/fields/0"},

		// Missing required fields.
		{"AML result missing", "AMLScreened", `{"provider":"x"}`, ``, "/data"},
		{"customer id missing", "CustomerRegistered", `{"public_id":"7K3QX9M2PA","company_id":"acme","company_name":"Acme","lifecycle":"kyc-review","lifecycle_version":1,"status":"CREATED"}`, ``, "/data"},
		{"changed fields missing", "ProfileUpdated", `{"nationality":"DE"}`, ``, "/data"},
		{"target level missing", "VerificationLevelChanged", `{"from":1}`, ``, "/data"},
		{"access groups missing", "AccessChanged", `{"access_roles":[]}`, ``, "/data"},
		{"needs_recheck missing", "ResubmissionReceived", `{"items":["address"]}`, ``, "/data"},
		{"name without last name", "CustomerRegistered", `{` + reg + `}`, `{"name":{"first":"Maria"}}`, "/personal/name"},
		{"address without country", "ProfileUpdated", `{"fields":["address"]}`, `{"address":{"city":"Lisboa"}}`, "/personal/address"},
		{"rejected check without reject type", "CheckFinished", `{` + check + `,"outcome":"rejected"}`, ``, "/data"},
		{"no tag change at all", "TagsChanged", `{}`, ``, "/data"},

		// Formats and patterns.
		{"lower-case country", "CustomerRegistered", `{` + reg + `,"nationality":"pt"}`, ``, "/data/nationality"},
		{"three-letter country", "DocumentUploaded", `{"document_id":"p","type":"PASSPORT","country":"PRT"}`, ``, "/data/country"},
		{"phone not E.164", "ProfileUpdated", `{"fields":["phones"]}`, `{"phones":["0912 345 678"]}`, "/personal/phones/0"},
		{"email without @", "ProfileUpdated", `{"fields":["emails"]}`, `{"emails":["maria.example.pt"]}`, "/personal/emails/0"},
		{"birth date not ISO", "CustomerRegistered", `{` + reg + `}`, `{"birth_date":"23.04.1987"}`, "/personal/birth_date"},
		{"impossible expiry date", "DocumentUploaded", `{"document_id":"p","type":"PASSPORT","expiry_date":"2031-02-30"}`, ``, "/data/expiry_date"},
		{"digest of another algorithm", "DocumentUploaded", `{"document_id":"p","type":"PASSPORT","file_digest":"md5:9e107d9d372bb6826bd81d3542a419d6"}`, ``, "/data/file_digest"},
		{"digest too short", "DocumentUploaded", `{"document_id":"p","type":"PASSPORT","file_digest":"sha256:abc"}`, ``, "/data/file_digest"},
		{"check id not a UUID", "CheckStarted", `{"check_id":"check-1","items":["name"]}`, ``, "/data/check_id"},
		{"customer id not a UUID", "IdentityBound", `{"customer_id":"12345","lifecycle":"onboarding"}`, ``, "/data/customer_id"},
		{"note id not a UUID", "NoteAdded", `{"note_id":"01968a2d77aa7bbb8cccdddeeefff001","text":"hi"}`, ``, "/data/note_id"},
		{"review item not a field or document", "ItemReviewed", `{` + check + `,"item":"passport","decision":"approved"}`, ``, "/data/item"},
		{"language not BCP 47", "CustomerRegistered", `{` + reg + `,"language":"Portuguese (Portugal)"}`, ``, "/data/language"},

		// Types, ranges, sizes.
		{"lifecycle version as string", "CustomerRegistered", strings.Replace(`{`+reg+`}`, `"lifecycle_version":1`, `"lifecycle_version":"1"`, 1), ``, "/data/lifecycle_version"},
		{"AML result as text", "AMLScreened", `{"result":"clear"}`, ``, "/data/result"},
		{"verification level above 5", "VerificationLevelChanged", `{"from":5,"to":6}`, ``, "/data/to"},
		{"BioPay as string", "BioPayToggled", `{"enabled":"yes"}`, ``, "/data/enabled"},
		{"services null", "ServicesChanged", `{"active_services":null}`, ``, "/data/active_services"},
		{"resubmission of nothing", "ResubmissionRequested", `{"items":[]}`, ``, "/data/items"},
		{"duplicate tags", "TagsChanged", `{"added":["vip","vip"]}`, ``, "/data/added"},
		{"step details an array", "StepResultRecorded", `{"step":"liveness","result":"passed","details":[1,2]}`, ``, "/data/details"},
		{"note too long", "NoteAdded", `{"note_id":"` + noteID + `","text":"` + strings.Repeat("x", 10001) + `"}`, ``, "/data/text"},
		{"document id too long", "DocumentUploaded", `{"document_id":"` + strings.Repeat("d", 65) + `","type":"OTHER"}`, ``, "/data/document_id"},
		{"data is not an object", "BioPayToggled", `null`, ``, "/data"},
		{"reject type on an approval", "CheckFinished", `{` + check + `,"outcome":"approved","reject_type":"RETRY"}`, ``, "/data/reject_type"},
		{"client comment on a resubmission", "CheckFinished", `{` + check + `,"outcome":"resubmission_requested","client_comment":"hi"}`, ``, "/data/client_comment"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var personal json.RawMessage
			if tt.personal != "" {
				personal = json.RawMessage(tt.personal)
			}
			err := v.Validate(tt.typ, 1, json.RawMessage(tt.data), personal)
			if err == nil {
				t.Fatalf("payload accepted:\n data: %s\n personal: %s", tt.data, tt.personal)
			}
			var se *eventschema.Error
			if !errors.As(err, &se) {
				t.Fatalf("error %v is not an *eventschema.Error", err)
			}
			if se.Type != tt.typ || se.Version != 1 || !strings.Contains(err.Error(), tt.typ+" v1") {
				t.Errorf("error does not name %s v1: %v", tt.typ, err)
			}
			var locs []string
			for _, vi := range se.Violations {
				locs = append(locs, vi.Location)
			}
			if !slices.Contains(locs, tt.wantAt) {
				t.Errorf("failing locations %q, want %q; error: %v", locs, tt.wantAt, err)
			}
			if !strings.Contains(err.Error(), "'"+tt.wantAt+"'") {
				t.Errorf("error message does not name location %q: %v", tt.wantAt, err)
			}
		})
	}
}

func TestValidateUnknownSchema(t *testing.T) {
	v := validator(t)
	for _, tt := range []struct {
		typ     string
		version int
	}{{"CustomerDeleted", 1}, {"CustomerRegistered", 2}, {"CustomerRegistered", 0}} {
		err := v.Validate(tt.typ, tt.version, json.RawMessage(`{}`), nil)
		if !errors.Is(err, eventschema.ErrUnknownSchema) {
			t.Errorf("%s v%d: err = %v, want ErrUnknownSchema", tt.typ, tt.version, err)
		}
	}
	// Personal data given as JSON null counts as absent, as in Codec.Decode.
	if err := v.Validate("NoteAdded", 1, json.RawMessage(`{"note_id":"`+noteID+`","text":"hi"}`), json.RawMessage(`null`)); err != nil {
		t.Errorf("null personal data: %v", err)
	}
	if err := v.Validate("NoteAdded", 1, json.RawMessage(`{"note_id":`), nil); err == nil {
		t.Error("malformed data accepted")
	}
}
