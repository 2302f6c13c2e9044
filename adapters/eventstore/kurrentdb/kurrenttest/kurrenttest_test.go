package kurrenttest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/kycengine/kyc/adapters/eventstore/kurrentdb/kurrenttest"
)

func newClient(t *testing.T, srv *kurrenttest.Server) *esdb.Client {
	t.Helper()
	cfg, err := esdb.ParseConnectionString(srv.URL())
	if err != nil {
		t.Fatalf("parse %q: %v", srv.URL(), err)
	}
	cfg.Logger = esdb.NoopLogging()
	c, err := esdb.NewClient(cfg)
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func jsonEvents(typ string, n int) []esdb.EventData {
	evs := make([]esdb.EventData, n)
	for i := range evs {
		evs[i] = esdb.EventData{
			EventID:     uuid.New(),
			EventType:   typ,
			ContentType: esdb.ContentTypeJson,
			Data:        []byte(fmt.Sprintf(`{"n":%d}`, i)),
			Metadata:    []byte(fmt.Sprintf(`{"m":%d}`, i)),
		}
	}
	return evs
}

func appendEvents(t *testing.T, c *esdb.Client, stream string, exp esdb.ExpectedRevision, evs ...esdb.EventData) *esdb.WriteResult {
	t.Helper()
	wr, err := c.AppendToStream(testContext(t), stream, esdb.AppendToStreamOptions{ExpectedRevision: exp}, evs...)
	if err != nil {
		t.Fatalf("append to %s: %v", stream, err)
	}
	return wr
}

func drain(rs *esdb.ReadStream, err error) ([]*esdb.RecordedEvent, error) {
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []*esdb.RecordedEvent
	for {
		ev, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, ev.OriginalEvent())
	}
}

func readStream(t *testing.T, c *esdb.Client, stream string, dir esdb.Direction, from esdb.StreamPosition, count uint64) []*esdb.RecordedEvent {
	t.Helper()
	rs, err := c.ReadStream(testContext(t), stream, esdb.ReadStreamOptions{Direction: dir, From: from}, count)
	evs, err := drain(rs, err)
	if err != nil {
		t.Fatalf("read %s: %v", stream, err)
	}
	return evs
}

func readAll(t *testing.T, c *esdb.Client, dir esdb.Direction, from esdb.AllPosition, count uint64) []*esdb.RecordedEvent {
	t.Helper()
	rs, err := c.ReadAll(testContext(t), esdb.ReadAllOptions{Direction: dir, From: from}, count)
	evs, err := drain(rs, err)
	if err != nil {
		t.Fatalf("read $all: %v", err)
	}
	return evs
}

func errorCode(t *testing.T, err error) esdb.ErrorCode {
	t.Helper()
	var e *esdb.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *esdb.Error", err, err)
	}
	return e.Code()
}

func wantCode(t *testing.T, err error, want esdb.ErrorCode) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want code %d", want)
	}
	if got := errorCode(t, err); got != want {
		t.Fatalf("error %v: code %d, want %d", err, got, want)
	}
}

func revisions(evs []*esdb.RecordedEvent) []uint64 {
	out := make([]uint64, len(evs))
	for i, e := range evs {
		out[i] = e.EventNumber
	}
	return out
}

func equalRevs(got []*esdb.RecordedEvent, want ...uint64) bool {
	r := revisions(got)
	if len(r) != len(want) {
		return false
	}
	for i := range r {
		if r[i] != want[i] {
			return false
		}
	}
	return true
}

