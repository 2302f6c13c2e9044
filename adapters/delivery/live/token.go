package live

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/kycengine/kyc/domain"
)

// Audience is the only audience a socket token carries and the only one
// Verify accepts, so a token leaked from a page URL opens nothing but the
// live socket, and tokens minted for other purposes with the same secret do
// not open it.
const Audience = "kyc-live-socket"

// MinSecretLen is the shortest secret NewTokens accepts: HS256 is only as
// strong as its key, and 32 bytes matches the hash size.
const MinSecretLen = 32

// Errors of Verify. The socket maps each to its own 401 problem so the page
// can tell "ask for a new token" (expired) from a bug (missing, invalid).
var (
	ErrTokenMissing = errors.New("socket token missing")
	ErrTokenInvalid = errors.New("socket token invalid")
	ErrTokenExpired = errors.New("socket token expired")
)

// Claims is what a verified socket token grants: the pushes of one customer,
// to the caller that asked for it, until Expires.
type Claims struct {
	CustomerID string
	Actor      domain.Actor
	Expires    time.Time
}

// Tokens issues and verifies socket tokens. They are stateless (HS256 JWTs)
// so any API instance can verify a token another one issued, given the same
// secret.
type Tokens struct {
	secret []byte
	ttl    time.Duration
	now    func() time.Time
	parser *jwt.Parser
}

// tokenClaims is the JWT payload. The actor travels under "actor" rather
// than RFC 8693's "act", whose shape is different.
type tokenClaims struct {
	jwt.RegisteredClaims
	Actor domain.Actor `json:"actor"`
}

// NewTokens returns Tokens that sign with secret and live for ttl. now is the
// clock for issuing and checking expiry (time.Now when nil), injectable so
// tests can expire tokens without sleeping.
func NewTokens(secret []byte, ttl time.Duration, now func() time.Time) (*Tokens, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("live: socket token secret has %d bytes, needs at least %d", len(secret), MinSecretLen)
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("live: socket token lifetime must be positive, got %s", ttl)
	}
	if now == nil {
		now = time.Now
	}
	return &Tokens{
		secret: bytes.Clone(secret),
		ttl:    ttl,
		now:    now,
		// Only HS256: accepting the algorithm the token names is how "none"
		// and key-confusion forgeries get in.
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithAudience(Audience),
			jwt.WithExpirationRequired(),
			jwt.WithTimeFunc(now),
		),
	}, nil
}

// Issue returns a token for actor to follow customerID, and when it expires.
// It does not decide whether actor may see the customer: the API route that
// calls it must have checked that first (by loading the customer as actor),
// because the socket trusts the token alone.
//
// JWT times have whole-second precision, so the expiry is rounded up to the
// next second: the token lives at least ttl.
func (t *Tokens) Issue(customerID string, actor domain.Actor) (string, time.Time, error) {
	if customerID == "" {
		return "", time.Time{}, errors.New("live: issue socket token: empty customer id")
	}
	if actor.Kind == "" || actor.ID == "" {
		return "", time.Time{}, errors.New("live: issue socket token: actor needs a kind and an id")
	}
	now := t.now()
	expires := ceilSecond(now.Add(t.ttl))
	claims := tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   customerID,
			Audience:  jwt.ClaimStrings{Audience},
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(expires),
			ID:        uuid.NewString(),
		},
		Actor: actor,
	}
	signed, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(t.secret)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("live: sign socket token: %w", err)
	}
	return signed, expires, nil
}

// Verify checks a token's signature, algorithm, audience and expiry and
// returns what it grants. Errors match ErrTokenMissing, ErrTokenInvalid or
// ErrTokenExpired; a token that is expired and wrong in another way is
// invalid, so "expired" always means "the same request with a fresh token
// will work".
func (t *Tokens) Verify(token string) (Claims, error) {
	if token == "" {
		return Claims{}, ErrTokenMissing
	}
	var c tokenClaims
	_, err := t.parser.ParseWithClaims(token, &c, func(tok *jwt.Token) (any, error) {
		// The parser already refused other algorithms; this keeps the key
		// from ever being handed to a non-HMAC verifier if that changes.
		if _, ok := tok.Method.(*jwt.SigningMethodHMAC); !ok {
			return nil, fmt.Errorf("unexpected signing method %s", tok.Method.Alg())
		}
		return t.secret, nil
	})
	switch {
	case err == nil:
	case onlyExpired(err):
		return Claims{}, fmt.Errorf("%w: %w", ErrTokenExpired, err)
	default:
		return Claims{}, fmt.Errorf("%w: %w", ErrTokenInvalid, err)
	}
	if c.Subject == "" {
		return Claims{}, fmt.Errorf("%w: no customer (sub)", ErrTokenInvalid)
	}
	if c.Actor.Kind == "" || c.Actor.ID == "" {
		return Claims{}, fmt.Errorf("%w: no actor", ErrTokenInvalid)
	}
	return Claims{CustomerID: c.Subject, Actor: c.Actor, Expires: c.ExpiresAt.Time}, nil
}

// onlyExpired reports whether err says the token is expired and nothing else
// is wrong with its claims (the parser reports every failed claim together).
func onlyExpired(err error) bool {
	if !errors.Is(err, jwt.ErrTokenExpired) {
		return false
	}
	for _, other := range []error{
		jwt.ErrTokenMalformed, jwt.ErrTokenUnverifiable, jwt.ErrTokenSignatureInvalid,
		jwt.ErrTokenRequiredClaimMissing, jwt.ErrTokenInvalidAudience, jwt.ErrTokenNotValidYet,
		jwt.ErrTokenUsedBeforeIssued, jwt.ErrTokenInvalidIssuer, jwt.ErrTokenInvalidSubject,
		jwt.ErrTokenInvalidId, jwt.ErrInvalidType,
	} {
		if errors.Is(err, other) {
			return false
		}
	}
	return true
}

func ceilSecond(t time.Time) time.Time {
	if s := t.Truncate(time.Second); !s.Equal(t) {
		return s.Add(time.Second)
	}
	return t
}
