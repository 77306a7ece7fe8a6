package btreeio

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors; every error from this package that concerns on-disk data
// wraps ErrCorrupt or one of the more precise markers below, so callers can
// test with errors.Is.
var (
	ErrCorrupt     = errors.New("corrupt metadata")
	ErrBadMagic    = fmt.Errorf("%w: bad magic", ErrCorrupt)
	ErrBadChecksum = fmt.Errorf("%w: bad checksum", ErrCorrupt)
	ErrTruncated   = fmt.Errorf("%w: truncated", ErrCorrupt)
	ErrEncrypted   = errors.New("encrypted filesystem whose key is sealed with a passphrase, which bpcheck does not take")
	ErrUnsupported = errors.New("unsupported")
	// ErrNotDevice is returned by OpenDevice for a path that is neither
	// a block device nor a regular file.
	ErrNotDevice = errors.New("not a device")
	// ErrNewerVersion is returned by CheckVersion for a filesystem newer
	// than any bpcheck knows.
	ErrNewerVersion = errors.New("newer metadata version than bpcheck knows")
)

// Error describes a problem with an on-disk structure: which device, at
// which byte offset, which structure and (for btree nodes) which btree and
// level.
type Error struct {
	Dev    string // device path as given
	Offset int64  // byte offset on the device, -1 if unknown
	What   string // structure: "superblock", "btree node", "bset", "key", ...
	Btree  string // btree name, if any
	Level  int    // btree level, -1 if not applicable
	Err    error
}

// Error implements error.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Dev)
	if e.Offset >= 0 {
		fmt.Fprintf(&b, ": byte %d", e.Offset)
	}
	b.WriteString(": ")
	b.WriteString(e.What)
	if e.Btree != "" {
		fmt.Fprintf(&b, " (btree %s", e.Btree)
		if e.Level >= 0 {
			fmt.Fprintf(&b, " level %d", e.Level)
		}
		b.WriteString(")")
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }
