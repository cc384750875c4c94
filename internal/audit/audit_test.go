package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/gatehouse-dev/gatehouse/internal/store"
)

var (
	quiet = slog.New(slog.NewTextHandler(logOut(), nil))
	ctx   = context.Background()
)

func TestAppendJSONIsValidAndEscaped(t *testing.T) {
	tests := []struct{ name, command string }{
		{"plain", "SELECT 1"},
		{"quotes and newlines", "SELECT '\"x\"'\n\t-- \\ comment\r"},
		{"control bytes", "a\x00b\x1fc\x7f"},
		{"invalid utf-8", "SELECT '\xff\xfe'"},
		{"unicode", "SELECT 'héllo ✓'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := Event{Seq: 7, Time: time.Date(2026, 11, 22, 1, 2, 3, 456789, time.UTC), Type: TypeResult, Command: tt.command, Rows: 3, Duration: 1500 * time.Microsecond}
			e.Prev[0] = 0xab
			var m map[string]any
			b := e.AppendJSON(nil)
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatalf("AppendJSON produced invalid JSON %q: %v", b, err)
			}
			want := tt.command
			if tt.name == "invalid utf-8" {
				want = "SELECT '\ufffd\ufffd'"
			}
			if m["command"] != want || m["seq"] != float64(7) || m["rows"] != float64(3) || m["duration_us"] != float64(1500) ||
				m["time"] != "2026-11-22T01:02:03.000456789Z" || m["v"] != float64(Version) || !strings.HasPrefix(m["prev"].(string), "ab00") {
				t.Errorf("decoded %v", m)
			}
		})
	}
}

func TestAppendJSONDoesNotAllocate(t *testing.T) {
	e := Event{Type: TypeCommand, Identity: "alice", Session: "s", Connection: "db", Command: "SELECT abalance FROM pgbench_accounts WHERE aid = 1", Time: time.Now()}
	buf := make([]byte, 0, 4096)
	if n := testing.AllocsPerRun(100, func() { buf = e.AppendJSON(buf[:0]) }); n != 0 {
		t.Errorf("AppendJSON allocates %.0f times per event", n)
	}
}

// fixture is a log on a fresh SQLite store, with its key.
type fixture struct {
	dir      string
	st       store.Store
	key      ed25519.PrivateKey
	verifier note.Verifier
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(ctx, "", dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	v, err := NewVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{dir: dir, st: st, key: key, verifier: v}
}

func (f *fixture) open(t testing.TB, opts Options) *Log {
	t.Helper()
	s, err := NewSigner(f.key)
	if err != nil {
		t.Fatal(err)
	}
	opts.Dir, opts.Node, opts.Store, opts.Signer, opts.Log = filepath.Join(f.dir, "audit"), "node1", f.st, s, quiet
	l, err := Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// verify reads the node's log from the store and verifies it.
func (f *fixture) verify(t testing.TB) Report {
	t.Helper()
	bodies, cps := f.read(t)
	return Verify("node1", bodies, cps, f.verifier)
}

func (f *fixture) read(t testing.TB) ([][]byte, []string) {
	t.Helper()
	bodies, cps, err := ReadStore(ctx, f.st, "node1")
	if err != nil {
		t.Fatal(err)
	}
	return bodies, cps
}

func TestLogChainsAcrossRestartsAndConcurrency(t *testing.T) {
	f := newFixture(t)
	l := f.open(t, Options{CheckpointEvery: 100})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				l.Append(Event{Type: TypeCommand, Command: "x"})
			}
		}()
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = f.open(t, Options{})
	if seq := l.Append(Event{Type: TypeSessionClose}); seq != 801 {
		t.Errorf("first event after restart has seq %d, want 801", seq)
	}
	l.Close()
	r := f.verify(t)
	if !r.OK() || r.Events != 801 || r.Signed != 801 || r.Checkpoints < 2 {
		t.Fatalf("verify = %v (%+v)", r, r)
	}
	if st, _ := os.Stat(filepath.Join(f.dir, "audit", "node1.journal.0")); st.Mode().Perm() != 0o600 {
		t.Errorf("journal mode %v, want 0600", st.Mode().Perm())
	}
}

