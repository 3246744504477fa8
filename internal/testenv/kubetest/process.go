package kubetest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/silentauth/silentauth/internal/testenv/testproc"
	"github.com/silentauth/silentauth/internal/testenv/toolsdir"
)

// toolsBin is the folder `make tools` fills (package toolsdir).
func toolsBin() (string, error) { return toolsdir.Bin(), nil }

// binaries finds kube-apiserver and etcd, or says which are missing.
func binaries() (apiserver, etcd string, err error) {
	bin, err := toolsBin()
	if err != nil {
		return "", "", err
	}
	apiserver, etcd = filepath.Join(bin, "kube-apiserver"), filepath.Join(bin, "etcd")
	var missing []string
	for _, path := range []string{apiserver, etcd} {
		if fi, err := os.Stat(path); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			missing = append(missing, path)
		}
	}
	if len(missing) > 0 {
		return "", "", fmt.Errorf("%s not found: run `make tools` to build them (about ten minutes once, cached after)", strings.Join(missing, " and "))
	}
	return apiserver, etcd, nil
}

// freePorts asks the kernel for n distinct free loopback ports. The listeners
// are closed before the servers bind, so another process could take a port in
// between; the kernel hands out ephemeral ports in a rotating order, which
// keeps that race rare enough for tests. (kube-apiserver has no port 0: its
// --secure-port=0 means "serve no HTTPS".)
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// startProcess starts one server of an Env, its output in logPath.
func startProcess(name, path, logPath string, args ...string) (*testproc.Process, error) {
	cmd := exec.Command(path, args...)
	cmd.Env = childEnv()
	return testproc.Start(name, logPath, cmd)
}

// childEnv is this process's environment without ETCD_* variables, which etcd
// would read as flags.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ETCD_") {
			env = append(env, kv)
		}
	}
	return env
}
