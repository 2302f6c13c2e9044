package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kycengine/kyc/adapters/eventstore/kurrentdb/kurrenttest"
)

// TestServeOnKurrentDB runs kyc serve with its events in KurrentDB (the
// in-process server, reached through the real client over gRPC) and its
// read models in the embedded file: commands over HTTP, the list projection
// read back, a restart that resumes from the stored checkpoint, and the CLI
// tools on the same store.
func TestServeOnKurrentDB(t *testing.T) {
	kdb := kurrenttest.Start(t)
	dir := t.TempDir()
	keys, _ := writeSuperKeys(t, dir)
	data := filepath.Join(dir, "data")
	s := startServer(t, data, keys, "--events", kdb.URL())

	register := func(s *server) string {
		t.Helper()
		code, body, err := s.call("POST", "/v1/customers", e2eRegistration)
		if err != nil || code != 201 {
			t.Fatalf("register: %d %v %v", code, body, err)
		}
		return body["id"].(string)
	}
	var ids []string
	for i := range 6 {
		id := register(s)
		ids = append(ids, id)
		if i%2 == 1 {
			continue
		}
		for _, step := range []struct{ method, path, body string }{
			{"POST", "/status", `{"status":"PENDING_REVIEW"}`},
			{"PUT", "/risk", `{"risk":"HIGH"}`},
		} {
			if code, body, err := s.call(step.method, "/v1/customers/"+id+step.path, step.body); err != nil || code != 200 {
				t.Fatalf("%s %s: %d %v %v", step.method, step.path, code, body, err)
			}
		}
	}
	if kdb.Appends() < int64(len(ids)) {
		t.Fatalf("the KurrentDB server served %d appends for %d registrations", kdb.Appends(), len(ids))
	}
	s.waitProjections(t)
	type row struct {
		ID     string `json:"id"`
		Status string `json:"status"`
		Risk   string `json:"risk"`
	}
	var list struct {
		Total int   `json:"total"`
		Items []row `json:"items"`
	}
	if code, err := s.superGet("/v1/customers?status=PENDING_REVIEW&per_page=100", &list); err != nil || code != 200 {
		t.Fatalf("list: %d %v", code, err)
	}
	pending := map[string]bool{}
	for _, r := range list.Items {
		if r.Risk != "HIGH" {
			t.Fatalf("listed customer %s has risk %q, want HIGH", r.ID, r.Risk)
		}
		pending[r.ID] = true
	}
	for i, id := range ids {
		if i%2 == 0 && !pending[id] {
			t.Fatalf("customer %s moved to PENDING_REVIEW is not in the filtered list %+v", id, list.Items)
		}
		if i%2 == 1 && pending[id] {
			t.Fatalf("customer %s was never moved but is listed as pending", id)
		}
	}

	// The projections resume from their KurrentDB positions after a restart.
	s.stop()
	s = startServer(t, data, keys, "--events", kdb.URL())
	late := register(s)
	code, body, err := s.call("GET", "/v1/customers/"+late+"?min_revision=0", "")
	if err != nil || code != 200 {
		t.Fatalf("profile of a customer registered after the restart: %d %v %v", code, body, err)
	}
	s.waitProjections(t)
	var all struct {
		Total int   `json:"total"`
		Items []row `json:"items"`
	}
	if code, err := s.superGet("/v1/customers?per_page=100", &all); err != nil || code != 200 {
		t.Fatalf("list: %d %v", code, err)
	}
	if all.Total != len(ids)+1 {
		t.Fatalf("list holds %d customers after the restart, want %d", all.Total, len(ids)+1)
	}
	customers, audit := s.readModelSnapshot(t)
	s.stop()

	// The CLI reads the same store: the chains verify, a customer replays,
	// and a rebuild from the start of the KurrentDB log gives the same rows.
	if out, code := runKyc(t, "verify", "--data", data, "--events", kdb.URL()); code != 0 {
		t.Fatalf("kyc verify: exit %d\n%s", code, out)
	}
	out, code := runKyc(t, "replay", ids[2], "--data", data, "--events", kdb.URL())
	if code != 0 {
		t.Fatalf("kyc replay: exit %d\n%s", code, out)
	}
	var replayed map[string]any
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &replayed); err != nil {
		t.Fatalf("kyc replay printed %q: %v", out, err)
	}
	if fmt.Sprint(replayed["status"]) != "PENDING_REVIEW" {
		t.Fatalf("replayed status %v, want PENDING_REVIEW", replayed["status"])
	}
	for _, name := range []string{"customers", "audit"} {
		if out, code := runKyc(t, "projections", "rebuild", name, "--data", data, "--events", kdb.URL()); code != 0 {
			t.Fatalf("kyc projections rebuild %s: exit %d\n%s", name, code, out)
		}
	}
	s = startServer(t, data, keys, "--events", kdb.URL())
	s.waitProjections(t)
	c2, a2 := s.readModelSnapshot(t)
	sameRows(t, "customer list after a rebuild from KurrentDB", customers, c2)
	sameRows(t, "audit log after a rebuild from KurrentDB", audit, a2)
}
