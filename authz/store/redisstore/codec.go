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
// GETRANGE, then a binary payload only Go decodes.
//
//	offset  0      format, '1'
//	offset  1..8   Version, big-endian
//	offset  9..16  subject tag (tagOf): first 8 bytes of SHA-256(Subject); a change means re-index
//	offset 17..    payload
//
// The payload holds, in this order: Subject, CreatedAt, IdleExpiresAt,
// AbsoluteExpiresAt, PreviousUntil, RevokedAt, RevokeReason, Secrets,
// Successor, Claims as JSON (empty for none), Generation (uvarint), a flags
// byte, the provider fields its bits announce, and Policy. The ID is the
// key's, not repeated.
//
// The flags are a uvarint (one byte while no bit above 6 is set, the
// single flags byte older records hold): bit 0 CurrentSeen; bits 1 to 7
// announce, in this order, Provider (byte string), ProviderSID (string),
// ProviderRefreshAt and LeaseUntil (times), LastUsedAt (time), UserAgent
// and ClientAddress (strings), each written only when not empty (a session
// without provider login pays nothing for them). Bit 8 announces a sid tag
// (sidTag, 8 bytes) as the very last bytes of the record, after Policy: it
// is written with every ProviderSID, and the swap script compares it
// (GETRANGE -8 -1) to learn, without decoding, whether the sid index must
// follow. Bit 9 announces RefreshKey (string), after ClientAddress: a
// family written since keyed refresh MACs has it, and then its Secrets
// and Successor are empty (two bytes) unless it is the first keyed
// generation of a family upgraded from hashes.
//
// Fields came last as they were added, so older records still decode:
// records that end after Claims read as Generation 0 with CurrentSeen set
// (the rules they were written under) and Policy ""; records written before
// the provider fields have none of bits 1 to 4 and read them as empty, and
// those written before the listing fields (bits 5 to 7), the sid tag
// (bit 8) or the refresh key (bit 9) read as without them. Policy is written only when it is not
// empty. A present but empty field
// (Policy, or one a flag bit announces) is corrupt, and so is an unknown
// flag bit, so every family has exactly one encoding. A byte string is a
// uvarint length and the bytes. A time is a
// uvarint n, 0 for the zero time, else its nanoseconds plus one followed by
// a varint of its Unix seconds. Secrets are a uvarint count and, unless 0, a
// uvarint width: w > 0 means every secret is w bytes and they follow back to
// back (SHA-256 hashes: the usual case), 0 means each is a byte string.
//
// A string, not a hash {v, d}: a hash field longer than 64 bytes
// (hash-max-listpack-value) turns the compact listpack into a hash table,
// which costs more than the header saves. Binary, not JSON: the 16 secret
// hashes are most of a family and JSON would carry them in base64, a third
// larger. TestMemoryPerFamily measures all three.
const (
	formatV1  = '1'
	headLen   = 1 + 8 // format and version: what the swap script compares
	tagLen    = 8
	headerLen = headLen + tagLen
)

// maxValue bounds a record Get decodes (a typical family is under 1 KiB).
const maxValue = 1 << 20

var errCorrupt = errors.New("corrupt record")

