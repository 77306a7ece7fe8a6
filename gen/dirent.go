package gen

import "encoding/binary"

// Directory entry types (DT_* of d_type).
const (
	dtDir = 4
	dtReg = 8
)

// direntHash is the dirent offset of name in a directory whose hash seed
// is seed and str_hash type siphash (bch2_dirent_hash): SipHash-2-4 keyed
// (seed, 0), shifted right by one, at least 2 (0 and 1 are reserved for
// the dot entries). Directories made here never set 31bit_dirent_offset,
// so the hash is not truncated to 31 bits.
func direntHash(seed uint64, name []byte) uint64 {
	return max(sipHash24(seed, 0, name)>>1, 2)
}

// appendDirent appends a dirent value: target inode, d_type, the name,
// zero padding to whole u64s (the name length is the value length minus
// trailing zeros).
func appendDirent(b []byte, target uint64, dtype uint8, name []byte) []byte {
	start := len(b)
	b = binary.LittleEndian.AppendUint64(b, target)
	b = append(b, dtype)
	b = append(b, name...)
	for (len(b)-start)%8 != 0 {
		b = append(b, 0)
	}
	return b
}
