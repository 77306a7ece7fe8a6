package aio

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The io_uring ABI (include/uapi/linux/io_uring.h, io_uring_setup(2),
// io_uring_enter(2)), restricted to what this package uses.

// uringParams is struct io_uring_params.
type uringParams struct {
	sqEntries    uint32
	cqEntries    uint32
	flags        uint32
	sqThreadCPU  uint32
	sqThreadIdle uint32
	features     uint32
	wqFd         uint32
	resv         [3]uint32
	sqOff        sqringOffsets
	cqOff        cqringOffsets
}

// sqringOffsets is struct io_sqring_offsets: byte offsets of the fields of
// the submission queue ring in its mapping.
type sqringOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

// cqringOffsets is struct io_cqring_offsets.
type cqringOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

// uringSQE is struct io_uring_sqe (64 bytes) with the union members this
// package uses.
type uringSQE struct {
	opcode      uint8
	flags       uint8
	ioprio      uint16
	fd          int32
	off         uint64
	addr        uint64
	len         uint32
	rwFlags     uint32
	userData    uint64
	bufIndex    uint16
	personality uint16
	spliceFdIn  int32
	addr3       uint64
	pad2        uint64
}

// uringCQE is struct io_uring_cqe (16 bytes, no IORING_SETUP_CQE32).
type uringCQE struct {
	userData uint64
	res      int32
	flags    uint32
}

const (
	ioringOpReadv = 1
	ioringOpRead  = 22

	ioringOffSQRing = 0
	ioringOffCQRing = 0x8000000
	ioringOffSQEs   = 0x10000000

	ioringFeatSingleMmap = 1 << 0
	ioringFeatRWCurPos   = 1 << 3 // 5.6, the release that added IORING_OP_READ

	ioringEnterGetEvents = 1 << 0

	sqeSize = 64
	cqeSize = 16

	// maxChunk caps one SQE's length (the kernel caps a read at
	// 0x7ffff000 bytes anyway; the remainder is read as a short read).
	maxChunk = 1 << 30
	// maxRetries bounds the EINTR/EAGAIN resubmissions of one request.
	maxRetries = 1000
)

// Compile-time checks of the ABI sizes.
var (
	_ [120 - unsafe.Sizeof(uringParams{})]byte
	_ [unsafe.Sizeof(uringParams{}) - 120]byte
	_ [sqeSize - unsafe.Sizeof(uringSQE{})]byte
	_ [unsafe.Sizeof(uringSQE{}) - sqeSize]byte
	_ [cqeSize - unsafe.Sizeof(uringCQE{})]byte
	_ [unsafe.Sizeof(uringCQE{}) - cqeSize]byte
)

// ringSetup is uringSetup; tests replace it to simulate a kernel without
// io_uring.
var ringSetup = uringSetup

func uringSetup(entries uint32, p *uringParams) (int, error) {
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(p)), 0)
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}

func uringEnter(fd int, toSubmit, minComplete, flags uint32) (int, error) {
	// Blocking when minComplete > 0, so Syscall (not RawSyscall): the
	// runtime hands this thread's P to other goroutines meanwhile.
	n, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(fd), uintptr(toSubmit), uintptr(minComplete), uintptr(flags), 0, 0)
	if errno != 0 {
		return int(n), errno
	}
	return int(n), nil
}

// ring is the io_uring backend. It has no goroutine of its own. Everything
// is guarded by mu except the blocking io_uring_enter(GETEVENTS) of the
// one caller at a time that is the reaper (reaping true): while it sleeps
// in the kernel without mu, other goroutines may submit (the kernel
// serialises submission and completion waiting itself) but leave the
// completions to it. Only goroutines holding mu touch the rings' memory,
// and Close unmaps it only when no request is in flight and no reaper is
// in the kernel.
//
// Every request in flight owns a slot; user_data of its SQE is the slot
// index. The number of slots is the SQ size, and the CQ is at least as big
// (twice, by default), so the CQ never overflows and each slot has at most
// one SQE in the SQ.
type ring struct {
	fd   int
	desc string
	op   uint8 // ioringOpRead or ioringOpReadv

	sqMem, cqMem, sqeMem []byte // the mappings
	single               bool   // IORING_FEAT_SINGLE_MMAP: cqMem is sqMem

	sqHead, sqTail *uint32 // sqHead is written by the kernel, sqTail by us
	sqMask         uint32
	sqEntries      uint32
	sqArray        []uint32
	sqes           []uringSQE
	cqHead, cqTail *uint32 // cqTail is written by the kernel, cqHead by us
	cqMask         uint32
	cqes           []uringCQE

	mu       sync.Mutex
	cond     sync.Cond // broadcast when ready grows, reaping ends or Close starts
	tail     uint32    // our copy of the SQ tail
	slots    []slot
	free     []int32 // free slot indices
	inflight int     // slots in use
	backlog  fifo    // requests waiting for a slot
	ready    []Result
	pending  int // submitted and not yet returned by Wait
	reaping  bool
	closed   bool
	unmapped bool
}

