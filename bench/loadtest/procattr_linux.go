package main

import "syscall"

// sysProcAttr has the kernel kill a child when the harness dies, so an
// interrupted run leaves no server or redis-server behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
