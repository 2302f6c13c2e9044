package domain_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/kycengine/kyc/adapters/enginetest"
	"github.com/kycengine/kyc/adapters/eventstore/embedded"
	"github.com/kycengine/kyc/adapters/eventstore/memory"
	"github.com/kycengine/kyc/domain"
	"github.com/kycengine/kyc/schemas/eventschema"
)

var (
	alice = domain.Caller{Actor: domain.Actor{Kind: domain.ActorOperator, ID: "alice", Company: "acme"}, Roles: []string{"operator"}}
	bob   = domain.Caller{Actor: domain.Actor{Kind: domain.ActorOperator, ID: "bob", Company: "acme"}, Roles: []string{"operator"}}
	root  = domain.Caller{Actor: domain.Actor{Kind: domain.ActorOperator, ID: "root", Company: "acme"}, Roles: []string{"superuser"}}
	eve   = domain.Caller{Actor: domain.Actor{Kind: domain.ActorOperator, ID: "eve", Company: "globex"}, Roles: []string{"operator"}}
)

func newService(t testing.TB) (*domain.Service, *memory.Store) { return enginetest.NewService(t) }

func registration(lifecycle string, r *rand.Rand) domain.RegisterCustomer {
	return domain.RegisterCustomer{
		Lifecycle: lifecycle, Name: &domain.Name{First: "Ada", Last: "Lovelace"},
		IDCardNumber: fmt.Sprintf("X%07d", r.IntN(10_000_000)), Nationality: "GB", BirthDate: "1990-01-02",
		Emails: []string{"ada@example.com"}, Phones: []string{"+441234567890"},
		Address: &domain.Address{Country: "GB", City: "London", Lines: []string{"1 Main St"}},
	}
}

func mustRegister(t testing.TB, svc *domain.Service, caller domain.Caller, cmd domain.RegisterCustomer) *domain.Customer {
	t.Helper()
	res, err := svc.Register(context.Background(), cmd, domain.Options{Caller: caller})
	if err != nil {
		t.Fatal(err)
	}
	return res.Customer
}

