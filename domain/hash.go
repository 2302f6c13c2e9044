package domain

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"
)

// ChainHash is the hash that links an event to the previous event of its
// stream. It covers everything that says what happened and who did it, but not
// what the store assigns on its own (global position, recorded-at), so the same
// stream hashes the same in every store. The payload parts enter through their
// own digests: once personal data is shredded, an auditor who kept the digest
// can still check the chain.
func ChainHash(prevHash, stream string, revision uint64, e EventData) string {
	// One buffer hashed at once: the same bytes as writing each field to
	// the digest, without an allocation and an interface call per field.
	// Appends and verification hash every event, so this is on the write
	// path of every store.
	var stack [512]byte
	b := appendField(stack[:0], "kyc-event-chain-v1")
	b = appendField(b, prevHash)
	b = appendField(b, stream)
	b = appendUint64Field(b, revision)
	b = appendField(b, e.ID[:])
	b = appendField(b, e.Type)
	b = appendUint64Field(b, uint64(e.SchemaVersion))
	var at [len(time.RFC3339Nano) + 8]byte
	b = appendField(b, e.OccurredAt.UTC().AppendFormat(at[:0], time.RFC3339Nano))
	b = appendField(b, e.Actor.Kind)
	b = appendField(b, e.Actor.ID)
	b = appendField(b, e.Actor.Company)
	b = appendField(b, e.CorrelationID)
	b = appendField(b, e.CausationID)
	b = appendField(b, e.IdempotencyKey)
	dataDigest := sha256.Sum256(e.Data)
	b = appendField(b, dataDigest[:])
	personalDigest := sha256.Sum256(e.Personal)
	b = appendField(b, personalDigest[:])
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// appendField length-prefixes each field so that no two different events can
// be made to hash the same by moving bytes between fields.
func appendField[T ~string | ~[]byte](b []byte, field T) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(len(field)))
	return append(b, field...)
}

func appendUint64Field(b []byte, v uint64) []byte {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], v)
	return appendField(b, n[:])
}

// BrokenLink describes the first event of a stream whose hash does not match.
type BrokenLink struct {
	Stream   string
	Revision uint64
	EventID  string
	Reason   string
}

// VerifyChain checks the hash chain of one stream's events, given in revision
// order from revision 0. It returns nil when the chain holds.
func VerifyChain(events []RecordedEvent) *BrokenLink {
	v := NewChainVerifier()
	for _, e := range events {
		if broken := v.Add(e); broken != nil {
			return broken
		}
	}
	return nil
}

// ChainVerifier checks the chains of many streams from events given in
// global order, keeping only each stream's last hash, so a whole store can be
// verified in one pass over its log.
type ChainVerifier struct {
	last map[string]chainHead
}

type chainHead struct {
	revision uint64
	hash     string
}

// NewChainVerifier starts with no stream seen.
func NewChainVerifier() *ChainVerifier { return &ChainVerifier{last: map[string]chainHead{}} }

// Streams is the number of streams seen so far.
func (v *ChainVerifier) Streams() int { return len(v.last) }

// Add checks the next event of its stream.
func (v *ChainVerifier) Add(e RecordedEvent) *BrokenLink {
	broken := func(reason string) *BrokenLink {
		return &BrokenLink{Stream: e.Stream, Revision: e.Revision, EventID: e.ID.String(), Reason: reason}
	}
	head, seen := v.last[e.Stream]
	wantRev, prev := uint64(0), ""
	if seen {
		wantRev, prev = head.revision+1, head.hash
	}
	switch {
	case e.Revision != wantRev:
		return broken(fmt.Sprintf("expected revision %d here: an event is missing or out of sequence", wantRev))
	case e.PrevHash != prev:
		return broken("previous-hash link does not match the event before it")
	case ChainHash(prev, e.Stream, e.Revision, e.EventData) != e.Hash:
		return broken("content does not match its hash: the event was altered")
	}
	v.last[e.Stream] = chainHead{revision: e.Revision, hash: e.Hash}
	return nil
}
