package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/silentauth/silentauth/authz/config"
	"github.com/silentauth/silentauth/authz/store"
	"github.com/silentauth/silentauth/authz/store/memstore"
	"github.com/silentauth/silentauth/authz/store/redisstore"
	internalhealth "github.com/silentauth/silentauth/internal/health"
)

// storeProbeInterval is how often the store's health is probed for the
// verbose health view and the silentauth_store_up metric.
const storeProbeInterval = 5 * time.Second

// openStore opens the configured store and registers its informational
// health check and metric. Readiness is never tied to the store: requests
// with valid access tokens pass without it. The returned func closes it.
func openStore(ctx context.Context, cfg config.Completed, e *env) (store.Store, func(), error) {
	log, checks := e.log, e.checks
	if !cfg.Redis {
		checks.Add("store", false, func() internalhealth.Status {
			return internalhealth.Status{OK: true, Message: "memory (one replica; sessions are lost on restart)"}
		})
		return memstore.New(time.Now), func() {}, nil
	}
	rc := cfg.Store.Redis
	password := e.getenv("SILENTAUTH_REDIS_PASSWORD")
	if rc.PasswordFile != "" {
		b, err := os.ReadFile(rc.PasswordFile)
		if err != nil {
			return nil, nil, fmt.Errorf("store.redis.passwordFile: %w", err)
		}
		password = strings.TrimSpace(string(b))
	}
	tlsConf, err := redisTLS(rc.TLS)
	if err != nil {
		return nil, nil, err
	}
	redis.SetLogger(redisLogger{log.With("component", "redis")})
	o := rc.Options
	o.Password, o.TLS = password, tlsConf
	st, err := redisstore.New(o)
	if err != nil {
		return nil, nil, fmt.Errorf("store.redis: %w", err)
	}

	// Probe in the background: a health view must not wait on Redis.
	var status atomic.Pointer[internalhealth.Status]
	status.Store(&internalhealth.Status{Message: "not probed yet"})
	up := prometheus.NewGauge(prometheus.GaugeOpts{Name: "silentauth_store_up", Help: "1 when the last probe of the session store succeeded, else 0."})
	e.reg.MustRegister(up)
	probe := func() {
		pctx, cancel := context.WithTimeout(ctx, rc.DialTimeout+rc.ReadTimeout)
		defer cancel()
		start := time.Now()
		if err := st.Ping(pctx); err != nil {
			if prev := status.Load(); prev.OK {
				log.Error("session store unreachable; refreshes answer 503 and keep cookies, valid tokens still pass", "error", err)
			}
			status.Store(&internalhealth.Status{Message: "redis " + string(rc.Mode) + ": " + err.Error()})
			up.Set(0)
			return
		}
		if prev := status.Load(); !prev.OK && prev.Message != "not probed yet" {
			log.Info("session store reachable again")
		}
		status.Store(&internalhealth.Status{OK: true, Message: fmt.Sprintf("redis %s, ping %s", rc.Mode, time.Since(start).Round(time.Microsecond))})
		up.Set(1)
	}
	probe()
	go func() {
		t := time.NewTicker(storeProbeInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				probe()
			}
		}
	}()
	checks.Add("store", false, func() internalhealth.Status { return *status.Load() })
	return st, func() { st.Close() }, nil
}

// redisTLS builds the TLS configuration for Redis, or nil without TLS.
func redisTLS(t config.RedisTLS) (*tls.Config, error) {
	if !t.Enabled {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("store.redis.tls.caFile: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("store.redis.tls.caFile: no PEM certificate in %s", t.CAFile)
		}
	}
	if t.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("store.redis.tls: %w", err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c, nil
}

// redisLogger routes go-redis's own messages (failed dials, pool
// trouble) into the structured log at warn level.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, fmt.Sprintf(format, v...))
}
