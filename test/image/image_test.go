// Package image tests the container image: it builds it with the
// daemonless builder (scripts/tools/image, a module of its own) and reads
// the resulting OCI layout with the standard library alone, so the product
// module never depends on go-containerregistry. It also checks that the
// Dockerfile describes the same image and that .dockerignore lets through
// every package the binaries are built from.
package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	nonroot    = 65532
	version    = "test-version"
	commit     = "test-commit"
	buildLimit = 9 * time.Minute // a cold build of both binaries takes ~3 minutes on 2 cores
)

// The media types of an OCI image (image-spec v1.1).
const (
	mediaIndex    = "application/vnd.oci.image.index.v1+json"
	mediaManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaConfig   = "application/vnd.oci.image.config.v1+json"
	mediaLayerGz  = "application/vnd.oci.image.layer.v1.tar+gzip"
)

// descriptor, index, manifest and imageConfig are the parts of the OCI
// image-spec the test reads.
type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations"`
	Platform    *struct {
		OS           string `json:"os"`
		Architecture string `json:"architecture"`
	} `json:"platform"`
}

type index struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Manifests     []descriptor `json:"manifests"`
}

type manifest struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	Config        descriptor        `json:"config"`
	Layers        []descriptor      `json:"layers"`
	Annotations   map[string]string `json:"annotations"`
}

type imageConfig struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Config       struct {
		User         string              `json:"User"`
		Entrypoint   []string            `json:"Entrypoint"`
		Cmd          []string            `json:"Cmd"`
		Env          []string            `json:"Env"`
		WorkingDir   string              `json:"WorkingDir"`
		ExposedPorts map[string]struct{} `json:"ExposedPorts"`
		Labels       map[string]string   `json:"Labels"`
	} `json:"config"`
	RootFS struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
}

// image is the built image as read back from the layout.
type image struct {
	index    index
	manifest manifest
	config   imageConfig
	files    map[string]*tar.Header // layer entries by name
	bin      string                 // directory holding the extracted files
}

var built struct {
	once sync.Once
	tmp  string
	img  *image
	log  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.tmp != "" {
		os.RemoveAll(built.tmp)
	}
	os.Exit(code)
}

