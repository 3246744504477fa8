package session

import (
	"crypto/rand"
	"strings"
	"testing"
)

// newSecret returns random secret bytes (legacy tokens, forged MACs).
func newSecret() (s [secretBytes]byte) {
	rand.Read(s[:])
	return s
}

func TestEncodeParseRoundTrip(t *testing.T) {
	for i := range 100 {
		id, mac, tag := newID(), newSecret(), keyTag(newID())
		gen := uint64(i+1) << (i % 57)
		rt := encode(id, gen, tag, mac[:])
		tok, err := parse(rt)
		if err != nil || tok.id != id || tok.secret != mac || tok.gen != gen || tok.tag != tag || tok.legacy {
			t.Fatalf("parse(encode(%s, %d, …)) = %+v, %v", id, gen, tok, err)
		}
		if len(id) != idLen || len(rt) != tokenLen || !validID(id) {
			t.Fatalf("lengths: id %d, token %d", len(id), len(rt))
		}
		legacy := encodeLegacy(id, mac[:])
		if tok, err := parse(legacy); err != nil || !tok.legacy || tok.id != id || tok.secret != mac || len(legacy) != legacyLen {
			t.Fatalf("parse(encodeLegacy(%s, …)) = %+v, %v", id, tok, err)
		}
	}
	if _, err := parse(encode(newID(), 0, keyTag("k"), make([]byte, secretBytes))); err != ErrMalformed {
		t.Fatalf("generation 0: %v, want ErrMalformed", err)
	}
}

// FuzzParse: parse never panics, and whatever it accepts is canonical: it
// re-encodes to exactly the input (one token, one spelling).
func FuzzParse(f *testing.F) {
	id, secret := newID(), newSecret()
	good := encode(id, 7, keyTag("kid"), secret[:])
	legacy := encodeLegacy(id, secret[:])
	for _, s := range []string{"", ".", good, legacy, good + "=", legacy + "=", strings.Replace(good, ".", "..", 1),
		id + "." + strings.Repeat("_", secretLen), id + "." + strings.Repeat("_", bodyLen), strings.Repeat("A", tokenLen),
		id + "." + strings.Repeat("A", bodyLen)} {
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
		back := encode(tok.id, tok.gen, tok.tag, tok.secret[:])
		if tok.legacy {
			back = encodeLegacy(tok.id, tok.secret[:])
		}
		if back != rt {
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