// TestVerifyNamesTampering tampers with the stored log each way and checks
// verify names the first bad event and why. The log is stored as five rows
// of four events (1–4, 5–8, 9–12, 13–16, 17–20) with checkpoints at 8, 16
// and 20.
func TestVerifyNamesTampering(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(db *sql.DB) error
		kind   string
		seq    uint64
	}{
		{"edit a field", func(db *sql.DB) error {
			_, err := db.Exec(`UPDATE audit_events SET body = replace(body, '"command":"stmt 10"', '"command":"stmt 99"') WHERE seq = 9`)
			return err
		}, ProblemModified, 10},
		{"delete a row", func(db *sql.DB) error {
			_, err := db.Exec(`DELETE FROM audit_events WHERE seq = 5`)
			return err
		}, ProblemDeleted, 5},
		{"insert an event", func(db *sql.DB) error {
			// A forged event 7, chained to event 6, slipped in before the
			// real one.
			var body string
			db.QueryRow(`SELECT body FROM audit_events WHERE seq = 5`).Scan(&body)
			lines := strings.Split(body, "\n")
			sum := sha256.Sum256([]byte(lines[1]))
			forged := strings.Replace(lines[2], `"command":"stmt 7"`, `"command":"forged"`, 1)
			forged = forged[:strings.Index(forged, `"prev":"`)+8] + hex.EncodeToString(sum[:]) + forged[strings.Index(forged, `"prev":"`)+8+64:]
			lines = append(lines[:2], append([]string{forged}, lines[2:]...)...)
			_, err := db.Exec(`UPDATE audit_events SET body = ?, last_seq = last_seq + 1 WHERE seq = 5`, strings.Join(lines, "\n"))
			return err
		}, ProblemInserted, 7},
		{"swap two rows", func(db *sql.DB) error {
			var a, b string
			db.QueryRow(`SELECT body FROM audit_events WHERE seq = 9`).Scan(&a)
			db.QueryRow(`SELECT body FROM audit_events WHERE seq = 13`).Scan(&b)
			if _, err := db.Exec(`UPDATE audit_events SET body = ? WHERE seq = 9`, b); err != nil {
				return err
			}
			_, err := db.Exec(`UPDATE audit_events SET body = ? WHERE seq = 13`, a)
			return err
		}, ProblemReordered, 9},
		{"truncate the tail", func(db *sql.DB) error {
			_, err := db.Exec(`DELETE FROM audit_events WHERE seq >= 13`)
			return err
		}, ProblemTailMissing, 13},
		{"flip a bit of a compressed run", func(db *sql.DB) error {
			var z []byte
			db.QueryRow(`SELECT zbody FROM audit_events WHERE seq = 13`).Scan(&z)
			z[len(z)/2] ^= 1
			_, err := db.Exec(`UPDATE audit_events SET zbody = ? WHERE seq = 13`, z)
			return err
		}, ProblemModified, 13},
		{"corrupt a checkpoint signature", func(db *sql.DB) error {
			var n string
			db.QueryRow(`SELECT note FROM audit_checkpoints ORDER BY size LIMIT 1`).Scan(&n)
			i := strings.LastIndex(n, " ") + 5
			bad := n[:i] + string(rune('A'+(n[i]-'A'+1)%26)) + n[i+1:]
			_, err := db.Exec(`UPDATE audit_checkpoints SET note = ? WHERE note = ?`, bad, n)
			return err
		}, ProblemBadSignature, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			l := f.open(t, Options{CheckpointEvery: 8, FlushInterval: time.Hour})
			for i := 1; i <= 20; i++ {
				l.Append(Event{Type: TypeCommand, Command: fmt.Sprintf("stmt %d", i)})
				if i%4 == 0 {
					l.Sync()
				}
			}
			l.Close()
			if r := f.verify(t); !r.OK() || r.Events != 20 || r.Checkpoints != 3 {
				t.Fatalf("untouched log: %v", r)
			}
			db, err := sql.Open("sqlite", filepath.Join(f.dir, store.DefaultSQLiteFile))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var rows int
			db.QueryRow(`SELECT count(*) FROM audit_events`).Scan(&rows)
			if rows != 5 {
				t.Fatalf("the log is stored in %d rows, want 5", rows)
			}
			if !strings.Contains(tt.name, "compressed") {
				// The runs are stored compressed; the tampering above
				// edits them as text.
				decompressRuns(t, db)
			}
			if err := tt.tamper(db); err != nil {
				t.Fatal(err)
			}
			r := f.verify(t)
			if r.OK() || r.Problem.Kind != tt.kind || r.Problem.Seq != tt.seq {
				t.Errorf("verify after %s = %v; want %s at event %d", tt.name, r, tt.kind, tt.seq)
			}
		})
	}
}

