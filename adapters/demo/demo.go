// Package demo fills an empty store with realistic customers through the
// command service, so a new install has something to look at and every
// event in it went through the same rules as production traffic.
package demo

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/kycengine/kyc/domain"
)

var (
	firstNames  = []string{"Ada", "Grace", "Alan", "Linus", "Margaret", "Dennis", "Barbara", "Ken", "Frances", "Tim", "Hedy", "Edsger", "Radia", "Donald", "Sophie", "Niklaus", "Karen", "John", "Joan", "Tony", "Lea", "Mateo", "Yuki", "Amara", "Chen", "Priya", "Olu", "Ingrid", "Rafael", "Zofia"}
	lastNames   = []string{"Lovelace", "Hopper", "Turing", "Torvalds", "Hamilton", "Ritchie", "Liskov", "Thompson", "Allen", "Berners-Lee", "Lamarr", "Dijkstra", "Perlman", "Knuth", "Wilson", "Wirth", "Sparck Jones", "Backus", "Clarke", "Hoare", "Nowak", "García", "Tanaka", "Okafor", "Wei", "Sharma", "Adeyemi", "Larsen", "Costa", "Kowalska"}
	countries   = []string{"GB", "DE", "FR", "ES", "IT", "PL", "NL", "SE", "PT", "IE", "US", "CA", "JP", "NG", "IN", "BR", "LT", "EE"}
	cities      = map[string]string{"GB": "London", "DE": "Berlin", "FR": "Paris", "ES": "Madrid", "IT": "Rome", "PL": "Warsaw", "NL": "Amsterdam", "SE": "Stockholm", "PT": "Lisbon", "IE": "Dublin", "US": "New York", "CA": "Toronto", "JP": "Tokyo", "NG": "Lagos", "IN": "Mumbai", "BR": "São Paulo", "LT": "Vilnius", "EE": "Tallinn"}
	companies   = []string{"acme", "globex", "initech"}
	agents      = []string{"", "", "agent-emea-01", "agent-emea-02", "agent-latam-01"}
	tagPool     = []string{"vip", "pep", "high-volume", "student", "crypto", "merchant", "watchlist"}
	rejectWhy   = []string{"document appears to be tampered with", "selfie does not match the passport photo", "address could not be verified", "sanctions list match confirmed by compliance"}
	suspendWhy  = []string{"unusual outgoing transfers under review", "chargeback investigation opened", "customer reported a lost phone"}
	screenWhy   = []string{"wallet linked to a sanctioned mixer", "funds traced to a darknet market"}
	stepNames   = []string{"liveness", "document_ocr", "face_match", "address_check", "sanctions", "pep_screening"}
	personTypes = []string{"retail", "retail", "premium", "business_owner"}
)

// Progress is told how many customers are done.
type Progress func(done, total int)

// Seed registers n customers spread over the three shipped lifecycles and
// walks each through a plausible part of its lifecycle. It uses workers
// concurrent writers, so it also exercises group commit.
func Seed(ctx context.Context, svc *domain.Service, n, workers int, seed uint64, progress Progress) error {
	if n <= 0 {
		return errors.New("demo: n must be positive")
	}
	if workers <= 0 {
		workers = 16
	}
	var (
		next       atomic.Int64
		done       atomic.Int64
		wg         sync.WaitGroup
		errOnce    sync.Once
		first      error
		progressMu sync.Mutex
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(w)))
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := customer(ctx, svc, r, i); err != nil {
					errOnce.Do(func() { first = fmt.Errorf("demo customer %d: %w", i, err); cancel() })
					return
				}
				if d := int(done.Add(1)); progress != nil {
					// Serialised, so a progress callback needs no locking.
					progressMu.Lock()
					progress(d, n)
					progressMu.Unlock()
				}
			}
		}(w)
	}
	wg.Wait()
	return first
}

type run struct {
	ctx    context.Context
	svc    *domain.Service
	r      *rand.Rand
	id     string
	review domain.Caller
	second domain.Caller
	err    error
}

func (x *run) do(caller domain.Caller, cmd domain.Command) {
	if x.err != nil {
		return
	}
	_, err := x.svc.Execute(x.ctx, x.id, cmd, domain.Options{Caller: caller})
	// A refusal means the walk took a turn its lifecycle forbids; that is a
	// bug in this generator, so it stops the seeding loudly.
	x.err = err
}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

