package image

import (
	"bufio"
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	line int
	cmd  string // upper case: FROM, RUN, COPY, ...
	args string
}

// parseDockerfile splits a Dockerfile into stages of instructions. It
// knows what this repository's Dockerfile uses: comments, backslash
// continuations, and JSON or shell forms.
func parseDockerfile(t *testing.T, path string) [][]instruction {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var stages [][]instruction
	var cur strings.Builder
	start, n := 0, 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if cur.Len() == 0 {
			start = n
		}
		if body, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		in := instruction{line: start, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		cur.Reset()
		if in.cmd == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				t.Fatalf("%s:%d: %s before the first FROM", path, in.line, in.cmd)
			}
			continue
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], in)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(stages) < 2 {
		t.Fatalf("%s: %d stages, want a build stage and a final one", path, len(stages))
	}
	return stages
}

// words splits shell-form arguments on spaces outside double quotes and
// removes the quotes.
func words(s string) []string {
	var out []string
	var w strings.Builder
	quoted, in := false, false
	for _, r := range s {
		switch {
		case r == '"':
			quoted, in = !quoted, true
		case r == ' ' && !quoted:
			if in {
				out = append(out, w.String())
				w.Reset()
				in = false
			}
		default:
			w.WriteRune(r)
			in = true
		}
	}
	if in {
		out = append(out, w.String())
	}
	return out
}

// TestDockerfileMatchesImage: the Dockerfile's final stage describes the
// image the daemonless builder makes, so `make image` gives the same
// image with or without a container engine.
func TestDockerfileMatchesImage(t *testing.T) {
	img := buildImage(t)
	path := filepath.Join(repoRoot(t), "Dockerfile")
	stages := parseDockerfile(t, path)
	final := stages[len(stages)-1]
	if final[0].args != "scratch" {
		t.Errorf("final stage FROM %s, want scratch", final[0].args)
	}
	c := img.config.Config
	seen := map[string]bool{}
	for _, in := range final[1:] {
		seen[in.cmd] = true
		switch in.cmd {
		case "USER":
			if in.args != c.User {
				t.Errorf("Dockerfile:%d USER %s, image %s", in.line, in.args, c.User)
			}
		case "ENTRYPOINT", "CMD":
			var list []string
			if err := json.Unmarshal([]byte(in.args), &list); err != nil {
				t.Errorf("Dockerfile:%d %s must use the JSON form (no shell in the image): %v", in.line, in.cmd, err)
			}
			want := map[string][]string{"ENTRYPOINT": c.Entrypoint, "CMD": c.Cmd}[in.cmd]
			if !slices.Equal(list, want) {
				t.Errorf("Dockerfile:%d %s %q, image %q", in.line, in.cmd, list, want)
			}
		case "EXPOSE":
			var ports []string
			for _, p := range strings.Fields(in.args) {
				if !strings.Contains(p, "/") {
					p += "/tcp"
				}
				ports = append(ports, p)
			}
			if got, want := slices.Sorted(slices.Values(ports)), slices.Sorted(maps.Keys(c.ExposedPorts)); !slices.Equal(got, want) {
				t.Errorf("Dockerfile:%d EXPOSE %v, image %v", in.line, got, want)
			}
		case "LABEL":
			labels := map[string]string{}
			for _, w := range words(in.args) {
				k, v, ok := strings.Cut(w, "=")
				if !ok {
					t.Fatalf("Dockerfile:%d LABEL %q: want key=value", in.line, w)
				}
				labels[k] = v
			}
			if got, want := slices.Sorted(maps.Keys(labels)), slices.Sorted(maps.Keys(c.Labels)); !slices.Equal(got, want) {
				t.Errorf("Dockerfile:%d labels %v, image %v", in.line, got, want)
			}
			for k, v := range labels {
				if !strings.Contains(v, "$") && c.Labels[k] != v {
					t.Errorf("Dockerfile:%d label %s = %q, image %q", in.line, k, v, c.Labels[k])
				}
			}
		case "COPY":
			var flags, paths []string
			for _, w := range strings.Fields(in.args) {
				if strings.HasPrefix(w, "--") {
					flags = append(flags, w)
				} else {
					paths = append(paths, w)
				}
			}
			slices.Sort(flags)
			if want := []string{"--chmod=0755", "--chown=" + c.User, "--from=build"}; !slices.Equal(flags, want) {
				t.Errorf("Dockerfile:%d COPY flags %v, want %v", in.line, flags, want)
			}
			if len(paths) < 2 || paths[len(paths)-1] != "/" {
				t.Fatalf("Dockerfile:%d COPY %v: want binaries copied to /", in.line, paths)
			}
			var names []string
			for _, p := range paths[:len(paths)-1] {
				names = append(names, filepath.Base(p))
			}
			if got, want := slices.Sorted(slices.Values(names)), slices.Sorted(maps.Keys(img.files)); !slices.Equal(got, want) {
				t.Errorf("Dockerfile:%d COPY %v, image layer %v", in.line, got, want)
			}
		case "ARG":
		default:
			t.Errorf("Dockerfile:%d %s in the final stage: the image builder does not know it", in.line, in.cmd)
		}
	}
	for _, cmd := range []string{"USER", "ENTRYPOINT", "CMD", "EXPOSE", "LABEL", "COPY"} {
		if !seen[cmd] {
			t.Errorf("Dockerfile: final stage has no %s", cmd)
		}
	}
}

