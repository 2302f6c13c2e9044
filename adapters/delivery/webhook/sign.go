package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The Standard Webhooks headers every delivery carries.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix starts a secret in the Standard Webhooks format, so
// receivers' libraries take it as it is shown.
const SecretPrefix = "whsec_"

// secretBytes is the key length: the Standard Webhooks spec asks for 24 to
// 64 bytes, and 32 is HMAC-SHA256's block-size sweet spot.
const secretBytes = 32

// newSecret draws a random signing key.
func newSecret() ([]byte, error) {
	key := make([]byte, secretBytes)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("webhook: draw a secret: %w", err)
	}
	return key, nil
}

// FormatSecret writes a key the way receivers configure it: "whsec_" and
// the key in standard base64.
func FormatSecret(key []byte) string {
	return SecretPrefix + base64.StdEncoding.EncodeToString(key)
}

// ParseSecret reads what FormatSecret wrote (the prefix is optional, as in
// the Standard Webhooks libraries).
func ParseSecret(s string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, SecretPrefix))
	if err != nil {
		return nil, fmt.Errorf("webhook: secret is not base64: %w", err)
	}
	if len(key) == 0 {
		return nil, errors.New("webhook: empty secret")
	}
	return key, nil
}

// Sign is the webhook-signature header for a message: one "v1,<signature>"
// per key, space-separated, so a receiver that knows any one of the keys
// accepts the message while secrets are being rotated. The signature is the
// base64 HMAC-SHA256 of "<id>.<timestamp>.<body>", the Standard Webhooks
// scheme.
func Sign(keys [][]byte, id string, timestamp int64, body []byte) string {
	prefix := id + "." + strconv.FormatInt(timestamp, 10) + "."
	sigs := make([]string, 0, len(keys))
	for _, key := range keys {
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(prefix))
		mac.Write(body)
		sigs = append(sigs, "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	}
	return strings.Join(sigs, " ")
}
