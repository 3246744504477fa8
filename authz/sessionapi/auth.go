package sessionapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
)

// ErrUnauthenticated is returned for a missing or wrong credential.
var ErrUnauthenticated = errors.New("sessionapi: missing or wrong bearer credential")

// Bearer authenticates callers by one shared secret, compared in constant
// time. It is the option for running outside Kubernetes.
type Bearer struct {
	sum [sha256.Size]byte
}

// NewBearer returns an Authenticator accepting secret. The secret itself
// is not kept, only its SHA-256.
func NewBearer(secret string) *Bearer { return &Bearer{sum: sha256.Sum256([]byte(secret))} }

// Authenticate implements Authenticator.
func (b *Bearer) Authenticate(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	if len(h) < 7 || !strings.EqualFold(h[:7], "bearer ") {
		return "", ErrUnauthenticated
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(h[7:])))
	if subtle.ConstantTimeCompare(got[:], b.sum[:]) != 1 {
		return "", ErrUnauthenticated
	}
	return "bearer", nil
}
