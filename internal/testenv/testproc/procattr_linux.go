package testproc

import "syscall"

// sysProcAttr has the kernel kill the child when the test binary dies. (The
// signal follows the OS thread that started the child; Go keeps its threads
// for the life of the process unless a goroutine exits while locked to one,
// so Start must not be called from such a goroutine.)
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
