//go:build !linux

package dnsstub

// readBatchFlags: elsewhere ReadBatch reads one datagram a call.
const readBatchFlags = 0
