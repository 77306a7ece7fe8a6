package pipeline

import (
	"math/rand/v2"
	"sort"
	"testing"

	"bpcheck/shard"
)

// TestShardOfFindsTheRange compares the emitter's shard lookup (last-shard
// cache, branch-free search) with a plain search, for every shard count up
// to 40 and keys below, inside, on the bounds of and above the ranges, in
// random and in sequential order.
func TestShardOfFindsTheRange(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := 1; n <= 40; n++ {
		his := make([]shard.BucketKey, n)
		next := shard.BucketKey(10)
		for i := range his {
			next += shard.BucketKey(1 + rng.IntN(5))
			his[i] = next
		}
		e := &emitter{his: his}
		want := func(k shard.BucketKey) int {
			return sort.Search(n, func(i int) bool { return his[i] > k })
		}
		for k := shard.BucketKey(0); k <= next+3; k++ {
			if got, w := e.shardOf(k), want(k); got != w {
				t.Fatalf("%d shards, key %d in order: shard %d, want %d", n, k, got, w)
			}
		}
		for j := 0; j < 500; j++ {
			k := shard.BucketKey(rng.IntN(int(next) + 4))
			if got, w := e.shardOf(k), want(k); got != w {
				t.Fatalf("%d shards, key %d at random: shard %d, want %d", n, k, got, w)
			}
		}
	}
}
