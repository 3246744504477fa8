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

// keyTag names a key in a token: the first 4 bytes of SHA-256 of its kid.
// Two kids may share a tag; the MAC tells them apart (verify tries each).
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
	byKID map[string]*macKey
	byTag map[[tagBytes]byte][]*macKey
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
	d := &derived{ring: r, byKID: make(map[string]*macKey), byTag: make(map[[tagBytes]byte][]*macKey)}
	for _, k := range r.Keys() {
		s, err := k.Secret(refreshPurpose)
		if err != nil {
			continue
		}
		key := &macKey{kid: k.ID, tag: keyTag(k.ID), k: s}
		d.byKID[k.ID] = key
		d.byTag[key.tag] = append(d.byTag[key.tag], key)
	}
	mk.cur.Store(d)
	return d, nil
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
// that signs at now, and that key's kid.
func (mk *macKeys) issue(now time.Time, id string, gen uint64) (kid, rt string, err error) {
	d, err := mk.load()
	if err != nil {
		return "", "", err
	}
	s := d.ring.Signer(now)
	if s == nil {
		return "", "", ErrNoRefreshKey
	}
	key := d.byKID[s.ID]
	if key == nil {
		return "", "", fmt.Errorf("%w: signing key %s has no private key", ErrNoRefreshKey, s.ID)
	}
	return key.kid, encode(id, gen, key.tag, mac(key.k, id, gen)), nil
}

// token returns the token of generation gen of family id under key kid
// (a successor issued before: the same bytes again), while that key may
// still refresh at now.
func (mk *macKeys) token(kid, id string, gen uint64, now time.Time) (string, error) {
	d, err := mk.load()
	if err != nil {
		return "", err
	}
	key := d.byKID[kid]
	if _, ok := d.ring.RefreshKey(kid, now); key == nil || !ok {
		return "", fmt.Errorf("%w: key %s left the keyring", ErrNoRefreshKey, kid)
	}
	return encode(id, gen, key.tag, mac(key.k, id, gen)), nil
}

// verify returns the kid of the key under which t's MAC is genuine, or ""
// when none of the keys its tag names verifies it at now (a guess, a
// forgery, a key gone from the ring or past its refresh horizon,
// keys.Keyring.RefreshKey). Comparisons are constant-time.
func (mk *macKeys) verify(t token, now time.Time) (string, error) {
	d, err := mk.load()
	if err != nil {
		return "", err
	}
	kid := ""
	for _, key := range d.byTag[t.tag] {
		if _, ok := d.ring.RefreshKey(key.kid, now); !ok {
			continue
		}
		if subtle.ConstantTimeCompare(mac(key.k, t.id, t.gen), t.secret[:]) == 1 {
			kid = key.kid
		}
	}
	return kid, nil
}
