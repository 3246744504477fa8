package session

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
)

// Lengths of the refresh-token format "<familyID>.<secret>": both parts
// unpadded base64url (RFC 4648 §5) of CSPRNG bytes, 16 and 32 of them.
const (
	IDLength    = idLen    // characters of a family id (store.Family.ID, the access token's sid)
	TokenLength = tokenLen // characters of a refresh token
)

const (
	idBytes     = 16                                        // family id entropy
	secretBytes = 32                                        // secret entropy
	idLen       = 22                                        // base64url of 16 bytes
	secretLen   = 43                                        // base64url of 32 bytes
	tokenLen    = idLen + 1 + secretLen                     // 66
	successInfo = "silentauth session successor v1 family=" // HKDF info prefix
)

// b64 decodes strictly: non-zero trailing bits are rejected, so every token
// has exactly one spelling.
var b64 = base64.RawURLEncoding.Strict()

// token is a parsed refresh token.
type token struct {
	id     string            // family id, as spelled in the token
	secret [secretBytes]byte // never stored, never logged
}

// parse checks rt strictly before anything touches the store: exact length,
// one dot at the right place, base64url alphabet only, canonical encoding.
// Any failure is ErrMalformed.
func parse(rt string) (token, error) {
	var t token
	if len(rt) != tokenLen || rt[idLen] != '.' {
		return t, ErrMalformed
	}
	id, sec := rt[:idLen], rt[idLen+1:]
	if !validID(id) || !isB64URL(sec) {
		return t, ErrMalformed
	}
	if n, err := b64.Decode(t.secret[:], []byte(sec)); err != nil || n != secretBytes {
		return t, ErrMalformed
	}
	t.id = id
	return t, nil
}

// validID reports whether id is a well-formed family id.
func validID(id string) bool {
	if len(id) != idLen || !isB64URL(id) {
		return false
	}
	var b [idBytes]byte
	n, err := b64.Decode(b[:], []byte(id))
	return err == nil && n == idBytes
}

func isB64URL(s string) bool {
	for i := range len(s) {
		switch c := s[i]; {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// newID returns a fresh random family id.
func newID() string {
	var b [idBytes]byte
	rand.Read(b[:]) // never fails (crypto/rand, Go ≥ 1.24)
	return b64.EncodeToString(b[:])
}

// newSecret returns a fresh random secret.
func newSecret() (s [secretBytes]byte) {
	rand.Read(s[:])
	return s
}

// encode spells the refresh token of family id with secret.
func encode(id string, secret []byte) string {
	buf := make([]byte, tokenLen)
	copy(buf, id)
	buf[idLen] = '.'
	b64.Encode(buf[idLen+1:], secret)
	return string(buf)
}

// hashSecret is what the store keeps instead of a secret.
func hashSecret(secret []byte) []byte {
	h := sha256.Sum256(secret)
	return h[:]
}

// match returns the index of h in hashes, or -1. Every comparison is
// constant-time (crypto/subtle) and all hashes are compared.
func match(hashes [][]byte, h []byte) int {
	found := -1
	for i, x := range hashes {
		if subtle.ConstantTimeCompare(x, h) == 1 && found < 0 {
			found = i
		}
	}
	return found
}

// successorAEAD derives the AEAD that seals the successor of prev in family
// id: AES-256-GCM under HKDF-SHA256(prev, info=successInfo+id) (RFC 5869).
// Only someone holding prev can open it, so the store alone cannot.
func successorAEAD(prev []byte, id string) (cipher.AEAD, error) {
	key, err := hkdf.Key(sha256.New, prev, nil, successInfo+id, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCMWithRandomNonce(block)
}

// seal encrypts next under a key only prev can derive; the family id is
// authenticated as additional data.
func seal(prev []byte, id string, next []byte) ([]byte, error) {
	aead, err := successorAEAD(prev, id)
	if err != nil {
		return nil, fmt.Errorf("session: seal successor: %w", err)
	}
	return aead.Seal(nil, nil, next, []byte(id)), nil
}

var errSuccessor = errors.New("session: sealed successor does not open")

// open recovers the successor sealed under prev and checks it is the
// family's current secret. A failure means a corrupt record: it is an
// infrastructure error, not a sentinel.
func open(prev []byte, id string, sealed, current []byte) ([]byte, error) {
	aead, err := successorAEAD(prev, id)
	if err != nil {
		return nil, fmt.Errorf("session: open successor: %w", err)
	}
	next, err := aead.Open(nil, nil, sealed, []byte(id))
	if err != nil || len(next) != secretBytes ||
		subtle.ConstantTimeCompare(hashSecret(next), current) != 1 {
		return nil, fmt.Errorf("family %s: %w", id, errSuccessor)
	}
	return next, nil
}
