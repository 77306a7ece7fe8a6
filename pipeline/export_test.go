package pipeline

import "context"

// SetDigestPlanning turns the planning of digest checks by their Digest
// shards' memory on or off, so that a test can give a digest check the
// passes of an exact one; the returned func restores the setting.
func SetDigestPlanning(on bool) (restore func()) {
	old := digestPlanning
	digestPlanning = on
	return func() { digestPlanning = old }
}

// SetRecheckLimit sets the memory a recheck may take (0: what the budget
// leaves), so that a test can cut a recheck into many parts; the returned
// func restores the setting.
func SetRecheckLimit(n int64) (restore func()) {
	old := recheckLimit
	recheckLimit = n
	return func() { recheckLimit = old }
}

// SetAccountingHooks holds the accounting read in read (called with the
// check's context before the read starts) and calls beforeWait once the
// passes are done, before Run waits for the read; the returned func
// restores them.
func SetAccountingHooks(read func(context.Context), beforeWait func()) (restore func()) {
	old := acctTestHooks
	acctTestHooks.read, acctTestHooks.beforeWait = read, beforeWait
	return func() { acctTestHooks = old }
}
