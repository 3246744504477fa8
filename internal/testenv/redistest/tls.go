package redistest

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/silentauth/silentauth/internal/testenv/testpki"
)

// StartTLS starts a redis-server for t that speaks only TLS: its plain port
// is off (--port 0) and the free loopback port is its --tls-port. Its
// certificate, for 127.0.0.1, is issued by a CA made for this server alone;
// clients need no certificate of their own (--tls-auth-clients no).
// TLSConfig gives clients a configuration that trusts that CA. args are
// extra redis-server arguments. It returns once the server answers PING
// over TLS.
func StartTLS(t testing.TB, args ...string) *Server {
	t.Helper()
	dir := t.TempDir()
	roots, err := writeCerts(dir)
	if err != nil {
		t.Fatalf("redistest: certificates: %v", err)
	}
	return start(t, &Server{
		tls: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		args: append([]string{
			"--tls-cert-file", filepath.Join(dir, "server.crt"),
			"--tls-key-file", filepath.Join(dir, "server.key"),
			"--tls-ca-cert-file", filepath.Join(dir, "ca.crt"),
			"--tls-auth-clients", "no",
		}, args...),
	})
}

// TLSConfig returns a client configuration for a server of StartTLS: its
// RootCAs hold the server's CA alone, its ServerName is empty (Go's TLS
// dialers take it from the address: 127.0.0.1, which the certificate
// names). Each call returns a new copy. It is nil for a plain server.
func (s *Server) TLSConfig() *tls.Config {
	if s.tls == nil {
		return nil
	}
	return s.tls.Clone()
}

// writeCerts makes a CA and a server certificate for 127.0.0.1 signed by it,
// writes ca.crt, server.crt and server.key (PEM, the key readable by its
// owner only) to dir and returns a pool that holds the CA.
func writeCerts(dir string) (*x509.CertPool, error) {
	ca, err := testpki.NewCA("redistest CA")
	if err != nil {
		return nil, err
	}
	cert, key, err := ca.Issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		// Client too: redis-server presents the same certificate when it
		// connects out (replication, cluster bus).
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{"ca.crt", ca.CertPEM, 0o644},
		{"server.crt", cert, 0o644},
		{"server.key", key, 0o600},
	} {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return nil, err
		}
	}
	return ca.Pool(), nil
}