// TestDockerfileBuildStage: the build stage uses the Go release go.mod
// names and builds both binaries static, trimmed and stripped, like the
// daemonless builder.
func TestDockerfileBuildStage(t *testing.T) {
	repo := repoRoot(t)
	stages := parseDockerfile(t, filepath.Join(repo, "Dockerfile"))
	gomod, err := os.ReadFile(filepath.Join(repo, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+)\.(\d+)`).FindSubmatch(gomod)
	if m == nil {
		t.Fatal("go.mod: no go directive")
	}
	wantImage := "golang:" + string(m[1]) + "." + string(m[2])
	build := stages[0]
	if !slices.Contains(strings.Fields(build[0].args), wantImage) || !strings.HasSuffix(build[0].args, " AS build") {
		t.Errorf("build stage FROM %s, want %s ... AS build (go.mod says go %s.%s)", build[0].args, wantImage, m[1], m[2])
	}
	static := false
	built := map[string]bool{}
	for _, in := range build {
		if in.cmd == "ENV" && strings.Contains(in.args, "CGO_ENABLED=0") {
			static = true
		}
		if in.cmd != "RUN" || !strings.Contains(in.args, "go build") {
			continue
		}
		for _, flag := range []string{"-trimpath", `-ldflags="-s -w -X github.com/silentauth/silentauth/internal/buildinfo.version=$VERSION -X github.com/silentauth/silentauth/internal/buildinfo.commit=$COMMIT"`, "-buildvcs=false"} {
			if !strings.Contains(in.args, flag) {
				t.Errorf("Dockerfile:%d go build without %s", in.line, flag)
			}
		}
		if !static && !strings.Contains(in.args, "CGO_ENABLED=0") {
			t.Errorf("Dockerfile:%d go build without CGO_ENABLED=0", in.line)
		}
		f := strings.Fields(in.args)
		built[f[len(f)-1]] = true
	}
	for _, pkg := range []string{"./cmd/silentauth", "./cmd/kubectl-silentauth"} {
		if !built[pkg] {
			t.Errorf("Dockerfile: the build stage does not build %s", pkg)
		}
	}
}

// TestDockerignore: the build context (.dockerignore is an allowlist)
// holds every file the binaries are built from, and none of the tree's
// bulk.
func TestDockerignore(t *testing.T) {
	repo := repoRoot(t)
	data, err := os.ReadFile(filepath.Join(repo, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	rules := parseDockerignore(string(data))

	// Every non-test Go file and embedded file of the product's packages
	// that the two binaries import, and the module files.
	cmd := exec.Command(goTool(t), "list", "-deps", "-f",
		`{{if and .Module .Module.Main}}{{$d := .Dir}}{{range .GoFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}{{range .EmbedFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}{{end}}`,
		"./cmd/silentauth", "./cmd/kubectl-silentauth")
	cmd.Dir = repo
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	need := []string{"go.mod", "go.sum"}
	for _, p := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(repo, p)
		if err != nil {
			t.Fatal(err)
		}
		need = append(need, filepath.ToSlash(rel))
	}
	if len(need) < 10 {
		t.Fatalf("go list found only %v", need)
	}
	for _, p := range need {
		if excluded(rules, p) {
			t.Errorf(".dockerignore leaves %s out of the build context, but the image is built from it", p)
		}
	}
	for _, p := range []string{".git/HEAD", "bin/silentauth", "silentauth", ".tools/bin/etcd", "charts/silentauth/Chart.yaml",
		"authz/config/config_test.go", "authz/testdata/envoy_get_bearer.json", "manifests/envoy/envoy.yaml", "some-new-binary"} {
		if !excluded(rules, p) {
			t.Errorf(".dockerignore lets %s into the build context", p)
		}
	}
}

// ignoreRule is one .dockerignore line: a pattern, or an exception (!).
type ignoreRule struct {
	re     *regexp.Regexp
	negate bool
}

// parseDockerignore compiles the patterns the way Docker's patternmatcher
// does: * and ? within a path element, ** across elements.
func parseDockerignore(s string) []ignoreRule {
	var rules []ignoreRule
	for line := range strings.SplitSeq(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		r := ignoreRule{}
		if rest, ok := strings.CutPrefix(line, "!"); ok {
			r.negate, line = true, rest
		}
		line = strings.TrimSuffix(strings.TrimPrefix(filepath.ToSlash(filepath.Clean(line)), "/"), "/")
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(line); i++ {
			switch c := line[i]; {
			case strings.HasPrefix(line[i:], "**/"):
				re.WriteString("(.*/)?")
				i += 2
			case strings.HasPrefix(line[i:], "**"):
				re.WriteString(".*")
				i++
			case c == '*':
				re.WriteString("[^/]*")
			case c == '?':
				re.WriteString("[^/]")
			default:
				re.WriteString(regexp.QuoteMeta(string(c)))
			}
		}
		re.WriteString("$")
		r.re = regexp.MustCompile(re.String())
		rules = append(rules, r)
	}
	return rules
}

// excluded applies the rules in order, the last matching one deciding; a
// pattern matches a path when it matches the path or one of its parents.
func excluded(rules []ignoreRule, path string) bool {
	out := false
	for _, r := range rules {
		parts := strings.Split(path, "/")
		for i := range parts {
			if r.re.MatchString(strings.Join(parts[:i+1], "/")) {
				out = !r.negate
				break
			}
		}
	}
	return out
}
