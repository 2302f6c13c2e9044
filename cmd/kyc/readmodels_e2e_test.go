package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const e2eSuperToken = "e2e-superuser-token-0123456789"

// writeSuperKeys writes a keys file with an operator of acme and a superuser.
func writeSuperKeys(t *testing.T, dir string) (keys, tokenFile string) {
	t.Helper()
	keys = writeKeys(t, dir)
	b, err := os.ReadFile(keys)
	if err != nil {
		t.Fatal(err)
	}
	withSuper := strings.TrimSuffix(strings.TrimSpace(string(b)), "]") +
		`, {"token":"` + e2eSuperToken + `","actor":"root","roles":["superuser"],"company":"acme","kind":"operator"}]`
	if err := os.WriteFile(keys, []byte(withSuper), 0o600); err != nil {
		t.Fatal(err)
	}
	tokenFile = filepath.Join(dir, "super.token")
	if err := os.WriteFile(tokenFile, []byte(e2eSuperToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return keys, tokenFile
}

// superCall is a GET with the superuser's token: the demo customers belong
// to several companies.
func (s *server) superCall(path string) (int, map[string]any, error) {
	var out map[string]any
	code, err := s.superGet(path, &out)
	return code, out, err
}

func (s *server) superGet(path string, out any) (int, error) {
	req, err := http.NewRequest("GET", s.base+path, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+e2eSuperToken)
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode == 200 && out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return 0, fmt.Errorf("%s: %w: %s", path, err, b)
		}
	}
	return resp.StatusCode, nil
}

type projectionStatus struct {
	Name       string          `json:"name"`
	Generation int64           `json:"generation"`
	LagEvents  int64           `json:"lag_events"`
	Error      string          `json:"error"`
	Rebuild    json.RawMessage `json:"rebuild"`
}

// waitProjections waits until every projection has applied the whole log.
func (s *server) waitProjections(t *testing.T) []projectionStatus {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var out struct {
			Items []projectionStatus `json:"items"`
		}
		code, err := s.superGet("/v1/projections", &out)
		if err != nil || code != 200 {
			t.Fatalf("GET /v1/projections: %d %v", code, err)
		}
		done := len(out.Items) == 2
		for _, st := range out.Items {
			if st.LagEvents != 0 || st.Error != "" || len(st.Rebuild) > 0 && string(st.Rebuild) != "null" {
				done = false
			}
		}
		if done {
			return out.Items
		}
		if time.Now().After(deadline) {
			t.Fatalf("projections did not catch up: %+v\n%s", out.Items, s.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readModelSnapshot pages through the whole list and the whole audit log.
func (s *server) readModelSnapshot(t *testing.T) (customers, audit []string) {
	t.Helper()
	pages := func(path string) []string {
		var rows []string
		for page := 1; ; page++ {
			var out struct {
				Total int               `json:"total"`
				Items []json.RawMessage `json:"items"`
			}
			p := fmt.Sprintf("%s&page=%d", path, page)
			code, err := s.superGet(p, &out)
			if err != nil || code != 200 {
				t.Fatalf("GET %s: %d %v", p, code, err)
			}
			for _, it := range out.Items {
				rows = append(rows, string(it))
			}
			if len(out.Items) < 100 {
				if len(rows) != out.Total {
					t.Fatalf("GET %s: %d rows over all pages, total says %d", path, len(rows), out.Total)
				}
				return rows
			}
		}
	}
	return pages("/v1/customers?per_page=100&sort=created_at"), pages("/v1/audit?per_page=100")
}

func sameRows(t *testing.T, what string, a, b []string) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%s: %d rows, against %d", what, len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("%s: row %d differs:\n%s\n%s", what, i, a[i], b[i])
		}
	}
}

