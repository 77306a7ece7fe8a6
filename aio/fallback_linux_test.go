package aio

import (
	"errors"
	"strings"
	"syscall"
	"testing"
)

// TestAutoFallback simulates io_uring_setup failing as it does under a
// seccomp filter or with kernel.io_uring_disabled=2.
func TestAutoFallback(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.EPERM, syscall.ENOSYS, syscall.ENOMEM} {
		saved := ringSetup
		ringSetup = func(uint32, *uringParams) (int, error) { return -1, errno }
		func() {
			defer func() { ringSetup = saved }()
			if _, err := New(Options{Backend: IOUring}); !errors.Is(err, errno) {
				t.Errorf("New(IOUring) with setup failing with %v: %v", errno, err)
			}
			if err := IOUringAvailable(); !errors.Is(err, errno) {
				t.Errorf("IOUringAvailable with setup failing with %v: %v", errno, err)
			}
			r, err := New(Options{Backend: Auto, Workers: 3})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			b := r.Backend()
			if !strings.HasPrefix(b, "pread-pool (3 workers; io_uring unavailable: io_uring_setup: ") || !strings.Contains(b, errno.Error()) {
				t.Errorf("Backend() after fallback = %q", b)
			}
			t.Log(b)
		}()
	}
}
