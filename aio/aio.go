// Package aio reads blocks of files asynchronously: many positioned reads
// are in flight at once and their completions are collected later. It is
// meant for prefetching btree nodes (64 KiB–1 MiB reads at sector-aligned
// offsets of device files opened O_RDONLY), so that a walk can keep the disk
// busy with the next nodes while it parses the current one.
//
// Two backends implement the same semantics:
//
//   - IOUring drives a Linux io_uring instance directly (io_uring_setup,
//     mmap of the rings, io_uring_enter) with IORING_OP_READ, or
//     IORING_OP_READV on kernels older than 5.6. It needs no goroutines:
//     the callers of Submit and Wait drive the ring.
//   - PreadPool runs a fixed number of goroutines doing pread (os.File.ReadAt).
//
// Auto tries io_uring and falls back to the pool when io_uring_setup fails
// (ENOSYS on old kernels, EPERM when disabled by
// /proc/sys/kernel/io_uring_disabled or by a seccomp filter of a container,
// ENOMEM under a small RLIMIT_MEMLOCK on kernels before 5.12). Backend
// reports which one is in use and why.
//
// # Semantics of a read
//
// Each Request is completed exactly once by a Result with the request's Tag.
// A result has the semantics of os.File.ReadAt: N == len(Buf) and Err == nil
// when the whole buffer was read; otherwise N < len(Buf) and Err says why:
// io.EOF when the file ended (a read that starts at or past the end gives
// N == 0 and io.EOF), or an *os.PathError (Op "read") wrapping the
// syscall.Errno of the failed read (EIO, EINVAL for a misaligned O_DIRECT
// read, EBADF, …), which errors.Is and errors.As see through (in the rare
// case that io_uring_enter itself refuses a batch, its requests fail with
// an *os.SyscallError wrapping that errno instead). Short reads
// of the kernel are continued until the buffer is full or the file ends, and
// EINTR/EAGAIN are retried, so callers never see them.
//
// Buf is written by the kernel or a worker until the request's Result has
// been returned by Wait (or Close has returned): the caller must neither
// read nor reuse it before. The Reader keeps a reference to Buf and File
// until then, so neither is collected, and Go heap memory does not move, so
// the kernel may write into it directly. The File must stay open until its
// requests have completed.
package aio

import (
	"errors"
	"fmt"
	"os"
	"unsafe"
)

// Backend selects the implementation New returns.
type Backend int

const (
	// Auto uses io_uring when the kernel allows it and the pread pool
	// otherwise.
	Auto Backend = iota
	// IOUring uses io_uring; New fails when it is unavailable.
	IOUring
	// PreadPool uses a pool of goroutines doing pread.
	PreadPool
)

// String returns the backend's name as Reader.Backend reports it.
func (b Backend) String() string {
	switch b {
	case Auto:
		return "auto"
	case IOUring:
		return "io_uring"
	case PreadPool:
		return "pread-pool"
	}
	return fmt.Sprintf("Backend(%d)", int(b))
}

// Options configure New. The zero value is usable: Auto, queue depth 64,
// 4 workers.
type Options struct {
	Backend Backend
	// QueueDepth is the number of reads the io_uring backend keeps in
	// flight at once (the submission queue size; the kernel rounds it up
	// to a power of two). Further requests wait in the Reader, not in
	// Submit. Default 64, at most 4096.
	QueueDepth int
	// Workers is the number of goroutines of the pread pool, and so the
	// number of its reads in flight. Default 4.
	Workers int

	// forceReadv makes the io_uring backend use IORING_OP_READV even on
	// kernels that have IORING_OP_READ (for tests).
	forceReadv bool
}

const (
	defaultQueueDepth = 64
	maxQueueDepth     = 4096
	defaultWorkers    = 4
)

// Request is one positioned read of len(Buf) bytes of File at byte offset
// Off. Tag is returned in the request's Result; the Reader does not
// interpret it (it need not be unique, but callers that match results to
// requests will want it to be).
type Request struct {
	File *os.File
	Off  int64
	Buf  []byte
	Tag  uint64
}

// Result is the completion of one Request: see the package documentation
// for the meaning of N and Err.
type Result struct {
	Tag uint64
	N   int
	Err error
}

