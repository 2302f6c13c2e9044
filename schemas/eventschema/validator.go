// Package eventschema checks stored event payloads against the JSON Schemas
// embedded in package schemas (schemas/events/<Type>.v<version>.json).
//
// A stored payload is the object {"data": ..., "personal": ...}: "data" is
// the JSON of the event's Go value and "personal" its personal data, present
// only when the event carries some. Tests use a Validator to prove that what
// the engine emits matches the published contract.
package eventschema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"

	"github.com/kycengine/kyc/schemas"
)

// BaseID is the prefix of every event schema's $id; the file name follows it.
const BaseID = "https://kyc-engine.dev/schemas/events/"

// ErrUnknownSchema is returned for an event type and version without a schema.
var ErrUnknownSchema = errors.New("no schema for this event type and version")

// fileName is how an event schema file is named: <Type>.v<version>.json.
var fileName = regexp.MustCompile(`^([A-Z][A-Za-z0-9]*)\.v([1-9][0-9]*)\.json$`)

type key struct {
	typ     string
	version int
}

// Validator validates stored event payloads. It is safe for concurrent use.
type Validator struct {
	schemas map[key]*jsonschema.Schema
}

// New compiles every event schema of schemas.Events(). Each file must be
// named <Type>.v<version>.json and carry the $id BaseID + its file name.
// Schemas are registered as in-memory resources, so compiling never reads the
// network or the file system.
func New() (*Validator, error) {
	fsys := schemas.Events()
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("event schemas: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	// No loader: a $ref that leaves the registered schemas is an error, not a
	// download.
	c.UseLoader(jsonschema.SchemeURLLoader{})
	ids := map[key]string{}
	for _, e := range entries {
		if e.IsDir() {
			return nil, fmt.Errorf("event schemas: unexpected directory %s", e.Name())
		}
		m := fileName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("event schemas: %s is not named <Type>.v<version>.json", e.Name())
		}
		version, err := strconv.Atoi(m[2])
		if err != nil {
			return nil, fmt.Errorf("event schemas: %s: %w", e.Name(), err)
		}
		raw, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("event schemas: %w", err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("event schema %s: %w", e.Name(), err)
		}
		obj, ok := doc.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("event schema %s: not a JSON object", e.Name())
		}
		id := BaseID + e.Name()
		if got, _ := obj["$id"].(string); got != id {
			return nil, fmt.Errorf("event schema %s: $id is %q, want %q", e.Name(), got, id)
		}
		if err := c.AddResource(id, doc); err != nil {
			return nil, fmt.Errorf("event schema %s: %w", e.Name(), err)
		}
		ids[key{m[1], version}] = id
	}
	v := &Validator{schemas: make(map[key]*jsonschema.Schema, len(ids))}
	for k, id := range ids {
		sch, err := c.Compile(id)
		if err != nil {
			return nil, fmt.Errorf("event schema %s.v%d: %w", k.typ, k.version, err)
		}
		v.schemas[k] = sch
	}
	return v, nil
}

// Has reports whether there is a schema for the event type and version.
func (v *Validator) Has(typ string, version int) bool {
	return v.schemas[key{typ, version}] != nil
}

// Validate checks a stored event, its data part and its personal part (nil,
// empty or JSON null when the event has none), against the schema of its type
// and version. A mismatch is an *Error naming the event and every failing
// location; an unknown type or version wraps ErrUnknownSchema.
func (v *Validator) Validate(typ string, version int, data, personal json.RawMessage) error {
	sch := v.schemas[key{typ, version}]
	if sch == nil {
		return fmt.Errorf("event %s v%d: %w", typ, version, ErrUnknownSchema)
	}
	d, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("event %s v%d: data is not JSON: %w", typ, version, err)
	}
	payload := map[string]any{"data": d}
	if p := bytes.TrimSpace(personal); len(p) > 0 && !bytes.Equal(p, []byte("null")) {
		pv, err := jsonschema.UnmarshalJSON(bytes.NewReader(p))
		if err != nil {
			return fmt.Errorf("event %s v%d: personal data is not JSON: %w", typ, version, err)
		}
		payload["personal"] = pv
	}
	err = sch.Validate(payload)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return fmt.Errorf("event %s v%d: %w", typ, version, err)
	}
	out := &Error{Type: typ, Version: version, cause: ve}
	collect(ve, &out.Violations)
	sort.SliceStable(out.Violations, func(i, j int) bool { return out.Violations[i].Location < out.Violations[j].Location })
	return out
}

// Error is a payload that does not match its event schema.
type Error struct {
	Type       string
	Version    int
	Violations []Violation
	cause      *jsonschema.ValidationError
}

// Violation is one failed schema rule.
type Violation struct {
	// Location is a JSON pointer into the payload, e.g. /data/risk; the
	// empty pointer is the payload itself.
	Location string
	// Detail says what is wrong there.
	Detail string
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "event %s v%d does not match its schema", e.Type, e.Version)
	for i, v := range e.Violations {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "at '%s': %s", v.Location, v.Detail)
	}
	return b.String()
}

// Unwrap gives the validator's full error tree.
func (e *Error) Unwrap() error { return e.cause }

// collect gathers the leaves of a validation error tree: the rules that
// failed, rather than the schemas that contain them.
func collect(ve *jsonschema.ValidationError, out *[]Violation) {
	if len(ve.Causes) > 0 {
		for _, c := range ve.Causes {
			collect(c, out)
		}
		return
	}
	loc := pointer(ve.InstanceLocation)
	detail := ve.Error()
	// A leaf prints as "at '<location>': <detail>".
	if i := strings.Index(detail, "': "); strings.HasPrefix(detail, "at '") && i >= 0 {
		detail = detail[i+3:]
	}
	if _, ok := ve.ErrorKind.(*kind.FalseSchema); ok {
		detail = "not allowed here"
	}
	*out = append(*out, Violation{Location: loc, Detail: detail})
}

func pointer(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(t))
	}
	return b.String()
}
