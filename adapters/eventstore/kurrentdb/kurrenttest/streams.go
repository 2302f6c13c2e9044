package kurrenttest

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

const (
	contentTypeJSON   = "application/json"
	contentTypeBinary = "application/octet-stream"

	// defaultSearchWindow is the read batch size a real node uses as the
	// filter window when the client asks for none.
	defaultSearchWindow = 32
)

// streams implements the Streams gRPC service over the Server's store.
type streams struct {
	api.UnimplementedStreamsServer
	srv *Server
}

// --- Append -----------------------------------------------------------------

func (h *streams) Append(stream api.Streams_AppendServer) error {
	h.srv.appends.Add(1)

	first, err := stream.Recv()
	if err != nil {
		return err
	}
	opts := first.GetOptions()
	if opts == nil {
		return status.Error(codes.InvalidArgument, "first append message must carry the options")
	}
	name := string(opts.GetStreamIdentifier().GetStreamName())
	if name == "" {
		return status.Error(codes.InvalidArgument, "stream name is empty")
	}
	var exp expectation
	switch o := opts.GetExpectedStreamRevision().(type) {
	case *api.AppendReq_Options_Any:
		exp.kind = expectAny
	case *api.AppendReq_Options_NoStream:
		exp.kind = expectNoStream
	case *api.AppendReq_Options_StreamExists:
		exp.kind = expectExists
	case *api.AppendReq_Options_Revision:
		exp = expectation{kind: expectRevision, rev: o.Revision}
	default:
		return status.Error(codes.InvalidArgument, "expected stream revision is missing")
	}

	var evs []proposed
	size := 0
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		msg := req.GetProposedMessage()
		if msg == nil {
			return status.Error(codes.InvalidArgument, "append options sent twice")
		}
		size += proto.Size(msg)
		if size > maxAppendSize {
			stream.SetTrailer(metadata.Pairs(
				"exception", "maximum-append-size-exceeded",
				"maximum-append-size", strconv.Itoa(maxAppendSize),
			))
			return status.Errorf(codes.InvalidArgument, "maximum append size of %d exceeded", maxAppendSize)
		}
		ev, err := toProposed(msg)
		if err != nil {
			return err
		}
		evs = append(evs, ev)
	}

	res := h.srv.store.append(name, exp, evs, time.Now())
	switch {
	case res.deleted:
		stream.SetTrailer(streamDeletedTrailer(name))
		return streamDeletedError(name)
	case res.wrong:
		return stream.SendAndClose(wrongExpectedVersion(opts, res.current))
	}
	ok := &api.AppendResp_Success{}
	if res.current < 0 {
		ok.CurrentRevisionOption = &api.AppendResp_Success_NoStream{NoStream: &shared.Empty{}}
	} else {
		ok.CurrentRevisionOption = &api.AppendResp_Success_CurrentRevision{CurrentRevision: uint64(res.current)}
	}
	if res.last != nil {
		ok.PositionOption = &api.AppendResp_Success_Position{Position: &api.AppendResp_Position{
			CommitPosition:  res.last.pos,
			PreparePosition: res.last.pos,
		}}
	} else {
		ok.PositionOption = &api.AppendResp_Success_NoPosition{NoPosition: &shared.Empty{}}
	}
	return stream.SendAndClose(&api.AppendResp{Result: &api.AppendResp_Success_{Success: ok}})
}

func toProposed(msg *api.AppendReq_ProposedMessage) (proposed, error) {
	id, err := fromProtoUUID(msg.GetId())
	if err != nil {
		return proposed{}, status.Errorf(codes.InvalidArgument, "event id: %v", err)
	}
	typ, okType := msg.GetMetadata()["type"]
	ct, okCT := msg.GetMetadata()["content-type"]
	if !okType || !okCT {
		return proposed{}, status.Error(codes.InvalidArgument, "required metadata properties type and content-type are missing")
	}
	return proposed{
		id:   id,
		typ:  typ,
		json: ct == contentTypeJSON, // a real node keeps only an is-JSON flag
		data: msg.GetData(),
		meta: msg.GetCustomMetadata(),
	}, nil
}

