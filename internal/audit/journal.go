package audit

import (
	"encoding/binary"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// journal is the write-ahead half of the log: a preallocated file mapped
// into memory. Appending an event copies it into the mapping, which the
// kernel owns from that moment, so the event survives the gateway being
// killed (kill -9) without a system call per event; a power loss is covered
// by the periodic fsync and by the store. Events leave the journal for the
// store in batches; a journal whose events are all stored is reset.
//
// Layout: an 16-byte header (magic, then the sequence number of the first
// record), then records of a 4-byte big-endian length and the event's
// canonical body. A zero length ends the records.
type journal struct {
	path string
	f    *os.File
	mem  []byte
	off  int    // end of the last record
	base uint64 // sequence number of the first record
	last uint64 // sequence number of the last record (0: none)
}

const (
	journalMagic  = "GHJOURN1"
	journalHeader = 16
)

func openJournal(path string, size int) (*journal, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit journal: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("audit journal: %w", err)
	}
	if st.Size() < int64(size) {
		if err := f.Truncate(int64(size)); err != nil {
			f.Close()
			return nil, fmt.Errorf("audit journal: %w", err)
		}
	} else {
		size = int(st.Size())
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("audit journal: mmap %s: %w", path, err)
	}
	j := &journal{path: path, f: f, mem: mem, off: journalHeader}
	if string(mem[:8]) == journalMagic {
		j.base = binary.BigEndian.Uint64(mem[8:16])
	}
	return j, nil
}

// records returns the journal's records in order, with their sequence
// numbers (base, base+1, …), stopping at the end marker or at a record that
// does not fit. The bodies alias the mapping.
func (j *journal) records() (bodies [][]byte, base uint64) {
	if string(j.mem[:8]) != journalMagic {
		return nil, 0
	}
	off := journalHeader
	for off+4 <= len(j.mem) {
		n := int(binary.BigEndian.Uint32(j.mem[off:]))
		if n == 0 || off+4+n > len(j.mem) {
			break
		}
		bodies = append(bodies, j.mem[off+4:off+4+n])
		off += 4 + n
	}
	return bodies, j.base
}

// reset empties the journal; the next record appended has sequence number
// base.
func (j *journal) reset(base uint64) {
	copy(j.mem[:8], journalMagic)
	binary.BigEndian.PutUint64(j.mem[8:16], base)
	binary.BigEndian.PutUint32(j.mem[journalHeader:], 0)
	j.off, j.base, j.last = journalHeader, base, 0
}

// fits reports whether a body of n bytes fits.
func (j *journal) fits(n int) bool { return j.off+4+n+4 <= len(j.mem) }

// append copies one record in. The end marker after it is written before
// the length, so a reader never sees a length without its body.
func (j *journal) append(seq uint64, body []byte) {
	at := j.off
	copy(j.mem[at+4:], body)
	binary.BigEndian.PutUint32(j.mem[at+4+len(body):], 0)
	binary.BigEndian.PutUint32(j.mem[at:], uint32(len(body)))
	j.off = at + 4 + len(body)
	j.last = seq
}

// sync flushes the mapping's first end bytes, which hold its records, to
// disk (power-loss durability); the rest holds nothing current.
func (j *journal) sync(end int) error {
	page := os.Getpagesize()
	end = min((end+page-1)/page*page, len(j.mem))
	if err := unix.Msync(j.mem[:end], unix.MS_SYNC); err != nil {
		return fmt.Errorf("audit journal: msync: %w", err)
	}
	return nil
}

func (j *journal) close() error {
	err := syscall.Munmap(j.mem)
	if cerr := j.f.Close(); err == nil {
		err = cerr
	}
	return err
}
