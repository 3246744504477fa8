package redisstore

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/silentauth/silentauth/authz/store"
)

func sampleFamily() *store.Family {
	now := time.Date(2030, 1, 2, 3, 4, 5, 678901234, time.UTC)
	secrets := make([][]byte, 16)
	for i := range secrets {
		secrets[i] = bytes.Repeat([]byte{byte(i)}, 32)
	}
	return &store.Family{
		ID: "AAAAAAAAAAAAAAAAAAAAAA", Subject: "00u1abcd2EFGH3ijk4l5",
		Claims: store.MustClaims(map[string]any{"email": "ada@example.com", "groups": []any{"eng", "ops"}, "n": json.Number("3"),
			"uid": json.Number("1541815603606036481"), "ratio": json.Number("1.50"), "huge": json.Number("1e400")}),
		CreatedAt: now, IdleExpiresAt: now.Add(time.Hour), AbsoluteExpiresAt: now.Add(90 * 24 * time.Hour),
		Secrets: secrets, PreviousUntil: now.Add(30 * time.Second), Successor: bytes.Repeat([]byte{0xee}, 60),
		RevokedAt: now.Add(time.Minute), RevokeReason: "reuse", Version: 17,
	}
}

func TestCodecRoundTrip(t *testing.T) {
	full := sampleFamily()
	bare := &store.Family{ID: "b", Version: 1}                                                          // every optional field zero
	odd := &store.Family{ID: "o", Subject: "{x}\x00é", Secrets: [][]byte{nil, {1}}, Version: 1<<64 - 1} // braces, NUL, mixed widths, max version
	epoch := &store.Family{ID: "e", CreatedAt: time.Unix(0, 0), AbsoluteExpiresAt: time.Unix(-1, 1), Version: 1}
	named := sampleFamily()
	named.ID, named.Policy, named.Generation, named.CurrentSeen = "n", "shop", 1<<40, true
	provider := providerFamily() // every provider field, and a policy after them
	leaseOnly := &store.Family{ID: "l", Provider: []byte{1}, LeaseUntil: time.Unix(1, 2), Version: 1}
	sidOnly := &store.Family{ID: "s", ProviderSID: "sid", Policy: "p", Version: 1}
	for _, f := range []*store.Family{full, bare, odd, epoch, named, provider, leaseOnly, sidOnly} {
		rec, err := encode(f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decode(f.ID, rec)
		if err != nil {
			t.Fatalf("%s: decode: %v", f.ID, err)
		}
		for _, tm := range [][2]time.Time{{f.CreatedAt, got.CreatedAt}, {f.IdleExpiresAt, got.IdleExpiresAt},
			{f.AbsoluteExpiresAt, got.AbsoluteExpiresAt}, {f.PreviousUntil, got.PreviousUntil}, {f.RevokedAt, got.RevokedAt},
			{f.ProviderRefreshAt, got.ProviderRefreshAt}, {f.LeaseUntil, got.LeaseUntil}} {
			if !tm[0].Truncate(time.Millisecond).Equal(tm[1]) || tm[0].IsZero() != tm[1].IsZero() {
				t.Errorf("%s: time %v round-trips to %v, want it to the millisecond", f.ID, tm[0], tm[1])
			}
		}
		want := *f
		want.CreatedAt, want.IdleExpiresAt, want.AbsoluteExpiresAt, want.PreviousUntil, want.RevokedAt = got.CreatedAt, got.IdleExpiresAt, got.AbsoluteExpiresAt, got.PreviousUntil, got.RevokedAt
		want.ProviderRefreshAt, want.LeaseUntil = got.ProviderRefreshAt, got.LeaseUntil
		if !reflect.DeepEqual(got, &want) {
			t.Errorf("%s: round trip\n got %+v\nwant %+v", f.ID, got, &want)
		}
	}
}

// A record written before families had a Generation, CurrentSeen and
// Policy (testdata: sampleFamily encoded by that version) still decodes, as
// a default-policy family of unknown generation under the rules it was
// written under (its current secret counts as presented), and re-encodes
// as that record followed by the new fields.
func TestDecodeRecordWithoutPolicy(t *testing.T) {
	old := olderRecord(t, "record-before-policy.hex")
	got, err := decode("AAAAAAAAAAAAAAAAAAAAAA", old)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	want := sampleFamily()
	want.Generation, want.CurrentSeen = 0, true
	// The fixture predates the uid, ratio and huge claims of the sample.
	want.Claims = store.MustClaims(map[string]any{"email": "ada@example.com", "groups": []any{"eng", "ops"}, "n": json.Number("3")})
	if got.Policy != "" || !got.CreatedAt.Equal(want.CreatedAt) || !got.RevokedAt.Equal(want.RevokedAt) {
		t.Fatalf("decoded %+v", got)
	}
	got.CreatedAt, got.IdleExpiresAt, got.AbsoluteExpiresAt, got.PreviousUntil, got.RevokedAt = want.CreatedAt, want.IdleExpiresAt, want.AbsoluteExpiresAt, want.PreviousUntil, want.RevokedAt
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded\n got %+v\nwant %+v", got, want)
	}
	if rec := encodeV1(want, true); !bytes.Equal(rec, append(old, 0, flagCurrentSeen)) {
		t.Fatalf("re-encoded:\n got %x\nwant %x and generation 0, flags 1", rec, old)
	}
}

