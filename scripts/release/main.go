// Command release builds everything a silentauth release ships into one
// folder, without a container engine and with nothing from the network but
// the Go module proxy:
//
//   - static binaries of silentauth and kubectl-silentauth for linux/amd64,
//     linux/arm64 and darwin/arm64, version and commit stamped;
//   - a tar.gz archive of each binary with LICENSE and README.md;
//   - a CycloneDX SBOM of each binary (cyclonedx-gomod);
//   - the container image as a multi-platform OCI index (linux/amd64 and
//     linux/arm64), built by scripts/tools/image, in image/;
//   - the Helm chart packaged with the release as appVersion (so the image
//     tag) and chart version;
//   - the krew plugin manifest of kubectl-silentauth, with the archives'
//     sha256;
//   - SHA256SUMS of all of it and, given a signing key, SHA256SUMS.sig and a
//     signed statement of the image index digest.
//
// It is a module of its own, like scripts/tools/image, so that
// go-containerregistry and cyclonedx-gomod stay out of the product's go.mod.
// From the repository root (make release does this):
//
//	go -C scripts/release run . -version v0.1.0 -dist "$PWD/dist" [-signing-key key.pem]
//
// and, to publish the image index the folder holds (from CI, with registry
// credentials in ~/.docker/config.json):
//
//	go -C scripts/release run . push-image -dist "$PWD/dist" -to ghcr.io/silentauth/silentauth:v0.1.0
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// productModule is the module whose binaries are released.
const productModule = "github.com/silentauth/silentauth"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "push-image" {
		return pushImageCmd(ctx, args[1:], stdout, stderr)
	}
	o, err := parseOptions(args, stderr)
	if err != nil {
		return err
	}
	return release(ctx, o, stdout, stderr)
}

// options are the validated flags of a release.
type options struct {
	repo       string    // repository root
	dist       string    // output folder, replaced whole
	version    string    // v0.1.0
	commit     string    // VCS revision stamped into the binaries
	signingKey string    // PEM ECDSA P-256 private key; "" leaves the release unsigned
	imageRepo  string    // image repository the chart and the image statement name
	baseURL    string    // where the archives are downloaded from (krew manifest)
	helm       string    // helm binary
	created    time.Time // timestamps in archives and image (the commit's time)
}

