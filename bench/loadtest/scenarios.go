package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/silentauth/silentauth/authz/keys"
	"github.com/silentauth/silentauth/authz/token"
)

// server configurations. Every one is silentauth's production defaults
// plus a key directory, two claim headers (so allowed answers copy claims
// as deployments do), and no drain on shutdown; the rest is noted.
const (
	cfgMain     = "main"       // ES256, memory store: the stateless scenarios
	cfgRefresh  = "refresh"    // as main, for the scenarios that rotate; restarted before each run
	cfgMissES   = "miss-es256" // ES256, verified-token cache of 100 entries
	cfgMissEd   = "miss-eddsa" // EdDSA, verified-token cache of 100 entries
	cfgQuiet    = "quiet"      // as main, log.level warn
	cfgRedis    = "redis"      // ES256, Redis store; restarted (and Redis emptied) before each run
	cfgBaseline = "baseline"   // the pass-through server (../baseline)

	// The pass-through server running golang-jwt's own jwt.Parse on each
	// bearer token, with a cache-miss server's key and data set: what Parse
	// costs inside a Check server under the same load (at the target
	// concurrency only), the bound of the cache-miss scenarios.
	cfgParseES = "jwt-parse-es256"
	cfgParseEd = "jwt-parse-eddsa"
)

// parseTargets names the Parse baseline of each cache-miss scenario.
var parseTargets = map[string]string{"miss-es256": cfgParseES, "miss-eddsa": cfgParseEd}

// missCacheSize is tokens.cacheSize of the cache-miss servers. Their data
// sets cycle through many more distinct tokens than that, so at most
// missCacheSize/len(set) of the Checks can hit the cache.
const missCacheSize = 100

// tconfig describes one server configuration.
type tconfig struct {
	name string
	alg  keys.Alg
	yaml string // extra YAML appended to the common part
}

var tconfigs = []tconfig{
	{cfgMain, keys.ES256, ""},
	{cfgRefresh, keys.ES256, ""},
	{cfgMissES, keys.ES256, fmt.Sprintf("tokens:\n  cacheSize: %d\n", missCacheSize)},
	{cfgMissEd, keys.EdDSA, fmt.Sprintf("tokens:\n  cacheSize: %d\n", missCacheSize)},
	{cfgQuiet, keys.ES256, "log:\n  level: warn\n"},
	{cfgRedis, keys.ES256, "store:\n  backend: redis\n  redis:\n    addrs: [\"REDIS_ADDR\"]\n"},
}

// tstate is one configuration's key, file and running target.
type tstate struct {
	tconfig
	cfgPath string
	keyFile string // the PEM private key in keys.dir
	key     *keys.Key
	expired *token.Minter // mints expired access tokens with key
	t       *server       // nil when skipped
	skipped string        // why t is nil
	// live: families prefilled when it starts (a prefilled
	// cache-hit server); prefilled: what the running server was
	// prefilled with, nil for none.
	live      int
	prefilled *prefilled
}

// writeConfig generates the key and writes the configuration file.
func (c tconfig) write(dir, redisAddr string) (*tstate, error) {
	keyDir, key, err := keyFiles(dir, c.alg)
	if err != nil {
		return nil, err
	}
	expired, err := expiredMinter(key)
	if err != nil {
		return nil, err
	}
	yaml := "keys:\n  dir: " + keyDir + "\n" +
		"policy:\n  claimHeaders:\n    x-user-id: sub\n    x-user-email: email\n" +
		"shutdown:\n  drain: 0s\n  timeout: 10s\n" +
		strings.ReplaceAll(c.yaml, "REDIS_ADDR", redisAddr)
	path := filepath.Join(dir, c.name+".yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		return nil, err
	}
	return &tstate{tconfig: c, cfgPath: path, keyFile: filepath.Join(keyDir, "signing.pem"), key: key, expired: expired}, nil
}

// scenario is one kind of load.
type scenario struct {
	name  string
	title string
	cfg   string // the server configuration it runs against
	// diagnostic scenarios explain a gap; they have no target of their own.
	diagnostic bool
	// consuming data sets hold single-use refresh tokens: build is called
	// for every run with the number of requests it must cover, and probe
	// items are extra, never loaded.
	consuming bool
	// rateGuess sizes a consuming scenario's first data set: its rate as
	// a share of the baseline's.
	rateGuess float64
	build     func(ctx context.Context, b *builder, n int) (*dataset, error)
	// prefillable scenarios also run, with -live, on a store holding that
	// many live families besides the run's own (see live.go).
	prefillable bool
	// live is how many families the store holds before a run of a
	// prefilled variant (named base-live<n>); 0 in the defined scenarios.
	live int
	base string // the defined scenario a prefilled variant derives from
}

// builder builds data sets against one server.
type builder struct {
	ts    *tstate
	t     *server
	sizes sizes
	pool  []issued // valid sessions of this round, made on first use
}

// sizes of the data sets that are not sized by the run.
type sizes struct {
	pool   int // valid sessions behind the cache-hit, bad-signature and mixed sets
	miss   int // distinct tokens of a cache-miss set
	probes int // items probed before a load
	// maxConsuming caps a single-use data set (0: none); a run that uses
	// it up ends early.
	maxConsuming int
}

func (b *builder) validPool(ctx context.Context) ([]issued, error) {
	if b.pool == nil {
		ss, err := createSessions(ctx, b.t.addr("sessionAPI"), b.sizes.pool)
		if err != nil {
			return nil, err
		}
		b.pool = ss
	}
	return b.pool, nil
}

