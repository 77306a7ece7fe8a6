//go:build !amd64 || noasm

package csum

// useFast is false: there is no carry-less multiply implementation for this
// build, and crc64UpdateFast is the generic code.
const useFast = false

// crc64FastMin would be the shortest input for the fast path; there is none.
const crc64FastMin = 0

// crc64UpdateFast is crc64Generic on this build.
func crc64UpdateFast(crc uint64, p []byte) uint64 {
	return crc64Generic(crc, p)
}
