package postgres

import (
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
)

// blockingSocket reads and writes a TCP socket with blocking system calls
// on the calling goroutine's thread, bypassing Go's network poller. A
// relay direction waits in read(2) and the kernel wakes exactly that thread
// when bytes arrive: no epoll round, no EAGAIN read after every message, no
// goroutine park and unpark. Measured in bench/: see docs/benchmarks.md.
// The price is one OS thread per blocked direction, so it is used only for
// relaying established sessions.
type blockingSocket struct {
	conn net.Conn // keeps the fd alive and owns closing it
	fd   int
	once sync.Once
}

// newBlockingSocket switches c's socket to blocking mode. It returns nil
// when c is not a plain TCP connection.
func newBlockingSocket(c net.Conn) *blockingSocket {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	var fd int
	var serr error
	if err := rc.Control(func(f uintptr) {
		fd = int(f)
		serr = syscall.SetNonblock(fd, false)
	}); err != nil || serr != nil {
		return nil
	}
	return &blockingSocket{conn: c, fd: fd}
}

func (b *blockingSocket) Read(p []byte) (int, error) {
	for {
		n, err := syscall.Read(b.fd, p)
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case err != nil:
			return 0, err
		case n == 0 && len(p) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

func (b *blockingSocket) Write(p []byte) (int, error) {
	written := 0
	for written < len(p) {
		n, err := syscall.Write(b.fd, p[written:])
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return written, err
		}
		written += n
	}
	return written, nil
}

// Close wakes any thread blocked in read(2) (shutdown does; close alone
// does not on Linux) and then closes the connection.
func (b *blockingSocket) Close() error {
	var err error
	b.once.Do(func() {
		syscall.Shutdown(b.fd, syscall.SHUT_RDWR)
		err = b.conn.Close()
	})
	return err
}
