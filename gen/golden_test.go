package gen

import (
	"encoding/hex"
	"testing"
)

// golden136 are the sha256 sums of the images and manifests of metadata
// version 1.36 as the generator wrote them before other versions were
// added: 1.36 output must stay byte-identical. One deliberate change since:
// 2dev-r2-faults' dev_data_type user fragmentation now clamps each bucket
// at 0 (a duplicate-extent fault fills one past its size), as the kernel
// sums it and as bpcheck's accounting check found it.
var golden136 = []struct {
	name string
	p    Params
	sums map[string]string
}{
	{"1dev", Params{DeviceSize: 64 << 20, Extents: 1200, Seed: 11}, map[string]string{
		"dev0.img":      "b0fe5b46c9feb952ef3dfcd4264c0e9825c3ec4cd023776581b3adb5b0aebcde",
		"manifest.json": "df4e4cfe467087fa0887a9f13880f59c5d7febc32f293d2f0ec0e1fe3736a5b7",
	}},
	{"2dev-r2-faults", Params{Devices: 2, Replicas: 2, DeviceSize: 64 << 20, Extents: 1500, ExtentMax: 32, BtreeNodeSize: 8192, Seed: 5, Inject: allFaults}, map[string]string{
		"dev0.img":      "51c46fce07c29f993656241a28c7a7eda5caff7551cee75f890d109df37f79c7",
		"dev1.img":      "737a647e7d4aa0db8326f328c571cd5d56c335914d58ee872c72c945544a69f5",
		"manifest.json": "367d5ec15db4f310a63fc837e3bc648e399742dfeb7a4f9b7347d5e2f1f39037",
	}},
	{"4dev-ec-faults", Params{Devices: 4, DeviceSize: 64 << 20, BtreeNodeSize: 16 << 10, Extents: 1500, ExtentMax: 64, ECStripes: 6, Seed: 8,
		Inject: withFaults(allFaults, map[string]int{KindWrongStripeSectors: 1, KindWrongParitySectors: 1, KindMissingStripeBP: 1, KindWrongStripeBlockCount: 1})}, map[string]string{
		"dev0.img":      "cff109852a9923ec8e89afaea2eec831d3d9f8f20b767d86f0697b66117f7a68",
		"dev1.img":      "a04f69456313a8df6cde4ca244ba24bcd3bcd395ffd4456464c7cc598c993659",
		"dev2.img":      "16613f43b301ff4c432406e163bfbcac3649771b2de7c5c5bb52696ce9d13c3b",
		"dev3.img":      "8dcfb61c971a702a6b2fbb35299a8109c3796eb33dab497481d957ffc7591692",
		"manifest.json": "a347b44cf14b0930d37e584795a2bae6f0480d31e0f998e2c78b867d7a2374cb",
	}},
}

func TestGolden136(t *testing.T) {
	for _, c := range golden136 {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := Generate(dir, c.p); err != nil {
				t.Fatal(err)
			}
			for name, h := range hashDir(t, dir) {
				got := hex.EncodeToString(h[:])
				t.Logf("%q: %q,", name, got)
				if want, ok := c.sums[name]; !ok || want != got {
					t.Errorf("%s: sha256 %s, want %s", name, got, want)
				}
			}
		})
	}
}
