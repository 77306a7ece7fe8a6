package ratelimit

import (
	"sync"
	"testing"
	"time"
)

// fakeClock advances only when the limiter sleeps.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) sleep(d time.Duration, _ <-chan struct{}) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestAverageRate(t *testing.T) {
	for _, size := range []int{4096, 65536, 3 << 20, 25 << 20} {
		c := &fakeClock{t: time.Unix(0, 0)}
		l := New(10 << 20) // 10 MiB/s, bucket 10 MiB
		l.now, l.sleep = c.now, c.sleep
		l.tokens, l.last = l.burst, c.now()
		var total int64
		for total < 200<<20 {
			l.Wait(size)
			total += int64(size)
		}
		// 200 MiB at 10 MiB/s with a full 10 MiB bucket at the start:
		// 19 s of waiting, give or take one read.
		got := c.now().Sub(time.Unix(0, 0)).Seconds()
		want := float64(total-l.Rate()) / float64(l.Rate())
		if got < want-float64(size)/float64(l.Rate())-1e-6 || got > want+1e-6 {
			t.Errorf("reads of %d bytes: %d bytes took %.3f s, want %.3f s", size, total, got, want)
		}
	}
}

func TestNilLimiterDoesNotLimit(t *testing.T) {
	var l *Limiter
	l.Wait(1 << 30)
	if l.Rate() != 0 {
		t.Fatal("nil limiter has a rate")
	}
}

// TestLift: a reader sleeping out a long debt wakes when the limit is
// lifted (a --timeout or Ctrl-C), and later reads do not wait.
func TestLift(t *testing.T) {
	l := New(1000) // 1000 bytes/s
	l.Wait(1000)   // the bucket emptied
	woke := make(chan struct{})
	go func() {
		l.Wait(1 << 20) // ~17 minutes of debt
		close(woke)
	}()
	time.Sleep(20 * time.Millisecond)
	l.Lift()
	select {
	case <-woke:
	case <-time.After(5 * time.Second):
		t.Fatal("a waiting reader did not wake when the limit was lifted")
	}
	start := time.Now()
	l.Wait(1 << 20)
	if d := time.Since(start); d > time.Second {
		t.Errorf("a read after Lift waited %v", d)
	}
	l.Lift() // twice is fine
	var nilL *Limiter
	nilL.Lift()
}
