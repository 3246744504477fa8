package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"debug/buildinfo"
	"debug/elf"
	"debug/macho"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"log"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/silentauth/silentauth/internal/testenv/kubetest"
	"github.com/silentauth/silentauth/internal/testenv/toolsdir"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// The release the tests build, once per test binary.
const (
	testVersion = "v0.9.0"
	testCommit  = "0123456789abcdef0123456789abcdef01234567"
	imageRepo   = "ghcr.io/silentauth/silentauth"
)

// built is the release shared by the tests: made once, on first use, with
// a throwaway signing key, its archives' download URL pointing at a local
// file server over the release folder (so krew's validator can download
// them as from a real release page).
var built struct {
	once  sync.Once
	tmp   string
	dist  string
	key   *ecdsa.PrivateKey
	files *httptest.Server
	log   string
	err   error
}

func TestMain(m *testing.M) {
	code := kubetest.Main(m)
	if built.files != nil {
		built.files.Close()
	}
	if built.tmp != "" {
		os.RemoveAll(built.tmp)
	}
	os.Exit(code)
}

// buildRelease runs the release once for the test binary and returns its
// folder. It skips (or fails, SILENTAUTH_REQUIRE_INTEGRATION=1) without
// helm.
func buildRelease(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a whole release: about a minute with a warm build cache")
	}
	helm := toolsdir.Need(t, "helm")
	built.once.Do(func() {
		if built.tmp, built.err = os.MkdirTemp("", "silentauth-release-test-"); built.err != nil {
			return
		}
		built.dist = filepath.Join(built.tmp, "dist")
		built.files = httptest.NewServer(http.FileServer(http.Dir(built.dist)))
		keyFile := filepath.Join(built.tmp, "key.pem")
		if built.key, built.err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); built.err != nil {
			return
		}
		der, err := x509.MarshalPKCS8PrivateKey(built.key)
		if err != nil {
			built.err = err
			return
		}
		if built.err = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); built.err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		// The tool runs as make release runs it: its own process, built
		// without the race detector (which would make compressing the
		// archives ten times slower).
		tool := filepath.Join(built.tmp, "release")
		if out, err := exec.CommandContext(ctx, "go", "build", "-o", tool, ".").CombinedOutput(); err != nil {
			built.err = fmt.Errorf("building the release tool: %v\n%s", err, out)
			return
		}
		start := time.Now()
		cmd := exec.CommandContext(ctx, tool, "-version", testVersion, "-commit", testCommit, "-dist", built.dist,
			"-signing-key", keyFile, "-helm", helm, "-image-repo", imageRepo, "-download-url", built.files.URL+"/")
		out, err := cmd.CombinedOutput()
		built.err = err
		built.log = fmt.Sprintf("%s(release took %s)", out, time.Since(start).Round(time.Millisecond))
	})
	if built.err != nil {
		t.Fatalf("release: %v\n%s", built.err, built.log)
	}
	return built.dist
}

