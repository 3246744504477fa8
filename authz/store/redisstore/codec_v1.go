package redisstore

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/silentauth/silentauth/authz/store"
)

// Format '1', written by the versions before format '2' (codec.go) and
// still read, never written:
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
// follow.
//
// Fields came last as they were added, so older records still decode:
// records that end after Claims read as Generation 0 with CurrentSeen set
// (the rules they were written under) and Policy ""; records written before
// the provider fields have none of bits 1 to 4 and read them as empty, and
// those written before the listing fields (bits 5 to 7) or the sid tag
// (bit 8) read as without them. Policy was written only when not empty. A
// present but empty field (Policy, or one a flag bit announces) is
// corrupt, and so is an unknown flag bit. A time is a uvarint n, 0 for the zero time, else its nanoseconds plus one followed by
// a varint of its Unix seconds. Secrets are a uvarint count and, unless 0, a
// uvarint width: w > 0 means every secret is w bytes and they follow back to
// back (SHA-256 hashes: the usual case), 0 means each is a byte string.
//
// headerLenV1 is the length of a format '1' header: format, version and
// subject tag.
const headerLenV1 = headLen + tagLen

// The flags of format '1' (see the layout above).
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
	flagsKnownV1          = flagCurrentSeen | flagProvider | flagProviderSID | flagProviderRefreshAt | flagLeaseUntil |
		flagLastUsedAt | flagUserAgent | flagClientAddress | flagSIDTag
)

// decodeV1 parses a record of format '1' (see decode).
func decodeV1(id string, b []byte) (*store.Family, error) {
	if len(b) < headerLenV1 {
		return nil, fmt.Errorf("%w: short header", errCorrupt)
	}
	r := reader{b: b[headerLenV1:]}
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
		if flags&^flagsKnownV1 != 0 || left-len(r.b) != len(binary.AppendUvarint(nil, flags)) {
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
	return finish(f, claims, r)
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
