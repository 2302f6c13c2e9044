package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/kycengine/kyc/adapters/delivery/live"
	"github.com/kycengine/kyc/domain"
)

// liveSocket builds the live socket over the test engine's log, its hub
// running for the test.
func liveSocket(t *testing.T, log live.EventSource) (*live.Tokens, *live.Socket) {
	t.Helper()
	tokens, err := live.NewTokens([]byte("a-test-secret-of-at-least-32-bytes!!"), time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	hub, err := live.NewHub(log, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = hub.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	socket, err := live.NewSocket(hub, tokens, live.SocketOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tokens, socket
}

// TestLiveSocketThroughTheAPI: a token from the API opens the socket through
// the API's own middleware, and a status change of that customer arrives.
func TestLiveSocketThroughTheAPI(t *testing.T) {
	srv := httptest.NewServer(newTestServer(t).Handler())
	defer srv.Close()
	call := func(method, path, body string) map[string]any {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+aliceToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		if resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %d %v", method, path, resp.StatusCode, out)
		}
		return out
	}
	id := call("POST", "/v1/customers", `{"name":{"first":"Ada","last":"Lovelace"},"nationality":"GB","birth_date":"1990-01-02","emails":["ada@example.com"]}`)["id"].(string)
	token := call("POST", "/v1/customers/"+id+"/socket-token", "")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+token["url"].(string), nil)
	if err != nil {
		t.Fatalf("dial the socket through the API: %v", err)
	}
	defer conn.CloseNow()
	read := func() map[string]any {
		t.Helper()
		_, b, err := conn.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	if m := read(); m["type"] != live.KindSubscribed || m["customer_id"] != id {
		t.Fatalf("first message %v", m)
	}
	call("POST", "/v1/customers/"+id+"/status", `{"status":"PENDING_REVIEW"}`)
	if m := read(); m["type"] != live.KindStatusChanged || m["event_type"] != (domain.StatusChanged{}).EventType() {
		t.Fatalf("after a status change: %v", m)
	}
}