func TestAppendAndReadStream(t *testing.T) {
	srv := kurrenttest.Start(t)
	c := newClient(t, srv)

	evs := jsonEvents("Opened", 5)
	evs[4].ContentType = esdb.ContentTypeBinary
	wr := appendEvents(t, c, "acct-1", esdb.NoStream{}, evs...)
	if wr.NextExpectedVersion != 4 {
		t.Fatalf("NextExpectedVersion = %d, want 4", wr.NextExpectedVersion)
	}

	got := readStream(t, c, "acct-1", esdb.Forwards, esdb.Start{}, math.MaxUint64)
	if !equalRevs(got, 0, 1, 2, 3, 4) {
		t.Fatalf("forwards revisions = %v", revisions(got))
	}
	for i, e := range got {
		if e.EventID != evs[i].EventID || e.EventType != "Opened" || e.StreamID != "acct-1" ||
			string(e.Data) != string(evs[i].Data) || string(e.UserMetadata) != string(evs[i].Metadata) {
			t.Fatalf("event %d = %+v, want %+v", i, e, evs[i])
		}
		wantCT := "application/json"
		if i == 4 {
			wantCT = "application/octet-stream"
		}
		if e.ContentType != wantCT {
			t.Fatalf("event %d content type %q, want %q", i, e.ContentType, wantCT)
		}
		if d := time.Since(e.CreatedDate); d < -time.Second || d > time.Minute {
			t.Fatalf("event %d created %v, not near now", i, e.CreatedDate)
		}
		if e.Position.Commit != e.Position.Prepare {
			t.Fatalf("event %d position %+v: commit != prepare", i, e.Position)
		}
		if i > 0 && e.Position.Commit <= got[i-1].Position.Commit+1 {
			t.Fatalf("positions %d then %d: want gaps larger than one", got[i-1].Position.Commit, e.Position.Commit)
		}
	}
	if last := got[4].Position; wr.CommitPosition != last.Commit || wr.PreparePosition != last.Prepare {
		t.Fatalf("write result position %d/%d, last event at %+v", wr.CommitPosition, wr.PreparePosition, last)
	}

	cases := []struct {
		name  string
		dir   esdb.Direction
		from  esdb.StreamPosition
		count uint64
		want  []uint64
	}{
		{"forwards from revision with count", esdb.Forwards, esdb.Revision(2), 2, []uint64{2, 3}},
		{"forwards count 1", esdb.Forwards, esdb.Start{}, 1, []uint64{0}},
		{"forwards past end", esdb.Forwards, esdb.Revision(10), 10, nil},
		{"forwards from end", esdb.Forwards, esdb.End{}, 10, nil},
		{"backwards from end with count", esdb.Backwards, esdb.End{}, 3, []uint64{4, 3, 2}},
		{"backwards from revision past end", esdb.Backwards, esdb.Revision(100), 2, []uint64{4, 3}},
		{"backwards from revision", esdb.Backwards, esdb.Revision(1), math.MaxUint64, []uint64{1, 0}},
		{"backwards from start", esdb.Backwards, esdb.Start{}, 5, []uint64{0}},
	}
	for _, tc := range cases {
		got := readStream(t, c, "acct-1", tc.dir, tc.from, tc.count)
		if !equalRevs(got, tc.want...) {
			t.Errorf("%s: revisions %v, want %v", tc.name, revisions(got), tc.want)
		}
	}
}

