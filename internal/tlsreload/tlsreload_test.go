package tlsreload_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/silentauth/silentauth/internal/testenv/fakeclock"
	"github.com/silentauth/silentauth/internal/testenv/logbuf"
	"github.com/silentauth/silentauth/internal/tlsreload"
)

// pair is a certificate with its key, as PEM and as parsed.
type pair struct {
	cert     *x509.Certificate
	key      *ecdsa.PrivateKey
	certPEM  []byte
	keyPEM   []byte
	tlsCert  tls.Certificate
	fp       string // the fingerprint the logs must show
	keyLines []string
}

// issue makes a certificate for cn signed by parent (self-signed when nil).
func issue(t *testing.T, cn string, parent *pair, usage x509.ExtKeyUsage) *pair {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	signer, signerKey := tmpl, key
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	} else {
		signer, signerKey = parent.cert, parent.key
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{usage}
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	p := &pair{
		cert:    cert,
		key:     key,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}
	p.tlsCert, err = tls.X509KeyPair(p.certPEM, p.keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	p.fp = hex.EncodeToString(sum[:8])
	for _, l := range strings.Split(string(p.keyPEM), "\n") {
		if l != "" && !strings.HasPrefix(l, "-----") {
			p.keyLines = append(p.keyLines, l)
		}
	}
	return p
}

// pki is one CA, two server certificates and a client certificate.
type pki struct {
	ca, server1, server2, client *pair
}

func newPKI(t *testing.T) *pki {
	ca := issue(t, "test CA", nil, 0)
	return &pki{
		ca:      ca,
		server1: issue(t, "server one", ca, x509.ExtKeyUsageServerAuth),
		server2: issue(t, "server two", ca, x509.ExtKeyUsageServerAuth),
		client:  issue(t, "client", ca, x509.ExtKeyUsageClientAuth),
	}
}

// replace swaps a file's content the way a Secret volume does: write aside,
// rename over (a new inode), so the change is seen whatever the mtime says.
func replace(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

type files struct{ cert, key, ca string }

func writeFiles(t *testing.T, p *pair, ca []byte) files {
	dir := t.TempDir()
	f := files{filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), ""}
	replace(t, f.cert, p.certPEM)
	replace(t, f.key, p.keyPEM)
	if ca != nil {
		f.ca = filepath.Join(dir, "ca.crt")
		replace(t, f.ca, ca)
	}
	return f
}

// setup starts a reloader on f behind a real TLS listener on 127.0.0.1.
func setup(t *testing.T, f files) (*tlsreload.Reloader, *fakeclock.Clock, *logbuf.Buffer, string) {
	t.Helper()
	clk := fakeclock.New(time.Now())
	logs := &logbuf.Buffer{}
	r, err := tlsreload.NewWithClock(f.cert, f.key, f.ca, slog.New(slog.NewJSONHandler(logs, nil)), clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	return r, clk, logs, serve(t, r.TLSConfig())
}

// serve accepts TLS connections, completes the handshake and writes "ok".
func serve(t *testing.T, cfg *tls.Config) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	tl := tls.NewListener(ln, cfg)
	wg.Go(func() {
		for {
			c, err := tl.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if c.(*tls.Conn).Handshake() == nil {
					c.Write([]byte("ok"))
				}
			})
		}
	})
	return ln.Addr().String()
}

