package strictjson

import (
	"encoding/json"
	"testing"
)

// payload is the claims of a typical access token.
var payload = []byte(`{"aud":"api","email":"a@example.com","exp":1800000300,"iat":1800000000,"iss":"https://auth.example","jti":"aGVsbG8td29ybGQtMTIzNA","roles":["reader"],"sid":"c2lkLXNpZC1zaWQtc2lkLXM","sub":"user-1"}`)

// Decode against encoding/json's Unmarshal of the same claims, which it
// replaces on the verify path; uniqueNames is what it adds, and the token
// walk is what uniqueNames stands in for.
func BenchmarkDecode(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(payload); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshal(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		var m map[string]any
		if err := json.Unmarshal(payload, &m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUniqueNames(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if err := uniqueNames(payload); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTokenWalk(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := reference(payload); err != nil {
			b.Fatal(err)
		}
	}
}