func customer(ctx context.Context, svc *domain.Service, r *rand.Rand, i int) error {
	company := pick(r, companies)
	system := domain.Caller{Actor: domain.Actor{Kind: domain.ActorSystem, ID: "demo-seeder", Company: company}, Roles: []string{domain.RoleSuperuser}}
	reviewer := domain.Caller{Actor: domain.Actor{Kind: domain.ActorOperator, ID: fmt.Sprintf("reviewer-%d", r.IntN(5)), Company: company}, Roles: []string{"operator"}}
	approver := domain.Caller{Actor: domain.Actor{Kind: domain.ActorOperator, ID: fmt.Sprintf("approver-%d", r.IntN(3)), Company: company}, Roles: []string{"operator"}}
	first, last := pick(r, firstNames), pick(r, lastNames)
	country := pick(r, countries)
	lifecycle := []string{"kyc-review", "kyc-review", "onboarding", "banking"}[i%4]
	email := strings.ToLower(fmt.Sprintf("%s.%s.%d@example.com", first, strings.ReplaceAll(last, " ", ""), i))
	email = strings.NewReplacer("í", "i", "á", "a", "ã", "a").Replace(email)
	reg := domain.RegisterCustomer{
		Lifecycle: lifecycle, Company: company, CompanyName: strings.ToUpper(company[:1]) + company[1:] + " Ltd",
		Name: &domain.Name{First: first, Last: last}, IDCardNumber: fmt.Sprintf("%s%08d", country, r.IntN(100_000_000)),
		Nationality: country, BirthDate: fmt.Sprintf("%04d-%02d-%02d", 1950+r.IntN(55), 1+r.IntN(12), 1+r.IntN(28)),
		Gender: pick(r, []string{"female", "male", "unspecified"}), Language: strings.ToLower(pick(r, []string{"en", "de", "fr", "es", "pl"})),
		Emails: []string{email}, Phones: []string{fmt.Sprintf("+44%010d", r.IntN(10_000_000_000))},
		Address:    &domain.Address{Country: country, City: cities[country], Lines: []string{fmt.Sprintf("%d High Street", 1+r.IntN(200))}},
		PersonType: pick(r, personTypes), ReferralCode: pick(r, []string{"", "", "SPRING24", "FRIEND10"}),
		CreatedByAgent: pick(r, agents), ActiveServices: activeServices(r),
	}
	if r.IntN(4) == 0 {
		reg.Tags = []string{pick(r, tagPool)}
	}
	res, err := svc.Register(ctx, reg, domain.Options{Caller: system})
	if err != nil {
		return err
	}
	x := &run{ctx: ctx, svc: svc, r: r, id: res.Customer.ID, review: reviewer, second: approver}
	x.do(system, domain.UploadDocument{Type: pick(r, []string{"PASSPORT", "ID_CARD", "DRIVERS_LICENSE"}), Number: reg.IDCardNumber,
		Country: country, ExpiryDate: fmt.Sprintf("%04d-%02d-15", 2025+r.IntN(10), 1+r.IntN(12))})
	x.do(system, domain.VerifyContact{Channel: "email", Verified: r.IntN(10) < 8})
	x.do(system, domain.VerifyContact{Channel: "phone", Verified: r.IntN(10) < 6})
	x.do(system, domain.AssessRisk{Risk: pick(r, []string{domain.RiskNormal, domain.RiskNormal, domain.RiskNormal, domain.RiskHigh, domain.RiskVeryHigh, ""}), Source: "risk-engine"})
	aml := r.IntN(10) < 8
	x.do(system, domain.RecordAMLScreening{Result: &aml, Provider: "screening-provider", Reference: fmt.Sprintf("AML-%06d", i)})
	for s := 0; s < r.IntN(6); s++ {
		x.do(system, domain.RecordStepResult{Step: stepNames[s], Result: pick(r, []string{"passed", "passed", "passed", "failed", "pending"})})
	}
	if r.IntN(3) == 0 {
		x.do(system, domain.SetVideoCallStatus{Status: pick(r, domain.VideoCallStatuses)})
	}
	if r.IntN(4) == 0 {
		x.do(system, domain.SetBioPay{Enabled: true})
	}
	switch lifecycle {
	case "kyc-review":
		x.walkReview(system)
	case "onboarding":
		x.walkOnboarding()
	case "banking":
		x.walkBanking()
	}
	return x.err
}

