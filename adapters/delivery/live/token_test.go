package live_test

import (
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/kycengine/kyc/adapters/delivery/live"
	"github.com/kycengine/kyc/domain"
)

func TestNewTokensValidates(t *testing.T) {
	for _, tc := range []struct {
		name   string
		secret []byte
		ttl    time.Duration
	}{
		{"NilSecret", nil, time.Minute},
		{"ShortSecret", testSecret[:31], time.Minute},
		{"ZeroTTL", testSecret, 0},
		{"NegativeTTL", testSecret, -time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := live.NewTokens(tc.secret, tc.ttl, nil); err == nil {
				t.Fatal("NewTokens accepted it")
			}
		})
	}
	if _, err := live.NewTokens(testSecret, time.Minute, nil); err != nil {
		t.Fatalf("default clock: %v", err)
	}
}

func TestIssueValidates(t *testing.T) {
	tokens, err := live.NewTokens(testSecret, time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := tokens.Issue("", testActor); err == nil {
		t.Error("issued a token for no customer")
	}
	if _, _, err := tokens.Issue("c1", domain.Actor{}); err == nil {
		t.Error("issued a token for no actor")
	}
}

func TestIssueAndVerify(t *testing.T) {
	clk := newClock()
	clk.Advance(300 * time.Millisecond) // not on a second: expiry rounds up
	tokens, err := live.NewTokens(testSecret, 2*time.Minute, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	tok, expires, err := tokens.Issue("cust-1", testActor)
	if err != nil {
		t.Fatal(err)
	}
	if want := clk.Now().Add(2 * time.Minute).Truncate(time.Second).Add(time.Second); !expires.Equal(want) {
		t.Errorf("expires = %s, want %s", expires, want)
	}
	claims, err := tokens.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if claims.CustomerID != "cust-1" || claims.Actor != testActor || !claims.Expires.Equal(expires) {
		t.Errorf("claims = %+v", claims)
	}
	// The payload carries the audience and a random id.
	var raw jwt.MapClaims
	if _, _, err := jwt.NewParser().ParseUnverified(tok, &raw); err != nil {
		t.Fatal(err)
	}
	if aud, _ := raw.GetAudience(); len(aud) != 1 || aud[0] != live.Audience {
		t.Errorf("aud = %v", aud)
	}
	if jti, _ := raw["jti"].(string); jti == "" {
		t.Error("no jti")
	}
	other, _, _ := tokens.Issue("cust-1", testActor)
	if other == tok {
		t.Error("two tokens for the same customer are identical: jti is not random")
	}
}

// sign makes a token with any method, key and claims, as an attacker could.
func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.Claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerify(t *testing.T) {
	clk := newClock()
	tokens, err := live.NewTokens(testSecret, time.Minute, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	valid, _, err := tokens.Issue("cust-1", testActor)
	if err != nil {
		t.Fatal(err)
	}
	good := func() jwt.MapClaims {
		return jwt.MapClaims{
			"sub": "cust-1", "aud": []string{live.Audience}, "iat": clk.Now().Unix(),
			"exp": clk.Now().Add(time.Minute).Unix(), "jti": "x",
			"actor": map[string]string{"kind": "operator", "id": "op-1", "company": "acme"},
		}
	}
	with := func(k string, v any) jwt.MapClaims {
		c := good()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(valid, ".")
	sig := []byte(parts[2])
	sig[0] ^= 1 // still base64url, different bytes
	forged := parts[0] + "." + parts[1] + "." + string(sig)
	// The valid header and signature on another customer's payload.
	otherPayload := strings.Split(sign(t, jwt.SigningMethodHS256, testSecret, with("sub", "cust-2")), ".")[1]
	swapped := parts[0] + "." + otherPayload + "." + parts[2]
	otherSecret := []byte("another secret that is long enough!!")

	for _, tc := range []struct {
		name    string
		token   string
		advance time.Duration
		want    error
	}{
		{"Valid", valid, 0, nil},
		{"ValidJustBeforeExpiry", valid, time.Minute - time.Second, nil},
		{"Missing", "", 0, live.ErrTokenMissing},
		{"ForgedSignature", forged, 0, live.ErrTokenInvalid},
		{"PayloadSwapped", swapped, 0, live.ErrTokenInvalid},
		{"OtherSecret", sign(t, jwt.SigningMethodHS256, otherSecret, good()), 0, live.ErrTokenInvalid},
		{"AlgNone", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good()), 0, live.ErrTokenInvalid},
		{"HS512SameSecret", sign(t, jwt.SigningMethodHS512, testSecret, good()), 0, live.ErrTokenInvalid},
		{"RS256", sign(t, jwt.SigningMethodRS256, rsaKey, good()), 0, live.ErrTokenInvalid},
		{"WrongAudience", sign(t, jwt.SigningMethodHS256, testSecret, with("aud", []string{"kyc-api"})), 0, live.ErrTokenInvalid},
		{"NoAudience", sign(t, jwt.SigningMethodHS256, testSecret, with("aud", nil)), 0, live.ErrTokenInvalid},
		{"NoExpiry", sign(t, jwt.SigningMethodHS256, testSecret, with("exp", nil)), 0, live.ErrTokenInvalid},
		{"NoSubject", sign(t, jwt.SigningMethodHS256, testSecret, with("sub", nil)), 0, live.ErrTokenInvalid},
		{"NoActor", sign(t, jwt.SigningMethodHS256, testSecret, with("actor", nil)), 0, live.ErrTokenInvalid},
		{"Expired", valid, time.Minute, live.ErrTokenExpired},
		{"ExpiredLongAgo", valid, 24 * time.Hour, live.ErrTokenExpired},
		// Expired and meant for something else: invalid, since a fresh
		// token of the same kind would not help.
		{"ExpiredWrongAudience", sign(t, jwt.SigningMethodHS256, testSecret, with("aud", []string{"x"})), 2 * time.Minute, live.ErrTokenInvalid},
		{"MalformedText", "not-a-jwt", 0, live.ErrTokenInvalid},
		{"MalformedParts", "a.b.c", 0, live.ErrTokenInvalid},
		{"MalformedTwoParts", parts[0] + "." + parts[1], 0, live.ErrTokenInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tokens, err := live.NewTokens(testSecret, time.Minute, func() time.Time { return clk.Now().Add(tc.advance) })
			if err != nil {
				t.Fatal(err)
			}
			claims, err := tokens.Verify(tc.token)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if claims.CustomerID != "cust-1" || claims.Actor != testActor {
					t.Fatalf("claims = %+v", claims)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
			for _, other := range []error{live.ErrTokenMissing, live.ErrTokenInvalid, live.ErrTokenExpired} {
				if other != tc.want && errors.Is(err, other) {
					t.Errorf("Verify = %v, also matches %v", err, other)
				}
			}
			if claims != (live.Claims{}) {
				t.Errorf("refused token still returned claims %+v", claims)
			}
		})
	}
}
