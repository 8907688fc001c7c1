//go:build !linux

package ingress

import (
	"errors"
	"syscall"
)

// parker parks nothing outside Linux: every direction keeps its goroutine.
type parker struct{}

type parkedDir struct {
	p   *pipe
	dir int
}

func newParker() (*parker, error) { return nil, errors.New("parking needs epoll (Linux)") }

func (k *parker) start()                                         {}
func (k *parker) stop()                                          {}
func (k *parker) forget([2]uint64)                               {}
func (k *parker) park(syscall.RawConn, parkedDir, *uint64) error { return errors.New("no parking") }
