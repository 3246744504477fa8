package deploy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/silentauth/silentauth/internal/testenv/kubetest"
	"github.com/silentauth/silentauth/internal/testenv/toolsdir"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite manifests/install/silentauth.yaml from the chart")

// helmHome isolates helm's cache, config and data folders from the user's.
var helmHome string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "deploy-helm-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	helmHome = dir
	code := kubetest.Main(m)
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// repoRoot is the module root: the folder above the working directory that
// holds go.mod.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

// chartDir is charts/silentauth.
func chartDir(t testing.TB) string { return filepath.Join(repoRoot(t), "charts", "silentauth") }

// skipOrFail ends t for want of something only the integration setup
// brings (package toolsdir's rule).
var skipOrFail = toolsdir.Missing

// helmBin finds helm where `make tools` puts it (package toolsdir).
func helmBin(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(toolsdir.Bin(), "helm")
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		skipOrFail(t, "%s not found: run `make tools` (scripts/tools/helm.sh) to install it", bin)
	}
	return bin
}

// helmRun runs helm with args in the repository root and returns its
// stdout and stderr. It never fails t; see helm.
func helmRun(t testing.TB, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, helmBin(t), args...)
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(helmHome, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(helmHome, "config"),
		"HELM_DATA_HOME="+filepath.Join(helmHome, "data"),
		"KUBECACHEDIR="+filepath.Join(helmHome, "kube-cache"),
		"KUBECONFIG=/dev/null", // only --kubeconfig, never the user's cluster
	)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// helm runs helm and fails t when it fails.
func helm(t testing.TB, args ...string) string {
	t.Helper()
	out, errOut, err := helmRun(t, args...)
	if err != nil {
		t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, errOut, out)
	}
	return out
}

// manifest is a rendered chart (or a manifest file): its objects, in order.
type manifest []*unstructured.Unstructured

// render runs `helm template` for the release silentauth in namespace
// silentauth with the extra arguments (-f, --set).
func render(t testing.TB, args ...string) manifest {
	t.Helper()
	all := append([]string{"template", "silentauth", "charts/silentauth", "--namespace", "silentauth"}, args...)
	return decode(t, helm(t, all...))
}

// decode splits a multi-document YAML stream into objects, skipping empty
// documents.
func decode(t testing.TB, stream string) manifest {
	t.Helper()
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(stream)))
	var m manifest
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return m
		}
		if err != nil {
			t.Fatalf("split YAML: %v", err)
		}
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			t.Fatalf("YAML document: %v\n%s", err, doc)
		}
		if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
			continue
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(js); err != nil {
			t.Fatalf("object: %v\n%s", err, doc)
		}
		m = append(m, u)
	}
}

// all returns the objects of kind.
func (m manifest) all(kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, u := range m {
		if u.GetKind() == kind {
			out = append(out, u)
		}
	}
	return out
}

// one returns the only object of kind, failing t when there is not exactly
// one.
func (m manifest) one(t testing.TB, kind string) *unstructured.Unstructured {
	t.Helper()
	objs := m.all(kind)
	if len(objs) != 1 {
		t.Fatalf("want exactly one %s, rendered %d", kind, len(objs))
	}
	return objs[0]
}

// kinds lists the kinds rendered, sorted, with repeats.
func (m manifest) kinds() []string {
	var out []string
	for _, u := range m {
		out = append(out, u.GetKind())
	}
	slices.Sort(out)
	return out
}

// as converts u into the API type T, strictly: a field T does not know (a
// template typo, a field at the wrong level) fails t.
func as[T any](t testing.TB, u *unstructured.Unstructured) *T {
	t.Helper()
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, out, true); err != nil {
		t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
	}
	return out
}