func TestExpectedRevisions(t *testing.T) {
	srv := kurrenttest.Start(t)
	c := newClient(t, srv)
	ctx := testContext(t)
	appendTo := func(stream string, exp esdb.ExpectedRevision, n int) (*esdb.WriteResult, error) {
		return c.AppendToStream(ctx, stream, esdb.AppendToStreamOptions{ExpectedRevision: exp}, jsonEvents("E", n)...)
	}

	_, err := appendTo("s", esdb.StreamExists{}, 1)
	wantCode(t, err, esdb.ErrorCodeWrongExpectedVersion)
	_, err = appendTo("s", esdb.Revision(0), 1)
	wantCode(t, err, esdb.ErrorCodeWrongExpectedVersion)

	wr, err := appendTo("s", esdb.NoStream{}, 2)
	if err != nil || wr.NextExpectedVersion != 1 {
		t.Fatalf("NoStream on a new stream: %+v, %v", wr, err)
	}
	_, err = appendTo("s", esdb.NoStream{}, 1)
	wantCode(t, err, esdb.ErrorCodeWrongExpectedVersion)

	wr, err = appendTo("s", esdb.StreamExists{}, 1)
	if err != nil || wr.NextExpectedVersion != 2 {
		t.Fatalf("StreamExists on an existing stream: %+v, %v", wr, err)
	}
	wr, err = appendTo("s", esdb.Revision(2), 2)
	if err != nil || wr.NextExpectedVersion != 4 {
		t.Fatalf("Revision(2) at revision 2: %+v, %v", wr, err)
	}
	_, err = appendTo("s", esdb.Revision(2), 1) // stale
	wantCode(t, err, esdb.ErrorCodeWrongExpectedVersion)
	_, err = appendTo("s", esdb.Revision(9), 1) // ahead
	wantCode(t, err, esdb.ErrorCodeWrongExpectedVersion)
	if !strings.Contains(err.Error(), "expecting '9' but got '4'") {
		t.Fatalf("wrong expected version details: %v", err)
	}

	wr, err = appendTo("s", esdb.Any{}, 1)
	if err != nil || wr.NextExpectedVersion != 5 {
		t.Fatalf("Any: %+v, %v", wr, err)
	}
	wr, err = appendTo("fresh", esdb.Any{}, 1)
	if err != nil || wr.NextExpectedVersion != 0 {
		t.Fatalf("Any on a new stream: %+v, %v", wr, err)
	}
	if got := readStream(t, c, "s", esdb.Forwards, esdb.Start{}, math.MaxUint64); len(got) != 6 {
		t.Fatalf("stream has %d events, want 6", len(got))
	}

	// An empty batch reports the current state and writes nothing.
	wr, err = appendTo("s", esdb.Revision(5), 0)
	if err != nil || wr.NextExpectedVersion != 5 {
		t.Fatalf("empty append: %+v, %v", wr, err)
	}
}

func TestIdempotentAppend(t *testing.T) {
	srv := kurrenttest.Start(t)
	c := newClient(t, srv)
	ctx := testContext(t)

	first := jsonEvents("E", 3)
	before := srv.Appends()
	wr1 := appendEvents(t, c, "idem", esdb.NoStream{}, first...)
	wr2 := appendEvents(t, c, "idem", esdb.NoStream{}, first...)
	if *wr1 != *wr2 || wr2.NextExpectedVersion != 2 {
		t.Fatalf("retry with NoStream: %+v, first write %+v", wr2, wr1)
	}
	if got := srv.Appends() - before; got != 2 {
		t.Fatalf("Appends() grew by %d, want 2", got)
	}

	second := jsonEvents("E", 2)
	wr3 := appendEvents(t, c, "idem", esdb.Revision(2), second...)
	wr4 := appendEvents(t, c, "idem", esdb.Revision(2), second...)
	if *wr3 != *wr4 || wr4.NextExpectedVersion != 4 {
		t.Fatalf("retry with Revision(2): %+v, first write %+v", wr4, wr3)
	}
	// A retry of an older batch answers with that batch's own revision.
	wr5 := appendEvents(t, c, "idem", esdb.Revision(0), first[1:]...)
	if *wr5 != *wr1 {
		t.Fatalf("retry of revisions 1-2: %+v, want %+v", wr5, wr1)
	}
	wr6 := appendEvents(t, c, "idem", esdb.Any{}, second...)
	if *wr6 != *wr3 {
		t.Fatalf("retry with Any: %+v, want %+v", wr6, wr3)
	}
	wr7 := appendEvents(t, c, "idem", esdb.StreamExists{}, first...)
	if *wr7 != *wr1 {
		t.Fatalf("retry with StreamExists: %+v, want %+v", wr7, wr1)
	}

	// Same first id, different rest: a real node reports a wrong expected version.
	corrupt := append([]esdb.EventData{first[0]}, jsonEvents("E", 1)...)
	_, err := c.AppendToStream(ctx, "idem", esdb.AppendToStreamOptions{ExpectedRevision: esdb.Any{}}, corrupt...)
	wantCode(t, err, esdb.ErrorCodeWrongExpectedVersion)
	_, err = c.AppendToStream(ctx, "idem", esdb.AppendToStreamOptions{ExpectedRevision: esdb.Revision(1)}, second...)
	wantCode(t, err, esdb.ErrorCodeWrongExpectedVersion)

	if got := readStream(t, c, "idem", esdb.Forwards, esdb.Start{}, math.MaxUint64); len(got) != 5 {
		t.Fatalf("stream has %d events, want 5", len(got))
	}
	if got := readAll(t, c, esdb.Forwards, esdb.Start{}, math.MaxUint64); len(got) != 6 { // + $settings
		t.Fatalf("$all has %d events, want 6", len(got))
	}
}