func wrongExpectedVersion(opts *api.AppendReq_Options, current int64) *api.AppendResp {
	w := &api.AppendResp_WrongExpectedVersion{}
	if current < 0 {
		w.CurrentRevisionOption = &api.AppendResp_WrongExpectedVersion_CurrentNoStream{CurrentNoStream: &shared.Empty{}}
	} else {
		w.CurrentRevisionOption = &api.AppendResp_WrongExpectedVersion_CurrentRevision{CurrentRevision: uint64(current)}
	}
	switch o := opts.GetExpectedStreamRevision().(type) {
	case *api.AppendReq_Options_Any:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedAny{ExpectedAny: &shared.Empty{}}
	case *api.AppendReq_Options_NoStream:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedNoStream{ExpectedNoStream: &shared.Empty{}}
	case *api.AppendReq_Options_StreamExists:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedStreamExists{ExpectedStreamExists: &shared.Empty{}}
	case *api.AppendReq_Options_Revision:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedRevision{ExpectedRevision: o.Revision}
	}
	return &api.AppendResp{Result: &api.AppendResp_WrongExpectedVersion_{WrongExpectedVersion: w}}
}

// --- Tombstone --------------------------------------------------------------

func (h *streams) Tombstone(ctx context.Context, req *api.TombstoneReq) (*api.TombstoneResp, error) {
	opts := req.GetOptions()
	name := string(opts.GetStreamIdentifier().GetStreamName())
	if name == "" {
		return nil, status.Error(codes.InvalidArgument, "stream name is empty")
	}
	var exp expectation
	expected := "-2" // ExpectedVersion.Any on a real node
	switch o := opts.GetExpectedStreamRevision().(type) {
	case *api.TombstoneReq_Options_Any:
		exp.kind = expectAny
	case *api.TombstoneReq_Options_NoStream:
		exp.kind, expected = expectNoStream, "-1"
	case *api.TombstoneReq_Options_StreamExists:
		exp.kind, expected = expectExists, "-4"
	case *api.TombstoneReq_Options_Revision:
		exp = expectation{kind: expectRevision, rev: o.Revision}
		expected = strconv.FormatUint(o.Revision, 10)
	default:
		return nil, status.Error(codes.InvalidArgument, "expected stream revision is missing")
	}

	rec, res := h.srv.store.tombstone(name, exp, time.Now())
	switch {
	case res.deleted:
		_ = grpc.SetTrailer(ctx, streamDeletedTrailer(name))
		return nil, streamDeletedError(name)
	case res.wrong:
		// The shape of a real node's answer: FailedPrecondition with the
		// details in trailers (the Go client maps it to ErrorCodeUnknown).
		_ = grpc.SetTrailer(ctx, metadata.Pairs(
			"exception", "wrong-expected-version",
			"stream-name", name,
			"expected-version", expected,
			"actual-version", strconv.FormatInt(res.current, 10),
		))
		return nil, status.Errorf(codes.FailedPrecondition,
			"Delete failed due to WrongExpectedVersion. Stream: %s, Expected version: %s, Actual version: %d",
			name, expected, res.current)
	}
	return &api.TombstoneResp{PositionOption: &api.TombstoneResp_Position_{Position: &api.TombstoneResp_Position{
		CommitPosition:  rec.pos,
		PreparePosition: rec.pos,
	}}}, nil
}

// streamDeletedTrailer is what the client's handleError looks for to report
// ErrorCodeStreamDeleted.
func streamDeletedTrailer(name string) metadata.MD {
	return metadata.Pairs("exception", "stream-deleted", "stream-name", name)
}

func streamDeletedError(name string) error {
	return status.Errorf(codes.FailedPrecondition, "Event stream '%s' is deleted.", name)
}

// --- Read -------------------------------------------------------------------

func (h *streams) Read(req *api.ReadReq, stream api.Streams_ReadServer) error {
	opts := req.GetOptions()
	if opts == nil {
		return status.Error(codes.InvalidArgument, "read options are missing")
	}
	structured := opts.GetUuidOption().GetString_() == nil
	filter, err := newFilter(opts)
	if err != nil {
		return err
	}

	switch c := opts.GetCountOption().(type) {
	case *api.ReadReq_Options_Subscription:
		all := opts.GetAll()
		if all == nil {
			return status.Error(codes.Unimplemented, "kurrenttest: subscriptions to a single stream are not supported")
		}
		return h.subscribeAll(all, filter, checkpointInterval(opts), structured, stream)
	case *api.ReadReq_Options_Count:
		backwards := opts.GetReadDirection() == api.ReadReq_Options_Backwards
		if all := opts.GetAll(); all != nil {
			return h.readAll(all, filter, backwards, c.Count, structured, stream)
		}
		if so := opts.GetStream(); so != nil {
			return h.readStream(so, backwards, c.Count, structured, stream)
		}
		return status.Error(codes.InvalidArgument, "read needs a stream or $all option")
	default:
		return status.Error(codes.InvalidArgument, "read needs a count or subscription option")
	}
}

