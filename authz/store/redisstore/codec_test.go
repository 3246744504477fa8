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
		Claims: map[string]any{"email": "ada@example.com", "groups": []any{"eng", "ops"}, "n": json.Number("3"),
			"uid": json.Number("1541815603606036481"), "ratio": json.Number("1.50"), "huge": json.Number("1e400")},
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
	for _, f := range []*store.Family{full, bare, odd, epoch, named} {
		rec, err := encode(f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decode(f.ID, rec)
		if err != nil {
			t.Fatalf("%s: decode: %v", f.ID, err)
		}
		for _, tm := range [][2]time.Time{{f.CreatedAt, got.CreatedAt}, {f.IdleExpiresAt, got.IdleExpiresAt},
			{f.AbsoluteExpiresAt, got.AbsoluteExpiresAt}, {f.PreviousUntil, got.PreviousUntil}, {f.RevokedAt, got.RevokedAt}} {
			if !tm[0].Equal(tm[1]) || tm[0].IsZero() != tm[1].IsZero() {
				t.Errorf("%s: time %v round-trips to %v", f.ID, tm[0], tm[1])
			}
		}
		want := *f
		want.CreatedAt, want.IdleExpiresAt, want.AbsoluteExpiresAt, want.PreviousUntil, want.RevokedAt = got.CreatedAt, got.IdleExpiresAt, got.AbsoluteExpiresAt, got.PreviousUntil, got.RevokedAt
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
	b, err := os.ReadFile(filepath.Join("testdata", "record-before-policy.hex"))
	if err != nil {
		t.Fatal(err)
	}
	old, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	got, err := decode("AAAAAAAAAAAAAAAAAAAAAA", old)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	want := sampleFamily()
	want.Generation, want.CurrentSeen = 0, true
	// The fixture predates the uid, ratio and huge claims of the sample.
	want.Claims = map[string]any{"email": "ada@example.com", "groups": []any{"eng", "ops"}, "n": json.Number("3")}
	if got.Policy != "" || !got.CreatedAt.Equal(want.CreatedAt) || !got.RevokedAt.Equal(want.RevokedAt) {
		t.Fatalf("decoded %+v", got)
	}
	got.CreatedAt, got.IdleExpiresAt, got.AbsoluteExpiresAt, got.PreviousUntil, got.RevokedAt = want.CreatedAt, want.IdleExpiresAt, want.AbsoluteExpiresAt, want.PreviousUntil, want.RevokedAt
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded\n got %+v\nwant %+v", got, want)
	}
	if rec, _ := encode(want); !bytes.Equal(rec, append(old, 0, flagCurrentSeen)) {
		t.Fatalf("re-encoded:\n got %x\nwant %x and generation 0, flags 1", rec, old)
	}
}

// The header is what the scripts read: format, version, subject tag.
func TestCodecHeader(t *testing.T) {
	f := sampleFamily()
	rec, err := encode(f)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256([]byte(f.Subject))
	if got, want := rec[:headerLen], append([]byte{'1', 0, 0, 0, 0, 0, 0, 0, 17}, h[:8]...); !bytes.Equal(got, want) {
		t.Fatalf("header %x, want %x", got, want)
	}
	if got := versionHead(17); got != string(rec[:headLen]) {
		t.Fatalf("versionHead(17) = %x, record starts %x", got, rec[:headLen])
	}
	if tag := subjectTag(f.Subject); tag != hex.EncodeToString(h[:8]) {
		t.Fatalf("subjectTag = %q", tag)
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
	tests := []struct {
		name string
		rec  []byte
	}{
		{"empty", nil},
		{"short header", rec[:headerLen-1]},
		{"other format", append([]byte{'2'}, rec[1:]...)},
		{"secrets wider than the record", append(bytes.Clone(rec[:headerLen]), 0, 0, 0, 0, 0, 0, 0, 2, 0x80, 0x80, 0x04)},
		{"truncated", rec[:len(rec)-1]},
		{"trailing byte", append(bytes.Clone(rec), 0)},
		{"header only", rec[:headerLen]},
		{"huge length", append(bytes.Clone(rec[:headerLen]), 0xff, 0xff, 0xff, 0xff, 0x0f)},
		{"empty policy present", append(bytes.Clone(rec), 0)}, // "" is written as no policy at all
		{"policy longer than the record", append(bytes.Clone(rec), 9, 's')},
		{"bytes after the policy", append(bytes.Clone(rec), 1, 's', 0)},
	}
	for _, tc := range tests {
		if _, err := decode("id", tc.rec); !errors.Is(err, errCorrupt) {
			t.Errorf("%s: %v, want errCorrupt", tc.name, err)
		}
	}
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
	for _, fam := range []*store.Family{sampleFamily(), {ID: "x", Version: 1}, {ID: "p", Policy: "shop", Version: 1}} {
		rec, _ := encode(fam)
		f.Add(rec)
	}
	f.Add([]byte("1"))
	f.Fuzz(func(t *testing.T, rec []byte) {
		fam, err := decode("id", rec)
		if err != nil {
			return
		}
		again, err := encode(fam) // decoded claims (json.Number included) always marshal
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
