package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/kycengine/kyc/adapters/eventstore/embedded"
	"github.com/kycengine/kyc/domain"
)

// The generator fills an event store with customers whose every event was
// decided by the domain: each command goes through its Decide with the
// customer's lifecycle and folded state, exactly as domain.Service does, and
// each event is encoded by domain.Codec. What it skips is the service's
// per-command round trip (read the stream, append one command's events):
// at ~30k events/s that would take minutes per million events. Instead a
// worker decides a customer's whole life in memory, folding the decided
// events as the service does, and appends it in two Append calls with
// optimistic concurrency:
//
//   - onboarding (registration, documents, contacts, risk, AML, ...) at once;
//   - the review (status changes, checks, rejections) some thousands of
//     customers later in the log,
//
// so that, as in a real log, a customer's events are not all next to each
// other: a projection batch then holds later events of customers registered
// many batches before, and the customers projection has to load their rows.

// generatorVersion changes whenever the generated data changes, so a store
// made by an older generator is not reused.
const generatorVersion = 2

// marker describes a generated store; it is written once the store is
// complete, so a store without it (an interrupted run) is never reused.
type marker struct {
	Generator int             `json:"generator"`
	Customers int             `json:"customers"`
	Events    int64           `json:"events"`
	Head      domain.Position `json:"head"`
	Took      string          `json:"took"`
}

const (
	eventsFile = "events.db"
	markerFile = "events.marker.json"
)

var (
	genFirstNames = []string{"Ada", "Grace", "Alan", "Linus", "Margaret", "Dennis", "Barbara", "Ken", "Frances", "Tim", "Hedy", "Edsger",
		"Radia", "Donald", "Sophie", "Niklaus", "Karen", "John", "Joan", "Tony", "Lea", "Mateo", "Yuki", "Amara", "Chen", "Priya", "Olu",
		"Ingrid", "Rafael", "Zofia", "Maria", "Jan", "Anna", "Lukas", "Emma", "Noah", "Mia", "Oliver", "Sofia", "Elias", "Hannah", "Omar",
		"Fatima", "Kenji", "Aiko", "Pedro", "Lucia", "Ivan", "Olga", "Kwame"}
	genLastNames = []string{"Lovelace", "Hopper", "Turing", "Torvalds", "Hamilton", "Ritchie", "Liskov", "Thompson", "Allen", "Berners-Lee",
		"Lamarr", "Dijkstra", "Perlman", "Knuth", "Wilson", "Wirth", "Sparck Jones", "Backus", "Clarke", "Hoare", "Nowak", "Garcia", "Tanaka",
		"Okafor", "Wei", "Sharma", "Adeyemi", "Larsen", "Costa", "Kowalska", "Müller", "Schmidt", "Rossi", "Dubois", "Novak", "Jensen",
		"Silva", "Santos", "Ivanova", "Petrov", "Kim", "Park", "Nguyen", "Haddad", "Mensah", "O'Brien", "Murphy", "Fischer", "Bianchi", "Moreau"}
	genCountries = []string{"GB", "GB", "DE", "DE", "FR", "ES", "IT", "PL", "NL", "SE", "PT", "IE", "US", "US", "CA", "JP", "NG", "IN", "BR", "LT", "EE", "RO", "GR", "CZ"}
	genCities    = map[string]string{"GB": "London", "DE": "Berlin", "FR": "Paris", "ES": "Madrid", "IT": "Rome", "PL": "Warsaw", "NL": "Amsterdam",
		"SE": "Stockholm", "PT": "Lisbon", "IE": "Dublin", "US": "New York", "CA": "Toronto", "JP": "Tokyo", "NG": "Lagos", "IN": "Mumbai",
		"BR": "São Paulo", "LT": "Vilnius", "EE": "Tallinn", "RO": "Bucharest", "GR": "Athens", "CZ": "Prague"}
	// Companies are skewed: a few large tenants and a tail of small ones.
	genCompanies   = []string{"acme", "acme", "acme", "globex", "globex", "initech", "initech", "umbrella", "hooli", "stark", "wayne", "tyrell"}
	genAgents      = []string{"", "", "", "agent-emea-01", "agent-emea-02", "agent-latam-01", "agent-apac-01"}
	genReferrals   = []string{"", "", "", "", "SPRING24", "FRIEND10", "PARTNER-X", "WINTER23"}
	genTags        = []string{"vip", "pep", "high-volume", "student", "crypto", "merchant", "watchlist", "sanctions-review", "corporate"}
	genRoles       = []string{"client", "trader", "viewer"}
	genGroups      = []string{"retail-eu", "retail-uk", "premium", "business"}
	genDocTypes    = []string{"PASSPORT", "PASSPORT", "ID_CARD", "ID_CARD", "DRIVERS_LICENSE", "RESIDENCE_PERMIT", "PROOF_OF_ADDRESS", "SELFIE"}
	genRejectWhy   = []string{"document appears to be tampered with", "selfie does not match the passport photo", "address could not be verified", "sanctions list match confirmed by compliance"}
	genRejectLabel = []string{"FORGERY", "SELFIE_MISMATCH", "BAD_PROOF_OF_ADDRESS", "SANCTIONS"}
	genSuspendWhy  = []string{"unusual outgoing transfers under review", "chargeback investigation opened", "customer reported a lost phone"}
	genSteps       = []string{"liveness", "document_ocr", "face_match", "address_check", "sanctions", "pep_screening"}
	genLanguages   = []string{"en", "en", "de", "fr", "es", "pl", "it", "pt", "ja"}
)