func activeServices(r *rand.Rand) []string {
	var out []string
	for _, s := range domain.Services {
		if r.IntN(2) == 0 {
			out = append(out, s)
		}
	}
	return out
}

func (x *run) walkReview(system domain.Caller) {
	r := x.r
	if r.IntN(8) == 0 {
		return // stays CREATED
	}
	if r.IntN(6) == 0 {
		x.do(x.review, domain.ChangeStatus{Status: "INCOMPLETE"})
		return
	}
	x.do(system, domain.ChangeStatus{Status: "PENDING_REVIEW"})
	if r.IntN(6) == 0 {
		return
	}
	x.do(x.review, domain.StartCheck{})
	c, err := x.svc.Get(x.ctx, x.review, x.id)
	if err != nil || x.err != nil {
		x.err = errors.Join(x.err, err)
		return
	}
	switch outcome := r.IntN(10); {
	case outcome < 6:
		for _, item := range c.Check.Items {
			x.do(x.review, domain.ReviewItem{Item: item, Decision: domain.DecisionApproved})
		}
		x.do(x.review, domain.FinishCheck{})
		if r.IntN(5) > 0 {
			x.do(x.second, domain.ChangeStatus{Status: "APPROVED"})
			if r.IntN(10) == 0 {
				x.do(x.second, domain.ChangeStatus{Status: "INACTIVE"})
			}
		}
	case outcome < 8:
		x.do(x.review, domain.ReviewItem{Item: c.Check.Items[len(c.Check.Items)-1], Decision: domain.DecisionRejected, Comment: "photo is blurred"})
		x.do(x.review, domain.RequestResubmission{Items: []string{c.Check.Items[len(c.Check.Items)-1]}, Comment: "please upload a sharper photo"})
		if r.IntN(2) == 0 {
			x.do(domain.Caller{Actor: domain.Actor{Kind: domain.ActorCustomer, ID: x.id, Company: x.review.Actor.Company}}, domain.SubmitResubmission{})
		}
	case outcome < 9:
		x.do(x.review, domain.RejectCheck{Reason: pick(r, rejectWhy), Labels: []string{pick(r, []string{"FORGERY", "SELFIE_MISMATCH", "BAD_PROOF_OF_ADDRESS"})},
			RejectType: pick(r, []string{domain.RejectRetry, domain.RejectFinal}), ClientComment: "We could not verify your identity."})
	default:
		x.do(x.review, domain.ChangeStatus{Status: "BLACKLISTED", Reason: "sanctions list match confirmed by compliance"})
	}
	if r.IntN(5) == 0 {
		x.do(x.review, domain.AddNote{Text: "Customer called to ask about the status of the review."})
	}
}

func (x *run) walkOnboarding() {
	r := x.r
	steps := r.IntN(5)
	if steps == 0 {
		return
	}
	x.do(x.review, domain.FireTransition{Event: "verify_challenge"})
	if steps == 1 {
		return
	}
	if r.IntN(8) == 0 {
		x.do(x.review, domain.FireTransition{Event: "fail_screening", Reason: pick(r, screenWhy)})
		return
	}
	x.do(x.review, domain.FireTransition{Event: "pass_screening"})
	if steps == 2 {
		return
	}
	if r.IntN(8) == 0 {
		x.do(x.review, domain.FireTransition{Event: "fail_verification", Reason: pick(r, rejectWhy)})
		return
	}
	x.do(x.review, domain.FireTransition{Event: "complete_verification"})
	if steps == 4 && r.IntN(3) == 0 {
		x.do(x.review, domain.FireTransition{Event: "deactivate"})
	}
}

func (x *run) walkBanking() {
	r := x.r
	x.do(x.review, domain.SetVerificationLevel{Level: r.IntN(6)})
	switch r.IntN(10) {
	case 0:
		x.do(x.review, domain.ChangeStatus{Status: "suspended", Reason: pick(r, suspendWhy)})
	case 1:
		x.do(x.review, domain.ChangeStatus{Status: "blocked", Reason: "confirmed account takeover by a third party"})
	}
	if r.IntN(3) == 0 {
		x.do(x.review, domain.SetAccess{AccessRoles: []string{"client"}, AccessGroups: []string{pick(r, []string{"retail-eu", "retail-uk", "premium"})}})
	}
}
