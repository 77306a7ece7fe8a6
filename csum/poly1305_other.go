//go:build !amd64 || noasm

package csum

// polyVecOK is false: this build has no vector Poly1305.
const polyVecOK = false

// polyVecMin is unused on this build.
const polyVecMin = 1536

// polyVecBlocks is polyVecBlocksGo on this build (for the tests).
func polyVecBlocks(lanes *[3][polyLanes]uint64, p *[5]uint64, msg []byte, chunks int) {
	polyVecBlocksGo(lanes, p, msg, chunks)
}
