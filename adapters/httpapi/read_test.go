package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kycengine/kyc/adapters/enginetest"
	eventmemory "github.com/kycengine/kyc/adapters/eventstore/memory"
	readmemory "github.com/kycengine/kyc/adapters/readmodel/memory"
	"github.com/kycengine/kyc/domain"
	"github.com/kycengine/kyc/projections"
)

// ReadSide runs the projection engine over the log into rm until the test
// ends and returns a Reader on it; exported for the contract test.
func ReadSide(t testing.TB, svc *domain.Service, log *eventmemory.Store, rm projections.Store, maxWait time.Duration) (*projections.Reader, *projections.Engine) {
	t.Helper()
	customers, err := projections.NewCustomers(rm, svc.Codec(), svc.Lifecycles())
	if err != nil {
		t.Fatal(err)
	}
	audit, err := projections.NewAudit(rm, svc.Codec())
	if err != nil {
		t.Fatal(err)
	}
	engine, err := projections.NewEngine(projections.EngineConfig{Events: log, Store: rm, Projections: []projections.Projection{customers, audit}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		engine.Wait()
	})
	if err := engine.Start(ctx); err != nil {
		t.Fatal(err)
	}
	r, err := projections.NewReader(projections.ReaderConfig{Store: rm, Streams: log, Codec: svc.Codec(), Notifier: engine, MaxWait: maxWait})
	if err != nil {
		t.Fatal(err)
	}
	return r, engine
}

