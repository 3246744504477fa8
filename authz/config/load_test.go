package config

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		content string
		check   func(*Config) // nil: expect Default
		wantErr string        // substring; "" means success
	}{
		{"empty", "", nil, ""},
		{"only comments", "# nothing here\n", nil, ""},
		{"null document", "~\n", nil, ""},
		{"explicit document", "---\nissuer: a\n...\n", func(c *Config) { c.Issuer = "a" }, ""},
		{"some fields", "issuer: a\ntokens:\n  accessTTL: 5m\n", func(c *Config) { c.Issuer = "a"; c.Tokens.AccessTTL = 5 * time.Minute }, ""},
		{"empty value keeps default", "issuer:\ntokens:\n", nil, ""},
		{"empty lists are nil", "policy:\n  publicPaths: []\n  claimHeaders: {}\n  trustedOrigins: []\n", nil, ""},
		{"lists", "policy:\n  publicPaths: [/a, /b/]\n", func(c *Config) { c.Policy.PublicPaths = []string{"/a", "/b/"} }, ""},
		{"claim headers", "policy:\n  claimHeaders:\n    x-user: sub\n", func(c *Config) { c.Policy.ClaimHeaders = map[string]string{"x-user": "sub"} }, ""},
		{"empty serviceAccounts is nil", "sessionAPI:\n  serviceAccounts: []\n", nil, ""},
		{"key Secret", "keys:\n  secret: {name: k, namespace: auth}\n  kubeconfig: /kc\n", func(c *Config) { c.Keys.Secret = SecretRef{Name: "k", Namespace: "auth"}; c.Keys.Kubeconfig = "/kc" }, ""},
		{"serviceAccounts", "sessionAPI:\n  serviceAccounts: [a/b, c/d]\n  audience: x\n", func(c *Config) { c.SessionAPI.ServiceAccounts = []string{"a/b", "c/d"}; c.SessionAPI.Audience = "x" }, ""},
		{"long durations", "sessions:\n  idleTTL: 1h30m\n", func(c *Config) { c.Sessions.Idle = 90 * time.Minute }, ""},
		{"unknown top field", "isuer: a\n", nil, "isuer: unknown field (line 1 of config file "},
		{"unknown nested field", "tokens:\n  accessTTL: 5m\n  acessTTL: 5m\n", nil, "tokens.acessTTL: unknown field (line 3 of"},
		{"unknown listener field", "listen:\n  grpc:\n    addr: :1\n", nil, "listen.grpc.addr: unknown field (line 3 of"},
		{"unknown field in a named policy", "policies:\n  a:\n    audiense: x\n", nil, "policies.a.audiense: unknown field (line 3 of"},
		{"unknown field through an alias", "policies:\n  a: &p {nope: 1}\n  b: *p\n", nil, "policies.a.nope: unknown field (line 2 of"},
		{"unknown field in another case", "tokens:\n  accessttl: 5m\n", nil, "tokens.accessttl: unknown field (line 2 of config file"},
		{"unknown field suggests its case", "tokens:\n  accessttl: 5m\n", nil, "did you mean accessTTL?"},
		{"map keys are not fields", "policy:\n  claimHeaders: {x-anything: sub}\n  requiredClaims: {any: [a]}\n", func(c *Config) {
			c.Policy.ClaimHeaders = map[string]string{"x-anything": "sub"}
			c.Policy.RequiredClaims = map[string][]string{"any": {"a"}}
		}, ""},
		{"repeated key", "issuer: a\nissuer: b\n", nil, `line 2: mapping key "issuer" already defined at line 1`},
		{"bad duration", "tokens:\n  accessTTL: 15 minutes\n", nil, "line 2: cannot unmarshal !!str `15 minutes` into time.Duration"},
		{"bare number duration", "tokens:\n  accessTTL: 900\n", nil, `durations are written like "30s", "15m" or "720h"`},
		{"wrong type", "tokens:\n  maxBytes: big\n", nil, "line 2: cannot unmarshal"},
		{"list for string", "issuer: [a]\n", nil, "line 1: cannot unmarshal !!seq"},
		{"not a mapping", "just a string\n", nil, "cannot unmarshal !!str"},
		{"syntax error", "issuer: [a\n", nil, "yaml:"},
		{"multi document", "issuer: a\n---\nissuer: b\n", nil, "line 2: a second YAML document"},
		{"multi document empty second", "issuer: a\n---\n", nil, "a second YAML document"},
		{"second document broken", "issuer: a\n---\n[x\n", nil, "yaml:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, tt.content)
			got, err := Load(path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Load() error = %v, want %q", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), path) {
					t.Errorf("error %q does not name the file", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load() = %v", err)
			}
			want := Default()
			if tt.check != nil {
				tt.check(&want)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Load() =\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

func TestLoadFileErrors(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, bytes.Repeat([]byte("# padding\n"), MaxFileSize/10+1), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.yaml")
	_, err := Load(missing)
	if err == nil || !errors.Is(err, fs.ErrNotExist) || err.Error() != "config file "+missing+": no such file or directory" {
		t.Errorf("Load(missing) = %v", err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("Load(dir) = %v", err)
	}
	if _, err := Load(big); err == nil || !strings.Contains(err.Error(), "larger than 1048576 bytes") {
		t.Errorf("Load(big) = %v", err)
	}
	// Exactly MaxFileSize is fine.
	exact := filepath.Join(dir, "exact.yaml")
	if err := os.WriteFile(exact, bytes.Repeat([]byte("#"), MaxFileSize), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(exact); err != nil {
		t.Errorf("Load(exact) = %v", err)
	}
}

// maxFuzzConfig bounds the files FuzzDecode reads. yaml.v3 takes about a
// microsecond a byte, more with comments, and the fuzzer minimises every
// input it finds interesting: a seed of several KiB (once the whole
// Example) kept it minimising for minutes at a few executions a second.
// Every rule of decode and Validate fits in far less.
const maxFuzzConfig = 2048

// FuzzDecode: no file panics decode, Validate or Warnings; Validate and
// Warnings change nothing; Normalized is idempotent.
func FuzzDecode(f *testing.F) {
	for _, s := range exampleSections(f) {
		f.Add(s)
	}
	for _, s := range []string{
		"a: &a [*a, *a]\n",
		"issuer: a\n---\nissuer: b\n",
		"isuer: a\ntokens: {accessTTL: 900, acessTTL: 1m}\n",
		"issuer: a\nissuer: b\n",
		"policy: {claimHeaders: {X-User: sub, x-user: email}, publicPaths: [/, /auth/]}\n",
		"policies: {a: &p {publicPaths: [/a/]}, b: *p, c: {nope: 1}}\n",
		"httpAuthz: {trustedProxies: [0.0.0.0/1, 128.0.0.0/1, '::/0']}\n",
		"sessions: {absoluteTTL: 9624h, idleTTL: 9601h}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxFuzzConfig {
			return
		}
		c := Default()
		if _, err := decode(&c, data, "fuzz"); err != nil {
			return
		}
		before := c.clone()
		_ = c.Validate()
		_ = c.Warnings()
		if !reflect.DeepEqual(c, before) {
			t.Fatalf("Validate or Warnings changed the config")
		}
		if n := c.Normalized(); !reflect.DeepEqual(n.Normalized(), n) {
			t.Fatalf("Normalized is not idempotent")
		}
	})
}

// exampleSections returns each top-level section of Example as a small
// file of its own, without comments: seeds that reach every field without
// the cost of the whole commented file.
func exampleSections(tb testing.TB) [][]byte {
	tb.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal(Example(), &doc); err != nil {
		tb.Fatal(err)
	}
	var strip func(n *yaml.Node)
	strip = func(n *yaml.Node) {
		n.HeadComment, n.LineComment, n.FootComment = "", "", ""
		for _, k := range n.Content {
			strip(k)
		}
	}
	root := doc.Content[0]
	var out [][]byte
	for i := 0; i+1 < len(root.Content); i += 2 {
		section := &yaml.Node{Kind: yaml.MappingNode, Content: root.Content[i : i+2]}
		strip(section)
		b, err := yaml.Marshal(section)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func TestApplyEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		check   func(*Config)
		wantErr string
	}{
		{"none", nil, func(*Config) {}, ""},
		{"empty is unset", map[string]string{"SILENTAUTH_ISSUER": "", "SILENTAUTH_ACCESS_TTL": " "}, func(*Config) {}, ""},
		{"level", map[string]string{"SILENTAUTH_LOG_LEVEL": "debug"}, func(c *Config) { c.Log.Level = "debug" }, ""},
		{"trimmed", map[string]string{"SILENTAUTH_KEYS_DIR": " /keys\n"}, func(c *Config) { c.Keys.Dir = "/keys" }, ""},
		{"addresses", map[string]string{"SILENTAUTH_GRPC_ADDRESS": ":1", "SILENTAUTH_ADMIN_ADDRESS": ":2"}, func(c *Config) { c.Listen.GRPC.Address = ":1"; c.Listen.Admin.Address = ":2" }, ""},
		{"ttl", map[string]string{"SILENTAUTH_ACCESS_TTL": "5m"}, func(c *Config) { c.Tokens.AccessTTL = 5 * time.Minute }, ""},
		{"bad ttl", map[string]string{"SILENTAUTH_ACCESS_TTL": "15"}, nil, `SILENTAUTH_ACCESS_TTL: "15" is not a Go duration`},
		{"unrelated", map[string]string{"SILENTAUTH_API_TOKEN": "secret", "SILENTAUTH_NOPE": "x"}, func(*Config) {}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			err := ApplyEnv(&c, mapEnv(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("ApplyEnv() = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ApplyEnv() = %v", err)
			}
			want := Default()
			tt.check(&want)
			if !reflect.DeepEqual(c, want) {
				t.Errorf("ApplyEnv() =\n%+v\nwant\n%+v", c, want)
			}
		})
	}
	c := Default()
	if err := ApplyEnv(&c, nil); err != nil || !reflect.DeepEqual(c, Default()) {
		t.Errorf("ApplyEnv(nil getenv) = %v, %+v", err, c)
	}
}

// TestEnvVars proves that each documented variable sets the field it names,
// and that the package documentation lists it.
func TestEnvVars(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	if len(EnvVars) != len(envBindings) {
		t.Fatalf("EnvVars has %d entries, ApplyEnv reads %d", len(EnvVars), len(envBindings))
	}
	for _, v := range EnvVars {
		if !regexp.MustCompile(`//\s+` + regexp.QuoteMeta(v.Name) + `\s+` + regexp.QuoteMeta(v.Field) + `\s`).Match(doc) {
			t.Errorf("doc.go does not list %s (%s)", v.Name, v.Field)
		}
		c := Default()
		field, ok := fieldByPath(&c, v.Field)
		if !ok {
			t.Errorf("%s: no field %s", v.Name, v.Field)
			continue
		}
		value := "x.example:1234"
		if field.Type() == durationType {
			value = "7m"
		}
		before := field.Interface()
		if err := ApplyEnv(&c, mapEnv(map[string]string{v.Name: value})); err != nil {
			t.Errorf("%s=%s: %v", v.Name, value, err)
		}
		if reflect.DeepEqual(field.Interface(), before) {
			t.Errorf("%s=%s did not change %s", v.Name, value, v.Field)
		}
		// Nothing else changed.
		field.Set(reflect.ValueOf(before))
		if !reflect.DeepEqual(c, Default()) {
			t.Errorf("%s changed more than %s", v.Name, v.Field)
		}
	}
}

func TestFlags(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		check func(*Config)
	}{
		{"none", nil, func(*Config) {}},
		{"grpc", []string{"--grpc-address", ":1"}, func(c *Config) { c.Listen.GRPC.Address = ":1" }},
		{"all", []string{"-grpc-address=:1", "-public-address=:2", "-session-api-address=:3", "-admin-address=:4", "-log-level=debug", "-keys-dir=/k"},
			func(c *Config) {
				c.Listen.GRPC.Address, c.Listen.Public.Address, c.Listen.SessionAPI.Address, c.Listen.Admin.Address = ":1", ":2", ":3", ":4"
				c.Log.Level, c.Keys.Dir = "debug", "/k"
			}},
		{"explicit empty", []string{"--log-level="}, func(c *Config) { c.Log.Level = "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("silentauth", flag.ContinueOnError)
			o := RegisterFlags(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			c := Default()
			o.Apply(&c)
			want := Default()
			tt.check(&want)
			if !reflect.DeepEqual(c, want) {
				t.Errorf("Apply() =\n%+v\nwant\n%+v", c, want)
			}
		})
	}
	var nilOverrides *Overrides
	c := Default()
	nilOverrides.Apply(&c)
	if !reflect.DeepEqual(c, Default()) {
		t.Error("nil Overrides changed the config")
	}
}

func TestFlagUsageShowsNoDefaults(t *testing.T) {
	fs := flag.NewFlagSet("silentauth", flag.ContinueOnError)
	RegisterFlags(fs)
	var out strings.Builder
	fs.SetOutput(&out)
	fs.PrintDefaults()
	if strings.Contains(out.String(), "(default") {
		t.Errorf("usage shows defaults that the file may override:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "overrides listen.grpc.address") {
		t.Errorf("usage does not name the field:\n%s", out.String())
	}
}

// TestResolvePrecedence: defaults < file < environment < flags.
func TestResolvePrecedence(t *testing.T) {
	path := writeFile(t, strings.Join([]string{
		"keys: {dir: /file/keys}",
		"log: {level: warn, format: text}",
		"listen:",
		"  grpc: {address: ':7001'}",
		"  public: {address: ':7002'}",
		"  sessionAPI: {address: ':7003'}",
		"issuer: file-issuer",
	}, "\n"))
	env := mapEnv(map[string]string{
		"SILENTAUTH_GRPC_ADDRESS":   ":8001",
		"SILENTAUTH_PUBLIC_ADDRESS": ":8002",
		"SILENTAUTH_LOG_LEVEL":      "ERROR",
		"SILENTAUTH_API_TOKEN":      "secret",
	})
	fs := flag.NewFlagSet("silentauth", flag.ContinueOnError)
	o := RegisterFlags(fs)
	if err := fs.Parse([]string{"--grpc-address=:9101", "--log-level=debug"}); err != nil {
		t.Fatal(err)
	}
	got, err := Resolve(Default(), path, env, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ field, got, want string }{
		{"listen.grpc.address", got.Listen.GRPC.Address, ":9101"},             // flag over env over file
		{"listen.public.address", got.Listen.Public.Address, ":8002"},         // env over file
		{"listen.sessionAPI.address", got.Listen.SessionAPI.Address, ":7003"}, // file over default
		{"listen.admin.address", got.Listen.Admin.Address, ":9090"},           // default
		{"log.level", got.Log.Level, "debug"},                                 // flag over env over file
		{"log.format", got.Log.Format, "text"},                                // file
		{"issuer", got.Issuer, "file-issuer"},                                 // file
		{"keys.dir", got.Keys.Dir, "/file/keys"},                              // file
	} {
		if tt.got != tt.want {
			t.Errorf("%s = %q, want %q", tt.field, tt.got, tt.want)
		}
	}
}

func TestResolve(t *testing.T) {
	token := mapEnv(map[string]string{"SILENTAUTH_API_TOKEN": "secret", "SILENTAUTH_KEYS_DIR": "/keys"})
	keysOnly := mapEnv(map[string]string{"SILENTAUTH_KEYS_DIR": "/keys"})
	tokenFile := writeFile(t, "keys: {dir: /keys}\nsessionAPI: {tokenFile: /run/token}\n")
	serviceAccounts := writeFile(t, "keys: {secret: {name: silentauth-keys}}\nsessionAPI: {serviceAccounts: [shop/frontend]}\n")
	secretEnv := mapEnv(map[string]string{"SILENTAUTH_API_TOKEN": "s", "SILENTAUTH_KEYS_SECRET": "silentauth-keys", "SILENTAUTH_KEYS_SECRET_NAMESPACE": "auth"})
	tests := []struct {
		name    string
		base    Config
		path    string
		getenv  func(string) string
		wantErr string
	}{
		{"defaults and env", Default(), "", token, ""},
		{"token file", Default(), tokenFile, nil, ""},
		{"development needs nothing", Development(), "", nil, ""},
		{"no token", Default(), "", keysOnly, "sessionAPI.tokenFile: required outside development unless SILENTAUTH_API_TOKEN, sessionAPI.serviceAccounts or oidc.issuerURL is set"},
		{"serviceAccounts instead of a token", Default(), serviceAccounts, nil, ""},
		{"provider login instead of a token", Default(), writeFile(t, "oidc: {issuerURL: https://idp.example, clientID: app}\n"), keysOnly, ""},
		{"key Secret from the environment", Default(), "", secretEnv, ""},
		{"key Secret and keys.dir", Default(), "", mapEnv(map[string]string{"SILENTAUTH_API_TOKEN": "s", "SILENTAUTH_KEYS_DIR": "/k", "SILENTAUTH_KEYS_SECRET": "keys"}), "keys.secret.name: set together with keys.dir"},
		{"no keys, no token", Default(), "", nil, "keys.dir: required outside development"},
		{"missing file", Default(), "/nonexistent/silentauth.yaml", token, "no such file"},
		{"bad env", Default(), "", mapEnv(map[string]string{"SILENTAUTH_ACCESS_TTL": "x"}), "config: environment: SILENTAUTH_ACCESS_TTL"},
		{"bad env beside other problems", Default(), "", mapEnv(map[string]string{"SILENTAUTH_ACCESS_TTL": "x", "SILENTAUTH_LOG_LEVEL": "loud"}), `log.level: must be one of debug, info, warn, error (got "loud")`},
		{"syntax error stops at the file", Default(), writeFile(t, "issuer: [a\nlog: {level: loud}\n"), token, "yaml:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Resolve(tt.base, tt.path, tt.getenv, nil)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Resolve() = %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Resolve() = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// A strict decoder stops at the first unknown field; Resolve reports it
// beside every other problem of the file, the environment and Validate.
func TestResolveReportsUnknownFieldsWithEveryOtherProblem(t *testing.T) {
	path := writeFile(t, `
isuer: a
tokens:
  accessTTL: 900
  refreshBefore: 10m
cookies:
  sameSite: Lux
policies:
  admin:
    loginUrl: /login
`)
	env := mapEnv(map[string]string{"SILENTAUTH_API_TOKEN": "s", "SILENTAUTH_KEYS_DIR": "/keys", "SILENTAUTH_LOG_LEVEL": "loud"})
	_, err := Resolve(Default(), path, env, nil)
	if err == nil {
		t.Fatal("Resolve() = nil")
	}
	want := []string{
		"isuer: unknown field (line 2 of config file " + path + ")",
		"policies.admin.loginUrl: unknown field (line 10 of config file " + path + "); did you mean loginURL?",
		"config file " + path + ": line 4: cannot unmarshal !!int `900` into time.Duration",
		"tokens.refreshBefore: must be under half of tokens.accessTTL (15m0s)",
		`cookies.sameSite: must be one of Lax, Strict, None (got "Lux")`,
		`log.level: must be one of debug, info, warn, error (got "loud")`,
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Errorf("got %d problems, want %d:\n%v", len(lines), len(want), err)
	}
	for i, w := range want {
		if i < len(lines) && !strings.HasPrefix(lines[i], w) {
			t.Errorf("problem %d = %q\nwant prefix %q", i, lines[i], w)
		}
	}
}

func TestResolveDoesNotShareBase(t *testing.T) {
	base := valid()
	base.Policy.ClaimHeaders = map[string]string{"X-User": "sub"}
	path := writeFile(t, "policy:\n  claimHeaders: {x-email: email}\n")
	got, err := Resolve(base, path, mapEnv(map[string]string{"SILENTAUTH_API_TOKEN": "s"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(base.Policy.ClaimHeaders) != 1 || base.Policy.ClaimHeaders["X-User"] != "sub" {
		t.Errorf("Resolve changed its base: %v", base.Policy.ClaimHeaders)
	}
	if want := map[string]string{"x-user": "sub", "x-email": "email"}; !reflect.DeepEqual(got.Policy.ClaimHeaders, want) {
		t.Errorf("claimHeaders = %v, want %v", got.Policy.ClaimHeaders, want)
	}
}

func TestLogValue(t *testing.T) {
	c := valid()
	c.SessionAPI.TokenFile = "/run/secrets/very-private-path"
	c.Policy.LoginURL = "https://u:pw@id.example/login?client_secret=shh#frag"
	c.Policy.PublicPaths = []string{"/healthz"}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "config", c)
	out := buf.String()
	for _, want := range []string{`"address":":9001"`, `"accessTTL":"15m0s"`, `"idleTTL":"720h0m0s"`, `"access":"__Host-sa-at"`,
		`"store":"memory"`, `"tokenFileSet":true`, `"loginURL":"https://id.example/login"`, `"publicPaths":1`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
	for _, secret := range []string{"very-private-path", "client_secret", "shh", "pw@", "frag"} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains %q:\n%s", secret, out)
		}
	}
	// A pointer logs the same.
	buf.Reset()
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "config", &c)
	if !strings.Contains(buf.String(), `"tokenFileSet":true`) {
		t.Errorf("*Config does not use LogValue: %s", buf.String())
	}
	slog.New(slog.NewTextHandler(io.Discard, nil)).Info("config", "config", Config{}) // zero value must not panic
}

func TestLogValueKeySource(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   []string
	}{
		{"dir", func(*Config) {}, []string{`"dir":"/etc/silentauth/keys"`, `"secret":""`, `"kubeconfigSet":false`}},
		{"Secret in the pod's namespace", fromSecret("keys", ""), []string{`"secret":"<pod>/keys"`}},
		{"Secret elsewhere", fromSecret("keys", "auth", func(c *Config) { c.Keys.Kubeconfig = "/home/me/private-kubeconfig" }), []string{`"secret":"auth/keys"`, `"kubeconfigSet":true`}},
		{"ServiceAccounts", func(c *Config) { c.SessionAPI.ServiceAccounts = []string{"shop/private-sa"} }, []string{`"serviceAccounts":1`, `"audience":"silentauth"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.mutate(&c)
			var buf bytes.Buffer
			slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "config", c)
			for _, want := range tt.want {
				if !strings.Contains(buf.String(), want) {
					t.Errorf("log lacks %s:\n%s", want, buf.String())
				}
			}
			for _, private := range []string{"private-kubeconfig", "private-sa"} {
				if strings.Contains(buf.String(), private) {
					t.Errorf("log contains %q", private)
				}
			}
		})
	}
}

func mapEnv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}
