package listfmt

import (
	"encoding/binary"
	"fmt"

	"bpcheck/bp"
	"bpcheck/csum"
)

// appendPtrsValue prints extent, btree_ptr, btree_ptr_v2 and reflink_v
// values.
func (p *Printer) appendPtrsValue(b []byte, k *bp.Key, val []byte) []byte {
	entries, _, err := bp.ValueEntries(k.Type, val)
	if err != nil {
		return append(b, "(invalid: "+err.Error()+")"...)
	}
	switch k.Type {
	case bp.KeyBtreePtrV2:
		v, _ := bp.DecodeBtreePtrV2(val)
		switch {
		case p.dialect >= DialectV133:
			b = append(b, "\n  "...)
		case p.dialect == DialectV131:
			// no indent around the value yet
			b = append(b, '\n')
		}
		b = append(b, "seq "...)
		b = appendHex(b, v.Seq)
		b = append(b, " written "...)
		b = appendUint(b, uint64(v.SectorsWritten))
		b = append(b, " min_key "...)
		if v.Flags&bp.BtreePtrRangeUpdated != 0 {
			b = append(b, "R "...)
		}
		b = AppendPos(b, v.MinKey)
		b = append(b, ' ')
	case bp.KeyReflinkV:
		b = append(b, "refcount: "...)
		b = appendUint(b, binary.LittleEndian.Uint64(val))
		b = append(b, ' ')
	}
	b = append(b, "durability: "...)
	b = appendUint(b, uint64(p.durability(entries, k.Size)))
	b = append(b, ' ')
	if p.dialect == DialectV131 {
		// the v1.31 tools add the entries' indent on this line
		b = append(b, "  "...)
	}
	it := bp.NewEntryIter(entries, p.extra)
	first := true
	for {
		off := it.Offset()
		e, ok, err := it.Next()
		if err != nil && off+8 <= len(entries) {
			if p.dialect >= DialectV133 {
				b = append(b, "\n  (unknown extent entry "...)
			} else if p.dialect == DialectV131 {
				b = append(b, "\n  (invalid extent entry "...)
			} else {
				if !first {
					b = append(b, ' ')
				}
				b = append(b, "(invalid extent entry "...)
			}
			b = append(b, fmt.Sprintf("%016x", binary.LittleEndian.Uint64(entries[off:]))...)
			b = append(b, ')')
		}
		if !ok {
			break
		}
		if p.dialect >= DialectV131 {
			b = append(b, "\n  "...)
		} else if !first {
			b = append(b, ' ')
		}
		first = false
		b = p.appendEntry(b, e, k.Size)
	}
	return b
}

// durability sums the durability of a key's pointers as the tools print
// it: cached pointers count 0, erasure-coded pointers their stripe's
// redundancy + 1; a pointer to a missing device and an evacuating
// (format A: failed) member's pointer count 0, except in the v1.38 text,
// which counts the first as 1 and the second at the member's durability.
func (p *Printer) durability(entries []byte, size uint32) uint {
	it := bp.NewPtrIter(entries, size, p.extra)
	var d uint
	for {
		dp, ok, _ := it.Next()
		if !ok {
			return d
		}
		m := p.sb.Member(dp.Ptr.Dev)
		switch {
		case dp.Ptr.Cached:
		case dp.HasStripe && p.dialect == DialectV138:
			d += uint(dp.Stripe.Redundancy) + 1
		case p.dialect == DialectV138 && m == nil:
			d++
		case p.dialect == DialectV138:
			d += m.Durability()
		case m == nil || m.State() == 2:
		case dp.HasStripe:
			d += uint(dp.Stripe.Redundancy) + 1
		default:
			d += m.Durability()
		}
	}
}