// buildImage runs the daemonless builder once for the package and reads
// its output.
func buildImage(t *testing.T) *image {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the image: a few minutes on a cold build cache")
	}
	repo, goBin := repoRoot(t), goTool(t)
	built.once.Do(func() {
		built.tmp, built.err = os.MkdirTemp("", "silentauth-image-test-")
		if built.err != nil {
			return
		}
		out := filepath.Join(built.tmp, "layout")
		ctx, cancel := context.WithTimeout(context.Background(), buildLimit)
		defer cancel()
		// go -C runs the builder inside its own module; -strict turns a
		// kubectl plugin that does not build into a failure here.
		cmd := exec.CommandContext(ctx, goBin, "-C", filepath.Join(repo, "scripts", "tools", "image"),
			"run", ".", "-repo", repo, "-out", out, "-version", version, "-commit", commit, "-strict")
		var log bytes.Buffer
		cmd.Stdout, cmd.Stderr = &log, &log
		start := time.Now()
		err := cmd.Run()
		built.log = fmt.Sprintf("%s(builder ran %s)", log.String(), time.Since(start).Round(time.Millisecond))
		if err != nil {
			built.err = fmt.Errorf("image builder: %w\n%s", err, built.log)
			return
		}
		built.img, built.err = readLayout(out, filepath.Join(built.tmp, "rootfs"))
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.img
}

// TestImageLayout: an OCI layout whose index, manifest, config and layer
// are intact (digests and sizes verified) and carry the Dockerfile's
// configuration.
func TestImageLayout(t *testing.T) {
	img := buildImage(t)
	t.Log(built.log)

	if img.index.MediaType != mediaIndex || len(img.index.Manifests) != 1 {
		t.Fatalf("index: media type %q with %d manifests, want %s with 1", img.index.MediaType, len(img.index.Manifests), mediaIndex)
	}
	d := img.index.Manifests[0]
	if d.Platform == nil || d.Platform.OS != "linux" || d.Platform.Architecture != runtime.GOARCH {
		t.Errorf("index platform = %+v, want linux/%s", d.Platform, runtime.GOARCH)
	}
	if d.Annotations["org.opencontainers.image.ref.name"] == "" {
		t.Error("index: no org.opencontainers.image.ref.name")
	}
	m := img.manifest
	if m.MediaType != mediaManifest || m.Config.MediaType != mediaConfig || len(m.Layers) != 1 || m.Layers[0].MediaType != mediaLayerGz {
		t.Errorf("manifest %s, config %s, layers %v: want an OCI image with one gzip layer", m.MediaType, m.Config.MediaType, m.Layers)
	}

	c := img.config
	if c.OS != "linux" || c.Architecture != runtime.GOARCH {
		t.Errorf("config platform %s/%s, want linux/%s", c.OS, c.Architecture, runtime.GOARCH)
	}
	if c.Config.User != "65532:65532" {
		t.Errorf("User = %q, want 65532:65532", c.Config.User)
	}
	if !slices.Equal(c.Config.Entrypoint, []string{"/silentauth"}) {
		t.Errorf("Entrypoint = %q, want [/silentauth]", c.Config.Entrypoint)
	}
	if !slices.Equal(c.Config.Cmd, []string{"serve", "--config", "/etc/silentauth/config.yaml"}) {
		t.Errorf("Cmd = %q", c.Config.Cmd)
	}
	if len(c.Config.Env) != 0 {
		t.Errorf("Env = %q, want none", c.Config.Env)
	}
	if got := slices.Sorted(maps.Keys(c.Config.ExposedPorts)); !slices.Equal(got, []string{"9001/tcp", "9002/tcp", "9003/tcp", "9090/tcp"}) {
		t.Errorf("ExposedPorts = %v", got)
	}
	for _, k := range []string{"source", "title", "description", "licenses", "version"} {
		key := "org.opencontainers.image." + k
		if c.Config.Labels[key] == "" {
			t.Errorf("label %s missing", key)
		}
		if m.Annotations[key] != c.Config.Labels[key] {
			t.Errorf("manifest annotation %s = %q, label %q: want the same", key, m.Annotations[key], c.Config.Labels[key])
		}
	}
	if got := c.Config.Labels["org.opencontainers.image.version"]; got != version {
		t.Errorf("version label = %q, want %q (-version)", got, version)
	}
	if got := c.Config.Labels["org.opencontainers.image.licenses"]; got != "Apache-2.0" {
		t.Errorf("licenses label = %q, want Apache-2.0 (the LICENSE file)", got)
	}
}

// TestImageFiles: the layer holds the binaries and nothing else, each an
// executable owned by 65532, statically linked, stripped and without the
// build machine's paths; and they run.
func TestImageFiles(t *testing.T) {
	img := buildImage(t)
	want := []string{"silentauth"}
	if hasGoFiles(filepath.Join(repoRoot(t), "cmd", "kubectl-silentauth")) {
		want = append(want, "kubectl-silentauth")
	}
	slices.Sort(want)
	if got := slices.Sorted(maps.Keys(img.files)); !slices.Equal(got, want) {
		t.Fatalf("layer holds %v, want exactly %v (no shell, no /tmp, no directories)", got, want)
	}
	repo := repoRoot(t)
	for name, h := range img.files {
		if h.Typeflag != tar.TypeReg || h.Mode != 0o755 || h.Uid != nonroot || h.Gid != nonroot {
			t.Errorf("/%s: type %c mode %o owner %d:%d, want a regular file 0755 owned by %d:%d", name, h.Typeflag, h.Mode, h.Uid, h.Gid, nonroot, nonroot)
		}
		path := filepath.Join(img.bin, name)
		checkStatic(t, path)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, []byte(repo)) {
			t.Errorf("/%s contains the build path %s: built without -trimpath", name, repo)
		}
	}

	for _, tc := range []struct {
		bin  string
		args []string
		want string
	}{
		{"silentauth", []string{"help"}, "Usage:"},
		{"silentauth", []string{"config", "example"}, "issuer:"},
		{"kubectl-silentauth", []string{"--help"}, "keys"},
		// Stamped by the linker with -version and -commit.
		{"silentauth", []string{"version"}, "silentauth " + version + " (commit " + commit + ", go"},
		{"kubectl-silentauth", []string{"version"}, "kubectl-silentauth " + version + " (commit " + commit + ", go"},
	} {
		if _, ok := img.files[tc.bin]; !ok {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cmd := exec.CommandContext(ctx, filepath.Join(img.bin, tc.bin), tc.args...)
		cmd.Env = []string{} // as in the image: no environment at all
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("/%s %s: %v\n%s\nwant exit 0 and output containing %q", tc.bin, strings.Join(tc.args, " "), err, out, tc.want)
		}
	}
}

