package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// readLayoutIndex reads the image index of an OCI layout (its index.json):
// for a release, the multi-platform index that is pushed under the tag.
func readLayoutIndex(dir string) (v1.ImageIndex, error) {
	return layout.ImageIndexFromPath(dir)
}

// pushImage pushes the image index of the release in dist to ref (a tag),
// with every platform's image, and returns the index's digest, which is
// the digest the signed image statement names. Loopback registries are
// spoken to over plain HTTP (go-containerregistry's rule); others need
// TLS and take credentials from the Docker config (docker login, CI).
func pushImage(ctx context.Context, dist, ref string) (string, error) {
	tag, err := name.NewTag(ref)
	if err != nil {
		return "", err
	}
	idx, err := readLayoutIndex(filepath.Join(dist, "image"))
	if err != nil {
		return "", err
	}
	if err := remote.WriteIndex(tag, idx, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return "", err
	}
	d, err := idx.Digest()
	if err != nil {
		return "", err
	}
	return d.String(), nil
}

func pushImageCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("push-image", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dist := fs.String("dist", "dist", "the release folder")
	to := fs.String("to", "", "image reference to push to, with the release's tag (ghcr.io/silentauth/silentauth:v0.1.0)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *to == "" || fs.NArg() > 0 {
		return errors.New("push-image: -to REFERENCE is required, and nothing else")
	}
	digest, err := pushImage(ctx, *dist, *to)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "pushed %s@%s\n", *to, digest)
	return nil
}