func (p *Printer) appendEntry(b []byte, e bp.Entry, size uint32) []byte {
	switch e.Type {
	case bp.EntryPtr:
		ptr := bp.DecodePtr(binary.LittleEndian.Uint64(e.Words))
		b = append(b, "ptr: "...)
		m := p.sb.Member(ptr.Dev)
		if m != nil && p.dialect >= DialectV131 {
			name := fmt.Sprintf("dev-%d", ptr.Dev)
			if int(ptr.Dev) < len(p.devNames) && p.devNames[ptr.Dev] != "" {
				name = p.devNames[ptr.Dev]
			}
			b = append(b, fmt.Sprintf("%6s ", name)...)
		}
		b = appendUint(b, uint64(ptr.Dev))
		b = append(b, ':')
		if m != nil && m.BucketSize != 0 {
			b = appendUint(b, ptr.Offset/uint64(m.BucketSize))
			b = append(b, ':')
			b = appendUint(b, ptr.Offset%uint64(m.BucketSize))
		} else {
			b = appendUint(b, ptr.Offset)
		}
		b = append(b, " gen "...)
		b = appendUint(b, uint64(ptr.Gen))
		if m != nil && p.dialect >= DialectV120 && m.Durability() != 1 {
			b = append(b, " d="...)
			b = appendUint(b, uint64(m.Durability()))
		}
		if ptr.Cached {
			b = append(b, " cached"...)
		}
		if ptr.Unwritten && (m != nil || p.dialect >= DialectV131) {
			b = append(b, " unwritten"...)
		}
		return b
	case bp.EntryCRC32, bp.EntryCRC64, bp.EntryCRC128:
		c := bp.DecodeCRC(e, size)
		if p.dialect >= DialectV131 {
			b = append(b, "crc"...)
			b = appendUint(b, []uint64{0, 32, 64, 128}[e.Type])
			b = append(b, ": c_size "...)
		} else {
			b = append(b, "crc: c_size "...)
		}
		b = appendUint(b, uint64(c.CompressedSize))
		b = append(b, " size "...)
		b = appendUint(b, uint64(c.UncompressedSize))
		b = append(b, " offset "...)
		b = appendUint(b, uint64(c.Offset))
		b = append(b, " nonce "...)
		b = appendUint(b, uint64(c.Nonce))
		b = append(b, " csum "...)
		b = append(b, csum.Type(c.CsumType).String()...)
		b = append(b, ' ')
		b = appendHex(b, c.CsumHi)
		b = append(b, ':')
		b = appendHex(b, c.CsumLo)
		b = append(b, "  compress "...)
		b = append(b, bp.CompressionName(c.CompressionType)...)
		return b
	case bp.EntryStripePtr:
		s := bp.DecodeStripePtr(e)
		if p.dialect >= DialectV131 {
			b = append(b, "stripe_ptr: idx "...)
		} else {
			b = append(b, "ec: idx "...)
		}
		b = appendUint(b, s.Idx)
		b = append(b, " block "...)
		b = appendUint(b, uint64(s.Block))
		return b
	case bp.EntryReconcile:
		if p.dialect >= DialectV133 {
			return appendReconcile(append(b, "reconcile: "...), binary.LittleEndian.Uint64(e.Words))
		}
	case bp.EntryReconcileBP:
		if p.dialect >= DialectV133 {
			b = append(b, "reconcile_bp: idx "...)
			return appendUint(b, binary.LittleEndian.Uint64(e.Words)>>9)
		}
	case bp.EntryFlags:
		if p.dialect >= DialectV131 {
			b = append(b, "flags: "...)
			return appendBitflags(b, extentFlagNames, binary.LittleEndian.Uint64(e.Words)>>7)
		}
	}
	b = append(b, "(entry type "...)
	b = appendUint(b, uint64(e.Type))
	return append(b, ')')
}