// randomCommand draws a command that may or may not be legal now, so the
// sequences exercise refusals as much as changes.
func randomCommand(r *rand.Rand, l *domain.Lifecycle, c *domain.Customer) domain.Command {
	def := l.Definition()
	reasons := []string{"", "too short", "document expired before upload", "  0123456789 ", "sanctions screening hit confirmed"}
	reason := reasons[r.IntN(len(reasons))]
	switch r.IntN(26) {
	case 0, 1, 2:
		return domain.ChangeStatus{Status: def.States[r.IntN(len(def.States))].Name, Reason: reason, RejectType: []string{"", domain.RejectRetry, domain.RejectFinal}[r.IntN(3)]}
	case 3, 4:
		return domain.FireTransition{Event: def.Transitions[r.IntN(len(def.Transitions))].Event, Reason: reason}
	case 5:
		return domain.StartCheck{}
	case 6:
		items := c.ReviewItems()
		item := "name"
		if len(items) > 0 {
			item = items[r.IntN(len(items))]
		}
		decision := []string{domain.DecisionApproved, domain.DecisionApproved, domain.DecisionPending, domain.DecisionRejected}[r.IntN(4)]
		return domain.ReviewItem{Item: item, Decision: decision}
	case 7:
		return domain.FinishCheck{}
	case 8:
		return domain.RejectCheck{Reason: reason, Labels: []string{"FORGERY"}, RejectType: []string{domain.RejectRetry, domain.RejectFinal}[r.IntN(2)], ClientComment: "please upload a clear photo"}
	case 9:
		return domain.RequestResubmission{Items: []string{"document:passport-1"}, Comment: "the photo is blurred"}
	case 10:
		return domain.SubmitResubmission{}
	case 11:
		return domain.UploadDocument{DocumentID: fmt.Sprintf("doc-%d", r.IntN(3)), Type: "PASSPORT", Number: "P1234567", Country: "GB", ExpiryDate: "2031-05-01"}
	case 12:
		return domain.AssessRisk{Risk: []string{"", domain.RiskNormal, domain.RiskHigh, domain.RiskVeryHigh, "EXTREME"}[r.IntN(5)]}
	case 13:
		return domain.ChangeTags{Add: []string{fmt.Sprintf("t%d", r.IntN(4))}, Remove: []string{fmt.Sprintf("t%d", 4+r.IntN(4))}}
	case 14:
		return domain.VerifyContact{Channel: []string{"email", "phone", "fax"}[r.IntN(3)], Verified: r.IntN(2) == 0}
	case 16:
		return domain.AddNote{Text: "called the customer about the address"}
	case 17:
		return domain.SetBioPay{Enabled: r.IntN(2) == 0}
	case 18:
		res := []*bool{nil, new(bool), func() *bool { b := true; return &b }()}[r.IntN(3)]
		return domain.RecordAMLScreening{Result: res, Provider: "screening-provider"}
	case 19:
		return domain.SetVideoCallStatus{Status: append(domain.VideoCallStatuses, "ON HOLD")[r.IntN(13)]}
	case 20:
		return domain.SetVerificationLevel{Level: r.IntN(7) - 1}
	case 21:
		return domain.RecordAISummary{Summary: "Documents consistent; address unverified.", Model: "summary-v1"}
	case 22:
		return domain.SetServices{ActiveServices: domain.Services[:r.IntN(len(domain.Services)+1)]}
	case 23:
		return domain.SetAccess{AccessRoles: []string{"client"}, AccessGroups: []string{fmt.Sprintf("group-%d", r.IntN(3))}}
	case 24:
		return domain.UpdateProfile{Language: ptr([]string{"en", "de", "xx-!!"}[r.IntN(3)]), Address: &domain.Address{Country: "DE", City: "Berlin"}}
	default:
		return domain.RecordStepResult{Step: fmt.Sprintf("step-%d", r.IntN(6)), Result: "passed", Details: json.RawMessage(`{"score":0.9}`)}
	}
}

