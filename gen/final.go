package gen

import (
	"fmt"
	"sort"

	"bpcheck/bp"
	"bpcheck/btreeio"
	"bpcheck/report"
)

// btreeLRU is the lru btree's id.
const btreeLRU bp.BtreeID = 10

// finish builds the tail, then the manifest; the superblocks and the
// journal are written by writeMetadata once every node is on disk.
func (g *generator) finish() (*Manifest, error) {
	res, err := g.finishTail()
	if err != nil {
		return nil, err
	}
	for i := range g.devs {
		g.devs[i].nodes = res.state[i]
	}
	all := append(append([]*nodeInfo(nil), g.nodes...), res.nodes...)
	var nodeSectors uint64
	var written int64
	for _, n := range all {
		written += int64(n.sectorsWritten) * sectorSize * int64(len(n.ptrs))
		devs := make([]uint8, len(n.ptrs))
		for j, p := range n.ptrs {
			devs[j] = p.Dev
			g.devNodes[p.Dev] = append(g.devNodes[p.Dev], [2]uint64{p.Offset, p.Offset + g.nodeSectors})
			nodeSectors += g.nodeSectors
		}
		g.noteReplicas(bp.DataBtree, devs)
	}
	g.writeClock = g.src.clock + nodeSectors
	if c := g.p.Inject[KindMissingNodeBP]; c > len(all) {
		return nil, fmt.Errorf("%d node backpointers to drop, but only %d btree nodes", c, len(all))
	}
	g.findings = append(g.findings, res.findings...)
	for _, k := range []string{KindMissingAlloc, KindMissingDevice, KindMissingNodeBP, KindMissingLRU, KindFreespaceHole, KindWrongAccounting, KindBPPastEnd, KindAllocPastEnd} {
		if n := g.p.Inject[k]; n > 0 {
			g.injected[k] += n
		}
	}
	g.roots = g.roots[:0]
	ids := make([]int, 0, len(res.roots))
	for id := range res.roots {
		ids = append(ids, int(id))
	}
	sort.Ints(ids)
	m := &Manifest{Params: g.p, UUID: btreeio.UUIDString(g.uuid), Version: bp.VersionString(g.f.version),
		Btrees: map[string]BtreeCounts{}, Extents: g.extents, Inodes: g.inodes, Injected: g.injected, MetadataBytes: written,
		KeySealed: g.p.Encrypted && g.p.Passphrase != ""}
	for _, id := range ids {
		r := res.roots[bp.BtreeID(id)]
		g.roots = append(g.roots, root{btree: r.btree, level: r.level, key: rootKey(r)})
		c := BtreeCounts{RootLevel: int(r.level)}
		for _, n := range all {
			if n.btree != r.btree {
				continue
			}
			c.Nodes++
			if n.level == 0 {
				c.Keys += int64(n.keys)
			}
		}
		m.Btrees[r.btree.Name(g.f.version)] = c
	}
	for i, d := range g.devs {
		m.Files = append(m.Files, fmt.Sprintf("dev%d.img", i))
		var btreeBuckets uint64
		d.nodeBuckets(&d.nodes, g.nodeSectors, func(b, slots uint64) { btreeBuckets++ })
		var sb uint64
		for b := uint64(0); b < d.nbuckets; b++ {
			if b == d.journalStart {
				b = d.sbEndBucket
			}
			if b < d.nbuckets && d.sbSectorsIn(b) > 0 {
				sb++
			}
		}
		m.Devices = append(m.Devices, DeviceCounts{Buckets: d.nbuckets, BucketSize: int64(d.bucketSectors) * sectorSize,
			SBBuckets: sb, JournalBuckets: d.journalNr, DataBuckets: d.dataBuckets, BtreeBuckets: btreeBuckets,
			FreeBuckets: res.free[i], DataSectors: d.dataSectors, StripeBuckets: d.stripeBuckets, ParityBuckets: d.parityBuckets})
	}
	report.Sort(g.findings)
	m.Findings = make([]Finding, 0, len(g.findings))
	for i := range g.findings {
		f := FindingFromReport(&g.findings[i])
		f.Detail = g.findings[i].Detail
		m.Findings = append(m.Findings, f)
	}
	return m, nil
}

// journalOn reports whether device i holds the journal entry (the first
// Replicas devices, as metadata replicas).
func (g *generator) journalOn(i int) bool { return i < g.p.Replicas }

// writeMetadata writes the journal entry and every superblock copy.
func (g *generator) writeMetadata(m *Manifest) error {
	var err error
	if g.jsetBytes, err = g.jset(g.roots); err != nil {
		return err
	}
	if g.crypt != nil {
		// The sealed key (scrypt ran while the btrees were written).
		if g.cryptField, err = g.crypt.wait(); err != nil {
			return err
		}
	}
	for i, d := range g.devs {
		f := g.files[i]
		if g.journalOn(i) {
			m.MetadataBytes += int64(len(g.jsetBytes))
			if _, err := f.WriteAt(g.jsetBytes, int64(d.journalStart*d.bucketSectors)*sectorSize); err != nil {
				return err
			}
		}
		if _, err := f.WriteAt(g.layout(d), 7*sectorSize); err != nil {
			return err
		}
		for _, off := range d.sbOffsets {
			if off*sectorSize >= uint64(g.p.DeviceSize) {
				continue
			}
			sb := g.superblock(d, g.roots, off)
			m.MetadataBytes += int64(len(sb))
			if _, err := f.WriteAt(sb, int64(off)*sectorSize); err != nil {
				return err
			}
		}
	}
	return nil
}
