package pipeline

import (
	"context"
	"sync"
	"sync/atomic"

	"bpcheck/bp"
	"bpcheck/btreeio"
)

// taskQueue hands the producers their tasks. Producers also add tasks
// while they work: the leaves of a wide level-1 node that a walk meets
// are shared out as groups (producer.ShareLeaves), so that no producer
// is left alone with the end of one big subtree while the others idle.
// A producer waits for work while the queue is empty but another one is
// still running a task (which may add more); the queue is drained when
// it is empty and no task runs.
type taskQueue struct {
	mu      sync.Mutex
	cond    sync.Cond
	tasks   []task
	running int
	stopped bool
}

func newTaskQueue(ctx context.Context, tasks []task) (*taskQueue, func() bool) {
	q := &taskQueue{tasks: tasks}
	q.cond.L = &q.mu
	stop := context.AfterFunc(ctx, func() {
		q.mu.Lock()
		q.stopped = true
		q.cond.Broadcast()
		q.mu.Unlock()
	})
	return q, stop
}

// next returns the next task, waiting while other producers may still add
// some; false when there is none left or the context ended. Every task
// returned must be followed by done.
func (q *taskQueue) next() (task, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.tasks) == 0 && q.running > 0 && !q.stopped {
		q.cond.Wait()
	}
	if len(q.tasks) == 0 || q.stopped {
		return task{}, false
	}
	t := q.tasks[0]
	q.tasks[0] = task{}
	q.tasks = q.tasks[1:]
	q.running++
	return t, true
}

// done ends a task that next returned.
func (q *taskQueue) done() {
	q.mu.Lock()
	q.running--
	if q.running == 0 && len(q.tasks) == 0 {
		q.cond.Broadcast()
	}
	q.mu.Unlock()
}

// add queues tasks behind those already queued.
func (q *taskQueue) add(ts ...task) {
	if len(ts) == 0 {
		return
	}
	q.mu.Lock()
	q.tasks = append(q.tasks, ts...)
	q.cond.Broadcast()
	q.mu.Unlock()
}

// minLeafGroup is the fewest leaves a shared-out group holds: a group
// starts its read-ahead from nothing, which costs about one leaf read.
const minLeafGroup = 8

// leafGroups cuts n consecutive leaves into groups for workers producers,
// largest first: each group takes 1/(2·workers) of the leaves not yet
// given out (guided self-scheduling), so the first groups are long walks
// that read far ahead and the last ones short, and whichever producer is
// last to finish is not left alone with a long walk. It returns the
// groups' ends.
func leafGroups(n, workers int) []int {
	var ends []int
	for at := 0; at < n; {
		size := max(minLeafGroup, (n-at+2*workers-1)/(2*workers))
		at = min(n, at+size)
		ends = append(ends, at)
	}
	return ends
}

// leafTasks cuts the leaf pointers kids of btree id into group tasks
// (leafGroups).
func leafTasks(id bp.BtreeID, kids []btreeio.NodeKey, workers int) []task {
	var tasks []task
	a := 0
	for _, b := range leafGroups(len(kids), workers) {
		tasks = append(tasks, task{btree: id, level: 0, key: kids[a].Key, leaves: kids[a:b]})
		a = b
	}
	return tasks
}

// shareLeaves lets walks share out leaves (tests turn it off to
// compare); sharedGroups counts the groups they queued.
var (
	shareLeaves  = true
	sharedGroups atomic.Int64
)

// ShareLeaves keeps the first group of a level-1 node's leaves for this
// walk and queues the others as tasks of their own (btreeio.LeafSharer).
func (p *producer) ShareLeaves(id bp.BtreeID, kids []btreeio.NodeKey) []btreeio.NodeKey {
	if p.q == nil || !shareLeaves {
		return kids
	}
	tasks := leafTasks(id, kids, p.e.c.opt.Workers)
	p.q.add(tasks[1:]...)
	sharedGroups.Add(int64(len(tasks) - 1))
	return tasks[0].leaves
}