// TestArchives: an archive per command and platform holding the static
// binary for that platform and the docs; the host's binaries run and print
// the stamped version.
func TestArchives(t *testing.T) {
	dist := buildRelease(t)
	t.Log(built.log)
	license, err := os.ReadFile(filepath.Join(repoRoot(t), "LICENSE"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range platforms {
		for _, c := range commands {
			name := fmt.Sprintf("%s_%s_%s_%s.tar.gz", c.name, testVersion, p.os, p.arch)
			files := untar(t, filepath.Join(dist, name))
			if got := slices.Sorted(maps.Keys(files)); !slices.Equal(got, []string{"LICENSE", "README.md", c.name}) {
				t.Errorf("%s holds %v, want %s, LICENSE and README.md", name, got, c.name)
			}
			if !bytes.Equal(files["LICENSE"], license) {
				t.Errorf("%s: LICENSE differs from the repository's", name)
			}
			bin := files[c.name]
			checkExecutable(t, name, bin, p)
			loose, err := os.ReadFile(filepath.Join(dist, "bin", p.os+"_"+p.arch, c.name))
			if err != nil || !bytes.Equal(loose, bin) {
				t.Errorf("%s: bin/%s_%s/%s is not the archived binary (%v)", name, p.os, p.arch, c.name, err)
			}
			if p.os != runtime.GOOS || p.arch != runtime.GOARCH {
				continue
			}
			out, err := exec.Command(filepath.Join(dist, "bin", p.os+"_"+p.arch, c.name), "version").CombinedOutput()
			want := c.name + " " + testVersion + " (commit " + testCommit + ", " + runtime.Version() + ")"
			if err != nil || strings.TrimSpace(string(out)) != want {
				t.Errorf("%s version: %v %q, want %q", c.name, err, out, want)
			}
		}
	}
}

// checkExecutable asserts a static executable for p: ELF for Linux (the
// platform's machine, no interpreter), Mach-O for macOS.
func checkExecutable(t *testing.T, name string, bin []byte, p platform) {
	t.Helper()
	switch p.os {
	case "linux":
		f, err := elf.NewFile(bytes.NewReader(bin))
		if err != nil {
			t.Errorf("%s: not ELF: %v", name, err)
			return
		}
		if want := elfMachine[p.arch]; f.Machine != want {
			t.Errorf("%s: ELF machine %v, want %v", name, f.Machine, want)
		}
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP {
				t.Errorf("%s: dynamically linked (PT_INTERP)", name)
			}
		}
	case "darwin":
		f, err := macho.NewFile(bytes.NewReader(bin))
		if err != nil {
			t.Errorf("%s: not Mach-O: %v", name, err)
			return
		}
		if p.arch == "arm64" && f.Cpu != macho.CpuArm64 {
			t.Errorf("%s: Mach-O CPU %v, want arm64", name, f.Cpu)
		}
	}
}

var elfMachine = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

// TestChecksumsAndSignatures: SHA256SUMS names every file of the release
// with its right sha256, sha256sum -c agrees, and the signatures verify
// with the release key, in Go and with the openssl command the README
// gives; a changed byte fails them.
func TestChecksumsAndSignatures(t *testing.T) {
	dist := buildRelease(t)
	sums, err := os.ReadFile(filepath.Join(dist, checksumsFile))
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(sums))
	for sc.Scan() {
		sum, file, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			t.Fatalf("SHA256SUMS line %q", sc.Text())
		}
		listed[file] = sum
	}
	var files []string
	err = filepath.WalkDir(dist, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dist, path)
		files = append(files, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		unlisted := strings.HasPrefix(f, "image/") || f == checksumsFile || f == publicKeyFile || strings.HasSuffix(f, sigSuffix)
		data, _ := os.ReadFile(filepath.Join(dist, f))
		sum := sha256.Sum256(data)
		switch want, ok := listed[f]; {
		case unlisted && ok:
			t.Errorf("SHA256SUMS lists %s", f)
		case !unlisted && !ok:
			t.Errorf("SHA256SUMS does not list %s", f)
		case ok && want != hex.EncodeToString(sum[:]):
			t.Errorf("SHA256SUMS: %s has sha256 %x, listed %s", f, sum, want)
		}
	}
	for _, want := range []string{"silentauth-" + chartVersion(testVersion) + ".tgz", krewFile, statementFile,
		"silentauth_" + testVersion + "_linux_amd64.cdx.json", "kubectl-silentauth_" + testVersion + "_darwin_arm64.tar.gz"} {
		if _, ok := listed[want]; !ok {
			t.Errorf("SHA256SUMS does not list %s", want)
		}
	}
	if sha256sum := toolsdir.Find("sha256sum"); sha256sum != "" {
		cmd := exec.Command(sha256sum, "--strict", "-c", checksumsFile)
		cmd.Dir = dist
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("sha256sum -c: %v\n%s", err, out)
		}
	}

	// The public key written beside the release is the signing key's.
	pubPEM, err := os.ReadFile(filepath.Join(dist, publicKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pubPEM)
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil || !built.key.PublicKey.Equal(pub) {
		t.Fatalf("%s is not the signing key's public key (%v)", publicKeyFile, err)
	}
	tampered := t.TempDir()
	for _, f := range []string{checksumsFile, statementFile} {
		data, _ := os.ReadFile(filepath.Join(dist, f))
		sig, err := os.ReadFile(filepath.Join(dist, f+sigSuffix))
		if err != nil {
			t.Fatal(err)
		}
		digest := sha256.Sum256(data)
		if !ecdsa.VerifyASN1(&built.key.PublicKey, digest[:], sig) {
			t.Errorf("%s%s does not verify", f, sigSuffix)
		}
		changed := bytes.Clone(data)
		changed[len(changed)/2] ^= 1
		digest = sha256.Sum256(changed)
		if ecdsa.VerifyASN1(&built.key.PublicKey, digest[:], sig) {
			t.Errorf("%s%s verifies a changed %s", f, sigSuffix, f)
		}
		if err := os.WriteFile(filepath.Join(tampered, f), changed, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// The README's check, with openssl.
	openssl := toolsdir.Find("openssl")
	if openssl == "" {
		toolsdir.Missing(t, "openssl not found: run `make tools`")
	}
	for _, f := range []string{checksumsFile, statementFile} {
		verify := func(dir string) ([]byte, error) {
			cmd := exec.Command(openssl, "dgst", "-sha256", "-verify", filepath.Join(dist, publicKeyFile),
				"-signature", filepath.Join(dist, f+sigSuffix), filepath.Join(dir, f))
			return cmd.CombinedOutput()
		}
		if out, err := verify(dist); err != nil || !strings.Contains(string(out), "Verified OK") {
			t.Errorf("openssl dgst -verify %s: %v\n%s", f, err, out)
		}
		if out, err := verify(tampered); err == nil {
			t.Errorf("openssl dgst -verify accepts a changed %s:\n%s", f, out)
		}
	}
}

// TestSBOMs: each binary's CycloneDX SBOM names the product at the release
// version and lists every module linked into that binary, with its version.
func TestSBOMs(t *testing.T) {
	dist := buildRelease(t)
	for _, p := range platforms {
		for _, c := range commands {
			base := fmt.Sprintf("%s_%s_%s_%s", c.name, testVersion, p.os, p.arch)
			var bom struct {
				BOMFormat   string `json:"bomFormat"`
				SpecVersion string `json:"specVersion"`
				Metadata    struct {
					Component struct{ Name, Version string } `json:"component"`
				} `json:"metadata"`
				Components []struct{ Name, Version, Purl string } `json:"components"`
			}
			data, err := os.ReadFile(filepath.Join(dist, base+".cdx.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(data, &bom); err != nil {
				t.Fatalf("%s.cdx.json: %v", base, err)
			}
			if bom.BOMFormat != "CycloneDX" || bom.SpecVersion == "" {
				t.Errorf("%s.cdx.json: bomFormat %q specVersion %q", base, bom.BOMFormat, bom.SpecVersion)
			}
			if m := bom.Metadata.Component; m.Name != productModule || m.Version != testVersion {
				t.Errorf("%s.cdx.json: describes %s %s, want %s %s", base, m.Name, m.Version, productModule, testVersion)
			}
			have := map[string]bool{}
			for _, comp := range bom.Components {
				have[comp.Name+"@"+comp.Version] = true
			}
			info, err := buildinfo.ReadFile(filepath.Join(dist, "bin", p.os+"_"+p.arch, c.name))
			if err != nil {
				t.Fatal(err)
			}
			if len(info.Deps) < 10 {
				t.Fatalf("%s: only %d modules recorded in the binary", base, len(info.Deps))
			}
			for _, d := range info.Deps {
				if d.Replace != nil {
					d = d.Replace
				}
				if !have[d.Path+"@"+d.Version] {
					t.Errorf("%s.cdx.json does not list %s %s", base, d.Path, d.Version)
				}
			}
		}
	}
}

// TestChartFromOCIRegistry: the packaged chart is pushed to an OCI registry
// and installed from it with helm into a real API server; the Deployment
// runs the release's image tag.
func TestChartFromOCIRegistry(t *testing.T) {
	dist := buildRelease(t)
	env := kubetest.Shared(t)
	reg := startRegistry(t)
	chart := filepath.Join(dist, "silentauth-"+chartVersion(testVersion)+".tgz")
	license, err := os.ReadFile(filepath.Join(repoRoot(t), "LICENSE"))
	if err != nil {
		t.Fatal(err)
	}
	if got := untar(t, chart)["silentauth/LICENSE"]; !bytes.Equal(got, license) {
		t.Error("the packaged chart's LICENSE is not the repository's")
	}
	helm(t, "push", chart, "oci://"+reg+"/charts", "--plain-http")

	ref := "oci://" + reg + "/charts/silentauth"
	shown := helm(t, "show", "chart", ref, "--version", chartVersion(testVersion), "--plain-http")
	for _, want := range []string{"version: " + chartVersion(testVersion), "appVersion: " + testVersion, "artifacthub.io/license: Apache-2.0"} {
		if !strings.Contains(shown, want) {
			t.Errorf("chart from the registry lacks %q:\n%s", want, shown)
		}
	}
	ns := env.NewNamespace(t)
	helm(t, "install", "silentauth", ref, "--version", chartVersion(testVersion), "--plain-http",
		"--namespace", ns, "--kubeconfig", env.AdminKubeconfig(t), "--set", "config.sessionAPI.serviceAccounts={shop/web}")

	client, err := kubernetes.NewForConfig(env.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	deps, err := client.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(deps.Items) != 1 {
		t.Fatalf("%d Deployments installed, want 1", len(deps.Items))
	}
	d := deps.Items[0]
	if got, want := d.Spec.Template.Spec.Containers[0].Image, imageRepo+":"+testVersion; got != want {
		t.Errorf("Deployment runs image %s, want %s", got, want)
	}
	if got := d.Labels["app.kubernetes.io/version"]; got != testVersion {
		t.Errorf("Deployment label app.kubernetes.io/version = %q, want %s", got, testVersion)
	}
}

// TestImageIndexInRegistry: the image index, pushed to a registry, lists
// linux/amd64 and linux/arm64, each image holding both binaries built for
// its machine; its digest is the one the signed image statement names.
func TestImageIndexInRegistry(t *testing.T) {
	dist := buildRelease(t)
	reg := startRegistry(t)
	ref := reg + "/silentauth/silentauth:" + testVersion
	var out bytes.Buffer
	if err := run(t.Context(), []string{"push-image", "-dist", dist, "-to", ref}, &out, &out); err != nil {
		t.Fatalf("push-image: %v\n%s", err, out.String())
	}

	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(tag, remote.WithContext(t.Context()))
	if err != nil {
		t.Fatal(err)
	}
	digest, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "@"+digest.String()) {
		t.Errorf("push-image reported %q, the registry serves %s", out.String(), digest)
	}
	var stmt imageStatement
	data, err := os.ReadFile(filepath.Join(dist, statementFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &stmt); err != nil {
		t.Fatal(err)
	}
	if stmt.Critical.Image.DockerManifestDigest != digest.String() || stmt.Critical.Identity.DockerReference != imageRepo {
		t.Errorf("image statement names %s@%s, the registry serves %s",
			stmt.Critical.Identity.DockerReference, stmt.Critical.Image.DockerManifestDigest, digest)
	}

	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var archs []string
	for _, m := range im.Manifests {
		if m.Platform == nil || m.Platform.OS != "linux" {
			t.Fatalf("index entry %s without a linux platform: %+v", m.Digest, m.Platform)
		}
		arch := m.Platform.Architecture
		archs = append(archs, arch)
		img, err := remote.Image(tag.Context().Digest(m.Digest.String()), remote.WithContext(t.Context()))
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.Architecture != arch || cf.Config.Labels["org.opencontainers.image.version"] != testVersion ||
			cf.Config.Labels["org.opencontainers.image.licenses"] != "Apache-2.0" {
			t.Errorf("linux/%s: config architecture %s, labels %v", arch, cf.Architecture, cf.Config.Labels)
		}
		layers, err := img.Layers()
		if err != nil || len(layers) != 1 {
			t.Fatalf("linux/%s: %d layers (%v), want 1", arch, len(layers), err)
		}
		rc, err := layers[0].Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		files := readTar(t, rc)
		rc.Close()
		if got := slices.Sorted(maps.Keys(files)); !slices.Equal(got, []string{"kubectl-silentauth", "silentauth"}) {
			t.Errorf("linux/%s image holds %v", arch, got)
		}
		for n, bin := range files {
			checkExecutable(t, "linux/"+arch+" /"+n, bin, platform{"linux", arch})
		}
	}
	if slices.Sort(archs); !slices.Equal(archs, []string{"amd64", "arm64"}) {
		t.Errorf("index platforms %v, want linux/amd64 and linux/arm64", archs)
	}
}

// TestKrewManifest: the plugin manifest passes krew's own validator, which
// installs every platform's archive from the download URL with `kubectl
// krew install` and checks that LICENSE comes along; then `kubectl krew
// install --manifest --archive`, as a user testing a release does, gives a
// plugin kubectl runs.
func TestKrewManifest(t *testing.T) {
	dist := buildRelease(t)
	kubectl := toolsdir.Need(t, "kubectl")
	krew := toolsdir.Need(t, "krew")
	validate := toolsdir.Need(t, "validate-krew-manifest")

	// kubectl finds krew as a plugin, kubectl-krew, on PATH.
	path := t.TempDir()
	for n, target := range map[string]string{"kubectl": kubectl, "kubectl-krew": krew} {
		if err := os.Symlink(target, filepath.Join(path, n)); err != nil {
			t.Fatal(err)
		}
	}
	manifest := filepath.Join(dist, krewFile)
	cmd := exec.Command(validate, "-manifest", manifest)
	cmd.Env = append(os.Environ(), "PATH="+path+string(os.PathListSeparator)+os.Getenv("PATH"), "KREW_NO_UPGRADE_CHECK=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("validate-krew-manifest: %v\n%s", err, out)
	} else if !strings.Contains(string(out), fmt.Sprintf("all %d spec.platforms installed fine", len(platforms))) {
		t.Errorf("validate-krew-manifest did not install every platform:\n%s", out)
	}

	archive := filepath.Join(dist, fmt.Sprintf("kubectl-silentauth_%s_%s_%s.tar.gz", testVersion, runtime.GOOS, runtime.GOARCH))
	root := t.TempDir()
	env := append(os.Environ(), "KREW_ROOT="+root, "KREW_NO_UPGRADE_CHECK=1", "KUBECONFIG=/dev/null",
		"PATH="+filepath.Join(root, "bin")+string(os.PathListSeparator)+path+string(os.PathListSeparator)+os.Getenv("PATH"))
	cmd = exec.Command(kubectl, "krew", "install", "--manifest="+manifest, "--archive="+archive)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kubectl krew install: %v\n%s", err, out)
	}
	cmd = exec.Command(kubectl, "silentauth", "version")
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if want := "kubectl-silentauth " + testVersion + " (commit " + testCommit; err != nil || !strings.Contains(string(out), want) {
		t.Errorf("kubectl silentauth version: %v %q, want %q", err, out, want)
	}
}

// TestKrewManifestPointsAtTheReleasePage: with the default download URL
// the manifest names the archives on the GitHub release of the version.
func TestKrewManifestPointsAtTheReleasePage(t *testing.T) {
	dir := t.TempDir()
	o := options{dist: dir, version: "v1.2.3", baseURL: "https://github.com/silentauth/silentauth/releases/download/v1.2.3/"}
	sum := strings.Repeat("ab", 32)
	err := writeKrewManifest(o, []archive{
		{command: "silentauth", platform: platform{"linux", "amd64"}, path: "silentauth_v1.2.3_linux_amd64.tar.gz", sha256: sum},
		{command: "kubectl-silentauth", platform: platform{"linux", "amd64"}, path: "kubectl-silentauth_v1.2.3_linux_amd64.tar.gz", sha256: sum},
	})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, krewFile))
	for _, want := range []string{
		"version: v1.2.3",
		"uri: https://github.com/silentauth/silentauth/releases/download/v1.2.3/kubectl-silentauth_v1.2.3_linux_amd64.tar.gz",
		"sha256: " + sum,
		"Apache-2.0",
	} {
		if !strings.Contains(string(data), want) {
			t.Errorf("manifest lacks %q:\n%s", want, data)
		}
	}
	if strings.Contains(string(data), "uri: https://github.com/silentauth/silentauth/releases/download/v1.2.3/silentauth_") {
		t.Errorf("manifest names the service's archive:\n%s", data)
	}
}

func TestOptionsRefuse(t *testing.T) {
	for _, tc := range []struct{ name, version, key, want string }{
		{"no version", "", "", "-version"},
		{"version without v", "0.1.0", "", "-version"},
		{"not SemVer", "v0.1", "", "-version"},
		{"missing key", "v0.1.0", "/nonexistent.pem", "-signing-key"},
	} {
		args := []string{"-version", tc.version, "-helm", "/bin/true"}
		if tc.key != "" {
			args = append(args, "-signing-key", tc.key)
		}
		if _, err := parseOptions(args, io.Discard); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one about %s", tc.name, err, tc.want)
		}
	}
}

