package redisstore

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
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
// required.
type Options struct {
	// Addrs are host:port pairs: the server (Standalone, exactly one), the
	// sentinels (Sentinel), or seed nodes (Cluster, one or more).
	Addrs []string
	// Mode is required: Standalone, Sentinel or Cluster.
	Mode Mode
	// MasterName is the sentinel master's name; required with Sentinel,
	// refused otherwise. The sentinels themselves are reached without
	// credentials.
	MasterName string
	// Username for Redis ACLs (AUTH username password); empty: "default".
	Username string
	// Password (AUTH). The caller reads it from a file or the environment;
	// the store only uses the value and never logs it (Options redacts it
	// in String, GoString and LogValue). Empty: no AUTH.
	Password string
	// DB selects a database (Standalone, Sentinel); default 0. A Cluster
	// has only database 0.
	DB int
	// TLS, when set, secures every connection (ServerName, RootCAs and
	// client certificates are set there; the store does not modify it);
	// nil: plain TCP.
	TLS *tls.Config
	// KeyPrefix starts every key; default "silentauth:". It must not
	// contain '{' or '}': Redis Cluster would take a hash tag from the
	// prefix and put every family into one slot.
	KeyPrefix string
	// DialTimeout bounds one connection attempt; default 2s.
	DialTimeout time.Duration
	// ReadTimeout bounds the wait for a reply; default 500ms. A Redis
	// slower than this answers as if it were down.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing a command; default 500ms.
	WriteTimeout time.Duration
	// PoolSize caps connections per node; 0: go-redis's default (10 per
	// GOMAXPROCS).
	PoolSize int
	// MaxRetries is how many times go-redis retries a command after a
	// network error, timeout, LOADING, CLUSTERDOWN, TRYAGAIN and the like,
	// with backoff (8 ms to 512 ms); 0: 2, negative: none, at most 10. A
	// call therefore fails within about (MaxRetries+1) × (DialTimeout or
	// ReadTimeout + WriteTimeout) plus backoff, or earlier when its context
	// ends.
	MaxRetries int
	// Now is the store's clock (expiry decisions); default time.Now.
	Now func() time.Time
}

// Validate reports every problem of o at once.
func (o Options) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf("redisstore: "+format, args...)) }
	switch o.Mode {
	case Standalone:
		if len(o.Addrs) != 1 {
			add("mode %q takes exactly one address, got %d", o.Mode, len(o.Addrs))
		}
	case Sentinel, Cluster:
		if len(o.Addrs) == 0 {
			add("mode %q needs at least one address", o.Mode)
		}
	case "":
		add("mode is required (%q, %q or %q)", Standalone, Sentinel, Cluster)
	default:
		add("unknown mode %q (want %q, %q or %q)", o.Mode, Standalone, Sentinel, Cluster)
	}
	for _, a := range o.Addrs {
		if strings.TrimSpace(a) == "" {
			add("empty address")
		}
	}
	switch {
	case o.Mode == Sentinel && o.MasterName == "":
		add("mode %q needs a master name", Sentinel)
	case o.Mode != Sentinel && o.MasterName != "":
		add("master name %q is only for mode %q", o.MasterName, Sentinel)
	}
	switch {
	case o.DB < 0:
		add("negative db %d", o.DB)
	case o.DB != 0 && o.Mode == Cluster:
		add("mode %q has only db 0, got %d", Cluster, o.DB)
	}
	if strings.ContainsAny(o.KeyPrefix, "{}") {
		add("key prefix %q contains '{' or '}' (a Cluster hash tag would put every key in one slot)", o.KeyPrefix)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"dial timeout", o.DialTimeout}, {"read timeout", o.ReadTimeout}, {"write timeout", o.WriteTimeout}} {
		if d.v < 0 {
			add("negative %s %s", d.name, d.v)
		}
	}
	if o.PoolSize < 0 {
		add("negative pool size %d", o.PoolSize)
	}
	if o.MaxRetries > maxMaxRetries {
		add("max retries %d above %d", o.MaxRetries, maxMaxRetries)
	}
	return errors.Join(errs...)
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
