package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// Options configure a Log.
type Options struct {
	// Dir holds the node's journals.
	Dir   string
	Node  string
	Store store.Store
	// Signer signs checkpoints (see NewSigner).
	Signer note.Signer
	Log    *slog.Logger

	// JournalBytes sizes each of the two journal files (default 32 MiB).
	JournalBytes int
	// A checkpoint is signed every CheckpointEvery events (default 1000)
	// or CheckpointInterval (default 10 s), whichever comes first, when
	// there is something new, and at Close.
	CheckpointEvery    int
	CheckpointInterval time.Duration
	// FlushInterval bounds how long an event waits in the journal before
	// it moves to the store (default DefaultFlushInterval).
	FlushInterval time.Duration
}

// DefaultFlushInterval bounds how long an appended event waits before it
// moves from the journal to the store.
const DefaultFlushInterval = 250 * time.Millisecond

const (
	flushBytes   = 1 << 20 // move to the store sooner past this much
	syncInterval = time.Second
)

// Log is one node's audit log. Append is safe for concurrent use and cheap:
// it encodes the event, chains its hash and copies it into the journal
// under one lock. A single goroutine moves events to the store in batches,
// extends the Merkle tree and signs checkpoints.
type Log struct {
	opts Options
	log  *slog.Logger

	mu       sync.Mutex
	space    *sync.Cond // signalled when events reach the store
	seq      uint64
	prev     [32]byte
	scratch  []byte
	journals [2]*journal
	active   int
	// Events appended and not yet stored: bodies back to back.
	pending      []byte
	pendingEnds  []int
	pendingFirst uint64
	stored       uint64 // highest sequence number in the store
	signed       uint64 // size of the last checkpoint
	forceCP      bool   // Checkpoint asked for one
	closed       bool
	failed       error

	kick chan struct{}
	done chan struct{}

	owner   string    // this process's lease id
	leaseAt time.Time // last renewal (owned by the store goroutine after Open)

	// Owned by the store goroutine.
	leaves     leafHasher
	tree       *compact.Range
	checkpoint uint64 // size of the last checkpoint
	lastCP     time.Time
}

var rangeFactory = &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}

// appendFactory builds the writer's tree with hashChildren, which allocates
// only its result; verification keeps the library's hasher, so the two
// check each other.
var appendFactory = &compact.RangeFactory{Hash: hashChildren}

// hashChildren is RFC 6962's interior node hash, SHA-256(0x01 || l || r).
func hashChildren(l, r []byte) []byte {
	var in [1 + 2*sha256.Size]byte
	in[0] = 1
	copy(in[1:], l)
	copy(in[1+sha256.Size:], r)
	h := sha256.Sum256(in[:])
	return h[:]
}

// leafHasher computes RFC 6962 leaf hashes, SHA-256(0x00 || body), reusing
// one digest.
type leafHasher struct{ h hash.Hash }

var leafPrefix = []byte{0}

func (lh *leafHasher) hash(body []byte) []byte {
	if lh.h == nil {
		lh.h = sha256.New()
	}
	lh.h.Reset()
	lh.h.Write(leafPrefix)
	lh.h.Write(body)
	return lh.h.Sum(make([]byte, 0, sha256.Size))
}

