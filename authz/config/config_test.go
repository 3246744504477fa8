package config

import (
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

var durationType = reflect.TypeFor[time.Duration]()

// valid returns Default completed with the one setting it lacks, so that it
// passes Validate.
func valid() Config {
	c := Default()
	c.Keys.Dir = ExampleKeysDir
	return c
}

func TestDefaultAndDevelopmentValidate(t *testing.T) {
	c := valid()
	if err := c.Validate(); err != nil {
		t.Errorf("valid().Validate() = %v", err)
	}
	d := Development()
	if err := d.Validate(); err != nil {
		t.Errorf("Development().Validate() = %v", err)
	}
	// Default alone lacks keys.dir, and says so.
	c = Default()
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "keys.dir: required") {
		t.Errorf("Default().Validate() = %v, want keys.dir required", err)
	}
}

func TestDevelopmentChangesOnlyWhatItSays(t *testing.T) {
	want := Default()
	want.Development = true
	want.Listen.GRPC.Address = "127.0.0.1:9001"
	want.Listen.Public.Address = "127.0.0.1:9002"
	want.Listen.SessionAPI.Address = "127.0.0.1:9003"
	want.Listen.Admin.Address = "127.0.0.1:9090"
	if got := Development(); !reflect.DeepEqual(got, want) {
		t.Errorf("Development() = %+v\nwant %+v", got, want)
	}
}

// defaultRE finds the value a doc comment names: `Default "x"`, `Default 15m`,
// `Default none`.
var defaultRE = regexp.MustCompile(`\bDefault ("(?:[^"\\]|\\.)*"|\[[^\]]*\]|\{[^}]*\}|[A-Za-z0-9_]+(?:\.[0-9]+[A-Za-z]*)?)`)

// TestDocCommentsNameDefaults pins Default to the comments in config.go: each
// field's comment names its default, and Default returns exactly that.
func TestDocCommentsNameDefaults(t *testing.T) {
	// Config embeds the options of the packages that own them.
	docs := fieldDocs(t, "config.go")
	for _, file := range []string{"../access/access.go", "../cookie/cookie.go", "../session/session.go", "../token/settings.go", "../oidc/options.go", "../store/redisstore/options.go"} {
		maps.Copy(docs, fieldDocs(t, file))
	}
	var walk func(v reflect.Value, path string)
	walk = func(v reflect.Value, path string) {
		for i := range v.NumField() {
			f, fv := v.Type().Field(i), v.Field(i)
			if yamlName(f) == "-" {
				continue
			}
			if isInline(f) {
				walk(fv, path)
				continue
			}
			p := strings.TrimPrefix(path+"."+yamlName(f), ".")
			key := v.Type().Name() + "." + f.Name
			isStruct := fv.Kind() == reflect.Struct
			m := defaultRE.FindStringSubmatch(docs[key])
			switch {
			case m != nil:
				checkDocDefault(t, p, m[1], fv)
			case key == "Listener.Address":
				// "Defaults above": checked through Listen's comments.
			case !isStruct:
				t.Errorf("%s (%s): doc comment names no default: %q", p, key, docs[key])
			}
			if isStruct {
				walk(fv, p)
			}
		}
	}
	walk(reflect.ValueOf(Default()), "")
}

func checkDocDefault(t *testing.T, path, named string, v reflect.Value) {
	t.Helper()
	if v.Type() == reflect.TypeFor[Listener]() {
		v = v.FieldByName("Address") // Listen documents each listener's address
	}
	var want any
	switch {
	case named == "none" || named == "off":
		if !v.IsZero() {
			t.Errorf("%s: doc says %s, Default has %#v", path, named, v.Interface())
		}
		return
	case strings.HasPrefix(named, `"`):
		s, err := strconv.Unquote(named)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		want = s
	case v.Type() == durationType:
		d, err := time.ParseDuration(named)
		if err != nil {
			t.Fatalf("%s: doc default %q: %v", path, named, err)
		}
		want = d
	case v.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(named)
		if err != nil {
			t.Fatalf("%s: doc default %q: %v", path, named, err)
		}
		want = b
	case v.Kind() == reflect.Int:
		n, err := strconv.Atoi(named)
		if err != nil {
			t.Fatalf("%s: doc default %q: %v", path, named, err)
		}
		want = n
	case strings.HasPrefix(named, "[") || strings.HasPrefix(named, "{"):
		// A list or a map, in YAML flow style.
		p := reflect.New(v.Type())
		if err := yaml.Unmarshal([]byte(named), p.Interface()); err != nil {
			t.Fatalf("%s: doc default %s: %v", path, named, err)
		}
		want = p.Elem().Interface()
	default:
		t.Fatalf("%s: cannot compare doc default %q with %s", path, named, v.Type())
	}
	got := v.Interface()
	if v.Kind() == reflect.String {
		got = v.String() // redisstore.Mode and other string types
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: doc says %v, Default has %v", path, want, got)
	}
}

