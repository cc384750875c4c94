// Command relayfloor is the cheapest user-space TCP relay we know how to
// write in Go: one OS thread, one level-triggered epoll set, one read and one
// write per readiness, raw system calls, no parsing, no audit, no policy. It
// measures the floor under any proxy on a machine: bench/pgbench.sh runs it
// as the "floor" path (PATHS="direct pgbouncer gatehouse floor").
//
// It is a measuring instrument, not a product: it never buffers for a slow
// reader (a write that would block is retried at once), and its blocking
// epoll_wait bypasses the Go scheduler, so a garbage collection may wait for
// up to one poll timeout (10 ms).
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"runtime"
	"syscall"
	"unsafe"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on (loopback only)")
	target := flag.String("target", "", "address to relay to")
	flag.Parse()
	if *target == "" {
		log.Fatal("relayfloor: -target is required")
	}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(l.Addr())
	epfd, err := syscall.EpollCreate1(0)
	if err != nil {
		log.Fatal(err)
	}
	pairs := make(chan [2]int, 64)
	go accept(l, *target, epfd, pairs)
	runtime.LockOSThread()
	relay(epfd, pairs)
}

// accept dials the target for each client and hands both descriptors to the
// relay loop. The *os.File values are kept so no finalizer closes them.
func accept(l net.Listener, target string, epfd int, pairs chan<- [2]int) {
	var keep []*os.File
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		t, err := net.Dial("tcp", target)
		if err != nil {
			c.Close()
			continue
		}
		cf, err1 := c.(*net.TCPConn).File()
		tf, err2 := t.(*net.TCPConn).File()
		c.Close()
		t.Close()
		if err1 != nil || err2 != nil {
			continue
		}
		keep = append(keep, cf, tf)
		a, b := int(cf.Fd()), int(tf.Fd())
		for _, fd := range []int{a, b} {
			syscall.SetNonblock(fd, true)
			syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
		}
		pairs <- [2]int{a, b}
		for _, fd := range []int{a, b} {
			syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, fd, &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(fd)})
		}
	}
}

func relay(epfd int, pairs <-chan [2]int) {
	peer := map[int]int{}
	events := make([]syscall.EpollEvent, 128)
	buf := make([]byte, 64<<10)
	for {
		for more := true; more; {
			select {
			case p := <-pairs:
				peer[p[0]], peer[p[1]] = p[1], p[0]
			default:
				more = false
			}
		}
		r, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(epfd),
			uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 10, 0, 0)
		if e != 0 {
			continue
		}
		for _, ev := range events[:int(r)] {
			fd := int(ev.Fd)
			p, ok := peer[fd]
			if !ok {
				continue
			}
			n, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
			if e == syscall.EAGAIN {
				continue
			}
			if e != 0 || n == 0 {
				syscall.Close(fd)
				syscall.Close(p)
				delete(peer, fd)
				delete(peer, p)
				continue
			}
			for off := uintptr(0); off < n; {
				w, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(p), uintptr(unsafe.Pointer(&buf[off])), n-off)
				if e == syscall.EAGAIN {
					continue
				}
				if e != 0 {
					break
				}
				off += w
			}
		}
	}
}