func pickOf[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

// genSpan is the simulated period over which customers registered, ending a
// day before the run, so that time filters select a realistic share.
const genSpan = 2 * 365 * 24 * time.Hour

// lifeOf decides one customer's life. It folds the decided events into c as
// the service does and returns them, with the number that make up the
// onboarding part.
type life struct {
	r       *rand.Rand
	codec   *domain.Codec
	lc      *domain.Lifecycle
	c       *domain.Customer
	now     time.Time
	limit   time.Time
	events  []domain.EventData
	err     error
	company string
}

func (x *life) do(caller domain.Caller, cmd domain.Command) {
	if x.err != nil {
		return
	}
	// Each command happens a while after the one before: minutes to days.
	x.now = x.now.Add(time.Duration(1+x.r.IntN(3*24*60)) * time.Minute)
	if x.now.After(x.limit) {
		x.now = x.limit
	}
	evs, err := cmd.Decide(domain.Decision{Ctx: context.Background(), Caller: caller, Now: x.now, NewID: newID, Lifecycle: x.lc, Customer: x.c})
	if err != nil {
		// A refusal means the generator walked a path its lifecycle forbids:
		// a bug here, so it stops the run loudly.
		x.err = fmt.Errorf("%s: %w", cmd.CommandName(), err)
		return
	}
	cmdID := newID()
	for _, ev := range evs {
		typ, version, data, personal, err := x.codec.Encode(ev)
		if err != nil {
			x.err = err
			return
		}
		ed := domain.EventData{ID: uuid.Must(uuid.NewV7()), Type: typ, SchemaVersion: version, OccurredAt: x.now.UTC(), Actor: caller.Actor,
			CorrelationID: cmdID, CausationID: cmdID, Data: data, Personal: personal}
		rev := uint64(len(x.events))
		x.c.Apply(ev, domain.RecordedEvent{EventData: ed, Revision: rev})
		x.events = append(x.events, ed)
	}
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }

func (g *generator) customer(r *rand.Rand, i int) (stream string, events []domain.EventData, onboarding int, err error) {
	company := pickOf(r, genCompanies)
	system := domain.Caller{Actor: domain.Actor{Kind: domain.ActorSystem, ID: "onboarding-service", Company: company}, Roles: []string{domain.RoleSuperuser}}
	reviewer := domain.Caller{Actor: domain.Actor{Kind: domain.ActorOperator, ID: fmt.Sprintf("reviewer-%02d", r.IntN(40)), Company: company}, Roles: []string{"operator"}}
	approver := domain.Caller{Actor: domain.Actor{Kind: domain.ActorOperator, ID: fmt.Sprintf("approver-%02d", r.IntN(12)), Company: company}, Roles: []string{"operator"}}
	lifecycle := g.review
	if r.IntN(100) < 15 {
		lifecycle = g.banking
	}
	// Registrations spread evenly over the simulated period, in log order.
	registered := g.start.Add(time.Duration(float64(genSpan) * (float64(i) + r.Float64()) / float64(g.n)))
	x := &life{r: r, codec: g.codec, lc: lifecycle, c: &domain.Customer{}, now: registered, limit: g.start.Add(genSpan + 23*time.Hour), company: company}
	x.now = registered.Add(-time.Minute) // do adds at least a minute

	first, last := pickOf(r, genFirstNames), pickOf(r, genLastNames)
	nationality := pickOf(r, genCountries)
	country := nationality
	if r.IntN(5) == 0 {
		country = pickOf(r, genCountries) // lives abroad
	}
	local := strings.ToLower(strings.NewReplacer(" ", "", "'", "", "ü", "u", "ã", "a").Replace(first + "." + last))
	reg := domain.RegisterCustomer{
		CustomerID: newID(), PublicID: fmt.Sprintf("C%09d", i), Lifecycle: lifecycle.Name(),
		Company: company, CompanyName: strings.ToUpper(company[:1]) + company[1:] + " Ltd",
		Name: &domain.Name{First: first, Last: last}, IDCardNumber: fmt.Sprintf("%s%08d", nationality, r.IntN(100_000_000)),
		Nationality: nationality, BirthDate: fmt.Sprintf("%04d-%02d-%02d", 1945+r.IntN(62), 1+r.IntN(12), 1+r.IntN(28)),
		Gender: pickOf(r, []string{"female", "male", "unspecified"}), Language: pickOf(r, genLanguages),
		Emails: []string{fmt.Sprintf("%s.%d@%s", local, i, pickOf(r, []string{"example.com", "mail.example.org", "inbox.example.net"}))},
		Phones: []string{fmt.Sprintf("+%d%09d", 30+r.IntN(60), r.IntN(1_000_000_000))},
		Address: &domain.Address{Country: country, City: genCities[country], Lines: []string{fmt.Sprintf("%d %s Street", 1+r.IntN(300),
			pickOf(r, []string{"High", "Station", "Church", "Park", "Mill", "Market"}))}},
		PersonType:     pickOf(r, []string{"retail", "retail", "retail", "premium", "business_owner"}),
		ReferralCode:   pickOf(r, genReferrals),
		CreatedByAgent: pickOf(r, genAgents),
	}
	for _, s := range domain.Services {
		if r.IntN(2) == 0 {
			reg.ActiveServices = append(reg.ActiveServices, s)
		}
	}
	for range []int{0, 0, 0, 0, 1, 1, 2}[r.IntN(7)] {
		if t := pickOf(r, genTags); !slices.Contains(reg.Tags, t) {
			reg.Tags = append(reg.Tags, t)
		}
	}
	if r.IntN(4) == 0 {
		reg.AccessRoles = []string{pickOf(r, genRoles)}
		reg.AccessGroups = []string{pickOf(r, genGroups)}
	}
	x.do(system, reg)

	// Onboarding: documents, contacts, screening.
	for d := 0; d < 1+r.IntN(3)/2; d++ {
		x.do(system, domain.UploadDocument{Type: pickOf(r, genDocTypes), Number: fmt.Sprintf("D%08d", r.IntN(100_000_000)), Country: nationality,
			ExpiryDate: fmt.Sprintf("%04d-%02d-%02d", 2024+r.IntN(12), 1+r.IntN(12), 1+r.IntN(28)),
			FileDigest: fmt.Sprintf("sha256:%064x", r.Uint64())})
	}
	if r.IntN(10) < 8 {
		x.do(system, domain.VerifyContact{Channel: "email", Verified: true})
	}
	if r.IntN(10) < 6 {
		x.do(system, domain.VerifyContact{Channel: "phone", Verified: true})
	}
	// Risk, unset for about one in six.
	x.do(system, domain.AssessRisk{Risk: pickOf(r, []string{domain.RiskNormal, domain.RiskNormal, domain.RiskNormal, domain.RiskHigh, domain.RiskVeryHigh, ""}), Source: "risk-engine"})
	if r.IntN(10) < 9 {
		hit := r.IntN(10) >= 8
		clean := !hit
		x.do(system, domain.RecordAMLScreening{Result: &clean, Provider: "screening-provider", Reference: fmt.Sprintf("AML-%08d", i)})
	}
	if r.IntN(10) < 3 {
		x.do(system, domain.SetVideoCallStatus{Status: pickOf(r, domain.VideoCallStatuses)})
	}
	if r.IntN(10) < 3 {
		x.do(system, domain.RecordStepResult{Step: pickOf(r, genSteps), Result: pickOf(r, domain.StepResults), Details: json.RawMessage(`{"score":0.93,"vendor":"v1"}`)})
	}
	onboarding = len(x.events)

	// Review: the lifecycle walk.
	if lifecycle == g.banking {
		x.do(reviewer, domain.SetVerificationLevel{Level: r.IntN(6)})
		switch r.IntN(10) {
		case 0, 1:
			x.do(reviewer, domain.ChangeStatus{Status: "suspended", Reason: pickOf(r, genSuspendWhy)})
		case 2:
			x.do(reviewer, domain.ChangeStatus{Status: "blocked", Reason: "confirmed account takeover by a third party"})
		}
		if r.IntN(3) == 0 {
			x.do(reviewer, domain.SetAccess{AccessRoles: []string{pickOf(r, genRoles)}, AccessGroups: []string{pickOf(r, genGroups)}})
		}
	} else {
		x.walkReview(system, reviewer, approver)
	}
	if r.IntN(20) == 0 {
		x.do(reviewer, domain.ChangeTags{Add: []string{pickOf(r, genTags)}})
	}
	if r.IntN(10) == 0 {
		x.do(reviewer, domain.AddNote{Text: "Customer called to ask about the status of the review."})
	}
	if x.err != nil {
		return "", nil, 0, fmt.Errorf("customer %d: %w", i, x.err)
	}
	return domain.StreamName(reg.CustomerID), x.events, onboarding, nil
}

func (x *life) walkReview(system, reviewer, approver domain.Caller) {
	r := x.r
	switch p := r.IntN(100); {
	case p < 14:
		return // stays CREATED
	case p < 22:
		x.do(reviewer, domain.ChangeStatus{Status: "INCOMPLETE"})
		return
	case p < 26:
		x.do(reviewer, domain.ChangeStatus{Status: "REJECTED", Reason: pickOf(r, genRejectWhy), Labels: []string{pickOf(r, genRejectLabel)}, RejectType: domain.RejectFinal})
		return
	}
	x.do(system, domain.ChangeStatus{Status: "PENDING_REVIEW"})
	switch p := r.IntN(100); {
	case p < 25:
		return // waiting for a reviewer
	case p < 32:
		x.do(reviewer, domain.ChangeStatus{Status: "PENDING_UPLOAD"})
		return
	case p < 37:
		x.do(reviewer, domain.ChangeStatus{Status: "BLACKLISTED", Reason: "sanctions list match confirmed by compliance"})
		return
	}
	x.do(reviewer, domain.StartCheck{})
	if x.err != nil {
		return
	}
	items := x.c.Check.Items
	switch p := r.IntN(100); {
	case p < 55:
		for _, item := range items {
			x.do(reviewer, domain.ReviewItem{Item: item, Decision: domain.DecisionApproved})
		}
		x.do(reviewer, domain.FinishCheck{})
		if r.IntN(5) > 0 {
			x.do(approver, domain.ChangeStatus{Status: "APPROVED"})
			if r.IntN(15) == 0 {
				x.do(approver, domain.ChangeStatus{Status: "INACTIVE"})
			}
		}
	case p < 70:
		bad := items[len(items)-1]
		x.do(reviewer, domain.ReviewItem{Item: bad, Decision: domain.DecisionRejected, Comment: "photo is blurred"})
		x.do(reviewer, domain.RequestResubmission{Items: []string{bad}, Comment: "please upload a sharper photo"})
		if r.IntN(2) == 0 {
			x.do(domain.Caller{Actor: domain.Actor{Kind: domain.ActorCustomer, ID: x.c.ID, Company: x.company}}, domain.SubmitResubmission{})
		}
	default:
		x.do(reviewer, domain.RejectCheck{Reason: pickOf(r, genRejectWhy), Labels: []string{pickOf(r, genRejectLabel)},
			RejectType: pickOf(r, []string{domain.RejectRetry, domain.RejectFinal}), ClientComment: "We could not verify your identity."})
	}
}

type generator struct {
	n       int
	codec   *domain.Codec
	review  *domain.Lifecycle
	banking *domain.Lifecycle
	start   time.Time
}

// generate fills store with n customers using workers concurrent appenders
// (so the store's group commit batches them) and returns the marker.
func (g *generator) generate(ctx context.Context, store *embedded.Store, workers int, logf func(string, ...any)) (marker, error) {
	began := time.Now()
	// lagBehind is how many of a worker's customers have their onboarding
	// in the log before their review is appended: with all workers, the
	// two halves of a customer are some thousands of customers apart.
	const lagBehind = 24
	var (
		next, done atomic.Int64
		events     atomic.Int64
		headMu     sync.Mutex
		head       domain.Position
		wg         sync.WaitGroup
		errOnce    sync.Once
		first      error
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fail := func(err error) { errOnce.Do(func() { first = err; cancel() }) }
	seen := func(p domain.Position) {
		headMu.Lock()
		if head.Less(p) {
			head = p
		}
		headMu.Unlock()
	}
	tick := max(int64(g.n/10), 1)
	type pending struct {
		stream string
		from   uint64
		events []domain.EventData
	}
	// appendRest appends a customer's review, which completes it.
	appendRest := func(p pending) error {
		if len(p.events) > 0 {
			res, err := store.Append(ctx, p.stream, domain.ExpectRevision(p.from-1), p.events)
			if err != nil {
				return fmt.Errorf("append %s: %w", p.stream, err)
			}
			seen(res.Position)
			events.Add(int64(len(p.events)))
		}
		if d := done.Add(1); d%tick == 0 {
			logf("generate: %3d%%  %d customers, %d events, %.0f events/s", d*100/int64(g.n), d, events.Load(), float64(events.Load())/time.Since(began).Seconds())
		}
		return nil
	}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w)+1, 0x6b7963))
			var queue []pending
			for {
				i := int(next.Add(1)) - 1
				if i >= g.n || ctx.Err() != nil {
					break
				}
				stream, evs, onboarding, err := g.customer(r, i)
				if err != nil {
					fail(err)
					return
				}
				res, err := store.Append(ctx, stream, domain.ExpectNoStream, evs[:onboarding])
				if err != nil {
					fail(fmt.Errorf("append %s: %w", stream, err))
					return
				}
				seen(res.Position)
				events.Add(int64(onboarding))
				queue = append(queue, pending{stream, uint64(onboarding), evs[onboarding:]})
				if len(queue) > lagBehind {
					if err := appendRest(queue[0]); err != nil {
						fail(err)
						return
					}
					queue = queue[1:]
				}
			}
			for _, p := range queue {
				if ctx.Err() != nil {
					return
				}
				if err := appendRest(p); err != nil {
					fail(err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	if first != nil {
		return marker{}, first
	}
	if err := ctx.Err(); err != nil {
		return marker{}, err
	}
	return marker{Generator: generatorVersion, Customers: g.n, Events: events.Load(), Head: head, Took: time.Since(began).Round(time.Second).String()}, nil
}

// openDataset opens the generated store in dir, generating it first unless
// dir holds a complete one of n customers.
func openDataset(ctx context.Context, dir string, n int, g *generator, logf func(string, ...any)) (*embedded.Store, marker, bool, error) {
	path := filepath.Join(dir, eventsFile)
	if b, err := os.ReadFile(filepath.Join(dir, markerFile)); err == nil {
		var m marker
		if json.Unmarshal(b, &m) == nil && m.Customers == n && m.Generator == generatorVersion {
			store, err := embedded.Open(ctx, path)
			if err != nil {
				return nil, marker{}, false, err
			}
			return store, m, true, nil
		}
	}
	// Anything else in the folder is from another size, another generator
	// or an interrupted run.
	_ = os.Remove(filepath.Join(dir, markerFile))
	for _, suffix := range []string{"", "-wal", "-shm", ".lock"} {
		if err := os.Remove(path + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, marker{}, false, err
		}
	}
	store, err := embedded.Open(ctx, path)
	if err != nil {
		return nil, marker{}, false, err
	}
	// Each worker waits for its append to be durable, so the workers bound
	// how many appends share one group commit (and one fsync): with few,
	// the disk's sync latency, not the domain, would set the pace.
	m, err := g.generate(ctx, store, 256, logf)
	if err != nil {
		store.Close()
		return nil, marker{}, false, err
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, markerFile), b, 0o644); err != nil {
		store.Close()
		return nil, marker{}, false, err
	}
	return store, m, false, nil
}
