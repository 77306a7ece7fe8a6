// Package ratelimit caps a rate of bytes per second with a token bucket
// shared by every reader of a check (`bpcheck check --max-read-rate`).
package ratelimit

import (
	"sync"
	"time"
)

// Limiter hands out bytes at Rate per second. Its bucket holds one
// second's worth, so a pause never buys a burst longer than a second; a
// read larger than that waits as long as the rate asks. A nil *Limiter does not limit. It is safe
// for concurrent use.
type Limiter struct {
	rate  float64 // bytes per second
	burst float64

	mu     sync.Mutex
	tokens float64
	last   time.Time
	// now and sleep are time.Now and a sleep that done cuts short;
	// tests replace them.
	now   func() time.Time
	sleep func(d time.Duration, done <-chan struct{})
	// done is closed by Lift.
	done chan struct{}
	lift sync.Once
}

// sleep sleeps for d, or until done is closed.
func sleep(d time.Duration, done <-chan struct{}) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-done:
	}
}

// Lift ends the limit: from now on Wait returns at once, and the readers
// waiting wake (a cancelled check does not sleep out its reads' debts).
func (l *Limiter) Lift() {
	if l != nil {
		l.lift.Do(func() { close(l.done) })
	}
}

// New returns a limiter of bytesPerSec (> 0), its bucket full.
func New(bytesPerSec int64) *Limiter {
	r := float64(bytesPerSec)
	l := &Limiter{rate: r, burst: r, now: time.Now, sleep: sleep, done: make(chan struct{})}
	l.tokens, l.last = l.burst, l.now()
	return l
}

// Rate returns the limit in bytes per second (0 for a nil limiter).
func (l *Limiter) Rate() int64 {
	if l == nil {
		return 0
	}
	return int64(l.rate)
}

// Wait blocks until n bytes may be read. A read larger than the bucket
// waits for the bucket to fill and leaves it in debt, so the average stays
// at the rate whatever the read sizes.
func (l *Limiter) Wait(n int) {
	if l == nil || n <= 0 {
		return
	}
	select {
	case <-l.done:
		return
	default:
	}
	l.mu.Lock()
	now := l.now()
	l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	l.last = now
	l.tokens -= float64(n)
	var d time.Duration
	if l.tokens < 0 {
		d = time.Duration(-l.tokens / l.rate * float64(time.Second))
	}
	l.mu.Unlock()
	// The debt is taken before sleeping: concurrent readers queue behind
	// each other's debts instead of all waking at once.
	if d > 0 {
		l.sleep(d, l.done)
	}
}
