package unlock_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"bpcheck/btreeio"
	"bpcheck/csum"
	"bpcheck/internal/casedata"
	"bpcheck/unlock"
)

// open opens enc-small (sealed with its passphrase) and returns it with
// the passphrase.
func open(t *testing.T) (*btreeio.FS, []byte) {
	t.Helper()
	fs, err := btreeio.Open(casedata.CaseImages(t, "enc-small"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close() })
	if !fs.KeySealed() {
		t.Fatal("enc-small: key not sealed")
	}
	return fs, casedata.Passphrase(t, "enc-small")
}

// readable reports whether the unlocked filesystem reads: its roots load
// and a walk of the extents btree sees keys.
func readable(t *testing.T, fs *btreeio.FS) {
	t.Helper()
	if fs.KeySealed() {
		t.Fatal("still sealed")
	}
	if err := fs.LoadRoots(); err != nil {
		t.Fatal(err)
	}
	r := fs.Roots[0]
	if _, err := fs.ReadNode(r.Btree, r.Level, &r.Key, r.Val); err != nil {
		t.Fatalf("root of %s after unlocking: %v", r.Btree, err)
	}
}

func writeFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPassphraseFile(t *testing.T) {
	fs, pass := open(t)
	src, err := unlock.Unlock(fs, unlock.Options{NoKeyring: true, PassphraseFile: writeFile(t, "p", append(pass, "\nignored second line\n"...))})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(src, "passphrase file ") {
		t.Errorf("source %q", src)
	}
	readable(t, fs)
}

func TestWrongPassphrase(t *testing.T) {
	fs, pass := open(t)
	_, err := unlock.Unlock(fs, unlock.Options{NoKeyring: true, PassphraseFile: writeFile(t, "p", append(pass, 'x'))})
	want := "wrong passphrase for " + btreeio.UUIDString(fs.SB.UserUUID)
	if !errors.Is(err, btreeio.ErrWrongPassphrase) || err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
	if !fs.KeySealed() {
		t.Error("a wrong passphrase unsealed the key")
	}
}

// TestNoSource: without a key file, keyring key, passphrase file or
// terminal, Unlock returns at once naming the three ways.
func TestNoSource(t *testing.T) {
	fs, _ := open(t)
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	_, err = unlock.Unlock(fs, unlock.Options{NoKeyring: true, Terminal: devNull})
	if !errors.Is(err, unlock.ErrNoKey) {
		t.Fatalf("error %v, want ErrNoKey", err)
	}
	for _, s := range []string{"--key-file", "bcachefs unlock", "--passphrase-file"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error does not name %q: %v", s, err)
		}
	}
}

func passphraseKey(t *testing.T, fs *btreeio.FS, pass []byte) csum.Key {
	t.Helper()
	k, err := fs.SB.Crypt.PassphraseKey(pass)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKeyFile(t *testing.T) {
	fs, pass := open(t)
	k := passphraseKey(t, fs, pass)
	for _, tc := range []struct {
		name string
		data []byte
		err  string
	}{
		{"short", k[:31], "holds 31 bytes; a key is 32 raw bytes"},
		{"long", append(k[:], '\n'), "holds more than 32 bytes"},
		{"empty", nil, "holds 0 bytes"},
		{"wrong key", make([]byte, 32), "wrong passphrase for"},
	} {
		_, err := unlock.Unlock(fs, unlock.Options{NoKeyring: true, KeyFile: writeFile(t, tc.name, tc.data)})
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.err)
		}
		if err != nil && strings.Contains(err.Error(), string(pass)) {
			t.Errorf("%s: the error shows the passphrase", tc.name)
		}
	}
	if !fs.KeySealed() {
		t.Fatal("a bad key file unsealed the key")
	}
	src, err := unlock.Unlock(fs, unlock.Options{NoKeyring: true, KeyFile: writeFile(t, "good", k[:])})
	if err != nil || !strings.HasPrefix(src, "key file ") {
		t.Fatalf("good key file: %q, %v", src, err)
	}
	readable(t, fs)
}

// inNewSessionKeyring runs f on a thread of its own that joins a new,
// empty session keyring, so the test adds nothing to the keyrings of the
// machine; the thread ends with f. It skips the test where the kernel has
// no keyrings. f must not call t.Fatal or t.Skip (another goroutine).
func inNewSessionKeyring(t *testing.T, f func()) {
	skip := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		if _, err := unix.KeyctlJoinSessionKeyring(fmt.Sprintf("bpcheck-test-%d-%s", os.Getpid(), t.Name())); err != nil {
			skip <- err
			return
		}
		f()
		skip <- nil
	}()
	if err := <-skip; err != nil {
		t.Skipf("no kernel keyring here: %v", err)
	}
}

