// Package storetest is the conformance suite of domain.EventStore: the
// definition of a correct store. Every adapter's tests run it:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) domain.EventStore {
//			s := open(t) // closes itself through t.Cleanup
//			return s
//		})
//	}
//
// Each subtest asks for a store of its own, but every stream name is unique,
// so a factory that hands out one shared store works as well.
package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kycengine/kyc/domain"
)

// Run runs every conformance test against stores made by newStore.
func Run(t *testing.T, newStore func(t *testing.T) domain.EventStore) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s domain.EventStore)
	}{
		{"AppendExpectations", testAppendExpectations},
		{"ConflictOnWrongExpectation", testConflicts},
		{"IdempotentRetry", testIdempotentRetry},
		{"DuplicateEventID", testDuplicateEventID},
		{"MultiEventAppendIsAtomic", testMultiEventAppend},
		{"EnvelopeRoundTrip", testEnvelopeRoundTrip},
		{"ReadStream", testReadStream},
		{"ReadStreamMissing", testReadStreamMissing},
		{"ReadAll", testReadAll},
		{"SubscribeAllConcurrentWriters", testSubscribeConcurrentWriters},
		{"SubscribeAllCatchUpThenLive", testSubscribeCatchUpThenLive},
		{"SubscribeAllResumeFromCheckpoint", testSubscribeResume},
		{"ConcurrentExpectRevision", testConcurrentExpectRevision},
		{"CancelledContext", testCancelledContext},
		{"Tail", testTail},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			if s == nil {
				t.Fatal("newStore returned nil")
			}
			tc.fn(t, s)
		})
	}
}

// errStop ends a subscription from its handler.
var errStop = errors.New("storetest: stop subscription")

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newStream(prefix string) string { return prefix + "-" + uuid.NewString() }

// newEvent fills every envelope field so a store that drops one is caught.
func newEvent(typ string, n int) domain.EventData {
	return domain.EventData{
		ID:             uuid.New(),
		Type:           typ,
		SchemaVersion:  1,
		OccurredAt:     time.Now().UTC(),
		Actor:          domain.Actor{Kind: domain.ActorOperator, ID: "op-1", Company: "acme"},
		CorrelationID:  "corr-" + uuid.NewString(),
		CausationID:    "cause-1",
		IdempotencyKey: "",
		Data:           json.RawMessage(fmt.Sprintf(`{"n":%d}`, n)),
	}
}

func newEvents(typ string, n int) []domain.EventData {
	out := make([]domain.EventData, n)
	for i := range out {
		out[i] = newEvent(typ, i)
	}
	return out
}

func mustAppend(t *testing.T, ctx context.Context, s domain.EventStore, stream string, exp domain.ExpectedRevision, events ...domain.EventData) domain.AppendResult {
	t.Helper()
	res, err := s.Append(ctx, stream, exp, events)
	if err != nil {
		t.Fatalf("append %d events to %s expecting %s: %v", len(events), stream, exp, err)
	}
	checkRecorded(t, ctx, s, stream, res, len(events))
	return res
}

// checkRecorded holds a store that hands back the appended envelopes to
// them being exactly what a read returns.
func checkRecorded(t *testing.T, ctx context.Context, s domain.EventStore, stream string, res domain.AppendResult, n int) {
	t.Helper()
	if res.Recorded == nil {
		return
	}
	if len(res.Recorded) != n {
		t.Fatalf("append of %d events handed back %d", n, len(res.Recorded))
	}
	stored, err := s.ReadStream(ctx, stream, domain.Forwards, res.LastRevision+1-uint64(n), n)
	if err != nil {
		t.Fatal(err)
	}
	for i, got := range res.Recorded {
		want := stored[i]
		if got.ID != want.ID || got.Stream != want.Stream || got.Revision != want.Revision || got.Position != want.Position ||
			!got.RecordedAt.Equal(want.RecordedAt) || !got.OccurredAt.Equal(want.OccurredAt) || got.Hash != want.Hash ||
			got.PrevHash != want.PrevHash || !bytes.Equal(got.Data, want.Data) || !bytes.Equal(got.Personal, want.Personal) ||
			got.Actor != want.Actor || got.Type != want.Type || got.SchemaVersion != want.SchemaVersion ||
			got.CorrelationID != want.CorrelationID || got.CausationID != want.CausationID || got.IdempotencyKey != want.IdempotencyKey {
			t.Fatalf("append handed back %+v, the store reads %+v", got, want)
		}
	}
}

func mustReadStream(t *testing.T, ctx context.Context, s domain.EventStore, stream string) []domain.RecordedEvent {
	t.Helper()
	got, err := s.ReadStream(ctx, stream, domain.Forwards, 0, 0)
	if err != nil {
		t.Fatalf("read stream %s: %v", stream, err)
	}
	return got
}

