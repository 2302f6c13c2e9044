package domain

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"time"
)

// ChainHash is the hash that links an event to the previous event of its
// stream. It covers everything that says what happened and who did it, but not
// what the store assigns on its own (global position, recorded-at), so the same
// stream hashes the same in every store. The payload parts enter through their
// own digests: once personal data is shredded, an auditor who kept the digest
// can still check the chain.
func ChainHash(prevHash, stream string, revision uint64, e EventData) string {
	h := sha256.New()
	writeField(h, []byte("kyc-event-chain-v1"))
	writeField(h, []byte(prevHash))
	writeField(h, []byte(stream))
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], revision)
	writeField(h, n[:])
	writeField(h, e.ID[:])
	writeField(h, []byte(e.Type))
	binary.BigEndian.PutUint64(n[:], uint64(e.SchemaVersion))
	writeField(h, n[:])
	writeField(h, []byte(e.OccurredAt.UTC().Format(time.RFC3339Nano)))
	writeField(h, []byte(e.Actor.Kind))
	writeField(h, []byte(e.Actor.ID))
	writeField(h, []byte(e.Actor.Company))
	writeField(h, []byte(e.CorrelationID))
	writeField(h, []byte(e.CausationID))
	writeField(h, []byte(e.IdempotencyKey))
	dataDigest := sha256.Sum256(e.Data)
	writeField(h, dataDigest[:])
	personalDigest := sha256.Sum256(e.Personal)
	writeField(h, personalDigest[:])
	return hex.EncodeToString(h.Sum(nil))
}

// writeField length-prefixes each field so that no two different events can
// be made to hash the same by moving bytes between fields.
func writeField(h hash.Hash, b []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(b)))
	h.Write(n[:])
	h.Write(b)
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