func TestReadAll(t *testing.T) {
	srv := kurrenttest.Start(t)
	c := newClient(t, srv)
	appendEvents(t, c, "a-1", esdb.NoStream{}, jsonEvents("A", 2)...)
	appendEvents(t, c, "b-1", esdb.NoStream{}, jsonEvents("B", 1)...)

	all := readAll(t, c, esdb.Forwards, esdb.Start{}, math.MaxUint64)
	type key struct {
		stream string
		rev    uint64
	}
	keys := func(evs []*esdb.RecordedEvent) []key {
		out := make([]key, len(evs))
		for i, e := range evs {
			out[i] = key{e.StreamID, e.EventNumber}
		}
		return out
	}
	want := []key{{"$settings", 0}, {"a-1", 0}, {"a-1", 1}, {"b-1", 0}}
	if fmt.Sprint(keys(all)) != fmt.Sprint(want) {
		t.Fatalf("$all forwards = %v, want %v", keys(all), want)
	}
	if all[0].EventType != "$settings" {
		t.Fatalf("first event type %q, want $settings", all[0].EventType)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Position.Commit <= all[i-1].Position.Commit {
			t.Fatalf("$all positions not increasing: %+v then %+v", all[i-1].Position, all[i].Position)
		}
	}

	mid := all[2].Position
	if got := keys(readAll(t, c, esdb.Forwards, mid, math.MaxUint64)); fmt.Sprint(got) != fmt.Sprint(want[2:]) {
		t.Fatalf("$all forwards from %+v = %v, want %v (inclusive)", mid, got, want[2:])
	}
	if got := keys(readAll(t, c, esdb.Forwards, esdb.Start{}, 2)); fmt.Sprint(got) != fmt.Sprint(want[:2]) {
		t.Fatalf("$all forwards count 2 = %v", got)
	}
	if got := readAll(t, c, esdb.Forwards, esdb.End{}, 10); len(got) != 0 {
		t.Fatalf("$all forwards from end = %v", keys(got))
	}
	if got := keys(readAll(t, c, esdb.Backwards, esdb.End{}, math.MaxUint64)); fmt.Sprint(got) != fmt.Sprint([]key{want[3], want[2], want[1], want[0]}) {
		t.Fatalf("$all backwards = %v", got)
	}
	if got := keys(readAll(t, c, esdb.Backwards, mid, math.MaxUint64)); fmt.Sprint(got) != fmt.Sprint([]key{want[1], want[0]}) {
		t.Fatalf("$all backwards from %+v = %v (exclusive)", mid, got)
	}
	if got := keys(readAll(t, c, esdb.Backwards, esdb.End{}, 1)); fmt.Sprint(got) != fmt.Sprint([]key{want[3]}) {
		t.Fatalf("$all backwards count 1 = %v", got)
	}
}

// next returns the next event, checkpoint or caught-up notice, failing on a drop.
func next(t *testing.T, sub *esdb.Subscription) *esdb.SubscriptionEvent {
	t.Helper()
	ev := sub.Recv()
	if ev.SubscriptionDropped != nil {
		t.Fatalf("subscription dropped: %v", ev.SubscriptionDropped.Error)
	}
	return ev
}

// untilCaughtUp collects events (ignoring checkpoints) until CaughtUp.
func untilCaughtUp(t *testing.T, sub *esdb.Subscription) []*esdb.RecordedEvent {
	t.Helper()
	var out []*esdb.RecordedEvent
	for {
		ev := next(t, sub)
		switch {
		case ev.CaughtUp != nil:
			return out
		case ev.EventAppeared != nil:
			out = append(out, ev.EventAppeared.OriginalEvent())
		}
	}
}