// Open opens the node's log: it resumes the chain and the Merkle tree from
// the store, moves any events the journal holds beyond the store (a crash
// left them there) into the store, and signs a checkpoint for them.
func Open(ctx context.Context, opts Options) (*Log, error) {
	if opts.JournalBytes == 0 {
		opts.JournalBytes = 32 << 20
	}
	if opts.CheckpointEvery == 0 {
		opts.CheckpointEvery = 1000
	}
	if opts.CheckpointInterval == 0 {
		opts.CheckpointInterval = 10 * time.Second
	}
	if opts.FlushInterval == 0 {
		opts.FlushInterval = DefaultFlushInterval
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	l := &Log{opts: opts, log: opts.Log, kick: make(chan struct{}, 1), done: make(chan struct{}), owner: newOwner()}
	l.space = sync.NewCond(&l.mu)
	if err := l.acquireLease(ctx); err != nil {
		return nil, err
	}
	for i := range l.journals {
		j, err := openJournal(filepath.Join(opts.Dir, fmt.Sprintf("%s.journal.%d", opts.Node, i)), opts.JournalBytes)
		if err != nil {
			l.closeJournals()
			return nil, err
		}
		l.journals[i] = j
	}
	if err := l.resume(ctx); err != nil {
		l.closeJournals()
		return nil, err
	}
	go l.run()
	return l, nil
}

// resume restores the chain head and tree from the store, then recovers
// journalled events the store lacks.
func (l *Log) resume(ctx context.Context) error {
	st, node := l.opts.Store, l.opts.Node
	last, err := st.LastAuditEvent(ctx, node)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return fmt.Errorf("audit log: %w", err)
	default:
		l.seq, l.prev = last.Seq, sha256.Sum256(last.Body)
	}
	cps, err := st.AuditCheckpoints(ctx, node)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	l.tree = appendFactory.NewEmptyRange(0)
	if len(cps) > 0 {
		cp := cps[len(cps)-1]
		if l.tree, err = appendFactory.NewRange(0, cp.Size, splitHashes(cp.Frontier)); err != nil {
			return fmt.Errorf("audit log: checkpoint %d frontier: %w", cp.Size, err)
		}
		l.checkpoint = cp.Size
	}
	events, err := st.AuditEvents(ctx, node, l.tree.End(), 0)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	for _, e := range events {
		if err := l.tree.Append(l.leaves.hash(e.Body), nil); err != nil {
			return fmt.Errorf("audit log: %w", err)
		}
	}

	// Journalled events beyond the store: the chain must continue.
	recovered := l.recover()
	if len(recovered) > 0 {
		if err := st.AppendAuditEvents(ctx, recovered); err != nil {
			return fmt.Errorf("audit log: store recovered events: %w", err)
		}
		for _, e := range recovered {
			l.tree.Append(l.leaves.hash(e.Body), nil)
		}
		l.log.Warn("audit log recovered events from the journal", "node", node, "events", len(recovered), "last_seq", l.seq)
	}
	l.stored = l.seq
	for _, j := range l.journals {
		j.reset(l.seq + 1)
		if err := j.sync(len(j.mem)); err != nil {
			return err
		}
	}
	if l.tree.End() > l.checkpoint {
		return l.signCheckpoint(ctx)
	}
	return nil
}

// recover returns the journals' events that continue the chain after
// l.seq, advancing l.seq and l.prev. It stops at the first record that
// does not: a torn write, or a record already stored.
func (l *Log) recover() []store.AuditEvent {
	type run struct {
		base   uint64
		bodies [][]byte
	}
	var runs []run
	for _, j := range l.journals {
		if bodies, base := j.records(); len(bodies) > 0 {
			runs = append(runs, run{base, bodies})
		}
	}
	sort.Slice(runs, func(a, b int) bool { return runs[a].base < runs[b].base })
	var out []store.AuditEvent
	for _, r := range runs {
		for i, body := range r.bodies {
			seq := r.base + uint64(i)
			if seq <= l.seq {
				continue
			}
			var head eventHead
			if seq != l.seq+1 || json.Unmarshal(body, &head) != nil || head.Seq != seq || head.Prev != hex.EncodeToString(l.prev[:]) {
				return out
			}
			b := append([]byte(nil), body...)
			out = append(out, store.AuditEvent{Node: l.opts.Node, Seq: seq, Body: b})
			l.seq, l.prev = seq, sha256.Sum256(b)
		}
	}
	return out
}

// Append adds an event, filling Seq, Prev, Time and Node, and returns its
// sequence number. When it returns, the event survives the process being
// killed. When both journals hold events not yet stored, Append waits for
// the store rather than drop anything.
func (l *Log) Append(e Event) uint64 {
	l.mu.Lock()
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Node = l.opts.Node
	var j *journal
	for {
		if l.closed {
			l.mu.Unlock()
			l.log.Error("audit event after close", "type", e.Type, "session", e.Session)
			return 0
		}
		// Encode under the lock on every attempt: a wait below lets other
		// appends move the chain on.
		e.Seq, e.Prev = l.seq+1, l.prev
		l.scratch = e.AppendJSON(l.scratch[:0])
		var ok bool
		if j, ok = l.room(e.Seq, len(l.scratch)); ok || l.failed != nil {
			break
		}
		l.wake()
		l.space.Wait()
	}
	l.seq, l.prev = e.Seq, sha256.Sum256(l.scratch)
	if j != nil {
		j.append(e.Seq, l.scratch)
	}
	if len(l.pendingEnds) == 0 {
		l.pendingFirst = e.Seq
	}
	l.pending = append(l.pending, l.scratch...)
	l.pendingEnds = append(l.pendingEnds, len(l.pending))
	big := len(l.pending) >= flushBytes
	l.mu.Unlock()
	if big {
		l.wake()
	}
	return e.Seq
}