// Reader reads batches of requests asynchronously. All methods are safe for
// concurrent use. When several goroutines call Wait on one Reader, each
// result goes to exactly one of them; a Reader per consumer (one per btree
// walk, say) is the simpler arrangement.
type Reader interface {
	// Submit queues the requests. It does not wait for reads to finish
	// and does not block on a full queue: requests beyond the queue depth
	// wait inside the Reader and are started as earlier ones complete.
	// It is all or nothing: a request with a nil File or a negative Off
	// (or a Submit after Close, ErrClosed) fails the whole call and none
	// of the requests is queued. Empty reads complete at once with N 0.
	Submit(reqs []Request) error
	// Wait returns completed results, in completion order. It blocks until
	// at least min results are ready, except that it returns early (with
	// fewer, possibly none) when every request submitted so far has
	// completed and been returned, so Wait never waits for a request that
	// was not submitted. Wait(0) polls. After Close it returns ErrClosed.
	Wait(min int) ([]Result, error)
	// Backend names the backend in use: "io_uring (IORING_OP_READ, 64
	// entries)", "io_uring (IORING_OP_READV, 64 entries)" on kernels
	// before 5.6, "pread-pool (4 workers)", and for Auto after a fallback
	// also the reason, as in
	// "pread-pool (4 workers; io_uring unavailable: io_uring_setup:
	// operation not permitted)".
	Backend() string
	// Close waits for the reads in flight to finish (the kernel may be
	// writing into their buffers), drops the requests not yet started and
	// the results not yet returned, wakes blocked Wait calls (which return
	// ErrClosed) and releases the ring or the workers. It is idempotent.
	Close() error
}

// ErrClosed is returned by Submit and Wait after Close.
var ErrClosed = errors.New("aio: reader closed")

// New returns a Reader with the given options.
func New(opts Options) (Reader, error) {
	if opts.QueueDepth <= 0 {
		opts.QueueDepth = defaultQueueDepth
	}
	if opts.QueueDepth > maxQueueDepth {
		opts.QueueDepth = maxQueueDepth
	}
	if opts.Workers <= 0 {
		opts.Workers = defaultWorkers
	}
	switch opts.Backend {
	case IOUring:
		return newRing(opts)
	case PreadPool:
		return newPool(opts, ""), nil
	case Auto:
		r, err := newRing(opts)
		if err == nil {
			return r, nil
		}
		return newPool(opts, "io_uring unavailable: "+err.Error()), nil
	}
	return nil, fmt.Errorf("aio: unknown backend %d", int(opts.Backend))
}

// IOUringAvailable reports whether this process can use io_uring: it sets
// up a small ring and tears it down. The error says why not.
func IOUringAvailable() error {
	r, err := newRing(Options{QueueDepth: 2})
	if err != nil {
		return err
	}
	return r.Close()
}

// validate checks the requests of a Submit call.
func validate(reqs []Request) error {
	for i := range reqs {
		if reqs[i].File == nil {
			return fmt.Errorf("aio: request %d (tag %d): nil File", i, reqs[i].Tag)
		}
		if reqs[i].Off < 0 {
			return fmt.Errorf("aio: request %d (tag %d): negative offset %d", i, reqs[i].Tag, reqs[i].Off)
		}
	}
	return nil
}

// AlignedBuf returns a buffer of size bytes whose first byte is aligned to
// align bytes (a power of two, such as the 512 or 4096 of a device's logical
// block size), as reads of files opened with O_DIRECT need. The buffer's
// length and the read offset must be multiples of the block size as well.
// The buffer is ordinary Go memory: it stays alive while referenced and is
// never moved.
func AlignedBuf(size, align int) []byte {
	if align <= 0 || align&(align-1) != 0 {
		panic(fmt.Sprintf("aio.AlignedBuf: alignment %d is not a power of two", align))
	}
	if size < 0 {
		panic(fmt.Sprintf("aio.AlignedBuf: negative size %d", size))
	}
	if size == 0 {
		return []byte{}
	}
	b := make([]byte, size+align-1)
	skip := 0
	if rem := int(uintptr(unsafe.Pointer(&b[0])) & uintptr(align-1)); rem != 0 {
		skip = align - rem
	}
	return b[skip : skip+size : skip+size]
}

// IsAligned reports whether b starts at a multiple of align bytes.
func IsAligned(b []byte, align int) bool {
	if len(b) == 0 {
		return true
	}
	return uintptr(unsafe.Pointer(&b[0]))&uintptr(align-1) == 0
}