// CaughtUp waits until the engine applied the whole log.
func CaughtUp(t testing.TB, e *projections.Engine) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		sts, err := e.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		done := true
		for _, s := range sts {
			done = done && s.LagEvents == 0 && s.Rebuild == nil && s.Error == ""
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("projections did not catch up: %+v", sts)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// LifecycleStatuses exports the status filter's value set for the contract
// test.
func LifecycleStatuses(ls *domain.Lifecycles) []string { return lifecycleStatuses(ls) }

// Tokens of the read tests: an operator of company A, one of company B, a
// superuser (of A), a customer-kind caller of A, and an operator of A with
// the view_document permission.
const (
	readAToken    = "read-a-token-0123456789"
	readBToken    = "read-b-token-0123456789"
	readRootToken = "read-root-token-012345"
	readCustToken = "read-cust-token-012345"
	readDocsToken = "read-docs-token-012345"
)

type readFixture struct {
	t   *testing.T
	srv *httptest.Server
	svc *domain.Service
	log *eventmemory.Store
	rm  *readmemory.Store
	// engine is nil without a Reader.
	engine *projections.Engine
}

func newReadFixture(t *testing.T, withReader bool) *readFixture {
	t.Helper()
	svc, log := enginetest.NewService(t)
	auth, err := NewAuthenticator([]Key{
		{Token: readAToken, Actor: "anna", Roles: []string{"operator"}, Company: "company-a", Kind: domain.ActorOperator},
		{Token: readBToken, Actor: "bert", Roles: []string{"operator"}, Company: "company-b", Kind: domain.ActorOperator},
		{Token: readRootToken, Actor: "root", Roles: []string{domain.RoleSuperuser}, Company: "company-a", Kind: domain.ActorOperator},
		{Token: readCustToken, Actor: "cora", Company: "company-a", Kind: domain.ActorCustomer},
		{Token: readDocsToken, Actor: "dora", Roles: []string{"operator", projections.PermissionViewDocument}, Company: "company-a", Kind: domain.ActorOperator},
	})
	if err != nil {
		t.Fatal(err)
	}
	rm := readmemory.New()
	cfg := Config{Service: svc, Auth: auth}
	var engine *projections.Engine
	if withReader {
		cfg.Reader, engine = ReadSide(t, svc, log, rm, 100*time.Millisecond)
		cfg.Projections = engine
	}
	api, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	return &readFixture{t: t, srv: srv, svc: svc, log: log, rm: rm, engine: engine}
}

func (f *readFixture) get(token, path string) (*http.Response, []byte) {
	f.t.Helper()
	return f.send("GET", token, path, "")
}

func (f *readFixture) send(method, token, path, body string) (*http.Response, []byte) {
	f.t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func (f *readFixture) register(token, first, last string) string {
	f.t.Helper()
	body := `{"name":{"first":"` + first + `","last":"` + last + `"},"birth_date":"1990-01-02","nationality":"GB"}`
	req, err := http.NewRequest("POST", f.srv.URL+"/v1/customers", strings.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		f.t.Fatalf("register: %d %s", resp.StatusCode, b)
	}
	var out struct{ ID string }
	if err := json.Unmarshal(b, &out); err != nil {
		f.t.Fatal(err)
	}
	return out.ID
}

// fold waits until the read models hold everything written so far.
func (f *readFixture) fold() {
	if f.engine != nil {
		CaughtUp(f.t, f.engine)
	}
}

type testProblem struct {
	Type   string `json:"type"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Field  string `json:"field"`
	Errors []struct {
		Field string `json:"field"`
	} `json:"errors"`
}

func decodeProblem(t *testing.T, resp *http.Response, body []byte) testProblem {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q, want application/problem+json (body %s)", ct, body)
	}
	var p testProblem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("problem %s: %v", body, err)
	}
	return p
}

func TestReadQueryRefusals(t *testing.T) {
	f := newReadFixture(t, true)
	f.fold()
	tests := []struct {
		name, path, field string
	}{
		{"unknown list parameter", "/v1/customers?colour=red", "colour"},
		{"bracket list syntax", "/v1/customers?status[]=CREATED", "status[]"},
		{"comma list syntax", "/v1/customers?status=CREATED,APPROVED", "status"},
		{"unknown status", "/v1/customers?status=NO_SUCH_STATUS", "status"},
		{"empty status", "/v1/customers?status=", "status"},
		{"bad risk", "/v1/customers?risk=LOW", "risk"},
		{"lower-case risk", "/v1/customers?risk=high", "risk"},
		{"bad video call status", "/v1/customers?video_call_status=ON+HOLD", "video_call_status"},
		{"verification level too high", "/v1/customers?verification_level=6", "verification_level"},
		{"verification level not a number", "/v1/customers?verification_level=two", "verification_level"},
		{"negative verification level", "/v1/customers?verification_level=-1", "verification_level"},
		{"bad verification status", "/v1/customers?verification_status=verified", "verification_status"},
		{"bad state", "/v1/customers?state=closed", "state"},
		{"lower-case nationality", "/v1/customers?nationality=gb", "nationality"},
		{"three-letter country", "/v1/customers?country=GBR", "country"},
		{"bad document type", "/v1/customers?document_type=VISA", "document_type"},
		{"bad created_from", "/v1/customers?created_from=yesterday", "created_from"},
		{"bad created_to", "/v1/customers?created_to=2024-13-01", "created_to"},
		{"short date", "/v1/customers?updated_from=2024-1-2", "updated_from"},
		{"reversed created range", "/v1/customers?created_from=2024-02-01&created_to=2024-01-31", "created_to"},
		{"reversed updated range", "/v1/customers?updated_from=2024-02-01T10:00:00Z&updated_to=2024-02-01T09:59:59Z", "updated_to"},
		{"expiry with a time", "/v1/customers?expiry_from=2030-01-01T00:00:00Z", "expiry_from"},
		{"reversed expiry range", "/v1/customers?expiry_from=2030-02-01&expiry_to=2030-01-01", "expiry_to"},
		{"age not a number", "/v1/customers?age_min=ten", "age_min"},
		{"age too high", "/v1/customers?age_max=151", "age_max"},
		{"signed age", "/v1/customers?age_min=+5", "age_min"},
		{"reversed ages", "/v1/customers?age_min=40&age_max=30", "age_max"},
		{"bad sort", "/v1/customers?sort=age", "sort"},
		{"sort ascending with plus", "/v1/customers?sort=%2Bname", "sort"},
		{"page zero", "/v1/customers?page=0", "page"},
		{"page not a number", "/v1/customers?page=first", "page"},
		{"per_page 25", "/v1/customers?per_page=25", "per_page"},
		{"per_page 0", "/v1/customers?per_page=0", "per_page"},
		{"repeated q", "/v1/customers?q=ada&q=bob", "q"},
		{"repeated sort", "/v1/customers?sort=name&sort=-name", "sort"},
		{"repeated page", "/v1/customers?page=1&page=2", "page"},
		{"repeated per_page", "/v1/customers?per_page=20&per_page=20", "per_page"},
		{"repeated created_from", "/v1/customers?created_from=2024-01-01&created_from=2024-01-02", "created_from"},
		{"repeated age_min", "/v1/customers?age_min=1&age_min=2", "age_min"},
		{"bad percent-encoding", "/v1/customers?tag=%zz", "tag"},
		{"nameless parameter", "/v1/customers?=x", "query"},
		{"long tag", "/v1/customers?tag=" + strings.Repeat("x", 201), "tag"},
		{"unknown audit parameter", "/v1/audit?status=CREATED", "status"},
		{"bad audit type", "/v1/audit?type=NoSuchEvent", "type"},
		{"bad audit from", "/v1/audit?from=31/01/2024", "from"},
		{"reversed audit range", "/v1/audit?from=2024-02-01&to=2024-01-01", "to"},
		{"audit per_page 25", "/v1/audit?per_page=25", "per_page"},
		{"repeated audit to", "/v1/audit?to=2024-01-01&to=2024-01-02", "to"},
		{"history takes no parameters", "/v1/customers/" + f.register(readAToken, "Ada", "Lovelace") + "/history?page=1", "page"},
		{"profile unknown parameter", "/v1/customers/00000000-0000-4000-8000-000000000000?revision=1", "revision"},
		{"profile bad min_revision", "/v1/customers/00000000-0000-4000-8000-000000000000?min_revision=-1", "min_revision"},
		{"profile repeated min_revision", "/v1/customers/00000000-0000-4000-8000-000000000000?min_revision=1&min_revision=2", "min_revision"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := f.get(readRootToken, tc.path)
			if resp.StatusCode != http.StatusUnprocessableEntity {
				t.Fatalf("status %d, want 422: %s", resp.StatusCode, body)
			}
			p := decodeProblem(t, resp, body)
			if p.Field != tc.field || p.Type != problemBase+"invalid-input" || len(p.Errors) == 0 || p.Errors[0].Field != tc.field {
				t.Errorf("problem %s, want invalid-input naming %q", body, tc.field)
			}
		})
	}
}

func TestReadQueryAccepts(t *testing.T) {
	f := newReadFixture(t, true)
	f.fold()
	for _, path := range []string{
		"/v1/customers",
		"/v1/customers?q=ada&status=CREATED&status=APPROVED&risk=HIGH&risk=NORMAL&sort=-name&page=2&per_page=50",
		"/v1/customers?created_from=2024-01-01&created_to=2024-01-01&updated_from=2024-01-01T10:00:00Z&updated_to=2024-01-01T10:00:00Z",
		"/v1/customers?expiry_from=2030-01-01&expiry_to=2030-01-01&age_min=18&age_max=18&verification_level=0&verification_level=5",
		"/v1/customers?video_call_status=BAD+QUALITY&verification_status=identified&state=active&country=GB&nationality=DE",
		"/v1/customers?tag=vip&access_role=customer&access_group=retail&agent=agent-7&referral_code=FRIEND1&document_type=PASSPORT",
		"/v1/customers?status=active&status=inactive&sort=last_status_update&per_page=100&q=",
		"/v1/audit?type=CustomerRegistered&type=StatusChanged&actor=anna&customer=x&from=2024-01-01&to=2099-01-01T00:00:00%2B02:00",
	} {
		resp, body := f.get(readRootToken, path)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: status %d: %s", path, resp.StatusCode, body)
		}
	}
}

func TestListFiltersAndSorts(t *testing.T) {
	f := newReadFixture(t, true)
	ada := f.register(readAToken, "Ada", "Lovelace")
	bob := f.register(readAToken, "Bob", "Babbage")
	f.fold()
	list := func(path string) (ids []string, total int) {
		t.Helper()
		resp, body := f.get(readAToken, path)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
		}
		var page struct {
			Total, Page, PerPage int
			Items                []projections.ListItem
		}
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Items {
			ids = append(ids, it.ID)
		}
		return ids, page.Total
	}
	if ids, total := list("/v1/customers?sort=name"); !slices.Equal(ids, []string{ada, bob}) || total != 2 {
		t.Errorf("sort=name: %v (total %d), want ada, bob", ids, total)
	}
	if ids, _ := list("/v1/customers?sort=-name"); !slices.Equal(ids, []string{bob, ada}) {
		t.Errorf("sort=-name: %v, want bob, ada", ids)
	}
	if ids, _ := list("/v1/customers?q=lov"); !slices.Equal(ids, []string{ada}) {
		t.Errorf("q=lov: %v, want ada", ids)
	}
	if ids, total := list("/v1/customers?sort=name&page=2&per_page=20"); len(ids) != 0 || total != 2 {
		t.Errorf("page 2: %v (total %d), want nothing of 2", ids, total)
	}
	today := time.Now().UTC().Format(time.DateOnly)
	if ids, _ := list("/v1/customers?created_from=" + today + "&created_to=" + today); len(ids) != 2 {
		t.Errorf("created today: %v, want both", ids)
	}
	if ids, _ := list("/v1/customers?created_to=2000-01-01"); len(ids) != 0 {
		t.Errorf("created before 2000: %v, want none", ids)
	}
}

func TestReadRoutesWithoutReader(t *testing.T) {
	f := newReadFixture(t, false)
	id := f.register(readAToken, "Ada", "Lovelace")
	for _, path := range []string{"/v1/customers", "/v1/audit", "/v1/customers/" + id + "/history"} {
		resp, body := f.get(readAToken, path)
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("%s: status %d, want 503: %s", path, resp.StatusCode, body)
			continue
		}
		if p := decodeProblem(t, resp, body); p.Detail != "read models are not configured" {
			t.Errorf("%s: detail %q", path, p.Detail)
		}
	}
	// The profile falls back to the command side, which needs no read model.
	if resp, body := f.get(readAToken, "/v1/customers/"+id); resp.StatusCode != http.StatusOK || resp.Header.Get("ETag") != `"0"` {
		t.Errorf("GET customer without reader: %d %q %s", resp.StatusCode, resp.Header.Get("ETag"), body)
	}
}

func TestCompanyIsolation(t *testing.T) {
	f := newReadFixture(t, true)
	a := f.register(readAToken, "Ada", "Lovelace")
	b := f.register(readBToken, "Bea", "Babbage")
	f.fold()

	listIDs := func(token, path string) []string {
		t.Helper()
		resp, body := f.get(token, path)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
		}
		var page struct {
			Total int
			Items []struct {
				ID         string `json:"id"`
				CustomerID string `json:"customer_id"`
				CompanyID  string `json:"company_id"`
			}
		}
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatal(err)
		}
		if page.Total != len(page.Items) {
			t.Errorf("%s: total %d but %d items", path, page.Total, len(page.Items))
		}
		var ids []string
		for _, it := range page.Items {
			ids = append(ids, it.ID+it.CustomerID)
		}
		return ids
	}
	for _, tc := range []struct {
		token, own, other string
	}{{readAToken, a, b}, {readBToken, b, a}} {
		if got := listIDs(tc.token, "/v1/customers"); !slices.Equal(got, []string{tc.own}) {
			t.Errorf("list: %v, want only %s", got, tc.own)
		}
		if got := listIDs(tc.token, "/v1/customers?q="+url.QueryEscape(tc.other)); len(got) != 0 {
			t.Errorf("list searching the other company's id: %v, want nothing", got)
		}
		for _, e := range listIDs(tc.token, "/v1/audit") {
			if e != tc.own {
				t.Errorf("audit shows customer %s, want only %s", e, tc.own)
			}
		}
		if got := listIDs(tc.token, "/v1/audit?customer="+tc.other); len(got) != 0 {
			t.Errorf("audit filtered to the other company's customer: %v, want nothing", got)
		}
		if resp, body := f.get(tc.token, "/v1/customers/"+tc.own); resp.StatusCode != http.StatusOK || resp.Header.Get("ETag") != `"0"` {
			t.Errorf("own profile: %d %q %s", resp.StatusCode, resp.Header.Get("ETag"), body)
		}
		for _, path := range []string{"/v1/customers/" + tc.other, "/v1/customers/" + tc.other + "?min_revision=0", "/v1/customers/" + tc.other + "/history"} {
			resp, body := f.get(tc.token, path)
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("%s: %d, want 404: %s", path, resp.StatusCode, body)
				continue
			}
			if p := decodeProblem(t, resp, body); p.Type != problemBase+"customer-not-found" {
				t.Errorf("%s: problem %s", path, body)
			}
		}
		if resp, body := f.get(tc.token, "/v1/customers/"+tc.own+"/history"); resp.StatusCode != http.StatusOK {
			t.Errorf("own history: %d %s", resp.StatusCode, body)
		}
		for _, path := range []string{"/v1/customers?company=company-a", "/v1/customers?company=company-b", "/v1/audit?company=company-b"} {
			resp, body := f.get(tc.token, path)
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s: %d, want 403: %s", path, resp.StatusCode, body)
				continue
			}
			if p := decodeProblem(t, resp, body); p.Field != "company" || p.Type != problemBase+"forbidden" {
				t.Errorf("%s: problem %s, want forbidden naming company", path, body)
			}
		}
	}
	// The superuser sees both companies, and may filter by company.
	if got := listIDs(readRootToken, "/v1/customers?sort=name"); !slices.Equal(got, []string{a, b}) {
		t.Errorf("superuser list: %v, want both", got)
	}
	if got := listIDs(readRootToken, "/v1/customers?company=company-b"); !slices.Equal(got, []string{b}) {
		t.Errorf("superuser company filter: %v, want %s", got, b)
	}
	if got := listIDs(readRootToken, "/v1/audit?company=company-b"); !slices.Equal(got, []string{b}) {
		t.Errorf("superuser audit company filter: %v, want %s", got, b)
	}
	if resp, body := f.get(readRootToken, "/v1/customers/"+b); resp.StatusCode != http.StatusOK {
		t.Errorf("superuser profile of company B: %d %s", resp.StatusCode, body)
	}
	// A customer-kind caller may read a profile but not company-wide lists.
	for _, path := range []string{"/v1/customers", "/v1/audit"} {
		if resp, body := f.get(readCustToken, path); resp.StatusCode != http.StatusForbidden {
			t.Errorf("customer caller %s: %d, want 403: %s", path, resp.StatusCode, body)
		}
	}
}

// TestProfileFollowsPermissions: the profile, the history and the replayed
// state show documents only to callers with view_document (superusers have
// every permission), and no internal state reason to a customer-kind caller.
func TestProfileFollowsPermissions(t *testing.T) {
	f := newReadFixture(t, true)
	path := "/v1/customers/" + f.register(readAToken, "Ada", "Lovelace")
	for _, c := range []struct{ path, body string }{
		{path + "/documents", `{"document_id":"passport-1","type":"PASSPORT","number":"P1234567","country":"GB","expiry_date":"2035-01-31"}`},
		{path + "/status", `{"status":"REJECTED","reason":"document appears to be tampered with"}`},
	} {
		if resp, body := f.send("POST", readAToken, c.path, c.body); resp.StatusCode != http.StatusOK {
			t.Fatalf("POST %s: %d %s", c.path, resp.StatusCode, body)
		}
	}
	f.fold()
	for _, tt := range []struct {
		name, token       string
		documents, reason bool
	}{
		{"operator", readAToken, false, true},
		{"operator with view_document", readDocsToken, true, true},
		{"superuser", readRootToken, true, true},
		{"customer", readCustToken, false, false},
	} {
		resp, body := f.get(tt.token, path)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", tt.name, resp.StatusCode, body)
		}
		type section struct {
			Name    string `json:"name"`
			Visible bool   `json:"visible"`
		}
		var p struct {
			Customer struct {
				Documents   []json.RawMessage `json:"documents"`
				StateReason string            `json:"state_reason"`
			} `json:"customer"`
			Sections []section `json:"sections"`
		}
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatal(err)
		}
		shown := slices.Contains(p.Sections, section{projections.SectionDocuments, true})
		if got := len(p.Customer.Documents) == 1; got != tt.documents || shown != tt.documents {
			t.Errorf("%s: documents %v, documents section visible %v; want both %v", tt.name, got, shown, tt.documents)
		}
		if got := p.Customer.StateReason != ""; got != tt.reason {
			t.Errorf("%s: state reason shown %v, want %v", tt.name, got, tt.reason)
		}
		// The history (what each event changed) and the state replayed from
		// the log follow the same rules.
		for _, route := range []string{"/history", "/state", "/state?revision=1"} {
			resp, body = f.get(tt.token, path+route)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s: %s: %d %s", tt.name, route, resp.StatusCode, body)
			}
			if got := strings.Contains(string(body), "P1234567"); got != tt.documents {
				t.Errorf("%s: %s shows the document number: %v, want %v", tt.name, route, got, tt.documents)
			}
			if got := strings.Contains(string(body), "tampered"); got != tt.reason && route != "/state?revision=1" {
				t.Errorf("%s: %s shows the state reason: %v, want %v", tt.name, route, got, tt.reason)
			}
		}
	}
}

func TestMinRevision(t *testing.T) {
	f := newReadFixture(t, true)
	id := f.register(readAToken, "Ada", "Lovelace")
	f.fold()
	if resp, body := f.get(readAToken, "/v1/customers/"+id+"?min_revision=0"); resp.StatusCode != http.StatusOK {
		t.Fatalf("min_revision=0: %d %s", resp.StatusCode, body)
	}
	start := time.Now()
	resp, body := f.get(readAToken, "/v1/customers/"+id+"?min_revision=5")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("min_revision=5: %d, want 503: %s", resp.StatusCode, body)
	}
	if waited := time.Since(start); waited < 100*time.Millisecond {
		t.Errorf("answered after %s, before the reader's MaxWait", waited)
	}
	if ra := resp.Header.Get("Retry-After"); ra != "1" {
		t.Errorf("Retry-After %q, want 1", ra)
	}
	p := decodeProblem(t, resp, body)
	if !strings.HasSuffix(p.Type, "/revision-not-reached") || !strings.Contains(p.Detail, "revision 5") || !strings.Contains(p.Detail, "revision 0") {
		t.Errorf("problem %s, want revision-not-reached naming revisions 5 and 0", body)
	}
	// An unknown customer with min_revision waits too: it may be about to
	// appear in the read model.
	resp, body = f.get(readAToken, "/v1/customers/00000000-0000-4000-8000-000000000000?min_revision=0")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" {
		t.Errorf("unknown customer with min_revision: %d %s", resp.StatusCode, body)
	}
}

// FuzzListQuery checks that any query string either parses or is refused
// with problems that each name a parameter.
func FuzzListQuery(f *testing.F) {
	for _, seed := range []string{
		"", "q=ada", "status=CREATED&status=APPROVED", "per_page=25", "page=0", "sort=-name", "age_min=40&age_max=30",
		"created_from=2024-01-01&created_to=2023-12-31", "tag=%zz", "=x", "&&&", "a=b=c", "q=%E2%82%AC", "page=99999999999999999999",
		"verification_level=5&verification_level=0", "expiry_from=2030-02-30",
	} {
		f.Add(seed)
	}
	statuses := lifecycleStatuses(enginetest.Lifecycles(f))
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := parseListQuery(raw, statuses)
		if err != nil {
			p := problemFor(err)
			if p.Status != http.StatusUnprocessableEntity || p.Field == "" || len(p.Errors) == 0 {
				t.Fatalf("%q: problem %+v, want 422 naming a parameter", raw, p)
			}
			for _, e := range p.Errors {
				if e.Field == "" {
					t.Fatalf("%q: an error names no parameter: %+v", raw, p)
				}
			}
			return
		}
		if q.Page < 1 || q.Page > projections.MaxPage || !slices.Contains(projections.PageSizes, q.PerPage) || !slices.Contains(projections.SortKeys, q.Sort) {
			t.Fatalf("%q: accepted an out-of-range query %+v", raw, q)
		}
		if q.AgeMin != nil && q.AgeMax != nil && *q.AgeMin > *q.AgeMax {
			t.Fatalf("%q: accepted reversed ages", raw)
		}
		if !q.Created.From.IsZero() && !q.Created.To.IsZero() && !q.Created.From.Before(q.Created.To) {
			t.Fatalf("%q: accepted an empty created range", raw)
		}
	})
}
