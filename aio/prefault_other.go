//go:build !linux

package aio

// Prefault does nothing here (see the Linux version).
func Prefault[T any](s []T) {}
