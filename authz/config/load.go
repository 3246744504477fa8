package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// MaxFileSize bounds a configuration file (1 MiB); a larger one is refused
// before it is parsed, so a wrong path (a log, a device) fails fast.
const MaxFileSize = 1 << 20

// Resolve builds the configuration the process runs with: base (Default or
// Development), then the file at path (none when path is ""), then the
// environment read through getenv, then the flags set in o (which may be
// nil). It validates the result and returns every problem at once: the
// file's unknown fields and mistyped values, the variables that do not
// parse, and what Validate finds in the rest. Outside Development it also
// requires a session-API credential: one of sessionAPI.tokenFile, the
// SILENTAUTH_API_TOKEN variable (which Validate cannot see) or
// sessionAPI.serviceAccounts. The Config returned is Normalized; Complete
// turns it into what the service runs with.
func Resolve(base Config, path string, getenv func(string) string, o *Overrides) (Config, error) {
	c := base.clone()
	var errs []error
	if path != "" {
		problems, err := loadInto(&c, path)
		if err != nil {
			return Config{}, err // nothing more can be read from the file
		}
		errs = append(errs, problems...)
	}
	if err := ApplyEnv(&c, getenv); err != nil {
		errs = append(errs, fmt.Errorf("config: environment: %w", err))
	}
	o.Apply(&c)
	c = c.Normalized()
	errs = append(errs, c.Validate())
	// Someone must be able to start sessions: the app through the session
	// API, or the identity provider.
	if !c.Development && !c.OIDC.Enabled() && c.SessionAPI.TokenFile == "" && len(c.SessionAPI.ServiceAccounts) == 0 &&
		(getenv == nil || strings.TrimSpace(getenv("SILENTAUTH_API_TOKEN")) == "") {
		errs = append(errs, errors.New("sessionAPI.tokenFile: required outside development unless SILENTAUTH_API_TOKEN, sessionAPI.serviceAccounts or oidc.issuerURL is set"))
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	return c, nil
}

// loadInto decodes the file at path over c. It fails when the file cannot be
// read or parsed; otherwise it returns the file's problems (unknown fields,
// values of the wrong type), each naming the file, and c holds every value
// that could be decoded.
func loadInto(c *Config, path string) ([]error, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	problems, err := decode(c, data, "config file "+path)
	if err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	return problems, nil
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
			// Say "config file x: no such file or directory" rather than
			// repeating the path inside the os error.
			return nil, fmt.Errorf("config file %s: %w", path, pe.Err)
		}
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("config file %s: is a directory", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("config file %s: larger than %d bytes", path, MaxFileSize)
	}
	return data, nil
}

// decode decodes one YAML document over c; fields absent from the
// document keep their value in c. It fails on what leaves nothing to
// decode: a syntax error, a second document. Otherwise it decodes every
// value it can and returns the rest as problems, each its own error:
// unknown fields (yaml.v3's strict mode would stop at the first and hide
// every other problem), repeated keys and values of the wrong type. Each
// problem names the line of file, a name such as "config file x.yaml".
func decode(c *Config, data []byte, file string) (problems []error, err error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	switch err := dec.Decode(&doc); {
	case errors.Is(err, io.EOF):
		return nil, nil // empty, or only comments: defaults
	case err != nil:
		return nil, err
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, err
	default:
		return nil, fmt.Errorf("line %d: a second YAML document; the file must hold exactly one", next.Line)
	}
	if err := doc.Decode(c); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, err
		}
		// yaml.v3 decodes what it can past a mistyped value and lists
		// every one.
		for _, e := range te.Errors {
			problems = append(problems, fmt.Errorf("%s: %w", file, withDurationHint(e)))
		}
	}
	problems = append(unknownFields(&doc, file), problems...)
	// "publicPaths: []" and an absent publicPaths mean the same: none.
	nilEmpty(reflect.ValueOf(c).Elem())
	return problems, nil
}

// unknownFields lists the keys of doc that name no field of Config, each
// as "path: unknown field (line N of file)", in the order of the file. It follows
// the yaml tags of Config's structs and the values of its maps of structs
// (policies), and leaves the rest to the decoder.
func unknownFields(doc *yaml.Node, file string) []error {
	var out []error
	seen := make(map[*yaml.Node]bool) // an alias is walked once
	var walk func(n *yaml.Node, t reflect.Type, path string)
	walk = func(n *yaml.Node, t reflect.Type, path string) {
		for n.Kind == yaml.DocumentNode && len(n.Content) == 1 || n.Kind == yaml.AliasNode && n.Alias != nil {
			if n.Kind == yaml.AliasNode {
				n = n.Alias
			} else {
				n = n.Content[0]
			}
		}
		if n.Kind != yaml.MappingNode || seen[n] {
			return // the decoder reports a mapping's absence
		}
		seen[n] = true
		switch t.Kind() {
		case reflect.Map:
			if t.Elem().Kind() != reflect.Struct {
				return
			}
			for i := 0; i+1 < len(n.Content); i += 2 {
				walk(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value))
			}
		case reflect.Struct:
			fields := yamlFields(t)
			for i := 0; i+1 < len(n.Content); i += 2 {
				key := n.Content[i]
				f, ok := fields[key.Value]
				if !ok {
					out = append(out, unknownField(join(path, key.Value), file, key, fields))
					continue
				}
				walk(n.Content[i+1], f.Type, join(path, key.Value))
			}
		}
	}
	walk(doc, reflect.TypeFor[Config](), "")
	return out
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// yamlFields maps the yaml names of t's fields to the fields, those of
// ",inline" structs included.
func yamlFields(t reflect.Type) map[string]reflect.StructField {
	fields := make(map[string]reflect.StructField, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		switch {
		case opts == "inline" && f.Type.Kind() == reflect.Struct:
			maps.Copy(fields, yamlFields(f.Type))
		case f.IsExported() && name != "-":
			if name == "" {
				name = strings.ToLower(f.Name) // yaml.v3's default
			}
			fields[name] = f
		}
	}
	return fields
}

// unknownField describes key, which names no field; a known field that
// differs only in case is suggested, since keys are case-sensitive.
func unknownField(path, file string, key *yaml.Node, fields map[string]reflect.StructField) error {
	for name := range fields {
		if strings.EqualFold(name, key.Value) {
			return fmt.Errorf("%s: unknown field (line %d of %s); did you mean %s?", path, key.Line, file, name)
		}
	}
	return fmt.Errorf("%s: unknown field (line %d of %s)", path, key.Line, file)
}

// withDurationHint returns one of yaml.v3's type errors ("line 2: cannot
// unmarshal ...") as an error, with a reminder of the duration syntax when
// the value was meant for a time.Duration. The hint is cosmetic.
func withDurationHint(msg string) error {
	if strings.Contains(msg, "time.Duration") {
		return fmt.Errorf(`%s (durations are written like "30s", "15m" or "720h")`, msg)
	}
	return errors.New(msg)
}

// nilEmpty sets every empty list and map among v's fields, through nested
// structs, to nil, so that a file's "[]" or "{}" and an absent key decode
// alike.
func nilEmpty(v reflect.Value) {
	for i := range v.NumField() {
		f := v.Field(i)
		switch {
		case !f.CanSet():
		case f.Kind() == reflect.Struct:
			nilEmpty(f)
		case (f.Kind() == reflect.Slice || f.Kind() == reflect.Map) && f.Len() == 0:
			f.SetZero()
		}
	}
}
