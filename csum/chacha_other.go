//go:build !amd64 || noasm

package csum

// chachaVec would be a vector implementation of ChaCha20; this build has
// none.
type chachaVec struct {
	name  string
	ok    bool
	chunk int
	fn    func(s *[16]uint32, data *byte, chunks int)
}

// chachaVecs is empty: no vector ChaCha20 on this build.
var chachaVecs []chachaVec

// chachaFast takes nothing on this build: the pure-Go code does it all.
func chachaFast(s *[16]uint32, data []byte) int { return 0 }

// xor is never called on this build.
func (v *chachaVec) xor(s *[16]uint32, data []byte) int { return 0 }