// slot is a request in flight.
type slot struct {
	req     Request // holds File and Buf alive until completion
	done    int     // bytes read so far
	retries int
	iov     unix.Iovec // the READV iovec; the kernel may read it until completion
}

func newRing(opts Options) (r *ring, err error) {
	var p uringParams
	fd, err := ringSetup(uint32(opts.QueueDepth), &p)
	if err != nil {
		return nil, fmt.Errorf("io_uring_setup: %w", err)
	}
	r = &ring{fd: fd}
	defer func() {
		if err != nil {
			r.unmap()
			unix.Close(fd)
			r = nil
		}
	}()
	sqSize := int(p.sqOff.array) + int(p.sqEntries)*4
	cqSize := int(p.cqOff.cqes) + int(p.cqEntries)*cqeSize
	single := p.features&ioringFeatSingleMmap != 0
	r.single = single
	if single {
		sqSize = max(sqSize, cqSize)
	}
	const prot = unix.PROT_READ | unix.PROT_WRITE
	const flags = unix.MAP_SHARED | unix.MAP_POPULATE
	if r.sqMem, err = unix.Mmap(fd, ioringOffSQRing, sqSize, prot, flags); err != nil {
		return nil, fmt.Errorf("io_uring: mmap of the SQ ring: %w", err)
	}
	if single {
		r.cqMem = r.sqMem
	} else if r.cqMem, err = unix.Mmap(fd, ioringOffCQRing, cqSize, prot, flags); err != nil {
		return nil, fmt.Errorf("io_uring: mmap of the CQ ring: %w", err)
	}
	if r.sqeMem, err = unix.Mmap(fd, ioringOffSQEs, int(p.sqEntries)*sqeSize, prot, flags); err != nil {
		return nil, fmt.Errorf("io_uring: mmap of the SQEs: %w", err)
	}
	u32 := func(mem []byte, off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&mem[off])) }
	r.sqHead = u32(r.sqMem, p.sqOff.head)
	r.sqTail = u32(r.sqMem, p.sqOff.tail)
	r.sqMask = *u32(r.sqMem, p.sqOff.ringMask)
	r.sqEntries = *u32(r.sqMem, p.sqOff.ringEntries)
	r.sqArray = unsafe.Slice(u32(r.sqMem, p.sqOff.array), r.sqEntries)
	r.sqes = unsafe.Slice((*uringSQE)(unsafe.Pointer(&r.sqeMem[0])), r.sqEntries)
	r.cqHead = u32(r.cqMem, p.cqOff.head)
	r.cqTail = u32(r.cqMem, p.cqOff.tail)
	r.cqMask = *u32(r.cqMem, p.cqOff.ringMask)
	cqEntries := *u32(r.cqMem, p.cqOff.ringEntries)
	r.cqes = unsafe.Slice((*uringCQE)(unsafe.Pointer(&r.cqMem[p.cqOff.cqes])), cqEntries)
	if cqEntries < r.sqEntries {
		return nil, fmt.Errorf("io_uring: CQ (%d entries) smaller than SQ (%d)", cqEntries, r.sqEntries)
	}
	// The SQ array maps ring positions to SQE indices; ours is the
	// identity, set once: the SQE for ring position t is sqes[t&mask].
	for i := range r.sqArray {
		r.sqArray[i] = uint32(i)
	}
	r.tail = atomic.LoadUint32(r.sqTail)

	r.op = ioringOpRead
	if p.features&ioringFeatRWCurPos == 0 || opts.forceReadv {
		r.op = ioringOpReadv
	}
	opname := "IORING_OP_READ"
	if r.op == ioringOpReadv {
		opname = "IORING_OP_READV"
	}
	r.desc = fmt.Sprintf("io_uring (%s, %d entries)", opname, r.sqEntries)
	r.slots = make([]slot, r.sqEntries)
	r.free = make([]int32, r.sqEntries)
	for i := range r.free {
		r.free[i] = int32(len(r.free) - 1 - i)
	}
	r.cond.L = &r.mu
	return r, nil
}

