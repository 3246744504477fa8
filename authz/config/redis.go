package config

import (
	"slices"
	"strconv"
	"strings"
	"time"
)

const storeRedis = "redis"

func defaultRedis() Redis {
	return Redis{
		Mode:         "standalone",
		KeyPrefix:    "silentauth:",
		DialTimeout:  2 * time.Second,
		ReadTimeout:  500 * time.Millisecond,
		WriteTimeout: 500 * time.Millisecond,
		MaxRetries:   2,
	}
}

var redisModes = []string{"standalone", "sentinel", "cluster"}

// validate reports the problems of a redis configuration in use.
func (r *Redis) validate(p *problems) {
	const at = "store.redis."
	switch {
	case len(r.Addrs) == 0:
		p.add(at+"addrs", "required with store.backend redis")
	case r.Mode == "standalone" && len(r.Addrs) != 1:
		p.add(at+"addrs", "standalone mode takes exactly one address (got %d)", len(r.Addrs))
	}
	for i, a := range r.Addrs {
		checkAddress(p, at+"addrs["+strconv.Itoa(i)+"]", a)
	}
	if !slices.Contains(redisModes, r.Mode) {
		p.add(at+"mode", "must be one of %s (got %q)", strings.Join(redisModes, ", "), r.Mode)
	}
	if r.Mode == "sentinel" && r.MasterName == "" {
		p.add(at+"masterName", "required in sentinel mode")
	}
	if r.Mode != "sentinel" && r.MasterName != "" {
		p.add(at+"masterName", "only used in sentinel mode")
	}
	if r.DB < 0 || r.DB > 15 {
		p.add(at+"db", "must be from 0 to 15 (got %d)", r.DB)
	}
	if r.Mode == "cluster" && r.DB != 0 {
		p.add(at+"db", "must be 0 in cluster mode (got %d)", r.DB)
	}
	if (r.TLS.CertFile == "") != (r.TLS.KeyFile == "") {
		p.add(at+"tls", "certFile and keyFile go together")
	}
	if !r.TLS.Enabled && (r.TLS.CAFile != "" || r.TLS.CertFile != "" || r.TLS.ServerName != "") {
		p.add(at+"tls.enabled", "must be true when other tls fields are set")
	}
	if r.KeyPrefix == "" || strings.ContainsAny(r.KeyPrefix, "{} \t\r\n") {
		p.add(at+"keyPrefix", "must be non-empty without braces or white space (got %q)", r.KeyPrefix)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"dialTimeout", r.DialTimeout}, {"readTimeout", r.ReadTimeout}, {"writeTimeout", r.WriteTimeout}} {
		if d.v <= 0 || d.v > time.Minute {
			p.add(at+d.name, "must be positive and at most 1m (got %v)", d.v)
		}
	}
	if r.PoolSize < 0 || r.PoolSize > 10000 {
		p.add(at+"poolSize", "must be from 0 to 10000 (got %d)", r.PoolSize)
	}
	if r.MaxRetries < 0 || r.MaxRetries > 10 {
		p.add(at+"maxRetries", "must be from 0 to 10 (got %d)", r.MaxRetries)
	}
}