// olderRecord reads a record an earlier version wrote, kept in testdata
// in hex.
func olderRecord(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// providerFamily is sampleFamily started by provider login, mid-refresh.
func providerFamily() *store.Family {
	f := sampleFamily()
	f.ID, f.Policy, f.Generation, f.CurrentSeen = "p", "shop", 1<<40, true
	f.Provider = bytes.Repeat([]byte{0xab}, 700)
	f.ProviderSID = "08a8684b-db88-4b73-90a9-3cd1661f5466"
	f.ProviderRefreshAt = f.CreatedAt.Add(5 * time.Minute)
	f.LeaseUntil = f.CreatedAt.Add(time.Minute + 5*time.Nanosecond)
	return f
}

// A record written before the provider fields (testdata: a named family of
// generation 2^40 encoded by that version) still decodes, with every
// provider field empty, and a family without provider login encodes to
// exactly that record again: such sessions pay nothing for the new fields.
func TestDecodeRecordWithoutProvider(t *testing.T) {
	old := olderRecord(t, "record-before-provider.hex")
	got, err := decode("AAAAAAAAAAAAAAAAAAAAAA", old)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if got.Provider != nil || got.ProviderSID != "" || !got.ProviderRefreshAt.IsZero() || !got.LeaseUntil.IsZero() {
		t.Fatalf("provider fields of an old record: %x %q %v %v", got.Provider, got.ProviderSID, got.ProviderRefreshAt, got.LeaseUntil)
	}
	if got.Policy != "shop" || got.Generation != 1<<40 || !got.CurrentSeen {
		t.Fatalf("decoded policy %q, generation %d, seen %t", got.Policy, got.Generation, got.CurrentSeen)
	}
	if rec := encodeV1(got, true); !bytes.Equal(rec, old) {
		t.Fatalf("re-encoded:\n got %x\nwant %x", rec, old)
	}
	upgradedTo2(t, got)
}

// upgradedTo2 checks that f, read from a format '1' record, is written in
// format '2' and reads back the same, its times to the millisecond.
func upgradedTo2(t *testing.T, f *store.Family) {
	t.Helper()
	rec, err := encode(f)
	if err != nil {
		t.Fatal(err)
	}
	if rec[0] != formatV2 {
		t.Fatalf("written in format %q", rec[0])
	}
	got, err := decode(f.ID, rec)
	if err != nil {
		t.Fatalf("format '2' of a format '1' family: %v", err)
	}
	want := *f
	for _, tm := range []*time.Time{&want.CreatedAt, &want.IdleExpiresAt, &want.AbsoluteExpiresAt, &want.PreviousUntil,
		&want.RevokedAt, &want.LastUsedAt, &want.ProviderRefreshAt, &want.LeaseUntil} {
		if !tm.IsZero() {
			*tm = tm.Truncate(time.Millisecond)
		}
	}
	if !reflect.DeepEqual(got, &want) {
		t.Fatalf("format '2' reads back\n got %+v\nwant %+v", got, &want)
	}
}

// The provider fields cost what they hold: a length or a time each, and
// nothing when empty.
func TestProviderFieldsCompact(t *testing.T) {
	plain, _ := encode(sampleFamily())
	f := sampleFamily()
	f.Provider = bytes.Repeat([]byte{1}, 100)
	withTokens, _ := encode(f)
	if got := len(withTokens) - len(plain); got != 101 {
		t.Errorf("100 bytes of provider tokens add %d bytes, want 101", got)
	}
	f.LeaseUntil = time.Unix(1_900_000_000, 0)
	withLease, _ := encode(f)
	if got := len(withLease) - len(withTokens); got > 6 {
		t.Errorf("a lease adds %d bytes, want at most 6", got)
	}
}

// The header is what the scripts read: format and version, then the
// subject field the swap script compares.
func TestCodecHeader(t *testing.T) {
	f := sampleFamily()
	rec, err := encode(f)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rec[:headLen], []byte{'2', 0, 0, 0, 0, 0, 0, 0, 17}; !bytes.Equal(got, want) {
		t.Fatalf("header %x, want %x", got, want)
	}
	if got := versionHead(17); got != string(rec[:headLen]) {
		t.Fatalf("versionHead(17) = %x, record starts %x", got, rec[:headLen])
	}
	n := subjectPrefixLen(f.Subject)
	if got := string(rec[headLen : headLen+n]); got != "\x14"+f.Subject {
		t.Fatalf("subject field %q (%d bytes)", got, n)
	}
	h := sha256.Sum256([]byte(f.Subject))
	if tag := subjectTag(f.Subject); tag != hex.EncodeToString(h[:8]) {
		t.Fatalf("subjectTag = %q", tag)
	}
}

// A typical family's format '2' record: times a few bytes each, one flags
// byte, the key's 4-byte tag, and no secret.
func TestCodecCompact(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 678901234, time.UTC)
	f := &store.Family{ID: "AAAAAAAAAAAAAAAAAAAAAA", Subject: "00u1abcd2EFGH3ijk4l5",
		Claims:    store.MustClaims(map[string]any{"email": "ada.lovelace@example.com", "name": "Ada Lovelace"}),
		CreatedAt: now, LastUsedAt: now.Add(29 * 24 * time.Hour), IdleExpiresAt: now.Add(30 * 24 * time.Hour),
		AbsoluteExpiresAt: now.Add(90 * 24 * time.Hour), PreviousUntil: now.Add(29*24*time.Hour + 30*time.Second),
		Generation: 1000, RefreshKey: "\x01\x02\x03\x04", Version: 1000}
	rec, err := encode(f)
	if err != nil {
		t.Fatal(err)
	}
	claims := len(f.Claims.JSON())
	// header 9, subject 21, flags 1, created 6, idle 5, absolute 6,
	// generation 2, claims 1+57, key 5, grace end 5, last use 5
	if fixed := len(rec) - claims; fixed > 72 {
		t.Errorf("record %d bytes, %d beside %d bytes of claims: want at most 72", len(rec), fixed, claims)
	}
}