// The flags byte's bits (see the layout above).
const (
	flagCurrentSeen       = 1 << 0 // store.Family.CurrentSeen
	flagProvider          = 1 << 1 // Provider follows
	flagProviderSID       = 1 << 2 // ProviderSID follows
	flagProviderRefreshAt = 1 << 3 // ProviderRefreshAt follows
	flagLeaseUntil        = 1 << 4 // LeaseUntil follows
	flagLastUsedAt        = 1 << 5 // LastUsedAt follows
	flagUserAgent         = 1 << 6 // UserAgent follows
	flagClientAddress     = 1 << 7 // ClientAddress follows
	flagSIDTag            = 1 << 8 // the record ends with sidTag(ProviderSID)
	flagRefreshKey        = 1 << 9 // RefreshKey follows
	flagsKnown            = flagCurrentSeen | flagProvider | flagProviderSID | flagProviderRefreshAt | flagLeaseUntil |
		flagLastUsedAt | flagUserAgent | flagClientAddress | flagSIDTag | flagRefreshKey
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

// tagOf is the record header's subject tag.
func tagOf(subject string) [tagLen]byte {
	h := sha256.Sum256([]byte(subject))
	return [tagLen]byte(h[:tagLen])
}

// subjectTag names a subject in keys: tagOf in hex. Subjects are arbitrary
// strings (emails, braces, megabytes): the tag keeps keys short, free of
// '{' and '}', and without personal data. Two subjects sharing a tag only
// share an index key; Subject still checks every family's Subject.
func subjectTag(subject string) string {
	t := tagOf(subject)
	return hex.EncodeToString(t[:])
}

// versionHead is the start of a record at version v: format and version,
// what the swap script compares.
func versionHead(v uint64) string {
	var b [headLen]byte
	b[0] = formatV1
	binary.BigEndian.PutUint64(b[1:], v)
	return string(b[:])
}

// encode returns the record of f.
func encode(f *store.Family) ([]byte, error) { return encodeRecord(f, true) }

// encodeRecord returns the record of f, without the sid tag if tagged is
// false: the records written before the tag existed, which tests build.
func encodeRecord(f *store.Family, tagged bool) ([]byte, error) {
	claims := f.Claims.JSON() // encoded once when the family started: stored as they are
	// 231: the varints (10 lengths and counts, 7 times, the generation) at
	// their longest, and the flags byte.
	size := headerLen + 231 + len(f.Subject) + len(f.Policy) + len(f.RevokeReason) + len(f.Successor) + len(claims) +
		len(f.Provider) + len(f.ProviderSID) + len(f.UserAgent) + len(f.ClientAddress) + len(f.RefreshKey) + 4*binary.MaxVarintLen64 + 1 + sidTagLen +
		len(f.Secrets)*binary.MaxVarintLen64
	for _, s := range f.Secrets {
		size += len(s)
	}
	b := make([]byte, 0, size)
	b = append(b, versionHead(f.Version)...)
	tag := tagOf(f.Subject)
	b = append(b, tag[:]...)
	b = appendString(b, f.Subject)
	for _, t := range []time.Time{f.CreatedAt, f.IdleExpiresAt, f.AbsoluteExpiresAt, f.PreviousUntil, f.RevokedAt} {
		b = appendTime(b, t)
	}
	b = appendString(b, f.RevokeReason)
	b = appendSecrets(b, f.Secrets)
	b = appendBytes(b, f.Successor)
	b = appendString(b, claims)
	b = binary.AppendUvarint(b, f.Generation)
	var flags uint64
	for _, bit := range []struct {
		set  bool
		flag uint64
	}{
		{f.CurrentSeen, flagCurrentSeen},
		{len(f.Provider) > 0, flagProvider},
		{f.ProviderSID != "", flagProviderSID},
		{!f.ProviderRefreshAt.IsZero(), flagProviderRefreshAt},
		{!f.LeaseUntil.IsZero(), flagLeaseUntil},
		{!f.LastUsedAt.IsZero(), flagLastUsedAt},
		{f.UserAgent != "", flagUserAgent},
		{f.ClientAddress != "", flagClientAddress},
		{tagged && f.ProviderSID != "", flagSIDTag},
		{f.RefreshKey != "", flagRefreshKey},
	} {
		if bit.set {
			flags |= bit.flag
		}
	}
	b = binary.AppendUvarint(b, flags)
	if flags&flagProvider != 0 {
		b = appendBytes(b, f.Provider)
	}
	if flags&flagProviderSID != 0 {
		b = appendString(b, f.ProviderSID)
	}
	if flags&flagProviderRefreshAt != 0 {
		b = appendTime(b, f.ProviderRefreshAt)
	}
	if flags&flagLeaseUntil != 0 {
		b = appendTime(b, f.LeaseUntil)
	}
	if flags&flagLastUsedAt != 0 {
		b = appendTime(b, f.LastUsedAt)
	}
	if flags&flagUserAgent != 0 {
		b = appendString(b, f.UserAgent)
	}
	if flags&flagClientAddress != 0 {
		b = appendString(b, f.ClientAddress)
	}
	if flags&flagRefreshKey != 0 {
		b = appendString(b, f.RefreshKey)
	}
	if f.Policy != "" {
		b = appendString(b, f.Policy)
	}
	if flags&flagSIDTag != 0 {
		tag := sidTag(f.ProviderSID)
		b = append(b, tag[:]...)
	}
	return b, nil
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

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(t.Nanosecond())+1)
	return binary.AppendVarint(b, t.Unix())
}

