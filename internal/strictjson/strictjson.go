// Package strictjson decodes JSON that a security decision rests on, so
// that every reader of the same bytes sees the same value:
//
//   - An object may name a member only once, at any depth. RFC 8259 §4
//     leaves duplicates to each parser, and parsers disagree: Go's keeps
//     the last, many keep the first. Claims that say "sub" twice would name
//     one user to silentauth and another to an upstream that parses the
//     forwarded token again. RFC 7515 §4 and RFC 7519 §4 let a JOSE parser
//     either refuse duplicates or keep the last; only refusing protects the
//     parsers after us (I-JSON, RFC 7493 §2.3, forbids them outright).
//     Names compare as encoding/json decodes them, so "sub" and "\u0073ub"
//     are the same name.
//   - Numbers stay json.Number, the exact text that was sent: a float64
//     holds 53 bits, and 1541815603606036481 would become
//     1541815603606036500, another user's id.
//
// Unmarshal and Decode are safe for concurrent use.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ErrDuplicate is wrapped by Unmarshal and Decode when an object names a
// member twice; the error says which name and where. Other errors are
// encoding/json's.
var ErrDuplicate = errors.New("duplicate member name")

// Unmarshal is json.Unmarshal with two differences: numbers decoded into an
// interface become json.Number (json.Decoder.UseNumber), and data holding
// an object that names a member twice, at any depth, is refused with an
// error wrapping ErrDuplicate, e.g. `duplicate member name "role" in
// claims.org`. Error text names members, never values.
//
// Member names are compared exactly. A struct field matches names
// case-insensitively in encoding/json, so "Sub" and "sub" are distinct
// names here yet fill one field: decode into a map to see every name.
func Unmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	// Decode reads one value; anything after it but space is an error, as
	// in json.Unmarshal.
	if rest := data[dec.InputOffset():]; len(bytes.TrimLeft(rest, " \t\r\n")) != 0 {
		return errors.New("invalid character after the JSON value")
	}
	// data is now known to be one valid JSON value, which is all the
	// name scan needs to be correct.
	return uniqueNames(data)
}

// Decode returns the value of data as Unmarshal into an any decodes it:
// map[string]any, []any, string, json.Number, bool or nil.
func Decode(data []byte) (any, error) {
	var v any
	err := Unmarshal(data, &v)
	return v, err
}

// uniqueNames reports the first object in data, a valid JSON text, that
// names a member twice. It is a byte scan rather than a json.Decoder token
// walk, because it runs on every access-token verification: a token walk
// costs more than the decode itself, this scan a small part of it
// (BenchmarkUniqueNames, BenchmarkTokenWalk). FuzzDecode holds it to a
// token walk's verdict.
func uniqueNames(data []byte) error {
	s := scanner{data: data}
	s.value()
	if errors.Is(s.err, ErrDuplicate) {
		// Again, noting the path to say where: text without a repeat, the
		// usual case, is spared the cost of tracking it.
		s = scanner{data: data, track: true}
		s.value()
	}
	return s.err
}

type scanner struct {
	data  []byte
	i     int
	track bool   // whether path is kept
	path  []step // the members and elements being scanned, for the error
	err   error
}

// step is one level of the path: a member name, or an array index.
type step struct {
	name  []byte
	index int // -1 for a member
}

// smallObject is how many names are compared pairwise before a map is
// cheaper.
const smallObject = 16

func (s *scanner) value() {
	s.space()
	if s.i >= len(s.data) || s.err != nil {
		return
	}
	switch s.data[s.i] {
	case '{':
		s.object()
	case '[':
		s.array()
	case '"':
		s.str()
	default: // number, true, false, null: up to the next delimiter
		for s.i < len(s.data) && !delimiter(s.data[s.i]) {
			s.i++
		}
	}
}

func (s *scanner) object() {
	s.i++ // '{'
	var (
		small [smallObject][]byte // names, while few
		names = small[:0]
		seen  map[string]bool // names, once many
	)
	for s.err == nil {
		s.space()
		if s.i >= len(s.data) {
			return
		}
		switch s.data[s.i] {
		case '}':
			s.i++
			return
		case ',':
			s.i++
			continue
		}
		name := s.name()
		switch {
		case seen != nil:
			if seen[string(name)] {
				s.duplicate(name)
				return
			}
			seen[string(name)] = true
		default:
			for _, n := range names {
				if bytes.Equal(n, name) {
					s.duplicate(name)
					return
				}
			}
			if names = append(names, name); len(names) == smallObject {
				seen = make(map[string]bool, 2*smallObject)
				for _, n := range names {
					seen[string(n)] = true
				}
			}
		}
		s.space()
		s.i++ // ':'
		s.push(step{name, -1})
		s.value()
		s.pop()
	}
}

func (s *scanner) array() {
	s.i++ // '['
	s.push(step{index: 0})
	for s.err == nil {
		s.space()
		if s.i >= len(s.data) {
			return
		}
		switch s.data[s.i] {
		case ']':
			s.i++
			s.pop()
			return
		case ',':
			s.i++
			if s.track {
				s.path[len(s.path)-1].index++
			}
			continue
		}
		s.value()
	}
}

// name scans a member name and returns it as encoding/json decodes it:
// the raw bytes when they need no decoding, else the decoded string
// (escapes resolved, invalid UTF-8 replaced by U+FFFD).
func (s *scanner) name() []byte {
	start := s.i
	s.str()
	raw := s.data[start:s.i]
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return inner
	}
	var decoded string
	if err := json.Unmarshal(raw, &decoded); err != nil {
		s.err = err // not reached on valid JSON
	}
	return []byte(decoded)
}

// str scans a string, from its opening quote to after its closing one.
func (s *scanner) str() {
	s.i++ // '"'
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case '\\':
			s.i += 2 // the escaped byte can be a quote; \uXXXX digits cannot
		case '"':
			s.i++
			return
		default:
			s.i++
		}
	}
	s.err = errors.New("unterminated string") // not reached on valid JSON
}

func delimiter(c byte) bool {
	switch c {
	case ',', '}', ']', ' ', '\t', '\r', '\n':
		return true
	}
	return false
}

func (s *scanner) space() {
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\r', '\n':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) push(p step) {
	if s.track {
		s.path = append(s.path, p)
	}
}

func (s *scanner) pop() {
	if s.track {
		s.path = s.path[:len(s.path)-1]
	}
}

func (s *scanner) duplicate(name []byte) {
	s.err = fmt.Errorf("%w %q%s", ErrDuplicate, name, s.where())
}

// where names the object being scanned: "" at the top, else " in
// claims.org" or " in roles[2]".
func (s *scanner) where() string {
	if len(s.path) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString(" in ")
	for i, p := range s.path {
		switch {
		case p.index >= 0:
			fmt.Fprintf(&b, "[%d]", p.index)
		case i > 0:
			b.WriteByte('.')
			b.Write(p.name)
		default:
			b.Write(p.name)
		}
	}
	return b.String()
}