// Decoded byte slices are capped: appending to one never overwrites the next.
func TestDecodeSlicesCapped(t *testing.T) {
	rec, _ := encode(sampleFamily())
	f, err := decode("id", rec)
	if err != nil {
		t.Fatal(err)
	}
	_ = append(f.Secrets[0], 0xff, 0xff)
	if f.Secrets[1][0] != 1 {
		t.Fatal("append to Secrets[0] changed Secrets[1]")
	}
}

func TestDecodeRejectsCorrupt(t *testing.T) {
	rec, _ := encode(sampleFamily())
	bare, _ := encode(&store.Family{ID: "b", Subject: "s", Version: 1}) // ends in its claims: no field announced
	withFlags := func(flags byte, tail ...byte) []byte {
		b := bytes.Clone(bare)
		b[headLen+2] = flags // after the 1-byte subject "s"
		return append(b, tail...)
	}
	v1 := encodeV1(sampleFamily(), true)
	tests := []struct {
		name string
		rec  []byte
	}{
		{"empty", nil},
		{"short header", rec[:headLen-1]},
		{"unknown format", append([]byte{'3'}, rec[1:]...)},
		{"header only", rec[:headLen]},
		{"truncated", rec[:len(rec)-1]},
		{"trailing byte", append(bytes.Clone(rec), 0)},
		{"huge length", append(bytes.Clone(rec[:headLen]), 0xff, 0xff, 0xff, 0xff, 0x0f)},
		{"unknown flag", append(append(bytes.Clone(bare[:headLen+2]), 0x80, 0x80, 0x02), bare[headLen+3:]...)},
		{"overlong flags", append(append(bytes.Clone(bare[:headLen+2]), 0x80, 0x00), bare[headLen+3:]...)},
		{"announced refresh key missing", withFlags(f2RefreshKey)},
		{"announced refresh key empty", withFlags(f2RefreshKey, 0)},
		{"announced revoke reason empty", withFlags(f2RevokeReason, 0)},
		{"announced secrets none", withFlags(f2Secrets, 0)},
		{"announced successor empty", withFlags(f2Successor, 0)},
		{"announced grace end missing", withFlags(f2PreviousUntil)},
		{"format 1: other format", append([]byte{'2'}, v1[1:]...)},
		{"format 1: truncated", v1[:len(v1)-1]},
		{"format 1: trailing byte", append(bytes.Clone(v1), 0)},
		{"format 1: short header", v1[:headerLenV1-1]},
		{"format 1: secrets wider than the record", append(bytes.Clone(v1[:headerLenV1]), 0, 0, 0, 0, 0, 0, 0, 2, 0x80, 0x80, 0x04)},
		{"format 1: empty policy present", append(bytes.Clone(v1), 0)},
		{"format 1: bytes after the policy", append(bytes.Clone(v1), 1, 's', 0)},
		{"format 1: unknown flag", flaggedV1(v1, 1<<5, nil)},
		{"format 1: announced provider tokens missing", flaggedV1(v1, flagProvider, nil)},
		{"format 1: announced provider tokens empty", flaggedV1(v1, flagProvider, []byte{0})},
		{"format 1: announced provider sid empty", flaggedV1(v1, flagProviderSID, []byte{0})},
		{"format 1: announced refresh time zero", flaggedV1(v1, flagProviderRefreshAt, []byte{0})},
		{"format 1: announced lease zero", flaggedV1(v1, flagLeaseUntil, []byte{0})},
	}
	if _, err := decode("b", bare); err != nil {
		t.Fatalf("the bare record itself: %v", err)
	}
	for _, tc := range tests {
		if _, err := decode("id", tc.rec); !errors.Is(err, errCorrupt) {
			t.Errorf("%s: %v, want errCorrupt", tc.name, err)
		}
	}
}

