package redisstore

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Mode says how the Redis deployment is reached. It is always given, never
// guessed from the number of addresses (go-redis's NewUniversalClient would
// take two standalone addresses for a cluster).
type Mode string

const (
	Standalone Mode = "standalone" // one server (or a proxy in front of several)
	Sentinel   Mode = "sentinel"   // Addrs are sentinels; they name the master of MasterName
	Cluster    Mode = "cluster"    // Addrs are seed nodes of a Redis Cluster
)

// Defaults of Options.
const (
	DefaultKeyPrefix    = "silentauth:"
	DefaultDialTimeout  = 2 * time.Second
	DefaultReadTimeout  = 500 * time.Millisecond
	DefaultWriteTimeout = 500 * time.Millisecond
	DefaultMaxRetries   = 2
	maxMaxRetries       = 10
)

// clientName is the connections' CLIENT SETNAME, so operators find them in
// CLIENT LIST.
const clientName = "silentauth"

// Options configure New. The zero value is not valid: Mode and Addrs are
// required. The yaml names are those of the configuration file's
// store.redis section; Password, TLS and Now never come from YAML.
type Options struct {
	// Addrs are host:port pairs: the server (Standalone, exactly one), the
	// sentinels (Sentinel), or seed nodes (Cluster, one or more). Default
	// none; required.
	Addrs []string `yaml:"addrs"`
	// Mode is Standalone, Sentinel or Cluster; required in Options,
	// Default "standalone" in DefaultOptions.
	Mode Mode `yaml:"mode"`
	// MasterName is the sentinel master's name; required with Sentinel,
	// refused otherwise. The sentinels themselves are reached without
	// credentials. Default "".
	MasterName string `yaml:"masterName"`
	// Username for Redis ACLs (AUTH username password). Default "" (the
	// user named "default").
	Username string `yaml:"username"`
	// Password (AUTH). The caller reads it from a file or the environment;
	// the store only uses the value and never logs it (Options redacts it
	// in String, GoString and LogValue). Empty: no AUTH.
	Password string `yaml:"-"`
	// DB selects a database from 0 to 15 (Standalone, Sentinel). Default 0.
	// A Cluster has only database 0.
	DB int `yaml:"db"`
	// TLS, when set, secures every connection (ServerName, RootCAs and
	// client certificates are set there; the store does not modify it);
	// nil: plain TCP.
	TLS *tls.Config `yaml:"-"`
	// KeyPrefix starts every key. Default "silentauth:". It must not
	// contain '{' or '}': Redis Cluster would take a hash tag from the
	// prefix and put every family into one slot.
	KeyPrefix string `yaml:"keyPrefix"`
	// DialTimeout bounds one connection attempt, at most 1m. Default 2s.
	DialTimeout time.Duration `yaml:"dialTimeout"`
	// ReadTimeout bounds the wait for a reply, at most 1m. Default 500ms.
	// A Redis slower than this answers as if it were down (refreshes
	// answer 503, valid tokens still pass).
	ReadTimeout time.Duration `yaml:"readTimeout"`
	// WriteTimeout bounds writing a command, at most 1m. Default 500ms.
	WriteTimeout time.Duration `yaml:"writeTimeout"`
	// PoolSize caps connections per node, at most 10000; 0 lets go-redis
	// choose (10 per GOMAXPROCS). Default 0.
	PoolSize int `yaml:"poolSize"`
	// MaxRetries is how many times go-redis retries a command after a
	// network error, timeout, LOADING, CLUSTERDOWN, TRYAGAIN and the like,
	// with backoff (8 ms to 512 ms); 0: 2, negative: none, at most 10. A
	// call therefore fails within about (MaxRetries+1) × (DialTimeout or
	// ReadTimeout + WriteTimeout) plus backoff, or earlier when its context
	// ends. Default 2.
	MaxRetries int `yaml:"maxRetries"`
	// Now is the store's clock (expiry decisions); default time.Now.
	Now func() time.Time `yaml:"-"`
}

// Limits enforced by Validate.
const (
	maxDB       = 15 // Redis's default "databases 16"
	maxTimeout  = time.Minute
	maxPoolSize = 10000
)

// DefaultOptions returns Standalone mode with every default set
// explicitly; Addrs is still required.
func DefaultOptions() Options {
	return Options{
		Mode:         Standalone,
		KeyPrefix:    DefaultKeyPrefix,
		DialTimeout:  DefaultDialTimeout,
		ReadTimeout:  DefaultReadTimeout,
		WriteTimeout: DefaultWriteTimeout,
		MaxRetries:   DefaultMaxRetries,
	}
}

