package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/kycengine/kyc/adapters/delivery/cloudevent"
	"github.com/kycengine/kyc/adapters/delivery/relay"
	"github.com/kycengine/kyc/domain"
)

// The signing scheme against the Standard Webhooks examples, and against
// the reference library on inputs of our own.
func TestSign(t *testing.T) {
	const (
		specSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		specID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
		specTS     = 1614265330
		specBody   = `{"test": 2432232314}`
		specSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	)
	specKey, err := ParseSecret(specSecret)
	if err != nil {
		t.Fatal(err)
	}
	otherKey, err := ParseSecret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") // the prefix is optional
	if err != nil || !bytes.Equal(otherKey, specKey) {
		t.Fatalf("secret without prefix: %x %v", otherKey, err)
	}
	second := bytes.Repeat([]byte{7}, 32)
	for _, tc := range []struct {
		name string
		keys [][]byte
		id   string
		ts   int64
		body string
		want string
	}{
		{"spec example", [][]byte{specKey}, specID, specTS, specBody, specSig},
		{"one signature per key, in order", [][]byte{specKey, second}, specID, specTS, specBody,
			specSig + " " + Sign([][]byte{second}, specID, specTS, []byte(specBody))},
		{"the body is signed byte for byte", [][]byte{specKey}, specID, specTS, `{"test":2432232314}`, ""},
		{"the id is signed", [][]byte{specKey}, "msg_other", specTS, specBody, ""},
		{"the timestamp is signed", [][]byte{specKey}, specID, specTS + 1, specBody, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Sign(tc.keys, tc.id, tc.ts, []byte(tc.body))
			if tc.want != "" && got != tc.want {
				t.Fatalf("Sign = %q, want %q", got, tc.want)
			}
			if tc.want == "" && strings.Contains(got, specSig) {
				t.Fatalf("Sign = %q: the change did not change the signature", got)
			}
			if n := len(strings.Fields(got)); n != len(tc.keys) {
				t.Fatalf("%d signatures, want %d", n, len(tc.keys))
			}
			// The reference library accepts ours with each key.
			h := http.Header{}
			h.Set(HeaderID, tc.id)
			h.Set(HeaderTimestamp, strconv.FormatInt(tc.ts, 10))
			h.Set(HeaderSignature, got)
			for i, key := range tc.keys {
				wh, err := standardwebhooks.NewWebhook(FormatSecret(key))
				if err != nil {
					t.Fatal(err)
				}
				if err := wh.VerifyIgnoringTimestamp([]byte(tc.body), h); err != nil {
					t.Errorf("key %d: the reference verifier refuses our signature: %v", i, err)
				}
			}
		})
	}
	t.Run("random inputs match the reference signer", func(t *testing.T) {
		for range 50 {
			key, err := newSecret()
			if err != nil {
				t.Fatal(err)
			}
			id, body, at := uuid.NewString(), []byte(uuid.NewString()+"\n\x00é"), time.Now()
			wh, err := standardwebhooks.NewWebhook(FormatSecret(key))
			if err != nil {
				t.Fatal(err)
			}
			want, err := wh.Sign(id, at, body)
			if err != nil {
				t.Fatal(err)
			}
			if got := Sign([][]byte{key}, id, at.Unix(), body); got != want {
				t.Fatalf("Sign = %q, the reference signs %q", got, want)
			}
		}
	})
}

// The default schedule meets the requirement: at least 8 attempts over at
// least a day, jitter included.
func TestDefaultSchedule(t *testing.T) {
	shortest, longest := DefaultSchedule.Span()
	if DefaultSchedule.Rounds() < 8 || shortest < 24*time.Hour {
		t.Fatalf("%d rounds over at least %v, want at least 8 over at least 24h", DefaultSchedule.Rounds(), shortest)
	}
	t.Logf("%d rounds (up to %d requests) over %v to %v", DefaultSchedule.Rounds(), DefaultSchedule.Rounds()*(DefaultRetry.MaxRetries+1), shortest, longest)
	for round := 1; round <= len(DefaultSchedule.Delays); round++ {
		base := DefaultSchedule.Delays[round-1]
		for range 100 {
			d := DefaultSchedule.delay(round)
			if d < time.Duration(float64(base)*0.8) || d > time.Duration(float64(base)*1.2) {
				t.Fatalf("delay after round %d: %v, want %v ±20%%", round, d, base)
			}
		}
	}
}

// verify checks a request with the reference verifier and the secret.
func verify(secret string, r request) error {
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return err
	}
	return wh.Verify(r.body, r.header)
}

