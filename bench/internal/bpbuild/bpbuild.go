// Package bpbuild builds the bpcheck binary the benchmark tools time, as
// README.md tells users to build it.
package bpbuild

import (
	"fmt"
	"os"
	"os/exec"
)

// Static builds ./cmd/bpcheck (run from the repository root) into out:
// CGO_ENABLED=0 and -trimpath, a static binary without the dynamic
// loader's start-up. The go command's errors go to standard error.
func Static(out string) error {
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, "./cmd/bpcheck")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build bpcheck: %w", err)
	}
	return nil
}
