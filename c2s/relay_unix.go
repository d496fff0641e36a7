//go:build unix

package c2s

import "syscall"

// canPeek says that peek works here.
const canPeek = true

// peek reports whether a read of the socket fd would not block: bytes are
// waiting, the peer closed, or the socket failed. It consumes nothing.
func peek(fd uintptr, b []byte) bool {
	for {
		_, _, err := syscall.Recvfrom(int(fd), b, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		return true
	}
}
