package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"bpcheck/gen"
)

const genUsage = `Usage: bpcheck gen --out DIR [options]

Writes a synthetic bcachefs filesystem (metadata version 1.36, format B
backpointers, as bcachefs-tools v1.36.1 writes it; --metadata-version
1.28 or 1.39 writes the format of v1.25.3 or v1.39.2 instead) into DIR:
dev0.img, dev1.img, ... as sparse files holding only metadata
(superblocks, a journal entry, and btree nodes for extents, backpointers,
alloc, freespace, lru, the root snapshot, snapshot tree and subvolume,
inodes and dirents of the files that own the extents, disk accounting,
and with --ec-stripes the stripes btree (and from 1.36 bucket_to_stripe):
the real bcachefs fsck -n of the version's era finds no error in an image
without faults), and DIR/manifest.json with the parameters, key counts and, for
every injected fault, the finding ` + "`bpcheck check --json`" + ` reports
for it. Data is never written: it reads as zeros, and every extent
carries the crc32c checksum of those zeros (with --encrypted, the
chacha20_poly1305_80 MAC the kernel computes when it reads them). The
same options (and passphrase) give byte-identical images.

Options:
  --out DIR                directory to write (created if needed)
  --devices N              member devices (default 1)
  --shape real             the shape of a filesystem bcachefs format --source
                           makes from a real tree (measured on /usr, v1.36.1,
                           --encoded_extent_max=4k): encoded_extent_max 4 KiB,
                           extents of one 4 KiB block, file lengths as on /usr
                           (most 1 extent, a long tail), nodes filled to 2/5;
                           device 20G (larger for much data), extent size 8-8
                           and up to 65535 extents per file unless given
  --device-size SIZE       size of each device, e.g. 256M, 10G (default 1G, or
                           the power of two that holds twice the extents)
  --bucket-size SIZE       bucket size (default: as bcachefs format picks)
  --btree-node-size SIZE   btree node size (default: min(256K, bucket size))
  --extents N              extents to write (default 1000)
  --extent-size MIN-MAX    extent size range in 512-byte sectors, whole 4 KiB
                           blocks (default 8-128)
  --extents-per-file N     most extents per file (default 4)
  --replicas R             copies of each extent and btree node (default 1)
  --ec-stripes N            erasure-coded stripes (default 0: none; needs
                           3..16 devices and --replicas 1): one bucket per
                           device each, devices-1 data blocks filled with the
                           extents of further files, and one parity block
  --seed S                 random seed (default 1)
  --metadata-version V     on-disk format: 1.28 (as bcachefs-tools v1.25.3
                           writes it), 1.36 (v1.36.1) or 1.39 (v1.39.2)
                           (default 1.36)
  --encrypted              encrypt as bcachefs format --encrypted: btree nodes
                           and journal entries encrypted with ChaCha20 and
                           MAC'd with Poly1305, extents with
                           chacha20_poly1305_80 checksums; the filesystem key
                           is derived from the seed (format picks it at
                           random), so the images are reproducible
  --passphrase-file FILE   with --encrypted: seal the key with the first line
                           of FILE (scrypt N=2^14 r=2^3 p=2^4, as format);
                           bpcheck check and bcachefs fsck ask for it
  --no-passphrase          with --encrypted: store the key in plain text
                           (format --no_passphrase)
  --inject KIND=COUNT,...  faults to inject; kinds:
      missing_bp           drop an extent backpointer (ptr_to_missing_backpointer)
      dangling_bp          extra backpointer without extent (backpointer_to_missing_ptr)
      wrong_bp             backpointer with a wrong bucket_len (ptr_to_missing_backpointer
                           with got/want, and backpointer_to_missing_ptr)
      missing_alloc        backpointer in a bucket without alloc key (backpointer_to_missing_alloc)
      missing_device       backpointer for device nr_devices (backpointer_to_missing_device)
      wrong_dirty_sectors  wrong alloc dirty_sectors (alloc_key_dirty_sectors_wrong)
      missing_node_bp      drop a btree node backpointer (ptr_to_missing_backpointer, level >= 1)
      dup_bad_csum         second extent over the same sectors with a bad checksum
                           (dup_backpointer_to_bad_csum_extent)
      wrong_stripe_sectors wrong alloc stripe_sectors of a stripe data block
                           (alloc_key_stripe_sectors_wrong; needs --ec-stripes)
      wrong_parity_sectors wrong alloc dirty_sectors of a stripe parity block
                           (alloc_key_dirty_sectors_wrong; needs --ec-stripes)
      missing_stripe_bp    drop a stripe block backpointer (ptr_to_missing_backpointer,
                           btree stripes; needs --ec-stripes)
      wrong_stripe_blockcount  wrong block sector count in a stripe key
                           (stripe_sector_count_wrong; needs --ec-stripes)
      missing_lru          drop a bucket's fragmentation lru entry
                           (alloc_key_to_missing_lru_entry)
      freespace_hole       leave free buckets out of a freespace key
                           (freespace_hole_missing; one per device)
      wrong_accounting     a replicas counter one block too large
                           (accounting_mismatch; one)
      bp_past_end          backpointer in a bucket past the device's end
                           (backpointer_to_missing_alloc)
      alloc_past_end       alloc key of a bucket past the device's end
                           (alloc_key_to_missing_dev_bucket)

Example:
  bpcheck gen --out /tmp/fs --devices 2 --replicas 2 --device-size 64G \
      --extents 1000000 --inject missing_bp=3,dangling_bp=2
  bpcheck check --json /tmp/fs/dev0.img /tmp/fs/dev1.img
  bpcheck gen --out /tmp/enc --encrypted --passphrase-file pass.txt
  bpcheck check --passphrase-file pass.txt /tmp/enc/dev0.img

Exit codes: 0 written, 8 could not write, 16 usage error.
`