// nextEvent skips checkpoints and returns the next event.
func nextEvent(t *testing.T, sub *esdb.Subscription) *esdb.RecordedEvent {
	t.Helper()
	for {
		ev := next(t, sub)
		if ev.CaughtUp != nil {
			t.Fatalf("second CaughtUp")
		}
		if ev.EventAppeared != nil {
			return ev.EventAppeared.OriginalEvent()
		}
	}
}

func TestSubscribeToAllFilteredConcurrentWriters(t *testing.T) {
	srv := kurrenttest.Start(t)
	c := newClient(t, srv)
	ctx := testContext(t)

	appendEvents(t, c, "acct-0", esdb.NoStream{}, jsonEvents("Opened", 3)...)
	appendEvents(t, c, "other-0", esdb.NoStream{}, jsonEvents("Opened", 2)...)

	sub, err := c.SubscribeToAll(ctx, esdb.SubscribeToAllOptions{
		From:   esdb.Start{},
		Filter: &esdb.SubscriptionFilter{Type: esdb.StreamFilterType, Prefixes: []string{"nomatch-", "acct-"}},
	})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	defer func() { _ = sub.Close() }()

	backlog := untilCaughtUp(t, sub)
	if len(backlog) != 3 || backlog[0].StreamID != "acct-0" || !equalRevs(backlog, 0, 1, 2) {
		t.Fatalf("backlog = %d events %v", len(backlog), revisions(backlog))
	}

	const writers, perWriter = 8, 40
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				exp := esdb.ExpectedRevision(esdb.Revision(uint64(i - 1)))
				if i == 0 {
					exp = esdb.NoStream{}
				}
				opts := esdb.AppendToStreamOptions{ExpectedRevision: exp}
				if _, err := c.AppendToStream(ctx, fmt.Sprintf("acct-w%d", w), opts, jsonEvents("Deposited", 1)...); err != nil {
					t.Errorf("writer %d append %d: %v", w, i, err)
					return
				}
				if _, err := c.AppendToStream(ctx, fmt.Sprintf("other-w%d", w), esdb.AppendToStreamOptions{}, jsonEvents("Noise", 1)...); err != nil {
					t.Errorf("writer %d noise %d: %v", w, i, err)
					return
				}
			}
		}()
	}

	nextRev := map[string]uint64{}
	last := backlog[len(backlog)-1].Position.Commit
	for range writers * perWriter {
		e := nextEvent(t, sub)
		if !strings.HasPrefix(e.StreamID, "acct-w") {
			t.Fatalf("unexpected event from %s", e.StreamID)
		}
		if e.EventNumber != nextRev[e.StreamID] {
			t.Fatalf("%s: got revision %d, want %d (gap or duplicate)", e.StreamID, e.EventNumber, nextRev[e.StreamID])
		}
		nextRev[e.StreamID]++
		if e.Position.Commit <= last {
			t.Fatalf("position %d after %d: not in log order", e.Position.Commit, last)
		}
		last = e.Position.Commit
	}
	wg.Wait()
	if len(nextRev) != writers {
		t.Fatalf("events from %d streams, want %d", len(nextRev), writers)
	}

	// Nothing extra is queued: the next event is the marker written now.
	appendEvents(t, c, "acct-marker", esdb.NoStream{}, jsonEvents("Marker", 1)...)
	if e := nextEvent(t, sub); e.StreamID != "acct-marker" {
		t.Fatalf("after all writers: got %s/%d, want the marker", e.StreamID, e.EventNumber)
	}
}