// checkStatic asserts an ELF executable for this machine with no
// interpreter and no shared libraries (CGO_ENABLED=0) and no symbol table
// (-ldflags -s).
func checkStatic(t *testing.T, path string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Errorf("%s: not an ELF file: %v", path, err)
		return
	}
	defer f.Close()
	name := filepath.Base(path)
	if f.Type != elf.ET_EXEC {
		t.Errorf("/%s: ELF type %v, want ET_EXEC (a static, non-PIE executable)", name, f.Type)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("/%s has a PT_INTERP program header: dynamically linked, it cannot run FROM scratch", name)
		}
		if p.Type == elf.PT_DYNAMIC {
			t.Errorf("/%s has a PT_DYNAMIC program header", name)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("/%s needs shared libraries %v", name, libs)
	}
	if f.Section(".symtab") != nil {
		t.Errorf("/%s has a symbol table: built without -ldflags -s", name)
	}
	if want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[runtime.GOARCH]; want != 0 && f.Machine != want {
		t.Errorf("/%s: machine %v, want %v", name, f.Machine, want)
	}
}

// readLayout reads an OCI layout: index.json → the manifest → its config
// and layer blobs, verifying every blob's size and sha256 against its
// descriptor. The layer's files are extracted into rootfs.
func readLayout(dir, rootfs string) (*image, error) {
	img := &image{files: map[string]*tar.Header{}, bin: rootfs}
	var layoutFile struct {
		Version string `json:"imageLayoutVersion"`
	}
	if err := readJSON(filepath.Join(dir, "oci-layout"), &layoutFile); err != nil || layoutFile.Version != "1.0.0" {
		return nil, fmt.Errorf("oci-layout: version %q, %v", layoutFile.Version, err)
	}
	if err := readJSON(filepath.Join(dir, "index.json"), &img.index); err != nil {
		return nil, err
	}
	if len(img.index.Manifests) == 0 {
		return nil, errors.New("index.json lists no manifest")
	}
	if err := blobJSON(dir, img.index.Manifests[0], &img.manifest); err != nil {
		return nil, err
	}
	if err := blobJSON(dir, img.manifest.Config, &img.config); err != nil {
		return nil, err
	}
	if len(img.manifest.Layers) != 1 {
		return nil, fmt.Errorf("%d layers, want 1", len(img.manifest.Layers))
	}
	gz, err := blob(dir, img.manifest.Layers[0])
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, err
	}
	// The config's diff_id is the digest of the uncompressed layer.
	diff := sha256.New()
	tr := tar.NewReader(io.TeeReader(zr, diff))
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		return nil, err
	}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("layer: %w", err)
		}
		name := strings.TrimPrefix(h.Name, "/")
		if _, dup := img.files[name]; dup || name == "" || strings.Contains(name, "/") {
			return nil, fmt.Errorf("layer entry %q: want top-level files only, each once", h.Name)
		}
		img.files[name] = h
		if h.Typeflag != tar.TypeReg {
			continue
		}
		f, err := os.OpenFile(filepath.Join(rootfs, name), os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
		if err != nil {
			return nil, err
		}
		_, err = io.Copy(f, tr)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
	}
	if _, err := io.Copy(io.Discard, zr); err != nil {
		return nil, err
	}
	if got := "sha256:" + hex.EncodeToString(diff.Sum(nil)); len(img.config.RootFS.DiffIDs) != 1 || img.config.RootFS.DiffIDs[0] != got {
		return nil, fmt.Errorf("rootfs.diff_ids = %v, want [%s]", img.config.RootFS.DiffIDs, got)
	}
	return img, nil
}

// blob reads a content-addressed blob and verifies it against d.
func blob(dir string, d descriptor) ([]byte, error) {
	alg, hexDigest, ok := strings.Cut(d.Digest, ":")
	if !ok || alg != "sha256" || len(hexDigest) != 64 {
		return nil, fmt.Errorf("descriptor digest %q: want sha256:<64 hex>", d.Digest)
	}
	data, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", hexDigest))
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	if hex.EncodeToString(sum[:]) != hexDigest || int64(len(data)) != d.Size {
		return nil, fmt.Errorf("blob %s: content or size (%d, descriptor says %d) does not match", d.Digest, len(data), d.Size)
	}
	return data, nil
}

func blobJSON(dir string, d descriptor, v any) error {
	data, err := blob(dir, d)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

// repoRoot is the repository root: two levels above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("no go.mod at %s: %v", root, err)
	}
	return root
}

// goTool is the go command on PATH (go test puts its own there).
func goTool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("no go command on PATH: %v", err)
	}
	return p
}

func hasGoFiles(dir string) bool {
	m, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	return len(m) > 0
}
