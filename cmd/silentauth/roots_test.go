package main

import (
	"crypto/x509"
	"os"
	"os/exec"
	"testing"

	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// The image is FROM scratch: no system certificates. The binary still
// trusts the public roots (Mozilla's, linked in main.go), so it reaches a
// public identity provider over TLS. Proved in a child process whose
// system has no roots at all: a public root verifies there.
func TestPublicRootsWithoutSystemCertificates(t *testing.T) {
	if os.Getenv("SILENTAUTH_ROOTS_CHILD") == "1" {
		for r := range bundle.Roots() {
			if r.Constraint != nil {
				continue
			}
			c, err := x509.ParseCertificate(r.Certificate)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Verify(x509.VerifyOptions{CurrentTime: c.NotBefore.Add(1)}); err != nil {
				t.Fatalf("%s does not verify against the roots the binary has: %v", c.Subject, err)
			}
			return
		}
		t.Fatal("no unconstrained root in the bundle")
	}
	empty := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestPublicRootsWithoutSystemCertificates$")
	cmd.Env = append(os.Environ(), "SILENTAUTH_ROOTS_CHILD=1", "SSL_CERT_FILE="+empty+"/none.pem", "SSL_CERT_DIR="+empty)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child without system certificates: %v\n%s", err, out)
	}
}
