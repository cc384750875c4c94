package recording

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/compress"
	"github.com/gatehouse-dev/gatehouse/internal/store"
)

var (
	ctx   = context.Background()
	quiet = slog.New(slog.NewTextHandler(io.Discard, nil))
)

// fixture is a writer on a real SQLite store and audit log.
type fixture struct {
	st  store.Store
	log *audit.Log
	w   *Writer
}

func newFixture(t testing.TB, opts Options) *fixture {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(ctx, "", dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := audit.NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	l, err := audit.Open(ctx, audit.Options{Dir: filepath.Join(dir, "audit"), Node: "n1", Store: st, Signer: signer, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	opts.Store, opts.Audit, opts.Node, opts.Log = st, l, "n1", quiet
	w, err := NewWriter(opts)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{st: st, log: l, w: w}
}

// finish closes the writer and returns the stored chunks and the audit
// log's attestations.
func (f *fixture) finish(t *testing.T) ([]store.RecordingChunk, []Attestation) {
	t.Helper()
	f.w.Close()
	f.log.Sync()
	chunks, err := f.st.RecordingChunks(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	bodies, _, err := audit.ReadStore(ctx, f.st, "n1")
	if err != nil {
		t.Fatal(err)
	}
	return chunks, Attestations(bodies, "")
}

func row(values ...string) []byte {
	b := make([][]byte, len(values))
	for i, v := range values {
		if v != "NULL" {
			b[i] = []byte(v)
		}
	}
	return AppendRow(nil, b...)
}

func TestRecordAndReplay(t *testing.T) {
	f := newFixture(t, Options{RowsPerResult: 3, ChunkBytes: 200})
	r := f.w.Start(Session{ID: "s1", Identity: "alice", Connection: "db", Protocol: "postgres"})
	r.Params(row("42", "NULL"))
	r.Statement("SELECT id, name FROM users WHERE id > $1", 7)
	r.Columns(row("id", "name"))
	for i := range 5 {
		r.Row(row(fmt.Sprint(i), "n\xff"))
	}
	r.Done(5, 1500*time.Microsecond, "", "")
	r.Statement("SELECT 1/0", 9)
	r.Done(0, time.Millisecond, "22012", "division by zero")
	r.Statement("SELECT 'never answered'", 11)
	r.Close()
	r.Row(row("after close")) // ignored

	chunks, att := f.finish(t)
	if len(chunks) < 2 {
		t.Fatalf("%d chunks at a 200-byte chunk size, want several", len(chunks))
	}
	if len(att) != len(chunks) {
		t.Fatalf("%d attestations for %d chunks", len(att), len(chunks))
	}
	if p := Check("n1", chunks, att); len(p) != 0 {
		t.Fatalf("untouched recording: %v", p)
	}
	got, err := Statements(chunks)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("%d statements, want 3: %+v", len(got), got)
	}
	s := got[0]
	if s.Ref != 7 || s.Text != "SELECT id, name FROM users WHERE id > $1" || !s.Done || s.Result != 5 || s.Duration != 1500*time.Microsecond {
		t.Errorf("first statement = %+v", s)
	}
	if len(s.Params) != 2 || *s.Params[0] != "42" || s.Params[1] != nil {
		t.Errorf("params = %v", s.Params)
	}
	if strings.Join(s.Columns, ",") != "id,name" || len(s.Rows) != 3 || s.Omitted != 2 {
		t.Errorf("columns %v, %d rows kept, %d omitted; want id,name, 3 and 2", s.Columns, len(s.Rows), s.Omitted)
	}
	if *s.Rows[2][0] != "2" || *s.Rows[2][1] != `\x6eff` {
		t.Errorf("row 3 = %q %q; non-UTF-8 bytes show as hex", *s.Rows[2][0], *s.Rows[2][1])
	}
	if e := got[1]; e.SQLState != "22012" || e.Error != "division by zero" || len(e.Rows) != 0 {
		t.Errorf("failed statement = %+v", e)
	}
	if n := got[2]; n.Done || n.Text != "SELECT 'never answered'" {
		t.Errorf("unanswered statement = %+v", n)
	}
	if !got[1].Time.After(got[0].Time) {
		t.Errorf("times not in order: %v then %v", got[0].Time, got[1].Time)
	}
}

func TestCheckNamesTampering(t *testing.T) {
	f := newFixture(t, Options{ChunkBytes: 100})
	r := f.w.Start(Session{ID: "s1"})
	for i := range 10 {
		r.Statement(fmt.Sprintf("SELECT %d", i), uint64(i))
		r.Done(1, time.Millisecond, "", "")
	}
	r.Close()
	chunks, att := f.finish(t)
	if len(chunks) < 3 {
		t.Fatalf("%d chunks, want at least 3", len(chunks))
	}
	tests := []struct {
		name   string
		edit   func([]store.RecordingChunk) []store.RecordingChunk
		reason string
		chunk  uint64
	}{
		{"modified", func(c []store.RecordingChunk) []store.RecordingChunk {
			c[1].Body = append([]byte(nil), c[1].Body...)
			c[1].Body[len(c[1].Body)-1] ^= 1
			return c
		}, "modified", 2},
		{"deleted", func(c []store.RecordingChunk) []store.RecordingChunk { return append(c[:2:2], c[3:]...) }, "missing", 3},
		{"inserted", func(c []store.RecordingChunk) []store.RecordingChunk {
			return append(c, store.RecordingChunk{Session: "s1", Chunk: 99, Node: "n1", Body: c[0].Body})
		}, "not in the audit log", 99},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.edit(append([]store.RecordingChunk(nil), chunks...))
			p := Check("n1", c, att)
			if len(p) != 1 || p[0].Chunk != tt.chunk || !strings.HasPrefix(p[0].Reason, tt.reason) {
				t.Fatalf("Check = %v, want chunk %d %s", p, tt.chunk, tt.reason)
			}
		})
	}
}

func TestIdleChunkClosesAfterChunkAge(t *testing.T) {
	f := newFixture(t, Options{ChunkAge: 200 * time.Millisecond})
	r := f.w.Start(Session{ID: "idle"})
	r.Statement("SELECT 1", 1)
	deadline := time.Now().Add(5 * time.Second)
	for {
		chunks, err := f.st.RecordingChunks(ctx, "idle")
		if err != nil {
			t.Fatal(err)
		}
		if len(chunks) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("an idle session's chunk did not reach the store within 5 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.Close()
	f.w.Close()
}

func TestCapsKeepNothingWhenNegative(t *testing.T) {
	f := newFixture(t, Options{RowsPerResult: -1})
	r := f.w.Start(Session{ID: "s"})
	r.Statement("SELECT 1", 1)
	r.Row(row("1"))
	r.Done(1, 0, "", "")
	r.Close()
	chunks, _ := f.finish(t)
	got, err := Statements(chunks)
	if err != nil || len(got) != 1 || len(got[0].Rows) != 0 || got[0].Omitted != 1 {
		t.Fatalf("Statements = %+v, %v; want the row counted, not kept", got, err)
	}
}

func TestNilRecorderRecordsNothing(t *testing.T) {
	var r *Recorder
	r.Statement("x", 1)
	r.Row([]byte{0, 0})
	r.Done(0, 0, "", "")
	r.Close()
	var w *Writer
	if w.Start(Session{ID: "s"}) != nil {
		t.Error("a nil writer started a recorder")
	}
}

func BenchmarkRecordStatement(b *testing.B) {
	f := newFixture(b, Options{})
	r := f.w.Start(Session{ID: "bench"})
	cols, one := row("abalance"), row("-4242")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		r.Statement("SELECT abalance FROM pgbench_accounts WHERE aid = 81234;", uint64(i))
		r.Columns(cols)
		r.Row(one)
		r.Done(1, 50*time.Microsecond, "", "")
	}
	r.Close()
	f.w.Close()
}

// FuzzStatements: whatever bytes a stored chunk holds (a tampered store,
// say), decoding returns statements or an error, never a panic.
func FuzzStatements(f *testing.F) {
	var seed []byte
	seed = appendHead(seed, kindHeader, 0, len(`{"session":"s","chunk":1}`))
	seed = append(seed, `{"session":"s","chunk":1}`...)
	seed = appendHead(seed, kindStatement, 5, 9)
	seed = append(seed, 1, 'S', 'E', 'L', 'E', 'C', 'T', ' ', '1')
	r := row("1", "NULL")
	seed = appendHead(seed, kindRow, 7, len(r))
	seed = append(seed, r...)
	seed = appendHead(seed, kindDone, 9, 6)
	seed = append(seed, 1, 100, 0, 0, 0, 0)
	f.Add(seed)
	f.Add([]byte("H\x00\x02{}"))
	enc, _ := zstd.NewWriter(nil)
	f.Fuzz(func(t *testing.T, raw []byte) {
		decode(raw)
		Statements([]store.RecordingChunk{{Session: "s", Chunk: 1, Body: compress.Encode(nil, raw)}})
		Statements([]store.RecordingChunk{{Session: "s", Chunk: 1, Body: enc.EncodeAll(raw, nil)}}) // written before S2
		Statements([]store.RecordingChunk{{Session: "s", Chunk: 1, Body: raw}})
	})
}

// TestChunkStoredBeforeACrashIsAttestedAtRestart: a chunk stored without
// its event (the gateway stopped between the two) is attested by the next
// writer, marked as late; one whose event made it is only marked.
func TestChunkStoredBeforeACrashIsAttestedAtRestart(t *testing.T) {
	f := newFixture(t, Options{})
	r := f.w.Start(Session{ID: "s1"})
	r.Statement("SELECT 1", 1)
	r.Close()
	f.w.Sync()
	// Stand-ins for the crash: a chunk whose event was lost, and one whose
	// event made it but whose mark did not.
	lost := store.RecordingChunk{Session: "s2", Chunk: 1, Node: "n1", Created: time.Now(), Body: []byte("lost event")}
	unmarked := store.RecordingChunk{Session: "s3", Chunk: 1, Node: "n1", Created: time.Now(), Body: []byte("unmarked")}
	for _, c := range []store.RecordingChunk{lost, unmarked} {
		if err := f.st.PutRecordingChunk(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	f.log.Append(audit.Event{Type: audit.TypeRecording, Session: "s3", Chunk: 1, Digest: "sha of unmarked"})
	f.w.Close()
	f.log.Sync() // a restart stores the journal's events before the writer starts

	w2, err := NewWriter(Options{Store: f.st, Audit: f.log, Node: "n1", Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	w2.Close()
	f.log.Sync()
	if left, err := f.st.UnattestedRecordingChunks(ctx, "n1"); err != nil || len(left) != 0 {
		t.Fatalf("after restart, unattested chunks %+v, %v", left, err)
	}
	bodies, _, err := audit.ReadStore(ctx, f.st, "n1")
	if err != nil {
		t.Fatal(err)
	}
	var late, s3 int
	for _, b := range bodies {
		if strings.Contains(string(b), `"session":"s2"`) && strings.Contains(string(b), lateAttestation) {
			late++
		}
		if strings.Contains(string(b), `"session":"s3"`) {
			s3++
		}
	}
	if late != 1 || s3 != 1 {
		t.Errorf("%d late attestations of s2 (want 1), %d events of s3 (want 1, not attested again)", late, s3)
	}
	chunks, err := f.st.RecordingChunks(ctx, "s2")
	if err != nil {
		t.Fatal(err)
	}
	if p := Check("n1", chunks, Attestations(bodies, "s2")); len(p) != 0 {
		t.Errorf("the late-attested chunk does not check: %v", p)
	}
}
