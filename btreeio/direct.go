package btreeio

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"bpcheck/aio"
)

// nodeAlign is the alignment of pooled node buffers: the largest logical
// block size O_DIRECT reads need.
const nodeAlign = 4096

// EnableDirect makes btree node reads of every device bypass the page
// cache (O_DIRECT), as for scanning block devices without evicting what
// the page cache holds. Superblock and journal reads stay buffered. A node
// read whose offset, length or buffer does not suit the device's direct
// I/O alignment, or that the kernel refuses with EINVAL, is read buffered
// instead; the findings are the same either way.
//
// With blockOnly, only block devices are switched (images in files stay
// buffered: they are small enough to be cached, and tests re-read them).
//
// Every device is tried; the error names the devices that could not be
// switched (they stay buffered).
func (fs *FS) EnableDirect(blockOnly bool) error {
	var errs []error
	for _, d := range fs.Devices {
		if d == nil || d.f == nil {
			continue
		}
		if blockOnly {
			if st, err := d.f.Stat(); err != nil || st.Mode()&os.ModeDevice == 0 {
				continue
			}
		}
		if err := d.enableDirect(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// DirectReads returns how many node reads went through O_DIRECT, and how
// many of them fell back to buffered reads.
func (fs *FS) DirectReads() (direct, fallback int64) {
	for _, d := range fs.Devices {
		if d != nil {
			direct += d.directReads.Load()
			fallback += d.directFallbacks.Load()
		}
	}
	return direct, fallback
}

func (d *Device) enableDirect() error {
	if d.direct != nil {
		return nil
	}
	f, err := os.OpenFile(d.Path, os.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		return fmt.Errorf("%s: open with O_DIRECT: %w", d.Path, err)
	}
	align := nodeAlign
	if st, err := f.Stat(); err == nil && st.Mode()&os.ModeDevice != 0 {
		if ss, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKSSZGET); err == nil && ss > 0 && ss <= nodeAlign && ss&(ss-1) == 0 {
			align = ss
		}
	}
	d.direct, d.directAlign = f, align
	return nil
}

// nodeFile returns the file a node read of len bytes at off into buf goes
// through: the O_DIRECT one when enabled and everything is aligned.
func (d *Device) nodeFile(buf []byte, off int64) *os.File {
	if d.direct != nil && d.directOff.Load() == 0 && d.aligned(buf, off) {
		return d.direct
	}
	return d.f
}

func (d *Device) aligned(buf []byte, off int64) bool {
	a := d.directAlign
	return a > 0 && off%int64(a) == 0 && len(buf)%a == 0 && aio.IsAligned(buf, a)
}

// readNodeAt reads a btree node: through O_DIRECT when enabled and
// aligned, falling back to a buffered read when the kernel refuses it.
func (d *Device) readNodeAt(buf []byte, off int64) (int, error) {
	d.limit.Wait(len(buf))
	if d.direct == nil || d.directOff.Load() != 0 || !d.aligned(buf, off) ||
		off < 0 || off+int64(len(buf)) > d.Size {
		return d.readAt(buf, off)
	}
	n, err := d.direct.ReadAt(buf, off)
	if err == nil && n == len(buf) {
		d.directReads.Add(1)
		return n, nil
	}
	if errors.Is(err, unix.EINVAL) {
		// The filesystem or device does not take these direct reads:
		// read buffered from now on.
		d.directOff.Store(1)
	}
	d.directFallbacks.Add(1)
	return d.readAt(buf, off)
}

// directState is the O_DIRECT part of a Device.
type directState struct {
	direct          *os.File
	directAlign     int
	directOff       atomic.Int32 // 1: direct reads were refused, use buffered
	directReads     atomic.Int64
	directFallbacks atomic.Int64
}