// Validate reports every problem of o at once (errors.Join), each prefixed
// by its field's YAML path under path (as "store.redis.addrs"). Zero
// fields that have a default are accepted: New fills them. It does not
// change o.
func (o Options) Validate(path string) error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", path, field, fmt.Sprintf(format, args...)))
	}
	switch {
	case len(o.Addrs) == 0:
		add("addrs", "required")
	case o.Mode == Standalone && len(o.Addrs) != 1:
		add("addrs", "standalone mode takes exactly one address (got %d)", len(o.Addrs))
	}
	for i, a := range o.Addrs {
		if msg := addressProblem(a); msg != "" {
			add("addrs["+strconv.Itoa(i)+"]", "%s", msg)
		}
	}
	if !slices.Contains(modes, o.Mode) {
		add("mode", "must be one of standalone, sentinel, cluster (got %q)", o.Mode)
	}
	switch {
	case o.Mode == Sentinel && o.MasterName == "":
		add("masterName", "required in sentinel mode")
	case o.Mode != Sentinel && o.MasterName != "":
		add("masterName", "only used in sentinel mode")
	}
	if o.DB < 0 || o.DB > maxDB {
		add("db", "must be from 0 to %d (got %d)", maxDB, o.DB)
	}
	if o.Mode == Cluster && o.DB != 0 {
		add("db", "must be 0 in cluster mode (got %d)", o.DB)
	}
	// A brace would let Redis Cluster take a hash tag from the prefix and
	// put every family into one slot.
	if strings.ContainsAny(o.KeyPrefix, "{} \t\r\n") {
		add("keyPrefix", "must be non-empty without braces or white space (got %q)", o.KeyPrefix)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"dialTimeout", o.DialTimeout}, {"readTimeout", o.ReadTimeout}, {"writeTimeout", o.WriteTimeout}} {
		if d.v < 0 || d.v > maxTimeout {
			add(d.name, "must be positive and at most %v (got %v)", maxTimeout, d.v)
		}
	}
	if o.PoolSize < 0 || o.PoolSize > maxPoolSize {
		add("poolSize", "must be from 0 to %d (got %d)", maxPoolSize, o.PoolSize)
	}
	if o.MaxRetries > maxMaxRetries {
		add("maxRetries", "must be at most %d (got %d)", maxMaxRetries, o.MaxRetries)
	}
	return errors.Join(errs...)
}

var modes = []Mode{Standalone, Sentinel, Cluster}

// addressProblem describes why addr is not host:port with a numeric port,
// or returns "".
func addressProblem(addr string) string {
	if addr == "" {
		return `must not be empty (host:port, e.g. ":9001")`
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Sprintf("must be host:port (%v)", err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Sprintf("port %q must be a number from 0 to 65535", port)
	}
	return ""
}

// withDefaults fills the zero fields with their defaults.
func (o Options) withDefaults() Options {
	if o.KeyPrefix == "" {
		o.KeyPrefix = DefaultKeyPrefix
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = DefaultReadTimeout
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.MaxRetries == 0 {
		o.MaxRetries = DefaultMaxRetries
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// universal translates validated, defaulted options for go-redis.
func (o Options) universal() *redis.UniversalOptions {
	u := &redis.UniversalOptions{
		Addrs:        append([]string(nil), o.Addrs...),
		ClientName:   clientName,
		DB:           o.DB,
		Username:     o.Username,
		Password:     o.Password,
		TLSConfig:    o.TLS,
		DialTimeout:  o.DialTimeout,
		ReadTimeout:  o.ReadTimeout,
		WriteTimeout: o.WriteTimeout,
		// Socket waits follow ReadTimeout and WriteTimeout, not the
		// caller's deadline: a request that runs out of time must not cut
		// a new connection's handshake (HELLO, CLIENT SETNAME: round trips
		// of their own) and throw the connection away, or against a slow
		// Redis every request dials anew and none ever completes. Callers
		// stop waiting at their deadline anyway (package session returns
		// then, and starts no swap without time for it).
		ContextTimeoutEnabled: false,
		PoolSize:              o.PoolSize,
		MaxRetries:            o.MaxRetries, // negative: go-redis does not retry
		// One dial per attempt: the retries are MaxRetries', so the time a
		// call may take when Redis is down stays what MaxRetries says
		// (go-redis would otherwise dial 5 times per attempt).
		DialerRetries: 1,
		// CLIENT SETINFO and CLIENT MAINT_NOTIFICATIONS cost a round trip
		// per new connection (and Redis 7.0 refuses both); the client name
		// identifies us.
		DisableIdentity:          true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}
	switch o.Mode {
	case Sentinel:
		u.MasterName = o.MasterName
	case Cluster:
		u.IsClusterMode = true
	}
	return u
}

// String describes o with the password redacted.
func (o Options) String() string {
	return fmt.Sprintf("redisstore.Options{Mode: %q, Addrs: %q, MasterName: %q, Username: %q, Password: %s, DB: %d, TLS: %t, KeyPrefix: %q, DialTimeout: %s, ReadTimeout: %s, WriteTimeout: %s, PoolSize: %d, MaxRetries: %d}",
		o.Mode, o.Addrs, o.MasterName, o.Username, redacted(o.Password), o.DB, o.TLS != nil, o.KeyPrefix,
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.PoolSize, o.MaxRetries)
}

// GoString is String, so %#v does not print the password either.
func (o Options) GoString() string { return o.String() }

// LogValue implements slog.LogValuer, with the password redacted.
func (o Options) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("mode", string(o.Mode)),
		slog.Any("addrs", o.Addrs),
		slog.String("master_name", o.MasterName),
		slog.String("username", o.Username),
		slog.String("password", redacted(o.Password)),
		slog.Int("db", o.DB),
		slog.Bool("tls", o.TLS != nil),
		slog.String("key_prefix", o.KeyPrefix),
		slog.Duration("dial_timeout", o.DialTimeout),
		slog.Duration("read_timeout", o.ReadTimeout),
		slog.Duration("write_timeout", o.WriteTimeout),
		slog.Int("pool_size", o.PoolSize),
		slog.Int("max_retries", o.MaxRetries),
	)
}

func redacted(secret string) string {
	if secret == "" {
		return `""`
	}
	return "[redacted]"
}
