//go:build linux

package dnsstub

import "syscall"

// readBatchFlags makes recvmmsg return once one datagram is in.
const readBatchFlags = syscall.MSG_WAITFORONE