func TestReadSigningKeyRefusesOtherKeys(t *testing.T) {
	dir := t.TempDir()
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(p384)
	path := filepath.Join(dir, "p384.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readSigningKey(path); err == nil {
		t.Error("a P-384 key was accepted")
	}
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sec1, _ := x509.MarshalECPrivateKey(p256)
	path = filepath.Join(dir, "p256.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}), 0o600); err != nil {
		t.Fatal(err)
	}
	if k, err := readSigningKey(path); err != nil || !k.Equal(p256) {
		t.Errorf("SEC 1 P-256 key: %v", err)
	}
}

// repoRoot is the repository root, above this module.
func repoRoot(t *testing.T) string {
	t.Helper()
	repo, err := productDir()
	if err != nil {
		t.Fatal(err)
	}
	return repo
}

// startRegistry starts an in-process OCI registry on loopback for t and
// returns its host:port.
func startRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// helm runs helm with its folders private to the test binary and no
// cluster but the one --kubeconfig names; it fails t when helm fails.
func helm(t *testing.T, args ...string) string {
	t.Helper()
	home := filepath.Join(built.tmp, "helm")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, toolsdir.Need(t, "helm"), args...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
		"KUBECONFIG=/dev/null",
	)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, errOut.String(), out.String())
	}
	return out.String()
}

// untar reads a .tar.gz into memory: file name → content.
func untar(t *testing.T, path string) map[string][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return readTar(t, gz)
}

func readTar(t *testing.T, r io.Reader) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = data
	}
}
