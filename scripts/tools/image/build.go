package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// binary is one program of the image, placed at /name.
type binary struct {
	name string
	pkg  string // package path relative to the repository root
	// optional binaries that do not build are left out with a message
	// (unless -strict): the kubectl plugin is developed alongside.
	optional bool
}

// binaries are the image's whole content, in the Dockerfile's order.
var binaries = []binary{
	{name: "silentauth", pkg: "./cmd/silentauth"},
	{name: "kubectl-silentauth", pkg: "./cmd/kubectl-silentauth", optional: true},
}

// file is a built binary ready for the layer.
type file struct {
	name string // path in the image, without the leading /
	path string // where it was built
	size int64
}

// errSkipped reports an optional binary left out.
var errSkipped = errors.New("skipped")

// buildinfo is the product package whose version and commit the linker
// stamps (-X).
const buildinfo = productModule + "/internal/buildinfo"

// ldflags are the linker flags of every binary: symbols and DWARF stripped
// (-s -w), the version and commit stamped.
func ldflags(version, commit string) string {
	return "-s -w -X " + buildinfo + ".version=" + version + " -X " + buildinfo + ".commit=" + commit
}

// build compiles one binary for linux/arch exactly as the Dockerfile's build
// stage does: static (CGO_ENABLED=0), without file system paths (-trimpath)
// or VCS stamps (-buildvcs=false: the Docker context has no .git), symbols
// and DWARF stripped, version and commit stamped.
func build(ctx context.Context, o options, arch string, b binary, dir string, stderr io.Writer) (file, error) {
	out := filepath.Join(dir, b.name)
	if b.optional && !hasGoFiles(filepath.Join(o.repo, b.pkg)) {
		fmt.Fprintf(stderr, "image: leaving out /%s: %s is not in this tree\n", b.name, b.pkg)
		return file{}, errSkipped
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags="+ldflags(o.version, o.commit), "-o", out, b.pkg)
	cmd.Dir = o.repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	var msg bytes.Buffer
	cmd.Stdout, cmd.Stderr = &msg, &msg
	if err := cmd.Run(); err != nil {
		detail := strings.TrimSpace(msg.String())
		if b.optional && !o.strict && ctx.Err() == nil {
			fmt.Fprintf(stderr, "image: leaving out /%s: %s does not build (-strict makes this an error):\n%s\n", b.name, b.pkg, indent(detail))
			return file{}, errSkipped
		}
		return file{}, fmt.Errorf("go build %s: %w\n%s", b.pkg, err, indent(detail))
	}
	st, err := os.Stat(out)
	if err != nil {
		return file{}, err
	}
	return file{name: b.name, path: out, size: st.Size()}, nil
}

// hasGoFiles reports whether dir holds a Go package.
func hasGoFiles(dir string) bool {
	m, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	return len(m) > 0
}

// gitCommit is the commit of the sources, "unknown" without git.
func gitCommit(repo string) string {
	cmd := exec.Command("git", "rev-parse", "HEAD")
	cmd.Dir = repo
	out, err := cmd.Output()
	if v := strings.TrimSpace(string(out)); err == nil && v != "" {
		return v
	}
	return "unknown"
}

// gitDescribe names the version of the sources: the nearest tag, the
// commit and -dirty for local changes; "dev" without git. Read-only.
func gitDescribe(repo string) string {
	cmd := exec.Command("git", "describe", "--tags", "--always", "--dirty")
	cmd.Dir = repo
	out, err := cmd.Output()
	if v := strings.TrimSpace(string(out)); err == nil && v != "" {
		return v
	}
	return "dev"
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}