// The acceptance test of the issue: a receiver that fails its first five
// deliveries and then succeeds gets the event, with a signature the
// reference Standard Webhooks verifier accepts and that it refuses for a
// tampered body or an old timestamp.
func TestAcceptance(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, db database) {
		st := db.open(t)
		defer st.Close()
		rc := newReceiver(t, func(n int, _ request) int {
			if n <= 5 {
				return http.StatusInternalServerError
			}
			return http.StatusNoContent
		})
		r := start(t, fastConfig(st))
		ep, secret, err := r.svc.CreateEndpoint(t.Context(), EndpointInput{Company: "acme", URL: rc.URL + "/hooks?token=abc", Description: "CRM"})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(secret, SecretPrefix) {
			t.Fatalf("secret %q lacks the whsec_ prefix", secret)
		}
		customer := uuid.NewString()
		ev := registered(customer, "acme")
		r.publish(t, ev)
		id := mustDeliveryID(t, ep.ID, ev)
		d := waitStatus(t, r.svc, id, StatusDelivered)

		reqs := rc.got()
		if len(reqs) != 6 || d.Attempts != 6 {
			t.Fatalf("%d requests, %d attempts recorded; want 6 of each", len(reqs), d.Attempts)
		}
		// With 3 requests a round, the sixth request is the third of the
		// second round.
		if d.Rounds != 2 || d.DeliveredAt == nil || d.LastStatus == nil || *d.LastStatus != 204 || d.NextAttemptAt != nil {
			t.Errorf("delivered delivery: %+v", d)
		}
		attempts, err := r.svc.Attempts(t.Context(), CompanyScope("acme"), id)
		if err != nil {
			t.Fatal(err)
		}
		var statuses []int
		for i, a := range attempts {
			if a.Number != i+1 || a.Status == nil {
				t.Fatalf("attempt %d: %+v", i+1, a)
			}
			statuses = append(statuses, *a.Status)
		}
		if !slices.Equal(statuses, []int{500, 500, 500, 500, 500, 204}) || !strings.Contains(attempts[0].Error, "HTTP 500") || attempts[5].Error != "" {
			t.Errorf("attempts %v: %+v", statuses, attempts)
		}

		last := reqs[5]
		for i, req := range reqs {
			if req.header.Get(HeaderID) != id {
				t.Errorf("request %d: webhook-id %q, want the delivery id %s on every attempt", i+1, req.header.Get(HeaderID), id)
			}
			if !bytes.Equal(req.body, last.body) {
				t.Errorf("request %d: the body changed between attempts", i+1)
			}
		}
		if err := verify(secret, last); err != nil {
			t.Fatalf("the reference verifier refuses the delivery: %v\n%v", err, last.header)
		}
		if ct := last.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("content-type %q", ct)
		}
		// The body is the event as a structured CloudEvent.
		var ce map[string]any
		if err := json.Unmarshal(last.body, &ce); err != nil {
			t.Fatal(err)
		}
		if ce["id"] != ev.ID.String() || ce["type"] != cloudevent.Type("CustomerRegistered") || ce["subject"] != customer || ce["specversion"] != "1.0" {
			t.Errorf("payload %s", last.body)
		}
		if data, _ := ce["data"].(map[string]any); data["company_id"] != "acme" {
			t.Errorf("payload data %v", ce["data"])
		}

		tampered := last
		tampered.body = bytes.Replace(last.body, []byte(`"acme"`), []byte(`"evil"`), 1)
		if err := verify(secret, tampered); !errors.Is(err, standardwebhooks.ErrNoMatchingSignature) {
			t.Errorf("tampered body: verifier says %v, want %v", err, standardwebhooks.ErrNoMatchingSignature)
		}
		// A correctly signed request whose timestamp is past the
		// verifier's tolerance (5 minutes) is refused for its age alone.
		key, err := ParseSecret(secret)
		if err != nil {
			t.Fatal(err)
		}
		old := request{header: last.header.Clone(), body: last.body}
		ts := time.Now().Add(-6 * time.Minute).Unix()
		old.header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
		old.header.Set(HeaderSignature, Sign([][]byte{key}, id, ts, last.body))
		if err := verify(secret, old); !errors.Is(err, standardwebhooks.ErrMessageTooOld) {
			t.Errorf("old timestamp: verifier says %v, want %v", err, standardwebhooks.ErrMessageTooOld)
		}
		wh, _ := standardwebhooks.NewWebhook(secret)
		if err := wh.VerifyIgnoringTimestamp(old.body, old.header); err != nil {
			t.Errorf("the old request is otherwise valid, but: %v", err)
		}
	})
}