// checkStream asserts the invariants of a stored customer stream: every
// StatusChanged is a transition the lifecycle file allows, from the status
// the customer was in, and folding the stream gives want.
func checkStream(t *testing.T, svc *domain.Service, store domain.EventStore, id string, want *domain.Customer) []domain.RecordedEvent {
	t.Helper()
	events, err := store.ReadStream(context.Background(), domain.StreamName(id), domain.Forwards, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	codec := domain.NewCodec()
	var l *domain.Lifecycle
	status := ""
	for _, e := range events {
		r, err := codec.DecodeRecorded(e)
		if err != nil {
			t.Fatal(err)
		}
		switch ev := r.Event.(type) {
		case *domain.CustomerRegistered:
			l, _ = svc.Lifecycles().Get(ev.Lifecycle, ev.LifecycleVersion)
			status = ev.Status
		case *domain.StatusChanged:
			if ev.From != status || !l.Permits(ev.Transition, ev.From, ev.To) {
				t.Fatalf("revision %d stores %s %s -> %s while in %s: not allowed by %s", e.Revision, ev.Transition, ev.From, ev.To, status, l.Name())
			}
			status = ev.To
		}
	}
	if link := domain.VerifyChain(events); link != nil {
		t.Fatalf("hash chain broken: %+v", link)
	}
	if want != nil {
		folded, err := domain.ReplayState(codec, events, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(folded, want) {
			t.Fatalf("folded state differs from the service's result\nfolded:  %+v\nservice: %+v", folded, want)
		}
	}
	return events
}

func TestPropertyRandomCommandSequences(t *testing.T) {
	callers := []domain.Caller{alice, bob, root}
	accepted, refused, moves := 0, 0, map[string]int{}
	validator, err := eventschema.New()
	if err != nil {
		t.Fatal(err)
	}
	typesSeen := map[string]bool{}
	for seed := uint64(1); seed <= 120; seed++ {
		r := rand.New(rand.NewPCG(seed, 7))
		svc, store := newService(t)
		lifecycle := []string{"kyc-review", "onboarding", "banking"}[seed%3]
		reg, err := svc.Register(context.Background(), registration(lifecycle, r), domain.Options{Caller: alice})
		if err != nil {
			t.Fatal(err)
		}
		c := reg.Customer
		for _, e := range reg.Events {
			if err := validator.Validate(e.Type, e.SchemaVersion, e.Data, e.Personal); err != nil {
				t.Fatal(err)
			}
			typesSeen[e.Type] = true
		}
		l, _ := svc.Lifecycles().Get(c.Lifecycle, c.LifecycleVersion)
		for step := 0; step < 60; step++ {
			cmd := randomCommand(r, l, c)
			before := len(checkStream(t, svc, store, c.ID, nil))
			res, err := svc.Execute(context.Background(), c.ID, cmd, domain.Options{Caller: callers[r.IntN(len(callers))]})
			after := checkStream(t, svc, store, c.ID, nil)
			if err != nil {
				if !domain.IsRefusal(err) {
					t.Fatalf("seed %d step %d %T: unexpected fault %v", seed, step, cmd, err)
				}
				if len(after) != before {
					t.Fatalf("seed %d step %d: refused %T (%v) appended events", seed, step, cmd, err)
				}
				refused++
				continue
			}
			if uint64(len(after)) != res.Customer.Revision+1 {
				t.Fatalf("seed %d step %d: result revision %d but stream has %d events", seed, step, res.Customer.Revision, len(after))
			}
			checkStream(t, svc, store, c.ID, res.Customer)
			// Every event the domain emits must match its published schema.
			for _, e := range res.Events {
				if err := validator.Validate(e.Type, e.SchemaVersion, e.Data, e.Personal); err != nil {
					t.Fatalf("seed %d step %d: %v", seed, step, err)
				}
				typesSeen[e.Type] = true
			}
			accepted++
			if res.Customer.Status != c.Status {
				moves[c.Lifecycle]++
			}
			c = res.Customer
		}
	}
	// The generator must reach both sides, in every lifecycle, or the
	// property says little.
	t.Logf("accepted %d, refused %d, status moves %v, event types %d", accepted, refused, moves, len(typesSeen))
	if want := len(domain.NewCodec().Types()) - 1; len(typesSeen) < want { // all but IdentityBound
		t.Errorf("only %d event types emitted: %v", len(typesSeen), typesSeen)
	}
	if accepted < 1000 || refused < 1000 || moves["kyc-review"] < 100 || moves["onboarding"] < 50 || moves["banking"] < 50 {
		t.Fatalf("generator too narrow: accepted %d, refused %d, moves %v", accepted, refused, moves)
	}
}

func TestConcurrentStatusChangesOnOneCustomer(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		svc, store := newService(t)
		concurrentStatusChanges(t, svc, store)
	})
	t.Run("embedded", func(t *testing.T) {
		store, err := embedded.Open(context.Background(), filepath.Join(t.TempDir(), "kyc.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		svc, err := domain.NewService(domain.ServiceConfig{Store: store, Idempotency: store, Lifecycles: shippedLifecycles(t), Codec: domain.NewCodec()})
		if err != nil {
			t.Fatal(err)
		}
		concurrentStatusChanges(t, svc, store)
	})
}

// concurrentStatusChanges has 32 goroutines change one customer's status at
// once: every accepted change must be legal from the state before it, and
// the accepted changes must be exactly the stored ones.
func concurrentStatusChanges(t *testing.T, svc *domain.Service, store domain.EventStore) {
	r := rand.New(rand.NewPCG(1, 2))
	c := mustRegister(t, svc, alice, registration("kyc-review", r))
	targets := []string{"INCOMPLETE", "PENDING_UPLOAD", "PENDING_REVIEW", "PENDING_APPROVAL", "APPROVED", "INACTIVE", "REJECTED"}
	type accepted struct{ from, to string }
	var (
		mu   sync.Mutex
		acks []accepted
		wg   sync.WaitGroup
	)
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			caller := []domain.Caller{alice, bob}[g%2]
			for i := 0; i < 20; i++ {
				target := targets[(g+i)%len(targets)]
				res, err := svc.Execute(context.Background(), c.ID, domain.ChangeStatus{Status: target, Reason: "concurrent review decision"}, domain.Options{Caller: caller})
				if err != nil {
					if !domain.IsRefusal(err) && !errors.Is(err, domain.ErrConcurrencyConflict) {
						t.Errorf("unexpected error: %v", err)
					}
					continue
				}
				sc := res.Events[0]
				var ev domain.StatusChanged
				if err := json.Unmarshal(sc.Data, &ev); err != nil {
					t.Error(err)
				}
				mu.Lock()
				acks = append(acks, accepted{ev.From, ev.To})
				mu.Unlock()
			}
		}(g)
	}
	wg.Wait()
	events := checkStream(t, svc, store, c.ID, nil)
	var stored []accepted
	for _, e := range events[1:] {
		var ev domain.StatusChanged
		if err := json.Unmarshal(e.Data, &ev); err != nil {
			t.Fatal(err)
		}
		stored = append(stored, accepted{ev.From, ev.To})
	}
	if len(stored) != len(acks) || len(acks) < 10 {
		t.Fatalf("%d changes accepted, %d stored", len(acks), len(stored))
	}
	t.Logf("%d concurrent changes accepted and stored in a legal sequence", len(acks))
	count := map[accepted]int{}
	for _, a := range acks {
		count[a]++
	}
	for _, s := range stored {
		count[s]--
	}
	for k, v := range count {
		if v != 0 {
			t.Fatalf("accepted and stored changes differ at %v by %d", k, v)
		}
	}
}

