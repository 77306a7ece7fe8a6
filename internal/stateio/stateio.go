// Package stateio serves the devices of a filesystem as a check of a
// mounted filesystem meets them: one recorded state for the first N reads
// and a later state after that, so that one check reads keys of two
// moments side by side. Tests of live checks use it where no kernel or
// bcachefs library can write the filesystem while it is read.
package stateio

import (
	"io"
	"sync/atomic"
)

// Switch counts the reads of every device of one filesystem together:
// the first N are served from the earlier state, the rest from the later
// one.
type Switch struct {
	N     int64
	reads atomic.Int64
}

// Reads returns how many reads went through the switch.
func (s *Switch) Reads() int64 { return s.reads.Load() }

// Reader returns a ReaderAt of one device that reads before until the
// switch has counted N reads, and after from then on. Both must be the
// same size.
func (s *Switch) Reader(before, after io.ReaderAt) io.ReaderAt {
	return &reader{s: s, before: before, after: after}
}

type reader struct {
	s             *Switch
	before, after io.ReaderAt
}

func (r *reader) ReadAt(p []byte, off int64) (int, error) {
	if r.s.reads.Add(1) <= r.s.N {
		return r.before.ReadAt(p, off)
	}
	return r.after.ReadAt(p, off)
}
