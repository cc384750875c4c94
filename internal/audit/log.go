package audit

import (
	"bufio"

	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Log appends events to DIR/<node>.jsonl. Appends serialise into a shared
// buffer under a lock (no allocation per event); one writer flushes the
// buffer every FlushInterval, or sooner when it grows past flushBytes, and
// fsyncs it: many events share one write and one fsync (group commit).
type Log struct {
	node string
	path string
	log  *slog.Logger

	mu      sync.Mutex
	buf     []byte
	seq     uint64
	closed  bool
	kick    chan struct{}
	done    chan struct{}
	f       *os.File
	lastErr error
}

// FlushInterval bounds how long an appended event waits for its write.
const FlushInterval = 50 * time.Millisecond

const flushBytes = 256 << 10

// Open opens (or creates) the node's log in dir and resumes its sequence.
func Open(dir, node string, log *slog.Logger) (*Log, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	path := filepath.Join(dir, node+".jsonl")
	seq, err := lastSeq(path)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	l := &Log{node: node, path: path, log: log, seq: seq, f: f,
		kick: make(chan struct{}, 1), done: make(chan struct{})}
	go l.flusher()
	return l, nil
}

// Path is the log file.
func (l *Log) Path() string { return l.path }

// lastSeq reads the sequence number of the last complete line. A torn last
// line (a crash mid-write) is ignored and overwritten logically by the next
// sequence number; verify (audit issue) reports it.
func lastSeq(path string) (uint64, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("audit log: %w", err)
	}
	defer f.Close()
	var last uint64
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var e struct {
			Seq uint64 `json:"seq"`
		}
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Seq > last {
			last = e.Seq
		}
	}
	return last, sc.Err()
}

// Append adds an event, filling Seq, Time and Node.
func (l *Log) Append(e Event) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		l.log.Error("audit event after close", "type", e.Type, "session", e.Session)
		return
	}
	l.seq++
	e.Seq, e.Node = l.seq, l.node
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	l.buf = e.AppendJSON(l.buf)
	l.buf = append(l.buf, '\n')
	big := len(l.buf) >= flushBytes
	l.mu.Unlock()
	if big {
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
}

func (l *Log) flusher() {
	defer close(l.done)
	t := time.NewTicker(FlushInterval)
	defer t.Stop()
	var spare []byte
	for {
		select {
		case <-t.C:
		case <-l.kick:
		}
		l.mu.Lock()
		out := l.buf
		l.buf = spare[:0]
		closed := l.closed
		l.mu.Unlock()
		if len(out) > 0 {
			l.write(out)
		}
		spare = out
		if closed {
			return
		}
	}
}

func (l *Log) write(b []byte) {
	if _, err := l.f.Write(b); err != nil {
		l.fail(err)
		return
	}
	if err := l.f.Sync(); err != nil {
		l.fail(err)
	}
}

func (l *Log) fail(err error) {
	l.mu.Lock()
	l.lastErr = err
	l.mu.Unlock()
	l.log.Error("audit log write failed", "path", l.path, "err", err)
}

// Close flushes what is buffered and closes the file.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	select {
	case l.kick <- struct{}{}:
	default:
	}
	<-l.done
	err := l.f.Close()
	if l.lastErr != nil {
		return l.lastErr
	}
	return err
}

// ReadAll parses a log file's events, for tests and tools.
func ReadAll(r io.Reader) ([]map[string]any, error) {
	var out []map[string]any
	dec := json.NewDecoder(r)
	for {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, m)
	}
}