// A sender whose clock is late signs with an old timestamp, which the
// reference verifier refuses although the signature is right.
func TestOldTimestampRefused(t *testing.T) {
	st := sqliteStore(t)
	cfg := fastConfig(st)
	cfg.Clock = func() time.Time { return time.Now().Add(-10 * time.Minute) }
	r, rc, ep, secret := startWithEndpoint(t, cfg)
	ev := registered(uuid.NewString(), "acme")
	r.publish(t, ev)
	waitStatus(t, r.svc, mustDeliveryID(t, ep.ID, ev), StatusDelivered)
	req := rc.got()[0]
	if err := verify(secret, req); !errors.Is(err, standardwebhooks.ErrMessageTooOld) {
		t.Errorf("verifier says %v, want %v", err, standardwebhooks.ErrMessageTooOld)
	}
	wh, _ := standardwebhooks.NewWebhook(secret)
	if err := wh.VerifyIgnoringTimestamp(req.body, req.header); err != nil {
		t.Errorf("signature: %v", err)
	}
}

// After a rotation both secrets sign until the old one expires.
func TestRotation(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, db database) {
		st := db.open(t)
		defer st.Close()
		cfg := fastConfig(st)
		cfg.RotationOverlap = 500 * time.Millisecond
		rc := newReceiver(t, always(http.StatusOK))
		r := start(t, cfg)
		ctx := t.Context()
		ep, oldSecret, err := r.svc.CreateEndpoint(ctx, EndpointInput{Company: "acme", URL: rc.URL})
		if err != nil {
			t.Fatal(err)
		}
		rotated, newSecret, err := r.svc.RotateSecret(ctx, CompanyScope("acme"), ep.ID)
		if err != nil {
			t.Fatal(err)
		}
		if newSecret == oldSecret || len(rotated.Secrets) != 2 || rotated.Secrets[0].ExpiresAt == nil || rotated.Secrets[1].ExpiresAt != nil {
			t.Fatalf("after rotation: %+v", rotated.Secrets)
		}
		if _, _, err := r.svc.RotateSecret(ctx, CompanyScope("globex"), ep.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("rotation by another company: %v, want ErrNotFound", err)
		}

		ev := statusChanged(uuid.NewString())
		mustRemember(t, r.svc, ev, "acme")
		r.publish(t, ev)
		waitStatus(t, r.svc, mustDeliveryID(t, ep.ID, ev), StatusDelivered)
		req := rc.got()[0]
		if n := len(strings.Fields(req.header.Get(HeaderSignature))); n != 2 {
			t.Fatalf("%d signatures, want 2: %q", n, req.header.Get(HeaderSignature))
		}
		for name, secret := range map[string]string{"old": oldSecret, "new": newSecret} {
			if err := verify(secret, req); err != nil {
				t.Errorf("the %s secret does not verify: %v", name, err)
			}
		}

		// Once the overlap is over only the new secret signs.
		time.Sleep(cfg.RotationOverlap)
		ev2 := statusChanged(mustCustomer(ev))
		r.publish(t, ev2)
		waitStatus(t, r.svc, mustDeliveryID(t, ep.ID, ev2), StatusDelivered)
		req = rc.got()[1]
		if err := verify(newSecret, req); err != nil {
			t.Errorf("new secret after the overlap: %v", err)
		}
		if err := verify(oldSecret, req); err == nil {
			t.Error("the expired secret still signs")
		}
	})
}

// mustRemember teaches the service a customer's company as a registration
// would have.
func mustRemember(t *testing.T, svc *Service, e domain.RecordedEvent, company string) {
	t.Helper()
	if err := svc.store.rememberCustomer(t.Context(), mustCustomer(e), company); err != nil {
		t.Fatal(err)
	}
}

func mustCustomer(e domain.RecordedEvent) string {
	id, _ := domain.CustomerIDFromStream(e.Stream)
	return id
}