// flaggedV1 returns rec (a format '1' record ending in its flags byte: no
// policy) with flag set and then tail appended.
func flaggedV1(rec []byte, flag byte, tail []byte) []byte {
	b := bytes.Clone(rec)
	b[len(b)-1] |= flag
	return append(b, tail...)
}

func TestExpiryMillis(t *testing.T) {
	base := time.UnixMilli(1_900_000_000_000)
	tests := []struct {
		t       time.Time
		want    int64
		wantErr bool
	}{
		{base, 1_900_000_000_000, false},
		{base.Add(time.Nanosecond), 1_900_000_000_001, false}, // rounded up: never before the deadline
		{base.Add(999 * time.Microsecond), 1_900_000_000_001, false},
		{time.Time{}, 0, true},
		{time.Unix(0, 0), 0, true},
	}
	for _, tc := range tests {
		got, err := expiryMillis(tc.t)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("expiryMillis(%v) = %d, %v; want %d, error %t", tc.t, got, err, tc.want, tc.wantErr)
		}
	}
}

// FuzzDecode: a record read from Redis never panics the decoder, and what
// decodes encodes back to a record that decodes to the same family.
func FuzzDecode(f *testing.F) {
	for _, fam := range []*store.Family{sampleFamily(), {ID: "x", Version: 1}, {ID: "p", Policy: "shop", Version: 1}, providerFamily()} {
		rec, _ := encode(fam)
		f.Add(rec)
	}
	f.Add([]byte("1"))
	f.Add(encodeV1(sampleFamily(), true))
	f.Fuzz(func(t *testing.T, rec []byte) {
		fam, err := decode("id", rec)
		if err != nil {
			return
		}
		again, err := encode(fam) // claims are kept as the bytes read
		if err != nil {
			t.Fatalf("decoded family does not encode: %v", err)
		}
		fam2, err := decode("id", again)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		again2, _ := encode(fam2)
		if !bytes.Equal(again, again2) {
			t.Fatalf("encoding is not stable")
		}
	})
}