func (h *streams) readStream(so *api.ReadReq_Options_StreamOptions, backwards bool, count uint64, structured bool, stream api.Streams_ReadServer) error {
	name := string(so.GetStreamIdentifier().GetStreamName())
	if name == "" {
		return status.Error(codes.InvalidArgument, "stream name is empty")
	}
	events, deleted := h.srv.store.streamEvents(name)
	if deleted {
		stream.SetTrailer(streamDeletedTrailer(name))
		return streamDeletedError(name)
	}
	if len(events) == 0 {
		return stream.Send(&api.ReadResp{Content: &api.ReadResp_StreamNotFound_{StreamNotFound: &api.ReadResp_StreamNotFound{
			StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(name)},
		}}})
	}

	n := uint64(len(events))
	var from uint64
	switch r := so.GetRevisionOption().(type) {
	case *api.ReadReq_Options_StreamOptions_Start:
		from = 0
	case *api.ReadReq_Options_StreamOptions_End:
		from = math.MaxUint64
	case *api.ReadReq_Options_StreamOptions_Revision:
		from = r.Revision
	default:
		return status.Error(codes.InvalidArgument, "stream read needs a revision option")
	}

	var sent uint64
	if backwards {
		from = min(from, n-1)
		for i := int64(from); i >= 0 && sent < count; i-- {
			if err := stream.Send(eventResp(events[i], structured)); err != nil {
				return err
			}
			sent++
		}
		return nil
	}
	for i := from; i < n && sent < count; i++ {
		if err := stream.Send(eventResp(events[i], structured)); err != nil {
			return err
		}
		sent++
	}
	return nil
}

func (h *streams) readAll(all *api.ReadReq_Options_AllOptions, filter *filter, backwards bool, count uint64, structured bool, stream api.Streams_ReadServer) error {
	log := h.srv.store.snapshot()

	// Forwards reads are inclusive of the given position, backwards reads
	// return only what lies strictly before it, as on a real node.
	var idx int
	switch o := all.GetAllOption().(type) {
	case *api.ReadReq_Options_AllOptions_Start:
		idx = 0
	case *api.ReadReq_Options_AllOptions_End:
		idx = len(log)
	case *api.ReadReq_Options_AllOptions_Position:
		idx = searchPos(log, o.Position.GetCommitPosition())
	default:
		return status.Error(codes.InvalidArgument, "$all read needs a position option")
	}

	var sent uint64
	send := func(r *record) error {
		if !filter.match(r) {
			return nil
		}
		sent++
		return stream.Send(eventResp(r, structured))
	}
	if backwards {
		for i := idx - 1; i >= 0 && sent < count; i-- {
			if err := send(log[i]); err != nil {
				return err
			}
		}
		return nil
	}
	for i := idx; i < len(log) && sent < count; i++ {
		if err := send(log[i]); err != nil {
			return err
		}
	}
	return nil
}

// --- Subscribe to $all ------------------------------------------------------

func (h *streams) subscribeAll(all *api.ReadReq_Options_AllOptions, filter *filter, interval uint64, structured bool, stream api.Streams_ReadServer) error {
	// The starting point is fixed before the confirmation goes out, so events
	// appended after the client has its subscription are never missed.
	var cursor int
	switch o := all.GetAllOption().(type) {
	case *api.ReadReq_Options_AllOptions_Start:
		cursor = 0
	case *api.ReadReq_Options_AllOptions_End:
		cursor = h.srv.store.length()
	case *api.ReadReq_Options_AllOptions_Position:
		p := o.Position.GetCommitPosition()
		log := h.srv.store.snapshot()
		if p == math.MaxUint64 {
			cursor = len(log)
		} else {
			cursor = searchPos(log, p+1) // exclusive: the client has seen p
		}
	default:
		return status.Error(codes.InvalidArgument, "$all subscription needs a position option")
	}

	if err := stream.Send(&api.ReadResp{Content: &api.ReadResp_Confirmation{
		Confirmation: &api.ReadResp_SubscriptionConfirmation{SubscriptionId: uuid.NewString()},
	}}); err != nil {
		return err
	}

	ctx := stream.Context()
	caughtUp := false
	var scanned uint64
	for {
		batch, wake := h.srv.store.since(cursor)
		if len(batch) == 0 {
			if !caughtUp {
				caughtUp = true
				if err := stream.Send(&api.ReadResp{Content: &api.ReadResp_CaughtUp_{CaughtUp: &api.ReadResp_CaughtUp{}}}); err != nil {
					return err
				}
			}
			select {
			case <-wake:
				continue
			case <-ctx.Done():
				return status.FromContextError(ctx.Err()).Err()
			}
		}
		for _, r := range batch {
			if filter.match(r) {
				if err := stream.Send(eventResp(r, structured)); err != nil {
					return err
				}
			}
			scanned++
			if filter != nil && scanned%interval == 0 {
				if err := stream.Send(&api.ReadResp{Content: &api.ReadResp_Checkpoint_{Checkpoint: &api.ReadResp_Checkpoint{
					CommitPosition:  r.pos,
					PreparePosition: r.pos,
				}}}); err != nil {
					return err
				}
			}
		}
		cursor += len(batch)
	}
}

