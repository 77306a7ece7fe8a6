package aio

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// ioUringStatus reports whether io_uring can be used here, with the
// reason when not, once per test binary.
var ioUringStatus = sync.OnceValue(func() error {
	err := IOUringAvailable()
	if err == nil {
		return nil
	}
	disabled, rerr := os.ReadFile("/proc/sys/kernel/io_uring_disabled")
	if rerr == nil {
		return fmt.Errorf("%w (kernel.io_uring_disabled=%s)", err, strings.TrimSpace(string(disabled)))
	}
	return err
})

type backendCase struct {
	name string
	opts Options
}

// backendCases are the configurations every behavioural test runs on.
var backendCases = []backendCase{
	{"io_uring", Options{Backend: IOUring}},
	{"io_uring-readv", Options{Backend: IOUring, forceReadv: true}},
	{"io_uring-depth2", Options{Backend: IOUring, QueueDepth: 2}},
	{"pread-pool", Options{Backend: PreadPool}},
	{"pread-pool-1", Options{Backend: PreadPool, Workers: 1}},
	{"auto", Options{Backend: Auto}},
}

// newReader returns a Reader for opts, skipping the test when it asks
// for io_uring and io_uring is unavailable on this machine.
func newReader(tb testing.TB, opts Options) Reader {
	tb.Helper()
	if opts.Backend == IOUring {
		if err := ioUringStatus(); err != nil {
			tb.Skipf("io_uring is unavailable on this machine, skipping the io_uring backend: %v", err)
		}
	}
	r, err := New(opts)
	if err != nil {
		tb.Fatalf("New(%+v): %v", opts, err)
	}
	tb.Cleanup(func() { r.Close() })
	return r
}

// randomFile writes size random bytes to a new file in dir and returns it
// opened read-only with its content.
func randomFile(tb testing.TB, dir string, size int, seed uint64) (*os.File, []byte) {
	tb.Helper()
	data := make([]byte, size)
	rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	rng.Read(data)
	path := filepath.Join(dir, fmt.Sprintf("data-%d", seed))
	if err := os.WriteFile(path, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.Close() })
	return f, data
}

// waitAll waits for n results and returns them by tag.
func waitAll(tb testing.TB, r Reader, n int) map[uint64]Result {
	tb.Helper()
	got := make(map[uint64]Result, n)
	for len(got) < n {
		res, err := r.Wait(n - len(got))
		if err != nil {
			tb.Fatalf("Wait: %v", err)
		}
		if len(res) == 0 {
			tb.Fatalf("Wait returned no results with %d of %d outstanding", n-len(got), n)
		}
		for _, x := range res {
			if _, dup := got[x.Tag]; dup {
				tb.Fatalf("tag %d completed twice", x.Tag)
			}
			got[x.Tag] = x
		}
	}
	return got
}

// sameErr says whether two read errors are the same for callers: both
// nil, both io.EOF, or the same errno.
func sameErr(a, b error) bool {
	if a == nil || b == nil {
		return a == b
	}
	if errors.Is(a, io.EOF) || errors.Is(b, io.EOF) {
		return errors.Is(a, io.EOF) && errors.Is(b, io.EOF)
	}
	var ea, eb syscall.Errno
	return errors.As(a, &ea) && errors.As(b, &eb) && ea == eb
}

func TestIOUringAvailability(t *testing.T) {
	if err := ioUringStatus(); err != nil {
		t.Skipf("io_uring is unavailable on this machine (the pread pool is used instead): %v", err)
	}
	r, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	t.Logf("io_uring is available; Auto uses %s", r.Backend())
	if !strings.HasPrefix(r.Backend(), "io_uring") {
		t.Errorf("Auto chose %q although io_uring works", r.Backend())
	}
}

func TestBackendNames(t *testing.T) {
	for _, bc := range backendCases {
		t.Run(bc.name, func(t *testing.T) {
			r := newReader(t, bc.opts)
			b := r.Backend()
			t.Logf("%s", b)
			want := bc.opts.Backend.String()
			if bc.opts.Backend == Auto {
				want = "io_uring"
				if ioUringStatus() != nil {
					want = "pread-pool"
				}
			}
			if !strings.HasPrefix(b, want) {
				t.Errorf("Backend() = %q, want prefix %q", b, want)
			}
		})
	}
}

