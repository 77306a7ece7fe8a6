package main

import (
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"bpcheck/internal/casedata"
)

var pctRE = regexp.MustCompile(`(\d+\.\d)% (\d+)/(\d+) nodes`)

// TestProgressOnTerminal runs bpcheck under a pseudo-terminal (script(1))
// and reads the live progress line: every percentage ≤ 100, the last one
// exactly 100 with done = total. It also checks that without a terminal
// (and with --json) nothing but the report is written.
func TestProgressOnTerminal(t *testing.T) {
	casedata.Require(t)
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skip("script(1) not installed: no pseudo-terminal to test with")
	}
	bin := buildBinary(t)
	img := casedata.CaseImages(t, "many-extents")[0]
	cmd := exec.Command(script, "-qefc", bin+" check --memory 1M "+img+" > /dev/null", "/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	ms := pctRE.FindAllStringSubmatch(string(out), -1)
	if len(ms) == 0 {
		t.Fatalf("no progress line on the terminal: %q", out)
	}
	for _, m := range ms {
		if p, _ := strconv.ParseFloat(m[1], 64); p > 100 {
			t.Errorf("progress %s%%", m[1])
		}
	}
	last := ms[len(ms)-1]
	if last[1] != "100.0" || last[2] != last[3] {
		t.Errorf("last progress line %q, want 100%% with done = total", last[0])
	}
	if !strings.Contains(string(out), "\r") {
		t.Error("progress line is not redrawn in place")
	}
	// Not a terminal: no progress at all.
	plain, err := exec.Command(bin, "check", "--json", img).CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	if pctRE.Match(plain) {
		t.Error("progress shown without a terminal")
	}
}

// TestInterruptSignal sends SIGINT to a running multi-pass check: it must
// stop with the partial report and exit 32.
func TestInterruptSignal(t *testing.T) {
	casedata.Require(t)
	bin := buildBinary(t)
	img := casedata.CaseImages(t, "many-extents")[0]
	for _, sig := range []os.Signal{os.Interrupt, syscall.SIGTERM} {
		cmd := exec.Command(bin, "check", "--json", "--memory", "256K", img)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Signal once the runtime catches signals (a loaded machine can
		// take long to start the process), then 150 ms later, when the
		// check has set up its own handling (not observable from here).
		waitSigCaught(t, cmd.Process.Pid, sig.(syscall.Signal))
		time.Sleep(150 * time.Millisecond)
		cmd.Process.Signal(sig)
		err := cmd.Wait()
		code := cmd.ProcessState.ExitCode()
		if code == exitProblems || code == exitClean {
			t.Logf("%v: the check finished before the signal (%v)", sig, err)
			continue
		}
		if code != exitInterrupted {
			t.Errorf("%v: exit %d, want %d: %s", sig, code, exitInterrupted, errb.String())
		}
		if !strings.Contains(out.String(), `"interrupted":true`) || !strings.Contains(errb.String(), "interrupted") {
			t.Errorf("%v: no partial report: %s / %s", sig, out.String(), errb.String())
		}
	}
}

// waitSigCaught waits (at most 10 s) until process pid catches sig, as
// /proc/PID/status's SigCgt mask says.
func waitSigCaught(t *testing.T, pid int, sig syscall.Signal) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return // not Linux, or gone: signal anyway
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "SigCgt:"); ok {
				if m, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64); err == nil && m&(1<<(uint(sig)-1)) != 0 {
					return
				}
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// buildBinary builds bpcheck as README.md tells users to (CGO_ENABLED=0,
// -trimpath) and checks that the result is static: no program
// interpreter, so no dynamic loader runs at every start.
func buildBinary(t *testing.T) string {
	t.Helper()
	return filepath.Join(buildBinaries(t, "."), "bpcheck")
}

// buildBinaries builds the packages (relative to cmd/bpcheck) into one
// new directory, as README.md's build does, checks that each program is
// static, and returns the directory.
func buildBinaries(t *testing.T, pkgs ...string) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", append([]string{"build", "-trimpath", "-o", dir + "/"}, pkgs...)...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	bins, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(bins) != len(pkgs) {
		t.Fatalf("build made %v from %v", bins, pkgs)
	}
	for _, bin := range bins {
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("%s has a program interpreter: the README's build is not static", bin)
			}
		}
		f.Close()
	}
	return dir
}