// checkpointInterval is how many scanned events a filtered subscription lets
// pass between checkpoints: the search window times the multiplier.
func checkpointInterval(opts *api.ReadReq_Options) uint64 {
	f := opts.GetFilter()
	window := uint64(defaultSearchWindow)
	if m, ok := f.GetWindow().(*api.ReadReq_Options_FilterOptions_Max); ok && m.Max > 0 {
		window = uint64(m.Max)
	}
	mult := uint64(f.GetCheckpointIntervalMultiplier())
	if mult == 0 {
		mult = 1
	}
	return window * mult
}

// --- Filters ----------------------------------------------------------------

// filter selects $all events; a nil filter selects all of them.
type filter struct {
	byType   bool
	re       *regexp.Regexp
	prefixes []string
}

func newFilter(opts *api.ReadReq_Options) (*filter, error) {
	fo := opts.GetFilter()
	if fo == nil {
		return nil, nil
	}
	var (
		expr *api.ReadReq_Options_FilterOptions_Expression
		f    filter
	)
	switch o := fo.GetFilter().(type) {
	case *api.ReadReq_Options_FilterOptions_StreamIdentifier:
		expr = o.StreamIdentifier
	case *api.ReadReq_Options_FilterOptions_EventType:
		expr, f.byType = o.EventType, true
	default:
		return nil, status.Error(codes.InvalidArgument, "filter needs a stream identifier or event type expression")
	}
	// A real node uses the regex when there is one and the prefixes otherwise.
	if rx := expr.GetRegex(); rx != "" {
		re, err := regexp.Compile(rx)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "filter regex: %v", err)
		}
		f.re = re
	} else {
		f.prefixes = expr.GetPrefix()
	}
	return &f, nil
}

func (f *filter) match(r *record) bool {
	if f == nil {
		return true
	}
	s := r.stream
	if f.byType {
		s = r.typ
	}
	if f.re != nil {
		return f.re.MatchString(s)
	}
	for _, p := range f.prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// --- Conversions ------------------------------------------------------------

func eventResp(r *record, structured bool) *api.ReadResp {
	ct := contentTypeBinary
	if r.json {
		ct = contentTypeJSON
	}
	return &api.ReadResp{Content: &api.ReadResp_Event{Event: &api.ReadResp_ReadEvent{
		Event: &api.ReadResp_ReadEvent_RecordedEvent{
			Id:               toProtoUUID(r.id, structured),
			StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(r.stream)},
			StreamRevision:   r.revision,
			PreparePosition:  r.pos,
			CommitPosition:   r.pos,
			Metadata: map[string]string{
				"type":         r.typ,
				"content-type": ct,
				"created":      strconv.FormatInt(r.created, 10),
			},
			CustomMetadata: r.meta,
			Data:           r.data,
		},
		Position: &api.ReadResp_ReadEvent_CommitPosition{CommitPosition: r.pos},
	}}}
}

// toProtoUUID encodes id as the client expects: structured is the two
// big-endian halves as signed 64-bit integers, string is the canonical form.
func toProtoUUID(id uuid.UUID, structured bool) *shared.UUID {
	if !structured {
		return &shared.UUID{Value: &shared.UUID_String_{String_: id.String()}}
	}
	return &shared.UUID{Value: &shared.UUID_Structured_{Structured: &shared.UUID_Structured{
		MostSignificantBits:  int64(binary.BigEndian.Uint64(id[:8])),
		LeastSignificantBits: int64(binary.BigEndian.Uint64(id[8:])),
	}}}
}

func fromProtoUUID(u *shared.UUID) (uuid.UUID, error) {
	switch v := u.GetValue().(type) {
	case *shared.UUID_Structured_:
		var id uuid.UUID
		binary.BigEndian.PutUint64(id[:8], uint64(v.Structured.GetMostSignificantBits()))
		binary.BigEndian.PutUint64(id[8:], uint64(v.Structured.GetLeastSignificantBits()))
		return id, nil
	case *shared.UUID_String_:
		return uuid.Parse(v.String_)
	default:
		return uuid.UUID{}, errors.New("missing")
	}
}
