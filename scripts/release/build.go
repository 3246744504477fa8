package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// platform is a GOOS/GOARCH pair a release ships binaries for.
type platform struct{ os, arch string }

func (p platform) String() string { return p.os + "/" + p.arch }

// platforms are the binaries' targets; images are made of the linux ones.
var platforms = []platform{{"linux", "amd64"}, {"linux", "arm64"}, {"darwin", "arm64"}}

// commands are the released programs, by name and package.
var commands = []struct{ name, pkg string }{
	{"silentauth", "./cmd/silentauth"},
	{"kubectl-silentauth", "./cmd/kubectl-silentauth"},
}

// archiveDocs go into every archive beside the binary.
var archiveDocs = []string{"LICENSE", "README.md"}

// archive is one built binary and its archive.
type archive struct {
	command  string
	platform platform
	binary   string // path of the binary under dist/bin
	path     string // path of the .tar.gz
	sha256   string // hex sha256 of the .tar.gz
}

// name is the archive's file name, as downloads and the krew manifest name it.
func (a archive) name() string { return filepath.Base(a.path) }

// buildinfo is the product package whose version and commit the linker
// stamps.
const buildinfoPkg = productModule + "/internal/buildinfo"

// ldflags are the linker flags of every release binary, as the image's
// (scripts/tools/image, Dockerfile): no symbols or DWARF, version and
// commit stamped.
func ldflags(o options) string {
	return "-s -w -X " + buildinfoPkg + ".version=" + o.version + " -X " + buildinfoPkg + ".commit=" + o.commit
}

// buildArchives compiles each command for each platform into dist/bin/OS_ARCH
// and packs it with the docs into dist/COMMAND_VERSION_OS_ARCH.tar.gz.
func buildArchives(ctx context.Context, o options, stderr io.Writer) ([]archive, error) {
	var out []archive
	for _, p := range platforms {
		dir := filepath.Join(o.dist, "bin", p.os+"_"+p.arch)
		for _, c := range commands {
			bin := filepath.Join(dir, c.name)
			// Static (no cgo), no build paths (-trimpath), no VCS stamp: the
			// commit comes through -X, and a dirty tree would otherwise be
			// recorded as such in every binary.
			err := command(ctx, o.repo, []string{"CGO_ENABLED=0", "GOOS=" + p.os, "GOARCH=" + p.arch},
				"go", "build", "-trimpath", "-buildvcs=false", "-ldflags="+ldflags(o), "-o", bin, c.pkg)
			if err != nil {
				return nil, err
			}
			a := archive{command: c.name, platform: p, binary: bin,
				path: filepath.Join(o.dist, fmt.Sprintf("%s_%s_%s_%s.tar.gz", c.name, o.version, p.os, p.arch))}
			if a.sha256, err = writeArchive(a.path, o, bin); err != nil {
				return nil, err
			}
			out = append(out, a)
		}
	}
	return out, nil
}

// writeArchive packs the binary and the docs, flat, into a gzip'd tar with
// fixed owners and times, so the same sources give the same bytes. It
// returns the archive's sha256.
func writeArchive(path string, o options, bin string) (string, error) {
	var buf bytes.Buffer
	gz, err := gzip.NewWriterLevel(&buf, gzip.DefaultCompression)
	if err != nil {
		return "", err
	}
	tw := tar.NewWriter(gz)
	files := []struct {
		src  string
		mode int64
	}{{bin, 0o755}}
	for _, d := range archiveDocs {
		files = append(files, struct {
			src  string
			mode int64
		}{filepath.Join(o.repo, d), 0o644})
	}
	for _, f := range files {
		data, err := os.ReadFile(f.src)
		if err != nil {
			return "", err
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: filepath.Base(f.src), Mode: f.mode, Size: int64(len(data)),
			ModTime: o.created, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return "", err
		}
		if _, err := tw.Write(data); err != nil {
			return "", err
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	if err := gz.Close(); err != nil {
		return "", err
	}
	sum := sha256.Sum256(buf.Bytes())
	return hex.EncodeToString(sum[:]), os.WriteFile(path, buf.Bytes(), 0o644)
}

// writeSBOMs writes a CycloneDX SBOM of each binary beside its archive
// (COMMAND_VERSION_OS_ARCH.cdx.json), from the module list Go records in
// the binary: exactly what was linked, with versions and go.sum hashes.
// cyclonedx-gomod is this module's tool (go.mod), so its version is pinned.
// No serial number or timestamp, so the same binary gives the same SBOM.
func writeSBOMs(ctx context.Context, o options, archives []archive) error {
	tool := filepath.Join(o.repo, "scripts", "release")
	for _, a := range archives {
		out := fmt.Sprintf("%s_%s_%s_%s.cdx.json", a.command, o.version, a.platform.os, a.platform.arch)
		err := command(ctx, tool, nil, "go", "tool", "cyclonedx-gomod", "bin",
			"-json", "-noserial", "-notimestamp", "-version", o.version, "-output", filepath.Join(o.dist, out), a.binary)
		if err != nil {
			return err
		}
	}
	return nil
}

// buildImage builds the multi-platform image index of the linux platforms
// into dist/image with the daemonless builder, and returns its digest.
func buildImage(ctx context.Context, o options, stderr io.Writer) (string, error) {
	var archs []string
	for _, p := range platforms {
		if p.os == "linux" {
			archs = append(archs, p.arch)
		}
	}
	out := filepath.Join(o.dist, "image")
	err := command(ctx, filepath.Join(o.repo, "scripts", "tools", "image"),
		[]string{"SOURCE_DATE_EPOCH=" + fmt.Sprint(o.created.Unix())},
		"go", "run", ".", "-repo", o.repo, "-out", out, "-strict",
		"-arch", strings.Join(archs, ","), "-version", o.version, "-commit", o.commit, "-tag", o.imageRepo+":"+o.version)
	if err != nil {
		return "", err
	}
	idx, err := readLayoutIndex(out)
	if err != nil {
		return "", err
	}
	d, err := idx.Digest()
	if err != nil {
		return "", err
	}
	return d.String(), nil
}
