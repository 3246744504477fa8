package kubesecret

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/silentauth/silentauth/authz/keys"
)

// t0 is the fixed "now" of the watcher tests.
var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// lc is the production default lifecycle: access TTL 15m, leeway 30s.
var lc = keys.Lifecycle{AccessTTL: 15 * time.Minute, Leeway: 30 * time.Second}

const (
	minute = time.Minute
	hour   = time.Hour
)

// Test keys are generated once: RSA generation is slow under -race.
var (
	p256Key = sync.OnceValue(func() *ecdsa.PrivateKey { return must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader)) })
	edKey   = sync.OnceValue(func() ed25519.PrivateKey { _, k, err := ed25519.GenerateKey(rand.Reader); return must(k, err) })
	rsa1024 = sync.OnceValue(func() *rsa.PrivateKey { return must(rsa.GenerateKey(rand.Reader, 1024)) })

	ecPEM   = sync.OnceValue(func() []byte { return pkcs8(p256Key()) })
	edPEM   = sync.OnceValue(func() []byte { return pkcs8(edKey()) })
	weakPEM = sync.OnceValue(func() []byte { return pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsa1024())) })
)

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func mustKey(t testing.TB, priv crypto.Signer) *keys.Key {
	t.Helper()
	k, err := keys.NewKey(priv)
	if err != nil {
		t.Fatalf("NewKey: %v", err)
	}
	return k
}

func pemOf(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func pkcs8(k any) []byte { return pemOf("PRIVATE KEY", must(x509.MarshalPKCS8PrivateKey(k))) }

// stamp renders t as the Secret's annotations carry it (RFC 3339, UTC).
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// assertNoKeyMaterial fails if s quotes any base64 line of data's PEM body.
func assertNoKeyMaterial(t *testing.T, s string, data []byte) {
	t.Helper()
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSpace(line)
		if len(line) >= 16 && !strings.HasPrefix(line, "-----") && strings.Contains(s, line[:16]) {
			t.Errorf("quotes key material: %s", s)
		}
	}
}
