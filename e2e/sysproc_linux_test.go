//go:build e2e && linux

package e2e

import "syscall"

// procAttr puts a child in its own process group (so that a timeout can
// kill everything it started) and has the kernel signal it if the test
// process dies first, so no Dovecot or proxy outlives a crashed test.
func procAttr(deathSig syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: deathSig}
}
