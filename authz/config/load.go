package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

// MaxFileSize bounds a configuration file (1 MiB); a larger one is refused
// before it is parsed, so a wrong path (a log, a device) fails fast.
const MaxFileSize = 1 << 20

// Load reads the YAML file at path on top of Default and returns the result
// without validating it: the environment and flags may still change it (see
// Resolve). The file must hold at most one YAML document and at most
// MaxFileSize bytes; an empty file yields Default. Unknown fields and
// repeated keys are errors naming the line, as are values of the wrong type
// (durations are written "15m", not 900).
func Load(path string) (Config, error) {
	c := Default()
	if err := loadInto(&c, path); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Resolve builds the configuration the process runs with: base (Default or
// Development), then the file at path (none when path is ""), then the
// environment read through getenv, then the flags set in o (which may be
// nil). It validates the result and returns every problem at once. Outside
// Development it also requires a session-API credential: one of
// sessionAPI.tokenFile, the SILENTAUTH_API_TOKEN variable (which Validate
// cannot see) or sessionAPI.serviceAccounts.
func Resolve(base Config, path string, getenv func(string) string, o *Overrides) (Config, error) {
	c := base.clone()
	if path != "" {
		if err := loadInto(&c, path); err != nil {
			return Config{}, err
		}
	}
	if err := ApplyEnv(&c, getenv); err != nil {
		return Config{}, fmt.Errorf("config: environment: %w", err)
	}
	o.Apply(&c)
	errs := []error{c.Validate()}
	if !c.Development && c.SessionAPI.TokenFile == "" && len(c.SessionAPI.ServiceAccounts) == 0 &&
		(getenv == nil || strings.TrimSpace(getenv("SILENTAUTH_API_TOKEN")) == "") {
		errs = append(errs, errors.New("sessionAPI.tokenFile: required outside development unless SILENTAUTH_API_TOKEN or sessionAPI.serviceAccounts is set"))
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	return c, nil
}

// loadInto decodes the file at path over c. On error c may be partly
// changed; callers discard it.
func loadInto(c *Config, path string) error {
	data, err := readFile(path)
	if err != nil {
		return err
	}
	if err := decode(c, data); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
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

// decode strictly decodes one YAML document over c. Fields absent from the
// document keep their value in c.
func decode(c *Config, data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	switch err := dec.Decode(c); {
	case errors.Is(err, io.EOF):
		return nil // empty, or only comments: defaults
	case err != nil:
		return withDurationHint(err)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return err
	default:
		return fmt.Errorf("line %d: a second YAML document; the file must hold exactly one", next.Line)
	}
	// "publicPaths: []" and an absent publicPaths mean the same: none.
	if len(c.Policy.PublicPaths) == 0 {
		c.Policy.PublicPaths = nil
	}
	if len(c.Policy.TrustedOrigins) == 0 {
		c.Policy.TrustedOrigins = nil
	}
	if len(c.Policy.ClaimHeaders) == 0 {
		c.Policy.ClaimHeaders = nil
	}
	if len(c.Policy.RequiredClaims) == 0 {
		c.Policy.RequiredClaims = nil
	}
	if len(c.Policy.AcceptSessionsFrom) == 0 {
		c.Policy.AcceptSessionsFrom = nil
	}
	if len(c.Policies) == 0 {
		c.Policies = nil
	}
	if len(c.SessionAPI.ServiceAccounts) == 0 {
		c.SessionAPI.ServiceAccounts = nil
	}
	if len(c.Store.Redis.Addrs) == 0 {
		c.Store.Redis.Addrs = nil
	}
	if len(c.HTTPAuthz.TrustedProxies) == 0 {
		c.HTTPAuthz.TrustedProxies = nil
	}
	return nil
}

// withDurationHint adds a reminder of the duration syntax when the YAML
// library refused a value for a time.Duration field. The hint is cosmetic;
// the error is returned either way.
func withDurationHint(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		for _, e := range te.Errors {
			if strings.Contains(e, "time.Duration") {
				return fmt.Errorf(`%w (durations are written like "30s", "15m" or "720h")`, err)
			}
		}
	}
	return err
}
