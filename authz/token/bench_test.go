package token

import (
	"fmt"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/silentauth/silentauth/authz/keys"
)

// benchSetup mints tokens with k at the current time and returns a Verifier
// with the given cache size.
func benchSetup(b *testing.B, k *keys.Key, cacheSize int) (*Verifier, *Minter) {
	b.Helper()
	var h keys.Holder
	h.Store(must(keys.NewKeyring(k)))
	m := NewMinter(MinterOptions{Issuer: testIssuer, Audience: testAudience, TTL: time.Hour, Keys: &h})
	v := NewVerifier(VerifierOptions{Issuer: testIssuer, Audiences: []string{testAudience}, Leeway: testLeeway, Keys: &h, CacheSize: cacheSize})
	return v, m
}

func benchKeys() []*keys.Key { return []*keys.Key{ecKey(), edKey(), rsKey()} }

func mint(b *testing.B, m *Minter) string {
	raw, _, err := m.Mint("user-1", "sid-1", map[string]any{"email": "a@example.com", "roles": []string{"reader"}})
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

// BenchmarkVerifyCacheHit: the same token again, as on every request of a
// session between refreshes.
func BenchmarkVerifyCacheHit(b *testing.B) {
	for _, k := range benchKeys() {
		b.Run(string(k.Alg), func(b *testing.B) {
			v, m := benchSetup(b, k, 0)
			raw := mint(b, m)
			must(v.Verify(raw))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerifyCacheHitParallel: cache hits from all Ps at once, on many
// tokens, to show the sharded locks do not serialise readers.
func BenchmarkVerifyCacheHitParallel(b *testing.B) {
	v, m := benchSetup(b, ecKey(), 0)
	tokens := make([]string, 256)
	for i := range tokens {
		tokens[i] = mint(b, m)
		must(v.Verify(tokens[i]))
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := v.Verify(tokens[i%len(tokens)]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkVerifyCacheMiss: a one-entry cache and two tokens taken in turn,
// so every Verify pays the full path: hash, cache lookup, parse, signature,
// claims, and a cache insert that evicts the other token.
func BenchmarkVerifyCacheMiss(b *testing.B) {
	for _, k := range benchKeys() {
		b.Run(string(k.Alg), func(b *testing.B) {
			v, m := benchSetup(b, k, 1)
			tokens := [2]string{mint(b, m), mint(b, m)}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := v.Verify(tokens[i&1]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkJWTParse is golang-jwt's own jwt.Parse of the same kind of token
// with a keyfunc that just returns the key: the floor a cache miss is
// measured against.
func BenchmarkJWTParse(b *testing.B) {
	for _, k := range benchKeys() {
		b.Run(string(k.Alg), func(b *testing.B) {
			_, m := benchSetup(b, k, 0)
			raw := mint(b, m)
			keyfunc := func(*jwt.Token) (any, error) { return k.Public, nil }
			b.ReportAllocs()
			for b.Loop() {
				if _, err := jwt.Parse(raw, keyfunc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMint signs one token.
func BenchmarkMint(b *testing.B) {
	for _, k := range benchKeys() {
		b.Run(string(k.Alg), func(b *testing.B) {
			_, m := benchSetup(b, k, 0)
			b.ReportAllocs()
			for b.Loop() {
				mint(b, m)
			}
		})
	}
}

// BenchmarkVerifyRejectMalformed: the cheap path for garbage.
func BenchmarkVerifyRejectMalformed(b *testing.B) {
	v, _ := benchSetup(b, ecKey(), 0)
	for _, raw := range []string{"garbage", fmt.Sprintf("%0*d", defaultMaxTokenBytes+1, 0)} {
		b.Run(fmt.Sprint(len(raw)), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				v.Verify(raw)
			}
		})
	}
}
