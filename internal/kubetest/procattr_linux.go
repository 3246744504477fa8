package kubetest

import "syscall"

// sysProcAttr has the kernel kill a server when the test binary dies, so a
// test that times out or is interrupted leaves no etcd or kube-apiserver
// behind. (The signal follows the OS thread that started the child; Go keeps
// its threads for the life of the process unless a goroutine exits while
// locked to one, which nothing here does.)
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
