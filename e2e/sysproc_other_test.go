//go:build e2e && unix && !linux

package e2e

import "syscall"

// procAttr puts a child in its own process group (so that a timeout can
// kill everything it started).
func procAttr(syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
