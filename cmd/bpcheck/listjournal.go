package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"

	"bpcheck/bp"
	"bpcheck/btreeio"
	"bpcheck/listfmt"
)

const listJournalUsage = `Usage: bpcheck list-journal [-a] DEVICE...

Prints the journal entries of the filesystem in the spirit of
` + "`bcachefs list_journal`" + `: one line per entry (seq, device and byte
offset, last_seq, flush flag, checksum state) followed by its btree roots
and btree keys, then which entries recovery would replay and why.

Options:
  -a   print every entry found, not only the replayed ones
  --allow-newer  read metadata newer than 1.39 (refused by default, exit 16)
  --key-file FILE, --passphrase-file FILE
                 the key of an encrypted filesystem, as for check

Example:
  bpcheck list-journal /dev/sdb
`

var jentryNames = []string{"btree_keys", "btree_root", "prio_ptrs", "blacklist", "blacklist_v2", "usage",
	"data_usage", "clock", "dev_usage", "log", "overwrite", "write_buffer_keys", "datetime", "log_bkey",
	"rewind_limit", "rewind"}

func runListJournal(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("list-journal", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.Usage = func() { fmt.Fprint(stderr, listJournalUsage) }
	all := fl.Bool("a", false, "print every entry found")
	openOpt := addOpenFlags(fl)
	if code, ok := parseArgs(fl, args, stderr); !ok {
		return code
	}
	fs, code := openFS(fl.Args(), openOpt, stderr)
	if fs == nil {
		return code
	}
	defer fs.Close()
	j := fs.ReadJournal()
	w := bufio.NewWriter(stdout)
	defer w.Flush()
	p := listfmt.NewPrinter(fs)
	replayed := map[uint64]bool{}
	for _, js := range j.Replay {
		replayed[js.Seq] = true
	}
	var buf []byte
	for _, js := range j.All {
		if !*all && !replayed[js.Seq] {
			continue
		}
		state := "checksum good"
		if !js.CsumGood {
			state = "checksum BAD"
		}
		flush := "flush"
		if js.NoFlush() {
			flush = "no_flush"
		}
		fmt.Fprintf(w, "journal entry seq %d last_seq %d version %s %s %s (%s byte %d)%s\n", js.Seq, js.LastSeq,
			bp.VersionString(uint16(js.Version)), flush, state, js.Dev, js.Offset, map[bool]string{true: "", false: " [not replayed]"}[replayed[js.Seq]])
		for _, e := range js.Entries {
			name := fmt.Sprintf("type %d", e.Type)
			if int(e.Type) < len(jentryNames) {
				name = jentryNames[e.Type]
			}
			switch e.Type {
			case btreeio.JEntryBtreeKeys, btreeio.JEntryBtreeRoot:
				fmt.Fprintf(w, "  %s btree=%s level=%d\n", name, e.BtreeID.Name(fs.SB.Version), e.Level)
				for off := 0; off < len(e.Payload); {
					k, val, err := bp.DecodeUnpacked(e.Payload[off:])
					if err != nil {
						fmt.Fprintf(w, "    (bad key: %v)\n", err)
						break
					}
					buf = p.AppendKey(buf[:0], e.BtreeID, &k, val)
					fmt.Fprintf(w, "    %s\n", buf)
					off += int(k.U64s) * 8
				}
			default:
				fmt.Fprintf(w, "  %s (%d bytes)\n", name, len(e.Payload))
			}
		}
	}
	fmt.Fprintln(w, j.Summary())
	for _, e := range j.Errors {
		fmt.Fprintf(w, "error: %v\n", e)
	}
	if len(j.Errors) > 0 {
		return exitOperational // journal buckets or entries that could not be read
	}
	return exitClean
}
