package token

import (
	"errors"
	"fmt"
	"time"

	"github.com/silentauth/silentauth/authz/keys"
)

// Settings are the access tokens' own configuration, the YAML section
// tokens (beside the engine's refreshBefore). DefaultSettings gives every
// default; Validate states every bound.
type Settings struct {
	// AccessTTL is the access-token lifetime. Default 15m.
	AccessTTL time.Duration `yaml:"accessTTL"`
	// Leeway is the clock skew tolerated on exp, nbf and iat. Default 30s.
	Leeway time.Duration `yaml:"leeway"`
	// MaxBytes caps a token's size before any parsing. Default 8192.
	MaxBytes int `yaml:"maxBytes"`
	// CacheSize bounds the verified-token cache (entries). Default 10000.
	CacheSize int `yaml:"cacheSize"`
}

// Bounds Validate enforces.
const (
	// MaxAccessTTL keeps access tokens short-lived; it is far under the
	// 400 days browsers cap a cookie's Max-Age at.
	MaxAccessTTL  = 24 * time.Hour
	maxLeeway     = 5 * time.Minute
	minTokenBytes = 1024
	maxTokenBytes = 65536
	maxCacheSize  = 10_000_000
)

// DefaultSettings returns the defaults named on each field.
func DefaultSettings() Settings {
	return Settings{AccessTTL: 15 * time.Minute, Leeway: 30 * time.Second, MaxBytes: defaultMaxTokenBytes, CacheSize: defaultCacheSize}
}

// Validate reports every setting out of bounds, each prefixed with path
// and its YAML name.
func (s Settings) Validate(path string) error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", path, field, fmt.Sprintf(format, args...)))
	}
	switch {
	case s.AccessTTL <= 0:
		add("accessTTL", "must be positive (got %v)", s.AccessTTL)
	case s.AccessTTL > MaxAccessTTL:
		add("accessTTL", "must be at most %v (got %v)", MaxAccessTTL, s.AccessTTL)
	}
	switch {
	case s.Leeway < 0:
		add("leeway", "must not be negative (got %v)", s.Leeway)
	case s.Leeway > maxLeeway:
		add("leeway", "must be at most %v (got %v)", maxLeeway, s.Leeway)
	}
	if s.MaxBytes < minTokenBytes || s.MaxBytes > maxTokenBytes {
		add("maxBytes", "must be from %d to %d (got %d)", minTokenBytes, maxTokenBytes, s.MaxBytes)
	}
	if s.CacheSize < 1 || s.CacheSize > maxCacheSize {
		add("cacheSize", "must be from 1 to %d (got %d)", maxCacheSize, s.CacheSize)
	}
	return errors.Join(errs...)
}

// Lifecycle is what the keys' lifecycle needs of these settings: a key
// stays published while tokens it signed can still be presented.
func (s Settings) Lifecycle() keys.Lifecycle {
	return keys.Lifecycle{AccessTTL: s.AccessTTL, Leeway: s.Leeway}
}