func TestSubscribeToAllEventTypeRegexAndCheckpoints(t *testing.T) {
	srv := kurrenttest.Start(t)
	c := newClient(t, srv)
	ctx := testContext(t)

	types := []string{"Deposited", "Withdrawn", "DepositReversed", "Closed", "Deposited", "Withdrawn"}
	for _, typ := range types {
		appendEvents(t, c, "acct-1", esdb.Any{}, jsonEvents(typ, 1)...)
	}
	log := readAll(t, c, esdb.Forwards, esdb.Start{}, math.MaxUint64) // $settings + 6

	sub, err := c.SubscribeToAll(ctx, esdb.SubscribeToAllOptions{
		From:               esdb.Start{},
		Filter:             &esdb.SubscriptionFilter{Type: esdb.EventFilterType, Regex: "^Deposit"},
		MaxSearchWindow:    2,
		CheckpointInterval: 1,
	})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	defer func() { _ = sub.Close() }()

	var gotTypes []string
	var checkpoints []uint64
	for caughtUp := false; !caughtUp; {
		ev := next(t, sub)
		switch {
		case ev.CaughtUp != nil:
			caughtUp = true
		case ev.EventAppeared != nil:
			gotTypes = append(gotTypes, ev.EventAppeared.OriginalEvent().EventType)
		case ev.CheckPointReached != nil:
			checkpoints = append(checkpoints, ev.CheckPointReached.Commit)
		}
	}
	if want := "[Deposited DepositReversed Deposited]"; fmt.Sprint(gotTypes) != want {
		t.Fatalf("event types %v, want %s", gotTypes, want)
	}
	// One checkpoint per two scanned events, at the last scanned one.
	want := []uint64{log[1].Position.Commit, log[3].Position.Commit, log[5].Position.Commit}
	if fmt.Sprint(checkpoints) != fmt.Sprint(want) {
		t.Fatalf("checkpoints %v, want %v", checkpoints, want)
	}
}

func TestSubscribeToAllFromPositionIsExclusive(t *testing.T) {
	srv := kurrenttest.Start(t)
	c := newClient(t, srv)
	ctx := testContext(t)

	appendEvents(t, c, "s", esdb.NoStream{}, jsonEvents("E", 3)...)
	evs := readStream(t, c, "s", esdb.Forwards, esdb.Start{}, math.MaxUint64)

	sub, err := c.SubscribeToAll(ctx, esdb.SubscribeToAllOptions{From: evs[1].Position})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	defer func() { _ = sub.Close() }()
	got := untilCaughtUp(t, sub)
	if len(got) != 1 || got[0].StreamID != "s" || got[0].EventNumber != 2 {
		t.Fatalf("from %+v got %v, want only s/2", evs[1].Position, revisions(got))
	}

	fromEnd, err := c.SubscribeToAll(ctx, esdb.SubscribeToAllOptions{From: esdb.End{}})
	if err != nil {
		t.Fatalf("subscribe from end: %v", err)
	}
	defer func() { _ = fromEnd.Close() }()
	if got := untilCaughtUp(t, fromEnd); len(got) != 0 {
		t.Fatalf("subscription from End replayed %d events", len(got))
	}
	appendEvents(t, c, "s2", esdb.NoStream{}, jsonEvents("E", 1)...)
	if e := nextEvent(t, fromEnd); e.StreamID != "s2" {
		t.Fatalf("from End got %s, want s2", e.StreamID)
	}
	if e := nextEvent(t, sub); e.StreamID != "s2" {
		t.Fatalf("live event %s, want s2", e.StreamID)
	}
}

