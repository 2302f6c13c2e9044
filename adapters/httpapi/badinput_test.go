package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kycengine/kyc/adapters/enginetest"
	"github.com/kycengine/kyc/adapters/eventstore/memory"
	"github.com/kycengine/kyc/domain"
)

const badInputToken = "bad-input-token-0123456789"

func badInputServer(t testing.TB) (*httptest.Server, *memory.Store) {
	t.Helper()
	svc, store := enginetest.NewService(t)
	auth, err := NewAuthenticator([]Key{{Token: badInputToken, Actor: "alice", Roles: []string{"operator"}, Company: "acme"}})
	if err != nil {
		t.Fatal(err)
	}
	api, err := New(Config{Service: svc, Auth: auth})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	return srv, store
}

func badInputDo(t testing.TB, srv *httptest.Server, method, path, body string, headers map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+badInputToken)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

const validRegistration = `{"lifecycle":"kyc-review","name":{"first":"Ada","last":"Lovelace"},"id_card_number":"X1234567","nationality":"GB","birth_date":"1990-01-02","emails":["ada@example.com"],"phones":["+441234567890"],"address":{"country":"GB","city":"London","lines":["1 Main St"]}}`

func TestBadInputGetsProblemNamingTheField(t *testing.T) {
	srv, store := badInputServer(t)
	resp, body := badInputDo(t, srv, "POST", "/v1/customers", validRegistration, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("register: %d %s", resp.StatusCode, body)
	}
	var created struct{ ID string }
	_ = json.Unmarshal(body, &created)
	id := created.ID
	big := `{"text":"` + strings.Repeat("x", MaxBodyBytes) + `"}`
	tests := []struct {
		name, method, path, body string
		headers                  map[string]string
		status                   int
		field                    string
	}{
		{"malformed JSON", "POST", "/v1/customers", `{"name":`, nil, 400, "body"},
		{"not an object", "POST", "/v1/customers", `[1,2]`, nil, 400, "body"},
		{"trailing data", "POST", "/v1/customers", validRegistration + `{}`, nil, 400, "body"},
		{"empty body", "POST", "/v1/customers", ``, nil, 400, "body"},
		{"unknown field", "POST", "/v1/customers", `{"nam":{"first":"A","last":"B"}}`, nil, 400, "nam"},
		{"wrong type", "POST", "/v1/customers", `{"name":{"first":"A","last":"B"},"emails":"a@b.c"}`, nil, 400, "emails"},
		{"nested wrong type", "POST", "/v1/customers", `{"name":{"first":1,"last":"B"}}`, nil, 400, "name.first"},
		{"missing name", "POST", "/v1/customers", `{"nationality":"GB"}`, nil, 422, "name"},
		{"bad country", "POST", "/v1/customers", `{"name":{"first":"A","last":"B"},"nationality":"XX"}`, nil, 422, "nationality"},
		{"bad email", "POST", "/v1/customers", `{"name":{"first":"A","last":"B"},"emails":["not-an-email"]}`, nil, 422, "emails[0]"},
		{"bad birth date", "POST", "/v1/customers", `{"name":{"first":"A","last":"B"},"birth_date":"02/01/1990"}`, nil, 422, "birth_date"},
		{"unknown lifecycle", "POST", "/v1/customers", `{"lifecycle":"nope","name":{"first":"A","last":"B"}}`, nil, 422, "lifecycle"},
		{"body too large", "POST", "/v1/customers/" + id + "/notes", big, nil, 413, "body"},
		{"unknown status", "POST", "/v1/customers/" + id + "/status", `{"status":"HAPPY"}`, nil, 422, "status"},
		{"missing reason", "POST", "/v1/customers/" + id + "/status", `{"status":"REJECTED"}`, nil, 422, "reason"},
		{"short reason", "POST", "/v1/customers/" + id + "/status", `{"status":"REJECTED","reason":"too short"}`, nil, 422, "reason"},
		{"ten character reason", "POST", "/v1/customers/" + id + "/status", `{"status":"BLACKLISTED","reason":"0123456789"}`, nil, 422, "reason"},
		{"illegal transition", "POST", "/v1/customers/" + id + "/status", `{"status":"APPROVED"}`, nil, 409, "status"},
		{"unknown event", "POST", "/v1/customers/" + id + "/transitions/teleport", `{}`, nil, 422, "event"},
		{"bad customer id", "POST", "/v1/customers/not-a-uuid/status", `{"status":"INCOMPLETE"}`, nil, 404, "id"},
		{"bad risk", "PUT", "/v1/customers/" + id + "/risk", `{"risk":"EXTREME"}`, nil, 422, "risk"},
		{"missing risk", "PUT", "/v1/customers/" + id + "/risk", `{}`, nil, 422, "risk"},
		{"bad level", "PUT", "/v1/customers/" + id + "/verification-level", `{"level":9}`, nil, 422, "level"},
		{"level as string", "PUT", "/v1/customers/" + id + "/verification-level", `{"level":"2"}`, nil, 400, "level"},
		{"bad video status", "PUT", "/v1/customers/" + id + "/video-call-status", `{"status":"ON HOLD"}`, nil, 422, "status"},
		{"bad If-Match", "POST", "/v1/customers/" + id + "/notes", `{"text":"x"}`, map[string]string{"If-Match": "abc"}, 400, "If-Match"},
		{"stale If-Match", "POST", "/v1/customers/" + id + "/notes", `{"text":"x"}`, map[string]string{"If-Match": `"7"`}, 412, ""},
		{"bad idempotency key", "POST", "/v1/customers/" + id + "/notes", `{"text":"x"}`, map[string]string{"Idempotency-Key": "has space"}, 400, "Idempotency-Key"},
		{"body on bodyless route", "POST", "/v1/customers/" + id + "/review/start", `{"x":1}`, nil, 400, "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := store.ReadAll(context.Background(), domain.Start, 0)
			resp, body := badInputDo(t, srv, tt.method, tt.path, tt.body, tt.headers)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("content type %q", ct)
			}
			var p Problem
			if err := json.Unmarshal(body, &p); err != nil {
				t.Fatal(err)
			}
			if p.Status != tt.status || p.Title == "" || p.Type == "" {
				t.Fatalf("problem %+v", p)
			}
			if tt.field != "" && p.Field != tt.field {
				t.Fatalf("problem names field %q, want %q: %s", p.Field, tt.field, body)
			}
			after, _ := store.ReadAll(context.Background(), domain.Start, 0)
			if len(after) != len(before) {
				t.Fatalf("bad input appended %d events", len(after)-len(before))
			}
		})
	}
}

