package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"

	"bpcheck/bp"
	"bpcheck/btreeio"
	"bpcheck/listfmt"
)

const listUsage = `Usage: bpcheck list -b BTREE [-l LEVEL] DEVICE...

Prints the keys of one btree in key order, in the text form of
` + "`bcachefs list`" + `: one "u64s N type T inode:offset:snapshot len L ver V"
line per key followed by its value. Key values are printed in full for
extents, btree pointers, alloc, backpointers and reflink; other key types
show type and position. The text is that of the tools of the filesystem's
era: bcachefs-tools v1.9 for metadata up to 1.12, v1.13 for 1.13, v1.20
for 1.14-1.24, v1.25 for 1.25-1.28, v1.31 for 1.29-1.31, v1.33 for
1.32-1.34, v1.35 for 1.35, v1.38 for 1.38, v1.36 (the same as v1.37 and
v1.39) for 1.36, 1.37 and from 1.39.

Options:
  -b BTREE   btree to list (extents, alloc, backpointers, ...; default extents)
  -l LEVEL   list the keys of nodes at this level (default 0: leaf keys)
  --allow-newer  read metadata newer than 1.39 (refused by default, exit 16)
  --key-file FILE, --passphrase-file FILE
                 the key of an encrypted filesystem, as for check (the
                 kernel keyring and a terminal prompt are tried too)

Example:
  bpcheck list -b backpointers /dev/sdb /dev/sdc
`

func runList(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("list", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.Usage = func() { fmt.Fprint(stderr, listUsage) }
	btree := fl.String("b", "extents", "btree to list")
	level := fl.Uint("l", 0, "level")
	openOpt := addOpenFlags(fl)
	if code, ok := parseArgs(fl, args, stderr); !ok {
		return code
	}
	id, ok := bp.ParseBtreeID(*btree)
	if !ok {
		fmt.Fprintf(stderr, "bpcheck: unknown btree %q\n", *btree)
		return exitUsage
	}
	if *level > 255 {
		fmt.Fprintf(stderr, "bpcheck: -l %d: a btree level is 0 to 255\n", *level)
		return exitUsage
	}
	fs, code := openFS(fl.Args(), openOpt, stderr)
	if fs == nil {
		return code
	}
	defer fs.Close()
	if err := fs.LoadRoots(); err != nil {
		fmt.Fprintf(stderr, "bpcheck: %v\n", err)
		if errors.Is(err, btreeio.ErrUnclean) {
			return exitOperational
		}
		return exitCodeFor(err)
	}
	if fs.Journal != nil && !listfmt.ListsJournalKeys(fs.SB.Version) {
		fs.SkipJournalKeys()
		fmt.Fprintln(stderr, "bpcheck: note: the bcachefs-tools that write metadata up to 1.27 list an unclean filesystem without the journal's keys; so does bpcheck list")
	}
	w := bufio.NewWriterSize(stdout, 1<<16)
	defer w.Flush()
	v := &listVisitor{w: w, p: listfmt.NewPrinter(fs), level: uint8(*level), stderr: stderr, version: fs.SB.Version}
	if !fs.SB.FormatB() && *level != 0 {
		fmt.Fprintln(stderr, "bpcheck: note: bcachefs-tools v1.9 lists leaf keys whatever -l says; bpcheck lists the level asked for")
	}
	if err := fs.Walk(id, uint8(*level), v); err != nil {
		fmt.Fprintf(stderr, "bpcheck: %v\n", err)
		return exitOperational
	}
	if v.errs > 0 {
		return exitOperational // nodes or keys that could not be read
	}
	return exitClean
}

type listVisitor struct {
	w       *bufio.Writer
	p       *listfmt.Printer
	level   uint8
	stderr  io.Writer
	buf     []byte
	errs    int
	version uint16
}

func (v *listVisitor) Node(n *btreeio.Node) error {
	for _, p := range n.Problems {
		fmt.Fprintf(v.stderr, "bpcheck: %v\n", p)
		v.errs++
	}
	if n.Level != v.level {
		return nil
	}
	for i := range n.Keys {
		if !listfmt.Listed(v.version, n.BtreeID, &n.Keys[i].Key) {
			continue
		}
		v.buf = v.p.AppendKey(v.buf[:0], n.BtreeID, &n.Keys[i].Key, n.Keys[i].Val)
		v.buf = append(v.buf, '\n')
		if _, err := v.w.Write(v.buf); err != nil {
			return err
		}
	}
	return nil
}

func (v *listVisitor) NodeError(btree bp.BtreeID, level uint8, parent *bp.Key, err error) error {
	fmt.Fprintf(v.stderr, "bpcheck: %v\n", err)
	v.errs++
	return nil
}
