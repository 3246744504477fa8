// Package tlsreload serves a TLS certificate, and optionally a client-CA
// bundle, from PEM files that are replaced while the server runs (cert-manager
// renewals, Kubernetes Secret volumes).
//
// Guarantees:
//   - New fails unless the first load succeeds; after that a Reloader always
//     has a good certificate to serve.
//   - A reload that fails (a half-written file, a mismatched pair, a missing
//     file mid-swap) keeps serving the last good certificate and pool, logs a
//     warning, and is retried when the files change again.
//   - Files are checked at most once per interval, on a handshake: never a
//     goroutine, never a timer, and only one handshake does the checking.
//   - Logs name file paths and certificate fingerprints, never key bytes.
//
// A Reloader is safe for concurrent use: the served state is an immutable
// value behind an atomic.Pointer, and handshakes never wait on a lock.
package tlsreload

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultInterval is how often, at most, handshakes look at the files.
// A few stat calls per interval cost nothing; Kubernetes takes up to a
// minute to project a renewed Secret anyway.
const DefaultInterval = 10 * time.Second

// maxFileBytes bounds each PEM file read: a certificate chain or CA bundle
// is kilobytes, and a wrong path (a log file, a device) must not be read
// whole into memory.
const maxFileBytes = 1 << 20

// Sentinel errors, wrapped with the file path, from New and in reload warnings.
var (
	ErrTooLarge = errors.New("tlsreload: file larger than 1 MiB")
	ErrEmpty    = errors.New("tlsreload: no PEM block in file")
	ErrPEM      = errors.New("tlsreload: malformed PEM (half-written file?)")
)

// Reloader serves a certificate pair from files, re-reading them when their
// modification time, size or identity (a new inode, as when a Kubernetes
// Secret volume swaps its ..data symlink) changes, checked at most once per
// interval on handshake. With a client-CA file, the pool is reloaded the same
// way, independently of the pair.
type Reloader struct {
	certFile, keyFile, caFile string
	logger                    *slog.Logger
	now                       func() time.Time
	interval                  time.Duration

	cur  atomic.Pointer[state]
	next atomic.Int64 // UnixNano before which handshakes skip the check

	// mu is held by the one handshake checking the files; the others
	// TryLock, fail, and serve the current state without waiting. It guards
	// pairSeen and caSeen: what the last attempt saw, good or bad, so a
	// broken file is warned about once, not at every interval.
	mu       sync.Mutex
	pairSeen [2]stamp
	caSeen   stamp
}

// state is what handshakes serve. It is never modified once stored.
type state struct {
	cert        *tls.Certificate
	fingerprint string
	pool        *x509.CertPool // nil without a client-CA file
	config      *tls.Config    // per-handshake config in client-CA mode
}

// New loads certFile and keyFile (PEM; the chain leaf first) and, when
// clientCAFile is not "", the CA bundle that client certificates must chain
// to. It fails if any of them does not load. A nil logger discards.
func New(certFile, keyFile, clientCAFile string, logger *slog.Logger) (*Reloader, error) {
	return newReloader(certFile, keyFile, clientCAFile, logger, time.Now)
}

// newReloader is New with the clock that decides when the files are
// checked again.
func newReloader(certFile, keyFile, clientCAFile string, logger *slog.Logger, now func() time.Time) (*Reloader, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &Reloader{
		certFile: certFile,
		keyFile:  keyFile,
		caFile:   clientCAFile,
		logger:   logger,
		now:      now,
		interval: DefaultInterval,
	}

	// Stat before reading: a change between the two is seen at the next check.
	r.pairSeen = [2]stamp{statFile(certFile), statFile(keyFile)}
	cert, err := loadPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	s := &state{cert: cert, fingerprint: fingerprint(cert)}
	if clientCAFile != "" {
		r.caSeen = statFile(clientCAFile)
		if s.pool, err = loadPool(clientCAFile); err != nil {
			return nil, err
		}
	}
	s.config = r.configFor(s)
	r.cur.Store(s)
	r.next.Store(r.now().Add(r.interval).UnixNano())
	r.logger.Info("tls certificate loaded", r.certAttrs(s)...)
	return r, nil
}

// TLSConfig returns a new config for a server: MinVersion TLS 1.2 and
// GetCertificate serving the current certificate. With a client-CA file it
// also requires and verifies client certificates (RequireAndVerifyClientCert)
// and sets GetConfigForClient, which hands each handshake a config holding the
// current certificate and pool, since ClientCAs cannot be swapped in place.
// ClientCAs on the returned config is a snapshot for callers that read it.
//
// In client-CA mode ALPN comes from that per-handshake config, which offers
// none: grpc-go's credentials.NewTLS adds "h2" to it itself; a net/http
// server behind it negotiates HTTP/1.1.
func (r *Reloader) TLSConfig() *tls.Config {
	cfg := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: r.getCertificate,
	}
	if r.caFile != "" {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		cfg.ClientCAs = r.cur.Load().pool
		cfg.GetConfigForClient = r.getConfigForClient
	}
	return cfg
}

func (r *Reloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.maybeReload()
	return r.cur.Load().cert, nil
}

func (r *Reloader) getConfigForClient(*tls.ClientHelloInfo) (*tls.Config, error) {
	r.maybeReload()
	return r.cur.Load().config, nil
}

