package domain_test

import (
	"context"
	"encoding/json"
	"io/fs"
	"testing"

	"github.com/kycengine/kyc/domain"
	"github.com/kycengine/kyc/schemas"
)

// FuzzParseDefinition feeds arbitrary lifecycle files to the loader: it
// refuses or accepts, never panics, and what it accepts behaves: every state
// lists only transitions the definition has.
func FuzzParseDefinition(f *testing.F) {
	entries, _ := fs.ReadDir(schemas.Lifecycles(), ".")
	for _, e := range entries {
		b, _ := fs.ReadFile(schemas.Lifecycles(), e.Name())
		f.Add(b)
	}
	f.Add([]byte("name: x\nversion: 1\ninitial: A\nstates: [{name: A}]\ntransitions: [{event: e, from: [A], to: A}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := domain.ParseDefinition(data)
		if err != nil {
			return
		}
		def := l.Definition()
		for _, s := range def.States {
			for _, tr := range l.Allowed(s.Name, []string{domain.RoleSuperuser}) {
				if !l.Permits(tr.Event, s.Name, tr.To) {
					t.Fatalf("Allowed offers %s %s -> %s that Permits refuses", tr.Event, s.Name, tr.To)
				}
				c := &domain.Customer{Status: s.Name}
				if got, err := l.Fire(context.Background(), tr.Event, domain.TransitionRequest{Customer: c, Roles: []string{domain.RoleSuperuser}, Reason: "a sufficiently long reason for any rule"}); err == nil && got.To != tr.To {
					t.Fatalf("Fire %s from %s went to %s, Allowed said %s", tr.Event, s.Name, got.To, tr.To)
				}
			}
		}
		_ = l.Mermaid()
	})
}

// FuzzDecodeEvent feeds arbitrary stored payloads to the codec: it refuses or
// decodes, never panics, and what it decodes folds and re-encodes.
func FuzzDecodeEvent(f *testing.F) {
	codec := domain.NewCodec()
	for _, typ := range codec.TypeNames() {
		f.Add(typ, 1, []byte(`{}`), []byte(nil))
	}
	f.Add("CustomerRegistered", 1, []byte(`{"customer_id":"x","public_id":"p","company_id":"c","company_name":"c","lifecycle":"kyc-review","lifecycle_version":1,"status":"CREATED"}`), []byte(`{"name":{"first":"A","last":"B"},"emails":["a@b.c"]}`))
	f.Add("StepResultRecorded", 1, []byte(`{"step":"s","result":"passed","details":{"a":1}}`), []byte(nil))
	f.Add("TagsChanged", 2, []byte(`{}`), []byte(`null`))
	f.Fuzz(func(t *testing.T, typ string, version int, data, personal []byte) {
		e, err := codec.Decode(typ, version, data, personal)
		if err != nil {
			return
		}
		var c domain.Customer
		c.Apply(e, domain.RecordedEvent{})
		if _, _, d, _, err := codec.Encode(e); err != nil || !json.Valid(d) {
			t.Fatalf("decoded %s does not re-encode: %v", typ, err)
		}
	})
}
