package httpapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/kycengine/kyc/domain"
)

// Key is one entry of the keys file given to `kyc serve --keys`.
type Key struct {
	Token   string   `json:"token"`
	Actor   string   `json:"actor"`
	Roles   []string `json:"roles"`
	Company string   `json:"company"`
	// Kind is the actor kind recorded on events (default api-key).
	Kind domain.ActorKind `json:"kind,omitempty"`
}

// minTokenLength keeps guessable tokens out of the keys file.
const minTokenLength = 16

// Authenticator maps bearer tokens to callers. Tokens are held as SHA-256
// digests, so a memory dump does not reveal them and lookups do not compare
// secrets byte by byte.
type Authenticator struct {
	byDigest map[[32]byte]domain.Caller
}

// NewAuthenticator validates the keys.
func NewAuthenticator(keys []Key) (*Authenticator, error) {
	if len(keys) == 0 {
		return nil, errors.New("keys: at least one key is required")
	}
	a := &Authenticator{byDigest: map[[32]byte]domain.Caller{}}
	for i, k := range keys {
		if len(k.Token) < minTokenLength {
			return nil, fmt.Errorf("keys[%d]: token must be at least %d characters", i, minTokenLength)
		}
		if k.Actor == "" || k.Company == "" {
			return nil, fmt.Errorf("keys[%d]: actor and company are required", i)
		}
		kind := k.Kind
		switch kind {
		case "":
			kind = domain.ActorAPIKey
		case domain.ActorOperator, domain.ActorAPIKey, domain.ActorSystem, domain.ActorCustomer:
		default:
			return nil, fmt.Errorf("keys[%d]: kind %q is not operator, api-key, system or customer", i, k.Kind)
		}
		d := sha256.Sum256([]byte(k.Token))
		if _, dup := a.byDigest[d]; dup {
			return nil, fmt.Errorf("keys[%d]: token is used twice", i)
		}
		a.byDigest[d] = domain.Caller{Actor: domain.Actor{Kind: kind, ID: k.Actor, Company: k.Company}, Roles: append([]string{}, k.Roles...)}
	}
	return a, nil
}

// LoadKeys reads a keys file: a JSON array of Key.
func LoadKeys(path string) ([]Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read keys file: %w", err)
	}
	var keys []Key
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&keys); err != nil {
		return nil, fmt.Errorf("keys file %s: %w", path, err)
	}
	return keys, nil
}

// SuperuserTokenFile is where the first start without --keys writes its token.
const SuperuserTokenFile = "superuser.token"

// EnsureSuperuserKey returns the data folder's superuser key, creating the
// token file (mode 0600) on first start. created says whether it was new.
func EnsureSuperuserKey(dataDir string) (key Key, path string, created bool, err error) {
	path = filepath.Join(dataDir, SuperuserTokenFile)
	b, err := os.ReadFile(path)
	if err == nil {
		tok := strings.TrimSpace(string(b))
		return Key{Token: tok, Actor: "admin", Roles: []string{domain.RoleSuperuser}, Company: "default", Kind: domain.ActorOperator}, path, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return Key{}, path, false, fmt.Errorf("read %s: %w", path, err)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return Key{}, path, false, err
	}
	tok := "kyc_" + base64.RawURLEncoding.EncodeToString(raw[:])
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return Key{}, path, false, fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := f.WriteString(tok + "\n"); err != nil {
		f.Close()
		return Key{}, path, false, err
	}
	if err := f.Close(); err != nil {
		return Key{}, path, false, err
	}
	return Key{Token: tok, Actor: "admin", Roles: []string{domain.RoleSuperuser}, Company: "default", Kind: domain.ActorOperator}, path, true, nil
}

// Authenticate finds the caller of a request.
func (a *Authenticator) Authenticate(r *http.Request) (domain.Caller, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return domain.Caller{}, false
	}
	c, ok := a.byDigest[sha256.Sum256([]byte(strings.TrimSpace(token)))]
	return c, ok
}

type callerKey struct{}

func withCaller(ctx context.Context, c domain.Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

func callerFrom(ctx context.Context) domain.Caller {
	c, _ := ctx.Value(callerKey{}).(domain.Caller)
	return c
}