// TestMatchesReadAt reads thousands of random ranges, aligned node-sized
// ones and arbitrary ones, some crossing or past the end of the file, and
// compares each result with os.File.ReadAt.
func TestMatchesReadAt(t *testing.T) {
	const size = 8<<20 + 1234
	f, _ := randomFile(t, t.TempDir(), size, 1)
	for _, bc := range backendCases {
		t.Run(bc.name, func(t *testing.T) {
			r := newReader(t, bc.opts)
			rng := rand.New(rand.NewPCG(2, 3))
			total := 3000
			if raceEnabled {
				total = 1000
			}
			// Buffers are reused (cleared) to keep the test fast under
			// the race detector.
			var pool [100][]byte
			for i := range pool {
				pool[i] = make([]byte, 1<<20)
			}
			want := make([]byte, 1<<20)
			for done := 0; done < total; {
				batch := min(1+rng.IntN(100), total-done)
				reqs := make([]Request, batch)
				for i := range reqs {
					var off int64
					var n int
					switch rng.IntN(20) {
					case 0: // at or past the end
						off = size + int64(rng.IntN(3)-1)*int64(rng.IntN(10000))
						n = 1 + rng.IntN(1<<20)
					case 1, 2, 3, 4, 5: // arbitrary
						off = rng.Int64N(size)
						n = 1 + rng.IntN(300<<10)
					default: // a btree node: 64 KiB–1 MiB at a sector
						n = 64 << 10 << rng.IntN(5)
						off = rng.Int64N(size/512) * 512
					}
					buf := pool[i][:n]
					clear(buf)
					reqs[i] = Request{File: f, Off: off, Buf: buf, Tag: uint64(done + i)}
				}
				if err := r.Submit(reqs); err != nil {
					t.Fatal(err)
				}
				got := waitAll(t, r, batch)
				for _, q := range reqs {
					res := got[q.Tag]
					want := want[:len(q.Buf)]
					wn, werr := f.ReadAt(want, q.Off)
					if res.N != wn || !sameErr(res.Err, werr) {
						t.Fatalf("read of %d bytes at %d: got (%d, %v), ReadAt gives (%d, %v)", len(q.Buf), q.Off, res.N, res.Err, wn, werr)
					}
					if !bytes.Equal(q.Buf[:res.N], want[:wn]) {
						t.Fatalf("read of %d bytes at %d: bytes differ from ReadAt", len(q.Buf), q.Off)
					}
				}
				done += batch
			}
		})
	}
}

// TestOutOfRange checks reads that cross or lie past the end of the file:
// short reads with io.EOF, the same in every backend as in ReadAt.
func TestOutOfRange(t *testing.T) {
	const size = 1<<20 + 100
	f, data := randomFile(t, t.TempDir(), size, 4)
	cases := []struct {
		off   int64
		n     int
		wantN int
		eof   bool
	}{
		{0, size, size, false},                  // the whole file
		{size - 4096, 4096, 4096, false},        // ends exactly at the end
		{size - 100, 65536, 100, true},          // crosses the end
		{1 << 20, 1 << 20, 100, true},           // node-sized, crosses the end
		{size, 4096, 0, true},                   // starts at the end
		{size + 1, 1, 0, true},                  // starts past the end
		{1 << 40, 65536, 0, true},               // far past the end
		{0, size + 1, size, true},               // one byte too long
		{size + 5, 0, 0, false},                 // empty, past the end
		{12345, 0, 0, false},                    // empty
		{size - 1, 1, 1, false},                 // last byte
		{512, size - 512 + 1, size - 512, true}, // one byte past the end
	}
	for _, bc := range backendCases {
		t.Run(bc.name, func(t *testing.T) {
			r := newReader(t, bc.opts)
			reqs := make([]Request, len(cases))
			for i, c := range cases {
				reqs[i] = Request{File: f, Off: c.off, Buf: make([]byte, c.n), Tag: uint64(i)}
			}
			if err := r.Submit(reqs); err != nil {
				t.Fatal(err)
			}
			got := waitAll(t, r, len(reqs))
			for i, c := range cases {
				res := got[uint64(i)]
				wn, werr := f.ReadAt(make([]byte, c.n), c.off)
				if res.N != c.wantN || errors.Is(res.Err, io.EOF) != c.eof || (res.Err != nil && !c.eof) {
					t.Errorf("read of %d at %d: got (%d, %v), want (%d, eof=%v)", c.n, c.off, res.N, res.Err, c.wantN, c.eof)
				}
				if res.N != wn || !sameErr(res.Err, werr) {
					t.Errorf("read of %d at %d: got (%d, %v), ReadAt gives (%d, %v)", c.n, c.off, res.N, res.Err, wn, werr)
				}
				if res.N > 0 && !bytes.Equal(reqs[i].Buf[:res.N], data[c.off:c.off+int64(res.N)]) {
					t.Errorf("read of %d at %d: wrong bytes", c.n, c.off)
				}
			}
		})
	}
}