func TestKeyring(t *testing.T) {
	fs, pass := open(t)
	k := passphraseKey(t, fs, pass)
	desc := "bcachefs:" + btreeio.UUIDString(fs.SB.UserUUID)
	inNewSessionKeyring(t, func() {
		// A key of the wrong length is refused by name.
		id, err := unix.AddKey("user", desc, k[:16], unix.KEY_SPEC_SESSION_KEYRING)
		if err != nil {
			t.Errorf("adding a key: %v", err)
			return
		}
		_, err = unlock.Unlock(fs, unlock.Options{})
		if err == nil || !strings.Contains(err.Error(), "is 16 bytes; a bcachefs passphrase key is 32") {
			t.Errorf("16-byte keyring key: %v", err)
		}
		if _, err := unix.KeyctlInt(unix.KEYCTL_UNLINK, id, unix.KEY_SPEC_SESSION_KEYRING, 0, 0); err != nil {
			t.Errorf("unlinking: %v", err)
			return
		}
		// The right key unlocks without asking for anything.
		if _, err := unix.AddKey("user", desc, k[:], unix.KEY_SPEC_SESSION_KEYRING); err != nil {
			t.Errorf("adding a key: %v", err)
			return
		}
		src, err := unlock.Unlock(fs, unlock.Options{})
		if err != nil || !strings.HasPrefix(src, "kernel keyring") {
			t.Errorf("keyring: %q, %v", src, err)
		}
	})
	readable(t, fs)
}

// TestKeyringStaleThenPassphrase: a keyring key that does not unseal
// (a stale one) leaves the passphrase to try.
func TestKeyringStaleThenPassphrase(t *testing.T) {
	fs, pass := open(t)
	desc := "bcachefs:" + btreeio.UUIDString(fs.SB.UserUUID)
	inNewSessionKeyring(t, func() {
		if _, err := unix.AddKey("user", desc, make([]byte, 32), unix.KEY_SPEC_SESSION_KEYRING); err != nil {
			t.Errorf("adding a key: %v", err)
			return
		}
		if _, err := unlock.Unlock(fs, unlock.Options{}); !errors.Is(err, btreeio.ErrWrongPassphrase) {
			t.Errorf("stale key alone: %v", err)
		}
		src, err := unlock.Unlock(fs, unlock.Options{PassphraseFile: writeFile(t, "p", pass)})
		if err != nil || !strings.HasPrefix(src, "passphrase file") {
			t.Errorf("stale key, then passphrase: %q, %v", src, err)
		}
	})
	readable(t, fs)
}

// TestKeyZeroedOnClose: the unsealed key is zeroed when the filesystem is
// closed.
func TestKeyZeroedOnClose(t *testing.T) {
	fs, pass := open(t)
	if _, err := unlock.Unlock(fs, unlock.Options{NoKeyring: true, PassphraseFile: writeFile(t, "p", pass)}); err != nil {
		t.Fatal(err)
	}
	k := fs.SB.CryptKey
	if *k == (csum.Key{}) {
		t.Fatal("no key after unlocking")
	}
	fs.Close()
	if *k != (csum.Key{}) {
		t.Error("the key survived Close")
	}
}

// openPTY returns a pseudo-terminal's two ends (the test skips without
// one).
func openPTY(t *testing.T) (ptmx, pts *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Skipf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Skipf("ptsname: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("open pts: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

// TestPromptCancelled: a Ctrl-C (the caller's context done) while the
// passphrase is asked for on a terminal ends the wait with the context's
// error and echo restored (the prompt swallowed Ctrl-C and SIGTERM).
func TestPromptCancelled(t *testing.T) {
	fs, _ := open(t)
	_, pts := openPTY(t)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		time.Sleep(100 * time.Millisecond)
		cancel()
	}()
	done := make(chan error, 1)
	go func() {
		_, err := unlock.Unlock(fs, unlock.Options{NoKeyring: true, Terminal: pts, Prompt: io.Discard, Context: ctx})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Unlock: %v, want the context's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the prompt did not end when the context was cancelled")
	}
	tio, err := unix.IoctlGetTermios(int(pts.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if tio.Lflag&unix.ECHO == 0 {
		t.Error("echo left off on the terminal")
	}
}

// TestPromptCancelledBefore: a context already done when the passphrase
// would be asked for ends Unlock at once, echo untouched (a cancel racing
// the prompt's start left echo off).
func TestPromptCancelledBefore(t *testing.T) {
	fs, _ := open(t)
	for range 20 {
		_, pts := openPTY(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := unlock.Unlock(fs, unlock.Options{NoKeyring: true, Terminal: pts, Prompt: io.Discard, Context: ctx}); !errors.Is(err, context.Canceled) {
			t.Fatalf("Unlock: %v, want the context's error", err)
		}
		tio, err := unix.IoctlGetTermios(int(pts.Fd()), unix.TCGETS)
		if err != nil {
			t.Fatal(err)
		}
		if tio.Lflag&unix.ECHO == 0 {
			t.Fatal("echo left off on the terminal")
		}
	}
}

// TestPromptReadsPassphrase: the passphrase typed on the terminal unlocks
// the filesystem (through the cancellable read).
func TestPromptReadsPassphrase(t *testing.T) {
	fs, pass := open(t)
	ptmx, pts := openPTY(t)
	go func() {
		time.Sleep(50 * time.Millisecond)
		ptmx.Write(append(append([]byte(nil), pass...), '\n'))
	}()
	src, err := unlock.Unlock(fs, unlock.Options{NoKeyring: true, Terminal: pts, Prompt: io.Discard, Context: context.Background()})
	if err != nil {
		t.Fatal(err)
	}
	if src != "passphrase typed on the terminal" {
		t.Errorf("source %q", src)
	}
	readable(t, fs)
	tio, err := unix.IoctlGetTermios(int(pts.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if tio.Lflag&unix.ECHO == 0 {
		t.Error("echo left off after the passphrase")
	}
}