// refresh returns n refresh items of new sessions: each an expired access
// token and the refresh token of the same session.
func (b *builder) refresh(ctx context.Context, n int) ([]item, error) {
	ss, err := createSessions(ctx, b.t.addr("sessionAPI"), n)
	if err != nil {
		return nil, err
	}
	return refreshItems(b.ts.expired, ss)
}

var scenarios = []scenario{
	{
		name: "valid-hit", cfg: cfgMain, prefillable: true,
		title: "valid ES256 bearer token, verified-token cache hit",
		build: buildValidHit,
	},
	{name: "miss-es256", cfg: cfgMissES, title: "valid ES256 token, cache miss (signature verified)", build: buildMiss},
	{name: "miss-eddsa", cfg: cfgMissEd, title: "valid EdDSA token, cache miss (signature verified)", build: buildMiss},
	{name: "refresh-memory", cfg: cfgRefresh, consuming: true, rateGuess: 0.7, prefillable: true, title: "expired access token + refresh cookie: rotate on the memory store", build: buildRefresh},
	{name: "refresh-redis", cfg: cfgRedis, consuming: true, rateGuess: 0.7, prefillable: true, title: "expired access token + refresh cookie: rotate on Redis", build: buildRefresh},
	{
		name: "mixed", cfg: cfgRefresh, consuming: true, rateGuess: 1.1,
		title: "90% valid (cache hit), 8% refresh, 1% bad signature, 1% no token",
		build: buildMixed,
	},
	{
		name: "malformed", cfg: cfgMain,
		title: "malformed bearer tokens",
		build: func(ctx context.Context, b *builder, _ int) (*dataset, error) {
			d := &dataset{}
			for i := range b.sizes.pool {
				d.items = append(d.items, item{bearerRequest(malformedTokens[i%len(malformedTokens)]), wantMalformed})
			}
			return d, nil
		},
	},
	{
		name: "bad-signature", cfg: cfgMain,
		title: "ES256 tokens with one signature bit flipped",
		build: func(ctx context.Context, b *builder, _ int) (*dataset, error) {
			pool, err := b.validPool(ctx)
			if err != nil {
				return nil, err
			}
			d := &dataset{}
			for _, s := range pool {
				d.items = append(d.items, item{bearerRequest(tamper(s.Access)), wantBadSig})
			}
			return d, nil
		},
	},
	{
		name: "valid-hit-warn", cfg: cfgQuiet, diagnostic: true,
		title: "valid-hit with log.level warn: what the per-Check info log costs",
		build: buildValidHit,
	},
}

// scenarioNamed returns a defined scenario, or a prefilled variant of
// one (base-live<n>, see liveVariant); nil if there is none.
func scenarioNamed(name string) *scenario {
	for i := range scenarios {
		if scenarios[i].name == name {
			return &scenarios[i]
		}
	}
	if base, n, ok := parseLiveName(name); ok {
		return liveVariant(base, n)
	}
	return nil
}

func buildValidHit(ctx context.Context, b *builder, _ int) (*dataset, error) {
	pool, err := b.validPool(ctx)
	if err != nil {
		return nil, err
	}
	d := &dataset{}
	for _, s := range pool {
		d.items = append(d.items, item{bearerRequest(s.Access), wantValid})
	}
	return d, nil
}

func buildMiss(ctx context.Context, b *builder, _ int) (*dataset, error) {
	ss, err := createSessions(ctx, b.t.addr("sessionAPI"), b.sizes.miss)
	if err != nil {
		return nil, err
	}
	d := &dataset{}
	for _, s := range ss {
		d.items = append(d.items, item{bearerRequest(s.Access), wantValid})
	}
	return d, nil
}

func buildRefresh(ctx context.Context, b *builder, n int) (*dataset, error) {
	items, err := b.refresh(ctx, n+b.sizes.probes)
	if err != nil {
		return nil, err
	}
	return &dataset{items: items[:n], probe: items[n:], consuming: true}, nil
}

// buildMixed interleaves, in every block of 100 requests, 90 valid tokens
// (cache hits), 8 refreshes, 1 bad signature and 1 request without
// credentials, in a fixed shuffled order.
func buildMixed(ctx context.Context, b *builder, n int) (*dataset, error) {
	blocks := max(1, (n+99)/100)
	pool, err := b.validPool(ctx)
	if err != nil {
		return nil, err
	}
	refresh, err := b.refresh(ctx, 8*blocks+2)
	if err != nil {
		return nil, err
	}
	d := &dataset{consuming: true}
	v := 0
	for k := range blocks {
		block := make([]item, 0, 100)
		for range 90 {
			block = append(block, item{bearerRequest(pool[v%len(pool)].Access), wantValid})
			v++
		}
		block = append(block, refresh[8*k:8*k+8]...)
		block = append(block,
			item{bearerRequest(tamper(pool[k%len(pool)].Access)), wantBadSig},
			item{anonymousRequest(), wantNoCreds})
		d.items = append(d.items, shuffled(block, uint64(k))...)
	}
	d.probe = append(refresh[8*blocks:],
		item{bearerRequest(pool[0].Access), wantValid},
		item{bearerRequest(tamper(pool[1%len(pool)].Access)), wantBadSig},
		item{anonymousRequest(), wantNoCreds})
	return d, nil
}