// TestErrors checks per-request errors (the same errno in every backend)
// and the requests Submit refuses.
func TestErrors(t *testing.T) {
	dir := t.TempDir()
	f, _ := randomFile(t, dir, 1<<16, 5)
	wo, err := os.OpenFile(f.Name(), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer wo.Close()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, bc := range backendCases {
		t.Run(bc.name, func(t *testing.T) {
			r := newReader(t, bc.opts)
			reqs := []Request{
				{File: wo, Off: 0, Buf: make([]byte, 4096), Tag: 1},
				{File: f, Off: 0, Buf: make([]byte, 4096), Tag: 2},
				{File: d, Off: 0, Buf: make([]byte, 4096), Tag: 3},
			}
			if err := r.Submit(reqs); err != nil {
				t.Fatal(err)
			}
			got := waitAll(t, r, len(reqs))
			want := map[uint64]syscall.Errno{1: syscall.EBADF, 3: syscall.EISDIR}
			for tag, errno := range want {
				res := got[tag]
				var pe *os.PathError
				if !errors.Is(res.Err, errno) || !errors.As(res.Err, &pe) || pe.Op != "read" || res.N != 0 {
					t.Errorf("tag %d: got (%d, %#v), want (0, *PathError read %v)", tag, res.N, res.Err, errno)
				}
			}
			if res := got[2]; res.N != 4096 || res.Err != nil {
				t.Errorf("good read next to failing ones: (%d, %v)", res.N, res.Err)
			}

			bad := [][]Request{
				{{File: f, Buf: make([]byte, 1)}, {File: nil, Buf: make([]byte, 1)}},
				{{File: f, Off: -1, Buf: make([]byte, 1)}},
			}
			for _, b := range bad {
				if err := r.Submit(b); err == nil {
					t.Errorf("Submit accepted an invalid batch %+v", b)
				}
			}
			// An invalid batch queues nothing.
			if res, err := r.Wait(1); err != nil || len(res) != 0 {
				t.Errorf("Wait after refused Submit: %v, %v", res, err)
			}
		})
	}
}

// TestWaitSemantics checks that Wait never waits for requests that were
// not submitted.
func TestWaitSemantics(t *testing.T) {
	f, _ := randomFile(t, t.TempDir(), 1<<20, 6)
	for _, bc := range backendCases {
		t.Run(bc.name, func(t *testing.T) {
			r := newReader(t, bc.opts)
			if res, err := r.Wait(0); err != nil || len(res) != 0 {
				t.Fatalf("Wait(0) on an idle reader: %v, %v", res, err)
			}
			if res, err := r.Wait(5); err != nil || len(res) != 0 {
				t.Fatalf("Wait(5) on an idle reader: %v, %v", res, err)
			}
			if err := r.Submit(nil); err != nil {
				t.Fatal(err)
			}
			reqs := []Request{
				{File: f, Off: 0, Buf: make([]byte, 1<<16), Tag: 1},
				{File: f, Off: 1 << 16, Buf: make([]byte, 1<<16), Tag: 2},
				{File: f, Off: 1 << 17, Buf: nil, Tag: 3},
			}
			if err := r.Submit(reqs); err != nil {
				t.Fatal(err)
			}
			res, err := r.Wait(10)
			if err != nil || len(res) != 3 {
				t.Fatalf("Wait(10) with 3 submitted: %d results, %v", len(res), err)
			}
			if res, err := r.Wait(1); err != nil || len(res) != 0 {
				t.Fatalf("Wait(1) after all returned: %v, %v", res, err)
			}
		})
	}
}

// TestConcurrentBatches submits many batches from many goroutines to one
// shared Reader, collected by several waiters, and to one Reader per
// goroutine.
func TestConcurrentBatches(t *testing.T) {
	const size = 4 << 20
	f, data := randomFile(t, t.TempDir(), size, 7)
	check := func(t *testing.T, q Request, res Result) {
		t.Helper()
		end := min(q.Off+int64(len(q.Buf)), size)
		wantN := int(max(end-q.Off, 0))
		if res.N != wantN || (wantN < len(q.Buf)) != errors.Is(res.Err, io.EOF) || (wantN == len(q.Buf) && res.Err != nil) {
			t.Errorf("tag %d: (%d, %v), want %d bytes", res.Tag, res.N, res.Err, wantN)
			return
		}
		if res.N > 0 && !bytes.Equal(q.Buf[:res.N], data[q.Off:q.Off+int64(res.N)]) {
			t.Errorf("tag %d: wrong bytes", res.Tag)
		}
	}
	mkReq := func(rng *rand.Rand, tag uint64) Request {
		n := 4096 << rng.IntN(8)
		return Request{File: f, Off: rng.Int64N(size/512+64) * 512, Buf: make([]byte, n), Tag: tag}
	}
	const goroutines, perBatch = 8, 24
	batches := 40
	if raceEnabled {
		batches = 12
	}
	for _, bc := range backendCases {
		t.Run(bc.name+"/shared", func(t *testing.T) {
			r := newReader(t, bc.opts)
			var reqs sync.Map
			var submitted, collected atomic.Int64
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Go(func() {
					rng := rand.New(rand.NewPCG(uint64(g), 9))
					for b := range batches {
						batch := make([]Request, 1+rng.IntN(perBatch))
						for i := range batch {
							batch[i] = mkReq(rng, uint64(g)<<32|uint64(b)<<16|uint64(i))
							reqs.Store(batch[i].Tag, batch[i])
						}
						submitted.Add(int64(len(batch)))
						if err := r.Submit(batch); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			var submitDone atomic.Bool
			var wwg sync.WaitGroup
			for range 3 {
				wwg.Go(func() {
					for {
						res, err := r.Wait(1 + rand.IntN(8))
						if err != nil {
							t.Error(err)
							return
						}
						for _, x := range res {
							q, ok := reqs.Load(x.Tag)
							if !ok {
								t.Errorf("unknown tag %d", x.Tag)
								continue
							}
							check(t, q.(Request), x)
						}
						c := collected.Add(int64(len(res)))
						if submitDone.Load() && c == submitted.Load() {
							return
						}
						if len(res) == 0 {
							runtime.Gosched()
						}
					}
				})
			}
			wg.Wait()
			submitDone.Store(true)
			wwg.Wait()
			if c, s := collected.Load(), submitted.Load(); c != s {
				t.Errorf("collected %d results of %d requests", c, s)
			}
		})
		t.Run(bc.name+"/own", func(t *testing.T) {
			var wg sync.WaitGroup
			for g := range goroutines {
				r := newReader(t, bc.opts)
				wg.Go(func() {
					rng := rand.New(rand.NewPCG(uint64(g), 10))
					for b := range batches {
						batch := make([]Request, 1+rng.IntN(perBatch))
						for i := range batch {
							batch[i] = mkReq(rng, uint64(b)<<16|uint64(i))
						}
						if err := r.Submit(batch); err != nil {
							t.Error(err)
							return
						}
						got := make(map[uint64]Result)
						for len(got) < len(batch) {
							res, err := r.Wait(len(batch) - len(got))
							if err != nil || len(res) == 0 {
								t.Errorf("Wait: %d results, %v", len(res), err)
								return
							}
							for _, x := range res {
								got[x.Tag] = x
							}
						}
						for _, q := range batch {
							check(t, q, got[q.Tag])
						}
					}
				})
			}
			wg.Wait()
		})
	}
}

// TestCloseInFlight closes readers with reads queued, in flight and being
// waited for: no crash, Wait and Submit say ErrClosed, and no goroutine is
// left behind.
func TestCloseInFlight(t *testing.T) {
	const size = 8 << 20
	f, _ := randomFile(t, t.TempDir(), size, 8)
	for _, bc := range backendCases {
		t.Run(bc.name, func(t *testing.T) {
			if bc.opts.Backend == IOUring && ioUringStatus() != nil {
				t.Skipf("io_uring is unavailable on this machine, skipping the io_uring backend: %v", ioUringStatus())
			}
			before := runtime.NumGoroutine()
			rng := rand.New(rand.NewPCG(11, 12))
			for iter := range 30 {
				r, err := New(bc.opts)
				if err != nil {
					t.Fatal(err)
				}
				reqs := make([]Request, 300)
				for i := range reqs {
					reqs[i] = Request{File: f, Off: rng.Int64N((size-256<<10)/512) * 512, Buf: make([]byte, 256<<10), Tag: uint64(i)}
				}
				if err := r.Submit(reqs); err != nil {
					t.Fatal(err)
				}
				var wg sync.WaitGroup
				for range 2 {
					wg.Go(func() {
						for {
							res, err := r.Wait(len(reqs))
							if errors.Is(err, ErrClosed) {
								return
							}
							if err != nil {
								t.Errorf("Wait: %v", err)
								return
							}
							for _, x := range res {
								if x.Err != nil || x.N != 256<<10 {
									t.Errorf("result before Close: (%d, %v)", x.N, x.Err)
								}
							}
							if len(res) == 0 {
								// Everything was returned: nothing
								// left to wait for.
								return
							}
						}
					})
				}
				time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
				if iter%2 == 0 {
					// Close from another goroutine while this one
					// submits.
					var cwg sync.WaitGroup
					cwg.Go(func() {
						if err := r.Close(); err != nil {
							t.Errorf("Close: %v", err)
						}
					})
					_ = r.Submit(reqs[:10]) // may win or lose the race
					cwg.Wait()
				} else if err := r.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
				wg.Wait()
				if err := r.Submit(reqs[:1]); !errors.Is(err, ErrClosed) {
					t.Errorf("Submit after Close: %v", err)
				}
				if _, err := r.Wait(1); !errors.Is(err, ErrClosed) {
					t.Errorf("Wait after Close: %v", err)
				}
				if err := r.Close(); err != nil {
					t.Errorf("second Close: %v", err)
				}
			}
			deadline := time.Now().Add(5 * time.Second)
			for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if n := runtime.NumGoroutine(); n > before {
				buf := make([]byte, 1<<20)
				t.Fatalf("%d goroutines before, %d after closing:\n%s", before, n, buf[:runtime.Stack(buf, true)])
			}
		})
	}
}

// TestODirect reads a file opened with O_DIRECT into AlignedBuf buffers.
func TestODirect(t *testing.T) {
	for _, align := range []int{1, 512, 4096, 1 << 16} {
		for _, n := range []int{0, 1, 4096, 100000} {
			b := AlignedBuf(n, align)
			if len(b) != n || cap(b) != n || !IsAligned(b, align) {
				t.Fatalf("AlignedBuf(%d, %d): len %d cap %d aligned %v", n, align, len(b), cap(b), IsAligned(b, align))
			}
		}
	}
	const size = 4 << 20
	plain, data := randomFile(t, t.TempDir(), size, 13)
	f, err := os.OpenFile(plain.Name(), os.O_RDONLY|oDirect, 0)
	if err != nil {
		t.Skipf("O_DIRECT is not supported on the temporary directory's file system: %v", err)
	}
	defer f.Close()
	probe := AlignedBuf(4096, 4096)
	if _, err := f.ReadAt(probe, 0); err != nil {
		t.Skipf("O_DIRECT reads fail on the temporary directory's file system: %v", err)
	}
	for _, bc := range backendCases {
		t.Run(bc.name, func(t *testing.T) {
			r := newReader(t, bc.opts)
			rng := rand.New(rand.NewPCG(14, 15))
			var reqs []Request
			for i := range 64 {
				n := 64 << 10 << rng.IntN(5)
				reqs = append(reqs, Request{File: f, Off: rng.Int64N(size/4096) * 4096, Buf: AlignedBuf(n, 4096), Tag: uint64(i)})
			}
			if err := r.Submit(reqs); err != nil {
				t.Fatal(err)
			}
			got := waitAll(t, r, len(reqs))
			for _, q := range reqs {
				res := got[q.Tag]
				wantN := int(min(int64(len(q.Buf)), size-q.Off))
				if res.N != wantN || (res.Err != nil && !errors.Is(res.Err, io.EOF)) {
					t.Fatalf("O_DIRECT read of %d at %d: (%d, %v)", len(q.Buf), q.Off, res.N, res.Err)
				}
				if !bytes.Equal(q.Buf[:res.N], data[q.Off:q.Off+int64(res.N)]) {
					t.Fatalf("O_DIRECT read of %d at %d: wrong bytes", len(q.Buf), q.Off)
				}
			}
			// A misaligned buffer fails the way pread fails.
			mis := AlignedBuf(8192+1, 4096)[1:]
			_, perr := f.ReadAt(mis, 0)
			if err := r.Submit([]Request{{File: f, Off: 0, Buf: mis, Tag: 99}}); err != nil {
				t.Fatal(err)
			}
			res := waitAll(t, r, 1)[99]
			if !sameErr(res.Err, perr) {
				t.Errorf("misaligned O_DIRECT read: got %v, pread gives %v", res.Err, perr)
			}
		})
	}
}

// BenchmarkRead reads random 64 KiB–1 MiB blocks at sector offsets of a
// 256 MiB file, warm in the page cache, keeping 32 reads in flight (the
// pool backends have Workers in flight). sync-readat is the baseline: one
// os.File.ReadAt after the other, as btreeio.FS.ReadNode does today.
func BenchmarkRead(b *testing.B) {
	const size = 256 << 20
	f, _ := randomFile(b, b.TempDir(), size, 16)
	f.Sync() // no writeback during the measurement
	warm := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(warm)) {
		f.ReadAt(warm, off)
	}
	benchRead(b, f, size, func(n int) []byte { return make([]byte, n) })
}

// BenchmarkReadDirect is BenchmarkRead on the file opened with O_DIRECT,
// so every read goes to the disk: what prefetching cold btree nodes is
// about.
func BenchmarkReadDirect(b *testing.B) {
	const size = 256 << 20
	plain, _ := randomFile(b, b.TempDir(), size, 16)
	plain.Sync()
	f, err := os.OpenFile(plain.Name(), os.O_RDONLY|oDirect, 0)
	if err != nil {
		b.Skipf("O_DIRECT is not supported here: %v", err)
	}
	defer f.Close()
	benchRead(b, f, size, func(n int) []byte { return AlignedBuf(n, 4096) })
}

func benchRead(b *testing.B, f *os.File, size int64, alloc func(int) []byte) {
	const inflight = 32
	backends := []struct {
		name string
		opts *Options
	}{
		{"io_uring", &Options{Backend: IOUring, QueueDepth: inflight}},
		{"pread-pool-2", &Options{Backend: PreadPool, Workers: 2}},
		{"pread-pool-32", &Options{Backend: PreadPool, Workers: inflight}},
		{"sync-readat", nil},
	}
	for _, be := range backends {
		for _, bs := range []int{64 << 10, 256 << 10, 1 << 20} {
			b.Run(fmt.Sprintf("backend=%s/size=%dKiB", be.name, bs>>10), func(b *testing.B) {
				b.SetBytes(int64(bs))
				rng := rand.New(rand.NewPCG(17, 18))
				randOff := func() int64 { return rng.Int64N((size-int64(bs))/4096) * 4096 }
				if be.opts == nil {
					buf := alloc(bs)
					for b.Loop() {
						if _, err := f.ReadAt(buf, randOff()); err != nil {
							b.Fatal(err)
						}
					}
					return
				}
				r := newReader(b, *be.opts)
				bufs := make([][]byte, inflight)
				for i := range bufs {
					bufs[i] = alloc(bs)
				}
				b.ResetTimer()
				issued, completed := 0, 0
				reqs := make([]Request, 0, inflight)
				for i := 0; i < inflight && issued < b.N; i++ {
					reqs = append(reqs, Request{File: f, Off: randOff(), Buf: bufs[i], Tag: uint64(i)})
					issued++
				}
				if err := r.Submit(reqs); err != nil {
					b.Fatal(err)
				}
				for completed < b.N {
					res, err := r.Wait(1)
					if err != nil {
						b.Fatal(err)
					}
					reqs = reqs[:0]
					for _, x := range res {
						if x.Err != nil || x.N != bs {
							b.Fatalf("read: (%d, %v)", x.N, x.Err)
						}
						completed++
						if issued < b.N {
							reqs = append(reqs, Request{File: f, Off: randOff(), Buf: bufs[x.Tag], Tag: x.Tag})
							issued++
						}
					}
					if len(reqs) > 0 {
						if err := r.Submit(reqs); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.StopTimer()
			})
		}
	}
}

// TestPrefetcher walks a list of node-sized blocks in order with a
// sliding read-ahead window, as a btree walk over the leaves would, and
// stops one walk early.
func TestPrefetcher(t *testing.T) {
	const size = 16 << 20
	const node = 256 << 10
	f, data := randomFile(t, t.TempDir(), size, 19)
	rng := rand.New(rand.NewPCG(20, 21))
	offs := make([]int64, 200)
	for i := range offs {
		offs[i] = rng.Int64N(size/node) * node
	}
	offs = append(offs, size-node/2) // a short last block
	for _, bc := range backendCases {
		t.Run(bc.name, func(t *testing.T) {
			r := newReader(t, bc.opts)
			for _, window := range []int{1, 4, 32} {
				p := NewPrefetcher(r, window)
				free := [][]byte{}
				getBuf := func() []byte {
					if len(free) > 0 {
						b := free[len(free)-1]
						free = free[:len(free)-1]
						return b
					}
					return make([]byte, node)
				}
				next := 0 // next index to start
				for i, off := range offs {
					for next < len(offs) && p.Room() > 0 {
						if p.Started(f, offs[next]) {
							next++ // a block listed twice: read once
							continue
						}
						if err := p.Start(f, offs[next], getBuf()); err != nil {
							t.Fatal(err)
						}
						next++
					}
					buf, n, err, ok := p.Take(f, off)
					if !ok {
						// Already taken under an earlier index (a
						// duplicate offset): read it directly.
						buf = getBuf()
						n, err = f.ReadAt(buf, off)
					}
					wantN := int(min(node, size-off))
					if n != wantN || (wantN < node) != errors.Is(err, io.EOF) {
						t.Fatalf("block %d at %d: (%d, %v)", i, off, n, err)
					}
					if !bytes.Equal(buf[:n], data[off:off+int64(n)]) {
						t.Fatalf("block %d at %d: wrong bytes", i, off)
					}
					free = append(free, buf)
				}
				if p.Room() != window {
					t.Errorf("window %d: room %d after the walk", window, p.Room())
				}
				// A walk that stops early drains the window.
				for _, off := range offs[:window] {
					if err := p.Start(f, off, getBuf()); err != nil {
						t.Fatal(err)
					}
				}
				if p.Room() == 0 {
					if err := p.Start(f, size-1, getBuf()); !errors.Is(err, ErrWindowFull) {
						t.Errorf("Start past the window: %v", err)
					}
				}
				bufs, err := p.Drain()
				if err != nil || len(bufs) == 0 || p.Room() != window {
					t.Errorf("Drain: %d buffers, %v, room %d", len(bufs), err, p.Room())
				}
				if res, err := r.Wait(1); err != nil || len(res) != 0 {
					t.Errorf("Reader not idle after Drain: %v, %v", res, err)
				}
			}
		})
	}
}
