//go:build !linux

package main

import (
	"syscall"
	"time"
)

// sysProcAttr: only Linux ties a child's life to its parent's. The harness
// itself needs Linux's /proc; see parseOptions.
func sysProcAttr() *syscall.SysProcAttr { return nil }

// threadCPU is not available: 0 makes nsPerOp use wall time.
func threadCPU() time.Duration { return 0 }
