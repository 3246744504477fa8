// Package seal encrypts the few secrets silentauth keeps on the server
// side (the identity provider's tokens in a session family, a login flow's
// PKCE verifier in its cookie), so that a copy of the store, or of a
// browser's cookies, reveals nothing.
//
// A value is sealed with AES-256-GCM under a key derived from the signing
// key in use (keys.Key.Secret), and names that key by its kid, so:
//   - every replica reading the same keys Secret opens what another sealed;
//   - a key rotation never makes a sealed value unreadable while the old
//     key is still in the keyring (values are sealed again under the new
//     key whenever they are rewritten);
//   - a value is bound to its context (the additional data, e.g. the
//     session's subject or the login's state): moved elsewhere, it does not
//     open.
//
// Format: version byte 1, kid length byte, kid, 12-byte nonce, ciphertext
// with its 16-byte tag.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/silentauth/silentauth/authz/keys"
)

// Sentinel errors.
var (
	ErrNoKey     = errors.New("seal: no key to seal or open with") // no keyring, or the key left the ring
	ErrMalformed = errors.New("seal: malformed sealed value")      // not this format
	ErrOpen      = errors.New("seal: sealed value does not open")  // altered, or sealed for another context
)

const (
	version = 1
	purpose = "silentauth seal v1"
)

// Seal encrypts plaintext under the key that signs at now, bound to ad.
func Seal(src keys.Source, now time.Time, plaintext, ad []byte) ([]byte, error) {
	r := src.Keyring()
	if r == nil {
		return nil, ErrNoKey
	}
	k := r.Signer(now)
	if k == nil {
		return nil, ErrNoKey
	}
	aead, err := aeadFor(k)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, 2+len(k.ID)+aead.NonceSize()+len(plaintext)+aead.Overhead())
	out = append(out, version, byte(len(k.ID)))
	out = append(out, k.ID...)
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	out = append(out, nonce...)
	return aead.Seal(out, nonce, plaintext, ad), nil
}

// Open decrypts a value Seal made with the same ad, under whichever key of
// the ring it names.
func Open(src keys.Source, sealed, ad []byte) ([]byte, error) {
	if len(sealed) < 2 || sealed[0] != version || len(sealed) < 2+int(sealed[1]) {
		return nil, ErrMalformed
	}
	kid, rest := string(sealed[2:2+int(sealed[1])]), sealed[2+int(sealed[1]):]
	r := src.Keyring()
	if r == nil {
		return nil, ErrNoKey
	}
	k, ok := r.Key(kid)
	if !ok {
		return nil, ErrNoKey
	}
	aead, err := aeadFor(k)
	if err != nil {
		return nil, err
	}
	if len(rest) < aead.NonceSize()+aead.Overhead() {
		return nil, ErrMalformed
	}
	plain, err := aead.Open(nil, rest[:aead.NonceSize()], rest[aead.NonceSize():], ad)
	if err != nil {
		return nil, ErrOpen
	}
	return plain, nil
}

// aeads caches the cipher of each kid: deriving it costs a PKCS#8
// encoding and an HKDF, and a kid (a thumbprint) always names the same key.
// Keys are few and rotate rarely, so the cache stays small.
var aeads sync.Map // kid → cipher.AEAD

func aeadFor(k *keys.Key) (cipher.AEAD, error) {
	if a, ok := aeads.Load(k.ID); ok {
		return a.(cipher.AEAD), nil
	}
	secret, err := k.Secret(purpose)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoKey, err)
	}
	block, err := aes.NewCipher(secret)
	if err != nil {
		return nil, err
	}
	a, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	aeads.Store(k.ID, a)
	return a, nil
}
