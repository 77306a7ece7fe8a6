package btreeio

import (
	"testing"

	"bpcheck/internal/casedata"
)

// FuzzJournal feeds mutated journal buckets of the unclean case (jsets and
// their entries) through the journal scanner and replay selection; it must
// never panic, and every replayed entry must have been read.
func FuzzJournal(f *testing.F) {
	var fs *FS
	if casedata.Dir() != "" {
		d, err := OpenDevice(casedata.CaseImages(f, "unclean")[0])
		if err == nil {
			fs, _ = Assemble([]*Device{d})
		}
	}
	if fs == nil {
		f.Skip("test data not available")
	}
	d := fs.Devices[0]
	m := &fs.SB.Members[0]
	bucket := make([]byte, int(m.BucketSize)*SectorSize)
	for _, r := range d.SB.Journal {
		for b := r.Start; b < r.Start+r.Nr; b++ {
			if _, err := d.ReadAt(bucket, int64(b)*int64(len(bucket))); err == nil && bucket[16] != 0 {
				f.Add(append([]byte(nil), bucket[:16384]...))
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		j := &Journal{}
		bySeq := map[uint64]*Jset{}
		fs.scanJournalBucket(d, 0, data, j, bySeq)
		for _, js := range bySeq {
			j.All = append(j.All, js)
		}
		fs.selectReplay(j)
		// A replayed entry was read: its checksum is good, or bad alone
		// (replayed as recovery replays it), and it holds its entries.
		for _, js := range j.Replay {
			if !js.readable || js.Pruned {
				t.Fatalf("replayed entry %d was not read (checksum %v, pruned %v)", js.Seq, js.CsumErr, js.Pruned)
			}
		}
		_ = j.Problems()
		_, _ = j.Roots()
		_, _ = ParseJEntries(data)
	})
}
