package pipeline

import (
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"bpcheck/bp"
	"bpcheck/btreeio"
)

// Stages of a pass, as Progress reports them.
const (
	StagePlan    = "plan"
	StageLoad    = "load"
	StageProduce = "check"
	StageFinish  = "finish"
	StageDone    = "done"
)

// Progress is updated by a running check and may be read concurrently: it
// counts nodes read against the total the check will read, known before
// the first pass from the interior nodes of every btree.
type Progress struct {
	nodesDone  atomic.Int64
	nodesTotal atomic.Int64
	pass       atomic.Int32
	passes     atomic.Int32
	stage      atomic.Value // string
	// start is the check's start (time.Time), set by Run while readers
	// may already poll.
	start atomic.Value
}

// Snapshot is a consistent-enough reading of a Progress.
type Snapshot struct {
	Stage        string
	Pass, Passes int
	Done, Total  int64
	Elapsed      time.Duration
}

// Snapshot reads the progress. Done never exceeds Total.
func (p *Progress) Snapshot() Snapshot {
	s := Snapshot{Done: p.nodesDone.Load(), Total: p.nodesTotal.Load(), Pass: int(p.pass.Load()), Passes: int(p.passes.Load())}
	if v, ok := p.stage.Load().(string); ok {
		s.Stage = v
	}
	if t, ok := p.start.Load().(time.Time); ok {
		s.Elapsed = time.Since(t)
	}
	if s.Done > s.Total {
		s.Done = s.Total
	}
	return s
}

// Fraction is the part done, 0..1.
func (s Snapshot) Fraction() float64 {
	if s.Total <= 0 {
		if s.Stage == StageDone {
			return 1
		}
		return 0
	}
	return float64(s.Done) / float64(s.Total)
}

// String renders one progress line: stage, pass, percentage, nodes, rate
// and ETA.
func (s Snapshot) String() string {
	pct := s.Fraction() * 100
	line := fmt.Sprintf("bpcheck: %-6s pass %d/%d %5.1f%% %d/%d nodes", s.Stage, s.Pass, s.Passes, pct, s.Done, s.Total)
	if sec := s.Elapsed.Seconds(); sec > 0 && s.Done > 0 {
		rate := float64(s.Done) / sec
		line += fmt.Sprintf(" %.0f nodes/s", rate)
		if s.Done < s.Total {
			eta := time.Duration(float64(s.Total-s.Done) / rate * float64(time.Second))
			line += " ETA " + eta.Round(time.Second).String()
		}
	}
	return line
}

func (p *Progress) setStage(st string) {
	if p != nil {
		p.stage.Store(st)
	}
}

func (p *Progress) addNode() {
	if p != nil {
		p.nodesDone.Add(1)
	}
}

// nodeCounter counts the nodes at each level of a btree from its interior
// nodes: the leaves are counted from the level-1 keys, not read.
type nodeCounter struct {
	interior, leaves int64
}

func (n *nodeCounter) Node(node *btreeio.Node) error {
	if node.Level >= 1 {
		n.interior++
	}
	if node.Level == 1 {
		n.leaves += int64(len(node.Keys))
	}
	return nil
}

func (n *nodeCounter) NodeError(bp.BtreeID, uint8, *bp.Key, error) error { return nil }

// countNodes returns, per btree, the interior and leaf node counts.
func (c *checker) countNodes() map[bp.BtreeID]nodeCounter {
	out := map[bp.BtreeID]nodeCounter{}
	for _, r := range c.fs.Roots {
		var n nodeCounter
		if r.Level == 0 {
			n.leaves = 1
		} else {
			c.fs.Walk(r.Btree, 1, &n)
		}
		out[r.Btree] = n
	}
	return out
}

// planProgress sets the total number of node reads of the whole check:
// per pass the pointer btrees' nodes (all of the data btrees, the interior
// nodes of the others) plus the backpointer and alloc leaves of the pass
// and the leaves of the allocator's derived btrees.
func (c *checker) planProgress(p *Progress, passes int) {
	if p == nil {
		return
	}
	counts := c.countNodes()
	var perPass, once int64
	for id, n := range counts {
		perPass += n.interior
		if id.HasDataPtrs(c.fs.SB.Version) {
			perPass += n.leaves
		}
		if id == bp.BtreeBackpointers || id == bp.BtreeAlloc {
			once += n.leaves // the loaders count leaves only
		}
		if slices.Contains(derivedBtrees, id) {
			perPass += n.leaves // read whole by every pass
		}
	}
	p.nodesTotal.Store(perPass*int64(passes) + once)
	p.passes.Store(int32(passes))
}
