// Package unlock finds the key of an encrypted bcachefs filesystem and
// unseals it, in the order the bcachefs tools look: a key file, the kernel
// keyring (where `bcachefs unlock` puts the passphrase's key), then a
// passphrase from a file or typed on the terminal. Nothing is written:
// not to the keyring, not to a device. Passphrases and keys are zeroed
// after use and never appear in errors.
package unlock

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"bpcheck/btreeio"
	"bpcheck/csum"
)

// ErrNoKey is returned when no source of the key was given or found.
var ErrNoKey = errors.New("no key")

// Options say where the key may come from.
type Options struct {
	// KeyFile holds the raw 32-byte key derived from the passphrase (the
	// bytes the keyring holds).
	KeyFile string
	// PassphraseFile holds the passphrase: its first line, without the
	// newline, as the tools read it from stdin.
	PassphraseFile string
	// NoKeyring skips the kernel keyring.
	NoKeyring bool
	// Terminal, when it is a terminal, is where the passphrase is asked
	// for with echo off (prompt on Prompt). Nil or not a terminal: never
	// asked, so a run without one never waits for input.
	Terminal *os.File
	Prompt   io.Writer
	// KDFTime, when set, receives how long deriving the key from a
	// passphrase took (scrypt and the unsealing; not the time spent
	// asking for the passphrase), 0 when no passphrase was used.
	KDFTime *time.Duration
	// Context, when set, ends the wait for a typed passphrase when it is
	// done (Ctrl-C, SIGTERM caught by the caller): Unlock returns its
	// error, the terminal restored.
	Context context.Context
}

// keyBytes is the size of a passphrase's key.
const keyBytes = len(csum.Key{})

// Unlock unseals the key of fs if it is sealed, and says where the key
// came from ("" when none was needed). Failures name the filesystem by
// its external uuid and never carry a secret.
func Unlock(fs *btreeio.FS, opt Options) (source string, err error) {
	if !fs.KeySealed() {
		return "", nil
	}
	uuid := btreeio.UUIDString(fs.SB.UserUUID)
	if opt.KeyFile != "" {
		k, err := readKeyFile(opt.KeyFile)
		if err != nil {
			return "", err
		}
		defer clear(k[:])
		if err := fs.Unlock(&k); err != nil {
			return "", fmt.Errorf("key file %s: %w", opt.KeyFile, err)
		}
		return "key file " + opt.KeyFile, nil
	}
	var keyringErr error
	if !opt.NoKeyring {
		k, found, err := keyringKey("bcachefs:" + uuid)
		switch {
		case err != nil:
			return "", err
		case found:
			err := fs.Unlock(&k)
			clear(k[:])
			if err == nil {
				return "kernel keyring (bcachefs:" + uuid + ")", nil
			}
			// A stale key: a passphrase may still unlock it.
			keyringErr = fmt.Errorf("the key in the kernel keyring (bcachefs:%s): %w", uuid, err)
		}
	}
	pass, src, err := passphrase(opt, uuid)
	if err != nil {
		return "", err
	}
	if pass == nil {
		if keyringErr != nil {
			return "", keyringErr
		}
		return "", fmt.Errorf("%w: filesystem %s is encrypted with a passphrase: give --key-file FILE (the key the passphrase derives), "+
			"unlock it with `bcachefs unlock` (the kernel keyring), or give --passphrase-file FILE (or run on a terminal to be asked)", ErrNoKey, uuid)
	}
	defer clear(pass)
	t0 := time.Now()
	err = WithPassphrase(fs, pass)
	if opt.KDFTime != nil {
		*opt.KDFTime = time.Since(t0)
	}
	if err != nil {
		return "", err
	}
	return src, nil
}

// WithPassphrase unseals the key of fs with a passphrase the caller holds
// (nothing is asked or read); a filesystem whose key is not sealed is left
// as it is. The passphrase is not kept.
func WithPassphrase(fs *btreeio.FS, passphrase []byte) error {
	if !fs.KeySealed() {
		return nil
	}
	k, err := fs.SB.Crypt.PassphraseKey(passphrase)
	if err != nil {
		return err
	}
	defer clear(k[:])
	return fs.Unlock(&k)
}

