// Package faultio wraps an io.ReaderAt to inject device faults at chosen
// byte ranges: I/O errors, short reads and bit flips. Tests use it to prove
// that bpcheck reports what it could not read and checks the rest.
package faultio

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"syscall"
)

// Kind is a kind of fault.
type Kind int

// Fault kinds.
const (
	EIO   Kind = iota // the read fails with EIO
	Short             // the read returns fewer bytes and io.ErrUnexpectedEOF
	Flip              // one bit of the byte at Off is inverted
)

// Fault is one fault over the byte range [Off, Off+Len).
type Fault struct {
	Kind Kind
	Off  int64
	Len  int64 // for Flip, ignored (one byte)
	Bit  uint8 // for Flip: which bit
	// Nth, when above 0, makes the fault transient: only the Nth read
	// that meets the range faults (EIO and Short only).
	Nth int64
}

// ReaderAt injects Faults into reads of R.
type ReaderAt struct {
	R      io.ReaderAt
	Faults []Fault
	// Hits counts reads that met a fault.
	Hits atomic.Int64

	mu   sync.Mutex
	seen map[int]int64 // per transient fault: reads that met its range
}

// transientSkips reports whether fault i is transient and this read (which
// meets its range) is not the one it fails.
func (r *ReaderAt) transientSkips(i int) bool {
	f := &r.Faults[i]
	if f.Nth <= 0 {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = map[int]int64{}
	}
	r.seen[i]++
	return r.seen[i] != f.Nth
}

// ErrEIO is the error returned for EIO faults.
var ErrEIO error = syscall.EIO

func overlaps(off, n, foff, flen int64) bool { return off < foff+flen && foff < off+n }

// ReadAt implements io.ReaderAt.
func (r *ReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n := int64(len(p))
	for i, f := range r.Faults {
		if (f.Kind == EIO || f.Kind == Short) && overlaps(off, n, f.Off, f.Len) && r.transientSkips(i) {
			continue
		}
		switch f.Kind {
		case EIO:
			if overlaps(off, n, f.Off, f.Len) {
				r.Hits.Add(1)
				return 0, &readError{off: off}
			}
		case Short:
			if overlaps(off, n, f.Off, f.Len) {
				r.Hits.Add(1)
				cut := max(f.Off-off, 0)
				m, err := r.R.ReadAt(p[:cut], off)
				if err != nil {
					return m, err
				}
				return m, io.ErrUnexpectedEOF
			}
		}
	}
	m, err := r.R.ReadAt(p, off)
	for _, f := range r.Faults {
		if f.Kind == Flip && f.Off >= off && f.Off < off+int64(m) {
			r.Hits.Add(1)
			p[f.Off-off] ^= 1 << (f.Bit & 7)
		}
	}
	return m, err
}

type readError struct{ off int64 }

func (e *readError) Error() string { return "injected I/O error" }
func (e *readError) Unwrap() error { return ErrEIO }

// IsEIO reports whether err is an injected (or real) EIO.
func IsEIO(err error) bool { return errors.Is(err, syscall.EIO) }
