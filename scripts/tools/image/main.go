// Command image builds silentauth's container image without a container
// engine, for machines where `docker build` cannot run (no daemon, no base
// image to pull), for one architecture or, with -arch amd64,arm64, as a
// multi-platform image index (what `make release` ships). It produces the image the Dockerfile describes: the
// static binaries (CGO_ENABLED=0, -trimpath, -ldflags "-s -w") in one layer
// on an empty base, owned by and run as 65532:65532, with the Dockerfile's
// entrypoint, command, ports and labels. The result is an OCI image layout
// directory, optionally also a tarball that `docker load` and `podman load`
// read, and is reproducible: the same sources give the same digest.
//
// It is a module of its own so that go-containerregistry stays out of the
// product's go.mod. From the repository root:
//
//	go -C scripts/tools/image run . -out "$PWD/bin/image" [-tarball "$PWD/bin/image.tar"]
//
// Relative -out and -tarball paths are relative to the directory `go run`
// runs in (scripts/tools/image with -C), hence $PWD. Without -out the
// layout goes to bin/image of the repository, which is found by walking up
// from the current directory (or given with -repo).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// productModule is the module whose binaries go into the image.
const productModule = "github.com/silentauth/silentauth"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

// options are the validated flags.
type options struct {
	repo    string    // repository root holding the product's go.mod
	out     string    // OCI layout directory, replaced whole
	tarball string    // optional docker-loadable tarball
	tag     string    // reference written into the tarball and the index
	version string    // org.opencontainers.image.version
	commit  string    // VCS revision stamped into the binaries
	archs   []string  // GOARCH of the binaries and the image platform, one image each
	created time.Time // image and file timestamps (SOURCE_DATE_EPOCH, else 1970)
	strict  bool      // a binary that does not build is an error, not a skip
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.repo, "repo", "", "repository root (default: found by walking up to the go.mod of "+productModule+")")
	fs.StringVar(&o.out, "out", "", "OCI image layout directory to write, replaced whole (default REPO/bin/image)")
	fs.StringVar(&o.tarball, "tarball", "", "also write a tarball for `docker load` / `podman load`")
	fs.StringVar(&o.tag, "tag", "", "image reference for the tarball and the layout's ref.name (default silentauth:VERSION)")
	fs.StringVar(&o.version, "version", "", "image version label (default: git describe of the repository, else dev)")
	fs.StringVar(&o.commit, "commit", "", "VCS revision stamped into the binaries (default: git rev-parse HEAD of the repository, else unknown)")
	arch := fs.String("arch", firstNonEmpty(getenv("GOARCH"), runtime.GOARCH), "GOARCH of the image (linux only); several, comma-separated (amd64,arm64), make a multi-platform index")
	fs.BoolVar(&o.strict, "strict", false, "fail when an optional binary (kubectl-silentauth) does not build, instead of leaving it out")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	o.archs = strings.Split(*arch, ",")
	if err := o.complete(getenv); err != nil {
		return err
	}

	start := time.Now()
	tmp, err := os.MkdirTemp("", "silentauth-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	var imgs []platformImage
	var sizes []string
	for _, arch := range o.archs {
		dir := filepath.Join(tmp, arch)
		if err := os.Mkdir(dir, 0o700); err != nil {
			return err
		}
		var files []file
		for _, b := range binaries {
			f, err := build(ctx, o, arch, b, dir, stderr)
			if errors.Is(err, errSkipped) {
				continue
			}
			if err != nil {
				return err
			}
			files = append(files, f)
			sizes = append(sizes, fmt.Sprintf("  linux/%s /%s\t%d bytes", arch, f.name, f.size))
		}
		img, err := newImage(o, arch, files)
		if err != nil {
			return err
		}
		imgs = append(imgs, platformImage{arch: arch, img: img})
	}
	digest, err := writeImages(o, imgs)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "image %s (%s) written to %s in %s\n", o.tag, digest, o.out, time.Since(start).Round(time.Millisecond))
	fmt.Fprintln(stdout, strings.Join(sizes, "\n"))
	if o.tarball != "" {
		fmt.Fprintf(stdout, "tarball: %s (docker load -i %s)\n", o.tarball, o.tarball)
	}
	return nil
}

// complete fills in defaults and checks the options.
func (o *options) complete(getenv func(string) string) error {
	if o.repo == "" {
		wd, err := os.Getwd()
		if err != nil {
			return err
		}
		if o.repo, err = findRepo(wd); err != nil {
			return err
		}
	}
	repo, err := filepath.Abs(o.repo)
	if err != nil {
		return err
	}
	if mod, _ := modulePath(filepath.Join(repo, "go.mod")); mod != productModule {
		return fmt.Errorf("-repo %s: its go.mod is not module %s", repo, productModule)
	}
	o.repo = repo
	if o.out == "" {
		o.out = filepath.Join(o.repo, "bin", "image")
	}
	if o.out, err = filepath.Abs(o.out); err != nil {
		return err
	}
	if o.tarball != "" {
		if o.tarball, err = filepath.Abs(o.tarball); err != nil {
			return err
		}
	}
	if o.version == "" {
		o.version = gitDescribe(o.repo)
	}
	if o.commit == "" {
		o.commit = gitCommit(o.repo)
	}
	if o.tag == "" {
		o.tag = "silentauth:" + tagSafe(o.version)
	}
	o.created = time.Unix(0, 0).UTC()
	if s := getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("SOURCE_DATE_EPOCH=%q: not a number of seconds", s)
		}
		o.created = time.Unix(sec, 0).UTC()
	}
	seen := map[string]bool{}
	for _, arch := range o.archs {
		if arch == "" || strings.ContainsAny(arch, "/ ") || seen[arch] {
			return fmt.Errorf("-arch %q: want GOARCHs such as amd64 or amd64,arm64, each once", strings.Join(o.archs, ","))
		}
		seen[arch] = true
	}
	if len(o.archs) > 1 && o.tarball != "" {
		return errors.New("-tarball holds one platform: give one -arch")
	}
	return nil
}

// findRepo walks up from dir to the directory whose go.mod is the
// product's (skipping this tool's own go.mod on the way).
func findRepo(dir string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		if mod, err := modulePath(filepath.Join(d, "go.mod")); err == nil && mod == productModule {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod of %s above %s: run inside the repository or pass -repo", productModule, dir)
		}
	}
}

// modulePath reads the module line of a go.mod.
func modulePath(gomod string) (string, error) {
	data, err := os.ReadFile(gomod)
	if err != nil {
		return "", err
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`), nil
		}
	}
	return "", fmt.Errorf("%s: no module line", gomod)
}

// tagSafe turns a version into a valid tag (letters, digits, _ . -).
func tagSafe(v string) string {
	b := []byte(v)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			b[i] = '-'
		}
	}
	if len(b) > 128 {
		b = b[:128]
	}
	return string(b)
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
