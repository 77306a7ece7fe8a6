package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"bpcheck/btreeio"
	"bpcheck/pipeline"
)

func main() {
	t0 := time.Now()
	fs, err := btreeio.Open(os.Args[1:])
	if err != nil {
		panic(err)
	}
	if err := fs.LoadRoots(); err != nil {
		panic(err)
	}
	fmt.Println("open", time.Since(t0))
	for i := 0; i < 5; i++ {
		t := time.Now()
		res, err := pipeline.Run(context.Background(), fs, pipeline.Options{Workers: 2, Prefetch: 8, Async: true})
		if err != nil {
			panic(err)
		}
		fmt.Printf("run %d: %v %+v\n", i, time.Since(t), res.Phases)
	}
}