func TestIdempotencyKeyReturnsFirstResult(t *testing.T) {
	svc, store := newService(t)
	r := rand.New(rand.NewPCG(3, 4))
	opts := domain.Options{Caller: alice, IdempotencyKey: "reg-1"}
	first, err := svc.Register(context.Background(), registration("kyc-review", r), opts)
	if err != nil {
		t.Fatal(err)
	}
	again, err := svc.Register(context.Background(), registration("kyc-review", r), opts)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Replayed || again.Customer.ID != first.Customer.ID {
		t.Fatalf("retry made customer %s (replayed=%v), first was %s", again.Customer.ID, again.Replayed, first.Customer.ID)
	}
	note := domain.Options{Caller: alice, IdempotencyKey: "note-1"}
	n1, err := svc.Execute(context.Background(), first.Customer.ID, domain.AddNote{Text: "called the customer"}, note)
	if err != nil {
		t.Fatal(err)
	}
	n2, err := svc.Execute(context.Background(), first.Customer.ID, domain.AddNote{Text: "called the customer"}, note)
	if err != nil {
		t.Fatal(err)
	}
	if !n2.Replayed || n2.Customer.Revision != n1.Customer.Revision {
		t.Fatalf("retried note: replayed=%v revision %d, first %d", n2.Replayed, n2.Customer.Revision, n1.Customer.Revision)
	}
	// The same key from another caller is another command.
	n3, err := svc.Execute(context.Background(), first.Customer.ID, domain.AddNote{Text: "called the customer"}, domain.Options{Caller: bob, IdempotencyKey: "note-1"})
	if err != nil || n3.Replayed {
		t.Fatalf("bob's note: replayed=%v err=%v", n3.Replayed, err)
	}
	all, _ := store.ReadAll(context.Background(), domain.Start, 0)
	if len(all) != 3 {
		t.Fatalf("log has %d events, want 3", len(all))
	}
	// A key answers only the request it was first used for.
	other := mustRegister(t, svc, alice, registration("kyc-review", r))
	for name, try := range map[string]func() error{
		"note key on another customer": func() error {
			_, err := svc.Execute(context.Background(), other.ID, domain.AddNote{Text: "x"}, note)
			return err
		},
		"registration key for a change": func() error {
			_, err := svc.Execute(context.Background(), first.Customer.ID, domain.AddNote{Text: "x"}, opts)
			return err
		},
		"change key for a registration": func() error {
			_, err := svc.Register(context.Background(), registration("kyc-review", r), note)
			return err
		},
	} {
		if err := try(); !errors.Is(err, domain.ErrIdempotencyKeyReused) {
			t.Errorf("%s: %v, want ErrIdempotencyKeyReused", name, err)
		}
	}
}

