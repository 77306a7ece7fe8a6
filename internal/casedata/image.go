package casedata

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// CacheDirName is the directory below os.TempDir() that holds decompressed
// images.
const CacheDirName = "bpcheck-testdata-cache"

// maxWindow is the largest zstd window the images use (zstd --long=27).
const maxWindow = 1 << 27

// sparseBlock is the granularity at which all-zero data is skipped instead
// of written, leaving holes in the cached image.
const sparseBlock = 4096

// readChunk is how much decompressed data is handled at a time.
const readChunk = 1 << 20

// Counters observed by the package's own tests.
var (
	cacheHits      atomic.Int64
	decompressions atomic.Int64
)

// imageLocks serializes decompression of the same cache entry within this
// process; a file lock (where supported) does the same across processes.
var imageLocks sync.Map // cache path -> *sync.Mutex

// newDecoder returns a streaming zstd decoder for the test images: windows up
// to 128 MiB, low memory use, no background goroutines.
func newDecoder(r io.Reader) (*zstd.Decoder, error) {
	dec, err := zstd.NewReader(r,
		zstd.WithDecoderMaxWindow(maxWindow),
		zstd.WithDecoderLowmem(true),
		zstd.WithDecoderConcurrency(1),
	)
	if err != nil {
		return nil, fmt.Errorf("creating zstd decoder: %w", err)
	}
	return dec, nil
}

// Image returns the path of a decompressed copy of the .zst file zstPath.
//
// The copy is cached as
// os.TempDir()/bpcheck-testdata-cache/<sha256 of the .zst's content>/<name without .zst>
// and is read-only (mode 0444): tests must not modify it. Keyed by
// content, the copies of one file in several checkouts (every clone that
// CI or a worktree makes) share one entry; entries no test has used for
// staleAfter are removed when a new one is made. The copy is
// written sparsely (all-zero 4 KiB blocks become holes) to a temporary file
// that is renamed into place, so concurrent test processes never see a
// partial image. The test fails if the file cannot be decompressed.
func Image(tb testing.TB, zstPath string) string {
	tb.Helper()
	path, err := cachedImage(zstPath)
	if err != nil {
		tb.Fatalf("testdata: %v", err)
	}
	return path
}

// cachedImage implements Image without the testing dependency.
func cachedImage(zstPath string) (string, error) {
	abs, err := filepath.Abs(zstPath)
	if err != nil {
		return "", fmt.Errorf("image %s: resolving path: %w", zstPath, err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return "", fmt.Errorf("image %s: %w", zstPath, err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("image %s: not a regular file", abs)
	}

	sum, err := contentSum(abs, st)
	if err != nil {
		return "", fmt.Errorf("image %s: %w", abs, err)
	}
	dir := filepath.Join(os.TempDir(), CacheDirName, hex.EncodeToString(sum[:]))
	final := filepath.Join(dir, strings.TrimSuffix(filepath.Base(abs), ".zst"))

	if ok, err := isCached(final); err != nil || ok {
		if ok {
			cacheHits.Add(1)
			touch(dir)
		}
		return final, err
	}

	mu, _ := imageLocks.LoadOrStore(final, new(sync.Mutex))
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()

	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("image %s: creating cache directory: %w", abs, err)
	}
	unlock, locked, err := lockPath(final + ".lock")
	if err != nil {
		return "", fmt.Errorf("image %s: locking cache entry: %w", abs, err)
	}
	defer unlock()

	// Another goroutine or process may have finished while we waited.
	if ok, err := isCached(final); err != nil || ok {
		if ok {
			cacheHits.Add(1)
		}
		return final, err
	}
	if locked {
		// Holding the lock, any temporary file left over belongs to a
		// killed process.
		if stale, err := filepath.Glob(final + ".tmp-*"); err == nil {
			for _, s := range stale {
				_ = os.Remove(s)
			}
		}
	}
	if err := decompressTo(abs, final); err != nil {
		return "", fmt.Errorf("image %s: %w", abs, err)
	}
	decompressions.Add(1)
	pruneStale(filepath.Dir(dir), dir, time.Now())
	return final, nil
}

// staleAfter is how long a cache entry may go unused before it is removed.
const staleAfter = 7 * 24 * time.Hour

// sums memoises the content hash of each .zst by path, size and mtime
// within this process.
var sums sync.Map // string -> [sha256.Size]byte

// contentSum returns the sha256 of the file at abs (st is its stat).
func contentSum(abs string, st os.FileInfo) ([sha256.Size]byte, error) {
	memo := abs + "\x00" + strconv.FormatInt(st.Size(), 10) + "\x00" + strconv.FormatInt(st.ModTime().UnixNano(), 10)
	if v, ok := sums.Load(memo); ok {
		return v.([sha256.Size]byte), nil
	}
	var sum [sha256.Size]byte
	f, err := os.Open(abs)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return sum, fmt.Errorf("hashing: %w", err)
	}
	h.Sum(sum[:0])
	sums.Store(memo, sum)
	return sum, nil
}

