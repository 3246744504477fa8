package configs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// yamlToJSON converts one YAML document to JSON the way Envoy reads a YAML
// bootstrap: YAML 1.2 core types (only true/false are booleans, so "on"
// and "yes" stay strings), mapping keys always strings, and duplicate keys
// an error rather than "last one wins". Aliases are expanded; merge keys
// (<<) are refused, since Envoy configs have no use for them and their
// semantics differ between YAML libraries.
//
// go.yaml.in/yaml/v3 is already a direct dependency of the product, so
// this adds nothing to go.mod; sigs.k8s.io/yaml would only be an indirect
// (Kubernetes) one, and it follows YAML 1.1, where "on" is true.
func yamlToJSON(data []byte) ([]byte, error) {
	docs, err := yamlDocuments(data)
	if err != nil {
		return nil, err
	}
	if len(docs) != 1 {
		return nil, fmt.Errorf("want exactly one YAML document, found %d", len(docs))
	}
	return docs[0], nil
}

// yamlDocuments converts every document of a YAML stream to JSON. Empty
// documents (a lone "---" at the end) are skipped.
func yamlDocuments(data []byte) ([][]byte, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out [][]byte
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if len(doc.Content) == 0 || doc.Content[0].ShortTag() == "!!null" {
			continue // a document of comments only, or the empty one after a final "---"
		}
		v, err := nodeValue(doc.Content[0])
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", len(out)+1, err)
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
}

// nodeValue turns a YAML node into the value encoding/json writes: an
// ordered object, a slice, a json.Number, a bool, a string or nil.
func nodeValue(n *yaml.Node) (any, error) {
	switch n.Kind {
	case yaml.AliasNode:
		return nodeValue(n.Alias)
	case yaml.SequenceNode:
		list := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := nodeValue(c)
			if err != nil {
				return nil, err
			}
			list = append(list, v)
		}
		return list, nil
	case yaml.MappingNode:
		obj := orderedObject{}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("line %d: mapping keys must be plain strings", k.Line)
			}
			if k.ShortTag() == "!!merge" {
				return nil, fmt.Errorf("line %d: merge keys (<<) are not supported", k.Line)
			}
			if seen[k.Value] {
				return nil, fmt.Errorf("line %d: key %q appears twice", k.Line, k.Value)
			}
			seen[k.Value] = true
			val, err := nodeValue(v)
			if err != nil {
				return nil, err
			}
			obj = append(obj, member{k.Value, val})
		}
		return obj, nil
	case yaml.ScalarNode:
		return scalarValue(n)
	}
	return nil, fmt.Errorf("line %d: unsupported YAML node", n.Line)
}

func scalarValue(n *yaml.Node) (any, error) {
	switch n.ShortTag() {
	case "!!null":
		return nil, nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return nil, err
		}
		return b, nil
	case "!!int":
		// Decoding through big-enough integers normalises 0x1F, 0o17 and
		// 1_000 to the decimal form JSON needs.
		var i int64
		if err := n.Decode(&i); err == nil {
			return json.Number(strconv.FormatInt(i, 10)), nil
		}
		var u uint64
		if err := n.Decode(&u); err != nil {
			return nil, fmt.Errorf("line %d: integer %q out of range", n.Line, n.Value)
		}
		return json.Number(strconv.FormatUint(u, 10)), nil
	case "!!float":
		var f float64
		if err := n.Decode(&f); err != nil {
			return nil, err
		}
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, fmt.Errorf("line %d: %q has no JSON form", n.Line, n.Value)
		}
		return json.Number(strconv.FormatFloat(f, 'g', -1, 64)), nil
	default:
		// Strings, and everything YAML 1.1 would have typed (timestamps,
		// binary): kept verbatim, as Envoy's parser sees them.
		return n.Value, nil
	}
}

// orderedObject is a JSON object that keeps the YAML key order, so error
// messages and golden output follow the file.
type orderedObject []member

type member struct {
	key   string
	value any
}

func (o orderedObject) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(m.key)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(m.value)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func TestYAMLToJSON(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{in: "a: 1\nb: x", want: `{"a":1,"b":"x"}`},
		{in: "timeout: 0.5s", want: `{"timeout":"0.5s"}`},
		{in: "f: 0.25\ng: 1e3", want: `{"f":0.25,"g":1000}`},
		{in: "h: 0x1F\no: 0o17", want: `{"h":31,"o":15}`},
		{in: "big: 18446744073709551615", want: `{"big":18446744073709551615}`},
		{in: "on: on\nyes: no", want: `{"on":"on","yes":"no"}`},
		{in: "t: true\nn: null\ne: ~", want: `{"t":true,"n":null,"e":null}`},
		{in: "d: 2001-12-14", want: `{"d":"2001-12-14"}`},
		{in: `"@type": x`, want: `{"@type":"x"}`},
		{in: "q: '42'", want: `{"q":"42"}`},
		{in: "l: [a, {b: 1}]", want: `{"l":["a",{"b":1}]}`},
		{in: "z: 1\na: 2", want: `{"z":1,"a":2}`},
		{in: "x: &v {p: 1}\ny: *v", want: `{"x":{"p":1},"y":{"p":1}}`},
		{in: "a: 1\na: 2", err: `key "a" appears twice`},
		{in: "x: &v {p: 1}\ny: {<<: *v}", err: "merge keys"},
		{in: "? [a]\n: 1", err: "mapping keys must be plain strings"},
		{in: "n: .inf", err: "has no JSON form"},
		{in: "a: 1\n---\nb: 2", err: "exactly one YAML document, found 2"},
		{in: "a: [1", err: "did not find expected"},
	} {
		got, err := yamlToJSON([]byte(tc.in))
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("yamlToJSON(%q) error = %v, want one containing %q", tc.in, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("yamlToJSON(%q): %v", tc.in, err)
		case tc.err == "" && string(got) != tc.want:
			t.Errorf("yamlToJSON(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestYAMLDocuments(t *testing.T) {
	docs, err := yamlDocuments([]byte("a: 1\n---\n# only a comment\n---\nb: 2\n---\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 2 || string(docs[0]) != `{"a":1}` || string(docs[1]) != `{"b":2}` {
		t.Fatalf("yamlDocuments = %q, want two documents", docs)
	}
}
