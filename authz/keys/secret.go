package keys

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// The Kubernetes Secret format, written by hand with kubectl or by the
// kubectl-silentauth plugin, and read by every replica the same way:
//
//	data:
//	  <name>.pem: PEM private key (PKCS#8, SEC1 or PKCS#1), one per key
//	metadata.annotations:
//	  keys.silentauth.dev/<name>.published-at: RFC 3339 time (informational; default: when first seen)
//	  keys.silentauth.dev/<name>.activate-at:  RFC 3339 time the key starts signing (absent: at once)
//	  keys.silentauth.dev/<name>.retire-at:    RFC 3339 time the key stops signing (absent: never)
//
// <name> is 1–40 characters of [a-z0-9-], starting and ending with a
// letter or digit. A key's state is derived from these timestamps and the
// clock, so every replica agrees without writing anything:
//
//	next      now < activate-at                      published in the JWKS, verifies, does not sign
//	active    activate-at ≤ now < retire-at          signs (the one with the latest activate-at)
//	retiring  retire-at ≤ now < retire-at + keep     verifies only; keep = access TTL + leeway
//	gone      now ≥ retire-at + keep                 dropped from the JWKS and from verification
//
// Across these states a key also verifies refresh tokens (MACs under a
// secret derived from it, see Keyring.RefreshKey) until retire-at +
// refresh keep, where refresh keep = max(sessions' idle TTL, keep): a key
// that is gone still refreshes the sessions it last rotated, and removing
// its entry before then logs those sessions out (their tokens read
// session.ErrUnknownSecret). After that a key is useless and its entry
// may be deleted.
//
// An emergency revoke deletes the key's data entry and annotations before
// then: access tokens it signed stop verifying at once and are re-minted
// through the refresh path, but the sessions whose refresh tokens it made
// are logged out at their next refresh.
//
// Annotations without the keys.silentauth.dev/ prefix are ignored; one with
// the prefix must be one of the three above, so that a typo such as
// "k2.activate_at" is an error rather than a key that signs at once.
const AnnotationPrefix = "keys.silentauth.dev/"

// Annotation suffixes of a key's lifecycle timestamps.
const (
	PublishedAtSuffix = ".published-at"
	ActivateAtSuffix  = ".activate-at"
	RetireAtSuffix    = ".retire-at"
)

// MaxSecretKeys bounds the keys one Secret may hold. A rotation needs three
// (retiring, active, next); the bound keeps a runaway script from making
// every JWKS request assemble thousands of keys.
const MaxSecretKeys = 64

// maxNameLen is the longest entry name.
const maxNameLen = 40

// State is a key's place in its lifecycle at a given time.
type State string

// The lifecycle states.
const (
	StateNext     State = "next"
	StateActive   State = "active"
	StateRetiring State = "retiring"
	StateGone     State = "gone"
)

// AllStates lists the lifecycle states in lifecycle order.
var AllStates = [...]State{StateNext, StateActive, StateRetiring, StateGone}

// Entry is one key as written in the Secret: its name, the key, and its
// lifecycle timestamps (zero when the annotation is absent).
type Entry struct {
	Name        string
	Key         *Key
	PublishedAt time.Time
	ActivateAt  time.Time
	RetireAt    time.Time
}

// ErrSecretFormat wraps every problem ParseSecret reports.
var ErrSecretFormat = errors.New("keys: secret format")

// ErrOrphanAnnotation marks a lifecycle annotation whose key has no data
// entry: a typo in the name, or the leftovers of a revoke that removed the
// data but not the annotations.
var ErrOrphanAnnotation = errors.New("keys: annotation without a data entry")

// EntryError is one problem ParseSecret found, naming where it is. Its
// message never quotes key material, and quotes names only bounded.
// errors.Is matches ErrSecretFormat and whatever Err wraps (ErrInvalidPEM,
// ErrUnsupportedKey, ErrDuplicateKID, ErrOrphanAnnotation).
type EntryError struct {
	// Name is the key's name ("k2"), or "" when the field has no valid name.
	Name string
	// Field is the data key ("k2.pem") or annotation key at fault.
	Field string
	// Err describes the problem.
	Err error
}

func (e *EntryError) Error() string {
	kind := "data entry"
	if strings.HasPrefix(e.Field, AnnotationPrefix) {
		kind = "annotation"
	}
	// The sentinels carry the package prefix; inside "entry x: …" it is noise.
	return kind + " " + quoteField(e.Field) + ": " + strings.TrimPrefix(e.Err.Error(), "keys: ")
}

