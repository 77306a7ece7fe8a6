package gen

import (
	"bpcheck/bp"
	"bpcheck/report"
)

// Manifest describes a generated filesystem: the parameters, what was
// written, and every injected fault as the finding `bpcheck check --json`
// reports for it.
type Manifest struct {
	Params  Params                 `json:"params"`
	UUID    string                 `json:"uuid"`
	Files   []string               `json:"files"`
	Version string                 `json:"version"`
	Btrees  map[string]BtreeCounts `json:"btrees"`
	Devices []DeviceCounts         `json:"devices"`
	Extents int64                  `json:"extents"`
	Inodes  int64                  `json:"inodes"`
	// MetadataBytes is what was written: btree nodes (every replica),
	// superblocks and journal entries.
	MetadataBytes int64 `json:"metadata_bytes"`
	// KeySealed says the key of an encrypted filesystem is sealed with
	// a passphrase (not stored in plain text).
	KeySealed bool           `json:"key_sealed,omitempty"`
	Injected  map[string]int `json:"injected"`
	Findings  []Finding      `json:"findings"`
}

// BtreeCounts are the keys and nodes of one btree.
type BtreeCounts struct {
	Keys      int64 `json:"keys"`
	Nodes     int   `json:"nodes"`
	RootLevel int   `json:"root_level"`
}

// DeviceCounts describe one device's buckets.
type DeviceCounts struct {
	Buckets        uint64 `json:"buckets"`
	BucketSize     int64  `json:"bucket_size"`
	SBBuckets      uint64 `json:"sb_buckets"`
	JournalBuckets uint64 `json:"journal_buckets"`
	DataBuckets    uint64 `json:"data_buckets"`
	BtreeBuckets   uint64 `json:"btree_buckets"`
	FreeBuckets    uint64 `json:"free_buckets"`
	DataSectors    uint64 `json:"data_sectors"`
	// Stripe blocks (erasure coding): data block and parity buckets.
	StripeBuckets uint64 `json:"stripe_buckets,omitempty"`
	ParityBuckets uint64 `json:"parity_buckets,omitempty"`
}

// Finding is one expected finding, in the fields of bpcheck's JSON
// report (docs/json.md): Dev and Bucket are absent for findings that name
// no member device.
type Finding struct {
	Code   string  `json:"code"`
	Dev    *int    `json:"dev,omitempty"`
	Bucket *uint64 `json:"bucket,omitempty"`
	BP     string  `json:"bp,omitempty"`
	Btree  string  `json:"btree,omitempty"`
	Level  *int    `json:"level,omitempty"`
	Pos    string  `json:"pos,omitempty"`
	Detail string  `json:"detail,omitempty"`
}

// Key returns the finding as one comparable line.
func (f *Finding) Key() string {
	s := f.Code
	if f.Dev != nil {
		s += " bucket " + itoa(int64(*f.Dev)) + ":" + utoa(*f.Bucket)
	}
	if f.BP != "" {
		s += " bp " + f.BP
	}
	if f.Btree != "" {
		s += " btree=" + f.Btree + " level=" + itoa(int64(*f.Level)) + " pos=" + f.Pos
	}
	return s
}

// FindingFromReport converts one of bpcheck's findings to the manifest
// form (the fields the manifest compares).
func FindingFromReport(r *report.Finding) Finding {
	f := Finding{Code: r.Code}
	if r.Dev >= 0 {
		d, b := r.Dev, r.Bucket
		f.Dev, f.Bucket = &d, &b
	}
	if r.HasBP {
		f.BP = r.BP.String()
	}
	if r.Btree != "" {
		l := r.Level
		f.Btree, f.Level, f.Pos = r.Btree, &l, r.Pos.String()
	}
	return f
}

// finding builds a report.Finding for the manifest (sorted like bpcheck's).
func (g *generator) finding(code string, dev int, bucket uint64, bpPos *bp.Pos, btree bp.BtreeID, level int, pos *bp.Pos, detail string) report.Finding {
	f := report.Finding{Code: code, Dev: dev, Bucket: bucket, Level: level, Detail: detail}
	if bpPos != nil {
		f.BP, f.HasBP = *bpPos, true
	}
	if pos != nil {
		f.Btree, f.Pos = btree.Name(g.f.version), *pos
	}
	return f
}

func itoa(v int64) string {
	if v < 0 {
		return "-" + utoa(uint64(-v))
	}
	return utoa(uint64(v))
}

func utoa(v uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return string(b[i:])
}