// semver is a release version: v, then SemVer 2.0.0 (krew and Helm need it).
var semver = regexp.MustCompile(`^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)

func parseOptions(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("release", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.version, "version", "", "release version, v then SemVer (v0.1.0); required")
	fs.StringVar(&o.dist, "dist", "", "output folder, replaced whole (default REPO/dist)")
	fs.StringVar(&o.repo, "repo", "", "repository root (default: where this module's go.mod takes "+productModule+" from)")
	fs.StringVar(&o.commit, "commit", "", "VCS revision stamped into the binaries (default: git rev-parse HEAD)")
	fs.StringVar(&o.signingKey, "signing-key", "", "PEM ECDSA P-256 private key that signs SHA256SUMS and the image digest (default: unsigned)")
	fs.StringVar(&o.imageRepo, "image-repo", "ghcr.io/silentauth/silentauth", "image repository the release is published to")
	fs.StringVar(&o.baseURL, "download-url", "https://github.com/silentauth/silentauth/releases/download/{version}/", "where the archives are published ({version} is replaced)")
	fs.StringVar(&o.helm, "helm", "", "helm binary (default: $SILENTAUTH_TOOLS_DIR/bin/helm, else helm on PATH)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	var problems []error
	if !semver.MatchString(o.version) {
		problems = append(problems, fmt.Errorf("-version %q: want v and a SemVer version, such as v0.1.0", o.version))
	}
	if o.repo == "" {
		var err error
		if o.repo, err = productDir(); err != nil {
			problems = append(problems, err)
		}
	}
	if o.repo != "" {
		if abs, err := filepath.Abs(o.repo); err == nil {
			o.repo = abs
		}
		if o.dist == "" {
			o.dist = filepath.Join(o.repo, "dist")
		}
	}
	if abs, err := filepath.Abs(o.dist); err == nil {
		o.dist = abs
	}
	if o.signingKey != "" {
		if _, err := readSigningKey(o.signingKey); err != nil {
			problems = append(problems, fmt.Errorf("-signing-key: %w", err))
		}
	}
	if o.helm == "" {
		o.helm = findHelm()
	}
	if o.helm == "" {
		problems = append(problems, errors.New("helm not found: run `make tools` or pass -helm"))
	}
	if err := errors.Join(problems...); err != nil {
		return o, err
	}
	o.baseURL = strings.ReplaceAll(o.baseURL, "{version}", o.version)
	if o.commit == "" {
		o.commit = git(o.repo, "rev-parse", "HEAD")
	}
	if o.commit == "" {
		o.commit = "unknown"
	}
	o.created = time.Unix(0, 0).UTC()
	if s := git(o.repo, "log", "-1", "--format=%ct"); s != "" {
		if sec, err := strconv.ParseInt(s, 10, 64); err == nil {
			o.created = time.Unix(sec, 0).UTC()
		}
	}
	return o, nil
}

// release writes the whole release into o.dist, step by step.
func release(ctx context.Context, o options, stdout, stderr io.Writer) error {
	start := time.Now()
	if err := os.RemoveAll(o.dist); err != nil {
		return err
	}
	if err := os.MkdirAll(o.dist, 0o755); err != nil {
		return err
	}
	step := func(name string, f func() error) error {
		t := time.Now()
		if err := f(); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		fmt.Fprintf(stdout, "release: %s (%s)\n", name, time.Since(t).Round(time.Millisecond))
		return nil
	}
	var archives []archive
	var imageDigest string
	steps := []struct {
		name string
		f    func() error
	}{
		{"binaries and archives", func() (err error) { archives, err = buildArchives(ctx, o, stderr); return err }},
		{"SBOMs", func() error { return writeSBOMs(ctx, o, archives) }},
		{"image index", func() (err error) { imageDigest, err = buildImage(ctx, o, stderr); return err }},
		{"Helm chart", func() error { return packageChart(ctx, o) }},
		{"krew manifest", func() error { return writeKrewManifest(o, archives) }},
		{"image statement", func() error { return writeImageStatement(o, imageDigest) }},
		{"SHA256SUMS", func() error { return writeChecksums(o) }},
		{"signatures", func() error { return sign(o, stdout) }},
	}
	for _, s := range steps {
		if err := step(s.name, s.f); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "release %s (commit %s, image %s@%s) written to %s in %s\n",
		o.version, o.commit, o.imageRepo, imageDigest, o.dist, time.Since(start).Round(time.Second))
	return nil
}

// productDir is the directory of the product's module as this module's
// go.mod resolves it (its replace: the repository root), asked of the go
// command.
func productDir() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", productModule).Output()
	dir := strings.TrimSpace(string(out))
	if err != nil || dir == "" {
		return "", fmt.Errorf("the directory of %s (run inside scripts/release, or pass -repo): %v", productModule, err)
	}
	return dir, nil
}

// findHelm looks where `make tools` installs helm, then on PATH.
func findHelm() string {
	dir := os.Getenv("SILENTAUTH_TOOLS_DIR")
	if dir == "" {
		if cache, err := os.UserCacheDir(); err == nil {
			dir = filepath.Join(cache, "silentauth", "tools")
		}
	}
	if dir != "" {
		bin := filepath.Join(dir, "bin", "helm")
		if fi, err := os.Stat(bin); err == nil && fi.Mode()&0o111 != 0 {
			return bin
		}
	}
	path, _ := exec.LookPath("helm")
	return path
}

// git runs git in repo and returns its trimmed output, "" on any failure.
func git(repo string, args ...string) string {
	cmd := exec.Command("git", args...)
	cmd.Dir = repo
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// command runs name with args in dir, returning its output in the error
// when it fails.
func command(ctx context.Context, dir string, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