// dial connects, trusting ca, presenting client when not nil, and returns
// the server's leaf. It reads the server's "ok": under TLS 1.3 a refused
// client certificate shows only after the client's handshake has finished.
func dial(addr string, ca *pair, client *pair) (*x509.Certificate, error) {
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	cfg := &tls.Config{RootCAs: roots, ServerName: "localhost"}
	if client != nil {
		cfg.Certificates = []tls.Certificate{client.tlsCert}
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(conn, make([]byte, 2)); err != nil {
		return nil, err
	}
	return conn.ConnectionState().PeerCertificates[0], nil
}

func mustServe(t *testing.T, addr string, pk *pki, want *pair) {
	t.Helper()
	got, err := dial(addr, pk.ca, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if !got.Equal(want.cert) {
		t.Fatalf("served %q, want %q", got.Subject.CommonName, want.cert.Subject.CommonName)
	}
}

func noKeyBytes(t *testing.T, logs string, pairs ...*pair) {
	t.Helper()
	if strings.Contains(logs, "PRIVATE KEY") {
		t.Error("logs mention a PEM private key block")
	}
	for _, p := range pairs {
		for _, l := range p.keyLines {
			if strings.Contains(logs, l) {
				t.Errorf("logs hold key material %q…", l[:8])
			}
		}
	}
}

func TestReloadsWhenFilesChange(t *testing.T) {
	pk := newPKI(t)
	f := writeFiles(t, pk.server1, nil)
	_, clk, logs, addr := setup(t, f)
	mustServe(t, addr, pk, pk.server1)

	replace(t, f.cert, pk.server2.certPEM)
	replace(t, f.key, pk.server2.keyPEM)
	mustServe(t, addr, pk, pk.server1) // within the interval: not looked at yet

	clk.Advance(tlsreload.DefaultInterval)
	mustServe(t, addr, pk, pk.server2)
	if !strings.Contains(logs.String(), pk.server2.fp) {
		t.Errorf("reload not logged with the new fingerprint %s:\n%s", pk.server2.fp, logs)
	}
	noKeyBytes(t, logs.String(), pk.server1, pk.server2)
}

func TestInPlaceRewriteSeenByMtime(t *testing.T) {
	pk := newPKI(t)
	f := writeFiles(t, pk.server1, nil)
	_, clk, _, addr := setup(t, f)

	// Same inode; a later mtime (set explicitly: coarse file-system clocks
	// could otherwise give both writes the same one).
	later := time.Now().Add(time.Minute)
	for path, data := range map[string][]byte{f.cert: pk.server2.certPEM, f.key: pk.server2.keyPEM} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, later, later); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(tlsreload.DefaultInterval)
	mustServe(t, addr, pk, pk.server2)
}

func TestFailedReloadKeepsLastGood(t *testing.T) {
	pk := newPKI(t)
	f := writeFiles(t, pk.server1, nil)
	_, clk, logs, addr := setup(t, f)

	tests := []struct {
		name      string
		cert, key []byte
	}{
		{"half-written key", pk.server2.certPEM, pk.server2.keyPEM[:len(pk.server2.keyPEM)/2]},
		{"mismatched pair", pk.server2.certPEM, pk.server1.keyPEM},
		{"empty cert", nil, pk.server2.keyPEM},
		{"half-written chain", append(pk.server2.certPEM, pk.ca.certPEM[:100]...), pk.server2.keyPEM},
		{"key in cert file", pk.server2.keyPEM, pk.server2.keyPEM},
	}
	warnings := func() int { return strings.Count(logs.String(), `"level":"WARN"`) }
	for _, tt := range tests {
		before := warnings()
		replace(t, f.cert, tt.cert)
		replace(t, f.key, tt.key)
		clk.Advance(tlsreload.DefaultInterval)
		mustServe(t, addr, pk, pk.server1)
		if warnings() != before+1 {
			t.Errorf("%s: want one warning, got %d", tt.name, warnings()-before)
		}
	}
	warn := logs.String()
	if !strings.Contains(warn, f.cert) || !strings.Contains(warn, pk.server1.fp) {
		t.Errorf("warning should name %s and the serving fingerprint %s:\n%s", f.cert, pk.server1.fp, warn)
	}

	// Warned once per change, not at every interval.
	before := warnings()
	clk.Advance(tlsreload.DefaultInterval)
	mustServe(t, addr, pk, pk.server1)
	if after := warnings(); after != before {
		t.Errorf("unchanged broken files warned again (%d → %d)", before, after)
	}

	// The writer finishes: the next check serves the new pair.
	replace(t, f.cert, pk.server2.certPEM)
	replace(t, f.key, pk.server2.keyPEM)
	clk.Advance(tlsreload.DefaultInterval)
	mustServe(t, addr, pk, pk.server2)
	noKeyBytes(t, logs.String(), pk.server1, pk.server2)
}

func TestMissingFileMidSwapKeepsLastGood(t *testing.T) {
	pk := newPKI(t)
	f := writeFiles(t, pk.server1, nil)
	_, clk, _, addr := setup(t, f)
	if err := os.Remove(f.key); err != nil {
		t.Fatal(err)
	}
	clk.Advance(tlsreload.DefaultInterval)
	mustServe(t, addr, pk, pk.server1)
	replace(t, f.cert, pk.server2.certPEM)
	replace(t, f.key, pk.server2.keyPEM)
	clk.Advance(tlsreload.DefaultInterval)
	mustServe(t, addr, pk, pk.server2)
}

func TestNewFails(t *testing.T) {
	pk := newPKI(t)
	dir := t.TempDir()
	file := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		replace(t, p, data)
		return p
	}
	cert, key, ca := file("c", pk.server1.certPEM), file("k", pk.server1.keyPEM), file("ca", pk.ca.certPEM)
	big := file("big", bytes.Repeat([]byte("A"), 2<<20))
	tests := []struct {
		name, cert, key, ca string
		want                error
	}{
		{"missing cert", filepath.Join(dir, "nope"), key, "", os.ErrNotExist},
		{"empty key", cert, file("empty", nil), "", tlsreload.ErrEmpty},
		{"half-written key", cert, file("half", pk.server1.keyPEM[:60]), "", tlsreload.ErrPEM},
		{"trailing garbage", file("trail", append(pk.server1.certPEM, "junk"...)), key, "", tlsreload.ErrPEM},
		{"mismatched pair", cert, file("k2", pk.server2.keyPEM), "", nil},
		{"huge file", big, key, "", tlsreload.ErrTooLarge},
		{"missing CA", cert, key, filepath.Join(dir, "nope"), os.ErrNotExist},
		{"key as CA", cert, key, key, tlsreload.ErrPEM},
		{"half-written CA bundle", cert, key, file("ca2", append(pk.ca.certPEM, pk.ca.certPEM[:90]...)), tlsreload.ErrPEM},
	}
	for _, tt := range tests {
		r, err := tlsreload.New(tt.cert, tt.key, tt.ca, nil)
		if err == nil || r != nil || (tt.want != nil && !errors.Is(err, tt.want)) {
			t.Errorf("%s: New = %v, %v; want error %v", tt.name, r, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), pk.server1.keyLines[0]) {
			t.Errorf("%s: error holds key material", tt.name)
		}
	}
	if _, err := tlsreload.New(cert, key, ca, nil); err != nil {
		t.Errorf("good files: %v", err)
	}
}

