// Package bp decodes bcachefs keys and values: positions (bpos), key headers
// (bkey), per-node key formats (bkey_format) and packed-key unpacking, extent
// entries (pointers, crc entries, stripe pointers), btree_ptr_v2, alloc_v4 and
// backpointer values in both layouts, and the backpointer position math.
//
// Every decoder works on byte slices taken from disk, checks each length
// before it slices, and returns an error instead of panicking on bad input.
// Nothing here allocates per key on the hot path.
package bp
