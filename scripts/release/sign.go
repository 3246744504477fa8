package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// The signed files of a release folder.
const (
	checksumsFile = "SHA256SUMS"
	statementFile = "image.json" // names the image index digest
	publicKeyFile = "release-key.pub"
	sigSuffix     = ".sig"
)

// writeChecksums writes SHA256SUMS: the sha256 of every file of the release
// but the image layout (content-addressed, and named by the signed image
// statement), in sha256sum's format, sorted, so `sha256sum -c SHA256SUMS`
// in the folder checks them.
func writeChecksums(o options) error {
	var lines []string
	err := filepath.WalkDir(o.dist, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(o.dist, path)
		if err != nil {
			return err
		}
		if d.IsDir() {
			if rel == "image" {
				return filepath.SkipDir
			}
			return nil
		}
		if rel == checksumsFile || rel == publicKeyFile || strings.HasSuffix(rel, sigSuffix) {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		lines = append(lines, hex.EncodeToString(sum[:])+"  "+filepath.ToSlash(rel)+"\n")
		return nil
	})
	if err != nil {
		return err
	}
	slices.SortFunc(lines, func(a, b string) int { return strings.Compare(a[66:], b[66:]) })
	return os.WriteFile(filepath.Join(o.dist, checksumsFile), []byte(strings.Join(lines, "")), 0o644)
}

// imageStatement is cosign's "simple signing" payload for an image: signed
// with the release key it says which image index digest the release is, and
// `cosign attach signature` can publish it beside the image in the registry.
type imageStatement struct {
	Critical struct {
		Identity struct {
			DockerReference string `json:"docker-reference"`
		} `json:"identity"`
		Image struct {
			DockerManifestDigest string `json:"docker-manifest-digest"`
		} `json:"image"`
		Type string `json:"type"`
	} `json:"critical"`
	Optional map[string]string `json:"optional"`
}

// writeImageStatement writes image.json for the image index digest.
func writeImageStatement(o options, digest string) error {
	var s imageStatement
	s.Critical.Identity.DockerReference = o.imageRepo
	s.Critical.Image.DockerManifestDigest = digest
	s.Critical.Type = "cosign container image signature"
	s.Optional = map[string]string{"tag": o.version, "commit": o.commit}
	data, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(o.dist, statementFile), data, 0o644)
}

// sign signs SHA256SUMS (which lists image.json) and image.json with the
// release key: ECDSA P-256 over SHA-256, an ASN.1 DER signature in
// FILE.sig, the format `openssl dgst -sha256 -verify` and cosign (base64
// encoded) read. The public key is written beside them, for convenience
// only: verify against the key the README publishes, never one from the
// same download.
func sign(o options, stdout io.Writer) error {
	if o.signingKey == "" {
		fmt.Fprintln(stdout, "release: no signing key (SIGNING_KEY / -signing-key): SHA256SUMS and the image are left unsigned")
		return nil
	}
	key, err := readSigningKey(o.signingKey)
	if err != nil {
		return err
	}
	for _, f := range []string{checksumsFile, statementFile} {
		path := filepath.Join(o.dist, f)
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		digest := sha256.Sum256(data)
		sig, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
		if err != nil {
			return err
		}
		if err := os.WriteFile(path+sigSuffix, sig, 0o644); err != nil {
			return err
		}
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(o.dist, publicKeyFile), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644)
}

// readSigningKey reads an unencrypted PEM ECDSA P-256 private key, PKCS #8
// ("PRIVATE KEY", openssl genpkey) or SEC 1 ("EC PRIVATE KEY", openssl
// ecparam -genkey).
func readSigningKey(path string) (*ecdsa.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var block *pem.Block
	for {
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no PEM private key (PRIVATE KEY or EC PRIVATE KEY)")
		}
		if block.Type == "PRIVATE KEY" || block.Type == "EC PRIVATE KEY" {
			break
		}
	}
	var key any
	if block.Type == "EC PRIVATE KEY" {
		key, err = x509.ParseECPrivateKey(block.Bytes)
	} else {
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	}
	if err != nil {
		return nil, err
	}
	ec, ok := key.(*ecdsa.PrivateKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, errors.New("not an ECDSA P-256 key")
	}
	return ec, nil
}
