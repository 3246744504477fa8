// Package toolsdir says where `make tools` keeps the integration parts it
// builds or installs (kube-apiserver, etcd, helm, ghz, …): the folder named
// by SILENTAUTH_TOOLS_DIR, else silentauth/tools in the user's cache folder
// (~/.cache/silentauth/tools). It lives outside the work tree so a fresh
// clone on the same machine, as CI makes, reuses the cache.
package toolsdir

import (
	"os"
	"path/filepath"
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
