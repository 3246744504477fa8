package session

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/silentauth/silentauth/authz/keys"
)

// refreshPurpose names the refresh MAC key among the secrets derived from
// a signing key (keys.Key.Secret), and prefixes every MAC's input.
const refreshPurpose = "silentauth refresh v1"

// ErrNoRefreshKey: no keyring yet, or the key a family's current
// generation was made under has left it. An outage, not a verdict on the
// token.
var ErrNoRefreshKey = errors.New("session: no refresh key")

// RefreshKeys has the Manager derive each generation's secret from the
// signing keys of src (keys.Key.Secret(refreshPurpose)): every replica
// reading the same keys Secret mints and verifies the same tokens, and a
// key rotation logs nobody out while the previous key stays in the ring
// (families move to the new key as they rotate). Without it, a Manager
// uses a key generated when the process started, shared by every Manager
// of the process: tokens then survive neither a restart nor a trip to
// another replica (tests, single-process tools).
func RefreshKeys(src keys.Source) Option {
	return func(m *Manager) { m.keys.src = src }
}

// processKeys is the key source of Managers built without RefreshKeys.
var processKeys = sync.OnceValue(func() keys.Source {
	h := new(keys.Holder)
	k, err := keys.Generate(keys.EdDSA)
	if err != nil {
		panic("session: generate a process key: " + err.Error()) // crypto/rand never fails
	}
	r, err := keys.NewKeyring(k)
	if err != nil {
		panic("session: process keyring: " + err.Error())
	}
	h.Store(r)
	return h
})

// keyTag names a key in a token and in its family (store.Family.RefreshKey,
// as a 4-byte string): the first 4 bytes of SHA-256 of its kid. Should two
// keys of a ring share a tag (one chance in 2^32 per pair), only the first
// in ring order derives refresh MACs, so a tag always names one key.
func keyTag(kid string) [tagBytes]byte {
	h := sha256.Sum256([]byte(kid))
	return [tagBytes]byte(h[:tagBytes])
}

// macKeys derives the refresh MAC keys of the current keyring, once per
// keyring. Safe for concurrent use.
type macKeys struct {
	src keys.Source
	cur atomic.Pointer[derived]
}

// derived holds the MAC keys of one keyring.
type derived struct {
	ring  *keys.Keyring
	byTag map[[tagBytes]byte]*macKey
}

type macKey struct {
	kid string
	tag [tagBytes]byte
	k   []byte
}

// load returns the MAC keys of src's current keyring. Verification-only
// keys have no secret and are left out: a family made under one cannot
// be refreshed here.
func (mk *macKeys) load() (*derived, error) {
	r := mk.src.Keyring()
	if r == nil {
		return nil, ErrNoRefreshKey
	}
	if d := mk.cur.Load(); d != nil && d.ring == r {
		return d, nil
	}
	d := &derived{ring: r, byTag: make(map[[tagBytes]byte]*macKey)}
	for _, k := range r.Keys() {
		s, err := k.Secret(refreshPurpose)
		if err != nil {
			continue
		}
		key := &macKey{kid: k.ID, tag: keyTag(k.ID), k: s}
		if d.byTag[key.tag] == nil {
			d.byTag[key.tag] = key
		}
	}
	mk.cur.Store(d)
	return d, nil
}

// refreshing returns the key tag names while it may still refresh at now
// (keys.Keyring.RefreshKey), else nil.
func (d *derived) refreshing(tag [tagBytes]byte, now time.Time) *macKey {
	key := d.byTag[tag]
	if key == nil {
		return nil
	}
	if _, ok := d.ring.RefreshKey(key.kid, now); !ok {
		return nil
	}
	return key
}

// mac is generation gen's secret in family id: HMAC-SHA256 under k of the
// purpose, the id and the generation (RFC 2104). Ids have a fixed length,
// so the input is unambiguous.
func mac(k []byte, id string, gen uint64) []byte {
	h := hmac.New(sha256.New, k)
	h.Write([]byte(refreshPurpose))
	h.Write([]byte(id))
	var g [8]byte
	binary.BigEndian.PutUint64(g[:], gen)
	h.Write(g[:])
	return h.Sum(nil)
}

// issue returns the token of generation gen of family id under the key
// that signs at now, and that key's tag (the family's RefreshKey).
func (mk *macKeys) issue(now time.Time, id string, gen uint64) (tag, rt string, err error) {
	d, err := mk.load()
	if err != nil {
		return "", "", err
	}
	s := d.ring.Signer(now)
	if s == nil {
		return "", "", ErrNoRefreshKey
	}
	key := d.byTag[keyTag(s.ID)]
	if key == nil || key.kid != s.ID {
		return "", "", fmt.Errorf("%w: signing key %s has no refresh MAC key", ErrNoRefreshKey, s.ID)
	}
	return string(key.tag[:]), encode(id, gen, key.tag, mac(key.k, id, gen)), nil
}

// token returns the token of generation gen of family id under the key
// tag names (a successor issued before: the same bytes again), while that
// key may still refresh at now.
func (mk *macKeys) token(tag, id string, gen uint64, now time.Time) (string, error) {
	d, err := mk.load()
	if err != nil {
		return "", err
	}
	key := d.refreshing([tagBytes]byte([]byte(tag)), now)
	if key == nil {
		return "", fmt.Errorf("%w: the key of tag %x left the keyring", ErrNoRefreshKey, tag)
	}
	return encode(id, gen, key.tag, mac(key.k, id, gen)), nil
}

// verify reports whether t's MAC is genuine under the key its tag names,
// while that key may still refresh at now: false for a guess, a forgery,
// or a key gone from the ring or past its refresh horizon
// (keys.Keyring.RefreshKey). The comparison is constant-time.
func (mk *macKeys) verify(t token, now time.Time) (bool, error) {
	d, err := mk.load()
	if err != nil {
		return false, err
	}
	key := d.refreshing(t.tag, now)
	return key != nil && subtle.ConstantTimeCompare(mac(key.k, t.id, t.gen), t.secret[:]) == 1, nil
}
