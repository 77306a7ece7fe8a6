//go:build !amd64 || noasm

package csum

// polyVecs is empty: no vector Poly1305 on this build.
var polyVecs []polyVec

// polyIFMAAsm is never called on this build (no polyVec uses it): the Go
// twin stands in for it.
func polyIFMAAsm(lanes *[3][8]uint64, p *[5]uint64, msg []byte, chunks int) {
	polyIFMAGo(lanes, p, msg, chunks)
}

// polyAVX2Asm is never called on this build (no polyVec uses it): the Go
// twin stands in for it.
func polyAVX2Asm(lanes *[5][4]uint64, p *[9][4]uint64, msg []byte, chunks int) {
	polyAVX2Go(lanes, p, msg, chunks)
}