// A receiver that never answers 2xx: after the last round the delivery is
// dead; a replay makes it pending again and it is delivered once the
// receiver works.
func TestDeadLetterAndReplay(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, db database) {
		st := db.open(t)
		defer st.Close()
		var healthy atomic.Bool
		rc := newReceiver(t, func(int, request) int {
			if healthy.Load() {
				return http.StatusAccepted
			}
			return http.StatusServiceUnavailable
		})
		cfg := fastConfig(st)
		r := start(t, cfg)
		ctx := t.Context()
		ep, _, err := r.svc.CreateEndpoint(ctx, EndpointInput{Company: "acme", URL: rc.URL, Types: []string{"CustomerRegistered"}})
		if err != nil {
			t.Fatal(err)
		}
		ev := registered(uuid.NewString(), "acme")
		r.publish(t, ev)
		id := mustDeliveryID(t, ep.ID, ev)
		dead := waitStatus(t, r.svc, id, StatusDead)
		perRound := cfg.Retry.MaxRetries + 1
		if want := cfg.Schedule.Rounds() * perRound; dead.Attempts != want || len(rc.got()) != want || dead.Rounds != cfg.Schedule.Rounds() {
			t.Fatalf("dead after %d attempts in %d rounds (%d requests), want %d in %d", dead.Attempts, dead.Rounds, len(rc.got()), want, cfg.Schedule.Rounds())
		}
		if dead.DeadAt == nil || dead.NextAttemptAt != nil || !strings.Contains(dead.LastError, "HTTP 503") {
			t.Errorf("dead delivery: %+v", dead)
		}
		// The dead-letter list.
		list, total, err := r.svc.ListDeliveries(ctx, CompanyScope("acme"), DeliveryFilter{EndpointID: ep.ID, Status: StatusDead})
		if err != nil || total != 1 || len(list) != 1 || list[0].ID != id {
			t.Fatalf("dead letters: %v %d %v", list, total, err)
		}
		if _, total, _ := r.svc.ListDeliveries(ctx, CompanyScope("acme"), DeliveryFilter{EndpointID: ep.ID, Status: StatusPending}); total != 0 {
			t.Errorf("%d pending", total)
		}
		// Nothing more is sent to a dead delivery.
		time.Sleep(100 * time.Millisecond)
		if n := len(rc.got()); n != dead.Attempts {
			t.Fatalf("%d requests after death, want %d", n, dead.Attempts)
		}

		if _, err := r.svc.Replay(ctx, CompanyScope("globex"), id); !errors.Is(err, ErrNotFound) {
			t.Errorf("replay by another company: %v, want ErrNotFound", err)
		}
		healthy.Store(true)
		replayed, err := r.svc.Replay(ctx, CompanyScope("acme"), id)
		if err != nil {
			t.Fatal(err)
		}
		if replayed.Replays != 1 || replayed.ReplayedAt == nil || replayed.Status == StatusDead || replayed.Attempts < dead.Attempts {
			t.Errorf("replayed: %+v", replayed)
		}
		d := waitStatus(t, r.svc, id, StatusDelivered)
		if d.Attempts != dead.Attempts+1 || d.DeadAt != nil || d.Replays != 1 {
			t.Errorf("after replay: %+v", d)
		}
		as, err := r.svc.Attempts(ctx, Everything(), id)
		if err != nil || len(as) != d.Attempts || *as[len(as)-1].Status != http.StatusAccepted {
			t.Errorf("attempts after replay: %+v %v", as, err)
		}
		// A delivered delivery may be replayed too (the receiver lost it).
		if _, err := r.svc.Replay(ctx, Everything(), id); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "second replay sent", func() bool { return len(rc.got()) == d.Attempts+1 })
	})
}

// Pending deliveries survive a restart: a delivery whose next round is due
// after the service stopped is sent by the next service on the database.
func TestRestart(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, db database) {
		st := db.open(t)
		rc := newReceiver(t, func(n int, _ request) int {
			if n == 1 {
				return http.StatusBadGateway
			}
			return http.StatusOK
		})
		cfg := fastConfig(st)
		cfg.Schedule = Schedule{Delays: []time.Duration{time.Second}}
		cfg.Retry = Retry{MaxRetries: 0, InitialInterval: time.Millisecond, MaxInterval: time.Millisecond, Multiplier: 1}
		first := start(t, cfg)
		ctx := t.Context()
		ep, _, err := first.svc.CreateEndpoint(ctx, EndpointInput{Company: "acme", URL: rc.URL})
		if err != nil {
			t.Fatal(err)
		}
		ev := registered(uuid.NewString(), "acme")
		first.publish(t, ev)
		id := mustDeliveryID(t, ep.ID, ev)
		var d Delivery
		eventually(t, 10*time.Second, "first round failed", func() bool {
			d, _, err = first.svc.GetDelivery(ctx, Everything(), id)
			return err == nil && d.Rounds == 1
		})
		if d.Status != StatusPending || d.Attempts != 1 || d.NextAttemptAt == nil || !d.NextAttemptAt.After(time.Now()) {
			t.Fatalf("after the first round: %+v", d)
		}
		if _, err := first.svc.Replay(ctx, Everything(), id); !errors.Is(err, ErrPending) {
			t.Errorf("replay of a pending delivery: %v, want ErrPending", err)
		}
		first.stop()
		st.Close()

		st = db.open(t)
		defer st.Close()
		cfg.Store = st
		second := start(t, cfg)
		d = waitStatus(t, second.svc, id, StatusDelivered)
		reqs := rc.got()
		if len(reqs) != 2 || d.Attempts != 2 || d.Rounds != 2 {
			t.Fatalf("after restart: %d requests, %+v", len(reqs), d)
		}
		if gap := reqs[1].at.Sub(reqs[0].at); gap < 800*time.Millisecond {
			t.Errorf("the second round came %v after the first, before its schedule (1s ±20%%)", gap)
		}
	})
}

