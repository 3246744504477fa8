package kubetest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/silentauth/silentauth/internal/testenv/testpki"
)

// pki is the key material one Env needs, all made fresh for it; serial
// numbers too, since x509.CreateCertificate picks a random one when the
// template leaves it nil. ECDSA P-256 throughout: generating it takes
// microseconds where RSA-2048 takes tens of milliseconds, and kube-apiserver
// accepts it for serving, client certificates and service-account tokens
// (ES256).
type pki struct {
	caPEM        []byte // signs the serving certificate and the admin client certificate
	adminCertPEM []byte // CN=kubetest-admin, O=system:masters
	adminKeyPEM  []byte

	caFile, servingCertFile, servingKeyFile, saKeyFile string
}

// newPKI writes the CA, the serving pair for 127.0.0.1 and the
// service-account signing key into dir, and keeps the admin pair in memory.
func newPKI(dir string) (*pki, error) {
	ca, err := testpki.NewCA("kubetest-ca")
	if err != nil {
		return nil, err
	}
	servingCert, servingKey, err := ca.Issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:    []string{"localhost"},
	})
	if err != nil {
		return nil, err
	}
	adminCert, adminKey, err := ca.Issue(&x509.Certificate{
		// The apiserver maps O to groups; system:masters is allowed
		// everything before RBAC is asked.
		Subject:     pkix.Name{CommonName: "kubetest-admin", Organization: []string{"system:masters"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return nil, err
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	// SEC 1: kube-apiserver reads the public key of --service-account-key-file
	// from an "EC PRIVATE KEY" block, not from PKCS #8.
	saKeyDER, err := x509.MarshalECPrivateKey(saKey)
	if err != nil {
		return nil, err
	}
	saKeyPEM := testpki.PEM("EC PRIVATE KEY", saKeyDER)

	p := &pki{
		caPEM:           ca.CertPEM,
		adminCertPEM:    adminCert,
		adminKeyPEM:     adminKey,
		caFile:          filepath.Join(dir, "ca.crt"),
		servingCertFile: filepath.Join(dir, "apiserver.crt"),
		servingKeyFile:  filepath.Join(dir, "apiserver.key"),
		saKeyFile:       filepath.Join(dir, "sa.key"),
	}
	for path, data := range map[string][]byte{
		p.caFile:          p.caPEM,
		p.servingCertFile: servingCert,
		p.servingKeyFile:  servingKey,
		p.saKeyFile:       saKeyPEM,
	} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return nil, fmt.Errorf("kubetest: %w", err)
		}
	}
	return p, nil
}