// readAllAfter reads the whole global log after a position, page by page.
func readAllAfter(t *testing.T, ctx context.Context, s domain.EventStore, after domain.Position) []domain.RecordedEvent {
	t.Helper()
	const page = 500
	var out []domain.RecordedEvent
	for {
		got, err := s.ReadAll(ctx, after, page)
		if err != nil {
			t.Fatalf("read all after %s: %v", after, err)
		}
		out = append(out, got...)
		if len(got) < page {
			return out
		}
		after = got[len(got)-1].Position
	}
}

// tail is the position of the last event in the global log (Start when
// empty), so a test can look at only what it wrote even on a shared store.
func tail(t *testing.T, ctx context.Context, s domain.EventStore) domain.Position {
	t.Helper()
	all := readAllAfter(t, ctx, s, domain.Start)
	if len(all) == 0 {
		return domain.Start
	}
	return all[len(all)-1].Position
}

func ids(events []domain.RecordedEvent) []uuid.UUID {
	out := make([]uuid.UUID, len(events))
	for i, e := range events {
		out[i] = e.ID
	}
	return out
}

func dataIDs(events []domain.EventData) []uuid.UUID {
	out := make([]uuid.UUID, len(events))
	for i, e := range events {
		out[i] = e.ID
	}
	return out
}

func sameIDs(a, b []uuid.UUID) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func checkRevisions(t *testing.T, events []domain.RecordedEvent, first uint64) {
	t.Helper()
	for i, e := range events {
		if want := first + uint64(i); e.Revision != want {
			t.Fatalf("event %d of %s has revision %d, want %d", i, e.Stream, e.Revision, want)
		}
	}
}

func checkGlobalOrder(t *testing.T, events []domain.RecordedEvent) {
	t.Helper()
	for i := 1; i < len(events); i++ {
		if !events[i-1].Position.Less(events[i].Position) {
			t.Fatalf("global order broken at %d: position %s then %s", i, events[i-1].Position, events[i].Position)
		}
	}
}

// checkStreamsInOrder checks that each stream's events appear in revision
// order, without gaps, starting from revision 0.
func checkStreamsInOrder(t *testing.T, events []domain.RecordedEvent) {
	t.Helper()
	next := map[string]uint64{}
	for _, e := range events {
		if e.Revision != next[e.Stream] {
			t.Fatalf("stream %s: revision %d delivered where %d was next", e.Stream, e.Revision, next[e.Stream])
		}
		next[e.Stream]++
	}
}

// checkUnchanged fails when the global log grew past before.
func checkUnchanged(t *testing.T, ctx context.Context, s domain.EventStore, before domain.Position, what string) {
	t.Helper()
	if extra := readAllAfter(t, ctx, s, before); len(extra) > 0 {
		t.Fatalf("%s wrote %d events", what, len(extra))
	}
}

func checkConflict(t *testing.T, err error, stream string, exp domain.ExpectedRevision, actual uint64, exists bool) {
	t.Helper()
	if !errors.Is(err, domain.ErrConcurrencyConflict) {
		t.Fatalf("append to %s expecting %s: got %v, want a concurrency conflict", stream, exp, err)
	}
	var ce *domain.ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("conflict %v is not a *domain.ConflictError", err)
	}
	if ce.Stream != stream || ce.Expected != exp || ce.ActualExists != exists || (exists && ce.Actual != actual) {
		t.Fatalf("conflict details %+v, want stream %s expected %s actual %d exists %v", *ce, stream, exp, actual, exists)
	}
}

func testAppendExpectations(t *testing.T, s domain.EventStore) {
	ctx := testCtx(t)
	for _, exp := range []domain.ExpectedRevision{domain.ExpectNoStream, domain.ExpectAny} {
		stream := newStream("customer")
		res := mustAppend(t, ctx, s, stream, exp, newEvent("Created", 0))
		if res.LastRevision != 0 || !domain.Start.Less(res.Position) {
			t.Fatalf("first append expecting %s: result %+v, want revision 0 and a position after Start", exp, res)
		}
	}

	stream := newStream("customer")
	mustAppend(t, ctx, s, stream, domain.ExpectNoStream, newEvent("Created", 0))
	steps := []domain.ExpectedRevision{
		domain.ExpectRevision(0),
		domain.ExpectStreamExists,
		domain.ExpectAny,
		domain.ExpectRevision(3),
	}
	var lastPos domain.Position
	for i, exp := range steps {
		res := mustAppend(t, ctx, s, stream, exp, newEvent("Updated", i))
		if want := uint64(i + 1); res.LastRevision != want {
			t.Fatalf("append expecting %s: last revision %d, want %d", exp, res.LastRevision, want)
		}
		if !lastPos.Less(res.Position) {
			t.Fatalf("append expecting %s: position %s not after previous %s", exp, res.Position, lastPos)
		}
		lastPos = res.Position
	}
	got := mustReadStream(t, ctx, s, stream)
	if len(got) != len(steps)+1 {
		t.Fatalf("stream has %d events, want %d", len(got), len(steps)+1)
	}
	checkRevisions(t, got, 0)
}

