package redisstore

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/silentauth/silentauth/authz/store"
)

// A family is one Redis string: a fixed header the scripts read with
// GETRANGE, then a binary payload only Go decodes. This version writes
// format '2':
//
//	offset 0      format, '2'
//	offset 1..8   Version, big-endian: what the swap script compares
//	offset 9..    payload
//
// The payload starts with the Subject (so the swap script can compare it,
// to learn whether the subject index must follow), then a uvarint of flags,
// CreatedAt, IdleExpiresAt, AbsoluteExpiresAt, Generation (uvarint) and the
// Claims as JSON (empty for none). The flags announce the fields that
// follow, in this order, each written only when not zero:
//
//	bit  0  CurrentSeen (no field)
//	bit  1  RefreshKey (byte string: the key's 4-byte tag)
//	bit  2  PreviousUntil        bit  3  LastUsedAt
//	bit  4  RevokedAt            bit  5  RevokeReason (string)
//	bit  6  Secrets              bit  7  Successor (byte string)
//	bit  8  Provider (byte string)
//	bit  9  ProviderSID (string), and its sid tag (sidTag, 8 bytes) as
//	        the very last bytes of the record, which the swap script
//	        compares (GETRANGE -8 -1) to learn whether the sid index must
//	        follow
//	bit 10  ProviderRefreshAt    bit 11  LeaseUntil
//	bit 12  UserAgent (string)   bit 13  ClientAddress (string)
//	bit 14  Policy (string)
//
// A typical family (current seen or not, a refresh key, a grace window and
// a last use) thus has one flags byte. An announced field that is empty or
// zero is corrupt, and so is an unknown bit: every family has exactly one
// encoding.
//
// Times are kept to the millisecond (truncated). CreatedAt is a uvarint:
// 0 for the zero time, else the zigzag of its Unix milliseconds plus one;
// IdleExpiresAt and AbsoluteExpiresAt are the same relative to CreatedAt's
// millisecond, and so are the announced times, as a zigzag varint without
// the one (they are never zero). A few bytes each, where a time to the
// nanosecond took about ten.
//
// A byte string is a uvarint length and the bytes. Secrets (only in the
// first keyed generation of a family upgraded from the hashes it kept
// before keyed MACs) are a uvarint count (≥ 1) and a uvarint width: w > 0
// means every secret is w bytes and they follow back to back, 0 means
// each is a byte string.
//
// Format '1', written by the versions before, is still read (codec_v1.go);
// Swap rewrites such a family in format '2' on its next change.
//
// A string, not a hash: a hash field longer than 64 bytes
// (hash-max-listpack-value) turns the compact listpack into a hash table,
// which costs more than the header saves. Binary, not JSON, which would
// be several times larger. TestMemoryPerFamily measures all three.
const (
	formatV1  = '1'
	formatV2  = '2'
	headLen   = 1 + 8 // format and version: what the swap script compares
	tagLen    = 8
	maxFormat = formatV2
)

// maxValue bounds a record Get decodes (a typical family is under 1 KiB).
const maxValue = 1 << 20

var errCorrupt = errors.New("corrupt record")

// The flags of format '2' (see the layout above).
const (
	f2CurrentSeen = 1 << iota
	f2RefreshKey
	f2PreviousUntil
	f2LastUsedAt
	f2RevokedAt
	f2RevokeReason
	f2Secrets
	f2Successor
	f2Provider
	f2ProviderSID
	f2ProviderRefreshAt
	f2LeaseUntil
	f2UserAgent
	f2ClientAddress
	f2Policy
	f2Known = 1<<iota - 1
)

// sidTagLen is the length of a record's trailing sid tag.
const sidTagLen = 8

// sidTag is the tag ending the record of a family with a ProviderSID: the
// first 8 bytes of SHA-256 of "sid:" and the sid (the prefix keeps it apart
// from subject tags). Its hex names the sid's index key, so no provider
// session id appears in key names.
func sidTag(sid string) [sidTagLen]byte {
	h := sha256.Sum256([]byte("sid:" + sid))
	return [sidTagLen]byte(h[:sidTagLen])
}

