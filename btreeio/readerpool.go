package btreeio

import (
	"sync"

	"bpcheck/aio"
)

// readerPool keeps idle aio Readers for reuse: setting up an io_uring
// (io_uring_setup, three ring mappings) for every level-1 node cost more
// than the reads it made asynchronous on warm caches.
type readerPool struct {
	mu      sync.Mutex
	backend aio.Backend
	depth   int
	idle    []aio.Reader
}

// getReader returns an idle Reader made with the filesystem's current
// async backend and prefetch depth, or a new one.
func (fs *FS) getReader() (aio.Reader, error) {
	p := &fs.readers
	p.mu.Lock()
	if p.backend != fs.AsyncBackend || p.depth != fs.Prefetch {
		// The options changed: readers made for the old ones go.
		for _, r := range p.idle {
			r.Close()
		}
		p.idle, p.backend, p.depth = nil, fs.AsyncBackend, fs.Prefetch
	}
	if n := len(p.idle); n > 0 {
		r := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return r, nil
	}
	backend, depth := p.backend, p.depth
	p.mu.Unlock()
	return newReader(aio.Options{Backend: backend, QueueDepth: depth})
}

// newReader makes the async readers; tests replace it to inject failures.
var newReader = aio.New

// putReader returns r for reuse. healthy must say that no read is in
// flight and no call failed; otherwise r is closed.
func (fs *FS) putReader(r aio.Reader, backend aio.Backend, depth int, healthy bool) {
	p := &fs.readers
	p.mu.Lock()
	if healthy && p.backend == backend && p.depth == depth {
		p.idle = append(p.idle, r)
		r = nil
	}
	p.mu.Unlock()
	if r != nil {
		r.Close()
	}
}

// CloseReaders closes the async readers kept for reuse (io_uring rings,
// pread-pool goroutines). Walks made later make new ones; FS.Close calls
// it too.
func (fs *FS) CloseReaders() { fs.closeReaders() }

// closeReaders closes the idle Readers.
func (fs *FS) closeReaders() {
	p := &fs.readers
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, r := range idle {
		r.Close()
	}
}
