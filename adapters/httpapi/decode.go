package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// MaxBodyBytes bounds every request body: a KYC command is small, and a large
// body is a mistake or an attack.
const MaxBodyBytes = 1 << 20

// requestError is a problem with the request itself (not with the domain's
// view of it), naming the field it is about.
type requestError struct {
	status             int
	kind, title, field string
	detail             string
}

func (e *requestError) Error() string { return e.field + ": " + e.detail }

func badRequest(field, format string, args ...any) error {
	return &requestError{status: http.StatusBadRequest, kind: "malformed-request", title: "Malformed request", field: field, detail: fmt.Sprintf(format, args...)}
}

// decodeBody reads one JSON object into dst, refusing unknown fields, wrong
// types, trailing data and bodies over MaxBodyBytes.
func decodeBody(r *http.Request, dst any) error {
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return tooLarge
		}
		return badRequest("body", "could not read the body: %v", err)
	}
	return decodeJSON(body, dst)
}

// decodeJSON is decodeBody without the transport, so it can be fuzzed.
func decodeJSON(body []byte, dst any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest("body", "the body is empty; send a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return badRequest("body", "unexpected data after the JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("body", "unexpected data after the JSON object")
	}
	return nil
}

func jsonError(err error) error {
	var (
		syntax *json.SyntaxError
		typ    *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &syntax):
		return badRequest("body", "malformed JSON at byte %d: %v", syntax.Offset, syntax)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "body"
		}
		return badRequest(field, "must be %s, not %s", jsonKind(typ.Type.String()), typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return badRequest("body", "the JSON ends too early")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name, _ := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		field := name
		if field == "" {
			field = "body" // a key that is the empty string still needs a name
		}
		return badRequest(field, "unknown field %q", name)
	default:
		return badRequest("body", "%v", err)
	}
}

func jsonKind(goType string) string {
	switch {
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case strings.Contains(goType, "string"):
		return "a string"
	case strings.Contains(goType, "int"), strings.Contains(goType, "float"):
		return "a number"
	case strings.Contains(goType, "bool"):
		return "a boolean"
	default:
		return "an object"
	}
}

// parseIfMatch reads an expected revision from If-Match: "3", 3 or W/"3".
// It returns nil when the header is absent or "*".
func parseIfMatch(h string) (*uint64, error) {
	h = strings.TrimSpace(h)
	if h == "" || h == "*" {
		return nil, nil
	}
	v := strings.Trim(strings.TrimPrefix(h, "W/"), `"`)
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return nil, &requestError{status: http.StatusBadRequest, kind: "malformed-request", title: "Malformed request", field: "If-Match",
			detail: fmt.Sprintf("%q is not a revision; send the ETag of the customer, such as \"3\"", h)}
	}
	return &n, nil
}

// parseIdempotencyKey checks the Idempotency-Key header.
func parseIdempotencyKey(h string) (string, error) {
	if len(h) > 255 {
		return "", badRequest("Idempotency-Key", "is longer than 255 characters")
	}
	for _, c := range h {
		if c < 0x21 || c > 0x7e {
			return "", badRequest("Idempotency-Key", "must be printable ASCII without spaces")
		}
	}
	return h, nil
}