func TestTombstone(t *testing.T) {
	srv := kurrenttest.Start(t)
	c := newClient(t, srv)
	ctx := testContext(t)

	wr := appendEvents(t, c, "gone", esdb.NoStream{}, jsonEvents("E", 2)...)
	_, err := c.TombstoneStream(ctx, "gone", esdb.TombstoneStreamOptions{ExpectedRevision: esdb.Revision(0)})
	if err == nil {
		t.Fatalf("tombstone with a stale revision succeeded")
	}
	res, err := c.TombstoneStream(ctx, "gone", esdb.TombstoneStreamOptions{ExpectedRevision: esdb.Revision(1)})
	if err != nil {
		t.Fatalf("tombstone: %v", err)
	}
	if res.Position.Commit <= wr.CommitPosition {
		t.Fatalf("tombstone position %+v not after the last event at %d", res.Position, wr.CommitPosition)
	}

	_, err = drain(c.ReadStream(ctx, "gone", esdb.ReadStreamOptions{From: esdb.Start{}}, math.MaxUint64))
	wantCode(t, err, esdb.ErrorCodeStreamDeleted)
	_, err = drain(c.ReadStream(ctx, "gone", esdb.ReadStreamOptions{Direction: esdb.Backwards, From: esdb.End{}}, 1))
	wantCode(t, err, esdb.ErrorCodeStreamDeleted)
	_, err = c.AppendToStream(ctx, "gone", esdb.AppendToStreamOptions{}, jsonEvents("E", 1)...)
	wantCode(t, err, esdb.ErrorCodeStreamDeleted)
	_, err = c.AppendToStream(ctx, "gone", esdb.AppendToStreamOptions{ExpectedRevision: esdb.Revision(1)}, jsonEvents("E", 1)...)
	wantCode(t, err, esdb.ErrorCodeStreamDeleted)
	_, err = c.TombstoneStream(ctx, "gone", esdb.TombstoneStreamOptions{ExpectedRevision: esdb.Any{}})
	wantCode(t, err, esdb.ErrorCodeStreamDeleted)

	// As on a real node, $all keeps the events and shows the tombstone record.
	last := readAll(t, c, esdb.Backwards, esdb.End{}, 3)
	if last[0].StreamID != "gone" || last[0].EventType != "$streamDeleted" || last[0].Position != res.Position {
		t.Fatalf("last $all record %+v, want the tombstone", last[0])
	}
	if last[1].StreamID != "gone" || last[1].EventNumber != 1 {
		t.Fatalf("tombstoned events gone from $all: %+v", last[1])
	}

	// A stream that never existed can be tombstoned too.
	if _, err := c.TombstoneStream(ctx, "never", esdb.TombstoneStreamOptions{ExpectedRevision: esdb.NoStream{}}); err != nil {
		t.Fatalf("tombstone a missing stream: %v", err)
	}
	_, err = c.AppendToStream(ctx, "never", esdb.AppendToStreamOptions{ExpectedRevision: esdb.NoStream{}}, jsonEvents("E", 1)...)
	wantCode(t, err, esdb.ErrorCodeStreamDeleted)
}

func TestStreamNotFound(t *testing.T) {
	srv := kurrenttest.Start(t)
	c := newClient(t, srv)
	for _, dir := range []esdb.Direction{esdb.Forwards, esdb.Backwards} {
		rs, err := c.ReadStream(testContext(t), "missing", esdb.ReadStreamOptions{Direction: dir, From: esdb.End{}}, 10)
		got, err := drain(rs, err)
		wantCode(t, err, esdb.ErrorCodeResourceNotFound)
		if len(got) != 0 {
			t.Fatalf("missing stream returned %d events", len(got))
		}
	}
}

func TestStopAndRestart(t *testing.T) {
	srv := kurrenttest.Start(t)
	c := newClient(t, srv)
	ctx := testContext(t)

	wr := appendEvents(t, c, "keep", esdb.NoStream{}, jsonEvents("E", 2)...)
	sub, err := c.SubscribeToAll(ctx, esdb.SubscribeToAllOptions{From: esdb.Start{}})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	defer func() { _ = sub.Close() }()
	if got := untilCaughtUp(t, sub); len(got) != 3 {
		t.Fatalf("backlog %d events, want 3", len(got))
	}

	if err := srv.Restart(); err == nil {
		t.Fatalf("Restart of a running server succeeded")
	}
	srv.Stop()
	srv.Stop() // idempotent

	ev := sub.Recv()
	if ev.SubscriptionDropped == nil {
		t.Fatalf("subscription not dropped by Stop: %+v", ev)
	}
	if code := status.Code(ev.SubscriptionDropped.Error); code != codes.Unavailable {
		t.Fatalf("drop error %v: code %v, want Unavailable", ev.SubscriptionDropped.Error, code)
	}
	short, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := c.AppendToStream(short, "keep", esdb.AppendToStreamOptions{}, jsonEvents("E", 1)...); err == nil {
		t.Fatalf("append to a stopped server succeeded")
	}

	if err := srv.Restart(); err != nil {
		t.Fatalf("restart: %v", err)
	}
	c2 := newClient(t, srv)
	if got := readStream(t, c2, "keep", esdb.Forwards, esdb.Start{}, math.MaxUint64); !equalRevs(got, 0, 1) {
		t.Fatalf("after restart: revisions %v, want [0 1]", revisions(got))
	}
	wr2 := appendEvents(t, c2, "keep", esdb.Revision(1), jsonEvents("E", 1)...)
	if wr2.NextExpectedVersion != 2 || wr2.CommitPosition <= wr.CommitPosition {
		t.Fatalf("append after restart: %+v (before: %+v)", wr2, wr)
	}
}