// TestKillDuringProjectionReadModelsEqualRebuild kills kyc serve with SIGKILL
// while writers keep the projections busy, restarts it, lets the projections
// catch up from their checkpoints, and then rebuilds both from the start of
// the log through the CLI: the rows must not change.
func TestKillDuringProjectionReadModelsEqualRebuild(t *testing.T) {
	dir := t.TempDir()
	keys, tokenFile := writeSuperKeys(t, dir)
	data := filepath.Join(dir, "data")
	s := startServer(t, data, keys)

	var (
		registered atomic.Int64
		wg         sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(context.Background())
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				code, body, err := s.call("POST", "/v1/customers", e2eRegistration)
				if err != nil || code != 201 {
					return
				}
				registered.Add(1)
				id := body["id"].(string)
				for _, step := range []struct{ method, path, body string }{
					{"POST", "/status", `{"status":"PENDING_REVIEW"}`},
					{"PUT", "/risk", `{"risk":"HIGH"}`},
					{"POST", "/tags", `{"add":["vip"]}`},
				} {
					if code, _, err := s.call(step.method, "/v1/customers/"+id+step.path, step.body); err != nil || code != 200 {
						return
					}
				}
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	s.kill()
	cancel()
	wg.Wait()
	if registered.Load() < 20 {
		t.Fatalf("only %d customers registered before the kill; the load did not run", registered.Load())
	}

	s = startServer(t, data, keys)
	s.waitProjections(t)
	customers, audit := s.readModelSnapshot(t)
	if int64(len(customers)) < registered.Load() {
		t.Fatalf("%d customers in the list, %d registrations were acknowledged", len(customers), registered.Load())
	}
	for _, name := range []string{"customers", "audit"} {
		out, code := runKyc(t, "projections", "rebuild", name, "--server", s.base, "--token-file", tokenFile)
		if code != 0 || !strings.Contains(out, "rebuilt "+name) {
			t.Fatalf("kyc projections rebuild %s: exit %d\n%s", name, code, out)
		}
	}
	s.waitProjections(t)
	rebuiltCustomers, rebuiltAudit := s.readModelSnapshot(t)
	sameRows(t, "customer list after the crash against a full rebuild", customers, rebuiltCustomers)
	sameRows(t, "audit log after the crash against a full rebuild", audit, rebuiltAudit)
	t.Logf("%d customers and %d audit entries equal a full rebuild after SIGKILL", len(customers), len(audit))
}

// TestRebuildWhileListing rebuilds the customer list through the CLI while a
// client loops over the list endpoint: no request may fail or come back
// empty. It also checks the CLI's status report beside the running server.
func TestRebuildWhileListing(t *testing.T) {
	dir := t.TempDir()
	keys, tokenFile := writeSuperKeys(t, dir)
	data := filepath.Join(dir, "data")
	const n = 3000
	s := startServer(t, data, keys, "--demo", "--demo-customers", fmt.Sprint(n))
	deadline := time.Now().Add(90 * time.Second)
	for {
		var out struct {
			Total int `json:"total"`
		}
		if code, err := s.superGet("/v1/customers?per_page=20", &out); err == nil && code == 200 && out.Total == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the demo customers did not all reach the list:\n%s", s.logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.waitProjections(t)

	var (
		reads  atomic.Int64
		failed atomic.Value
		wg     sync.WaitGroup
	)
	stop := make(chan struct{})
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				code, body, err := s.superCall("/v1/customers?per_page=50")
				if err != nil || code != 200 {
					failed.Store(fmt.Sprintf("%d %v %v", code, body, err))
					return
				}
				items, _ := body["items"].([]any)
				if total, _ := body["total"].(float64); int(total) != n || len(items) != 50 {
					failed.Store(fmt.Sprintf("total %v, %d items", body["total"], len(items)))
					return
				}
				reads.Add(1)
			}
		}()
	}
	out, code := runKyc(t, "projections", "rebuild", "customers", "--server", s.base, "--token-file", tokenFile)
	close(stop)
	wg.Wait()
	if code != 0 || !strings.Contains(out, "events/s") || !strings.Contains(out, "rebuilt customers") {
		t.Fatalf("kyc projections rebuild: exit %d\n%s", code, out)
	}
	if f := failed.Load(); f != nil {
		t.Fatalf("a list request during the rebuild failed: %v", f)
	}
	if reads.Load() == 0 {
		t.Fatal("no list request ran during the rebuild")
	}

	status, code := runKyc(t, "projections", "status", "--data", data)
	if code != 0 || !strings.Contains(status, "customers") || !strings.Contains(status, "audit") {
		t.Fatalf("kyc projections status: exit %d\n%s", code, status)
	}
	out, code = runKyc(t, "projections", "rebuild", "customers", "--data", data)
	if code == 0 || !strings.Contains(out, "--server") {
		t.Fatalf("a local rebuild beside a running server must be refused with a hint: exit %d\n%s", code, out)
	}
	s.stop()
	out, code = runKyc(t, "projections", "rebuild", "audit", "--data", data)
	if code != 0 || !strings.Contains(out, "rebuilt audit") {
		t.Fatalf("local rebuild with the server stopped: exit %d\n%s", code, out)
	}
	// A local rebuild runs the named projection alone: with the read models
	// gone, rebuilding customers leaves audit unbuilt for the next start
	// instead of half caught up beside it, and builds one generation of
	// customers, not the engine's first one and a rebuild beside it.
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(filepath.Join(data, readFile+suffix)); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	out, code = runKyc(t, "projections", "rebuild", "customers", "--data", data)
	if code != 0 || !strings.Contains(out, "rebuilt customers") || !strings.Contains(out, "reads now use generation 1\n") {
		t.Fatalf("local rebuild on new read models: exit %d, want generation 1\n%s", code, out)
	}
	status, code = runKyc(t, "projections", "status", "--json", "--data", data)
	var sts []struct {
		Name       string `json:"name"`
		Generation int    `json:"generation"`
	}
	if err := json.Unmarshal([]byte(status), &sts); code != 0 || err != nil {
		t.Fatalf("kyc projections status --json: exit %d, %v\n%s", code, err, status)
	}
	built := map[string]int{}
	for _, st := range sts {
		built[st.Name] = st.Generation
	}
	if built["customers"] == 0 || built["audit"] != 0 {
		t.Fatalf("after rebuilding customers alone, generations %v: want customers built and audit not\n%s", built, status)
	}
	t.Logf("%d list requests during the rebuild; status:\n%s", reads.Load(), status)
}