// A bus message delivered twice makes one delivery.
func TestFanOutDeduplicates(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, db database) {
		st := db.open(t)
		defer st.Close()
		r, rc, ep, _ := startWithEndpoint(t, fastConfig(st))
		ev := registered(uuid.NewString(), "acme")
		r.publish(t, ev)
		waitStatus(t, r.svc, mustDeliveryID(t, ep.ID, ev), StatusDelivered)
		r.publish(t, ev) // the relay republishing after a crash
		msg := cloudevent.ToMessage(ev, "")
		if err := r.bus.Publisher().Publish(relay.DefaultTopic, msg); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		list, total, err := r.svc.ListDeliveries(t.Context(), Everything(), DeliveryFilter{EndpointID: ep.ID})
		if err != nil || total != 1 || len(list) != 1 || list[0].Status != StatusDelivered {
			t.Fatalf("deliveries %+v total %d %v, want one delivered", list, total, err)
		}
		if n := len(rc.got()); n != 1 {
			t.Errorf("%d requests, want 1", n)
		}
	})
}

// Endpoints get the events of their company's customers (the company of
// the registration, or of the resolver), of the types they asked for;
// endpoints of "*" get everyone's. Callers see only their company's.
func TestRoutingAndIsolation(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, db database) {
		st := db.open(t)
		defer st.Close()
		rc := newReceiver(t, always(http.StatusOK))
		cfg := fastConfig(st)
		late := uuid.NewString() // registered before the fan-out ran
		cfg.CompanyOf = func(_ context.Context, customer string) (string, error) {
			if customer == late {
				return "globex", nil
			}
			return "", nil
		}
		cfg.EventTypes = []string{"CustomerRegistered", "StatusChanged", "NoteAdded"}
		r := start(t, cfg)
		ctx := t.Context()
		create := func(company, path string, types ...string) Endpoint {
			t.Helper()
			ep, _, err := r.svc.CreateEndpoint(ctx, EndpointInput{Company: company, URL: rc.URL + path, Types: types})
			if err != nil {
				t.Fatal(err)
			}
			return ep
		}
		acmeAll := create("acme", "/acme-all")
		acmeStatus := create("acme", "/acme-status", "StatusChanged")
		globex := create("globex", "/globex")
		everyone := create(AllCompanies, "/everyone")

		acmeCustomer, globexCustomer, unknown := uuid.NewString(), uuid.NewString(), uuid.NewString()
		events := []domain.RecordedEvent{
			registered(acmeCustomer, "acme"),
			statusChanged(acmeCustomer),
			registered(globexCustomer, "globex"),
			event(globexCustomer, "NoteAdded", map[string]any{"text": "hello"}),
			statusChanged(late),
			statusChanged(unknown),
			// An identity binding belongs to no customer's stream.
			{EventData: domain.EventData{ID: uuid.New(), Type: "IdentityBound", SchemaVersion: 1, OccurredAt: time.Now(), Data: json.RawMessage(`{}`)},
				Stream: "identity-abc"},
		}
		for _, e := range events {
			r.publish(t, e)
		}
		want := map[string]int{"/acme-all": 2, "/acme-status": 1, "/globex": 3, "/everyone": 6}
		for ep, n := range map[string]int{acmeAll.ID: 2, acmeStatus.ID: 1, globex.ID: 3, everyone.ID: 6} {
			_, total, err := r.svc.ListDeliveries(ctx, Everything(), DeliveryFilter{EndpointID: ep})
			if err != nil || total != n {
				t.Errorf("endpoint %s: %d deliveries (%v), want %d", ep, total, err, n)
			}
		}
		total := 0
		for _, n := range want {
			total += n
		}
		eventually(t, 10*time.Second, "every delivery sent", func() bool { return len(rc.got()) == total })
		got := map[string]int{}
		for _, req := range rc.got() {
			got[req.path]++
		}
		if !maps.Equal(got, want) {
			t.Errorf("requests per endpoint %v, want %v", got, want)
		}
		// The late customer's company was remembered.
		if c, err := r.svc.store.customerCompany(ctx, late); err != nil || c != "globex" {
			t.Errorf("remembered company of the late customer: %q %v", c, err)
		}

		// Isolation.
		acme, glob := CompanyScope("acme"), CompanyScope("globex")
		if es, err := r.svc.ListEndpoints(ctx, acme); err != nil || len(es) != 2 {
			t.Errorf("acme sees %d endpoints (%v), want 2", len(es), err)
		}
		if es, err := r.svc.ListEndpoints(ctx, Everything()); err != nil || len(es) != 4 {
			t.Errorf("a superuser sees %d endpoints (%v), want 4", len(es), err)
		}
		if es, err := r.svc.ListEndpoints(ctx, Scope{}); err != nil || len(es) != 0 {
			t.Errorf("the zero scope sees %d endpoints (%v), want none", len(es), err)
		}
		if _, err := r.svc.GetEndpoint(ctx, glob, acmeAll.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("globex reads acme's endpoint: %v", err)
		}
		if _, err := r.svc.GetEndpoint(ctx, acme, everyone.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("acme reads the all-companies endpoint: %v", err)
		}
		if _, _, err := r.svc.ListDeliveries(ctx, glob, DeliveryFilter{EndpointID: acmeAll.ID}); !errors.Is(err, ErrNotFound) {
			t.Errorf("globex lists acme's deliveries: %v", err)
		}
		acmeDelivery := mustDeliveryID(t, acmeAll.ID, events[0])
		if _, _, err := r.svc.GetDelivery(ctx, glob, acmeDelivery); !errors.Is(err, ErrNotFound) {
			t.Errorf("globex reads acme's delivery: %v", err)
		}
		if _, err := r.svc.Attempts(ctx, glob, acmeDelivery); !errors.Is(err, ErrNotFound) {
			t.Errorf("globex reads acme's attempts: %v", err)
		}
		if d, payload, err := r.svc.GetDelivery(ctx, acme, acmeDelivery); err != nil || d.Company != "acme" || !json.Valid(payload) {
			t.Errorf("acme reads its delivery: %+v %v", d, err)
		}
		if err := r.svc.DeleteEndpoint(ctx, glob, acmeAll.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("globex deletes acme's endpoint: %v", err)
		}
		if err := r.svc.DeleteEndpoint(ctx, acme, acmeAll.ID); err != nil {
			t.Fatal(err)
		}
		if _, _, err := r.svc.GetDelivery(ctx, Everything(), acmeDelivery); !errors.Is(err, ErrNotFound) {
			t.Errorf("a deleted endpoint's delivery: %v", err)
		}
		if err := r.svc.DeleteEndpoint(ctx, acme, acmeAll.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("second delete: %v", err)
		}
	})
}

