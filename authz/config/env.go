package config

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// EnvVar documents one environment variable that ApplyEnv reads.
type EnvVar struct {
	// Name is the variable, e.g. "SILENTAUTH_LOG_LEVEL".
	Name string
	// Field is the YAML path of the setting it overrides, e.g. "log.level".
	Field string
	// Description is one line for help texts.
	Description string
}

// EnvVars lists, in a stable order, every variable ApplyEnv reads, for the
// README and --help. It is documentation: changing it changes nothing that
// ApplyEnv does.
var EnvVars = envVars()

// envBinding ties a documented variable to the field it sets.
type envBinding struct {
	EnvVar
	set func(c *Config, v string) error
}

// envBindings is the single source of both ApplyEnv and EnvVars. Keep it in
// the order of the table in the package documentation.
var envBindings = []envBinding{
	{EnvVar{"SILENTAUTH_LOG_LEVEL", "log.level", "debug, info, warn or error"},
		setString(func(c *Config) *string { return &c.Log.Level })},
	{EnvVar{"SILENTAUTH_LOG_FORMAT", "log.format", "json or text"},
		setString(func(c *Config) *string { return &c.Log.Format })},
	{EnvVar{"SILENTAUTH_GRPC_ADDRESS", "listen.grpc.address", "host:port of the ext_authz gRPC listener"},
		setString(func(c *Config) *string { return &c.Listen.GRPC.Address })},
	{EnvVar{"SILENTAUTH_PUBLIC_ADDRESS", "listen.public.address", "host:port of the JWKS listener"},
		setString(func(c *Config) *string { return &c.Listen.Public.Address })},
	{EnvVar{"SILENTAUTH_SESSION_API_ADDRESS", "listen.sessionAPI.address", "host:port of the session API listener"},
		setString(func(c *Config) *string { return &c.Listen.SessionAPI.Address })},
	{EnvVar{"SILENTAUTH_ADMIN_ADDRESS", "listen.admin.address", "host:port of the metrics and health listener"},
		setString(func(c *Config) *string { return &c.Listen.Admin.Address })},
	{EnvVar{"SILENTAUTH_KEYS_DIR", "keys.dir", "directory of PEM signing keys"},
		setString(func(c *Config) *string { return &c.Keys.Dir })},
	{EnvVar{"SILENTAUTH_KEYS_SECRET", "keys.secret.name", "Kubernetes Secret of signing keys"},
		setString(func(c *Config) *string { return &c.Keys.Secret.Name })},
	{EnvVar{"SILENTAUTH_KEYS_SECRET_NAMESPACE", "keys.secret.namespace", "namespace of that Secret (default: the pod's)"},
		setString(func(c *Config) *string { return &c.Keys.Secret.Namespace })},
	{EnvVar{"SILENTAUTH_ISSUER", "issuer", "iss of every access token"},
		setString(func(c *Config) *string { return &c.Issuer })},
	{EnvVar{"SILENTAUTH_AUDIENCE", "audience", "aud of every access token"},
		setString(func(c *Config) *string { return &c.Audience })},
	{EnvVar{"SILENTAUTH_ACCESS_TTL", "tokens.accessTTL", `access-token lifetime, a Go duration ("15m")`},
		setDuration(func(c *Config) *time.Duration { return &c.Tokens.AccessTTL })},
}

func envVars() []EnvVar {
	vs := make([]EnvVar, len(envBindings))
	for i, b := range envBindings {
		vs[i] = b.EnvVar
	}
	return vs
}

func setString(field func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error {
		*field(c) = v
		return nil
	}
}

func setDuration(field func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("%q is not a Go duration such as \"15m\" (%w)", v, err)
		}
		*field(c) = d
		return nil
	}
}

// ApplyEnv overrides c with the variables listed in EnvVars, read through
// getenv (os.Getenv in main, a map in tests; nil reads nothing). An empty
// variable is treated as unset. Values are trimmed but not validated, except
// that a value that cannot be parsed at all (a bad duration) is an error
// naming the variable; all such errors are returned together and the
// variables that parsed are still applied. Call Validate afterwards, or use
// Resolve.
func ApplyEnv(c *Config, getenv func(string) string) error {
	if getenv == nil {
		return nil
	}
	var errs []error
	for _, b := range envBindings {
		v := strings.TrimSpace(getenv(b.Name))
		if v == "" {
			continue
		}
		if err := b.set(c, v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", b.Name, err))
		}
	}
	return errors.Join(errs...)
}
