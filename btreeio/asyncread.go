package btreeio

import (
	"os"

	"golang.org/x/sys/unix"

	"bpcheck/aio"
	"bpcheck/bp"
)

// readCached reads buf at off from f only if the page cache holds all of
// it (preadv2 with RWF_NOWAIT): a leaf already cached is read on the spot
// instead of through the async reader, whose round trip costs more than
// the copy. ok is false when the read would block, or on any error (the
// async read then does the work and reports it). Not for O_DIRECT files:
// there RWF_NOWAIT still waits for the disk.
func readCached(f *os.File, buf []byte, off int64) (int, bool) {
	n, err := unix.Preadv2(int(f.Fd()), [][]byte{buf}, off, unix.RWF_NOWAIT)
	return n, err == nil && n == len(buf)
}

// cacheRead is readCached; tests replace it to play page cache misses.
var cacheRead = readCached

// asyncLeaves reads the leaves of kids through an aio.Reader (io_uring
// where the kernel allows, a pread pool otherwise), keeping up to
// fs.Prefetch reads in flight, and hands them to v in key order. Each leaf
// is read from its first replica on a present device; when that read or
// its parse fails, the leaf is read again through ReadNode, which tries
// every replica and reports the errors, so findings are the same as on the
// synchronous path. It returns false when no reader could be made (the
// caller then reads synchronously).
func (fs *FS) asyncLeaves(id bp.BtreeID, kids []*NodeKey, v Visitor) (bool, error) {
	backend, depth := fs.AsyncBackend, fs.Prefetch
	r, err := fs.getReader()
	if err != nil {
		return false, nil
	}
	// The reader goes back to the pool when nothing is in flight and no
	// call of it failed.
	healthy := true
	inFlight := 0
	// held keeps the buffers of reads a broken reader may still complete
	// alive (out of the node pool) until the deferred Close has waited
	// for them.
	var held []*Node
	defer func() {
		fs.putReader(r, backend, depth, healthy && inFlight == 0)
		held = nil
	}()
	nodeBytes := int(fs.SB.BtreeNodeSectors()) * SectorSize
	_, packed := v.(PackedLeafVisitor)
	type slot struct {
		n    *Node
		dev  *Device
		off  int64
		exp  NodeExpect
		done bool
		res  aio.Result
		sync bool
		// deferred: not read yet, the page cache was expected to hold it
		deferred bool
		// want is how many bytes of the node are read (readBytes)
		want int
		// i is the leaf (index in kids) the slot holds
		i int
	}
	// The slots of the leaves between the one visited and the last one
	// started, in a ring: at most Prefetch ahead of the one visited, so
	// Prefetch+1 slots (a slot per leaf was fresh memory for every walk).
	ring := make([]slot, min(len(kids), fs.Prefetch+1))
	at := func(i int) *slot { return &ring[i%len(ring)] }
	// complete records the result of a read; a result for a leaf whose
	// slot was taken over (a read left behind by a failed reader) is
	// dropped.
	complete := func(x aio.Result) {
		if s := at(int(x.Tag)); s.i == int(x.Tag) {
			s.res, s.done = x, true
		}
	}
	// warm is what the last read of a leaf found: the page cache held it
	// (readCached) or not. While leaves come from the page cache there is
	// nothing to wait for, and reading them ahead only copies them out of
	// the CPU caches before they are parsed: later leaves are deferred and
	// read when their turn comes. At a miss the deferred leaves of the
	// read-ahead window are issued at once: each is read on the spot if
	// the cache holds it, else submitted to the reader (and a hit among
	// them makes later leaves deferred again). A walk starts from what
	// the filesystem's last read found: a check makes a walk per task
	// (hundreds), and each starting cold had read its first Prefetch
	// leaves at once, into as many fresh buffers, only to parse them
	// after the copies had left the CPU caches.
	warm := !fs.cacheCold.Load()
	// issue reads slot i into a fresh buffer: at once when cached, else
	// through the reader.
	issue := func(i int) {
		s := at(i)
		s.n = fs.getNode(nodeBytes)
		buf := s.n.buf[:s.want]
		s.dev.limit.Wait(len(buf))
		f := s.dev.nodeFile(buf, s.off)
		if f != s.dev.direct {
			if n, ok := cacheRead(f, buf, s.off); ok {
				// In the page cache: read at once, nothing to wait for.
				s.res, s.done = aio.Result{Tag: uint64(i), N: n}, true
				warm = true
				if fs.cacheCold.Load() { // written on a change only
					fs.cacheCold.Store(false)
				}
				return
			}
		}
		warm = false
		if !fs.cacheCold.Load() {
			fs.cacheCold.Store(true)
		}
		if err := r.Submit([]aio.Request{{File: f, Off: s.off, Buf: buf, Tag: uint64(i)}}); err != nil {
			fs.Release(s.n)
			s.n, s.sync = nil, true
			healthy = false
			return
		}
		inFlight++
		if f == s.dev.direct {
			s.dev.directReads.Add(1)
		}
	}
	start := func(i int) {
		s := at(i)
		*s = slot{i: i}
		k := kids[i]
		exp, err := ExpectFromKey(id, 0, &k.Key, k.Val)
		if err != nil {
			s.sync = true
			return
		}
		if fs.Journal != nil {
			exp.MaxJournalSeq = fs.Journal.End
		}
		s.exp, s.want = exp, readBytes(exp, nodeBytes)
		entries, _, err := bp.ValueEntries(k.Key.Type, k.Val)
		if err != nil {
			s.sync = true
			return
		}
		it := bp.NewPtrIter(entries, k.Key.Size, nil)
		for {
			d, ok, _ := it.Next()
			if !ok {
				s.sync = true
				return
			}
			dev := fs.deviceOf(d.Ptr.Dev)
			off := int64(d.Ptr.Offset) * SectorSize
			if dev == nil || dev.f == nil || off < 0 || off+int64(nodeBytes) > dev.Size {
				continue
			}
			s.dev, s.off = dev, off
			if warm && dev.direct == nil {
				s.deferred = true
				return
			}
			issue(i)
			return
		}
	}
	next := 0
	for ; next < len(kids) && next < fs.Prefetch; next++ {
		start(next)
	}
	release := func(from int) {
		// Collect what is still in flight before the buffers go back.
		for inFlight > 0 {
			res, err := r.Wait(inFlight)
			if err != nil {
				// The reader is broken: it is closed, not reused, and
				// the buffers still in its hands are left to the GC.
				healthy = false
				for j := from; j < next; j++ {
					if s := at(j); !s.done && s.n != nil {
						held = append(held, s.n)
						s.n = nil
					}
				}
				break
			}
			inFlight -= len(res)
			for _, x := range res {
				complete(x)
			}
		}
		for j := from; j < next; j++ {
			if s := at(j); s.n != nil {
				fs.Release(s.n)
				s.n = nil
			}
		}
	}
	for i := range kids {
		s := at(i)
		if s.deferred {
			s.deferred = false
			issue(i)
			if !warm {
				// A miss: read the deferred leaves after it ahead.
				for j := i + 1; j < next; j++ {
					if at(j).deferred {
						at(j).deferred = false
						issue(j)
					}
				}
			}
		}
		for !s.sync && !s.done && s.n != nil {
			res, err := r.Wait(1)
			if err != nil {
				s.sync = true
				healthy = false
				break
			}
			inFlight -= len(res)
			for _, x := range res {
				complete(x)
			}
		}
		if next < len(kids) {
			start(next)
			next++
		}
		var n *Node
		if !s.sync && s.n != nil && s.res.Err == nil && s.res.N == s.want {
			pn, err := parseNodeInto(s.n, fs.SB, s.dev.Path, s.off, s.n.buf[:nodeBytes], s.exp, packed)
			if err == nil {
				n = pn
				fs.overlayJournal(n)
			}
		}
		if n == nil {
			if s.n != nil {
				if s.done || healthy {
					fs.Release(s.n)
				} else {
					held = append(held, s.n)
				}
				s.n = nil
			}
			var err error
			n, err = fs.ReadNode(id, 0, &kids[i].Key, kids[i].Val)
			if err != nil {
				if err := v.NodeError(id, 0, &kids[i].Key, err); err != nil {
					release(i + 1)
					return true, err
				}
				continue
			}
		}
		err := VisitLeaf(v, n)
		fs.Release(n)
		s.n = nil
		if err != nil {
			release(i + 1)
			return true, err
		}
	}
	release(len(kids))
	return true, nil
}
