package bp

import (
	"reflect"
	"testing"
)

// fillDistinct sets every field of the struct v points to (recursively) to
// a distinct non-zero value, so that a copy that misses a field shows.
func fillDistinct(t *testing.T, v reflect.Value, next *uint64) {
	t.Helper()
	switch v.Kind() {
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			fillDistinct(t, v.Field(i), next)
		}
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		*next++
		v.SetUint(*next)
	case reflect.Int:
		*next++
		v.SetInt(int64(*next))
	default:
		t.Fatalf("fillDistinct: field of kind %s", v.Kind())
	}
}

// TestInPlaceCopiesAreComplete guards the field-by-field writers of the hot
// path against fields added later: each must give what a plain struct
// assignment gives.
func TestInPlaceCopiesAreComplete(t *testing.T) {
	var n uint64
	var src CRC
	fillDistinct(t, reflect.ValueOf(&src).Elem(), &n)
	var dst CRC
	dst.copyFrom(&src)
	if dst != src {
		t.Fatalf("CRC.copyFrom: got %+v, want %+v", dst, src)
	}

	// implicit must clear every field a previous crc set.
	dst.implicit(77)
	if want := (CRC{CompressedSize: 77, UncompressedSize: 77, LiveSize: 77}); dst != want {
		t.Fatalf("CRC.implicit: got %+v, want %+v", dst, want)
	}

	// decode must overwrite every field, whatever was there before.
	for _, typ := range []int{EntryCRC32, EntryCRC64, EntryCRC128, EntryPtr} {
		words := []byte{0x9d, 0xff, 0x3e, 0x41, 0x55, 0x66, 0x77, 0x88, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
		var fresh, reused CRC
		fresh.decode(typ, words, 9)
		fillDistinct(t, reflect.ValueOf(&reused).Elem(), &n)
		reused.decode(typ, words, 9)
		if fresh != reused {
			t.Fatalf("CRC.decode type %d over a used value: got %+v, want %+v", typ, reused, fresh)
		}
	}

	var p Ptr
	fillDistinct(t, reflect.ValueOf(&p).Elem(), &n)
	w := Ptr{Offset: 123456, Dev: 3, Gen: 9, Cached: true}.Encode()
	p.decode(w)
	if want := (Ptr{Offset: 123456, Dev: 3, Gen: 9, Cached: true}); p != want {
		t.Fatalf("Ptr.decode over a used value: got %+v, want %+v", p, want)
	}

	// ExpectedBPInto over a used value equals it into a zero value, in
	// both backpointer layouts.
	for _, version := range []uint16{1<<10 | 9, 1<<10 | 36} {
		g := &Geometry{Shift: 16, Version: version, BucketSize: func(uint8) (uint32, bool) { return 1024, true }}
		k := Key{Type: KeyExtent, Size: 8, Pos: Pos{Inode: 4096, Offset: 64, Snapshot: 1}}
		d := DecodedPtr{Ptr: Ptr{Offset: 4096 + 24, Dev: 1, Gen: 2}}
		d.CRC.implicit(8)
		var fresh, used Backpointer
		pf := g.ExpectedBPInto(&fresh, BtreeExtents, 0, &k, &d, 0)
		fillDistinct(t, reflect.ValueOf(&used).Elem(), &n)
		pu := g.ExpectedBPInto(&used, BtreeExtents, 0, &k, &d, 0)
		if fresh != used || pf != pu {
			t.Fatalf("version %#x: ExpectedBPInto over a used value: got %+v at %v, want %+v at %v", version, used, pu, fresh, pf)
		}
	}
}
