//go:build !linux

package main

import "syscall"

// sysProcAttr: only Linux ties a child's life to its parent's. The harness
// itself needs Linux's /proc; see parseOptions.
func sysProcAttr() *syscall.SysProcAttr { return nil }