func TestConcurrentRetriesWithOneKeyAppendOnce(t *testing.T) {
	svc, store := newService(t)
	r := rand.New(rand.NewPCG(5, 6))
	var wg sync.WaitGroup
	ids := make([]string, 16)
	reg := registration("banking", r)
	for i := range ids {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			res, err := svc.Register(context.Background(), reg, domain.Options{Caller: alice, IdempotencyKey: "same"})
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = res.Customer.ID
		}(i)
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("retries created different customers: %v", ids)
		}
	}
	all, _ := store.ReadAll(context.Background(), domain.Start, 0)
	if len(all) != 1 {
		t.Fatalf("log has %d events, want 1", len(all))
	}
}

func TestReviewWorkflowWithFourEyes(t *testing.T) {
	svc, _ := newService(t)
	ctx := context.Background()
	r := rand.New(rand.NewPCG(9, 9))
	c := mustRegister(t, svc, alice, registration("kyc-review", r))
	run := func(caller domain.Caller, cmd domain.Command) domain.Result {
		t.Helper()
		res, err := svc.Execute(ctx, c.ID, cmd, domain.Options{Caller: caller})
		if err != nil {
			t.Fatalf("%T: %v", cmd, err)
		}
		return res
	}
	run(alice, domain.UploadDocument{DocumentID: "passport-1", Type: "PASSPORT", Number: "P1", Country: "GB", ExpiryDate: "2030-01-01"})
	run(alice, domain.ChangeStatus{Status: "PENDING_REVIEW"})
	res := run(alice, domain.StartCheck{})
	for _, item := range res.Customer.Check.Items {
		run(alice, domain.ReviewItem{Item: item, Decision: domain.DecisionRejected, Comment: "blurred"})
	}
	if _, err := svc.Execute(ctx, c.ID, domain.FinishCheck{}, domain.Options{Caller: alice}); !errors.Is(err, domain.ErrCheckIncomplete) {
		t.Fatalf("finish with rejected items: %v", err)
	}
	res = run(alice, domain.RequestResubmission{Items: []string{"document:passport-1"}, Comment: "upload a sharper photo"})
	if res.Customer.Status != "PENDING_UPLOAD" || res.Customer.Check != nil {
		t.Fatalf("after resubmission request: %s, check %v", res.Customer.Status, res.Customer.Check)
	}
	customer := domain.Caller{Actor: domain.Actor{Kind: domain.ActorCustomer, ID: c.ID, Company: "acme"}}
	res = run(customer, domain.SubmitResubmission{})
	if res.Customer.Status != "PENDING_REVIEW" {
		t.Fatalf("after resubmission: %s", res.Customer.Status)
	}
	var received domain.ResubmissionReceived
	_ = json.Unmarshal(res.Events[0].Data, &received)
	if !received.NeedsRecheck || len(received.Items) != 1 {
		t.Fatalf("resubmission event %+v", received)
	}
	res = run(alice, domain.StartCheck{})
	for _, item := range res.Customer.Check.Items {
		run(alice, domain.ReviewItem{Item: item, Decision: domain.DecisionApproved})
	}
	res = run(alice, domain.FinishCheck{})
	if res.Customer.Status != "PENDING_APPROVAL" {
		t.Fatalf("finish check with four eyes: %s", res.Customer.Status)
	}
	if _, err := svc.Execute(ctx, c.ID, domain.ChangeStatus{Status: "APPROVED"}, domain.Options{Caller: alice}); !errors.Is(err, domain.ErrFourEyes) {
		t.Fatalf("reviewer approving own check: %v", err)
	}
	res = run(bob, domain.ChangeStatus{Status: "APPROVED"})
	if res.Customer.Status != "APPROVED" || res.Customer.Documents[0].ReviewDecision != domain.DecisionApproved {
		t.Fatalf("after approval: %+v", res.Customer)
	}
	if res.Customer.VerificationStatus() != domain.VerificationNotVerified {
		t.Fatalf("verification status %s without verified contacts", res.Customer.VerificationStatus())
	}
}