// A restarted fan-out still routes the events of a customer it saw
// registered: from the table when there is no resolver, else through the
// resolver, in which case the registration itself wrote nothing.
func TestCompanyOfACustomerAfterRestart(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, db database) {
		for _, withResolver := range []bool{false, true} {
			t.Run(fmt.Sprintf("resolver=%v", withResolver), func(t *testing.T) {
				st := db.open(t)
				defer st.Close()
				ctx := t.Context()
				customer := uuid.NewString()
				var resolved atomic.Int32
				cfg := fastConfig(st)
				if withResolver {
					cfg.CompanyOf = func(_ context.Context, c string) (string, error) {
						resolved.Add(1)
						if c == customer {
							return "acme", nil
						}
						return "", nil
					}
				}
				first := start(t, cfg)
				first.publish(t, registered(customer, "acme"))
				first.publish(t, statusChanged(customer))
				first.stop()
				remembered, err := first.svc.store.customerCompany(ctx, customer)
				switch {
				case err != nil:
					t.Fatal(err)
				case withResolver && (remembered != "" || resolved.Load() != 0):
					t.Fatalf("with a resolver: table says %q, resolver asked %d times; want neither", remembered, resolved.Load())
				case !withResolver && remembered != "acme":
					t.Fatalf("without a resolver the table says %q, want acme", remembered)
				}

				second := start(t, cfg)
				ep, _, err := second.svc.CreateEndpoint(ctx, EndpointInput{Company: "acme", URL: "http://127.0.0.1:9/hook"})
				if err != nil {
					t.Fatal(err)
				}
				later := statusChanged(customer)
				second.publish(t, later)
				if _, _, err := second.svc.GetDelivery(ctx, Everything(), mustDeliveryID(t, ep.ID, later)); err != nil {
					t.Errorf("the event after the restart was not routed to acme's endpoint: %v", err)
				}
				if withResolver && resolved.Load() != 1 {
					t.Errorf("resolver asked %d times, want once", resolved.Load())
				}
			})
		}
	})
}