func TestOfflineVerifyAndProof(t *testing.T) {
	f := newFixture(t)
	l := f.open(t, Options{CheckpointEvery: 7})
	for i := 1; i <= 30; i++ {
		l.Append(Event{Type: TypeCommand, Command: fmt.Sprintf("stmt %d", i)})
	}
	l.Close()
	bodies, cps := f.read(t)
	var export bytes.Buffer
	if err := WriteExport(&export, bodies, cps); err != nil {
		t.Fatal(err)
	}
	node, b2, c2, err := ReadExport(bytes.NewReader(export.Bytes()))
	if err != nil || node != "node1" {
		t.Fatalf("ReadExport = %q, %v", node, err)
	}
	if r := Verify(node, b2, c2, f.verifier); !r.OK() || r.Events != 30 || r.Signed != 30 {
		t.Fatalf("offline verify = %v", r)
	}
	// Another key does not verify.
	pub2, _, _ := ed25519.GenerateKey(rand.Reader)
	v2, _ := NewVerifier(pub2)
	if r := Verify(node, b2, c2, v2); r.OK() || r.Problem.Kind != ProblemBadSignature {
		t.Errorf("verify with a stranger's key = %v", r)
	}
	// Lines swapped in the export.
	lines := strings.Split(export.String(), "\n")
	lines[3], lines[4] = lines[4], lines[3]
	_, b3, c3, _ := ReadExport(strings.NewReader(strings.Join(lines, "\n")))
	if r := Verify(node, b3, c3, f.verifier); r.OK() || r.Problem.Kind != ProblemReordered || r.Problem.Seq != 4 {
		t.Errorf("verify of a reordered export = %v", r)
	}

	for _, seq := range []uint64{1, 13, 30} {
		p, err := Prove(node, bodies, cps, f.verifier, seq)
		if err != nil {
			t.Fatal(err)
		}
		if err := VerifyProof(p, f.verifier); err != nil {
			t.Errorf("proof of event %d: %v", seq, err)
		}
		altered := *p
		altered.Event = strings.Replace(p.Event, "stmt", "STMT", 1)
		if err := VerifyProof(&altered, f.verifier); err == nil {
			t.Errorf("proof of an altered event %d verified", seq)
		}
	}
}

