package gen

import (
	"fmt"
	"sort"
	"strings"
)

// injector schedules the faults that concern extents: each is aimed at an
// extent chosen at random; when that extent does not suit the fault (a
// wrong dirty count needs a bucket not already made wrong, a duplicate
// extent needs the last extent of a file), the fault moves on to the next
// extent that does. An extent takes at most one fault.
type injector struct {
	targets []target
	ti      int
	queue   []string
	r       *rng
}

type target struct {
	idx  int64
	kind string
}

// extentKinds are the faults placed during the extent stream.
var extentKinds = []string{KindMissingBP, KindDanglingBP, KindWrongBP, KindWrongDirty, KindDupBadCsum}

func newInjector(p *Params) (*injector, error) {
	in := &injector{r: newRNG(p.Seed, 2)}
	var kinds []string
	for _, k := range extentKinds {
		for i := 0; i < p.Inject[k]; i++ {
			kinds = append(kinds, k)
		}
	}
	if int64(len(kinds)) > p.Extents {
		return nil, fmt.Errorf("%d extent faults asked for, but only %d extents", len(kinds), p.Extents)
	}
	// Floyd's sampling of len(kinds) distinct extent indices.
	n, k := uint64(p.Extents), uint64(len(kinds))
	chosen := make(map[int64]bool, k)
	for j := n - k; j < n; j++ {
		t := int64(in.r.intn(j + 1))
		if chosen[t] {
			t = int64(j)
		}
		chosen[t] = true
	}
	idx := make([]int64, 0, k)
	for t := range chosen {
		idx = append(idx, t)
	}
	sort.Slice(idx, func(a, b int) bool { return idx[a] < idx[b] })
	for i := len(kinds) - 1; i > 0; i-- {
		j := in.r.intn(uint64(i + 1))
		kinds[i], kinds[j] = kinds[j], kinds[i]
	}
	for i, t := range idx {
		in.targets = append(in.targets, target{idx: t, kind: kinds[i]})
	}
	return in, nil
}

// at returns the fault to apply to extent i (x), if any, and the replica
// it concerns.
func (in *injector) at(i int64, x *extent, g *generator) (string, int) {
	for in.ti < len(in.targets) && in.targets[in.ti].idx == i {
		in.queue = append(in.queue, in.targets[in.ti].kind)
		in.ti++
	}
	for qi, k := range in.queue {
		switch k {
		case KindWrongDirty:
			if g.wrongDirt[x.dev[0]] {
				continue
			}
		case KindDupBadCsum:
			if !x.last {
				continue
			}
		}
		in.queue = append(in.queue[:qi], in.queue[qi+1:]...)
		g.injected[k]++
		return k, int(in.r.intn(uint64(x.n)))
	}
	return "", -1
}

// leftover reports faults that found no suitable extent.
func (in *injector) leftover() error {
	if len(in.queue) == 0 {
		return nil
	}
	return fmt.Errorf("could not place faults %s: no suitable extent left (use more extents)", strings.Join(in.queue, ", "))
}
