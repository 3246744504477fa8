package main

import (
	"syscall"
	"time"
)

// sysProcAttr has the kernel kill a child when the harness dies, so an
// interrupted run leaves no server or redis-server behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// processCPU returns the CPU time (user+system) of this process, all
// threads: the garbage collector's work counts, as in the server's
// figures from /proc/<pid>/stat.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