func runGen(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("gen", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.Usage = func() { fmt.Fprint(stderr, genUsage) }
	out := fl.String("out", "", "output directory")
	devices := fl.Int("devices", 1, "member devices")
	devSize := fl.String("device-size", "", "device size (default 1G, more when the extents need it)")
	bucketSize := fl.String("bucket-size", "", "bucket size")
	nodeSize := fl.String("btree-node-size", "", "btree node size")
	extents := fl.Int64("extents", 1000, "extents")
	extentSize := fl.String("extent-size", "8-128", "extent size range in sectors")
	perFile := fl.Int("extents-per-file", 4, "most extents per file")
	replicas := fl.Int("replicas", 1, "replicas")
	ecStripes := fl.Int("ec-stripes", 0, "erasure-coded stripes")
	seed := fl.Uint64("seed", 1, "seed")
	version := fl.String("metadata-version", gen.DefaultMetadataVersion, "metadata version: "+strings.Join(gen.MetadataVersions, ", "))
	inject := fl.String("inject", "", "faults: KIND=COUNT,...")
	encrypted := fl.Bool("encrypted", false, "encrypt the filesystem")
	passFile := fl.String("passphrase-file", "", "file whose first line seals the key")
	noPass := fl.Bool("no-passphrase", false, "store the key in plain text")
	shape := fl.String("shape", "", "shape: "+strings.Join(gen.Shapes, ", "))
	if code, ok := parseArgs(fl, args, stderr); !ok {
		return code
	}
	given := map[string]bool{}
	fl.Visit(func(f *flag.Flag) { given[f.Name] = true })
	// The real shape has defaults of its own for the options it sets:
	// they apply unless the option is given.
	keep := func(name string) bool { return *shape == "" || given[name] }
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "bpcheck gen: "+format+"\n", a...)
		return exitUsage
	}
	if *out == "" || fl.NArg() != 0 {
		fl.Usage()
		return exitUsage
	}
	p := gen.Params{Devices: *devices, Extents: *extents, Replicas: *replicas, ECStripes: *ecStripes, Seed: *seed, Shape: *shape}
	if keep("extents-per-file") {
		p.ExtentsPerFile = *perFile
	}
	if *version != gen.DefaultMetadataVersion {
		// The default stays implicit, so that 1.36 manifests are as
		// they were.
		p.MetadataVersion = *version
	}
	var err error
	if keep("device-size") && *devSize != "" {
		if p.DeviceSize, err = gen.ParseSize(*devSize); err != nil {
			return usageErr("--device-size: %v", err)
		}
	}
	if *bucketSize != "" {
		if p.BucketSize, err = gen.ParseSize(*bucketSize); err != nil {
			return usageErr("--bucket-size: %v", err)
		}
	}
	if *nodeSize != "" {
		if p.BtreeNodeSize, err = gen.ParseSize(*nodeSize); err != nil {
			return usageErr("--btree-node-size: %v", err)
		}
	}
	lo, hi, ok := strings.Cut(*extentSize, "-")
	if !ok {
		hi = lo
	}
	a, err1 := strconv.ParseUint(lo, 10, 32)
	b, err2 := strconv.ParseUint(hi, 10, 32)
	if err1 != nil || err2 != nil || a == 0 || b < a {
		return usageErr("--extent-size %q: want MIN-MAX sectors", *extentSize)
	}
	if keep("extent-size") {
		p.ExtentMin, p.ExtentMax = uint32(a), uint32(b)
	}
	if p.Inject, err = gen.ParseInject(*inject); err != nil {
		return usageErr("--inject: %v", err)
	}
	switch {
	case !*encrypted && (*passFile != "" || *noPass):
		return usageErr("--passphrase-file and --no-passphrase need --encrypted")
	case *encrypted && (*passFile != "") == *noPass:
		return usageErr("--encrypted needs --passphrase-file FILE or --no-passphrase")
	case *encrypted:
		p.Encrypted = true
		if *passFile != "" {
			b, err := os.ReadFile(*passFile)
			if err != nil {
				return usageErr("--passphrase-file: %v", err)
			}
			// The first line, as bpcheck check and bcachefs read it.
			line, _, _ := strings.Cut(string(b), "\n")
			clear(b)
			if line == "" {
				return usageErr("--passphrase-file %s: the first line is empty (use --no-passphrase for a key in plain text)", *passFile)
			}
			p.Passphrase = line
		}
	}
	full := p.WithDefaults()
	if err := full.Validate(); err != nil {
		return usageErr("%v", err)
	}
	start := time.Now()
	m, err := gen.Generate(*out, p)
	if err != nil {
		// No half-written filesystem is left behind: its images (regular
		// files only: a symlink the generator refused stays) and a
		// manifest of an earlier run, which no longer describes them.
		for i := range full.Devices {
			removeRegular(filepath.Join(*out, fmt.Sprintf("dev%d.img", i)))
		}
		removeRegular(filepath.Join(*out, "manifest.json"))
		if errors.Is(err, gen.ErrDeviceFull) {
			return usageErr("%v: give a larger --device-size (or fewer --extents)", err)
		}
		fmt.Fprintf(stderr, "bpcheck gen: %v\n", err)
		return exitOperational
	}
	el := time.Since(start)
	shapeNote := ""
	if full.Shape != "" {
		shapeNote = ", shape " + full.Shape
	}
	fmt.Fprintf(stdout, "wrote %s: metadata %s%s, %d device(s) of %d bytes, bucket %d, btree node %d; %d extents in %d files; %.2f s (%.0f extents/s)\n",
		*out, m.Version, shapeNote, full.Devices, full.DeviceSize, full.BucketSize, full.BtreeNodeSize, m.Extents, m.Inodes, el.Seconds(), float64(m.Extents)/el.Seconds())
	for _, name := range sortedKeys(m.Btrees) {
		c := m.Btrees[name]
		fmt.Fprintf(stdout, "  %-14s %10d keys %7d nodes, root level %d\n", name, c.Keys, c.Nodes, c.RootLevel)
	}
	if m.Params.Encrypted {
		how := "key stored in plain text"
		if m.KeySealed {
			how = "key sealed with the passphrase"
		}
		fmt.Fprintf(stdout, "encrypted (chacha20/poly1305), %s\n", how)
	}
	if len(m.Findings) > 0 {
		fmt.Fprintf(stdout, "injected %s: %d expected finding(s) in manifest.json\n", gen.InjectString(m.Injected), len(m.Findings))
	}
	return exitClean
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}

// removeRegular removes path if it is a regular file (never through or
// of a symlink).
func removeRegular(path string) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode().IsRegular() {
		os.Remove(path)
	}
}
