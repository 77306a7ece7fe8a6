//go:build !linux

package aio

import "os"

// oDirect is O_DIRECT where the platform has it; elsewhere the tests open
// the file normally and only check alignment.
const oDirect = os.O_SYNC