func testConflicts(t *testing.T, s domain.EventStore) {
	ctx := testCtx(t)
	existing := newStream("customer")
	mustAppend(t, ctx, s, existing, domain.ExpectNoStream, newEvents("Created", 2)...) // head: revision 1
	cases := []struct {
		name    string
		stream  string
		exp     domain.ExpectedRevision
		actual  uint64
		exists  bool
		missing bool
	}{
		{name: "NoStreamOnExisting", stream: existing, exp: domain.ExpectNoStream, actual: 1, exists: true},
		{name: "StreamExistsOnMissing", exp: domain.ExpectStreamExists, missing: true},
		{name: "RevisionTooLow", stream: existing, exp: domain.ExpectRevision(0), actual: 1, exists: true},
		{name: "RevisionTooHigh", stream: existing, exp: domain.ExpectRevision(5), actual: 1, exists: true},
		{name: "RevisionOnMissing", exp: domain.ExpectRevision(0), missing: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stream := tc.stream
			if tc.missing {
				stream = newStream("missing")
			}
			before := tail(t, ctx, s)
			for _, n := range []int{1, 3} {
				_, err := s.Append(ctx, stream, tc.exp, newEvents("Updated", n))
				checkConflict(t, err, stream, tc.exp, tc.actual, tc.exists)
			}
			checkUnchanged(t, ctx, s, before, "a conflicting append")
			if tc.missing {
				if _, err := s.ReadStream(ctx, stream, domain.Forwards, 0, 0); !errors.Is(err, domain.ErrStreamNotFound) {
					t.Fatalf("stream after conflicting append: got %v, want ErrStreamNotFound", err)
				}
			}
		})
	}
}

func testIdempotentRetry(t *testing.T, s domain.EventStore) {
	ctx := testCtx(t)
	stream := newStream("customer")
	first := newEvents("Created", 2)
	res1 := mustAppend(t, ctx, s, stream, domain.ExpectNoStream, first...)
	before := tail(t, ctx, s)

	retry := func(exp domain.ExpectedRevision, events []domain.EventData, want domain.AppendResult) {
		t.Helper()
		res, err := s.Append(ctx, stream, exp, events)
		if err != nil {
			t.Fatalf("retry expecting %s: %v", exp, err)
		}
		if res.LastRevision != want.LastRevision || res.Position != want.Position {
			t.Fatalf("retry expecting %s: result %+v, want the original %+v", exp, res, want)
		}
	}
	retry(domain.ExpectNoStream, first, res1)
	checkUnchanged(t, ctx, s, before, "an exact retry")

	second := []domain.EventData{newEvent("Updated", 0)}
	res2 := mustAppend(t, ctx, s, stream, domain.ExpectRevision(1), second...)
	before = tail(t, ctx, s)
	// The stream moved on, so every condition below is stale or would allow a
	// new write; the retry must still return what the original append did.
	for _, exp := range []domain.ExpectedRevision{
		domain.ExpectNoStream, domain.ExpectRevision(1), domain.ExpectRevision(7),
		domain.ExpectAny, domain.ExpectStreamExists, domain.ExpectRevision(2),
	} {
		retry(exp, first, res1)
		retry(exp, second, res2)
	}
	checkUnchanged(t, ctx, s, before, "stale retries")
	if got := mustReadStream(t, ctx, s, stream); len(got) != 3 {
		t.Fatalf("stream has %d events after retries, want 3", len(got))
	}
}

func testDuplicateEventID(t *testing.T, s domain.EventStore) {
	ctx := testCtx(t)
	stream := newStream("customer")
	stored := newEvents("Created", 3)
	mustAppend(t, ctx, s, stream, domain.ExpectNoStream, stored...)
	before := tail(t, ctx, s)
	other := newStream("customer")
	fresh := newEvent("Fresh", 9)

	cases := []struct {
		name   string
		stream string
		exp    domain.ExpectedRevision
		events []domain.EventData
	}{
		{"OtherStream", other, domain.ExpectAny, stored[:1]},
		{"OtherStreamNoStream", other, domain.ExpectNoStream, stored},
		{"NewThenStored", stream, domain.ExpectAny, []domain.EventData{fresh, stored[0]}},
		{"StoredThenNew", stream, domain.ExpectRevision(2), []domain.EventData{stored[2], fresh}},
		{"Reordered", stream, domain.ExpectAny, []domain.EventData{stored[1], stored[0]}},
		{"RepeatedInBatch", other, domain.ExpectNoStream, []domain.EventData{fresh, fresh}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Append(ctx, tc.stream, tc.exp, tc.events)
			if !errors.Is(err, domain.ErrDuplicateEventID) {
				t.Fatalf("got %v, want ErrDuplicateEventID", err)
			}
			checkUnchanged(t, ctx, s, before, "a duplicate append")
		})
	}
	if _, err := s.ReadStream(ctx, other, domain.Forwards, 0, 0); !errors.Is(err, domain.ErrStreamNotFound) {
		t.Fatalf("other stream after duplicate appends: got %v, want ErrStreamNotFound", err)
	}
	if got := mustReadStream(t, ctx, s, stream); len(got) != 3 {
		t.Fatalf("stream has %d events, want 3", len(got))
	}
}

