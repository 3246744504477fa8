package session

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
)

// Lengths of the refresh-token format "<familyID>.<body>": both parts
// unpadded base64url (RFC 4648 §5); the id is 16 CSPRNG bytes, the body
// the generation (8 bytes, big-endian), the key tag (4) and the MAC (32).
const (
	IDLength    = idLen    // characters of a family id (store.Family.ID, the access token's sid)
	TokenLength = tokenLen // characters of a refresh token
)

const (
	idBytes     = 16                                        // family id entropy
	secretBytes = 32                                        // a MAC, or a legacy token's random secret
	tagBytes    = 4                                         // key tag: first bytes of SHA-256(kid)
	bodyBytes   = 8 + tagBytes + secretBytes                // generation, key tag, MAC
	idLen       = 22                                        // base64url of 16 bytes
	bodyLen     = 59                                        // base64url of 44 bytes
	tokenLen    = idLen + 1 + bodyLen                       // 82
	secretLen   = 43                                        // base64url of 32 bytes
	legacyLen   = idLen + 1 + secretLen                     // 66: "<id>.<random secret>", before keyed MACs
	successInfo = "silentauth session successor v1 family=" // HKDF info prefix of legacy sealed successors
)

// b64 decodes strictly: non-zero trailing bits are rejected, so every token
// has exactly one spelling.
var b64 = base64.RawURLEncoding.Strict()

// token is a parsed refresh token.
type token struct {
	id string // family id, as spelled in the token
	// legacy: a token of the format before keyed MACs, "<id>.<secret>",
	// recognised by the SHA-256 hashes a family written then still holds.
	legacy bool
	gen    uint64            // the generation the token names (0 for legacy)
	tag    [tagBytes]byte    // names the key of the MAC (keyTag)
	secret [secretBytes]byte // the MAC, or the legacy random secret; never stored, never logged
}

// parse checks rt strictly before anything touches the store: exact length,
// one dot at the right place, base64url alphabet only, canonical encoding,
// a generation of at least 1. Any failure is ErrMalformed.
func parse(rt string) (token, error) {
	var t token
	if (len(rt) != tokenLen && len(rt) != legacyLen) || rt[idLen] != '.' {
		return t, ErrMalformed
	}
	id, body := rt[:idLen], rt[idLen+1:]
	if !validID(id) || !isB64URL(body) {
		return t, ErrMalformed
	}
	if len(rt) == legacyLen {
		if n, err := b64.Decode(t.secret[:], []byte(body)); err != nil || n != secretBytes {
			return t, ErrMalformed
		}
		t.id, t.legacy = id, true
		return t, nil
	}
	var b [bodyBytes]byte
	if n, err := b64.Decode(b[:], []byte(body)); err != nil || n != bodyBytes {
		return t, ErrMalformed
	}
	t.gen = binary.BigEndian.Uint64(b[:8])
	if t.gen == 0 {
		return t, ErrMalformed // generations start at 1
	}
	copy(t.tag[:], b[8:8+tagBytes])
	copy(t.secret[:], b[8+tagBytes:])
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

// encode spells the refresh token of generation gen of family id, whose
// MAC mac was made under the key tagged tag.
func encode(id string, gen uint64, tag [tagBytes]byte, mac []byte) string {
	var b [bodyBytes]byte
	binary.BigEndian.PutUint64(b[:8], gen)
	copy(b[8:], tag[:])
	copy(b[8+tagBytes:], mac)
	buf := make([]byte, tokenLen)
	copy(buf, id)
	buf[idLen] = '.'
	b64.Encode(buf[idLen+1:], b[:])
	return string(buf)
}

// encodeLegacy spells a token of the format before keyed MACs: the
// successor sealed in a family written then is one.
func encodeLegacy(id string, secret []byte) string {
	buf := make([]byte, legacyLen)
	copy(buf, id)
	buf[idLen] = '.'
	b64.Encode(buf[idLen+1:], secret)
	return string(buf)
}

// hashSecret is what a family written before keyed MACs keeps instead of
// a secret.
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

// successorAEAD derives the AEAD that sealed the successor of prev in a
// legacy family id: AES-256-GCM under HKDF-SHA256(prev, info=successInfo+id)
// (RFC 5869).
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

// seal encrypts next under a key only prev can derive, as the previous
// version did; only tests build legacy families with it now.
func seal(prev []byte, id string, next []byte) ([]byte, error) {
	aead, err := successorAEAD(prev, id)
	if err != nil {
		return nil, fmt.Errorf("session: seal successor: %w", err)
	}
	return aead.Seal(nil, nil, next, []byte(id)), nil
}

var errSuccessor = errors.New("session: sealed successor does not open")

// open recovers the successor sealed under prev in a legacy family and
// checks it is the family's current secret. A failure means a corrupt
// record: it is an infrastructure error, not a sentinel.
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
