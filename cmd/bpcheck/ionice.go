package main

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// I/O scheduling classes (ioprio_set(2)).
const (
	ioprioWhoProcess = 1
	ioprioClassShift = 13
	ioprioClassBE    = 2
	ioprioClassIdle  = 3
)

// ioniceClasses maps --ionice values to an I/O priority ("" leaves it).
var ioniceClasses = map[string]int{
	"none":        -1,
	"idle":        ioprioClassIdle << ioprioClassShift,
	"best-effort": ioprioClassBE<<ioprioClassShift | 7, // the lowest best-effort level
}

// setIOPriority gives every thread of the process the I/O priority of
// class (a key of ioniceClasses): idle reads are served only when no other
// process wants the disk. Threads started later inherit it.
func setIOPriority(class string) error {
	prio, ok := ioniceClasses[class]
	if !ok {
		return fmt.Errorf("--ionice %q: want idle, best-effort or none", class)
	}
	if prio < 0 {
		return nil
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return fmt.Errorf("--ionice: %w", err)
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if _, _, e := unix.Syscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, uintptr(tid), uintptr(prio)); e != 0 && e != unix.ESRCH {
			return fmt.Errorf("--ionice %s: ioprio_set: %w", class, e)
		}
	}
	return nil
}

// ioPriority returns the I/O priority of thread tid (0: the caller).
func ioPriority(tid int) (int, error) {
	r, _, e := unix.Syscall(unix.SYS_IOPRIO_GET, ioprioWhoProcess, uintptr(tid), 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}
