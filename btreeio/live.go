package btreeio

import (
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"bpcheck/aio"
	"bpcheck/bp"
	"bpcheck/internal/ratelimit"
)

// DefaultLiveRetries is how many times a live check reads a node again,
// each time after a fresh read of its parent, before calling it unreadable.
const DefaultLiveRetries = 4

// liveRetryBase is the pause before the first retry of a node; each
// retry doubles it (10, 20, 40, 80 ms: a node write in flight ends well
// within that).
var liveRetryBase = 10 * time.Millisecond

// liveState is the mounted-filesystem part of an FS.
type liveState struct {
	// retries > 0 turns live mode on (SetLive).
	retries int
	// retried counts nodes that failed to read and were retried;
	// recovered those a retry read.
	retried, recovered atomic.Int64
}

// SetLive prepares fs for checking a mounted filesystem that the running
// kernel keeps writing (`bpcheck check --live`): the journal is read with
// O_DIRECT like the nodes (EnableDirect must be called too), and a node
// that fails to read (I/O error, bad checksum, a seq or range that does
// not match its pointer, a torn bset: it may be in the middle of being
// rewritten, or freed and its space reused) is read again up to retries
// times, each time through its pointer as a fresh read of its parent
// gives it, before it is an error. Call it before LoadRoots.
func (fs *FS) SetLive(retries int) {
	fs.live.retries = max(retries, 1)
}

// Live reports whether SetLive was called.
func (fs *FS) Live() bool { return fs.live.retries > 0 }

// LiveRetries returns how many node reads failed and were retried, and
// how many of them a retry then read.
func (fs *FS) LiveRetries() (retried, recovered int64) {
	return fs.live.retried.Load(), fs.live.recovered.Load()
}

// SetMaxReadRate caps the bytes per second that reads of every device of
// fs may take together (nodes, journal, extents read for duplicate
// claims; `--max-read-rate`). 0 removes the cap. Call it before reading.
// LiftReadRate ends it at once (a cancel).
func (fs *FS) SetMaxReadRate(bytesPerSec int64) {
	var l *ratelimit.Limiter
	if bytesPerSec > 0 {
		l = ratelimit.New(bytesPerSec)
	}
	for _, d := range fs.Devices {
		if d != nil {
			d.limit = l
		}
	}
}

// LiftReadRate ends the cap SetMaxReadRate set, waking the reads that
// wait on it: a cancelled check stops without sleeping out its reads.
func (fs *FS) LiftReadRate() {
	for _, d := range fs.Devices {
		if d != nil {
			d.limit.Lift()
		}
	}
}

// JournalEnd returns the newest journal seq the roots and overlay come
// from (0 when they come from the clean section).
func (fs *FS) JournalEnd() uint64 {
	if fs.Journal == nil {
		return 0
	}
	return fs.Journal.End
}

// Refresh reads the journal again and takes the roots and key overlay
// from it (the clean section's when the superblock read at open says
// clean), for a fresh look at a mounted filesystem. Nothing may be
// walking fs meanwhile. On error the previous roots and overlay stay.
func (fs *FS) Refresh() error {
	sb, devSBs := fs.SB, make([]*Superblock, len(fs.Devices))
	for i, d := range fs.Devices {
		if d != nil {
			devSBs[i] = d.SB
		}
	}
	// A superblock caught in the middle of a write keeps the previous
	// one (the next refresh reads it again).
	_ = fs.rereadSuperblocks()
	roots, j := fs.Roots, fs.Journal
	fs.Roots, fs.Journal = nil, nil
	if err := fs.LoadRoots(); err != nil {
		fs.Roots, fs.Journal, fs.SB = roots, j, sb
		for i, d := range fs.Devices {
			if d != nil {
				d.SB = devSBs[i]
			}
		}
		return fmt.Errorf("refresh: %w", err)
	}
	return nil
}

// RereadSuperblocks reads every member's superblock again through the
// node reader (O_DIRECT when enabled): a live check calls it once the
// devices are switched to O_DIRECT, since the copy read at open may have
// come from a stale page cache (udev and blkid read superblocks
// buffered). See rereadSuperblocks.
func (fs *FS) RereadSuperblocks() error { return fs.rereadSuperblocks() }

// rereadSuperblocks reads every member's superblock again (the running
// kernel rewrites it: the clean flag goes when it mounts read-write) and
// takes the newest as the filesystem's, as Assemble does. A superblock
// that no longer reads, or that describes another filesystem or another
// set of members, is an error and changes nothing. The key of an
// encrypted filesystem carries over.
func (fs *FS) rereadSuperblocks() error {
	fresh := make([]*Superblock, len(fs.Devices))
	var best *Superblock
	for i, d := range fs.Devices {
		if d == nil {
			continue
		}
		sb, _, err := ReadSuperblock(nodeReader{d}, d.Path, d.Size)
		if err != nil {
			return err
		}
		if sb.UUID != fs.SB.UUID || len(sb.Members) != len(fs.SB.Members) || sb.DevIdx != d.SB.DevIdx {
			return &Error{Dev: d.Path, Offset: SBSector * SectorSize, What: "superblock", Level: -1,
				Err: fmt.Errorf("%w: the superblock read again describes another filesystem or member set", ErrDeviceSet)}
		}
		if sb.CryptKey == nil {
			sb.CryptKey = d.SB.CryptKey
		}
		fresh[i] = sb
		if best == nil || sb.Seq > best.Seq {
			best = sb
		}
	}
	if best == nil {
		return nil
	}
	for i, d := range fs.Devices {
		if d != nil {
			d.SB = fresh[i]
		}
	}
	if best.CryptKey == nil {
		best.CryptKey = fs.SB.CryptKey
	}
	fs.SB = best
	return nil
}

// nodeReader reads a device as node reads do (O_DIRECT when enabled,
// through an aligned bounce buffer), for the superblock of a live
// filesystem, which the running kernel writes around the page cache.
type nodeReader struct{ d *Device }

func (r nodeReader) ReadAt(p []byte, off int64) (int, error) {
	lo := off &^ (nodeAlign - 1)
	hi := (off + int64(len(p)) + nodeAlign - 1) &^ (nodeAlign - 1)
	hi = min(hi, r.d.Size)
	if hi <= off {
		return r.d.ReadAt(p, off)
	}
	buf := aio.AlignedBuf(int(hi-lo), nodeAlign)
	if _, err := r.d.readNodeAt(buf, lo); err != nil {
		return 0, err
	}
	n := copy(p, buf[off-lo:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// retryNode reads again a node whose read failed with err: after a pause,
// its pointer is looked up afresh in its parent (from the roots down) and
// the node is read through it. It gives up when the parent no longer
// holds a pointer at that position (the node was merged or split away:
// the caller's view of the btree is stale), returning the first error.
func (fs *FS) retryNode(btree bp.BtreeID, level uint8, k *bp.Key, err error) (*Node, error) {
	fs.live.retried.Add(1)
	pause := liveRetryBase
	for range fs.live.retries {
		time.Sleep(pause)
		pause *= 2
		pk, pval, ok, lerr := fs.lookup(btree, level+1, k.Pos, false)
		if lerr != nil {
			continue // the parent itself is being rewritten
		}
		if !ok {
			return nil, fmt.Errorf("%w (after a fresh read of its parent, which no longer points at %s)", err, k.Pos)
		}
		n, rerr := fs.readNodeOnce(btree, level, &pk, pval)
		if rerr == nil {
			fs.live.recovered.Add(1)
			return n, nil
		}
	}
	return nil, err
}
