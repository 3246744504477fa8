package strictjson

import (
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	tests := []struct {
		name, data string
		want       string // "" for success, else the error text
	}{
		{"object", `{"sub":"alice","n":1}`, ""},
		{"empty object", `{}`, ""},
		{"scalar", `"x"`, ""},
		{"null", `null`, ""},
		{"space around", " \t\r\n{\"a\":1} \n", ""},
		{"same name in sibling objects", `{"a":{"x":1},"b":{"x":2}}`, ""},
		{"same name at two depths", `{"x":{"x":{"x":1}}}`, ""},
		{"same name as a string value", `{"a":"a","b":"a"}`, ""},
		{"names differing in case", `{"sub":"alice","Sub":"mallory"}`, ""},
		{"names that are prefixes", `{"su":1,"sub":2,"s":3}`, ""},
		{"quotes and braces in strings", `{"a":"\"}","b":"{\"a\":1,\"a\":2}"}`, ""},
		{"duplicate", `{"sub":"alice","sub":"mallory"}`, `duplicate member name "sub"`},
		{"duplicate, other members between", `{"sub":"alice","n":[1,{"y":2}],"sub":"mallory"}`, `duplicate member name "sub"`},
		{"duplicate with an escape", `{"sub":"alice","\u0073ub":"mallory"}`, `duplicate member name "sub"`},
		{"duplicate escaped slash", `{"a/b":1,"a\/b":2}`, `duplicate member name "a/b"`},
		{"duplicate empty name", `{"":1,"":2}`, `duplicate member name ""`},
		{"duplicate invalid UTF-8, decoded alike", "{\"\xff\":1,\"\xfe\":2}", "duplicate member name \"\ufffd\""},
		{"duplicate nested", `{"claims":{"org":{"id":1,"role":"a","role":"b"}}}`, `duplicate member name "role" in claims.org`},
		{"duplicate in an array", `{"teams":[{"n":1},{"n":1,"n":2}]}`, `duplicate member name "n" in teams[1]`},
		{"duplicate in nested arrays", `[[],[0,{"a":1,"a":1}]]`, `duplicate member name "a" in [1][1]`},
		{"duplicate among many names", `{"a0":0,"a1":1,"a2":2,"a3":3,"a4":4,"a5":5,"a6":6,"a7":7,"a8":8,"a9":9,"b0":0,"b1":1,"b2":2,"b3":3,"b4":4,"b5":5,"b6":6,"b7":7,"a3":3}`, `duplicate member name "a3"`},
		{"duplicate just past the pairwise limit", `{"a0":0,"a1":1,"a2":2,"a3":3,"a4":4,"a5":5,"a6":6,"a7":7,"a8":8,"a9":9,"b0":0,"b1":1,"b2":2,"b3":3,"b4":4,"b5":5,"b5":5}`, `duplicate member name "b5"`},
		{"not JSON", `{"a":`, "unexpected EOF"},
		{"trailing data", `{"a":1}{"a":1}`, "invalid character after the JSON value"},
		{"trailing comma", `{"a":1,}`, "invalid character '}'"},
		{"two values, second a duplicate", `{} {"a":1,"a":2}`, "invalid character after the JSON value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode([]byte(tt.data))
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("err = %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("err = %v, want %q", err, tt.want)
			case strings.HasPrefix(tt.want, "duplicate") && !errors.Is(err, ErrDuplicate):
				t.Fatalf("err = %v, not ErrDuplicate", err)
			}
		})
	}
}

// Numbers keep their text, however many digits, in objects and arrays.
func TestDecodeNumbers(t *testing.T) {
	v, err := Decode([]byte(`{"uid":1541815603606036481,"f":1.5,"big":1e400,"neg":-0.0,"list":[123456789012345678901234567890]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"uid": json.Number("1541815603606036481"), "f": json.Number("1.5"), "big": json.Number("1e400"),
		"neg": json.Number("-0.0"), "list": []any{json.Number("123456789012345678901234567890")},
	}
	if !reflect.DeepEqual(v, want) {
		t.Fatalf("Decode = %#v, want %#v", v, want)
	}
}

// Unmarshal fills typed values as encoding/json does.
func TestUnmarshalStruct(t *testing.T) {
	var v struct {
		Sub    string         `json:"sub"`
		Claims map[string]any `json:"claims"`
	}
	if err := Unmarshal([]byte(`{"sub":"alice","claims":{"n":2}}`), &v); err != nil || v.Sub != "alice" || v.Claims["n"] != json.Number("2") {
		t.Fatalf("Unmarshal = %+v, %v", v, err)
	}
	if err := Unmarshal([]byte(`{"sub":"alice","claims":{"n":2,"n":3}}`), &v); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("err = %v, want ErrDuplicate", err)
	}
}

// reference decodes data with a json.Decoder token walk, the plain way to
// see every member name, refusing the first repeated one.
func reference(data []byte) (any, error) {
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.UseNumber()
	var value func() (any, error)
	value = func() (any, error) {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		switch t {
		case json.Delim('{'):
			m := map[string]any{}
			for dec.More() {
				t, err := dec.Token()
				if err != nil {
					return nil, err
				}
				name, _ := t.(string)
				if _, dup := m[name]; dup {
					return nil, ErrDuplicate
				}
				if m[name], err = value(); err != nil {
					return nil, err
				}
			}
			_, err := dec.Token()
			return m, err
		case json.Delim('['):
			a := []any{}
			for dec.More() {
				v, err := value()
				if err != nil {
					return nil, err
				}
				a = append(a, v)
			}
			_, err := dec.Token()
			return a, err
		}
		return t, nil
	}
	v, err := value()
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data")
	}
	return v, nil
}

// FuzzDecode holds the byte scan to the token walk: both accept the same
// texts with the same values, and refuse the same duplicates.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"sub":"alice","sub":"mallory"}`, `{"a":{"b":[{"c":1,"c":2}]}}`, `{"\u0073":1,"s":2}`,
		`{"a":"\"","b":"\\","c":"\u0022"}`, `[1,2,{"x":[true,false,null]}]`, `{"a" : 1 , "b" : {} }`,
		"{\"\xff\":1,\"\xfe\":2}", `{"n":1541815603606036481,"f":1e400}`, `"x"`, `1`, `{"a":1}x`, `{"a":1,}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := Decode(data)
		want, werr := reference(data)
		// A stream walk meets a duplicate before a later syntax error,
		// so which error is named agrees only for valid JSON.
		if (err == nil) != (werr == nil) || json.Valid(data) && errors.Is(err, ErrDuplicate) != errors.Is(werr, ErrDuplicate) {
			t.Fatalf("Decode(%q): err = %v; token walk: %v", data, err, werr)
		}
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("Decode(%q) = %#v; token walk: %#v", data, got, want)
		}
	})
}
