package keys

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"
)

// member is one key of a Keyring with everything the hot path needs.
type member struct {
	key        *Key
	entry      Entry // Name and timestamps; zero for NewKeyring keys
	verifyOnly bool  // NewKeyring's other keys: never sign, verify forever
	jwk        []byte

	// until is when the key stops verifying; zero: never. visIdx is its
	// index in Keyring.visBreaks (len(visBreaks) when until is zero).
	until  time.Time
	visIdx int

	// The end of the key's last signing interval, for keep-after-retire.
	signs, signsForever bool
	lastSign            time.Time
}

// verifiesAt reports whether m may verify tokens at now.
func (m *member) verifiesAt(now time.Time) bool { return m.until.IsZero() || now.Before(m.until) }

// jwksBody is one assembled JWKS and its ETag.
type jwksBody struct {
	body []byte
	etag string
}

// segment returns how many of the sorted breaks are at or before now: the
// index of the interval that holds now.
func segment(breaks []time.Time, now time.Time) int {
	return sort.Search(len(breaks), func(i int) bool { return now.Before(breaks[i]) })
}

// activated reports whether m's activate-at has come by t (whatever its
// retire-at).
func activated(m *member, t time.Time) bool {
	return m.entry.ActivateAt.IsZero() || !t.Before(m.entry.ActivateAt)
}

// newer orders the active keys: the latest activate-at signs, ties broken
// by the greatest name, so every replica picks the same key.
func newer(a, b *member) bool {
	if c := a.entry.ActivateAt.Compare(b.entry.ActivateAt); c != 0 {
		return c > 0
	}
	return a.entry.Name > b.entry.Name
}

// pickSigner chooses the key that signs at t, and whether that is a
// fallback because no key is active at t.
func pickSigner(ms []*member, l Lifecycle, t time.Time) (signer *member, degraded bool) {
	for _, m := range ms {
		if !m.verifyOnly && l.StateAt(m.entry, t) == StateActive && (signer == nil || newer(m, signer)) {
			signer = m
		}
	}
	if signer != nil {
		return signer, false
	}
	// Every activated key has retired: keep the one whose active time ended
	// last rather than return nil and fail every Mint. Its tokens must still
	// verify, so the timeline keeps it verifying (see newTimedKeyring).
	for _, m := range ms {
		if !m.verifyOnly && activated(m, t) && (signer == nil || m.entry.RetireAt.After(signer.entry.RetireAt) ||
			m.entry.RetireAt.Equal(signer.entry.RetireAt) && newer(m, signer)) {
			signer = m
		}
	}
	if signer != nil {
		return signer, true
	}
	// Before every activate-at (a clock behind the one that built the ring):
	// the key due first.
	for _, m := range ms {
		if m.verifyOnly {
			continue
		}
		if signer == nil || m.entry.ActivateAt.Before(signer.entry.ActivateAt) ||
			m.entry.ActivateAt.Equal(signer.entry.ActivateAt) && m.entry.Name < signer.entry.Name {
			signer = m
		}
	}
	return signer, true
}

// newTimedKeyring computes the signer timeline and when each key stops
// verifying, for members sorted in JWKS order.
func newTimedKeyring(ms []*member, l Lifecycle) (*Keyring, error) {
	// The signer can change only where some key's state does: at an
	// activate-at or a retire-at.
	var points []time.Time
	for _, m := range ms {
		for _, t := range [...]time.Time{m.entry.ActivateAt, m.entry.RetireAt} {
			if !t.IsZero() {
				points = append(points, t)
			}
		}
	}
	slices.SortFunc(points, time.Time.Compare)
	points = slices.CompactFunc(points, time.Time.Equal)

	signers := make([]*member, len(points)+1)
	degraded := make([]bool, len(points)+1)
	for i := range signers {
		at := time.Unix(0, 0)
		switch {
		case i > 0:
			at = points[i-1]
		case len(points) > 0:
			at = points[0].Add(-time.Nanosecond)
		}
		s, d := pickSigner(ms, l, at)
		signers[i], degraded[i] = s, d
		if i == len(points) {
			s.signsForever = true
		} else {
			s.signs, s.lastSign = true, points[i] // intervals ascend: the last one wins
		}
	}

	// Keep after retire: a key verifies until access TTL + leeway after the
	// later of its retire-at and the end of its last signing interval, so
	// every token it signed expires first, also those it signed as a
	// degraded fallback after its retire-at.
	for _, m := range ms {
		if m.entry.RetireAt.IsZero() || m.signsForever {
			continue // verifies forever
		}
		end := m.entry.RetireAt
		if m.signs && m.lastSign.After(end) {
			end = m.lastSign
		}
		m.until = end.Add(l.Keep())
	}
	return newKeyring(ms, signers, points, degraded)
}