// TestKilledProcessLosesNothing runs a child process that appends events
// and is killed with SIGKILL while they sit in the journal; the next open
// recovers every event Append had returned.
func TestKilledProcessLosesNothing(t *testing.T) {
	if os.Getenv("AUDIT_CRASH_CHILD") != "" {
		return // the child's work is in TestMain
	}
	f := newFixture(t)
	f.st.Close()
	keyFile := filepath.Join(f.dir, "key")
	os.WriteFile(keyFile, f.key, 0o600)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "AUDIT_CRASH_CHILD="+f.dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The child prints the sequence number of each event as Append
	// returns; kill it mid-stream.
	var last uint64
	buf := make([]byte, 64<<10)
	var acc []byte
	for last < 3000 {
		n, err := out.Read(buf)
		acc = append(acc, buf[:n]...)
		if err != nil {
			break
		}
		if i := bytes.LastIndexByte(acc[:len(acc)-1], '\n'); i >= 0 {
			fields := strings.Fields(string(acc[:i]))
			last, _ = strconv.ParseUint(fields[len(fields)-1], 10, 64)
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	if last < 3000 {
		t.Fatalf("the child stopped early at %d", last)
	}
	st, err := store.Open(ctx, "", f.dir)
	if err != nil {
		t.Fatal(err)
	}
	f.st = st
	defer st.Close()
	l := f.open(t, Options{})
	l.Close()
	r := f.verify(t)
	if !r.OK() || r.Events < last {
		t.Fatalf("after kill -9 at event %d: %v", last, r)
	}
	t.Logf("child killed after Append returned event %d; recovered log: %v", last, r)
}

func TestMain(m *testing.M) {
	if dir := os.Getenv("AUDIT_CRASH_CHILD"); dir != "" {
		crashChild(dir)
		return
	}
	os.Exit(m.Run())
}

// crashChild appends events forever with a flush interval long enough
// that they stay in the journal, printing each sequence number.
func crashChild(dir string) {
	key, _ := os.ReadFile(filepath.Join(dir, "key"))
	st, err := store.Open(ctx, "", dir)
	if err != nil {
		panic(err)
	}
	s, _ := NewSigner(ed25519.PrivateKey(key))
	l, err := Open(ctx, Options{Dir: filepath.Join(dir, "audit"), Node: "node1", Store: st, Signer: s, Log: quiet,
		FlushInterval: time.Hour, JournalBytes: 1 << 20})
	if err != nil {
		panic(err)
	}
	for {
		seq := l.Append(Event{Type: TypeCommand, Command: "SELECT 1"})
		fmt.Println(seq)
	}
}

// BenchmarkAppend measures sustained audit throughput into the embedded
// store: every event appended, chained, journalled and stored.
func BenchmarkAppend(b *testing.B) {
	f := newFixture(b)
	l := f.open(b, Options{})
	e := Event{Type: TypeCommand, Identity: "alice", Session: "0123456789abcdef01234567", Connection: "orders",
		Protocol: "postgres", Client: "127.0.0.1:51234", Command: "SELECT abalance FROM pgbench_accounts WHERE aid = 12345",
		Decision: "allow", Rows: 1, Duration: 150 * time.Microsecond}
	b.ReportAllocs()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Append(e)
		}
	})
	l.Sync()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
	l.Close()
}

func logOut() io.Writer {
	if os.Getenv("AUDIT_TEST_LOG") != "" {
		return os.Stderr
	}
	return io.Discard
}

// TestSmallJournalsUnderLoad drives many appenders through journals far
// smaller than the load, so they switch constantly and appends wait for
// the store.
func TestSmallJournalsUnderLoad(t *testing.T) {
	f := newFixture(t)
	l := f.open(t, Options{JournalBytes: 16 << 10, FlushInterval: time.Millisecond})
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 300; i++ {
				l.Append(Event{Type: TypeCommand, Command: strings.Repeat("x", i%200)})
			}
			l.Append(Event{Type: TypeCommand, Command: strings.Repeat("big", 10<<10)}) // larger than a journal
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); l.Sync(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("appends stalled")
	}
	l.Close()
	if r := f.verify(t); !r.OK() || r.Events != 4816 {
		t.Fatalf("verify = %v", r)
	}
}

func TestFilter(t *testing.T) {
	base := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	var bodies [][]byte
	add := func(e Event) {
		e.Seq = uint64(len(bodies) + 1)
		e.Time = base.Add(time.Duration(e.Seq) * time.Minute)
		bodies = append(bodies, e.AppendJSON(nil))
	}
	add(Event{Type: TypeSessionOpen, Identity: "alice", Session: "s1", Connection: "db"})           // 1
	add(Event{Type: TypeCommand, Identity: "alice", Session: "s1", Connection: "db", Command: "a"}) // 2
	add(Event{Type: TypeCommand, Identity: "bob", Session: "s2", Connection: "db", Command: "b"})   // 3
	add(Event{Type: TypeResult, Session: "s1", Ref: 2})                                             // 4
	add(Event{Type: TypeResult, Session: "s2", Ref: 3})                                             // 5
	add(Event{Type: TypeAdmin, Identity: "admin", Command: "apply"})                                // 6
	seqs := func(f Filter) string {
		var out []string
		for _, b := range f.Select(bodies) {
			var e struct{ Seq int }
			json.Unmarshal(b, &e)
			out = append(out, strconv.Itoa(e.Seq))
		}
		return strings.Join(out, ",")
	}
	tests := []struct {
		f    Filter
		want string
	}{
		{Filter{}, "1,2,3,4,5,6"},
		{Filter{Identity: "alice"}, "1,2,4"},
		{Filter{Session: "s2"}, "3,5"},
		{Filter{Type: TypeResult, Identity: "bob"}, "5"},
		{Filter{Since: base.Add(3 * time.Minute), Until: base.Add(6 * time.Minute)}, "3,4,5"},
		{Filter{Connection: "db", Type: TypeCommand}, "2,3"},
	}
	for _, tt := range tests {
		if got := seqs(tt.f); got != tt.want {
			t.Errorf("%+v selects %s, want %s", tt.f, got, tt.want)
		}
	}
}

