package config

import _ "embed"

//go:embed example.yaml
var example string

// ExampleKeysDir is the keys.dir that Example sets, the one value in it that
// is not a default: keys.dir has no default, yet is required outside
// Development.
const ExampleKeysDir = "/etc/silentauth/keys"

// Example returns a complete, commented configuration file listing every
// field with its default value (keys.dir aside, see ExampleKeysDir). Tests
// prove that it loads into Default and validates. The caller owns the slice.
func Example() []byte { return []byte(example) }
