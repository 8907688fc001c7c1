package handover

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// OnSIGUSR2 starts a new process of argv with the sockets each time
// SIGUSR2 arrives, and sends its PID on handedOver (once: give it room for
// one) when one serves: then the caller tells its supervisor the new main
// PID, and drains.
// A new process that fails to start or to serve changes nothing. When stop
// ends (SIGTERM) while a new process starts, that process is killed: this
// one stops, and a process it started must not take over behind its
// supervisor's back. SIGUSR2 stays caught until run ends, so that one sent
// while this process drains is ignored rather than killing it.
func (s *Sockets) OnSIGUSR2(run, stop context.Context, argv []string, timeout time.Duration, logger *zap.Logger, handedOver chan<- int) {
	stop, cancel := context.WithCancel(stop)
	defer cancel()
	context.AfterFunc(run, cancel) // the process stops for another reason (its data path failed)
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGUSR2)
	defer signal.Stop(signals)
	done := false
	for {
		select {
		case <-run.Done():
			return
		case <-signals:
		}
		switch {
		case done:
			logger.Warn("SIGUSR2 ignored: this process has handed over and drains")
			continue
		case stop.Err() != nil:
			logger.Warn("SIGUSR2 ignored: this process is stopping")
			continue
		}
		logger.Info("SIGUSR2: starting a new process with the listening sockets")
		proc, err := s.Start(stop, argv, timeout)
		switch {
		case err != nil && stop.Err() != nil:
			logger.Warn("hand-over abandoned: this process is stopping", zap.Error(err))
		case err != nil:
			logger.Error("hand-over failed; this process keeps serving", zap.Error(err))
		default:
			logger.Info("the new process serves; this one stops accepting", zap.Int("pid", proc.Pid))
			done = true
			handedOver <- proc.Pid
		}
	}
}
