// Command bpcheck checks the backpointers of a bcachefs filesystem,
// read-only. See `bpcheck help`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"bpcheck/bp"
	"bpcheck/btreeio"
	"bpcheck/unlock"
)

// Exit codes, following fsck(8).
const (
	exitClean       = 0
	exitProblems    = 4
	exitOperational = 8
	exitUsage       = 16
	exitInterrupted = 32
)

const exitCodesHelp = `Exit codes:
  0   no problems found
  4   problems found and left uncorrected
  8   operational error (cannot read a device or node; a device shorter than
      its superblock's buckets; an unreadable or missing journal entry
      among those an unclean filesystem replays; encrypted filesystem whose key was not
      given or whose passphrase is wrong; the report could not be written)
  16  usage error (bad arguments, not a bcachefs device, incomplete device set,
      metadata newer than bpcheck knows without --allow-newer)
  32  interrupted (partial report)
Codes add up: 12 = problems found and something could not be read.
`

type command struct {
	name    string
	summary string
	usage   string
	run     func(args []string, stdout, stderr io.Writer) int
}

var commands []command

func init() {
	commands = []command{
		{"show-super", "print the superblock of each device", showSuperUsage, runShowSuper},
		{"check", "check backpointers, pointers and alloc keys against each other", checkUsage, runCheck},
		{"list", "print the keys of a btree like `bcachefs list`", listUsage, runList},
		{"list-journal", "print the journal entries and what recovery would replay", listJournalUsage, runListJournal},
		{"gen", "write a synthetic filesystem with injected faults and its manifest", genUsage, runGen},
		{"man", "print the manual page (roff)", manUsage, runMan},
		{"demo", "generate a small faulty filesystem and check it (a first run)", demoUsage, runDemo},
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	name := args[0]
	if name == "help" || name == "-h" || name == "--help" {
		if len(args) > 1 {
			for _, c := range commands {
				if c.name == args[1] {
					fmt.Fprint(stdout, c.usage)
					return exitClean
				}
			}
			fmt.Fprintf(stderr, "bpcheck: help: unknown command %q\n", args[1])
			usage(stderr)
			return exitUsage
		}
		usage(stdout)
		return exitClean
	}
	for _, c := range commands {
		if c.name == name {
			return c.run(args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "bpcheck: unknown command %q\n\n", name)
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprint(w, "bpcheck checks the backpointers of a bcachefs filesystem, read-only.\n\nUsage: bpcheck COMMAND [options] DEVICE...\n\nCommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, "  help CMD     show the help of a command\n\nDevices of a multi-device filesystem are given as separate arguments or joined with ':' in one argument (one that names an existing file is not split).\n\n")
	fmt.Fprint(w, exitCodesHelp)
}

// exitCodeFor maps an error from opening or reading a filesystem to an exit
// code: input mistakes are usage errors, the rest operational.
func exitCodeFor(err error) int {
	switch {
	case errors.Is(err, btreeio.ErrEncrypted):
		return exitOperational
	case errors.Is(err, btreeio.ErrBadMagic), errors.Is(err, btreeio.ErrDeviceSet), errors.Is(err, btreeio.ErrNotDevice):
		return exitUsage
	}
	return exitOperational
}

// openOptions are the flags every command that reads a filesystem takes.
type openOptions struct {
	// allowNewer reads a filesystem newer than bpcheck knows.
	allowNewer bool
	// keyFile and passphraseFile unlock an encrypted filesystem (see
	// package unlock; the kernel keyring and a terminal prompt come too).
	keyFile, passphraseFile string
	// kdfTime is set by openFS: how long deriving the key from a
	// passphrase took (0: no passphrase was used).
	kdfTime time.Duration
	// ctx, when set, ends a wait for a typed passphrase (a caught
	// Ctrl-C or SIGTERM): openFS then returns exit code 32.
	ctx context.Context
}

// addOpenFlags defines the flags of openOptions on fl.
func addOpenFlags(fl *flag.FlagSet) *openOptions {
	o := &openOptions{}
	fl.BoolVar(&o.allowNewer, "allow-newer", false, "read a filesystem whose metadata version is newer than bpcheck knows")
	fl.StringVar(&o.keyFile, "key-file", "", "encrypted filesystem: file with the 32-byte key derived from the passphrase")
	fl.StringVar(&o.passphraseFile, "passphrase-file", "", "encrypted filesystem: file whose first line is the passphrase")
	return o
}

// openFS opens the devices of one filesystem and unlocks its key if it
// is encrypted. A filesystem newer than bpcheck knows is refused (exit 16)
// unless allowed; a key that cannot be had is an operational error (8).
func openFS(args []string, o *openOptions, stderr io.Writer) (*btreeio.FS, int) {
	allowNewer := o.allowNewer
	paths := btreeio.SplitDevices(args)
	if len(paths) == 0 {
		fmt.Fprintln(stderr, "bpcheck: no device given")
		return nil, exitUsage
	}
	fs, err := btreeio.Open(paths)
	if err != nil {
		fmt.Fprintf(stderr, "bpcheck: %v\n", err)
		return nil, exitCodeFor(err)
	}
	if err := fs.CheckVersion(); err != nil {
		if !allowNewer {
			fmt.Fprintf(stderr, "bpcheck: %v: pass --allow-newer to try anyway\n", err)
			fs.Close()
			return nil, exitUsage
		}
		fmt.Fprintf(stderr, "bpcheck: warning: %v: read with the rules of %s as --allow-newer asks\n", err, bp.VersionString(bp.VersionKnown))
	}
	if _, err := unlock.Unlock(fs, unlock.Options{KeyFile: o.keyFile, PassphraseFile: o.passphraseFile, Terminal: os.Stdin, Prompt: stderr,
		KDFTime: &o.kdfTime, Context: o.ctx}); err != nil {
		fmt.Fprintf(stderr, "bpcheck: %v\n", err)
		fs.Close()
		if o.ctx != nil && o.ctx.Err() != nil {
			return nil, exitInterrupted
		}
		return nil, exitOperational
	}
	return fs, exitClean
}

// parseArgs parses a command's flags. ok is false when the command must
// return code: 0 after -h or --help (the usage printed), 16 for a bad
// flag, or for a flag after the devices (flag parsing stops at the first
// device: "check dev --json" opened "--json" as a device).
func parseArgs(fl *flag.FlagSet, args []string, stderr io.Writer) (code int, ok bool) {
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitClean, false
		}
		return exitUsage, false
	}
	rest := fl.Args()
	if n := len(rest); n > 0 && len(args) > n && args[len(args)-n-1] == "--" {
		return 0, true // after "--", device paths may start with '-'
	}
	for _, a := range rest {
		if len(a) > 1 && a[0] == '-' {
			fmt.Fprintf(stderr, "bpcheck: %s after the devices: options go before them\n", a)
			return exitUsage, false
		}
	}
	return 0, true
}
