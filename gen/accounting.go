package gen

import (
	"encoding/binary"
	"math"
	"sort"

	"bpcheck/bp"
	"bpcheck/report"
)

// Disk accounting types (BCH_DISK_ACCOUNTING_TYPES of v1.36.1).
const (
	accNrInodes    = 0
	accReplicas    = 2
	accDevDataType = 3
	accSnapshot    = 5
	accBtree       = 6
)

// accountingPos is the key position of a disk_accounting_pos given as
// its 20 bytes (type byte first): bcachefs reverses the bytes of the
// struct to make a bpos, so the first 8 bytes, read big-endian, are the
// inode, the next 8 the offset and the last 4 the snapshot.
func accountingPos(raw [20]byte) bp.Pos {
	return bp.Pos{
		Inode:    binary.BigEndian.Uint64(raw[0:8]),
		Offset:   binary.BigEndian.Uint64(raw[8:16]),
		Snapshot: binary.BigEndian.Uint32(raw[16:20]),
	}
}

func accPosNrInodes() bp.Pos { return accountingPos([20]byte{accNrInodes}) }

// accPosReplicas is a replicas counter: a bch_replicas_entry_v1 (data
// type, nr_devs, nr_required 1, sorted devices).
func accPosReplicas(dt bp.DataType, devs []uint8) bp.Pos {
	return accPosReplicasReq(dt, devs, 1)
}

