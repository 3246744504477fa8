// Package toolsdir says where `make tools` keeps the integration parts it
// builds or installs (kube-apiserver, etcd, kubectl, helm, ghz, …): the
// folder named by SILENTAUTH_TOOLS_DIR, else silentauth/tools in the user's
// cache folder (~/.cache/silentauth/tools). It lives outside the work tree
// so a fresh clone on the same machine, as CI makes, reuses the cache.
//
// It also holds the one rule for a part that is missing: the test is
// skipped, or fails when SILENTAUTH_REQUIRE_INTEGRATION=1 (as .ci/run sets).
package toolsdir

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Dir returns the tools folder.
func Dir() string {
	if dir := os.Getenv("SILENTAUTH_TOOLS_DIR"); dir != "" {
		return dir
	}
	if cache, err := os.UserCacheDir(); err == nil {
		return filepath.Join(cache, "silentauth", "tools")
	}
	return filepath.Join(os.TempDir(), "silentauth-tools")
}

// Bin returns the folder of the tools' binaries.
func Bin() string { return filepath.Join(Dir(), "bin") }

// Find returns the path of the program name: in Bin (what `make tools`
// built, so its version is the pinned one), else /usr/bin (Debian's
// packages), else on PATH; "" when it is nowhere.
func Find(name string) string {
	for _, dir := range []string{Bin(), "/usr/bin"} {
		path := filepath.Join(dir, name)
		if fi, err := os.Stat(path); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return path
		}
	}
	if path, err := exec.LookPath(name); err == nil {
		return path
	}
	return ""
}

// Need returns Find(name), or ends t through Missing when it is nowhere.
func Need(t testing.TB, name string) string {
	t.Helper()
	path := Find(name)
	if path == "" {
		Missing(t, "%s not found: run `make tools`", name)
	}
	return path
}

// Missing ends t for want of something only the integration setup brings:
// a skip, or a failure when SILENTAUTH_REQUIRE_INTEGRATION=1.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("SILENTAUTH_REQUIRE_INTEGRATION") == "1" {
		t.Fatalf("%s (SILENTAUTH_REQUIRE_INTEGRATION=1 makes this a failure)", msg)
	}
	t.Skipf("%s; set SILENTAUTH_REQUIRE_INTEGRATION=1 to fail instead of skipping", msg)
}