// tagOf is a subject's tag: the first 8 bytes of SHA-256(Subject). Its
// first two bytes pick the subject's index bucket, the next four prefix
// its families' entries there (see subjectBucket), and the format '1'
// record header and index key held all eight.
func tagOf(subject string) [tagLen]byte {
	h := sha256.Sum256([]byte(subject))
	return [tagLen]byte(h[:tagLen])
}

// subjectTag names a subject in the keys of the format '1' subject index:
// tagOf in hex. Subjects are arbitrary strings (emails, braces,
// megabytes): the tag keeps keys short, free of '{' and '}', and without
// personal data.
func subjectTag(subject string) string {
	t := tagOf(subject)
	return hex.EncodeToString(t[:])
}

// versionHead is the start of a record at version v: format and version.
// The swap script compares the version bytes only, so a record of an older
// format is still swapped (and so rewritten) by its version.
func versionHead(v uint64) string {
	var b [headLen]byte
	b[0] = formatV2
	binary.BigEndian.PutUint64(b[1:], v)
	return string(b[:])
}

// subjectPrefixLen is the length of the payload's first field, the
// Subject with its length: the bytes the swap script compares.
func subjectPrefixLen(subject string) int {
	return len(binary.AppendUvarint(nil, uint64(len(subject)))) + len(subject)
}

// encode returns the record of f in format '2'.
func encode(f *store.Family) ([]byte, error) {
	claims := f.Claims.JSON() // encoded once when the family started: stored as they are
	size := headLen + 16*binary.MaxVarintLen64 + len(f.Subject) + len(claims) + len(f.RefreshKey) + len(f.RevokeReason) +
		len(f.Successor) + len(f.Provider) + len(f.ProviderSID) + sidTagLen + len(f.UserAgent) + len(f.ClientAddress) +
		len(f.Policy) + len(f.Secrets)*binary.MaxVarintLen64
	for _, s := range f.Secrets {
		size += len(s)
	}
	var flags uint64
	for _, bit := range []struct {
		set  bool
		flag uint64
	}{
		{f.CurrentSeen, f2CurrentSeen},
		{f.RefreshKey != "", f2RefreshKey},
		{!f.PreviousUntil.IsZero(), f2PreviousUntil},
		{!f.LastUsedAt.IsZero(), f2LastUsedAt},
		{!f.RevokedAt.IsZero(), f2RevokedAt},
		{f.RevokeReason != "", f2RevokeReason},
		{len(f.Secrets) > 0, f2Secrets},
		{len(f.Successor) > 0, f2Successor},
		{len(f.Provider) > 0, f2Provider},
		{f.ProviderSID != "", f2ProviderSID},
		{!f.ProviderRefreshAt.IsZero(), f2ProviderRefreshAt},
		{!f.LeaseUntil.IsZero(), f2LeaseUntil},
		{f.UserAgent != "", f2UserAgent},
		{f.ClientAddress != "", f2ClientAddress},
		{f.Policy != "", f2Policy},
	} {
		if bit.set {
			flags |= bit.flag
		}
	}
	b := make([]byte, 0, size)
	b = append(b, versionHead(f.Version)...)
	b = appendString(b, f.Subject)
	b = binary.AppendUvarint(b, flags)
	base := millis(f.CreatedAt)
	b = binary.AppendUvarint(b, optionalMillis(f.CreatedAt, 0))
	b = binary.AppendUvarint(b, optionalMillis(f.IdleExpiresAt, base))
	b = binary.AppendUvarint(b, optionalMillis(f.AbsoluteExpiresAt, base))
	b = binary.AppendUvarint(b, f.Generation)
	b = appendString(b, claims)
	str := func(flag uint64, v string) {
		if flags&flag != 0 {
			b = appendString(b, v)
		}
	}
	raw := func(flag uint64, v []byte) {
		if flags&flag != 0 {
			b = appendBytes(b, v)
		}
	}
	rel := func(flag uint64, t time.Time) {
		if flags&flag != 0 {
			b = binary.AppendVarint(b, millis(t)-base)
		}
	}
	str(f2RefreshKey, f.RefreshKey)
	rel(f2PreviousUntil, f.PreviousUntil)
	rel(f2LastUsedAt, f.LastUsedAt)
	rel(f2RevokedAt, f.RevokedAt)
	str(f2RevokeReason, f.RevokeReason)
	if flags&f2Secrets != 0 {
		b = appendSecrets(b, f.Secrets)
	}
	raw(f2Successor, f.Successor)
	raw(f2Provider, f.Provider)
	str(f2ProviderSID, f.ProviderSID)
	rel(f2ProviderRefreshAt, f.ProviderRefreshAt)
	rel(f2LeaseUntil, f.LeaseUntil)
	str(f2UserAgent, f.UserAgent)
	str(f2ClientAddress, f.ClientAddress)
	str(f2Policy, f.Policy)
	if flags&f2ProviderSID != 0 {
		tag := sidTag(f.ProviderSID)
		b = append(b, tag[:]...)
	}
	return b, nil
}