// Unwrap returns ErrSecretFormat and Err.
func (e *EntryError) Unwrap() []error { return []error{ErrSecretFormat, e.Err} }

// quoteField returns a Secret key as is when it is short and made of the
// characters Kubernetes allows in data and annotation keys, else quoted and
// cut, so a log line stays one bounded line.
func quoteField(s string) string {
	const limit = 100
	safe := len(s) <= limit && s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-._/", r))
	})
	if safe {
		return s
	}
	if len(s) > limit {
		s = s[:limit] + "…"
	}
	return fmt.Sprintf("%q", s)
}

// ValidName reports whether name may name a key in the Secret: 1–40
// characters of [a-z0-9-], starting and ending with a letter or digit (a
// DNS-1123 label, shorter, so "<name>.published-at" fits an annotation).
func ValidName(name string) bool {
	if name == "" || len(name) > maxNameLen || name[0] == '-' || name[len(name)-1] == '-' {
		return false
	}
	for i := 0; i < len(name); i++ {
		if b := name[i]; !(b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '-') {
			return false
		}
	}
	return true
}

// ParseSecret reads every key of a Secret's data and annotations. It
// reports every problem at once (errors.Join of *EntryError), each naming
// the entry: bad PEM, weak RSA, unknown algorithm, a malformed timestamp, an
// annotation for a key that has no data entry, retire-at not after
// activate-at, a data entry that is not <name>.pem, the same key under two
// names, more than MaxSecretKeys keys.
//
// The entries come back ordered by name. Every entry that parsed without a
// problem is returned even when err is not nil, so that a caller can judge
// problems that concern no returned entry (ErrOrphanAnnotation); a caller
// that needs a clean Secret ignores them. A Secret without data yields no
// entries and no error; NewSecretKeyring refuses it.
func ParseSecret(data map[string][]byte, annotations map[string]string) ([]Entry, error) {
	var problems []error
	report := func(name, field string, err error) {
		problems = append(problems, &EntryError{Name: name, Field: field, Err: err})
	}

	byName := make(map[string]*Entry, len(data))
	bad := make(map[string]bool) // names whose data or annotations are unusable
	kids := make(map[string]string)
	for _, field := range slices.Sorted(maps.Keys(data)) {
		name, ok := strings.CutSuffix(field, ".pem")
		if !ok || !ValidName(name) {
			report("", field, errors.New("not <name>.pem, where <name> is 1–40 of a-z, 0-9 and - (starting and ending with a letter or digit)"))
			continue
		}
		k, err := ParsePEM(data[field])
		if err != nil {
			report(name, field, err)
			bad[name] = true
			continue
		}
		if prev, dup := kids[k.ID]; dup {
			report(name, field, fmt.Errorf("%w: same key as %s.pem (kid %s)", ErrDuplicateKID, prev, k.ID))
			bad[name] = true
			continue
		}
		kids[k.ID] = name
		byName[name] = &Entry{Name: name, Key: k}
	}
	if n := len(byName) + len(bad); n > MaxSecretKeys {
		problems = append(problems, fmt.Errorf("%w: %d keys, at most %d", ErrSecretFormat, n, MaxSecretKeys))
	}

	for _, field := range slices.Sorted(maps.Keys(annotations)) {
		rest, ok := strings.CutPrefix(field, AnnotationPrefix)
		if !ok {
			continue // not ours: kubectl, Helm and Argo CD annotate Secrets too
		}
		name, suffix := "", ""
		for _, s := range [...]string{PublishedAtSuffix, ActivateAtSuffix, RetireAtSuffix} {
			if n, ok := strings.CutSuffix(rest, s); ok {
				name, suffix = n, s
			}
		}
		if suffix == "" || !ValidName(name) {
			report("", field, errors.New("unknown; expected <name>.published-at, <name>.activate-at or <name>.retire-at"))
			continue
		}
		t, err := time.Parse(time.RFC3339, strings.TrimSpace(annotations[field]))
		if err != nil {
			report(name, field, fmt.Errorf("%s is not an RFC 3339 time such as 2026-01-02T15:04:05Z", quoteValue(annotations[field])))
			bad[name] = true
			continue
		}
		e := byName[name]
		if e == nil {
			if !bad[name] {
				report(name, field, fmt.Errorf("%w: there is no data entry %s.pem (a revoke removes both the data entry and its annotations)", ErrOrphanAnnotation, name))
			}
			continue
		}
		switch suffix {
		case PublishedAtSuffix:
			e.PublishedAt = t
		case ActivateAtSuffix:
			e.ActivateAt = t
		case RetireAtSuffix:
			e.RetireAt = t
		}
	}

	entries := make([]Entry, 0, len(byName))
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		e := byName[name]
		if err := e.checkTimes(); err != nil {
			report(name, AnnotationPrefix+name+RetireAtSuffix, err)
			continue
		}
		if bad[name] {
			continue
		}
		entries = append(entries, *e)
	}
	return entries, errors.Join(problems...)
}