func TestTLSConfig(t *testing.T) {
	pk := newPKI(t)
	f := writeFiles(t, pk.server1, pk.ca.certPEM)
	r, err := tlsreload.New(f.cert, f.key, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c := r.TLSConfig(); c.MinVersion != tls.VersionTLS12 || c.GetCertificate == nil || c.ClientAuth != tls.NoClientCert || c.GetConfigForClient != nil {
		t.Errorf("server-only config: %+v", c)
	}
	r, err = tlsreload.New(f.cert, f.key, f.ca, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := r.TLSConfig()
	if c.MinVersion != tls.VersionTLS12 || c.ClientAuth != tls.RequireAndVerifyClientCert || c.ClientCAs == nil || c.GetConfigForClient == nil {
		t.Errorf("client-CA config: %+v", c)
	}
	if h, _ := c.GetConfigForClient(&tls.ClientHelloInfo{}); h.MinVersion != tls.VersionTLS12 || h.ClientAuth != tls.RequireAndVerifyClientCert || h.ClientCAs == nil {
		t.Errorf("per-handshake config: %+v", h)
	}
}

func TestClientCA(t *testing.T) {
	pk := newPKI(t)
	other := issue(t, "other CA", nil, 0)
	otherClient := issue(t, "other client", other, x509.ExtKeyUsageClientAuth)
	f := writeFiles(t, pk.server1, pk.ca.certPEM)
	_, clk, logs, addr := setup(t, f)

	tests := []struct {
		name   string
		client *pair
		ok     bool
	}{
		{"no client certificate", nil, false},
		{"client of the CA", pk.client, true},
		{"client of another CA", otherClient, false},
		{"server cert as client", pk.server2, false}, // ExtKeyUsage serverAuth only
	}
	for _, tt := range tests {
		if _, err := dial(addr, pk.ca, tt.client); (err == nil) != tt.ok {
			t.Errorf("%s: dial error %v, want ok=%v", tt.name, err, tt.ok)
		}
	}

	// Rotate the bundle to the other CA: its clients get in, ours no longer.
	replace(t, f.ca, other.certPEM)
	clk.Advance(tlsreload.DefaultInterval)
	if _, err := dial(addr, pk.ca, otherClient); err != nil {
		t.Errorf("client of the new CA refused: %v", err)
	}
	if _, err := dial(addr, pk.ca, pk.client); err == nil {
		t.Error("client of the removed CA still accepted")
	}

	// A broken bundle keeps the last good one.
	replace(t, f.ca, []byte("-----BEGIN CERTIFICATE-----\nMIIB"))
	clk.Advance(tlsreload.DefaultInterval)
	if _, err := dial(addr, pk.ca, otherClient); err != nil {
		t.Errorf("broken bundle dropped the last good one: %v", err)
	}
	if !strings.Contains(logs.String(), f.ca) {
		t.Errorf("CA warning should name %s:\n%s", f.ca, logs)
	}

	// Certificate reloads still apply in client-CA mode.
	replace(t, f.cert, pk.server2.certPEM)
	replace(t, f.key, pk.server2.keyPEM)
	clk.Advance(tlsreload.DefaultInterval)
	got, err := dial(addr, pk.ca, otherClient)
	if err != nil || !got.Equal(pk.server2.cert) {
		t.Errorf("client-CA mode after cert reload: %v, err %v", got.Subject, err)
	}
}

// TestConcurrentHandshakesDuringReload runs under -race: many handshakes
// reach the interval at once, one reloads, none waits or sees a torn state.
func TestConcurrentHandshakesDuringReload(t *testing.T) {
	pk := newPKI(t)
	f := writeFiles(t, pk.server1, pk.ca.certPEM)
	_, clk, _, addr := setup(t, f)
	replace(t, f.cert, pk.server2.certPEM)
	replace(t, f.key, pk.server2.keyPEM)
	clk.Advance(tlsreload.DefaultInterval)

	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			got, err := dial(addr, pk.ca, pk.client)
			if err != nil {
				t.Errorf("dial: %v", err)
				return
			}
			if !got.Equal(pk.server1.cert) && !got.Equal(pk.server2.cert) {
				t.Errorf("served an unknown certificate %q", got.Subject)
			}
		})
	}
	wg.Wait()
	got, err := dial(addr, pk.ca, pk.client)
	if err != nil || !got.Equal(pk.server2.cert) {
		t.Errorf("after the reload: %v, err %v", got, err)
	}
}