func testMultiEventAppend(t *testing.T, s domain.EventStore) {
	ctx := testCtx(t)
	stream := newStream("customer")
	events := newEvents("Step", 5)
	res := mustAppend(t, ctx, s, stream, domain.ExpectNoStream, events...)
	if res.LastRevision != 4 {
		t.Fatalf("last revision %d, want 4", res.LastRevision)
	}
	got := mustReadStream(t, ctx, s, stream)
	if !sameIDs(ids(got), dataIDs(events)) {
		t.Fatalf("stream holds %v, want %v", ids(got), dataIDs(events))
	}
	checkRevisions(t, got, 0)
	checkGlobalOrder(t, got)
	if got[4].Position != res.Position {
		t.Fatalf("result position %s, last event at %s", res.Position, got[4].Position)
	}

	more := newEvents("More", 3)
	res = mustAppend(t, ctx, s, stream, domain.ExpectRevision(4), more...)
	if res.LastRevision != 7 {
		t.Fatalf("last revision %d, want 7", res.LastRevision)
	}
	got = mustReadStream(t, ctx, s, stream)
	checkRevisions(t, got, 0)
	if len(got) != 8 || got[7].Position != res.Position {
		t.Fatalf("stream has %d events, result position %s", len(got), res.Position)
	}

	// A batch whose last event fails must leave none of the others behind.
	before := tail(t, ctx, s)
	bad := append(newEvents("Partial", 2), events[0])
	if _, err := s.Append(ctx, stream, domain.ExpectAny, bad); err == nil {
		t.Fatal("append of a batch ending in a stored id succeeded")
	}
	checkUnchanged(t, ctx, s, before, "a failed batch")
}

