package recording

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/compress"
	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// Auditor receives the event attesting each stored chunk; *audit.Log is
// one.
type Auditor interface {
	Append(e audit.Event) uint64
}

// Options configure a Writer. Zero values take the defaults.
type Options struct {
	Store store.Store
	Audit Auditor
	// Node is the gateway node whose audit chain attests the chunks.
	Node string
	Log  *slog.Logger

	// RowsPerResult caps the rows (and COPY messages) kept of one
	// result; the rest are counted. Default DefaultRowsPerResult; a
	// negative value keeps none.
	RowsPerResult int
	// SessionBytes caps the row and COPY bytes kept of one session.
	// Default DefaultSessionBytes; a negative value keeps none.
	SessionBytes int64
	// A chunk closes at ChunkBytes (default 256 KiB before compression),
	// after ChunkAge (default 10 s), and when its session ends.
	ChunkBytes int
	ChunkAge   time.Duration
}

// Defaults.
const (
	DefaultRowsPerResult = 100
	DefaultSessionBytes  = 16 << 20
	defaultChunkBytes    = 256 << 10
	defaultChunkAge      = 10 * time.Second
)

// job is a closed chunk on its way to the store.
type job struct {
	sess    Session
	chunk   uint64
	created time.Time
	raw     []byte
	rows    int64
	// synced, when set, makes the job a barrier: closed once every
	// chunk before it is stored.
	synced chan struct{}
}

// Writer compresses, stores and attests the chunks of every session on a
// node, in one goroutine, in the order they close.
type Writer struct {
	opts Options
	log  *slog.Logger
	jobs chan job
	pool sync.Pool

	mu     sync.Mutex
	live   map[*Recorder]struct{}
	closed bool

	stop  chan struct{}
	swept chan struct{} // closed when the sweeper has stopped
	done  chan struct{} // closed when every job is stored
}

// NewWriter starts a node's writer.
func NewWriter(opts Options) (*Writer, error) {
	if opts.Store == nil || opts.Audit == nil {
		return nil, errors.New("recording: a store and an audit log are required")
	}
	if opts.RowsPerResult == 0 {
		opts.RowsPerResult = DefaultRowsPerResult
	}
	if opts.SessionBytes == 0 {
		opts.SessionBytes = DefaultSessionBytes
	}
	opts.RowsPerResult, opts.SessionBytes = max(opts.RowsPerResult, 0), max(opts.SessionBytes, 0)
	if opts.ChunkBytes <= 0 {
		opts.ChunkBytes = defaultChunkBytes
	}
	if opts.ChunkAge <= 0 {
		opts.ChunkAge = defaultChunkAge
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	w := &Writer{opts: opts, log: opts.Log, jobs: make(chan job, 64),
		live: map[*Recorder]struct{}{}, stop: make(chan struct{}), swept: make(chan struct{}), done: make(chan struct{})}
	if err := w.attestLeftovers(context.Background()); err != nil {
		return nil, err
	}
	go w.run()
	go w.sweep()
	return w, nil
}

// Start begins recording a session. It returns nil (which records
// nothing) once the writer is closed.
func (w *Writer) Start(s Session) *Recorder {
	if w == nil {
		return nil
	}
	r := &Recorder{w: w, sess: s}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.live[r] = struct{}{}
	return r
}

func (w *Writer) forget(r *Recorder) {
	w.mu.Lock()
	delete(w.live, r)
	w.mu.Unlock()
}

func (w *Writer) buffer() []byte {
	if b, ok := w.pool.Get().(*[]byte); ok {
		return (*b)[:0]
	}
	// Small at first: most sessions are short or idle, and append grows it.
	return make([]byte, 0, 2048)
}

func (w *Writer) submit(j job) { w.jobs <- j }

// sweep closes chunks older than ChunkAge, so an idle session's records
// reach the store.
func (w *Writer) sweep() {
	defer close(w.swept)
	t := time.NewTicker(min(w.opts.ChunkAge/2, time.Second))
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
		cut := time.Now().Add(-w.opts.ChunkAge)
		w.mu.Lock()
		live := make([]*Recorder, 0, len(w.live))
		for r := range w.live {
			live = append(live, r)
		}
		w.mu.Unlock()
		for _, r := range live {
			r.flushIfOlder(cut)
		}
	}
}

func (w *Writer) run() {
	defer close(w.done)
	var body []byte
	for j := range w.jobs {
		if j.synced != nil {
			close(j.synced)
			continue
		}
		body = compress.Encode(body, j.raw)
		w.store(j, body)
		raw := j.raw[:0]
		w.pool.Put(&raw)
	}
}