// quoteValue quotes an annotation value for an error, bounded in length.
// Annotation values are public metadata, never key material.
func quoteValue(v string) string {
	const limit = 40
	if len(v) > limit {
		v = v[:limit] + "…"
	}
	return fmt.Sprintf("%q", v)
}

// stamp formats t the way the annotations are written.
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// EncodeEntry renders e as the Secret's data entry (name and PEM, PKCS#8)
// and annotations, the inverse of ParseSecret. Zero times produce no
// annotation; the others are written in UTC with RFC3339Nano, which is
// plain RFC 3339 for whole seconds. It refuses an invalid name, a key
// without its private half, and retire-at not after activate-at.
func EncodeEntry(e Entry) (dataKey string, pem []byte, annotations map[string]string, err error) {
	if err := e.check(); err != nil {
		return "", nil, nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(e.Key.Signer)
	if err != nil {
		return "", nil, nil, fmt.Errorf("%w: entry %s: %T cannot be written as PKCS#8", ErrUnsupportedKey, e.Name, e.Key.Signer)
	}
	annotations = make(map[string]string, 3)
	for suffix, t := range map[string]time.Time{PublishedAtSuffix: e.PublishedAt, ActivateAtSuffix: e.ActivateAt, RetireAtSuffix: e.RetireAt} {
		if !t.IsZero() {
			annotations[AnnotationPrefix+e.Name+suffix] = stamp(t)
		}
	}
	return e.Name + ".pem", encodePEM(der), annotations, nil
}

func encodePEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// Lifecycle says how long a retired key must keep verifying: access
// tokens until every one it signed has expired, refresh tokens until
// every session that last refreshed while it signed has expired.
type Lifecycle struct {
	AccessTTL time.Duration
	Leeway    time.Duration
	// RefreshTTL is the sessions' idle TTL (sessions.idleTTL): a refresh
	// token is a MAC under a secret derived from the key that signed when
	// its family last rotated, and its session stays alive this long
	// unused. Zero (or shorter than Keep) counts as Keep.
	RefreshTTL time.Duration
}

// Keep is how long a key verifies after its retire-at.
func (l Lifecycle) Keep() time.Duration { return l.AccessTTL + l.Leeway }

// RefreshKeep is how long a key verifies refresh tokens after its
// retire-at: RefreshTTL, and never less than Keep.
func (l Lifecycle) RefreshKeep() time.Duration { return max(l.RefreshTTL, l.Keep()) }

// RefreshesUntil returns when e stops verifying refresh tokens, by the
// table above: retire-at + RefreshKeep; zero when e has no retire-at
// (never, as things stand). Until then removing e from the Secret logs out
// the sessions whose refresh tokens it made. Like StateAt it looks at e
// alone (see KeyStatus.RefreshesUntil for a degraded signer).
func (l Lifecycle) RefreshesUntil(e Entry) time.Time {
	if e.RetireAt.IsZero() {
		return time.Time{}
	}
	return e.RetireAt.Add(l.RefreshKeep())
}

// RefreshesAt reports whether e may still verify refresh tokens at now:
// before RefreshesUntil, in any state (a gone key included).
func (l Lifecycle) RefreshesAt(e Entry, now time.Time) bool {
	u := l.RefreshesUntil(e)
	return u.IsZero() || now.Before(u)
}

// StateAt returns the state of e at now under l, by the table above. A
// zero ActivateAt means active since forever, a zero RetireAt never
// retiring. It looks at e alone: a Keyring may keep a gone key verifying
// while it is still the only key that signs (see Keyring.Degraded).
func (l Lifecycle) StateAt(e Entry, now time.Time) State {
	var until time.Time
	if !e.RetireAt.IsZero() {
		until = e.RetireAt.Add(l.Keep())
	}
	return stateAt(e, until, now)
}

// check refuses an entry that EncodeEntry cannot write or NewSecretKeyring
// cannot use: an invalid name, a key without its private half or whose
// fields disagree, and retire-at not after activate-at.
func (e Entry) check() error {
	if !ValidName(e.Name) {
		return fmt.Errorf("%w: name %s is not 1–40 of a-z, 0-9 and - (starting and ending with a letter or digit)", ErrSecretFormat, quoteValue(e.Name))
	}
	if err := checkSigner(e.Key); err != nil {
		return fmt.Errorf("entry %s: %w", e.Name, err)
	}
	if err := e.checkTimes(); err != nil {
		return fmt.Errorf("%w: entry %s: retire-at %w", ErrSecretFormat, e.Name, err)
	}
	return nil
}

// checkTimes refuses retire-at not after activate-at: the key would never
// sign, and a typo in either time must not go unnoticed. The error is
// about the retire-at annotation and does not name it.
func (e Entry) checkTimes() error {
	if !e.RetireAt.IsZero() && !e.ActivateAt.IsZero() && !e.RetireAt.After(e.ActivateAt) {
		return fmt.Errorf("%s is not after activate-at %s", stamp(e.RetireAt), stamp(e.ActivateAt))
	}
	return nil
}

// NewSecretKeyring builds a keyring whose Signer, Lookup and JWKS follow
// each entry's lifecycle at the time they are asked (see Keyring). The
// entries and keys are copied. A zero PublishedAt becomes now.
//
// It refuses no entries and a set in which no key has reached its
// activate-at by now (ErrNoActiveKey): a Secret of next keys only would sign
// with a key relying parties may not have yet. A set whose keys have all
// retired is accepted, degraded (see Keyring.Degraded), so that a restart
// after a missed rotation does not turn a warning into an outage. It also
// refuses duplicate kids (ErrDuplicateKID), duplicate or invalid names and
// retire-at not after activate-at (ErrSecretFormat), a key without its
// private half or whose fields disagree (ErrInvalidKey), more than
// MaxSecretKeys entries, and a negative Lifecycle.
func NewSecretKeyring(entries []Entry, l Lifecycle, now time.Time) (*Keyring, error) {
	if l.AccessTTL < 0 || l.Leeway < 0 || l.RefreshTTL < 0 {
		return nil, fmt.Errorf("keys: lifecycle durations must not be negative (access TTL %v, leeway %v, refresh TTL %v)", l.AccessTTL, l.Leeway, l.RefreshTTL)
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("%w: the Secret holds no keys (no <name>.pem data entry)", ErrNoActiveKey)
	}
	if len(entries) > MaxSecretKeys {
		return nil, fmt.Errorf("%w: %d keys, at most %d", ErrSecretFormat, len(entries), MaxSecretKeys)
	}
	members := make([]*member, 0, len(entries))
	names := make(map[string]bool, len(entries))
	for _, e := range entries {
		if err := e.check(); err != nil {
			return nil, err
		}
		if names[e.Name] {
			return nil, fmt.Errorf("%w: two entries named %s", ErrSecretFormat, e.Name)
		}
		names[e.Name] = true
		k := *e.Key
		e.Key = &k
		if e.PublishedAt.IsZero() {
			e.PublishedAt = now
		}
		members = append(members, &member{key: &k, entry: e})
	}
	// JWKS order: by name, so equal Secrets give byte-identical JWKS and
	// ETags on every replica, whatever the time.
	slices.SortFunc(members, func(a, b *member) int { return strings.Compare(a.entry.Name, b.entry.Name) })

	r, err := newKeyring(members)
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(members, func(m *member) bool { return activated(m.entry, now) }) {
		first := slices.MinFunc(members, func(a, b *member) int { return a.entry.ActivateAt.Compare(b.entry.ActivateAt) })
		return nil, fmt.Errorf("%w: no key is active at %s; the first, %s, activates at %s", ErrNoActiveKey, stamp(now), first.entry.Name, stamp(first.entry.ActivateAt))
	}
	for _, m := range members {
		if end := signsUntil(m, members); !end.IsZero() {
			m.until, m.refreshUntil = end.Add(l.Keep()), end.Add(l.RefreshKeep())
		}
	}
	return r, nil
}

// checkSigner refuses a nil key, a key without its private half, and a key
// whose fields disagree with each other or with its private key.
func checkSigner(k *Key) error {
	if k == nil {
		return fmt.Errorf("%w: nil key", ErrInvalidKey)
	}
	if k.Signer == nil {
		return fmt.Errorf("%w: key %s has no private key", ErrInvalidKey, k.ID)
	}
	if eq, ok := k.Signer.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !eq.Equal(k.Public) {
		return fmt.Errorf("%w: key %s: private key does not match Public", ErrInvalidKey, k.ID)
	}
	return checkKey(k)
}