func TestRejectCheckRecordsLabelsAndClientComment(t *testing.T) {
	svc, _ := newService(t)
	ctx := context.Background()
	c := mustRegister(t, svc, alice, registration("kyc-review", rand.New(rand.NewPCG(1, 1))))
	for _, cmd := range []domain.Command{domain.ChangeStatus{Status: "PENDING_REVIEW"}, domain.StartCheck{}} {
		if _, err := svc.Execute(ctx, c.ID, cmd, domain.Options{Caller: alice}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := svc.Execute(ctx, c.ID, domain.RejectCheck{Reason: "document appears to be forged", Labels: []string{"FORGERY"}, RejectType: domain.RejectFinal, ClientComment: "We could not verify you."}, domain.Options{Caller: alice})
	if err != nil {
		t.Fatal(err)
	}
	got := res.Customer
	if got.Status != "REJECTED" || got.Rejection == nil || got.Rejection.Type != domain.RejectFinal || got.Rejection.ClientComment == "" || got.StateReason != "document appears to be forged" {
		t.Fatalf("rejected customer: status %s rejection %+v reason %q", got.Status, got.Rejection, got.StateReason)
	}
	if _, err := svc.Execute(ctx, c.ID, domain.ChangeStatus{Status: "PENDING_UPLOAD", Reason: "customer asks to retry"}, domain.Options{Caller: alice}); !errors.Is(err, domain.ErrFinalRejection) {
		t.Fatalf("reopen after FINAL: %v", err)
	}
}

func TestOnboardingRefusesRejectedIdentity(t *testing.T) {
	svc, _ := newService(t)
	ctx := context.Background()
	reg := registration("onboarding", rand.New(rand.NewPCG(1, 1)))
	reg.IDCardNumber = "ab-123 456"
	c := mustRegister(t, svc, alice, reg)
	for _, cmd := range []domain.Command{
		domain.FireTransition{Event: "verify_challenge"},
		domain.FireTransition{Event: "fail_screening", Reason: "wallet linked to mixer"},
	} {
		if _, err := svc.Execute(ctx, c.ID, cmd, domain.Options{Caller: alice}); err != nil {
			t.Fatal(err)
		}
	}
	again := reg
	again.IDCardNumber = "AB123456" // the same document, typed differently
	if _, err := svc.Register(ctx, again, domain.Options{Caller: bob}); !errors.Is(err, domain.ErrIdentityRejected) {
		t.Fatalf("re-onboarding a rejected identity: %v", err)
	}
	other := reg
	other.IDCardNumber = "AB999999"
	mustRegister(t, svc, bob, other)
	// kyc-review keeps no identity rule: the same document registers there.
	review := reg
	review.Lifecycle = "kyc-review"
	mustRegister(t, svc, bob, review)
}

func TestCompanyIsolation(t *testing.T) {
	svc, _ := newService(t)
	ctx := context.Background()
	c := mustRegister(t, svc, alice, registration("kyc-review", rand.New(rand.NewPCG(1, 1))))
	if _, err := svc.Get(ctx, eve, c.ID); !errors.Is(err, domain.ErrCustomerNotFound) {
		t.Fatalf("other company reads: %v", err)
	}
	if _, err := svc.Execute(ctx, c.ID, domain.AddNote{Text: "x"}, domain.Options{Caller: eve}); !errors.Is(err, domain.ErrCustomerNotFound) {
		t.Fatalf("other company writes: %v", err)
	}
	reg := registration("kyc-review", rand.New(rand.NewPCG(1, 1)))
	reg.Company = "acme"
	if _, err := svc.Register(ctx, reg, domain.Options{Caller: eve}); !errors.Is(err, domain.ErrForbidden) {
		t.Fatalf("registering in another company: %v", err)
	}
	if _, err := svc.Get(ctx, domain.Caller{Actor: domain.Actor{ID: "su", Company: "globex"}, Roles: []string{"superuser"}}, c.ID); err != nil {
		t.Fatalf("superuser reads across companies: %v", err)
	}
}

func TestIfMatchRevision(t *testing.T) {
	svc, _ := newService(t)
	c := mustRegister(t, svc, alice, registration("kyc-review", rand.New(rand.NewPCG(1, 1))))
	stale := c.Revision + 1
	if _, err := svc.Execute(context.Background(), c.ID, domain.AddNote{Text: "x"}, domain.Options{Caller: alice, ExpectedRevision: &stale}); !errors.Is(err, domain.ErrRevisionMismatch) {
		t.Fatalf("stale If-Match: %v", err)
	}
	current := c.Revision
	if _, err := svc.Execute(context.Background(), c.ID, domain.AddNote{Text: "x"}, domain.Options{Caller: alice, ExpectedRevision: &current}); err != nil {
		t.Fatal(err)
	}
}

func ptr[T any](v T) *T { return &v }

// admission counts the commands it is asked about and those that ended,
// and refuses them while refuse is set.
type admission struct {
	asked, ended int
	refuse       error
}

func (a *admission) Admit(context.Context) (func(), error) {
	a.asked++
	if a.refuse != nil {
		return nil, a.refuse
	}
	once := false
	return func() {
		if once {
			panic("admission: done called twice")
		}
		once = true
		a.ended++
	}, nil
}

func TestAdmissionIsAskedBeforeEveryCommand(t *testing.T) {
	store := memory.New()
	adm := &admission{}
	svc, err := domain.NewService(domain.ServiceConfig{Store: store, Idempotency: store, Lifecycles: enginetest.Lifecycles(t),
		Codec: domain.NewCodec(), Admission: adm})
	if err != nil {
		t.Fatal(err)
	}
	c := mustRegister(t, svc, alice, registration("kyc-review", rand.New(rand.NewPCG(2, 2))))
	if _, err := svc.Execute(context.Background(), c.ID, domain.AddNote{Text: "x"}, domain.Options{Caller: alice}); err != nil {
		t.Fatal(err)
	}
	if adm.asked != 2 {
		t.Fatalf("admission asked %d times for a registration and a command, want 2", adm.asked)
	}
	// A command refused by the domain ends its admission too: a limit on
	// commands in flight must not lose a place to it.
	if _, err := svc.Execute(context.Background(), c.ID, domain.AddNote{}, domain.Options{Caller: alice}); err == nil {
		t.Fatal("an empty note was accepted")
	}
	if adm.asked != 3 || adm.ended != 3 {
		t.Fatalf("admission asked %d times, told of %d ends, want 3 and 3", adm.asked, adm.ended)
	}
	// A command whose wait ends (its caller went away) appends nothing.
	adm.refuse = context.Canceled
	count := func() int {
		all, err := store.ReadAll(context.Background(), domain.Start, 0)
		if err != nil {
			t.Fatal(err)
		}
		return len(all)
	}
	before := count()
	if _, err := svc.Execute(context.Background(), c.ID, domain.AddNote{Text: "y"}, domain.Options{Caller: alice}); !errors.Is(err, context.Canceled) {
		t.Fatalf("held command: err = %v, want context.Canceled", err)
	}
	if _, err := svc.Register(context.Background(), registration("kyc-review", rand.New(rand.NewPCG(3, 3))), domain.Options{Caller: alice}); !errors.Is(err, context.Canceled) {
		t.Fatalf("held registration: err = %v, want context.Canceled", err)
	}
	if after := count(); after != before {
		t.Fatalf("held commands appended %d events", after-before)
	}
}

// streamReads counts the stream reads of the store under it.
type streamReads struct {
	*memory.Store
	reads int
}

func (s *streamReads) ReadStream(ctx context.Context, stream string, dir domain.Direction, from uint64, limit int) ([]domain.RecordedEvent, error) {
	s.reads++
	return s.Store.ReadStream(ctx, stream, dir, from, limit)
}

// TestStaleCacheNeverAnswersAlone runs two services on one store, as two
// processes would be: one decides on its cached customer while the other
// has appended. Whatever the first answers, it must be what the fresh
// state gives.
func TestStaleCacheNeverAnswersAlone(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		// other is what the second process does; then the first runs cmd
		// (with If-Match on the revision other left when ifMatch is set),
		// which must append after other's events and leave a customer that
		// satisfies want.
		other   domain.Command
		cmd     domain.Command
		ifMatch bool
		want    func(*domain.Customer) bool
	}{
		{
			name:  "a command with nothing to do on the cached state",
			other: domain.ChangeTags{Add: []string{"vip"}},
			cmd:   domain.ChangeTags{Remove: []string{"vip"}},
			want:  func(c *domain.Customer) bool { return !slices.Contains(c.Tags, "vip") },
		},
		{
			name:    "a revision the cache has not seen",
			other:   domain.AddNote{Text: "from the other process"},
			cmd:     domain.AddNote{Text: "after it"},
			ifMatch: true,
			want:    func(c *domain.Customer) bool { return true },
		},
		{
			name:  "an append on a stale revision",
			other: domain.ChangeTags{Add: []string{"vip"}},
			cmd:   domain.ChangeTags{Add: []string{"pep"}},
			want: func(c *domain.Customer) bool {
				return slices.Contains(c.Tags, "vip") && slices.Contains(c.Tags, "pep")
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := memory.New()
			newSvc := func() *domain.Service {
				svc, err := domain.NewService(domain.ServiceConfig{Store: store, Idempotency: store,
					Lifecycles: enginetest.Lifecycles(t), Codec: domain.NewCodec(), MaxAttempts: 1})
				if err != nil {
					t.Fatal(err)
				}
				return svc
			}
			first, second := newSvc(), newSvc()
			c := mustRegister(t, first, alice, registration("kyc-review", rand.New(rand.NewPCG(3, 3))))
			moved, err := second.Execute(ctx, c.ID, tc.other, domain.Options{Caller: bob})
			if err != nil || len(moved.Events) == 0 {
				t.Fatalf("other process: %v, %d events", err, len(moved.Events))
			}
			opts := domain.Options{Caller: alice}
			if tc.ifMatch {
				opts.ExpectedRevision = ptr(moved.Customer.Revision)
			}
			res, err := first.Execute(ctx, c.ID, tc.cmd, opts)
			if err != nil {
				t.Fatalf("decided on the cached state: %v", err)
			}
			if len(res.Events) == 0 || res.Customer.Revision != moved.Customer.Revision+1 || !tc.want(res.Customer) {
				t.Fatalf("decided on the cached state: %d events, revision %d after the other's %d, tags %v",
					len(res.Events), res.Customer.Revision, moved.Customer.Revision, res.Customer.Tags)
			}
		})
	}
}

// TestCachedCustomerNeedsNoStreamRead: a command on a customer this process
// knows costs its append only.
func TestCachedCustomerNeedsNoStreamRead(t *testing.T) {
	ctx := context.Background()
	store := &streamReads{Store: memory.New()}
	svc, err := domain.NewService(domain.ServiceConfig{Store: store, Idempotency: store.Store,
		Lifecycles: enginetest.Lifecycles(t), Codec: domain.NewCodec()})
	if err != nil {
		t.Fatal(err)
	}
	c := mustRegister(t, svc, alice, registration("kyc-review", rand.New(rand.NewPCG(4, 4))))
	store.reads = 0
	for i := range 3 {
		if _, err := svc.Execute(ctx, c.ID, domain.AddNote{Text: fmt.Sprint("note ", i)}, domain.Options{Caller: alice}); err != nil {
			t.Fatal(err)
		}
	}
	if store.reads != 0 {
		t.Fatalf("%d stream reads for three commands on a cached customer, want 0", store.reads)
	}
}
