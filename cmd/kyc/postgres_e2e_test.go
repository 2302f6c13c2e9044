package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kycengine/kyc/adapters/pgtest"
)

// runsHere lists the projections a server runs.
func (s *server) runsHere(t *testing.T) map[string]bool {
	t.Helper()
	var out struct {
		Items []struct {
			Name     string `json:"name"`
			RunsHere bool   `json:"runs_here"`
		} `json:"items"`
	}
	code, err := s.superGet("/v1/projections", &out)
	if err != nil || code != 200 {
		t.Fatalf("GET /v1/projections: %d %v", code, err)
	}
	held := map[string]bool{}
	for _, it := range out.Items {
		if it.RunsHere {
			held[it.Name] = true
		}
	}
	return held
}

// holders waits until each projection runs in exactly one of servers and
// says which.
func holders(t *testing.T, servers []*server) map[string]*server {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out := map[string]*server{}
		twice := false
		for _, s := range servers {
			for name := range s.runsHere(t) {
				if out[name] != nil {
					twice = true
				}
				out[name] = s
			}
		}
		if twice {
			t.Fatalf("a projection runs in two processes at once")
		}
		if len(out) == 2 {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("projections without a running process: %v", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestThreeServersOnOnePostgres runs three kyc serve processes on one
// PostgreSQL database under a write load: some writers work on customers of
// their own, others all add notes to a few shared customers through
// different processes (optimistic concurrency across processes). The process
// that runs the customers projection is killed with SIGKILL mid-load. No
// acknowledged event may be lost, the projection's lease must move to a
// live process, and each read model must end equal to a full rebuild.
func TestThreeServersOnOnePostgres(t *testing.T) {
	url := pgtest.NewDatabase(t)
	dir := t.TempDir()
	keys, tokenFile := writeSuperKeys(t, dir)
	var servers []*server
	for i := range 3 {
		servers = append(servers, startServer(t, filepath.Join(dir, fmt.Sprintf("data%d", i)), keys, "--events", url))
	}
	victim := holders(t, servers)["customers"]

	shared := make([]string, 3)
	for i := range shared {
		code, body, err := servers[0].call("POST", "/v1/customers", e2eRegistration)
		if err != nil || code != 201 {
			t.Fatalf("register: %d %v %v", code, body, err)
		}
		shared[i] = body["id"].(string)
	}

	var (
		mu          sync.Mutex
		acked       = map[string][]string{} // customer -> acknowledged event ids
		sharedNotes atomic.Int64
		notesOn     = map[string]int{} // shared customer -> acknowledged notes
		notesSent   = map[string]int{} // shared customer -> notes requested
		wg          sync.WaitGroup
	)
	record := func(customer string, body map[string]any) {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range body["events"].([]any) {
			acked[customer] = append(acked[customer], e.(map[string]any)["id"].(string))
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	for w := range 12 {
		s := servers[w%3]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ctx.Err() == nil; n++ {
				if w%4 == 3 {
					id := shared[n%len(shared)]
					mu.Lock()
					notesSent[id]++
					mu.Unlock()
					code, body, err := s.call("POST", "/v1/customers/"+id+"/notes", fmt.Sprintf(`{"text":"note %d from writer %d"}`, n, w))
					switch {
					case err != nil:
						return // this writer's server was killed
					case code == 200:
						sharedNotes.Add(1)
						record(id, body)
						mu.Lock()
						notesOn[id]++
						mu.Unlock()
					case code != 409:
						t.Errorf("shared note: %d %v", code, body)
						return
					}
					continue
				}
				code, body, err := s.call("POST", "/v1/customers", e2eRegistration)
				if err != nil || code != 201 {
					return
				}
				id := body["id"].(string)
				record(id, body)
				for _, step := range []struct{ method, path, body string }{
					{"POST", "/status", `{"status":"PENDING_REVIEW"}`},
					{"PUT", "/risk", `{"risk":"HIGH"}`},
					{"POST", "/tags", `{"add":["vip"]}`},
				} {
					code, body, err := s.call(step.method, "/v1/customers/"+id+step.path, step.body)
					if err != nil {
						return
					}
					if code != 200 {
						t.Errorf("%s: %d %v", step.path, code, body)
						return
					}
					record(id, body)
				}
			}
		}()
	}
	time.Sleep(2 * time.Second)
	victim.kill()
	var live []*server
	for _, s := range servers {
		if s != victim {
			live = append(live, s)
		}
	}
	time.Sleep(1500 * time.Millisecond)
	cancel()
	wg.Wait()

	moved := holders(t, live)
	mu.Lock()
	total := 0
	for _, ids := range acked {
		total += len(ids)
	}
	mu.Unlock()
	if total < 200 || sharedNotes.Load() < 10 {
		t.Fatalf("only %d events (%d shared notes) acknowledged; the load did not run", total, sharedNotes.Load())
	}
	for customer, ids := range acked {
		stored := eventIDs(t, live[0], customer)
		for _, id := range ids {
			if !stored[id] {
				t.Fatalf("acknowledged event %s of customer %s is missing", id, customer)
			}
		}
	}
	live[0].waitProjections(t)
	customers, audit := live[0].readModelSnapshot(t)
	if len(customers) < len(acked) {
		t.Fatalf("%d customers in the list, %d have acknowledged events", len(customers), len(acked))
	}
	// The other live process reads the same rows.
	c2, a2 := live[1].readModelSnapshot(t)
	sameRows(t, "customer list seen by two processes", customers, c2)
	sameRows(t, "audit log seen by two processes", audit, a2)
	// Notes added to the same customers through three processes at once:
	// every acknowledged one is in the profile, none twice. A note the
	// killed process appended but never answered for may be there too.
	for _, id := range shared {
		var profile struct {
			Customer struct {
				Notes []struct {
					ID string `json:"id"`
				} `json:"notes"`
			} `json:"customer"`
		}
		if code, err := live[1].superGet("/v1/customers/"+id, &profile); err != nil || code != 200 {
			t.Fatalf("profile %s: %d %v", id, code, err)
		}
		seen := map[string]bool{}
		for _, n := range profile.Customer.Notes {
			if seen[n.ID] {
				t.Fatalf("shared customer %s: note %s twice in the profile", id, n.ID)
			}
			seen[n.ID] = true
		}
		if got := len(profile.Customer.Notes); got < notesOn[id] || got > notesSent[id] {
			t.Fatalf("shared customer %s: %d notes in the profile, %d acknowledged, %d requested", id, got, notesOn[id], notesSent[id])
		}
	}
	for _, name := range []string{"customers", "audit"} {
		out, code := runKyc(t, "projections", "rebuild", name, "--server", moved[name].base, "--token-file", tokenFile)
		if code != 0 || !strings.Contains(out, "rebuilt "+name) {
			t.Fatalf("kyc projections rebuild %s: exit %d\n%s", name, code, out)
		}
	}
	live[0].waitProjections(t)
	rebuiltCustomers, rebuiltAudit := live[0].readModelSnapshot(t)
	sameRows(t, "customer list after SIGKILL against a full rebuild", customers, rebuiltCustomers)
	sameRows(t, "audit log after SIGKILL against a full rebuild", audit, rebuiltAudit)

	// The tools take the same --events flag and work beside the servers.
	if out, code := runKyc(t, "verify", "--events", url); code != 0 || !strings.HasPrefix(out, "OK:") {
		t.Fatalf("kyc verify --events: exit %d\n%s", code, out)
	}
	if out, code := runKyc(t, "migrate", "--events", url); code != 0 || !strings.Contains(out, "migrated read models") || !strings.Contains(out, "migrated delivery state") {
		t.Fatalf("kyc migrate --events: exit %d\n%s", code, out)
	}
	if out, code := runKyc(t, "projections", "status", "--events", url); code != 0 || !strings.Contains(out, "customers") || !strings.Contains(out, "audit") {
		t.Fatalf("kyc projections status --events: exit %d\n%s", code, out)
	}
	if out, code := runKyc(t, "projections", "rebuild", "customers", "--events", url); code == 0 || !strings.Contains(out, "--server") {
		t.Fatalf("a local rebuild beside servers that run the projection: exit %d\n%s", code, out)
	}
	t.Logf("%d acknowledged events (%d notes on shared customers) survived; %d customers and %d audit entries equal a rebuild; the customers lease moved from the killed process",
		total, sharedNotes.Load(), len(customers), len(audit))
}
