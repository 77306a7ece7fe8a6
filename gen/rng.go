package gen

// rng is splitmix64: small, fast and fully determined by its seed, so that
// the same parameters always give the same filesystem.
type rng struct{ s uint64 }

func newRNG(seed uint64, stream uint64) *rng {
	return &rng{s: mix64(seed ^ mix64(stream+0x632be59bd9b4e019))}
}

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	return mix64(r.s)
}

// intn returns a value in [0, n) (n > 0).
func (r *rng) intn(n uint64) uint64 {
	return r.next() % n
}

func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// uuid returns 16 random bytes shaped as a version 4 UUID.
func (r *rng) uuid() [16]byte {
	var u [16]byte
	a, b := r.next(), r.next()
	for i := 0; i < 8; i++ {
		u[i], u[8+i] = byte(a>>(8*i)), byte(b>>(8*i))
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u
}