// millis is t in Unix milliseconds, truncated (floored).
func millis(t time.Time) int64 { return t.UnixMilli() }

// optionalMillis encodes a time that may be zero: 0 for the zero time,
// else the zigzag of its milliseconds after base, plus one.
func optionalMillis(t time.Time, base int64) uint64 {
	if t.IsZero() {
		return 0
	}
	return zigzag(millis(t)-base) + 1
}

func zigzag(v int64) uint64 { return uint64(v<<1) ^ uint64(v>>63) }

func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

// decode parses the record of family id, of either format. b is the
// caller's: the family's byte slices point into it (capped, so appending
// to one never spills into the next).
func decode(id string, b []byte) (*store.Family, error) {
	if len(b) < headLen {
		return nil, fmt.Errorf("%w: unknown format", errCorrupt)
	}
	switch b[0] {
	case formatV2:
		return decodeV2(id, b)
	case formatV1:
		return decodeV1(id, b)
	}
	return nil, fmt.Errorf("%w: unknown format", errCorrupt)
}

func decodeV2(id string, b []byte) (*store.Family, error) {
	r := reader{b: b[headLen:]}
	f := &store.Family{ID: id, Version: binary.BigEndian.Uint64(b[1:headLen])}
	f.Subject = string(r.bytes())
	left := len(r.b)
	flags := r.uvarint()
	if r.err == nil && (flags&^f2Known != 0 || left-len(r.b) != len(binary.AppendUvarint(nil, flags))) {
		r.fail("flags") // unknown bits, or an overlong varint: one encoding only
	}
	var tag []byte
	if flags&f2ProviderSID != 0 {
		// The sid tag ends the record: set it aside before the fields.
		if len(r.b) < sidTagLen {
			r.fail("sid tag")
		} else {
			tag, r.b = r.b[len(r.b)-sidTagLen:], r.b[:len(r.b)-sidTagLen]
		}
	}
	f.CreatedAt = r.optionalMillis(0)
	base := millis(f.CreatedAt)
	f.IdleExpiresAt = r.optionalMillis(base)
	f.AbsoluteExpiresAt = r.optionalMillis(base)
	f.Generation = r.uvarint()
	claims := r.bytes()
	f.CurrentSeen = flags&f2CurrentSeen != 0
	// Each announced field must be there and not empty: one encoding.
	raw := func(flag uint64, what string) []byte {
		if flags&flag == 0 {
			return nil
		}
		s := r.bytes()
		if s == nil {
			r.fail("empty " + what)
		}
		return s
	}
	str := func(flag uint64, what string) string { return string(raw(flag, what)) }
	rel := func(flag uint64, what string) time.Time {
		if flags&flag == 0 {
			return time.Time{}
		}
		v, n := binary.Varint(r.b)
		if n <= 0 {
			r.fail(what)
			return time.Time{}
		}
		r.b = r.b[n:]
		t := time.UnixMilli(base + v).UTC()
		if t.IsZero() {
			r.fail("zero " + what)
		}
		return t
	}
	f.RefreshKey = str(f2RefreshKey, "refresh key")
	f.PreviousUntil = rel(f2PreviousUntil, "grace end")
	f.LastUsedAt = rel(f2LastUsedAt, "last use")
	f.RevokedAt = rel(f2RevokedAt, "revocation time")
	f.RevokeReason = str(f2RevokeReason, "revoke reason")
	if flags&f2Secrets != 0 {
		if f.Secrets = r.secrets(); f.Secrets == nil {
			r.fail("no secrets")
		}
	}
	f.Successor = raw(f2Successor, "successor")
	f.Provider = raw(f2Provider, "provider tokens")
	f.ProviderSID = str(f2ProviderSID, "provider sid")
	f.ProviderRefreshAt = rel(f2ProviderRefreshAt, "provider refresh time")
	f.LeaseUntil = rel(f2LeaseUntil, "lease")
	f.UserAgent = str(f2UserAgent, "user agent")
	f.ClientAddress = str(f2ClientAddress, "client address")
	f.Policy = str(f2Policy, "policy")
	if tag != nil && r.err == nil {
		if want := sidTag(f.ProviderSID); string(tag) != string(want[:]) {
			r.fail("sid tag")
		}
	}
	return finish(f, claims, r)
}

