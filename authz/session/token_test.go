package session

import (
	"strings"
	"testing"
)

func TestEncodeParseRoundTrip(t *testing.T) {
	for range 100 {
		id, secret := newID(), newSecret()
		rt := encode(id, secret[:])
		tok, err := parse(rt)
		if err != nil || tok.id != id || tok.secret != secret {
			t.Fatalf("parse(encode(%s, …)) = %v", id, err)
		}
		if len(id) != idLen || len(rt) != tokenLen || !validID(id) {
			t.Fatalf("lengths: id %d, token %d", len(id), len(rt))
		}
	}
}

// FuzzParse: parse never panics, and whatever it accepts is canonical: it
// re-encodes to exactly the input (one token, one spelling).
func FuzzParse(f *testing.F) {
	id, secret := newID(), newSecret()
	good := encode(id, secret[:])
	for _, s := range []string{"", ".", good, good + "=", strings.Replace(good, ".", "..", 1), id + "." + strings.Repeat("_", secretLen), strings.Repeat("A", tokenLen)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rt string) {
		tok, err := parse(rt)
		if err != nil {
			if err != ErrMalformed {
				t.Fatalf("parse error %v is not ErrMalformed", err)
			}
			return
		}
		if back := encode(tok.id, tok.secret[:]); back != rt {
			t.Fatalf("accepted a non-canonical token %q (canonical %q)", rt, back)
		}
	})
}

func TestSealOpen(t *testing.T) {
	id, prev, next := newID(), newSecret(), newSecret()
	sealed, err := seal(prev[:], id, next[:])
	if err != nil {
		t.Fatal(err)
	}
	other := newSecret()
	tests := []struct {
		name    string
		prev    []byte
		id      string
		current []byte
		ok      bool
	}{
		{"right secret", prev[:], id, hashSecret(next[:]), true},
		{"wrong secret", other[:], id, hashSecret(next[:]), false},
		{"other family", prev[:], newID(), hashSecret(next[:]), false},
		{"not the current secret", prev[:], id, hashSecret(other[:]), false},
	}
	for _, tc := range tests {
		got, err := open(tc.prev, tc.id, sealed, tc.current)
		if (err == nil) != tc.ok || (tc.ok && string(got) != string(next[:])) {
			t.Errorf("%s: open = %v", tc.name, err)
		}
	}
	if _, err := open(prev[:], id, sealed[:len(sealed)-1], hashSecret(next[:])); err == nil {
		t.Error("truncated ciphertext opened")
	}
}
