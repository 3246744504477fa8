package seal_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/silentauth/silentauth/authz/keys"
	"github.com/silentauth/silentauth/authz/seal"
)

func newKey(t *testing.T, alg keys.Alg) *keys.Key {
	t.Helper()
	k, err := keys.Generate(alg)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func ring(t *testing.T, active *keys.Key, others ...*keys.Key) *keys.Holder {
	t.Helper()
	r, err := keys.NewKeyring(active, others...)
	if err != nil {
		t.Fatal(err)
	}
	h := &keys.Holder{}
	h.Store(r)
	return h
}

var now = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

// A sealed value opens with the same additional data, on any replica
// holding the same keys, and shows nothing of the plaintext.
func TestSealOpens(t *testing.T) {
	for _, alg := range []keys.Alg{keys.ES256, keys.EdDSA, keys.RS256} {
		k := newKey(t, alg)
		plain := []byte("provider-refresh-token-0123456789")
		sealed, err := seal.Seal(ring(t, k), now, plain, []byte("alice"))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(sealed, plain) || bytes.Contains(sealed, plain[:12]) {
			t.Fatalf("%s: sealed value shows the plaintext", alg)
		}
		// Another replica: a keyring of its own over the same key.
		got, err := seal.Open(ring(t, k), sealed, []byte("alice"))
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("%s: Open = %q, %v", alg, got, err)
		}
		again, _ := seal.Seal(ring(t, k), now, plain, []byte("alice"))
		if bytes.Equal(again, sealed) {
			t.Fatalf("%s: two seals of one value are equal (nonce reused)", alg)
		}
	}
}

// A value moved to another context, altered, truncated or not sealed at
// all is refused with a precise error, never opened.
func TestSealRefuses(t *testing.T) {
	k := newKey(t, keys.ES256)
	h := ring(t, k)
	sealed, err := seal.Seal(h, now, []byte("secret"), []byte("alice"))
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(sealed)
	flipped[len(flipped)-1] ^= 1
	for _, tc := range []struct {
		name   string
		sealed []byte
		ad     string
		want   error
	}{
		{"other context", sealed, "mallory", seal.ErrOpen},
		{"altered", flipped, "alice", seal.ErrOpen},
		{"truncated", sealed[:len(sealed)-20], "alice", seal.ErrMalformed},
		{"empty", nil, "alice", seal.ErrMalformed},
		{"other version", append([]byte{2}, sealed[1:]...), "alice", seal.ErrMalformed},
		{"kid length past the end", []byte{1, 200, 'x'}, "alice", seal.ErrMalformed},
		{"unknown kid", append([]byte{1, 3}, []byte("abc0123456789012345678901234567890")...), "alice", seal.ErrNoKey},
	} {
		if _, err := seal.Open(h, tc.sealed, []byte(tc.ad)); !errors.Is(err, tc.want) {
			t.Errorf("%s: Open = %v, want %v", tc.name, err, tc.want)
		}
	}
}

// A rotation keeps what the old key sealed readable while the old key is
// in the ring, seals new values under the new key, and once the old key
// has left the Secret its values no longer open.
func TestSealAcrossKeyRotation(t *testing.T) {
	k1, k2 := newKey(t, keys.ES256), newKey(t, keys.ES256)
	old, err := seal.Seal(ring(t, k1), now, []byte("v1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	rotated := ring(t, k2, k1)
	if got, err := seal.Open(rotated, old, nil); err != nil || string(got) != "v1" {
		t.Fatalf("after rotation: Open = %q, %v", got, err)
	}
	fresh, _ := seal.Seal(rotated, now, []byte("v2"), nil)
	if _, err := seal.Open(ring(t, k2), fresh, nil); err != nil {
		t.Fatalf("sealed after rotation does not open under the new key alone: %v", err)
	}
	if _, err := seal.Open(ring(t, k2), old, nil); !errors.Is(err, seal.ErrNoKey) {
		t.Fatalf("old key removed: Open = %v, want ErrNoKey", err)
	}
	if _, err := seal.Seal(&keys.Holder{}, now, []byte("x"), nil); !errors.Is(err, seal.ErrNoKey) {
		t.Fatalf("no keyring: Seal = %v, want ErrNoKey", err)
	}
}

// Different purposes derive unrelated keys from one signing key, and a
// verification-only key derives none.
func TestKeySecret(t *testing.T) {
	k := newKey(t, keys.ES256)
	a, err := k.Secret("a")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := k.Secret("b")
	a2, _ := k.Secret("a")
	if len(a) != 32 || bytes.Equal(a, b) || !bytes.Equal(a, a2) {
		t.Fatalf("Secret: a=%x b=%x a again=%x", a, b, a2)
	}
	pub := &keys.Key{ID: k.ID, Alg: k.Alg, Public: k.Public}
	if _, err := pub.Secret("a"); !errors.Is(err, keys.ErrNoPrivateKey) {
		t.Fatalf("verification-only key: %v", err)
	}
}

func BenchmarkSealOpen(b *testing.B) {
	k, _ := keys.Generate(keys.ES256)
	r, _ := keys.NewKeyring(k)
	h := &keys.Holder{}
	h.Store(r)
	plain := bytes.Repeat([]byte("x"), 600)
	for b.Loop() {
		s, _ := seal.Seal(h, now, plain, []byte("alice"))
		if _, err := seal.Open(h, s, []byte("alice")); err != nil {
			b.Fatal(err)
		}
	}
}