// appendAllocV4 prints an alloc_v4 value.
func (p *Printer) appendAllocV4(b []byte, k *bp.Key, val []byte) []byte {
	a, err := bp.DecodeAllocV4(val)
	if err != nil {
		return append(b, "(invalid: "+err.Error()+")"...)
	}
	line := func(b []byte, name string, width int, v uint64) []byte {
		b = append(b, "\n  "...)
		b = append(b, name...)
		for i := len(name); i < width; i++ {
			b = append(b, ' ')
		}
		b = append(b, ' ')
		return appendUint(b, v)
	}
	b = append(b, "\n  gen "...)
	b = appendUint(b, uint64(a.Gen))
	b = append(b, " oldest_gen "...)
	b = appendUint(b, uint64(a.OldestGen))
	b = append(b, " data_type "...)
	b = append(b, a.DataType.String()...)
	flag := func(v bool) uint64 {
		if v {
			return 1
		}
		return 0
	}
	if p.dialect >= DialectV120 {
		const w = 20
		b = line(b, "journal_seq_nonempty", w, a.JournalSeqNonempty)
		if len(val) > 48 {
			b = line(b, "journal_seq_empty", w, a.JournalSeqEmpty)
		}
		b = line(b, "need_discard", w, flag(a.NeedDiscard()))
		b = line(b, "need_inc_gen", w, flag(a.NeedIncGen()))
		b = line(b, "dirty_sectors", w, uint64(a.DirtySectors))
		if len(val) > 56 {
			b = line(b, "stripe_sectors", w, uint64(a.StripeSectors))
		}
		b = line(b, "cached_sectors", w, uint64(a.CachedSectors))
		switch p.dialect {
		case DialectV138, DialectV136, DialectV135:
			b = line(b, "stripe_refcount", w, uint64(a.StripeRefcount))
		case DialectV133:
			// The same bytes hold the stripe index; the tools of
			// 1.32 to 1.34 no longer print the redundancy byte.
			b = line(b, "stripe", w, uint64(a.StripeRefcount))
		default:
			// Before 1.35 the same bytes are the stripe index and
			// the stripe's redundancy.
			b = line(b, "stripe", w, uint64(a.StripeRefcount))
			b = line(b, "stripe_redundancy", w, uint64(a.StripeRedundancy))
		}
		b = line(b, "io_time[READ]", w, a.IOTime[0])
		b = line(b, "io_time[WRITE]", w, a.IOTime[1])
		if k.Pos.Inode < 256 && p.sb.Member(uint8(k.Pos.Inode)) != nil {
			b = line(b, "fragmentation", 17, p.fragmentation(k, &a))
		}
		b = line(b, "bp_start", 17, uint64(a.BackpointersStart()))
	} else {
		const w = 17
		b = line(b, "journal_seq", w, a.JournalSeqNonempty)
		b = line(b, "need_discard", w, flag(a.NeedDiscard()))
		b = line(b, "need_inc_gen", w, flag(a.NeedIncGen()))
		b = line(b, "dirty_sectors", w, uint64(a.DirtySectors))
		b = line(b, "stripe_sectors", w, uint64(a.StripeSectors))
		b = line(b, "cached_sectors", w, uint64(a.CachedSectors))
		b = line(b, "stripe", w, uint64(a.StripeRefcount))
		b = line(b, "stripe_redundancy", w, uint64(a.StripeRedundancy))
		b = line(b, "io_time[READ]", w, a.IOTime[0])
		b = line(b, "io_time[WRITE]", w, a.IOTime[1])
		switch {
		case p.dialect == DialectV19:
			b = line(b, "fragmentation", w, a.JournalSeqEmpty)
		case k.Pos.Inode < 256 && p.sb.Member(uint8(k.Pos.Inode)) != nil:
			b = line(b, "fragmentation", w, p.fragmentation(k, &a))
		}
		b = line(b, "bp_start", w, uint64(a.BackpointersStart()))
	}
	return b
}

// fragmentation is the fragmentation LRU index that the tools from v1.13
// compute for display: dirty (and stripe) sectors scaled to 2^31 per bucket, for
// partly used buckets of movable data.
func (p *Printer) fragmentation(k *bp.Key, a *bp.AllocV4) uint64 {
	switch a.DataType {
	case bp.DataBtree, bp.DataUser, bp.DataStripe:
	default:
		return 0
	}
	m := p.sb.Member(uint8(k.Pos.Inode))
	if m == nil || m.BucketSize == 0 {
		return 0
	}
	d := uint64(a.DirtySectors) + uint64(a.StripeSectors)
	if d == 0 || d >= uint64(m.BucketSize) {
		return 0
	}
	return d << 31 / uint64(m.BucketSize)
	// (the kernel clamps d to bucket_size; d < bucket_size here)
}