// accPosReplicasReq is a replicas counter with nr_required given (the
// data blocks of a stripe for erasure-coded data and parity).
func accPosReplicasReq(dt bp.DataType, devs []uint8, required uint8) bp.Pos {
	raw := [20]byte{accReplicas, byte(dt), byte(len(devs)), required}
	s := append([]uint8(nil), devs...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	copy(raw[4:], s)
	return accountingPos(raw)
}

func accPosDevDataType(dev int, dt bp.DataType) bp.Pos {
	return accountingPos([20]byte{accDevDataType, byte(dev), byte(dt)})
}

func accPosSnapshot(id uint32) bp.Pos {
	raw := [20]byte{accSnapshot}
	binary.LittleEndian.PutUint32(raw[1:], id)
	return accountingPos(raw)
}

// accPosSnapshotBtree is 1.39's snapshot counter of one btree.
func accPosSnapshotBtree(id uint32, btree bp.BtreeID) bp.Pos {
	raw := [20]byte{accSnapshot}
	binary.LittleEndian.PutUint32(raw[1:], id)
	binary.LittleEndian.PutUint32(raw[5:], uint32(btree))
	return accountingPos(raw)
}

func accPosBtree(id bp.BtreeID) bp.Pos {
	raw := [20]byte{accBtree}
	binary.LittleEndian.PutUint32(raw[1:], uint32(id))
	return accountingPos(raw)
}

// accountingVal is the value of an accounting key: its counters.
func accountingVal(counters ...uint64) []byte {
	b := make([]byte, 0, 8*len(counters))
	for _, c := range counters {
		b = binary.LittleEndian.AppendUint64(b, c)
	}
	return b
}

// accountingKeys are the accounting btree's keys, as bcachefs' triggers
// would have summed them for this filesystem: the inode count, sectors
// per replica set (user data and btree nodes), buckets, sectors and
// fragmentation per device and data type, sectors in the root snapshot,
// and sectors, nodes and interior nodes per btree. nodes are every btree
// node, state the node allocators after them. Per-inode counters (inum)
// are not written: fsck does not check them.
func (g *generator) accountingKeys(nodes []*nodeInfo, state []nodeAlloc, res *tailResult) []tailKey {
	var keys []tailKey
	add := func(pos bp.Pos, c ...uint64) {
		keys = append(keys, tailKey{pos: pos, typ: keyAccounting, val: accountingVal(c...)})
	}
	add(accPosNrInodes(), g.ns.nrInodes)

	nd := len(g.devs)
	n := g.p.Replicas
	// Replica sets: the same set can start at different devices.
	sets := map[bp.Pos]uint64{}
	var userTotal uint64
	for f, s := range g.userByFirst {
		if s == 0 {
			continue
		}
		devs := make([]uint8, n)
		for j := range devs {
			devs[j] = uint8((f + j) % nd)
		}
		sets[accPosReplicas(bp.DataUser, devs)] += s * uint64(n)
		userTotal += s * uint64(n)
	}
	type btreeAcc struct{ sectors, nodes, interior uint64 }
	btrees := map[bp.BtreeID]*btreeAcc{}
	for _, nd := range nodes {
		devs := make([]uint8, len(nd.ptrs))
		for j, p := range nd.ptrs {
			devs[j] = p.Dev
		}
		sectors := g.nodeSectors * uint64(len(nd.ptrs))
		sets[accPosReplicas(bp.DataBtree, devs)] += sectors
		a := btrees[nd.btree]
		if a == nil {
			a = &btreeAcc{}
			btrees[nd.btree] = a
		}
		a.sectors += sectors
		a.nodes++
		if nd.level > 0 {
			a.interior++
		}
	}
	if ec := g.ec; ec != nil && len(ec.stripes) > 0 {
		// bch2_bkey_to_replicas of a stripe: every block's device,
		// nr_required = nr_data; data type parity for the stripe key
		// (sectors × nr_redundant), user for the extents in it.
		devs := make([]uint8, nd)
		for i := range devs {
			devs[i] = uint8(i)
		}
		var parity uint64
		for _, st := range ec.stripes {
			parity += g.devs[st.ptrs[0].Dev].bucketSectors
		}
		sets[accPosReplicasReq(bp.DataParity, devs, uint8(ec.nData))] += parity
		if ec.userSectors > 0 {
			sets[accPosReplicasReq(bp.DataUser, devs, uint8(ec.nData))] += ec.userSectors
		}
	}
	if g.p.Inject[KindWrongAccounting] > 0 {
		// The largest user replicas counter, one block too large.
		var worst bp.Pos
		var most uint64
		for pos, s := range sets {
			// (bytes of a big-endian position: type, data type,
			// nr_devs, nr_required; plain replication needs 1)
			if pos.Inode>>48&0xff == uint64(bp.DataUser) && pos.Inode>>32&0xff == 1 && (s > most || s == most && pos.Less(worst)) {
				worst, most = pos, s
			}
		}
		if most > 0 {
			sets[worst] += blockSectors
			res.findings = append(res.findings, g.finding(report.AccountingMismatch, -1, 0, nil, btreeAccounting, 0, &worst,
				"user replicas counter one block too large"))
		}
	}
	for pos, s := range sets {
		add(pos, s)
	}
	for i, d := range g.devs {
		var sbBuckets, sbSectors uint64
		for b := uint64(0); b < d.nbuckets; b++ {
			if b == d.journalStart {
				b = d.sbEndBucket
			}
			if s := d.sbSectorsIn(b); s > 0 {
				sbBuckets++
				sbSectors += s
			}
		}
		var btreeBuckets, btreeSectors uint64
		d.nodeBuckets(&state[i], g.nodeSectors, func(b, slots uint64) {
			btreeBuckets++
			btreeSectors += slots * g.nodeSectors
		})
		userSectors := d.dataSectors + d.dupTotal
		used := sbBuckets + d.journalNr + btreeBuckets + d.dataBuckets + d.stripeBuckets + d.parityBuckets
		add(accPosDevDataType(i, bp.DataFree), d.nbuckets-used, 0, 0)
		add(accPosDevDataType(i, bp.DataSB), sbBuckets, sbSectors, sbBuckets*d.bucketSectors-sbSectors)
		add(accPosDevDataType(i, bp.DataJournal), d.journalNr, d.journalNr*d.bucketSectors, 0)
		if btreeBuckets > 0 {
			add(accPosDevDataType(i, bp.DataBtree), btreeBuckets, btreeSectors, btreeBuckets*d.bucketSectors-btreeSectors)
		}
		if d.dataBuckets > 0 {
			full := d.dataBuckets * d.bucketSectors
			// Σ max(0, size - sectors) over the buckets.
			add(accPosDevDataType(i, bp.DataUser), d.dataBuckets, userSectors, full+d.dataOver-min(full+d.dataOver, userSectors))
		}
		if d.parityBuckets > 0 {
			add(accPosDevDataType(i, bp.DataParity), d.parityBuckets, d.parityBuckets*d.bucketSectors, 0)
		}
		if d.stripeBuckets > 0 {
			full := d.stripeBuckets * d.bucketSectors
			add(accPosDevDataType(i, bp.DataStripe), d.stripeBuckets, d.stripeSectors, full-min(full, d.stripeSectors))
		}
	}
	if g.f.accSnapshotPerBtree {
		// 1.39: per (snapshot, btree) nr_keys, key bytes and sectors
		// (the extents' pointers that are not erasure coded).
		for i, id := range []bp.BtreeID{bp.BtreeExtents, bp.BtreeInodes, btreeDirents} {
			c := g.snapKeys[i]
			if c.keys == 0 {
				continue
			}
			var sectors uint64
			if id == bp.BtreeExtents {
				sectors = userTotal
			}
			add(accPosSnapshotBtree(math.MaxUint32, id), c.keys, c.bytes, sectors)
		}
	} else if userTotal > 0 {
		add(accPosSnapshot(math.MaxUint32), userTotal)
	}
	for id, a := range btrees {
		if g.f.accBtreeCounters == 1 {
			add(accPosBtree(id), a.sectors)
		} else {
			add(accPosBtree(id), a.sectors, a.nodes, a.interior)
		}
	}
	sort.Slice(keys, func(a, b int) bool { return keys[a].pos.Less(keys[b].pos) })
	return keys
}