// configFor builds the per-handshake config of s in client-CA mode. A session
// resumed after the pool changed is checked against the new pool: crypto/tls
// re-verifies resumed client chains against the current ClientCAs since
// Go 1.25.7 (CVE-2025-68121), which go.mod's go 1.26 guarantees.
func (r *Reloader) configFor(s *state) *tls.Config {
	if s.pool == nil {
		return nil
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{*s.cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    s.pool,
	}
}

// maybeReload checks the files if the interval has passed and no other
// handshake is already checking. It never blocks on another handshake.
func (r *Reloader) maybeReload() {
	now := r.now()
	if now.UnixNano() < r.next.Load() {
		return
	}
	if !r.mu.TryLock() {
		return // another handshake is checking; serve what we have
	}
	defer r.mu.Unlock()
	if now.UnixNano() < r.next.Load() {
		return // checked while we were getting the lock
	}
	r.next.Store(now.Add(r.interval).UnixNano())
	r.reloadChanged()
}

// reloadChanged reloads what changed since the last attempt and publishes a
// new state if anything loaded. Callers hold r.mu.
func (r *Reloader) reloadChanged() {
	old := r.cur.Load()
	s := *old
	changed := false

	if pair := [2]stamp{statFile(r.certFile), statFile(r.keyFile)}; !pair[0].same(r.pairSeen[0]) || !pair[1].same(r.pairSeen[1]) {
		r.pairSeen = pair
		cert, err := loadPair(r.certFile, r.keyFile)
		if err != nil {
			r.logger.Warn("tls certificate reload failed, serving the last good one",
				"cert_file", r.certFile, "key_file", r.keyFile,
				"serving_fingerprint", old.fingerprint, "error", err)
		} else {
			s.cert, s.fingerprint, changed = cert, fingerprint(cert), true
		}
	}
	if r.caFile != "" {
		if ca := statFile(r.caFile); !ca.same(r.caSeen) {
			r.caSeen = ca
			pool, err := loadPool(r.caFile)
			if err != nil {
				r.logger.Warn("tls client CA reload failed, keeping the last good bundle",
					"ca_file", r.caFile, "error", err)
			} else {
				s.pool, changed = pool, true
				r.logger.Info("tls client CA bundle reloaded", "ca_file", r.caFile)
			}
		}
	}
	if !changed {
		return
	}
	s.config = r.configFor(&s)
	r.cur.Store(&s)
	if s.cert != old.cert {
		r.logger.Info("tls certificate reloaded", r.certAttrs(&s)...)
	}
}

func (r *Reloader) certAttrs(s *state) []any {
	leaf := s.cert.Leaf
	attrs := []any{
		"cert_file", r.certFile,
		"fingerprint", s.fingerprint,
		"subject", leaf.Subject.String(),
		"not_after", leaf.NotAfter,
	}
	if now := r.now(); now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		attrs = append(attrs, "warning", "certificate is outside its validity period")
	}
	return attrs
}

// fingerprint is the first 8 bytes of the SHA-256 of the leaf's DER, in hex:
// enough to tell certificates apart in logs, and matching the prefix of
// `openssl x509 -noout -fingerprint -sha256` (without colons, lower case).
func fingerprint(c *tls.Certificate) string {
	sum := sha256.Sum256(c.Leaf.Raw)
	return hex.EncodeToString(sum[:8])
}

// stamp is what a stat says about a file; a nil info means it could not be
// stat'ed, and two failures in a row count as no change.
type stamp struct{ info os.FileInfo }

func statFile(path string) stamp {
	fi, err := os.Stat(path) // follows symlinks, as a Secret volume needs
	if err != nil {
		return stamp{}
	}
	return stamp{fi}
}

func (s stamp) same(o stamp) bool {
	if s.info == nil || o.info == nil {
		return s.info == nil && o.info == nil
	}
	return os.SameFile(s.info, o.info) && s.info.ModTime().Equal(o.info.ModTime()) && s.info.Size() == o.info.Size()
}

// loadPair reads and checks a certificate chain and its private key. Errors
// name files, never their content.
func loadPair(certFile, keyFile string) (*tls.Certificate, error) {
	certPEM, err := readPEM(certFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := readPEM(keyFile)
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tlsreload: %s and %s: %w", certFile, keyFile, err)
	}
	if cert.Leaf == nil { // set by X509KeyPair since Go 1.23 unless GODEBUG x509keypairleaf=0
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("tlsreload: %s: %w", certFile, err)
		}
	}
	return &cert, nil
}

// loadPool reads a bundle of CA certificates. Unlike AppendCertsFromPEM, it
// fails on any block it cannot parse rather than skipping it, so a
// half-written bundle never silently drops a CA.
func loadPool(path string) (*x509.CertPool, error) {
	data, err := readPEM(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%w: %s: unexpected %q block", ErrPEM, path, b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("tlsreload: %s: %w", path, err)
		}
		pool.AddCert(c)
	}
	return pool, nil
}

// readPEM reads at most maxFileBytes of path and checks that it is whole
// PEM: every "-----BEGIN" starts a block that decodes, and nothing but white
// space follows the last. pem.Decode alone skips a broken block and stops at
// a truncated one, which would load a half-written chain or bundle.
func readPEM(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tlsreload: %w", err) // *PathError names the file
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("tlsreload: %s: %w", path, err)
	}
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("%w: %s", ErrTooLarge, path)
	}
	blocks := 0
	rest := data
	for {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		blocks++
	}
	if blocks != bytes.Count(data, []byte("-----BEGIN")) || len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%w: %s", ErrPEM, path)
	}
	if blocks == 0 {
		return nil, fmt.Errorf("%w: %s", ErrEmpty, path)
	}
	return data, nil
}