func (r *ring) Backend() string { return r.desc }

func (r *ring) unmap() {
	if r.sqeMem != nil {
		_ = unix.Munmap(r.sqeMem)
	}
	if r.cqMem != nil && !r.single {
		_ = unix.Munmap(r.cqMem)
	}
	if r.sqMem != nil {
		_ = unix.Munmap(r.sqMem)
	}
	r.sqeMem, r.cqMem, r.sqMem = nil, nil, nil
	r.sqes, r.cqes, r.sqArray = nil, nil, nil
	r.sqHead, r.sqTail, r.cqHead, r.cqTail = nil, nil, nil, nil
	r.unmapped = true
}

func (r *ring) Submit(reqs []Request) error {
	if err := validate(reqs); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	nready := len(r.ready)
	for _, q := range reqs {
		if len(q.Buf) == 0 {
			r.ready = append(r.ready, Result{Tag: q.Tag})
			continue
		}
		r.backlog.push(q)
	}
	r.pending += len(reqs)
	r.fill()
	if len(r.ready) > nready {
		r.cond.Broadcast()
	}
	return nil
}

// fill starts backlog requests in free slots and submits the SQ. mu held.
func (r *ring) fill() {
	for len(r.free) > 0 && r.backlog.len() > 0 {
		i := r.free[len(r.free)-1]
		r.free = r.free[:len(r.free)-1]
		r.inflight++
		r.slots[i] = slot{req: r.backlog.pop()}
		r.prep(i)
	}
	r.submit()
}

// prep writes the SQE reading the rest of slot i's request. mu held.
func (r *ring) prep(i int32) {
	s := &r.slots[i]
	buf := s.req.Buf[s.done:]
	n := min(len(buf), maxChunk)
	addr := uint64(uintptr(unsafe.Pointer(&buf[0])))
	if r.op == ioringOpReadv {
		s.iov = unix.Iovec{Base: &buf[0]}
		s.iov.SetLen(n)
		addr = uint64(uintptr(unsafe.Pointer(&s.iov)))
		n = 1
	}
	r.sqes[r.tail&r.sqMask] = uringSQE{
		opcode:   r.op,
		fd:       int32(s.req.File.Fd()),
		off:      uint64(s.req.Off) + uint64(s.done),
		addr:     addr,
		len:      uint32(n),
		userData: uint64(i),
	}
	r.tail++
}

// unsubmitted is the number of SQEs the kernel has not consumed. mu held.
func (r *ring) unsubmitted() uint32 {
	return r.tail - atomic.LoadUint32(r.sqHead)
}

// submit hands the prepared SQEs to the kernel. mu held.
func (r *ring) submit() {
	// The store publishes the SQEs written before it (sync/atomic is
	// sequentially consistent, stronger than the release the ABI asks).
	atomic.StoreUint32(r.sqTail, r.tail)
	for {
		n := r.unsubmitted()
		if n == 0 {
			return
		}
		_, err := uringEnter(r.fd, n, 0, 0)
		switch {
		case err == nil, err == unix.EINTR:
			continue
		case err == unix.EAGAIN, err == unix.EBUSY:
			// Out of kernel resources for now: the SQEs stay in the
			// ring and are submitted again by the next fill or Wait.
			return
		default:
			// The kernel consumed none of the remaining SQEs (it reads
			// the SQ only inside io_uring_enter, under its lock, and
			// only this goroutine submits while holding mu), so take
			// them back and fail their requests.
			head := atomic.LoadUint32(r.sqHead)
			for t := head; t != r.tail; t++ {
				i := int32(r.sqes[t&r.sqMask].userData)
				r.finish(i, os.NewSyscallError("io_uring_enter", err))
			}
			r.tail = head
			atomic.StoreUint32(r.sqTail, r.tail)
			r.cond.Broadcast()
			return
		}
	}
}