func TestIllegalTransitionListsAllowedStatusesOverHTTP(t *testing.T) {
	srv, _ := badInputServer(t)
	_, body := badInputDo(t, srv, "POST", "/v1/customers", validRegistration, nil)
	var created struct{ ID string }
	_ = json.Unmarshal(body, &created)
	resp, body := badInputDo(t, srv, "POST", "/v1/customers/"+created.ID+"/status", `{"status":"APPROVED"}`, nil)
	var p Problem
	_ = json.Unmarshal(body, &p)
	if resp.StatusCode != 409 || len(p.AllowedStatuses) == 0 || strings.Contains(strings.Join(p.AllowedStatuses, ","), "APPROVED") {
		t.Fatalf("409 problem should list the statuses allowed now: %s", body)
	}
}

func TestUnauthenticatedRequestsAreRefused(t *testing.T) {
	srv, _ := badInputServer(t)
	for _, auth := range []string{"", "Bearer wrong-token-000000000000", "Basic YWxpY2U6cHc=", "Bearer"} {
		req, _ := http.NewRequest("GET", srv.URL+"/v1/lifecycles", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" {
			t.Fatalf("Authorization %q: status %d", auth, resp.StatusCode)
		}
	}
	resp, err := srv.Client().Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("healthz: %d", resp.StatusCode)
	}
}

func TestActorAndCompanyGoIntoEveryEnvelope(t *testing.T) {
	srv, store := badInputServer(t)
	_, body := badInputDo(t, srv, "POST", "/v1/customers", validRegistration, map[string]string{"X-Correlation-ID": "corr-42"})
	var created struct{ ID string }
	_ = json.Unmarshal(body, &created)
	badInputDo(t, srv, "POST", "/v1/customers/"+created.ID+"/status", `{"status":"REJECTED","reason":"document appears forged"}`, nil)
	events, _ := store.ReadAll(context.Background(), domain.Start, 0)
	if len(events) != 2 {
		t.Fatalf("%d events", len(events))
	}
	for _, e := range events {
		if e.Actor.ID != "alice" || e.Actor.Company != "acme" || e.Actor.Kind != domain.ActorAPIKey || e.CausationID == "" || e.CorrelationID == "" {
			t.Fatalf("envelope %+v", e.EventData)
		}
	}
	if events[0].CorrelationID != "corr-42" {
		t.Fatalf("correlation id %q", events[0].CorrelationID)
	}
}

