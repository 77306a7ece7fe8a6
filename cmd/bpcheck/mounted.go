package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// mountedDevices returns the block devices among paths that are mounted
// (matched by device number against /proc/self/mountinfo), with their
// mount points.
func mountedDevices(paths []string) map[string]string {
	out := map[string]string{}
	want := map[uint64]string{}
	for _, p := range paths {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFBLK {
			continue
		}
		want[st.Rdev] = p
	}
	if len(want) == 0 {
		return out
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint ...
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		var maj, min uint32
		if _, err := fmt.Sscanf(fields[2], "%d:%d", &maj, &min); err != nil {
			continue
		}
		if p, ok := want[unix.Mkdev(maj, min)]; ok {
			out[p] = fields[4]
		}
	}
	return out
}
