package recording

import (
	"encoding/binary"
	"encoding/json"
	"sync"
	"time"
)

// Session names what a recording belongs to.
type Session struct {
	ID         string
	Identity   string
	Connection string
	Protocol   string
}

// Recorder records one session. Its methods are safe for concurrent use
// (an engine records the client's messages and the target's from two
// goroutines) and do nothing on a nil *Recorder, so an engine calls them
// unconditionally. Nothing is allocated per record.
type Recorder struct {
	w    *Writer
	sess Session

	mu     sync.Mutex
	buf    []byte        // the open chunk's records; nil when none is open
	opened time.Time     // when the open chunk began
	last   time.Duration // time of the previous record, since opened
	chunk  uint64        // number of the open (or last) chunk
	rows   int64         // rows of the statements finished in the open chunk
	// Caps: rows kept in the current result, row bytes kept in the
	// session, and what went unkept since the last result.
	resultRows          int
	keptBytes           int64
	omitRows, omitBytes int64
	closed              bool
}

// Statement records a statement the client sent; ref is the sequence
// number of the audit event that decided it.
func (r *Recorder) Statement(text string, ref uint64) {
	if r == nil {
		return
	}
	var refBuf [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(refBuf[:], ref)
	r.mu.Lock()
	if b, ok := r.head(kindStatement, n+len(text)); ok {
		b = append(b, refBuf[:n]...)
		r.buf = append(b, text...)
		r.full()
	}
	r.mu.Unlock()
}

// Params records the parameter values the client bound (row layout).
func (r *Recorder) Params(values []byte) { r.data(kindParams, values, false) }

// Columns records the names of a result's columns (row layout); the
// per-result row cap starts again.
func (r *Recorder) Columns(names []byte) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.resultRows = 0
	r.put(kindColumns, names)
	r.mu.Unlock()
}

// Row records one result row (row layout), within the caps.
func (r *Recorder) Row(values []byte) { r.data(kindRow, values, true) }

// CopyOut records COPY data sent to the client, within the caps.
func (r *Recorder) CopyOut(data []byte) { r.data(kindCopyOut, data, true) }

// CopyIn records COPY data the client sent, within the caps.
func (r *Recorder) CopyIn(data []byte) { r.data(kindCopyIn, data, true) }

// Omit counts a row of n bytes that was not recorded (one too large to be
// seen whole, say).
func (r *Recorder) Omit(n int) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.omitRows++
	r.omitBytes += int64(n)
	r.mu.Unlock()
}

func (r *Recorder) data(kind byte, p []byte, capped bool) {
	if r == nil {
		return
	}
	r.mu.Lock()
	if capped {
		opts := &r.w.opts
		if r.resultRows >= opts.RowsPerResult || r.keptBytes+int64(len(p)) > opts.SessionBytes {
			r.omitRows++
			r.omitBytes += int64(len(p))
			r.mu.Unlock()
			return
		}
		r.resultRows++
		r.keptBytes += int64(len(p))
	}
	r.put(kind, p)
	r.mu.Unlock()
}

// put records p as one record of kind. Callers hold r.mu.
func (r *Recorder) put(kind byte, p []byte) {
	if b, ok := r.head(kind, len(p)); ok {
		r.buf = append(b, p...)
		r.full()
	}
}

// Done records the result of the oldest statement not yet finished.
func (r *Recorder) Done(rows int64, d time.Duration, sqlstate, errMsg string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.omitRows > 0 {
		var p [2 * binary.MaxVarintLen64]byte
		n := binary.PutUvarint(p[:], uint64(r.omitRows))
		n += binary.PutUvarint(p[n:], uint64(r.omitBytes))
		if b, ok := r.head(kindOmitted, n); ok {
			r.buf = append(b, p[:n]...)
		}
		r.omitRows, r.omitBytes = 0, 0
	}
	var nums [2 * binary.MaxVarintLen64]byte
	n := binary.PutUvarint(nums[:], uint64(max(rows, 0)))
	n += binary.PutUvarint(nums[n:], uint64(max(d, 0)))
	size := n + uvarintLen(len(sqlstate)) + len(sqlstate) + uvarintLen(len(errMsg)) + len(errMsg)
	b, ok := r.head(kindDone, size)
	if !ok {
		return
	}
	b = append(b, nums[:n]...)
	b = appendString(b, sqlstate)
	r.buf = appendString(b, errMsg)
	r.rows += rows
	r.resultRows = 0
	r.full()
}

func uvarintLen(n int) int {
	l := 1
	for ; n >= 0x80; n >>= 7 {
		l++
	}
	return l
}

// head opens a chunk if none is open and starts a record of n payload
// bytes. ok is false once the recorder is closed. Callers hold r.mu.
func (r *Recorder) head(kind byte, n int) ([]byte, bool) {
	if r.closed {
		return nil, false
	}
	if r.buf == nil {
		r.open()
	}
	// The monotonic clock alone: cheaper than the wall clock time.Now
	// also reads.
	now := time.Since(r.opened)
	b := appendHead(r.buf, kind, now-r.last, n)
	r.last = now
	return b, true
}

func (r *Recorder) open() {
	now := time.Now()
	r.chunk++
	r.opened, r.last, r.rows = now, 0, 0
	h, _ := json.Marshal(header{Session: r.sess.ID, Chunk: r.chunk, Start: now.UTC(), Node: r.w.opts.Node,
		Protocol: r.sess.Protocol, Identity: r.sess.Identity, Connection: r.sess.Connection})
	b := appendHead(r.w.buffer(), kindHeader, 0, len(h))
	r.buf = append(b, h...)
}

// full hands the chunk to the writer once it reaches the chunk size.
// Callers hold r.mu.
func (r *Recorder) full() {
	if len(r.buf) >= r.w.opts.ChunkBytes {
		r.flush()
	}
}

// flush closes the open chunk, if any. Callers hold r.mu.
func (r *Recorder) flush() {
	if r.buf == nil {
		return
	}
	r.w.submit(job{sess: r.sess, chunk: r.chunk, created: r.opened, raw: r.buf, rows: r.rows})
	r.buf = nil
}

// flushIfOlder closes the open chunk when it began before t.
func (r *Recorder) flushIfOlder(t time.Time) {
	r.mu.Lock()
	if r.buf != nil && r.opened.Before(t) {
		r.flush()
	}
	r.mu.Unlock()
}

// Close closes the last chunk; the recorder records nothing more.
func (r *Recorder) Close() {
	if r == nil {
		return
	}
	r.mu.Lock()
	if !r.closed {
		r.flush()
		r.closed = true
	}
	r.mu.Unlock()
	r.w.forget(r)
}