func TestValidation(t *testing.T) {
	st := sqliteStore(t)
	cfg := fastConfig(st)
	cfg.EventTypes = []string{"StatusChanged"}
	svc, err := NewService(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for _, tc := range []struct {
		in     EndpointInput
		fields []string
	}{
		{EndpointInput{Company: "acme", URL: "ftp://example.com/x"}, []string{"url"}},
		{EndpointInput{Company: "acme", URL: "/relative"}, []string{"url"}},
		{EndpointInput{Company: "acme", URL: "https://user:pw@example.com/"}, []string{"url"}},
		{EndpointInput{Company: "acme", URL: ""}, []string{"url"}},
		{EndpointInput{URL: "https://example.com/"}, []string{"company"}},
		{EndpointInput{Company: "acme", URL: "https://example.com/", Types: []string{"NoteAdded", "statuschanged", "StatusChanged", "StatusChanged"}},
			[]string{"types[0]", "types[1]", "types[3]"}},
		{EndpointInput{Company: "acme", URL: "https://example.com/", Description: strings.Repeat("x", 501)}, []string{"description"}},
	} {
		_, _, err := svc.CreateEndpoint(ctx, tc.in)
		var verr *ValidationError
		if !errors.As(err, &verr) || !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v, want a ValidationError", tc.in, err)
			continue
		}
		var fields []string
		for _, f := range verr.Fields {
			fields = append(fields, f.Field)
		}
		if !slices.Equal(fields, tc.fields) {
			t.Errorf("%+v: fields %v, want %v (%v)", tc.in, fields, tc.fields, err)
		}
	}
	ep, _, err := svc.CreateEndpoint(ctx, EndpointInput{Company: "acme", URL: " https://example.com/hook ", Types: []string{"StatusChanged"}})
	if err != nil || ep.URL != "https://example.com/hook" {
		t.Fatalf("valid endpoint: %+v %v", ep, err)
	}
	if _, _, err := svc.ListDeliveries(ctx, Everything(), DeliveryFilter{EndpointID: ep.ID, Status: "lost"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad status filter: %v", err)
	}
	if _, _, err := svc.ListDeliveries(ctx, Everything(), DeliveryFilter{EndpointID: ep.ID, PerPage: 1000}); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad page size: %v", err)
	}
	for _, id := range []string{"not-a-uuid", uuid.NewString()} {
		if _, err := svc.GetEndpoint(ctx, Everything(), id); !errors.Is(err, ErrNotFound) {
			t.Errorf("endpoint %s: %v", id, err)
		}
		if _, _, err := svc.GetDelivery(ctx, Everything(), id); !errors.Is(err, ErrNotFound) {
			t.Errorf("delivery %s: %v", id, err)
		}
	}
}