func TestOCSF(t *testing.T) {
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		e                       Event
		class, activity, status int
	}{
		{Event{Type: TypeLoginFailed, Client: "10.0.0.5:5555", Error: "bad token"}, 3002, 1, 2},
		{Event{Type: TypeSessionOpen, Identity: "alice", Session: "s", Client: "[::1]:5555", Connection: "db", Decision: "allow"}, 3002, 1, 1},
		{Event{Type: TypeSessionClose, Identity: "alice", Session: "s"}, 3002, 2, 1},
		{Event{Type: TypeCommand, Identity: "alice", Session: "s", Connection: "db", Command: "DELETE FROM t", Decision: "block", Rule: "p/r"}, 6005, 99, 2},
		{Event{Type: TypeResult, Session: "s", Ref: 4, Rows: 3, Duration: 2 * time.Millisecond}, 6005, 99, 1},
		{Event{Type: TypeAdmin, Identity: "admin", Command: "apply Policy p (created)", Decision: "allow"}, 6003, 1, 1},
		{Event{Type: TypeAdmin, Identity: "admin", Command: "delete Connection db", Decision: "allow"}, 6003, 4, 1},
	}
	for i, tt := range tests {
		tt.e.Seq, tt.e.Time, tt.e.Node = uint64(i+1), at, "n1"
		o, err := OCSF(tt.e.AppendJSON(nil))
		if err != nil {
			t.Fatal(err)
		}
		if o["class_uid"] != tt.class || o["activity_id"] != tt.activity || o["status_id"] != tt.status ||
			o["type_uid"] != tt.class*100+tt.activity || o["category_uid"] != tt.class/1000 || o["time"] != at.UnixMilli() {
			t.Errorf("%s: %v", tt.e.Type, o)
		}
		um := o["unmapped"].(map[string]any)
		if um["seq"] != uint64(i+1) || um["gatehouse_type"] != tt.e.Type {
			t.Errorf("%s: unmapped %v", tt.e.Type, um)
		}
	}
	o, _ := OCSF((&Event{Type: TypeCommand, Identity: "alice", Rule: "p/r", Command: "x"}).AppendJSON(nil))
	if o["actor"].(map[string]any)["user"].(map[string]any)["name"] != "alice" || o["unmapped"].(map[string]any)["rule"] != "p/r" || o["message"] != "x" {
		t.Errorf("command: %v", o)
	}
}

// TestOneWriterPerNode: a second log on the same node refuses to open
// while the first renews its lease; after a clean close it opens at once.
func TestOneWriterPerNode(t *testing.T) {
	f := newFixture(t)
	l := f.open(t, Options{})
	s, _ := NewSigner(f.key)
	start := time.Now()
	_, err := Open(ctx, Options{Dir: filepath.Join(f.dir, "audit2"), Node: "node1", Store: f.st, Signer: s, Log: quiet})
	if err == nil || !strings.Contains(err.Error(), "another gateway") {
		t.Fatalf("second writer on node1: %v", err)
	}
	if waited := time.Since(start); waited > LeaseTTL+time.Second {
		t.Errorf("refusal took %v", waited)
	}
	l.Close()
	start = time.Now()
	l2 := f.open(t, Options{})
	defer l2.Close()
	if waited := time.Since(start); waited > time.Second {
		t.Errorf("open after a clean close waited %v", waited)
	}
}

