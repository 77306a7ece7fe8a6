package aio

import (
	"fmt"
	"sync"
)

// pool is the pread backend: Workers goroutines take requests from a FIFO
// queue and read them with os.File.ReadAt, which already has the result
// semantics of the package (full reads, io.EOF at the end of the file,
// *os.PathError otherwise, EINTR retried).
type pool struct {
	desc string

	mu      sync.Mutex
	work    sync.Cond // signalled when queue grows or the pool closes
	done    sync.Cond // signalled when ready grows or the pool closes
	queue   fifo
	ready   []Result
	pending int // submitted and not yet returned by Wait
	closed  bool
	wg      sync.WaitGroup
}

func newPool(opts Options, why string) *pool {
	p := &pool{desc: fmt.Sprintf("pread-pool (%d workers)", opts.Workers)}
	if why != "" {
		p.desc = fmt.Sprintf("pread-pool (%d workers; %s)", opts.Workers, why)
	}
	p.work.L = &p.mu
	p.done.L = &p.mu
	p.wg.Add(opts.Workers)
	for range opts.Workers {
		go p.worker()
	}
	return p
}

func (p *pool) Backend() string { return p.desc }

func (p *pool) worker() {
	defer p.wg.Done()
	p.mu.Lock()
	for {
		for p.queue.len() == 0 && !p.closed {
			p.work.Wait()
		}
		if p.closed {
			p.mu.Unlock()
			return
		}
		req := p.queue.pop()
		p.mu.Unlock()
		n, err := req.File.ReadAt(req.Buf, req.Off)
		p.mu.Lock()
		if p.closed {
			continue
		}
		p.ready = append(p.ready, Result{Tag: req.Tag, N: n, Err: err})
		p.done.Broadcast()
	}
}

func (p *pool) Submit(reqs []Request) error {
	if err := validate(reqs); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	queued := 0
	for _, r := range reqs {
		if len(r.Buf) == 0 {
			p.ready = append(p.ready, Result{Tag: r.Tag})
			continue
		}
		p.queue.push(r)
		queued++
	}
	p.pending += len(reqs)
	if queued == 1 {
		p.work.Signal()
	} else if queued > 1 {
		p.work.Broadcast()
	}
	if len(p.ready) > 0 {
		p.done.Broadcast()
	}
	return nil
}

func (p *pool) Wait(min int) ([]Result, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var got []Result
	for {
		if p.closed {
			return nil, ErrClosed
		}
		got = takeReady(got, &p.ready, &p.pending)
		if len(got) >= min || p.pending == 0 {
			return got, nil
		}
		p.done.Wait()
	}
}

func (p *pool) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.queue = fifo{}
	p.ready = nil
	p.work.Broadcast()
	p.done.Broadcast()
	p.mu.Unlock()
	// Reads in flight finish: their buffers are the caller's again when
	// Close returns.
	p.wg.Wait()
	return nil
}

// takeReady moves the ready results to got and counts them as returned.
func takeReady(got []Result, ready *[]Result, pending *int) []Result {
	if len(*ready) == 0 {
		return got
	}
	*pending -= len(*ready)
	if got == nil {
		got = *ready
		*ready = nil
		return got
	}
	got = append(got, *ready...)
	clear(*ready)
	*ready = (*ready)[:0]
	return got
}

// fifo is a queue of requests.
type fifo struct {
	buf  []Request
	head int
}

func (q *fifo) len() int { return len(q.buf) - q.head }

func (q *fifo) push(r Request) {
	if q.head > 0 && q.head == len(q.buf) {
		q.buf, q.head = q.buf[:0], 0
	} else if q.head > 1024 && q.head*2 > len(q.buf) {
		n := copy(q.buf, q.buf[q.head:])
		clear(q.buf[n:])
		q.buf, q.head = q.buf[:n], 0
	}
	q.buf = append(q.buf, r)
}

func (q *fifo) pop() Request {
	r := q.buf[q.head]
	q.buf[q.head] = Request{} // drop the references to File and Buf
	q.head++
	return r
}