func TestNewServiceValidates(t *testing.T) {
	st := sqliteStore(t)
	for name, cfg := range map[string]Config{
		"no store":         {},
		"negative delay":   {Store: st, Schedule: Schedule{Delays: []time.Duration{-time.Second}}},
		"empty schedule":   {Store: st, Schedule: Schedule{Delays: []time.Duration{}}},
		"jitter of 1":      {Store: st, Schedule: Schedule{Delays: []time.Duration{time.Second}, Jitter: 1}},
		"bad retry":        {Store: st, Retry: Retry{MaxRetries: 1, InitialInterval: time.Second, MaxInterval: time.Millisecond, Multiplier: 2}},
		"short lease":      {Store: st, Lease: time.Second},
		"negative timeout": {Store: st, Timeout: -time.Second},
	} {
		if _, err := NewService(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	svc, err := NewService(Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	if svc.cfg.Schedule.Rounds() != DefaultSchedule.Rounds() || svc.cfg.Retry != DefaultRetry || svc.cfg.Lease <= 30*time.Second {
		t.Errorf("defaults: %+v", svc.cfg)
	}
	if err := svc.Run(context.Background(), nil); err == nil {
		t.Error("Run without a subscriber")
	}
}

// A service that stops while a request is in flight hands the delivery
// back at once: the next service sends it without waiting for the lease.
func TestStopHandsBackClaims(t *testing.T) {
	st := sqliteStore(t)
	release := make(chan struct{})
	var hung atomic.Bool
	rc := newReceiver(t, func(n int, _ request) int {
		if n == 1 {
			hung.Store(true)
			<-release
		}
		return http.StatusOK
	})
	defer close(release)
	cfg := fastConfig(st)
	first := start(t, cfg)
	ep, _, err := first.svc.CreateEndpoint(t.Context(), EndpointInput{Company: "acme", URL: rc.URL})
	if err != nil {
		t.Fatal(err)
	}
	ev := registered(uuid.NewString(), "acme")
	first.publish(t, ev)
	eventually(t, 5*time.Second, "the request is in flight", hung.Load)
	began := time.Now()
	first.stop()
	if took := time.Since(began); took > 3*time.Second {
		t.Errorf("stopping took %v", took)
	}
	id := mustDeliveryID(t, ep.ID, ev)
	d, _, err := first.svc.GetDelivery(t.Context(), Everything(), id)
	if err != nil || d.Status != StatusPending || d.Attempts != 0 || d.Rounds != 0 {
		t.Fatalf("after stop: %+v %v (a cancelled request is not an attempt)", d, err)
	}
	second := start(t, cfg)
	began = time.Now()
	waitStatus(t, second.svc, id, StatusDelivered)
	if took := time.Since(began); took >= second.svc.cfg.Lease {
		t.Errorf("the delivery waited %v, as long as the lease", took)
	}
}

// Endpoints and an endpoint's secrets are listed oldest first, also when
// they were made within one tick of the clock (created_at keeps
// milliseconds): a secret's place in the list tells which one is newest.
func TestOrderWithinOneTick(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, db database) {
		st := db.open(t)
		defer st.Close()
		svc, err := NewService(stoppedConfig(st))
		if err != nil {
			t.Fatal(err)
		}
		ctx := t.Context()
		var made []string
		for i := range 5 {
			ep, _, err := svc.CreateEndpoint(ctx, EndpointInput{Company: "acme", URL: fmt.Sprintf("https://example.com/%d", i)})
			if err != nil {
				t.Fatal(err)
			}
			made = append(made, ep.ID)
		}
		listed, err := svc.ListEndpoints(ctx, CompanyScope("acme"))
		if err != nil {
			t.Fatal(err)
		}
		if got := idsOf(listed, func(ep Endpoint) string { return ep.ID }); !slices.Equal(got, made) {
			t.Errorf("endpoints listed %v, made %v", got, made)
		}

		secretIDs := func(ep Endpoint) []string { return idsOf(ep.Secrets, func(s SecretInfo) string { return s.ID }) }
		before := secretIDs(listed[0])
		for range 5 {
			ep, _, err := svc.RotateSecret(ctx, CompanyScope("acme"), made[0])
			if err != nil {
				t.Fatal(err)
			}
			after := secretIDs(ep)
			if len(after) != len(before)+1 || !slices.Equal(after[:len(before)], before) || ep.Secrets[len(before)].ExpiresAt != nil {
				t.Fatalf("secrets before a rotation %v, after %+v: want the same with the new one last", before, ep.Secrets)
			}
			before = after
		}
	})
}

// Deliveries made in the same millisecond are listed in event order,
// newest first, whatever their ids (hashes) say: by status too.
func TestDeliveriesOfOneTickInEventOrder(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, db database) {
		st := db.open(t)
		defer st.Close()
		r, _, ep, _ := startWithEndpoint(t, stoppedConfig(st))
		customer := uuid.NewString()
		published := []domain.RecordedEvent{registered(customer, "acme")}
		for range 7 {
			published = append(published, statusChanged(customer))
		}
		for _, e := range published {
			r.publish(t, e)
		}
		last := published[len(published)-1]
		waitStatus(t, r.svc, mustDeliveryID(t, ep.ID, last), StatusDelivered)
		var want []string
		for _, e := range slices.Backward(published) {
			want = append(want, e.ID.String())
		}
		for _, status := range []string{"", StatusDelivered} {
			eventually(t, 5*time.Second, "every delivery listed with status "+status, func() bool {
				_, total, err := r.svc.ListDeliveries(t.Context(), Everything(), DeliveryFilter{EndpointID: ep.ID, Status: status})
				return err == nil && total == len(published)
			})
			list, _, err := r.svc.ListDeliveries(t.Context(), Everything(), DeliveryFilter{EndpointID: ep.ID, Status: status})
			if err != nil {
				t.Fatal(err)
			}
			if got := idsOf(list, func(d Delivery) string { return d.EventID }); !slices.Equal(got, want) {
				t.Errorf("status %q: deliveries listed for events %v, want %v (newest first)", status, got, want)
			}
		}
	})
}
