package main

import (
	"os"
	"strconv"
	"testing"
)

// TestSetIOPriority: --ionice idle puts every thread of the process in the
// idle I/O class.
func TestSetIOPriority(t *testing.T) {
	if err := setIOPriority("sometimes"); err == nil {
		t.Error("an unknown class was taken")
	}
	if err := setIOPriority("idle"); err != nil {
		t.Skipf("ioprio_set refused here: %v", err)
	}
	t.Cleanup(func() { resetIOPriority(t) })
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range tasks {
		tid, _ := strconv.Atoi(tk.Name())
		p, err := ioPriority(tid)
		if err != nil {
			continue // the thread ended
		}
		if p>>ioprioClassShift != ioprioClassIdle {
			t.Errorf("thread %d: I/O priority %#x, want the idle class", tid, p)
		}
	}
}

// resetIOPriority puts every thread back in the default I/O class, for
// the tests that follow one that ran with --ionice.
func resetIOPriority(t *testing.T) {
	ioniceClasses["default"] = 0
	defer delete(ioniceClasses, "default")
	if err := setIOPriority("default"); err != nil {
		t.Error(err)
	}
}
