package redisstore

import (
	"encoding/binary"
	"time"

	"github.com/silentauth/silentauth/authz/store"
)

// encodeV1 returns the record of f in format '1', as the versions before
// format '2' wrote it (without the sid tag if tagged is false: the records
// written before the tag existed), and fails on what format '1' could not
// hold.
func encodeV1(f *store.Family, tagged bool) []byte {
	if f.RefreshKey != "" {
		panic("encodeV1: format '1' has no refresh key")
	}
	claims := f.Claims.JSON() // encoded once when the family started: stored as they are
	// 231: the varints (10 lengths and counts, 7 times, the generation) at
	// their longest, and the flags byte.
	size := headerLenV1 + 231 + len(f.Subject) + len(f.Policy) + len(f.RevokeReason) + len(f.Successor) + len(claims) +
		len(f.Provider) + len(f.ProviderSID) + len(f.UserAgent) + len(f.ClientAddress) + 4*binary.MaxVarintLen64 + 1 + sidTagLen +
		len(f.Secrets)*binary.MaxVarintLen64
	for _, s := range f.Secrets {
		size += len(s)
	}
	b := make([]byte, 0, size)
	b = append(b, versionHeadV1(f.Version)...)
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
	if f.Policy != "" {
		b = appendString(b, f.Policy)
	}
	if flags&flagSIDTag != 0 {
		tag := sidTag(f.ProviderSID)
		b = append(b, tag[:]...)
	}
	return b
}

// versionHeadV1 is a format '1' record's start at version v.
func versionHeadV1(v uint64) string {
	var b [headLen]byte
	b[0] = formatV1
	binary.BigEndian.PutUint64(b[1:], v)
	return string(b[:])
}

// appendTime appends t as format '1' wrote times.
func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(t.Nanosecond())+1)
	return binary.AppendVarint(b, t.Unix())
}
