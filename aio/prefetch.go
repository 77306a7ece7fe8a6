package aio

import (
	"errors"
	"os"
)

// Prefetcher is a read-ahead window on top of a Reader for one consumer
// that knows the blocks it will read next, such as a btree walk that knows
// the pointers to the next leaves in key order: Start begins reading a
// block, Take later returns it, waiting only if the read has not finished.
//
// A Prefetcher is not safe for concurrent use: one walk (one goroutine)
// owns it, and it must be the only user of its Reader, whose results it
// consumes. Blocks are identified by (file, offset); a block is read at
// most once per Start, and Take hands it over exactly once.
type Prefetcher struct {
	r      Reader
	window int
	tag    uint64
	byKey  map[blockKey]*prefetch
	byTag  map[uint64]*prefetch
}

type blockKey struct {
	f   *os.File
	off int64
}

type prefetch struct {
	key  blockKey
	buf  []byte
	done bool
	n    int
	err  error
}

// ErrWindowFull is returned by Start when window blocks are started and
// not yet taken.
var ErrWindowFull = errors.New("aio: prefetch window full")

// NewPrefetcher returns a Prefetcher that keeps at most window blocks
// started and not yet taken (so at most window buffers lent to it).
func NewPrefetcher(r Reader, window int) *Prefetcher {
	return &Prefetcher{r: r, window: max(window, 1), byKey: make(map[blockKey]*prefetch), byTag: make(map[uint64]*prefetch)}
}

// Room is the number of blocks that can be started before the window is
// full.
func (p *Prefetcher) Room() int { return p.window - len(p.byKey) }

// Started reports whether the block at (f, off) was started and not yet
// taken.
func (p *Prefetcher) Started(f *os.File, off int64) bool {
	_, ok := p.byKey[blockKey{f, off}]
	return ok
}

// Start begins reading len(buf) bytes of f at off into buf, which belongs
// to the Prefetcher until Take or Drain gives it back. It does nothing
// (and returns nil) when that block is already started, and returns
// ErrWindowFull when the window is full.
func (p *Prefetcher) Start(f *os.File, off int64, buf []byte) error {
	k := blockKey{f, off}
	if _, ok := p.byKey[k]; ok {
		return nil
	}
	if len(p.byKey) >= p.window {
		return ErrWindowFull
	}
	p.tag++
	if err := p.r.Submit([]Request{{File: f, Off: off, Buf: buf, Tag: p.tag}}); err != nil {
		return err
	}
	e := &prefetch{key: k, buf: buf}
	p.byKey[k] = e
	p.byTag[p.tag] = e
	return nil
}

// Take returns the block at (f, off) if it was started, waiting for its
// read to finish: the buffer given to Start and the read's result (see
// Result). ok is false, and nothing is waited for, when the block was not
// started; the caller then reads it itself.
func (p *Prefetcher) Take(f *os.File, off int64) (buf []byte, n int, err error, ok bool) {
	k := blockKey{f, off}
	e, ok := p.byKey[k]
	if !ok {
		return nil, 0, nil, false
	}
	for !e.done {
		if err := p.collect(1); err != nil {
			return nil, 0, err, false
		}
	}
	delete(p.byKey, k)
	return e.buf, e.n, e.err, true
}

// collect waits for at least min results and records them.
func (p *Prefetcher) collect(min int) error {
	res, err := p.r.Wait(min)
	if err != nil {
		return err
	}
	if len(res) == 0 && min > 0 {
		return errors.New("aio: prefetch read lost: the Reader has nothing outstanding")
	}
	for _, x := range res {
		if e, ok := p.byTag[x.Tag]; ok {
			delete(p.byTag, x.Tag)
			e.done, e.n, e.err = true, x.N, x.Err
		}
	}
	return nil
}

// Drain waits for every started read to finish and returns the buffers of
// the blocks not taken, for reuse: a walk that stops early calls it before
// it recycles buffers. The Prefetcher is empty and usable afterwards.
func (p *Prefetcher) Drain() ([][]byte, error) {
	var err error
	for len(p.byTag) > 0 {
		if err = p.collect(len(p.byTag)); err != nil {
			break
		}
	}
	bufs := make([][]byte, 0, len(p.byKey))
	for k, e := range p.byKey {
		if e.done {
			bufs = append(bufs, e.buf)
		}
		delete(p.byKey, k)
	}
	clear(p.byTag)
	return bufs, err
}
