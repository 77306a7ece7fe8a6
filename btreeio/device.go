// Package btreeio reads bcachefs devices: it opens images and block devices
// read-only, parses and verifies the superblock, reads and verifies btree
// nodes, merges their bsets and walks whole btrees in key order.
package btreeio

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"bpcheck/internal/ratelimit"
)

// Device is one member device of a filesystem, opened read-only.
type Device struct {
	Path string
	Size int64 // bytes
	r    io.ReaderAt
	f    *os.File
	SB   *Superblock
	// SBSource says which superblock copy was used ("primary at sector 8"
	// or "backup at sector N").
	SBSource string
	directState
	// limit, when set, paces every read of the device (SetMaxReadRate).
	limit *ratelimit.Limiter
}

// OpenDevice opens path read-only (O_RDONLY, see openRandom), determines
// its size (BLKGETSIZE64 for block devices) and reads its superblock.
func OpenDevice(path string) (*Device, error) {
	f, err := openRandom(path)
	if err != nil {
		return nil, fmt.Errorf("open device: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat device %s: %w", path, err)
	}
	if m := st.Mode(); !m.IsRegular() && (m&os.ModeDevice == 0 || m&os.ModeCharDevice != 0) {
		f.Close()
		return nil, fmt.Errorf("%w: %s is a %s, not a block device or a regular file", ErrNotDevice, path, fileKind(m))
	}
	size := st.Size()
	if st.Mode()&os.ModeDevice != 0 {
		sz, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKGETSIZE64)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: BLKGETSIZE64: %w", path, err)
		}
		size = int64(sz)
	}
	d, err := NewDevice(path, f, size)
	if err != nil {
		f.Close()
		return nil, err
	}
	d.f = f
	return d, nil
}

// openRandom opens path read-only and tells the kernel that its reads are
// random (POSIX_FADV_RANDOM, which only changes the readahead of this open
// file). Btree nodes lie scattered over the device, and walks read the
// leaves they need ahead themselves (FS.Prefetch): the kernel's own
// readahead around each buffered miss fetched bytes no walk asked for
// (22 % more than the check needed on a cold 10 M-extent image,
// docs/bench.md) and cost the CPU of putting them in the page cache. A
// kernel that refuses the advice leaves reads as they were.
func openRandom(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_RANDOM)
	return f, nil
}

// NewDevice reads the superblock of a device given as a ReaderAt of the
// given size. Tests use it to inject faults.
func NewDevice(path string, r io.ReaderAt, size int64) (*Device, error) {
	d := &Device{Path: path, Size: size, r: r}
	sb, src, err := ReadSuperblock(r, path, size)
	if err != nil {
		return nil, err
	}
	d.SB, d.SBSource = sb, src
	return d, nil
}

// ReadAt reads len(p) bytes at byte offset off. A read past the end of the
// device is an ErrTruncated error.
func (d *Device) ReadAt(p []byte, off int64) (int, error) {
	d.limit.Wait(len(p))
	return d.readAt(p, off)
}

// readAt is ReadAt without the rate limit (for a caller that waited).
func (d *Device) readAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > d.Size {
		return 0, &Error{Dev: d.Path, Offset: off, What: "read", Level: -1,
			Err: fmt.Errorf("%w: %d bytes at byte %d past the device end (%d bytes)", ErrTruncated, len(p), off, d.Size)}
	}
	n, err := d.r.ReadAt(p, off)
	if err == io.EOF && n == len(p) {
		err = nil
	}
	if err != nil {
		return n, &Error{Dev: d.Path, Offset: off, What: "read", Level: -1, Err: err}
	}
	return n, nil
}

// Close closes the device file, if this package opened it.
func (d *Device) Close() error {
	if d.direct != nil {
		d.direct.Close()
	}
	if d.f != nil {
		return d.f.Close()
	}
	return nil
}

// fileKind names the kind of file mode m is.
func fileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&os.ModeCharDevice != 0:
		return "character device"
	case m&os.ModeNamedPipe != 0:
		return "named pipe"
	case m&os.ModeSocket != 0:
		return "socket"
	}
	return "special file"
}
