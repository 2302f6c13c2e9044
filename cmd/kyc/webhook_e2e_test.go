package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// TestWebhookThroughServe: an endpoint registered over the API of the real
// binary receives a customer's status change, signed so that an
// independent Standard Webhooks verifier accepts it.
func TestWebhookThroughServe(t *testing.T) {
	type request struct {
		header http.Header
		body   []byte
	}
	var (
		mu       sync.Mutex
		requests []request
		calls    int
	)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 1 {
			// The first attempt fails; the retry must bring it.
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		requests = append(requests, request{header: r.Header.Clone(), body: body})
		w.WriteHeader(http.StatusNoContent)
	}))
	defer receiver.Close()

	dir := t.TempDir()
	keys := writeKeys(t, dir)
	s := startServer(t, filepath.Join(dir, "data"), keys)
	code, hook, err := s.call("POST", "/v1/webhooks", fmt.Sprintf(`{"url":%q,"types":["StatusChanged"]}`, receiver.URL))
	if err != nil || code != 201 {
		t.Fatalf("register a webhook: %d %v %v", code, hook, err)
	}
	secret, _ := hook["secret"].(string)
	code, body, err := s.call("POST", "/v1/customers", e2eRegistration)
	if err != nil || code != 201 {
		t.Fatalf("register: %d %v %v", code, body, err)
	}
	id := body["id"].(string)
	if code, body, err := s.call("POST", "/v1/customers/"+id+"/status", `{"status":"PENDING_REVIEW"}`); err != nil || code != 200 {
		t.Fatalf("status: %d %v %v", code, body, err)
	}

	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(requests)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the receiver got no delivery in 30s\n%s", s.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	got := requests[0]
	mu.Unlock()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(got.body, got.header); err != nil {
		t.Fatalf("the Standard Webhooks verifier refuses the delivery: %v", err)
	}
	var ev struct {
		Type    string `json:"type"`
		Subject string `json:"subject"`
	}
	if err := json.Unmarshal(got.body, &ev); err != nil || ev.Type != "kyc.customer.StatusChanged" || ev.Subject != id {
		t.Fatalf("delivered %s (%v)", got.body, err)
	}
	tampered := append([]byte{}, got.body...)
	tampered[len(tampered)-2] ^= 1
	if err := wh.Verify(tampered, got.header); err == nil {
		t.Fatal("the verifier accepts a tampered body")
	}
	// The failed first attempt and the good one are both recorded. The
	// record is written once the receiver has answered, so it may follow
	// the request the receiver saw by a moment.
	endpoint, _ := hook["endpoint"].(map[string]any)
	var items []any
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		code, deliveries, err := s.call("GET", "/v1/webhooks/"+fmt.Sprint(endpoint["id"])+"/deliveries?status=delivered", "")
		if err != nil || code != 200 {
			t.Fatalf("deliveries: %d %v %v", code, deliveries, err)
		}
		items, _ = deliveries["items"].([]any)
		if len(items) > 1 {
			t.Fatalf("delivered deliveries %v, want one (the registration is filtered out by type)", deliveries)
		}
		if len(items) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no delivered delivery recorded 10s after the receiver got it: %v", deliveries)
		}
	}
	if n := items[0].(map[string]any)["attempts"]; fmt.Sprint(n) != "2" {
		t.Fatalf("the delivery took %v attempts, want 2", n)
	}
}
