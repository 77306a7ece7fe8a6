package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"bpcheck/pipeline"
)

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// progressDisplay shows a check's progress: a live line redrawn on a
// terminal, and one line on SIGUSR1 in any case. stop ends it and, when
// live, draws the final state.
func progressDisplay(p *pipeline.Progress, w io.Writer, live bool) (stop func()) {
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	quit := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		if !live {
			tick.Stop()
		}
		width := 0
		draw := func(final bool) {
			line := p.Snapshot().String()
			pad := ""
			for i := len(line); i < width; i++ {
				pad += " "
			}
			width = len(line)
			end := ""
			if final {
				end = "\n"
			}
			fmt.Fprintf(w, "\r%s%s%s", line, pad, end)
		}
		for {
			select {
			case <-tick.C:
				draw(false)
			case <-usr1:
				if live {
					draw(false)
				} else {
					fmt.Fprintln(w, p.Snapshot().String())
				}
			case <-quit:
				if live {
					draw(true)
				}
				return
			}
		}
	}()
	return func() {
		signal.Stop(usr1)
		close(quit)
		<-finished
	}
}