// touch marks a cache entry as used now (best effort).
func touch(dir string) {
	now := time.Now()
	_ = os.Chtimes(dir, now, now)
}

// pruneStale removes the entries of the cache directory root (other than
// keep) that no test has used for staleAfter. Best effort: an entry
// another process is making or using is at worst made again.
func pruneStale(root, keep string, now time.Time) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return
	}
	for _, e := range ents {
		p := filepath.Join(root, e.Name())
		if !e.IsDir() || p == keep {
			continue
		}
		if info, err := e.Info(); err == nil && now.Sub(info.ModTime()) > staleAfter {
			_ = os.RemoveAll(p)
		}
	}
}

// isCached reports whether a finished cache entry exists at path.
func isCached(path string) (bool, error) {
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("checking cache entry: %w", err)
	case !st.Mode().IsRegular():
		return false, fmt.Errorf("cache entry %s is not a regular file", path)
	}
	return true, nil
}

// decompressTo decompresses the zstd file src into a temporary file next to
// dst and renames it to dst once complete and read-only.
func decompressTo(src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("opening: %w", err)
	}
	defer in.Close()
	dec, err := newDecoder(in)
	if err != nil {
		return err
	}
	defer dec.Close()

	tmp, err := os.CreateTemp(filepath.Dir(dst), filepath.Base(dst)+".tmp-*")
	if err != nil {
		return fmt.Errorf("creating temporary file: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()

	size, err := writeSparse(tmp, dec)
	if err != nil {
		return fmt.Errorf("decompressing to %s: %w", tmp.Name(), err)
	}
	if err := tmp.Truncate(size); err != nil {
		return fmt.Errorf("setting size of %s: %w", tmp.Name(), err)
	}
	if err := tmp.Chmod(0o444); err != nil {
		return fmt.Errorf("making %s read-only: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("renaming into cache: %w", err)
	}
	return nil
}

// writeSparse copies r to f, leaving holes where whole sparseBlock-sized
// blocks are zero. It returns the total number of bytes read; the caller
// must truncate f to that size so trailing holes count.
func writeSparse(f *os.File, r io.Reader) (int64, error) {
	buf := make([]byte, readChunk)
	zero := make([]byte, sparseBlock)
	var off int64
	for {
		n, rerr := io.ReadFull(r, buf)
		chunk := buf[:n]
		// Write each maximal run of non-zero blocks with one WriteAt.
		runStart := -1
		for i := 0; i < len(chunk); i += sparseBlock {
			end := min(i+sparseBlock, len(chunk))
			if bytes.Equal(chunk[i:end], zero[:end-i]) {
				if runStart >= 0 {
					if _, err := f.WriteAt(chunk[runStart:i], off+int64(runStart)); err != nil {
						return 0, fmt.Errorf("writing at offset %d: %w", off+int64(runStart), err)
					}
					runStart = -1
				}
			} else if runStart < 0 {
				runStart = i
			}
		}
		if runStart >= 0 {
			if _, err := f.WriteAt(chunk[runStart:], off+int64(runStart)); err != nil {
				return 0, fmt.Errorf("writing at offset %d: %w", off+int64(runStart), err)
			}
		}
		off += int64(n)
		switch {
		case rerr == nil:
		case errors.Is(rerr, io.EOF), errors.Is(rerr, io.ErrUnexpectedEOF):
			return off, nil
		default:
			return 0, fmt.Errorf("reading at offset %d: %w", off, rerr)
		}
	}
}

// decompressFile returns the whole decompressed content of a small .zst file.
func decompressFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening: %w", err)
	}
	defer f.Close()
	dec, err := newDecoder(f)
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	data, err := io.ReadAll(dec)
	if err != nil {
		return nil, fmt.Errorf("decompressing %s: %w", path, err)
	}
	return data, nil
}