func FuzzDecodeJSON(f *testing.F) {
	for _, seed := range []string{validRegistration, `{}`, `{"name":`, `[]`, `null`, `{"emails":"x"}`, `{"a":1}{"b":2}`, "\xff\xfe", `{"name":{"first":"\u0000"}}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var reg registerRequest
		err := decodeJSON(body, &reg)
		if err == nil {
			// Whatever decodes must re-encode and decode to the same value:
			// the decoder must not accept what it cannot represent.
			again, merr := json.Marshal(reg)
			if merr != nil {
				t.Fatalf("accepted body does not re-encode: %v", merr)
			}
			var back registerRequest
			if derr := decodeJSON(again, &back); derr != nil {
				t.Fatalf("re-encoded body refused: %v", derr)
			}
			// Validation of anything the decoder accepts must not panic.
			cmd := reg.command()
			_ = cmd.Validate(time.Now())
			return
		}
		p := problemFor(err)
		if p.Status < 400 || p.Status >= 500 || p.Field == "" {
			t.Fatalf("decode error %v maps to %+v", err, p)
		}
	})
}

func FuzzHeaders(f *testing.F) {
	for _, seed := range []string{"", "*", `"3"`, `W/"12"`, "3", "abc", `"-1"`, "\x00", strings.Repeat("9", 40)} {
		f.Add(seed, seed)
	}
	f.Fuzz(func(t *testing.T, ifMatch, key string) {
		if rev, err := parseIfMatch(ifMatch); err != nil {
			if p := problemFor(err); p.Status != http.StatusBadRequest || p.Field != "If-Match" {
				t.Fatalf("If-Match %q: %+v", ifMatch, p)
			}
		} else if rev != nil && !strings.Contains(ifMatch, "0") && *rev == 0 {
			t.Fatalf("If-Match %q parsed as 0", ifMatch)
		}
		if got, err := parseIdempotencyKey(key); err == nil && got != key {
			t.Fatalf("Idempotency-Key %q became %q", key, got)
		} else if err != nil && problemFor(err).Field != "Idempotency-Key" {
			t.Fatalf("Idempotency-Key %q: %v", key, err)
		}
	})
}

// FuzzCommandBodies sends arbitrary bodies to a command route: the answer is
// a success or a 4xx problem, never a 5xx, and a refused body appends nothing.
func FuzzCommandBodies(f *testing.F) {
	for _, seed := range []string{`{"status":"REJECTED","reason":"document appears forged"}`, `{"status":"INCOMPLETE"}`, `{"status":1}`, `{"labels":[1]}`, `{}`, `{"status":"REJECTED","reason":"\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000"}`} {
		f.Add(seed)
	}
	srv, store := badInputServer(f)
	f.Fuzz(func(t *testing.T, body string) {
		_, created := badInputDo(t, srv, "POST", "/v1/customers", validRegistration, nil)
		var c struct{ ID string }
		_ = json.Unmarshal(created, &c)
		before, _ := store.ReadStream(context.Background(), domain.StreamName(c.ID), domain.Forwards, 0, 0)
		resp, out := badInputDo(t, srv, "POST", "/v1/customers/"+c.ID+"/status", body, nil)
		after, _ := store.ReadStream(context.Background(), domain.StreamName(c.ID), domain.Forwards, 0, 0)
		switch {
		case resp.StatusCode >= 500:
			t.Fatalf("body %q: %d %s", body, resp.StatusCode, out)
		case resp.StatusCode >= 400 && len(after) != len(before):
			t.Fatalf("refused body %q appended events", body)
		case resp.StatusCode < 300 && len(after) != len(before)+1:
			t.Fatalf("accepted body %q appended %d events", body, len(after)-len(before))
		}
	})
}

// FuzzKeysFile feeds arbitrary keys files to the loader and authenticator:
// they refuse or accept, never panic, and accepted keys authenticate.
func FuzzKeysFile(f *testing.F) {
	f.Add([]byte(`[{"token":"0123456789abcdef","actor":"a","roles":["operator"],"company":"c"}]`))
	f.Add([]byte(`[{"token":"short","actor":"a","company":"c"}]`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`[{"token":"0123456789abcdef","actor":"a","company":"c","kind":"robot"}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := t.TempDir() + "/keys.json"
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		keys, err := LoadKeys(path)
		if err != nil {
			return
		}
		auth, err := NewAuthenticator(keys)
		if err != nil {
			return
		}
		for _, k := range keys {
			r := httptest.NewRequest("GET", "/", nil)
			r.Header.Set("Authorization", "Bearer "+k.Token)
			c, ok := auth.Authenticate(r)
			if strings.TrimSpace(k.Token) == k.Token && (!ok || c.Actor.Company == "") {
				t.Fatalf("accepted key %+v does not authenticate", k)
			}
		}
	})
}
