package pipeline_test

import (
	"context"
	"testing"

	"bpcheck/btreeio"
	"bpcheck/pipeline"
)

func TestZZProf(t *testing.T) {
	fs, err := btreeio.Open([]string{"/tmp/td/many-extents/dev0.img"})
	if err != nil {
		t.Fatal(err)
	}
	fs.LoadRoots()
	for i := 0; i < 60; i++ {
		if _, err := pipeline.Run(context.Background(), fs, pipeline.Options{Workers: 1}); err != nil {
			t.Fatal(err)
		}
	}
}
