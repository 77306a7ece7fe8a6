//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package casedata

import (
	"fmt"
	"os"
	"syscall"
)

// lockPath takes an exclusive advisory lock on the file at path (created if
// needed), blocking until it is available. It returns a function releasing
// the lock and locked=true.
func lockPath(path string) (unlock func(), locked bool, err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return nil, false, fmt.Errorf("opening lock file: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, false, fmt.Errorf("flock %s: %w", path, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, true, nil
}