// appendBackpointer prints a backpointer value.
func (p *Printer) appendBackpointer(b []byte, k *bp.Key, val []byte) []byte {
	v, err := bp.DecodeBackpointer(val, p.formatB)
	if err != nil {
		return append(b, "(invalid: "+err.Error()+")"...)
	}
	dev := k.Pos.Inode
	var bucketSize uint64
	if dev < 256 {
		if m := p.sb.Member(uint8(dev)); m != nil {
			bucketSize = uint64(m.BucketSize)
		}
	}
	sector := k.Pos.Offset >> p.shift
	switch {
	case p.formatB && bucketSize != 0:
		b = append(b, "bucket="...)
		b = appendUint(b, dev)
		b = append(b, ':')
		b = appendUint(b, sector/bucketSize)
		b = append(b, ':')
		b = appendUint(b, sector%bucketSize)
		b = append(b, ' ')
	case p.formatB:
		b = append(b, "sector="...)
		b = appendUint(b, dev)
		b = append(b, ':')
		b = appendUint(b, sector)
		b = append(b, ' ')
	case bucketSize != 0:
		b = append(b, "bucket="...)
		b = AppendPos(b, bp.Pos{Inode: dev, Offset: sector / bucketSize})
		b = append(b, ' ')
	}
	b = append(b, "btree="...)
	b = append(b, v.BtreeID.Name(p.sb.Version)...)
	if p.formatB {
		b = append(b, " level="...)
		b = appendUint(b, uint64(v.Level))
		if p.dialect >= DialectV125 {
			b = append(b, " data_type="...)
			b = append(b, v.DataType.String()...)
		}
		b = append(b, " suboffset="...)
		b = appendUint(b, k.Pos.Offset&(1<<p.shift-1))
		b = append(b, " len="...)
		b = appendUint(b, uint64(v.BucketLen))
		b = append(b, " gen="...)
		b = appendUint(b, uint64(v.BucketGen))
	} else {
		b = append(b, " l="...)
		b = appendUint(b, uint64(v.Level))
		b = append(b, " offset="...)
		b = appendUint(b, v.BucketOffset>>bp.ShiftA)
		b = append(b, ':')
		b = appendUint(b, v.BucketOffset&(1<<bp.ShiftA-1))
		b = append(b, " len="...)
		b = appendUint(b, uint64(v.BucketLen))
	}
	b = append(b, " pos="...)
	b = AppendPos(b, v.Pos)
	if p.formatB && v.Flags&bp.BPFlagReconcileMask != 0 && p.dialect >= DialectV136 {
		// the v1.36+ tools; the v1.33 and v1.35 ones print no flags
		b = append(b, " phys"...)
	}
	if p.formatB && v.Flags&bp.BPFlagStripePtr != 0 && p.sb.Version >= bp.VersionErasureCoding {
		// v1.37+ tools (the bit exists from 1.37)
		b = append(b, " stripe"...)
	}
	return b
}

// Names the v1.36 tools print for reconcile options (BCH_RECONCILE_OPTS),
// checksum options, compression options and extent flags.
var (
	reconcileOptNames   = []string{"data_replicas", "data_checksum", "erasure_code", "background_compression", "background_target", "promote_target"}
	csumOptNames        = []string{"none", "crc32c", "crc64", "xxhash"}
	compressionOptNames = []string{"none", "lz4", "gzip", "zstd"}
	extentFlagNames     = []string{"poisoned"}
)

// appendBitflags appends the names of the bits set in v, comma-separated,
// as the kernel's prt_bitflags does.
func appendBitflags(b []byte, names []string, v uint64) []byte {
	first := true
	for i := 0; v != 0 && i < 64; i++ {
		if v&(1<<i) == 0 {
			continue
		}
		v &^= 1 << i
		if !first {
			b = append(b, ',')
		}
		first = false
		if i < len(names) {
			b = append(b, names[i]...)
		} else {
			b = appendUint(b, uint64(i))
		}
	}
	return b
}

// appendOptName appends names[v], or the number when it has no name.
func appendOptName(b []byte, names []string, v uint64) []byte {
	if v < uint64(len(names)) {
		return append(b, names[v]...)
	}
	return appendUint(b, v)
}

// appendReconcile prints a reconcile extent entry (first word w) as the
// v1.36 tools do (bch2_extent_reconcile_to_text). Targets are printed as
// their numbers: the tools name them from the superblock's disk groups.
func appendReconcile(b []byte, w uint64) []byte {
	bit := func(n uint) bool { return w>>n&1 != 0 }
	field := func(shift, bits uint) uint64 { return w >> shift & (1<<bits - 1) }
	fromInode := func(b []byte, n uint) []byte {
		if bit(n) {
			b = append(b, " (inode)"...)
		}
		return b
	}
	b = append(b, "need_rb="...)
	b = appendBitflags(b, reconcileOptNames, field(17, 5))
	if bit(15) {
		b = append(b, " hipri"...)
	}
	if bit(16) {
		b = append(b, " pending"...)
	}
	b = append(b, " replicas="...)
	b = fromInode(appendUint(b, field(28, 3)), 22)
	b = append(b, " checksum="...)
	b = fromInode(appendOptName(b, csumOptNames, field(31, 4)), 23)
	if c := field(36, 8); c != 0 || bit(25) {
		b = append(b, " background_compression="...)
		b = appendOptName(b, compressionOptNames, c&0xf)
		if c>>4 != 0 {
			b = append(b, ':')
			b = appendUint(b, c>>4)
		}
		b = fromInode(b, 25)
	}
	if t := field(44, 10); t != 0 || bit(26) {
		b = fromInode(appendUint(append(b, " background_target="...), t), 26)
	}
	if t := field(54, 10); t != 0 || bit(27) {
		b = fromInode(appendUint(append(b, " promote_target="...), t), 27)
	}
	if bit(35) || bit(24) {
		b = append(b, " ec="...)
		b = fromInode(appendUint(b, field(35, 1)), 24)
	}
	return b
}