// readKeyFile reads a raw 32-byte key.
func readKeyFile(path string) (csum.Key, error) {
	var k csum.Key
	f, err := os.Open(path)
	if err != nil {
		return k, fmt.Errorf("key file: %w", err)
	}
	defer f.Close()
	buf := make([]byte, keyBytes+1)
	defer clear(buf)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return k, fmt.Errorf("key file %s: %w", path, err)
	}
	if n != keyBytes {
		what := fmt.Sprintf("%d bytes", n)
		if n > keyBytes {
			what = fmt.Sprintf("more than %d bytes", keyBytes)
		}
		return k, fmt.Errorf("key file %s holds %s; a key is %d raw bytes", path, what, keyBytes)
	}
	copy(k[:], buf)
	return k, nil
}

// keyrings are searched in this order for the key `bcachefs unlock` adds.
var keyrings = []struct {
	id   int
	name string
}{
	{unix.KEY_SPEC_SESSION_KEYRING, "session"},
	{unix.KEY_SPEC_USER_KEYRING, "user"},
	{unix.KEY_SPEC_USER_SESSION_KEYRING, "user-session"},
}

// keyringKey looks up the user key of that description. A kernel without
// keyrings (ENOSYS) or a sandbox that forbids them (EPERM, EACCES) has no
// key; a key of the wrong size is an error.
func keyringKey(desc string) (k csum.Key, found bool, err error) {
	for _, r := range keyrings {
		id, err := unix.KeyctlSearch(r.id, "user", desc, 0)
		if err != nil {
			continue // ENOKEY, or no keyring support at all
		}
		buf := make([]byte, 256)
		n, err := unix.KeyctlBuffer(unix.KEYCTL_READ, id, buf, 0)
		if err != nil {
			clear(buf)
			return k, false, fmt.Errorf("kernel keyring: reading key %s from the %s keyring: %w", desc, r.name, err)
		}
		if n != keyBytes {
			clear(buf)
			return k, false, fmt.Errorf("kernel keyring: key %s in the %s keyring is %d bytes; a bcachefs passphrase key is %d", desc, r.name, n, keyBytes)
		}
		copy(k[:], buf)
		clear(buf)
		return k, true, nil
	}
	return k, false, nil
}

// passphrase reads the passphrase from the file given, or asks for it on
// the terminal. It returns nil when there is neither.
func passphrase(opt Options, uuid string) ([]byte, string, error) {
	if opt.PassphraseFile != "" {
		b, err := os.ReadFile(opt.PassphraseFile)
		if err != nil {
			return nil, "", fmt.Errorf("passphrase file: %w", err)
		}
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			clear(b[i:])
			b = b[:i]
		}
		return b, "passphrase file " + opt.PassphraseFile, nil
	}
	if opt.Terminal == nil || !term.IsTerminal(int(opt.Terminal.Fd())) {
		return nil, "", nil
	}
	if opt.Prompt != nil {
		fmt.Fprintf(opt.Prompt, "Enter passphrase for %s: ", uuid)
	}
	b, err := readPassword(opt.Context, opt.Terminal)
	if opt.Prompt != nil {
		fmt.Fprintln(opt.Prompt)
	}
	if err != nil {
		return nil, "", fmt.Errorf("reading the passphrase from the terminal: %w", err)
	}
	return b, "passphrase typed on the terminal", nil
}

// readPassword reads a line from terminal f with echo off, until ctx (if
// any) is done: then ctx's error is returned (the read is left to the
// process's exit). Echo is turned off and restored here, not by the
// reading goroutine, so that a cancel can never leave it off.
func readPassword(ctx context.Context, f *os.File) ([]byte, error) {
	fd := int(f.Fd())
	if ctx == nil {
		return term.ReadPassword(fd)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, err
	}
	quiet := *old
	quiet.Lflag &^= unix.ECHO
	quiet.Lflag |= unix.ICANON | unix.ISIG
	quiet.Iflag |= unix.ICRNL
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &quiet); err != nil {
		return nil, err
	}
	defer unix.IoctlSetTermios(fd, unix.TCSETS, old)
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		b, err := readLine(f)
		done <- result{b, err}
	}()
	select {
	case r := <-done:
		return r.b, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// readLine reads bytes from f up to a newline (not returned) or the end.
func readLine(f *os.File) ([]byte, error) {
	var out []byte
	var c [1]byte
	for {
		n, err := f.Read(c[:])
		if n == 1 {
			switch c[0] {
			case '\n':
				return out, nil
			case '\r':
			default:
				out = append(out, c[0])
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) && len(out) > 0 {
				return out, nil
			}
			return nil, err
		}
	}
}