// newKeyring finishes a Keyring from members in JWKS order and its signer
// timeline: JWKs, algorithms, kid index and the visible-set intervals.
func newKeyring(ms []*member, signers []*member, signBreaks []time.Time, degraded []bool) (*Keyring, error) {
	r := &Keyring{
		members:    ms,
		byKID:      make(map[string]*member, len(ms)),
		signBreaks: signBreaks,
		signers:    signers,
		degraded:   degraded,
	}
	for _, m := range ms {
		j, err := publicJWK(m.key.Public) // public members only: never d, p, q
		if err != nil {
			return nil, err
		}
		j.Kid, j.Alg, j.Use = m.key.ID, string(m.key.Alg), "sig"
		if m.jwk, err = json.Marshal(j); err != nil {
			return nil, fmt.Errorf("keys: marshal JWK: %w", err)
		}
		r.byKID[m.key.ID] = m
		if !slices.Contains(r.algs, string(m.key.Alg)) {
			r.algs = append(r.algs, string(m.key.Alg))
		}
		if !m.until.IsZero() {
			r.visBreaks = append(r.visBreaks, m.until)
		}
	}
	slices.SortFunc(r.visBreaks, time.Time.Compare)
	r.visBreaks = slices.CompactFunc(r.visBreaks, time.Time.Equal)
	for _, m := range ms {
		m.visIdx = len(r.visBreaks)
		if !m.until.IsZero() {
			m.visIdx, _ = slices.BinarySearchFunc(r.visBreaks, m.until, time.Time.Compare)
		}
	}
	r.bodies = make([]atomic.Pointer[jwksBody], len(r.visBreaks)+1)
	return r, nil
}

// jwksAt returns the memoized JWKS of the keys visible at now, assembling
// it on first use. Safe for concurrent use: racing callers build equal
// bodies and one of them is kept.
func (r *Keyring) jwksAt(now time.Time) *jwksBody {
	i := segment(r.visBreaks, now)
	if b := r.bodies[i].Load(); b != nil {
		return b
	}
	var buf strings.Builder
	buf.WriteString(`{"keys":[`)
	n := 0
	for _, m := range r.members {
		if m.visIdx < i {
			continue
		}
		if n > 0 {
			buf.WriteByte(',')
		}
		buf.Write(m.jwk)
		n++
	}
	buf.WriteString(`]}`)
	body := []byte(buf.String())
	sum := sha256.Sum256(body)
	b := &jwksBody{body: body, etag: `"` + hex.EncodeToString(sum[:16]) + `"`}
	r.bodies[i].CompareAndSwap(nil, b)
	return r.bodies[i].Load()
}

// KeyStatus describes one key of a Keyring at a given time, for `keys
// list`-style views, the verbose health view and metrics.
type KeyStatus struct {
	Name  string // entry name; "" for NewKeyring and LoadDir keys
	KID   string
	Alg   Alg
	State State
	// Signing is true for the one key that signs at that time.
	Signing bool
	// The entry's timestamps; zero when absent (and for NewKeyring keys).
	PublishedAt, ActivateAt, RetireAt time.Time
	// VerifiesUntil is when the key leaves the JWKS and stops verifying;
	// zero while no such time is set.
	VerifiesUntil time.Time
}

// States describes every key of the ring at now, in JWKS order. A key's
// State is Lifecycle.StateAt of its entry, except that a key that still
// verifies is never reported gone: a retired key that signed as a degraded
// fallback verifies until its tokens expire, and reads retiring. Keys of
// NewKeyring and LoadDir read active (the one that signs) or retiring
// (verification only). The slice is the caller's.
func (r *Keyring) States(now time.Time) []KeyStatus {
	signer := r.signers[segment(r.signBreaks, now)]
	out := make([]KeyStatus, len(r.members))
	for i, m := range r.members {
		st := effectiveState(m, now)
		if m.verifyOnly {
			st = StateRetiring
		}
		out[i] = KeyStatus{
			Name: m.entry.Name, KID: m.key.ID, Alg: m.key.Alg, State: st, Signing: m == signer,
			PublishedAt: m.entry.PublishedAt, ActivateAt: m.entry.ActivateAt, RetireAt: m.entry.RetireAt,
			VerifiesUntil: m.until,
		}
	}
	return out
}

// effectiveState is the table state of m at now, using m's precomputed
// end of verification for gone rather than retire-at + keep.
func effectiveState(m *member, now time.Time) State {
	e := m.entry
	switch {
	case !m.verifiesAt(now):
		return StateGone
	case !e.RetireAt.IsZero() && !now.Before(e.RetireAt):
		return StateRetiring
	case !e.ActivateAt.IsZero() && now.Before(e.ActivateAt):
		return StateNext
	default:
		return StateActive
	}
}

// Degraded explains why signing at now is not as the Secret intends, or
// returns "" when a key is active. It is not "" when every key's retire-at
// has passed without a successor (the most recently active key keeps
// signing and verifying), or when now is before every activate-at.
func (r *Keyring) Degraded(now time.Time) string {
	i := segment(r.signBreaks, now)
	if !r.degraded[i] {
		return ""
	}
	s := r.signers[i]
	if activated(s, now) {
		return fmt.Sprintf("no key is active: every key's retire-at has passed; still signing with %s (kid %s, retire-at %s) until a new key is activated",
			s.entry.Name, s.key.ID, stamp(s.entry.RetireAt))
	}
	return fmt.Sprintf("no key is active yet: signing early with %s (kid %s, activate-at %s)", s.entry.Name, s.key.ID, stamp(s.entry.ActivateAt))
}
