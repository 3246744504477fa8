package store

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/silentauth/silentauth/internal/strictjson"
)

// Claims are a session's own claims, encoded once as one JSON object (the
// bytes json.Marshal writes for them: members sorted by name, numbers as
// the digits given). A family keeps these bytes, not a map: a store copies
// and serialises them as they are, and nothing shares a map between a
// caller and a stored record. The zero Claims holds no claims.
//
// Claims are immutable; Map decodes them for whoever needs the values
// (minting an access token, the session API).
type Claims struct {
	json string
}

// EncodeClaims returns the Claims of m, whose numbers should be
// json.Number (the digits the session API or the identity provider gave):
// a float64 would turn 1541815603606036481 into 1541815603606036500,
// another user's id. An empty or nil m gives the zero Claims.
func EncodeClaims(m map[string]any) (Claims, error) {
	if len(m) == 0 {
		return Claims{}, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return Claims{}, fmt.Errorf("store: claims: %w", err)
	}
	return Claims{json: string(b)}, nil
}

// MustClaims is EncodeClaims for values known to encode (tests, literals).
func MustClaims(m map[string]any) Claims {
	c, err := EncodeClaims(m)
	if err != nil {
		panic(err)
	}
	return c
}

// RawClaims returns Claims holding b as they are: the bytes of
// Claims.JSON, kept by a store (an empty b is the zero Claims). Nothing is
// checked here; Map refuses bytes that are not one strict JSON object, so
// a corrupted record can never be minted into a token.
func RawClaims(b []byte) Claims { return Claims{json: string(b)} }

// JSON returns the encoded object ("" for the zero Claims).
func (c Claims) JSON() string { return c.json }

// Len is the length of the encoded object in bytes.
func (c Claims) Len() int { return len(c.json) }

// IsZero reports whether c holds no claims.
func (c Claims) IsZero() bool { return c.json == "" }

var errClaimsNotObject = errors.New("store: claims are not a JSON object")

// Map decodes c as the session API and Verify decode claims
// (strictjson): numbers are json.Number, and an object naming a member
// twice is refused. The zero Claims decode to nil. Each call returns a new
// map, the caller's to change.
func (c Claims) Map() (map[string]any, error) {
	if c.json == "" {
		return nil, nil
	}
	var m map[string]any
	if err := strictjson.Unmarshal([]byte(c.json), &m); err != nil {
		return nil, fmt.Errorf("store: claims: %w", err)
	}
	if m == nil { // "null"
		return nil, errClaimsNotObject
	}
	return m, nil
}

// String returns the encoded object, for logs and test failures.
func (c Claims) String() string { return c.json }