// finish completes slot i with err (nil, io.EOF or another error) and
// frees it. mu held.
func (r *ring) finish(i int32, err error) {
	s := &r.slots[i]
	if !r.closed {
		r.ready = append(r.ready, Result{Tag: s.req.Tag, N: s.done, Err: err})
	}
	*s = slot{}
	r.free = append(r.free, i)
	r.inflight--
}

// reap harvests the CQ: completes finished requests, resubmits short and
// interrupted reads, starts backlog requests in the freed slots. It
// returns whether it harvested anything. mu held.
//
// While a reaper sleeps in io_uring_enter nobody else harvests: the
// kernel wakes it when the CQ holds a completion, and if another goroutine
// took that completion the reaper would sleep on with nothing left in
// flight to wake it.
func (r *ring) reap() bool {
	if r.unmapped || r.reaping {
		return false
	}
	head := *r.cqHead // only we write it
	tail := atomic.LoadUint32(r.cqTail)
	if head == tail {
		return false
	}
	for ; head != tail; head++ {
		c := r.cqes[head&r.cqMask]
		i := int32(c.userData)
		s := &r.slots[i]
		switch {
		case c.res > 0:
			s.done += int(c.res)
			if s.done >= len(s.req.Buf) {
				r.finish(i, nil)
			} else {
				r.prep(i) // short read: read the rest
			}
		case c.res == 0:
			r.finish(i, io.EOF)
		default:
			errno := syscall.Errno(-c.res)
			// ECANCELED: this package cancels nothing, but the kernel
			// cancels the requests of a thread that exits (a goroutine
			// that ends locked to its thread): read again.
			if (errno == unix.EINTR || errno == unix.EAGAIN || errno == unix.ECANCELED) && s.retries < maxRetries {
				s.retries++
				r.prep(i)
				continue
			}
			r.finish(i, &os.PathError{Op: "read", Path: s.req.File.Name(), Err: errno})
		}
	}
	// Release the CQEs to the kernel after reading them.
	atomic.StoreUint32(r.cqHead, head)
	if !r.closed {
		r.fill()
	} else {
		r.submit()
	}
	r.cond.Broadcast()
	return true
}

// block waits for progress: as the reaper in io_uring_enter when requests
// are in the kernel, or for another goroutine's progress. mu held; it is
// released while waiting.
func (r *ring) block() {
	switch {
	case r.reaping:
		r.cond.Wait()
	case r.inflight > int(r.unsubmitted()):
		r.reaping = true
		r.mu.Unlock()
		// EINTR (the runtime's preemption signals) just returns early.
		_, _ = uringEnter(r.fd, 0, 1, ioringEnterGetEvents)
		r.mu.Lock()
		r.reaping = false
		if !r.reap() {
			r.cond.Broadcast()
		}
	case r.inflight > 0:
		// Every request in flight is an SQE the kernel refused for
		// want of resources (EAGAIN): try again a little later.
		r.mu.Unlock()
		time.Sleep(time.Millisecond)
		r.mu.Lock()
		r.submit()
	default:
		// Nothing in flight: the pending results are ready, or
		// another Wait took them.
		r.cond.Wait()
	}
}

func (r *ring) Wait(min int) ([]Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var got []Result
	for {
		if r.closed {
			return nil, ErrClosed
		}
		r.reap()
		got = takeReady(got, &r.ready, &r.pending)
		if len(got) >= min || r.pending == 0 {
			return got, nil
		}
		r.block()
	}
}

func (r *ring) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	r.backlog = fifo{}
	r.ready = nil
	r.cond.Broadcast()
	// The kernel may write into the buffers of requests in flight, and
	// a reaper may be inside io_uring_enter: wait for both.
	for r.inflight > 0 || r.reaping {
		if !r.reap() {
			r.block()
		}
	}
	r.ready = nil
	r.unmap()
	err := unix.Close(r.fd)
	r.fd = -1
	if err != nil {
		return fmt.Errorf("io_uring: close: %w", err)
	}
	return nil
}