// decode parses the record of family id. b is the caller's: the family's
// byte slices point into it (capped, so appending to one never spills into
// the next).
func decode(id string, b []byte) (*store.Family, error) {
	if len(b) < headerLen || b[0] != formatV1 {
		return nil, fmt.Errorf("%w: unknown format", errCorrupt)
	}
	r := reader{b: b[headerLen:]}
	f := &store.Family{ID: id, Version: binary.BigEndian.Uint64(b[1:headLen])}
	f.Subject = string(r.bytes())
	f.CreatedAt = r.time()
	f.IdleExpiresAt = r.time()
	f.AbsoluteExpiresAt = r.time()
	f.PreviousUntil = r.time()
	f.RevokedAt = r.time()
	f.RevokeReason = string(r.bytes())
	f.Secrets = r.secrets()
	f.Successor = r.bytes()
	claims := r.bytes()
	f.CurrentSeen = true // a record without the fields below predates them
	if len(r.b) > 0 {
		f.Generation = r.uvarint()
		left := len(r.b)
		flags := r.uvarint()
		if flags&^flagsKnown != 0 || left-len(r.b) != len(binary.AppendUvarint(nil, flags)) {
			r.fail("flags") // unknown bits, or an overlong varint: one encoding only
		}
		var tag []byte
		if flags&flagSIDTag != 0 {
			// The tag ends the record: set it aside before the fields.
			if flags&flagProviderSID == 0 || len(r.b) < sidTagLen {
				r.fail("sid tag")
			} else {
				tag, r.b = r.b[len(r.b)-sidTagLen:], r.b[:len(r.b)-sidTagLen]
			}
		}
		f.CurrentSeen = flags&flagCurrentSeen != 0
		// Each announced field must be there and not empty: one encoding.
		if flags&flagProvider != 0 {
			if f.Provider = r.bytes(); f.Provider == nil {
				r.fail("empty provider tokens")
			}
		}
		if flags&flagProviderSID != 0 {
			if f.ProviderSID = string(r.bytes()); f.ProviderSID == "" {
				r.fail("empty provider sid")
			}
		}
		if flags&flagProviderRefreshAt != 0 {
			if f.ProviderRefreshAt = r.time(); f.ProviderRefreshAt.IsZero() {
				r.fail("zero provider refresh time")
			}
		}
		if flags&flagLeaseUntil != 0 {
			if f.LeaseUntil = r.time(); f.LeaseUntil.IsZero() {
				r.fail("zero lease")
			}
		}
		if flags&flagLastUsedAt != 0 {
			if f.LastUsedAt = r.time(); f.LastUsedAt.IsZero() {
				r.fail("zero last use")
			}
		}
		if flags&flagUserAgent != 0 {
			if f.UserAgent = string(r.bytes()); f.UserAgent == "" {
				r.fail("empty user agent")
			}
		}
		if flags&flagClientAddress != 0 {
			if f.ClientAddress = string(r.bytes()); f.ClientAddress == "" {
				r.fail("empty client address")
			}
		}
		if flags&flagRefreshKey != 0 {
			if f.RefreshKey = string(r.bytes()); f.RefreshKey == "" {
				r.fail("empty refresh key")
			}
		}
		if tag != nil && r.err == nil {
			if want := sidTag(f.ProviderSID); string(tag) != string(want[:]) {
				r.fail("sid tag")
			}
		}
	}
	if len(r.b) > 0 && r.err == nil { // absent in records older than Policy
		if f.Policy = string(r.bytes()); f.Policy == "" && r.err == nil {
			r.fail("empty policy")
		}
	}
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

func (r *reader) time() time.Time {
	ns := r.uvarint()
	if ns == 0 {
		return time.Time{}
	}
	if ns > 1e9 {
		r.fail("nanoseconds")
		return time.Time{}
	}
	sec, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("seconds")
		return time.Time{}
	}
	r.b = r.b[n:]
	return time.Unix(sec, int64(ns-1)).UTC()
}