func testEnvelopeRoundTrip(t *testing.T, s domain.EventStore) {
	ctx := testCtx(t)
	stream := newStream("customer")
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	full := domain.EventData{
		ID:             uuid.New(),
		Type:           "CustomerOnboarded",
		SchemaVersion:  3,
		OccurredAt:     time.Date(2031, 7, 14, 9, 26, 53, 123456789, zone),
		Actor:          domain.Actor{Kind: domain.ActorAPIKey, ID: "key-42", Company: "Acme Ltd"},
		CorrelationID:  "corr-1",
		CausationID:    "cmd-1",
		IdempotencyKey: "idem-" + uuid.NewString(),
		// Spacing and key order are part of what is hashed; a store must
		// keep the bytes, not an equivalent document.
		Data:     json.RawMessage(`{"b": 1,  "a":[1, 2.50], "s":"ünïcødé \u00e9"}`),
		Personal: json.RawMessage(`{"name":"Ada Lovelace","dob":"1815-12-10"}`),
	}
	bare := domain.EventData{
		ID:            uuid.New(),
		Type:          "NoteAdded",
		SchemaVersion: 1,
		OccurredAt:    time.Date(2024, 2, 29, 23, 59, 59, 1, time.UTC),
		Actor:         domain.Actor{Kind: domain.ActorSystem, ID: "scheduler"},
		Data:          json.RawMessage(`{}`),
	}
	sent := []domain.EventData{full, bare}
	start := time.Now()
	res := mustAppend(t, ctx, s, stream, domain.ExpectNoStream, sent...)
	end := time.Now()

	fromStream := mustReadStream(t, ctx, s, stream)
	var fromAll []domain.RecordedEvent
	for _, e := range readAllAfter(t, ctx, s, domain.Start) {
		if e.Stream == stream {
			fromAll = append(fromAll, e)
		}
	}
	for name, got := range map[string][]domain.RecordedEvent{"ReadStream": fromStream, "ReadAll": fromAll} {
		if len(got) != 2 {
			t.Fatalf("%s returned %d events, want 2", name, len(got))
		}
		prev := ""
		for i, e := range got {
			want := sent[i]
			where := fmt.Sprintf("%s event %d", name, i)
			if e.ID != want.ID || e.Type != want.Type || e.SchemaVersion != want.SchemaVersion {
				t.Errorf("%s: id/type/version %s %q %d, want %s %q %d", where, e.ID, e.Type, e.SchemaVersion, want.ID, want.Type, want.SchemaVersion)
			}
			if !e.OccurredAt.Equal(want.OccurredAt) {
				t.Errorf("%s: occurred at %s, want %s", where, e.OccurredAt.Format(time.RFC3339Nano), want.OccurredAt.Format(time.RFC3339Nano))
			}
			if e.Actor != want.Actor || e.CorrelationID != want.CorrelationID || e.CausationID != want.CausationID || e.IdempotencyKey != want.IdempotencyKey {
				t.Errorf("%s: envelope %+v %q %q %q, want %+v %q %q %q", where, e.Actor, e.CorrelationID, e.CausationID, e.IdempotencyKey,
					want.Actor, want.CorrelationID, want.CausationID, want.IdempotencyKey)
			}
			if !bytes.Equal(e.Data, want.Data) {
				t.Errorf("%s: data %s, want %s", where, e.Data, want.Data)
			}
			if !bytes.Equal(e.Personal, want.Personal) {
				t.Errorf("%s: personal %q, want %q", where, e.Personal, want.Personal)
			}
			if e.Stream != stream || e.Revision != uint64(i) {
				t.Errorf("%s: at %s/%d, want %s/%d", where, e.Stream, e.Revision, stream, i)
			}
			if !domain.Start.Less(e.Position) {
				t.Errorf("%s: position %s is not after Start", where, e.Position)
			}
			if e.RecordedAt.Before(start.Add(-time.Minute)) || e.RecordedAt.After(end.Add(time.Minute)) {
				t.Errorf("%s: recorded at %s, append ran %s to %s", where, e.RecordedAt, start, end)
			}
			if e.PrevHash != prev {
				t.Errorf("%s: previous hash %q, want %q", where, e.PrevHash, prev)
			}
			// Hashing what was sent proves the store hashed the caller's
			// event; hashing what was read proves it gave back the same.
			if h := domain.ChainHash(prev, stream, uint64(i), want); e.Hash != h {
				t.Errorf("%s: hash %s, want %s", where, e.Hash, h)
			}
			if h := domain.ChainHash(e.PrevHash, e.Stream, e.Revision, e.EventData); e.Hash != h {
				t.Errorf("%s: hash %s does not match the event as read (%s)", where, e.Hash, h)
			}
			prev = e.Hash
		}
		if got[1].Position != res.Position {
			t.Errorf("%s: last event at %s, append said %s", name, got[1].Position, res.Position)
		}
		if broken := domain.VerifyChain(got); broken != nil {
			t.Errorf("%s: chain broken: %+v", name, *broken)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// The chain continues across appends.
	mustAppend(t, ctx, s, stream, domain.ExpectRevision(1), newEvents("Later", 2)...)
	got := mustReadStream(t, ctx, s, stream)
	if got[2].PrevHash != got[1].Hash {
		t.Fatalf("event 2 links to %q, event 1 hashes to %q", got[2].PrevHash, got[1].Hash)
	}
	if broken := domain.VerifyChain(got); broken != nil {
		t.Fatalf("chain broken: %+v", *broken)
	}
}

func testReadStream(t *testing.T, s domain.EventStore) {
	ctx := testCtx(t)
	stream := newStream("customer")
	events := newEvents("Step", 10)
	mustAppend(t, ctx, s, stream, domain.ExpectNoStream, events[:4]...)
	mustAppend(t, ctx, s, stream, domain.ExpectRevision(3), events[4:]...)
	// Another stream in between must not leak into reads.
	mustAppend(t, ctx, s, newStream("customer"), domain.ExpectNoStream, newEvents("Noise", 2)...)

	revs := func(rs ...uint64) []uint64 { return rs }
	cases := []struct {
		name  string
		dir   domain.Direction
		from  uint64
		limit int
		want  []uint64
	}{
		{"ForwardsAll", domain.Forwards, 0, 0, revs(0, 1, 2, 3, 4, 5, 6, 7, 8, 9)},
		{"ForwardsNegativeLimit", domain.Forwards, 0, -1, revs(0, 1, 2, 3, 4, 5, 6, 7, 8, 9)},
		{"ForwardsFromLimit", domain.Forwards, 3, 4, revs(3, 4, 5, 6)},
		{"ForwardsLimitPastEnd", domain.Forwards, 8, 5, revs(8, 9)},
		{"ForwardsFromLast", domain.Forwards, 9, 0, revs(9)},
		{"ForwardsPastEnd", domain.Forwards, 10, 0, nil},
		{"BackwardsFromEnd", domain.Backwards, domain.StreamEnd, 0, revs(9, 8, 7, 6, 5, 4, 3, 2, 1, 0)},
		{"BackwardsFromEndLimit", domain.Backwards, domain.StreamEnd, 1, revs(9)},
		{"BackwardsFromLimit", domain.Backwards, 5, 3, revs(5, 4, 3)},
		{"BackwardsFromPastEnd", domain.Backwards, 20, 2, revs(9, 8)},
		{"BackwardsFromFirst", domain.Backwards, 0, 0, revs(0)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ReadStream(ctx, stream, tc.dir, tc.from, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			var gotRevs []uint64
			for _, e := range got {
				if e.Stream != stream {
					t.Fatalf("read returned an event of stream %s", e.Stream)
				}
				if e.ID != events[e.Revision].ID {
					t.Fatalf("revision %d holds event %s, want %s", e.Revision, e.ID, events[e.Revision].ID)
				}
				gotRevs = append(gotRevs, e.Revision)
			}
			if fmt.Sprint(gotRevs) != fmt.Sprint(tc.want) {
				t.Fatalf("read revisions %v, want %v", gotRevs, tc.want)
			}
		})
	}
}

func testReadStreamMissing(t *testing.T, s domain.EventStore) {
	ctx := testCtx(t)
	mustAppend(t, ctx, s, newStream("customer"), domain.ExpectNoStream, newEvent("Created", 0))
	missing := newStream("missing")
	for _, dir := range []domain.Direction{domain.Forwards, domain.Backwards} {
		from := uint64(0)
		if dir == domain.Backwards {
			from = domain.StreamEnd
		}
		if _, err := s.ReadStream(ctx, missing, dir, from, 10); !errors.Is(err, domain.ErrStreamNotFound) {
			t.Fatalf("reading a missing stream (direction %d): got %v, want ErrStreamNotFound", dir, err)
		}
	}
}

func testReadAll(t *testing.T, s domain.EventStore) {
	ctx := testCtx(t)
	base := tail(t, ctx, s)
	streams := []string{newStream("a"), newStream("b"), newStream("c")}
	var written []uuid.UUID
	for i := range 9 {
		events := newEvents("Step", 1+i%2)
		mustAppend(t, ctx, s, streams[i%3], domain.ExpectAny, events...)
		written = append(written, dataIDs(events)...)
	}
	all := readAllAfter(t, ctx, s, base)
	if !sameIDs(ids(all), written) {
		t.Fatalf("ReadAll returned %v, want the appends in order %v", ids(all), written)
	}
	checkGlobalOrder(t, all)
	checkStreamsInOrder(t, all)

	for _, limit := range []int{1, 2, 3, 5} {
		var paged []domain.RecordedEvent
		after := base
		for {
			page, err := s.ReadAll(ctx, after, limit)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > limit {
				t.Fatalf("limit %d returned %d events", limit, len(page))
			}
			paged = append(paged, page...)
			if len(page) == 0 {
				break
			}
			after = page[len(page)-1].Position
		}
		if !sameIDs(ids(paged), ids(all)) {
			t.Fatalf("paging by %d returned %v, one read returned %v", limit, ids(paged), ids(all))
		}
		for i := range paged {
			if paged[i].Position != all[i].Position {
				t.Fatalf("paging by %d: event %d at %s, one read says %s", limit, i, paged[i].Position, all[i].Position)
			}
		}
	}

	mid := all[4].Position
	rest, err := s.ReadAll(ctx, mid, 100)
	if err != nil {
		t.Fatal(err)
	}
	if !sameIDs(ids(rest), ids(all[5:])) {
		t.Fatalf("ReadAll after %s returned %v, want %v", mid, ids(rest), ids(all[5:]))
	}
	end, err := s.ReadAll(ctx, all[len(all)-1].Position, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(end) != 0 {
		t.Fatalf("ReadAll after the last event returned %d events", len(end))
	}
}

// subscription collects what SubscribeAll delivers.
type subscription struct {
	mu     sync.Mutex
	events []domain.RecordedEvent
	change chan struct{} // closed and replaced on each event
	cancel context.CancelFunc
	done   chan error
}

func subscribe(ctx context.Context, s domain.EventStore, after domain.Position) *subscription {
	ctx, cancel := context.WithCancel(ctx)
	sub := &subscription{change: make(chan struct{}), cancel: cancel, done: make(chan error, 1)}
	go func() {
		sub.done <- s.SubscribeAll(ctx, after, func(_ context.Context, e domain.RecordedEvent) error {
			sub.mu.Lock()
			sub.events = append(sub.events, e)
			close(sub.change)
			sub.change = make(chan struct{})
			sub.mu.Unlock()
			return nil
		})
	}()
	return sub
}

// waitFor waits until the subscription has delivered n events.
func (sub *subscription) waitFor(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		sub.mu.Lock()
		got, change := len(sub.events), sub.change
		sub.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-change:
		case err := <-sub.done:
			t.Fatalf("subscription ended after %d of %d events: %v", got, n, err)
		case <-deadline:
			t.Fatalf("subscription delivered %d of %d events in %s", got, n, timeout)
		}
	}
}

// stop ends the subscription and returns what it delivered.
func (sub *subscription) stop(t *testing.T) []domain.RecordedEvent {
	t.Helper()
	sub.cancel()
	select {
	case err := <-sub.done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("SubscribeAll returned %v after its context was cancelled, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("SubscribeAll did not return after its context was cancelled")
	}
	sub.mu.Lock()
	defer sub.mu.Unlock()
	return sub.events
}

// checkDelivered compares a subscription with the global log it followed.
func checkDelivered(t *testing.T, delivered, log []domain.RecordedEvent) {
	t.Helper()
	seen := make(map[uuid.UUID]bool, len(delivered))
	for _, e := range delivered {
		if seen[e.ID] {
			t.Fatalf("event %s delivered twice", e.ID)
		}
		seen[e.ID] = true
	}
	checkGlobalOrder(t, delivered)
	if len(delivered) != len(log) {
		t.Fatalf("subscription delivered %d events, the log holds %d", len(delivered), len(log))
	}
	for i := range log {
		if delivered[i].ID != log[i].ID || delivered[i].Position != log[i].Position {
			t.Fatalf("event %d: delivered %s at %s, the log has %s at %s", i, delivered[i].ID, delivered[i].Position, log[i].ID, log[i].Position)
		}
	}
}

func testSubscribeConcurrentWriters(t *testing.T, s domain.EventStore) {
	ctx := testCtx(t)
	const writers, appendsEach, streamCount = 16, 50, 24
	base := tail(t, ctx, s)
	sub := subscribe(ctx, s, base)
	defer sub.cancel()

	// The marker proves the subscription is live before the writers start.
	mustAppend(t, ctx, s, newStream("marker"), domain.ExpectNoStream, newEvent("Marker", 0))
	sub.waitFor(t, 1, 20*time.Second)

	streams := make([]string, streamCount)
	for i := range streams {
		streams[i] = newStream("customer")
	}
	batch := func(i int) int {
		if i%7 == 3 {
			return 3
		}
		return 1
	}
	total := 1
	for range writers {
		for i := range appendsEach {
			total += batch(i)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range appendsEach {
				stream := streams[(w*7+i)%streamCount]
				if _, err := s.Append(ctx, stream, domain.ExpectAny, newEvents("Concurrent", batch(i))); err != nil {
					errs <- fmt.Errorf("writer %d append %d: %w", w, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	sub.waitFor(t, total, 30*time.Second)
	delivered := sub.stop(t)
	log := readAllAfter(t, ctx, s, base)
	if len(log) != total {
		t.Fatalf("the log holds %d events after the writers, want %d", len(log), total)
	}
	checkDelivered(t, delivered, log)
	checkStreamsInOrder(t, delivered)
	// Writers raced on shared streams; each chain must still hold.
	for _, stream := range streams {
		if broken := domain.VerifyChain(mustReadStream(t, ctx, s, stream)); broken != nil {
			t.Fatalf("chain of %s broken under concurrent appends: %+v", stream, *broken)
		}
	}
}

func testSubscribeCatchUpThenLive(t *testing.T, s domain.EventStore) {
	ctx := testCtx(t)
	base := tail(t, ctx, s)
	a, b := newStream("a"), newStream("b")
	for i := range 5 {
		mustAppend(t, ctx, s, []string{a, b}[i%2], domain.ExpectAny, newEvents("Old", 4)...)
	}
	sub := subscribe(ctx, s, base)
	defer sub.cancel()
	sub.waitFor(t, 20, 20*time.Second)
	for i := range 10 {
		mustAppend(t, ctx, s, []string{a, b}[i%2], domain.ExpectAny, newEvent("New", i))
	}
	sub.waitFor(t, 30, 20*time.Second)
	delivered := sub.stop(t)
	checkDelivered(t, delivered, readAllAfter(t, ctx, s, base))
}

func testSubscribeResume(t *testing.T, s domain.EventStore) {
	ctx := testCtx(t)
	base := tail(t, ctx, s)
	stream := newStream("customer")
	events := newEvents("Step", 10)
	mustAppend(t, ctx, s, stream, domain.ExpectNoStream, events[:3]...)
	mustAppend(t, ctx, s, stream, domain.ExpectRevision(2), events[3:]...)

	const k = 4
	var first []domain.RecordedEvent
	err := s.SubscribeAll(ctx, base, func(_ context.Context, e domain.RecordedEvent) error {
		first = append(first, e)
		if len(first) == k {
			return errStop
		}
		return nil
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("SubscribeAll returned %v, want the handler's error", err)
	}
	if !sameIDs(ids(first), dataIDs(events[:k])) {
		t.Fatalf("first subscription delivered %v, want %v", ids(first), dataIDs(events[:k]))
	}

	var rest []domain.RecordedEvent
	err = s.SubscribeAll(ctx, first[k-1].Position, func(_ context.Context, e domain.RecordedEvent) error {
		rest = append(rest, e)
		if len(rest) == len(events)-k {
			return errStop
		}
		return nil
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("resumed SubscribeAll returned %v, want the handler's error", err)
	}
	if !sameIDs(ids(rest), dataIDs(events[k:])) {
		t.Fatalf("resumed subscription delivered %v, want %v", ids(rest), dataIDs(events[k:]))
	}
}

func testConcurrentExpectRevision(t *testing.T, s domain.EventStore) {
	ctx := testCtx(t)
	const rounds, racers = 5, 8
	stream := newStream("customer")
	head := mustAppend(t, ctx, s, stream, domain.ExpectNoStream, newEvent("Created", 0)).LastRevision
	for r := range rounds {
		exp := domain.ExpectRevision(head)
		start := make(chan struct{})
		results := make([]domain.AppendResult, racers)
		errs := make([]error, racers)
		var wg sync.WaitGroup
		for i := range racers {
			wg.Go(func() {
				<-start
				results[i], errs[i] = s.Append(ctx, stream, exp, newEvents("Race", 1+i%2))
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for i, err := range errs {
			if err != nil {
				continue
			}
			if winner >= 0 {
				t.Fatalf("round %d: appends %d and %d both won expecting revision %d", r, winner, i, head)
			}
			winner = i
		}
		if winner < 0 {
			t.Fatalf("round %d: no append expecting revision %d won: %v", r, head, errs[0])
		}
		next := results[winner].LastRevision
		if want := head + uint64(1+winner%2); next != want {
			t.Fatalf("round %d: winner left the stream at %d, want %d", r, next, want)
		}
		for i, err := range errs {
			if i != winner {
				checkConflict(t, err, stream, exp, next, true)
			}
		}
		head = next
	}
	got := mustReadStream(t, ctx, s, stream)
	if uint64(len(got)) != head+1 {
		t.Fatalf("stream has %d events, want %d", len(got), head+1)
	}
	if broken := domain.VerifyChain(got); broken != nil {
		t.Fatalf("chain broken: %+v", *broken)
	}
}

func testCancelledContext(t *testing.T, s domain.EventStore) {
	ctx := testCtx(t)
	existing := newStream("customer")
	mustAppend(t, ctx, s, existing, domain.ExpectNoStream, newEvents("Created", 2)...)
	before := tail(t, ctx, s)

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	stream := newStream("customer")
	if _, err := s.Append(cancelled, stream, domain.ExpectNoStream, newEvents("Created", 1)); err == nil {
		t.Fatal("Append with a cancelled context succeeded")
	}
	checkUnchanged(t, ctx, s, before, "an append with a cancelled context")
	if _, err := s.ReadStream(cancelled, existing, domain.Forwards, 0, 0); err == nil {
		t.Fatal("ReadStream with a cancelled context succeeded")
	}
	if _, err := s.ReadAll(cancelled, domain.Start, 10); err == nil {
		t.Fatal("ReadAll with a cancelled context succeeded")
	}
	errc := make(chan error, 1)
	go func() {
		errc <- s.SubscribeAll(cancelled, domain.Start, func(context.Context, domain.RecordedEvent) error { return nil })
	}()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("SubscribeAll with a cancelled context returned %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("SubscribeAll with a cancelled context did not return")
	}

	// A live subscription waiting for new events also ends with its context.
	sub := subscribe(ctx, s, before)
	time.Sleep(20 * time.Millisecond)
	sub.stop(t)
}

// tailer is implemented by stores that report the end of the log cheaply.
type tailer interface {
	Tail(ctx context.Context) (domain.Position, error)
}

func testTail(t *testing.T, s domain.EventStore) {
	ts, ok := s.(tailer)
	if !ok {
		t.Skip("the store has no Tail")
	}
	ctx := testCtx(t)
	for range 2 {
		res := mustAppend(t, ctx, s, newStream("customer"), domain.ExpectNoStream, newEvents("Created", 2)...)
		got, err := ts.Tail(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// The suite's tests run one after another, so nothing was appended
		// since.
		if got != res.Position {
			t.Fatalf("tail %s, the last append is at %s", got, res.Position)
		}
		if want := tail(t, ctx, s); got != want {
			t.Fatalf("tail %s, the log ends at %s", got, want)
		}
	}
}
