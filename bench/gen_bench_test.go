package bench

import (
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"bpcheck/gen"
)

// BenchmarkGenerate measures the synthetic filesystem generator (bpcheck
// gen): b.SetBytes is the metadata one filesystem writes (btree nodes of
// every replica, superblocks, journal); data is never written, the images
// are sparse. Besides ns/op and MB/s it reports extents per second of wall
// time and per second of CPU time (user+system of the whole process), the
// second being the figure that does not depend on other load on the
// machine. BPCHECK_GEN_BENCH_DIR chooses where the images go (default: a
// temporary directory; a tmpfs such as /dev/shm keeps disk writeback out
// of the wall time).
func BenchmarkGenerate(b *testing.B) {
	for _, c := range []struct {
		extents           int64
		devices, replicas int
	}{
		{100_000, 1, 1},
		{1_000_000, 1, 1},
		{1_000_000, 2, 1},
		{1_000_000, 2, 2},
	} {
		b.Run(fmt.Sprintf("extents=%d/devices=%d/replicas=%d", c.extents, c.devices, c.replicas), func(b *testing.B) {
			p := gen.Params{Devices: c.devices, Replicas: c.replicas, Extents: c.extents,
				DeviceSize: c.extents * 40 << 10, Seed: 1}
			dir := b.TempDir()
			if d := os.Getenv("BPCHECK_GEN_BENCH_DIR"); d != "" {
				dir = d
				defer os.RemoveAll(d)
			}
			var m *gen.Manifest
			cpu0 := cpuTime()
			start := time.Now()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				var err error
				if m, err = gen.Generate(dir, p); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			wall, cpu := time.Since(start).Seconds(), (cpuTime() - cpu0).Seconds()
			n := float64(m.Extents) * float64(b.N)
			b.SetBytes(m.MetadataBytes)
			b.ReportMetric(n/wall, "extents/s")
			b.ReportMetric(n/cpu, "extents/cpu-s")
		})
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