// TestStringUUIDs uses the raw gRPC API, since the client only ever sends
// structured UUIDs.
func TestStringUUIDs(t *testing.T) {
	srv := kurrenttest.Start(t)
	conn, err := grpc.NewClient(strings.TrimSuffix(strings.TrimPrefix(srv.URL(), "esdb://"), "?tls=false"),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer func() { _ = conn.Close() }()
	ctx := testContext(t)
	cl := api.NewStreamsClient(conn)

	id := uuid.New()
	app, err := cl.Append(ctx)
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(app.Send(&api.AppendReq{Content: &api.AppendReq_Options_{Options: &api.AppendReq_Options{
		StreamIdentifier:       &shared.StreamIdentifier{StreamName: []byte("str")},
		ExpectedStreamRevision: &api.AppendReq_Options_NoStream{NoStream: &shared.Empty{}},
	}}}))
	must(app.Send(&api.AppendReq{Content: &api.AppendReq_ProposedMessage_{ProposedMessage: &api.AppendReq_ProposedMessage{
		Id:       &shared.UUID{Value: &shared.UUID_String_{String_: id.String()}},
		Metadata: map[string]string{"type": "T", "content-type": "application/json"},
		Data:     []byte(`{}`),
	}}}))
	resp, err := app.CloseAndRecv()
	must(err)
	if resp.GetSuccess().GetCurrentRevision() != 0 {
		t.Fatalf("append response %v", resp)
	}

	rd, err := cl.Read(ctx, &api.ReadReq{Options: &api.ReadReq_Options{
		StreamOption: &api.ReadReq_Options_Stream{Stream: &api.ReadReq_Options_StreamOptions{
			StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte("str")},
			RevisionOption:   &api.ReadReq_Options_StreamOptions_Start{Start: &shared.Empty{}},
		}},
		CountOption:  &api.ReadReq_Options_Count{Count: 1},
		FilterOption: &api.ReadReq_Options_NoFilter{NoFilter: &shared.Empty{}},
		UuidOption:   &api.ReadReq_Options_UUIDOption{Content: &api.ReadReq_Options_UUIDOption_String_{String_: &shared.Empty{}}},
	}})
	must(err)
	msg, err := rd.Recv()
	must(err)
	if got := msg.GetEvent().GetEvent().GetId().GetString_(); got != id.String() {
		t.Fatalf("read id %q, want %q", got, id)
	}
}

func TestSlowSubscriberDoesNotBlockAppends(t *testing.T) {
	srv := kurrenttest.Start(t)
	c := newClient(t, srv)
	ctx := testContext(t)

	// Subscribed but not reading: gRPC flow control stalls this call only.
	sub, err := c.SubscribeToAll(ctx, esdb.SubscribeToAllOptions{From: esdb.Start{}})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	defer func() { _ = sub.Close() }()

	const n = 400
	payload := []byte(`"` + strings.Repeat("x", 16<<10) + `"`)
	done := make(chan error, 1)
	go func() {
		for i := range n {
			ev := esdb.EventData{EventType: "Big", ContentType: esdb.ContentTypeJson, Data: payload}
			if _, err := c.AppendToStream(ctx, "big", esdb.AppendToStreamOptions{}, ev); err != nil {
				done <- fmt.Errorf("append %d: %w", i, err)
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("appends blocked behind a subscriber that does not read")
	}

	// The subscription caught up before the appends began; all of them follow.
	got := untilCaughtUp(t, sub)
	for len(got) < n+1 { // + $settings
		got = append(got, nextEvent(t, sub))
	}
	for i, e := range got[1:] {
		if e.StreamID != "big" || e.EventNumber != uint64(i) {
			t.Fatalf("event %d is %s/%d", i, e.StreamID, e.EventNumber)
		}
	}
}
