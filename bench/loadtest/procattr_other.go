//go:build !linux

package main

import (
	"syscall"
	"time"
)

// sysProcAttr: only Linux ties a child's life to its parent's. The harness
// itself needs Linux's /proc; see parseOptions.
func sysProcAttr() *syscall.SysProcAttr { return nil }

// processCPU is not available: 0 makes nsPerOp use wall time.
func processCPU() time.Duration { return 0 }