// store writes one chunk, retrying while the store fails, then attests it
// in the audit chain.
func (w *Writer) store(j job, body []byte) {
	ctx := context.Background()
	sum := sha256.Sum256(body)
	c := store.RecordingChunk{Session: j.sess.ID, Chunk: j.chunk, Node: w.opts.Node, Created: j.created, Body: body}
	for attempt := 0; ; attempt++ {
		err := w.opts.Store.PutRecordingChunk(ctx, c)
		if err == nil {
			break
		}
		if errors.Is(err, store.ErrConflict) || attempt >= 20 {
			w.log.Error("recording chunk lost", "session", j.sess.ID, "chunk", j.chunk, "err", err)
			return
		}
		w.log.Error("recording chunk not stored yet; retrying", "session", j.sess.ID, "chunk", j.chunk, "err", err)
		time.Sleep(min(time.Duration(attempt+1)*100*time.Millisecond, 2*time.Second))
	}
	seq := w.opts.Audit.Append(audit.Event{Type: audit.TypeRecording, Identity: j.sess.Identity, Session: j.sess.ID,
		Connection: j.sess.Connection, Protocol: j.sess.Protocol, Rows: j.rows,
		Chunk: j.chunk, Digest: hex.EncodeToString(sum[:]), Bytes: int64(len(body))})
	w.markAttested(ctx, j.sess.ID, j.chunk, seq)
}

func (w *Writer) markAttested(ctx context.Context, session string, chunk, seq uint64) {
	if err := w.opts.Store.MarkRecordingChunkAttested(ctx, session, chunk, seq); err != nil {
		// Only a restart reads the mark: it would attest the chunk again.
		w.log.Warn("recording chunk attested but not marked", "session", session, "chunk", chunk, "seq", seq, "err", err)
	}
}

// lateAttestation marks the event of a chunk attested by a later start.
const lateAttestation = "attested at restart: the chunk was stored just before the gateway stopped, and its event was lost"

// attestLeftovers attests the node's chunks stored without their event (the
// gateway stopped between the two), saying so in the event. A chunk whose
// event is in the log's tail is only marked.
func (w *Writer) attestLeftovers(ctx context.Context) error {
	left, err := w.opts.Store.UnattestedRecordingChunks(ctx, w.opts.Node)
	if err != nil || len(left) == 0 {
		return err
	}
	seen := map[chunkKey]uint64{}
	if last, err := w.opts.Store.LastAuditEvent(ctx, w.opts.Node); err == nil {
		tail, err := w.opts.Store.AuditEvents(ctx, w.opts.Node, last.Seq-min(last.Seq, 10_000), 0)
		if err != nil {
			return err
		}
		bodies := make([][]byte, len(tail))
		for i, e := range tail {
			bodies[i] = e.Body
		}
		for _, a := range Attestations(bodies, "") {
			seen[chunkKey{a.Session, a.Chunk}] = a.Seq
		}
	}
	for _, c := range left {
		seq, ok := seen[chunkKey{c.Session, c.Chunk}]
		if !ok {
			sum := sha256.Sum256(c.Body)
			seq = w.opts.Audit.Append(audit.Event{Type: audit.TypeRecording, Session: c.Session, Chunk: c.Chunk,
				Digest: hex.EncodeToString(sum[:]), Bytes: int64(len(c.Body)), Error: lateAttestation})
			w.log.Warn("recording chunk attested at restart", "session", c.Session, "chunk", c.Chunk, "seq", seq)
		}
		w.markAttested(ctx, c.Session, c.Chunk, seq)
	}
	return nil
}

// Sync waits until every chunk closed so far is stored and attested.
func (w *Writer) Sync() {
	if w == nil {
		return
	}
	done := make(chan struct{})
	w.mu.Lock()
	if w.closed { // Close stores everything itself
		w.mu.Unlock()
		return
	}
	w.submit(job{synced: done}) // under w.mu, so the queue is still open
	w.mu.Unlock()
	<-done
}

// Close closes the chunks of sessions still open, then waits until every
// chunk is stored and attested. Call it before closing the audit log.
func (w *Writer) Close() {
	if w == nil {
		return
	}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.closed = true
	live := make([]*Recorder, 0, len(w.live))
	for r := range w.live {
		live = append(live, r)
	}
	w.mu.Unlock()
	close(w.stop)
	<-w.swept
	// Closed recorders submit nothing more, and no new one starts.
	for _, r := range live {
		r.Close()
	}
	close(w.jobs)
	<-w.done
}