// finish checks that r read the whole record without error and sets f's
// claims.
func finish(f *store.Family, claims []byte, r reader) (*store.Family, error) {
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errCorrupt, len(r.b))
	}
	if len(claims) > 0 {
		// Kept as the bytes stored (json.Marshal's, by this version and
		// the ones before): decoding them strictly is left to whoever
		// mints from them (store.Claims.Map), so numbers keep their
		// digits. A record whose claims are not even JSON is corrupt.
		if claims[0] != '{' || !json.Valid(claims) {
			return nil, fmt.Errorf("%w: claims are not a JSON object", errCorrupt)
		}
		f.Claims = store.RawClaims(claims)
	}
	return f, nil
}

// optionalMillis reads a time optionalMillis wrote.
func (r *reader) optionalMillis(base int64) time.Time {
	u := r.uvarint()
	if u == 0 {
		return time.Time{}
	}
	t := time.UnixMilli(base + unzigzag(u-1)).UTC()
	if t.IsZero() {
		r.fail("zero time written as a time") // one encoding: the zero time is 0
	}
	return t
}

func appendSecrets(b []byte, secrets [][]byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(secrets)))
	if len(secrets) == 0 {
		return b
	}
	w := len(secrets[0])
	for _, s := range secrets {
		if len(s) != w {
			w = 0
		}
	}
	b = binary.AppendUvarint(b, uint64(w))
	for _, s := range secrets {
		if w == 0 {
			b = appendBytes(b, s)
		} else {
			b = append(b, s...)
		}
	}
	return b
}

func appendBytes(b, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// reader decodes a payload; the first error sticks and later reads return
// zero values.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", errCorrupt, what)
	}
	r.b = nil
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("uvarint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// bytes returns the next byte string, nil when empty.
func (r *reader) bytes() []byte {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail("length")
		return nil
	}
	if n == 0 {
		return nil
	}
	s := r.b[:n:n]
	r.b = r.b[n:]
	return s
}

func (r *reader) secrets() [][]byte {
	n := r.uvarint()
	if n == 0 {
		return nil
	}
	w := r.uvarint()
	// Bounded by what is left: each secret takes at least a byte (its
	// length, or w ≥ 1 bytes).
	if n > uint64(len(r.b)) || (w > 0 && n*w > uint64(len(r.b))) {
		r.fail("secrets")
		return nil
	}
	secrets := make([][]byte, n)
	for i := range secrets {
		if w == 0 {
			secrets[i] = r.bytes()
		} else {
			secrets[i] = r.b[:w:w]
			r.b = r.b[w:]
		}
	}
	return secrets
}