// fieldDocs maps "Type.Field" to the field's doc comment in file. A field
// without a comment, on the line right after a field with one, shares it
// ("CertFile and KeyFile ...").
func fieldDocs(t *testing.T, file string) map[string]string {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, file, nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	docs := make(map[string]string)
	ast.Inspect(f, func(n ast.Node) bool {
		ts, ok := n.(*ast.TypeSpec)
		if !ok {
			return true
		}
		st, ok := ts.Type.(*ast.StructType)
		if !ok {
			return false
		}
		prev, prevLine := "", 0
		for _, fld := range st.Fields.List {
			doc, line := fld.Doc.Text(), fset.Position(fld.Pos()).Line
			if doc == "" && line == prevLine+1 {
				doc = prev
			}
			prev, prevLine = doc, line
			for _, name := range fld.Names {
				docs[ts.Name.Name+"."+name.Name] = strings.Join(strings.Fields(doc), " ")
			}
		}
		return false
	})
	return docs
}

func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return name
}

// isInline reports whether f is a struct whose fields YAML lays into its
// parent's mapping.
func isInline(f reflect.StructField) bool {
	_, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return opts == "inline"
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "silentauth.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestExampleIsDefault proves the example can never drift from Default: it
// loads into exactly Default (keys.dir aside) and validates.
func TestExampleIsDefault(t *testing.T) {
	got, err := Load(writeFile(t, string(Example())))
	if err != nil {
		t.Fatalf("Load(example): %v", err)
	}
	if want := valid(); !reflect.DeepEqual(got, want) {
		t.Errorf("Load(example) =\n%+v\nwant Default with keys.dir %q:\n%+v", got, ExampleKeysDir, want)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("example does not validate: %v", err)
	}
}

// TestExampleListsEveryField walks Config's yaml tags and the example's YAML
// tree together: every field appears at its path, with a comment.
func TestExampleListsEveryField(t *testing.T) {
	// These listeners refuse TLS, so the example does not offer it.
	omitted := map[string]bool{"listen.public.tls": true, "listen.admin.tls": true}
	var doc yaml.Node
	if err := yaml.Unmarshal(Example(), &doc); err != nil {
		t.Fatal(err)
	}
	var walk func(typ reflect.Type, n *yaml.Node, path string)
	walk = func(typ reflect.Type, n *yaml.Node, path string) {
		if n.Kind != yaml.MappingNode {
			t.Errorf("example: %s is not a mapping", path)
			return
		}
		values := make(map[string]*yaml.Node)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			values[k.Value] = n.Content[i+1]
			if strings.TrimSpace(k.HeadComment+k.LineComment+n.Content[i+1].LineComment) == "" {
				t.Errorf("example: %s has no comment", strings.TrimPrefix(path+"."+k.Value, "."))
			}
		}
		var fields func(typ reflect.Type) []reflect.StructField
		fields = func(typ reflect.Type) []reflect.StructField {
			var out []reflect.StructField
			for f := range typ.Fields() {
				switch {
				case isInline(f):
					out = append(out, fields(f.Type)...)
				case yamlName(f) != "-":
					out = append(out, f)
				}
			}
			return out
		}
		for _, f := range fields(typ) {
			p := strings.TrimPrefix(path+"."+yamlName(f), ".")
			v, ok := values[yamlName(f)]
			if !ok {
				if !omitted[p] {
					t.Errorf("example: %s is missing", p)
				}
				continue
			}
			if f.Type.Kind() == reflect.Struct && f.Type != durationType {
				walk(f.Type, v, p)
			}
		}
	}
	walk(reflect.TypeFor[Config](), doc.Content[0], "")
}

func TestExampleReturnsACopy(t *testing.T) {
	b := Example()
	b[0] = 'X'
	if Example()[0] == 'X' {
		t.Error("Example shares its bytes with callers")
	}
}

// fieldByPath finds the field of c at a YAML path such as "listen.grpc.address".
func fieldByPath(c *Config, path string) (reflect.Value, bool) {
	v := reflect.ValueOf(c).Elem()
next:
	for name := range strings.SplitSeq(path, ".") {
		if v.Kind() != reflect.Struct {
			return reflect.Value{}, false
		}
		if f, ok := fieldByName(v, name); ok {
			v = f
			continue next
		}
		return reflect.Value{}, false
	}
	return v, true
}

// fieldByName finds the field of struct v whose yaml name is name, looking
// into inline structs.
func fieldByName(v reflect.Value, name string) (reflect.Value, bool) {
	for i := range v.NumField() {
		f := v.Type().Field(i)
		if isInline(f) {
			if fv, ok := fieldByName(v.Field(i), name); ok {
				return fv, true
			}
			continue
		}
		if yamlName(f) == name {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}
