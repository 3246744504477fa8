package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image configuration. The Dockerfile's final stage states the same;
// test/image compares the two, so change both together.
const (
	uid, gid = 65532, 65532 // distroless "nonroot"; no /etc/passwd needed
	user     = "65532:65532"
)

var (
	entrypoint = []string{"/silentauth"}
	command    = []string{"serve", "--config", "/etc/silentauth/config.yaml"}
	// gRPC Check, public JWKS, session API, admin (metrics, health).
	ports = []string{"9001/tcp", "9002/tcp", "9003/tcp", "9090/tcp"}
)

// labels are the OCI annotations of the image (config labels and manifest
// annotations alike).
func labels(version string) map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":       "silentauth",
		"org.opencontainers.image.description": "Silent authentication at the edge: an Envoy ext_authz service that verifies access tokens and renews them from rotating refresh-token cookies",
		"org.opencontainers.image.source":      "https://github.com/silentauth/silentauth",
		"org.opencontainers.image.licenses":    "Apache-2.0", // LICENSE
		"org.opencontainers.image.version":     version,
	}
}

// platformImage is the image of one architecture.
type platformImage struct {
	arch string
	img  v1.Image
}

// writeImages writes the OCI layout holding an image per architecture (and,
// for a single architecture, the tarball). It returns the digest of the
// image for one architecture, of the layout's index for several.
func writeImages(o options, imgs []platformImage) (v1.Hash, error) {
	idx, err := writeLayout(o, imgs)
	if err != nil {
		return v1.Hash{}, err
	}
	if len(imgs) > 1 {
		return idx.Digest()
	}
	img := imgs[0].img
	if o.tarball != "" {
		ref, err := name.NewTag(o.tag)
		if err != nil {
			return v1.Hash{}, fmt.Errorf("-tag %q: %w", o.tag, err)
		}
		if err := os.MkdirAll(filepath.Dir(o.tarball), 0o755); err != nil {
			return v1.Hash{}, err
		}
		if err := tarball.WriteToFile(o.tarball, ref, img); err != nil {
			return v1.Hash{}, err
		}
	}
	return img.Digest()
}

// newImage assembles the image of linux/arch from the built files.
func newImage(o options, arch string, files []file) (v1.Image, error) {
	layerTar, err := layerTar(files, o.created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}

	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: o.created},
			CreatedBy: "scripts/tools/image: static binaries " + names(files),
			Comment:   "built without a container engine",
		},
	})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Created = v1.Time{Time: o.created}
	cf.Config = v1.Config{
		User:         user,
		Entrypoint:   entrypoint,
		Cmd:          command,
		ExposedPorts: map[string]struct{}{},
		Labels:       labels(o.version),
		// No Env: nothing in the image reads one, and there is no shell
		// for a PATH to serve.
	}
	for _, p := range ports {
		cf.Config.ExposedPorts[p] = struct{}{}
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return nil, err
	}
	return mutate.Annotations(img, labels(o.version)).(v1.Image), nil
}

// writeLayout writes the OCI layout beside o.out and then moves it into
// place, so an interrupted build never leaves a half layout, and blobs of
// earlier builds never accumulate. Its index lists the image of each
// architecture with its platform; for several, the index itself is a
// multi-platform image index a registry serves under one tag.
func writeLayout(o options, imgs []platformImage) (v1.ImageIndex, error) {
	parent := filepath.Dir(o.out)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(parent, ".image-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, pi := range imgs {
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add: pi.img,
			Descriptor: v1.Descriptor{
				Platform:    &v1.Platform{OS: "linux", Architecture: pi.arch},
				Annotations: map[string]string{"org.opencontainers.image.ref.name": o.tag},
			},
		})
	}
	if len(imgs) > 1 {
		idx = mutate.Annotations(idx, labels(o.version)).(v1.ImageIndex)
	}
	if _, err := layout.Write(tmp, idx); err != nil {
		return nil, err
	}
	// MkdirTemp makes 0700 and blobs are written 0600: make the layout
	// readable like any build output (skopeo, a CI upload step).
	err = filepath.WalkDir(tmp, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.Chmod(path, 0o755)
		}
		return os.Chmod(path, 0o644)
	})
	if err != nil {
		return nil, err
	}
	if err := os.RemoveAll(o.out); err != nil {
		return nil, err
	}
	return idx, os.Rename(tmp, o.out)
}

// layerTar is the image's only layer: each binary at the root, mode 0755,
// owned by 65532:65532, stamped with the build's fixed time. Nothing else:
// no shell, no /tmp, no directories, no CA bundle (TLS peers are verified
// with the CA files the configuration names).
func layerTar(files []file, modTime time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		data, err := os.ReadFile(f.path)
		if err != nil {
			return nil, err
		}
		hdr := &tar.Header{
			Typeflag: tar.TypeReg,
			Name:     f.name,
			Mode:     0o755,
			Uid:      uid,
			Gid:      gid,
			Size:     int64(len(data)),
			ModTime:  modTime,
			Format:   tar.FormatUSTAR,
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func names(files []file) string {
	var b bytes.Buffer
	for i, f := range files {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("/" + f.name)
	}
	return b.String()
}
