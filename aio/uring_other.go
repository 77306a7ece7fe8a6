//go:build !linux

package aio

import "errors"

type ring struct{ pool }

func newRing(Options) (*ring, error) {
	return nil, errors.New("io_uring is Linux only")
}
