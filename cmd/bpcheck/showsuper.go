package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"bpcheck/bp"
	"bpcheck/btreeio"
)

const showSuperUsage = `Usage: bpcheck show-super DEVICE...

Reads the superblock of each device (the primary copy at sector 8, or a
backup copy listed in the layout when the primary is bad), verifies its
checksum and prints what bpcheck uses: versions, sizes, checksum types,
the backpointer shift, members, journal buckets and btree roots.

Example:
  bpcheck show-super /dev/sdb
`

var featureNames = []string{"lz4", "gzip", "zstd", "atomic_nlink", "ec", "journal_seq_blacklist_v3",
	"reflink", "new_siphash", "inline_data", "new_extent_overwrite", "incompressible", "btree_ptr_v2",
	"extents_above_btree_updates", "btree_updates_journalled", "reflink_inline_data", "new_varint",
	"journal_no_flush", "alloc_v2", "extents_across_btree_nodes", "incompat_version_field",
	"casefolding", "no_alloc_info", "small_image", "no_default_sb"}

var csumOptNames = []string{"none", "crc32c", "crc64", "xxhash"}

func optName(names []string, v uint8) string {
	if int(v) < len(names) {
		return names[v]
	}
	return fmt.Sprintf("(%d)", v)
}

func runShowSuper(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("show-super", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.Usage = func() { fmt.Fprint(stderr, showSuperUsage) }
	if code, ok := parseArgs(fl, args, stderr); !ok {
		return code
	}
	paths := btreeio.SplitDevices(fl.Args())
	if len(paths) == 0 {
		fl.Usage()
		return exitUsage
	}
	code := exitClean
	for i, p := range paths {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		d, err := btreeio.OpenDevice(p)
		if err != nil {
			fmt.Fprintf(stderr, "bpcheck: %v\n", err)
			if c := exitCodeFor(err); c > code {
				code = c
			}
			continue
		}
		printSuper(stdout, d)
		d.Close()
	}
	return code
}

func printSuper(w io.Writer, d *btreeio.Device) {
	sb := d.SB
	fmt.Fprintf(w, "Device:                     %s (%d bytes)\n", d.Path, d.Size)
	fmt.Fprintf(w, "Superblock copy used:       %s\n", d.SBSource)
	fmt.Fprintf(w, "External UUID:              %s\n", btreeio.UUIDString(sb.UserUUID))
	fmt.Fprintf(w, "Internal UUID:              %s\n", btreeio.UUIDString(sb.UUID))
	fmt.Fprintf(w, "Label:                      %s\n", sb.Label)
	fmt.Fprintf(w, "Version:                    %s\n", bp.VersionString(sb.Version))
	fmt.Fprintf(w, "Version upgrade complete:   %s\n", bp.VersionString(sb.VersionUpgradeComplete()))
	fmt.Fprintf(w, "Oldest version on disk:     %s\n", bp.VersionString(sb.VersionMin))
	format := "A (backpointer bucket_offset)"
	if sb.FormatB() {
		format = "B (backpointer bucket_gen + flags)"
	}
	fmt.Fprintf(w, "Backpointer format:         %s, extent_bp_shift %d\n", format, sb.ExtentBPShift())
	fmt.Fprintf(w, "Superblock seq:             %d, offset sector %d, %d bytes, checksum %s\n", sb.Seq, sb.Offset, len(sb.Raw), sb.CsumType())
	fmt.Fprintf(w, "Device index:               %d of %d\n", sb.DevIdx, sb.NrDevices)
	fmt.Fprintf(w, "Block size:                 %d bytes\n", int(sb.BlockSize)*btreeio.SectorSize)
	fmt.Fprintf(w, "Btree node size:            %d bytes\n", int(sb.BtreeNodeSectors())*btreeio.SectorSize)
	fmt.Fprintf(w, "Metadata checksum:          %s\n", optName(csumOptNames, sb.MetaCsumOpt()))
	fmt.Fprintf(w, "Data checksum:              %s\n", optName(csumOptNames, sb.DataCsumOpt()))
	fmt.Fprintf(w, "Encoded extent max:         %d bytes\n", btreeio.SectorSize<<sb.EncodedExtentMaxBits())
	switch {
	case sb.Crypt != nil:
		fmt.Fprintf(w, "Encrypted:                  yes, %s\n", sb.Crypt)
	default:
		fmt.Fprintf(w, "Encrypted:                  %v\n", sb.Encrypted())
	}
	fmt.Fprintf(w, "Clean:                      %v\n", sb.IsClean())
	var feats []string
	for i, n := range featureNames {
		if sb.Features[0]>>uint(i)&1 != 0 {
			feats = append(feats, n)
		}
	}
	fmt.Fprintf(w, "Features:                   %s\n", strings.Join(feats, ","))
	fmt.Fprintf(w, "Layout:                     %d copies of up to %d sectors at sectors %v\n",
		sb.Layout.NrSuperblocks, 1<<sb.Layout.SBMaxSizeBits, sb.Layout.SBOffset)
	var fields []string
	for _, f := range sb.Fields {
		fields = append(fields, fmt.Sprintf("%s(%d)", btreeio.FieldName(f.Type), len(f.Data)))
	}
	fmt.Fprintf(w, "Fields:                     %s\n", strings.Join(fields, " "))
	fmt.Fprintf(w, "Journal buckets:            ")
	for i, r := range sb.Journal {
		if i > 0 {
			fmt.Fprint(w, ", ")
		}
		if r.Nr == 1 {
			fmt.Fprintf(w, "%d", r.Start)
		} else {
			fmt.Fprintf(w, "%d-%d", r.Start, r.Start+r.Nr-1)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Members:\n")
	for i := range sb.Members {
		m := &sb.Members[i]
		if !m.Exists() {
			continue
		}
		fmt.Fprintf(w, "  %d: uuid %s state %s bucket_size %d nbuckets %d first_bucket %d durability %d rotational %v\n",
			m.Index, btreeio.UUIDString(m.UUID), m.StateName(), int(m.BucketSize)*btreeio.SectorSize, m.NBuckets, m.FirstBucket, m.Durability(), m.Rotational())
	}
	if sb.Clean != nil {
		fmt.Fprintf(w, "Clean section:              journal_seq %d\n", sb.Clean.JournalSeq)
		entries, err := btreeio.ParseJEntries(sb.Clean.Entries)
		if err != nil {
			fmt.Fprintf(w, "  (clean section damaged: %v)\n", err)
		}
		for _, e := range entries {
			if e.Type != btreeio.JEntryBtreeRoot || len(e.Payload) == 0 {
				continue
			}
			k, _, err := bp.DecodeUnpacked(e.Payload)
			if err != nil {
				fmt.Fprintf(w, "  root %s: %v\n", e.BtreeID.Name(sb.Version), err)
				continue
			}
			fmt.Fprintf(w, "  root %-20s level %d  %s\n", e.BtreeID.Name(sb.Version), e.Level, k.Type)
		}
	}
}
