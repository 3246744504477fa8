package kubetest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/silentauth/silentauth/internal/toolsdir"
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

// process is one server started by an Env, its output kept in a log file.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{} // closed once the process has been waited for
	err     error         // the result of Wait, set before exited is closed
}

func startProcess(name, path, logPath string, args ...string) (*process, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child holds its own descriptor
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = childEnv()
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
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

// stop kills the process and waits for it. The data it leaves is thrown away
// with the temporary folder, so there is nothing a graceful stop would save.
func (p *process) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// exitErr reports, without blocking, whether the process has ended.
func (p *process) exitErr() error {
	select {
	case <-p.exited:
		return fmt.Errorf("%s exited early: %v", p.name, p.err)
	default:
		return nil
	}
}

// tail returns the last n lines of the process's log.
func (p *process) tail(n int) string {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
