module bpcheck

go 1.26.0

require (
	github.com/cespare/xxhash/v2 v2.3.0
	golang.org/x/sync v0.24.0
	golang.org/x/sys v0.49.0
)

require github.com/klauspost/compress v1.20.3