func TestSessionsAndTimeline(t *testing.T) {
	base := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	var bodies [][]byte
	add := func(e Event) uint64 {
		e.Seq = uint64(len(bodies) + 1)
		e.Time = base.Add(time.Duration(e.Seq) * time.Second)
		bodies = append(bodies, e.AppendJSON(nil))
		return e.Seq
	}
	add(Event{Type: TypeSessionOpen, Identity: "alice", Session: "s1", Connection: "db", Protocol: "postgres", Client: "127.0.0.1:5", Decision: "allow"})
	c1 := add(Event{Type: TypeCommand, Identity: "alice", Session: "s1", Connection: "db", Command: "SELECT 1", Decision: "allow"})
	add(Event{Type: TypeSessionOpen, Identity: "bob", Session: "s2", Connection: "db", Decision: "allow"})
	add(Event{Type: TypeResult, Session: "s1", Ref: c1, Rows: 1, Duration: 1500 * time.Microsecond})
	c2 := add(Event{Type: TypeCommand, Identity: "alice", Session: "s1", Connection: "db", Command: "DROP TABLE t", Decision: "block", Rule: "p/no-drop", Error: "no"})
	add(Event{Type: TypeResult, Session: "s1", Ref: c2, SQLState: "42501", Error: "no"})
	add(Event{Type: TypeSessionClose, Identity: "alice", Session: "s1", Error: "client terminated the session"})

	ss := Sessions(bodies)
	if len(ss) != 2 || ss[0].ID != "s2" || !ss[0].End.IsZero() {
		t.Fatalf("sessions = %+v", ss)
	}
	s1 := ss[1]
	if s1.Identity != "alice" || s1.Statements != 2 || s1.Refused != 1 || s1.End.IsZero() || s1.Reason != "client terminated the session" {
		t.Errorf("s1 = %+v", s1)
	}
	tl := Timeline(bodies, "s1")
	if len(tl) != 4 || tl[0].Kind != "open" || tl[1].Text != "SELECT 1" || tl[1].Rows == nil || *tl[1].Rows != 1 ||
		tl[1].DurationUS != 1500 || tl[2].Decision != "block" || tl[2].SQLState != "42501" || tl[3].Kind != "close" {
		t.Errorf("timeline = %+v", tl)
	}
}

// decompressRuns rewrites every stored run as plain text, as a tamperer
// with the compression tool would.
func decompressRuns(t *testing.T, db *sql.DB) {
	t.Helper()
	rows, err := db.Query(`SELECT seq, zbody FROM audit_events WHERE zbody IS NOT NULL`)
	if err != nil {
		t.Fatal(err)
	}
	plain := map[int64][]byte{}
	for rows.Next() {
		var seq int64
		var z []byte
		if err := rows.Scan(&seq, &z); err != nil {
			t.Fatal(err)
		}
		if plain[seq], err = store.DecompressAuditRun(z); err != nil {
			t.Fatal(err)
		}
	}
	rows.Close()
	if len(plain) == 0 {
		t.Fatal("no compressed runs stored")
	}
	for seq, body := range plain {
		if _, err := db.Exec(`UPDATE audit_events SET body = ?, zbody = NULL WHERE seq = ?`, string(body), seq); err != nil {
			t.Fatal(err)
		}
	}
}

// BenchmarkEventJSON: encoding one select-only command event, as the data
// path does for every statement.
func BenchmarkEventJSON(b *testing.B) {
	e := Event{Seq: 123456, Time: time.Now(), Node: "gw-1", Type: TypeCommand, Identity: "bench",
		Session: "3b5e61ad529b381db97a5e53", Connection: "bench", Command: "SELECT abalance FROM pgbench_accounts WHERE aid = 81234;",
		Decision: "allow"}
	var buf []byte
	for b.Loop() {
		buf = e.AppendJSON(buf[:0])
	}
	b.SetBytes(int64(len(buf)))
}