// room returns the journal event seq of n bytes goes into: the active one,
// or the other once every event it holds is stored (it is reset to start
// at seq). ok is false when neither has room yet. An event larger than an
// empty journal goes to the store alone (j is nil). Callers hold l.mu.
func (l *Log) room(seq uint64, n int) (j *journal, ok bool) {
	if j = l.journals[l.active]; j.fits(n) {
		return j, true
	}
	other := l.journals[1-l.active]
	if other.last > l.stored {
		return nil, false
	}
	other.reset(seq)
	l.active = 1 - l.active
	if !other.fits(n) {
		l.log.Error("audit event larger than the journal: only the store will hold it", "seq", seq, "bytes", n)
		return nil, true
	}
	return other, true
}

func (l *Log) wake() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// run moves events to the store and signs checkpoints until Close.
func (l *Log) run() {
	defer close(l.done)
	ctx := context.Background()
	t := time.NewTicker(l.opts.FlushInterval)
	defer t.Stop()
	var spare []byte
	var spareEnds []int
	lastSync := time.Now()
	l.lastCP = time.Now()
	for {
		select {
		case <-t.C:
		case <-l.kick:
		}
		l.mu.Lock()
		batch, ends, first := l.pending, l.pendingEnds, l.pendingFirst
		l.pending, l.pendingEnds = spare[:0], spareEnds[:0]
		closed, forced := l.closed, l.forceCP
		l.forceCP = false
		l.mu.Unlock()
		if len(ends) > 0 {
			l.store(ctx, batch, ends, first, closed)
		}
		spare, spareEnds = batch, ends
		due := l.tree.End() > l.checkpoint && (closed || forced ||
			l.tree.End()-l.checkpoint >= uint64(l.opts.CheckpointEvery) || time.Since(l.lastCP) >= l.opts.CheckpointInterval)
		if due {
			if err := l.signCheckpoint(ctx); err != nil {
				l.log.Error("audit checkpoint failed", "err", err)
			}
		}
		l.keepLease(ctx)
		if closed || time.Since(lastSync) >= syncInterval {
			var ends [2]int
			l.mu.Lock()
			for i, j := range l.journals {
				ends[i] = j.off + 8 // the last record and the end marker after it
			}
			l.mu.Unlock()
			for i, j := range l.journals {
				if err := j.sync(ends[i]); err != nil {
					l.log.Error("audit journal sync failed", "err", err)
				}
			}
			lastSync = time.Now()
		}
		if closed {
			l.releaseLease(ctx)
			return
		}
	}
}

// store writes one batch, retrying until it lands: the journal keeps the
// events meanwhile, and appends wait once both journals are full.
func (l *Log) store(ctx context.Context, batch []byte, ends []int, first uint64, closing bool) {
	events := make([]store.AuditEvent, len(ends))
	start := 0
	for i, end := range ends {
		events[i] = store.AuditEvent{Node: l.opts.Node, Seq: first + uint64(i), Body: batch[start:end]}
		start = end
	}
	for attempt := 0; ; attempt++ {
		err := l.opts.Store.AppendAuditEvents(ctx, events)
		if err == nil {
			break
		}
		l.log.Error("audit events not stored yet; the journal keeps them", "err", err, "first_seq", first, "events", len(events))
		if closing && attempt >= 3 {
			l.mu.Lock()
			l.failed = err
			l.space.Broadcast()
			l.mu.Unlock()
			return
		}
		time.Sleep(min(time.Duration(attempt+1)*100*time.Millisecond, 2*time.Second))
	}
	for _, e := range events {
		l.tree.Append(l.leaves.hash(e.Body), nil)
	}
	l.mu.Lock()
	l.stored = events[len(events)-1].Seq
	l.space.Broadcast()
	l.mu.Unlock()
}

// Close stores what is pending, signs a final checkpoint and closes the
// journals.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	l.wake()
	<-l.done
	err := l.closeJournals()
	if l.failed != nil {
		return l.failed
	}
	return err
}

func (l *Log) closeJournals() error {
	var err error
	for _, j := range l.journals {
		if j != nil {
			if cerr := j.close(); err == nil {
				err = cerr
			}
		}
	}
	return err
}

// Node is the node whose chain this is.
func (l *Log) Node() string { return l.opts.Node }

// Checkpoint stores every event appended so far and signs a checkpoint
// covering them, so an export or a proof needs no wait for the next
// scheduled one.
func (l *Log) Checkpoint() {
	l.mu.Lock()
	defer l.mu.Unlock()
	target := l.seq
	for l.signed < target && l.failed == nil && !l.closed {
		l.forceCP = true
		l.wake()
		l.space.Wait()
	}
}

// Sync waits until every event appended so far is in the store; tests and
// tools use it to read a settled log.
func (l *Log) Sync() {
	l.mu.Lock()
	defer l.mu.Unlock()
	target := l.seq
	for l.stored < target && l.failed == nil && !l.closed {
		l.wake()
		l.space.Wait()
	}
}
